package wallet

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/crypto"
)

// SPEC.md §5: private key 0x01×32.
const (
	specAddr = "f1ksu3ktw4xhyaoltwr546b3epfs5wxxqfyyxipwi"
	specSig  = "749022251ae6de26fefd999bbed7d2390d0047da8d41408ee7839c20231fee6236fa5a47005664bafdf9a27264f45cee856f96ea72bc1c4137fcb39ea77a1e8401"
)

// A key exported by Lotus and the address filecoin-ffi derives for it
// (published in Brave's Filecoin keyring tests; testnet prefix there).
const (
	lotusBLSExport = "7b2254797065223a22626c73222c22507269766174654b6579223a2270536e7752332f3855616b53516f777858742b345a75393257586d424d526e74716d6448696136724853453d227d"
	lotusBLSAddr   = "f3wwtato54ee5aod7j5uv2n75jpyn4hpwx3f2kx5cijtoxgytiul2dczrak3ghlbt5zjnj574y3snhcb5bthva"
)

func specKey() KeyInfo {
	return KeyInfo{Type: TypeSecp256k1, PrivateKey: bytes.Repeat([]byte{1}, 32)}
}

func TestSecpVector(t *testing.T) {
	ki := specKey()
	a, err := ki.Address()
	if err != nil {
		t.Fatal(err)
	}
	if a.String() != specAddr {
		t.Fatalf("address %s, want %s", a, specAddr)
	}
	want, _ := hex.DecodeString(specSig)
	if err := Verify(&crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: want}, a, []byte("ferry")); err != nil {
		t.Fatalf("spec signature does not verify: %v", err)
	}
	sig, err := Sign(ki, []byte("ferry"))
	if err != nil {
		t.Fatal(err)
	}
	if sig.Type != crypto.SigTypeSecp256k1 || len(sig.Data) != 65 {
		t.Fatalf("signature %d/%d bytes", sig.Type, len(sig.Data))
	}
	if err := Verify(sig, a, []byte("ferry")); err != nil {
		t.Fatal(err)
	}
	if err := Verify(sig, a, []byte("ferrz")); err == nil {
		t.Fatal("signature verified over other data")
	}
	other, _ := address.NewFromString(lotusBLSAddr)
	if err := Verify(sig, other, []byte("ferry")); err == nil {
		t.Fatal("secp signature verified for a BLS address")
	}
	id, _ := address.NewIDAddress(1000)
	if err := Verify(sig, id, []byte("ferry")); err == nil {
		t.Fatal("secp signature verified for an ID address")
	}
}

func TestImportLotusExport(t *testing.T) {
	ki, err := ImportKey(lotusBLSExport + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if ki.Type != TypeBLS {
		t.Fatalf("type %q", ki.Type)
	}
	a, err := ki.Address()
	if err != nil {
		t.Fatal(err)
	}
	if a.String() != lotusBLSAddr {
		t.Fatalf("address %s, want %s", a, lotusBLSAddr)
	}
	if got := ExportKey(ki); got != lotusBLSExport {
		t.Fatalf("export %s, want %s", got, lotusBLSExport)
	}
	// The BLS key signs, and the signature verifies against the f3 address
	// alone.
	sig, err := Sign(ki, []byte("ferry"))
	if err != nil {
		t.Fatal(err)
	}
	if sig.Type != crypto.SigTypeBLS || len(sig.Data) != 96 {
		t.Fatalf("signature %d/%d bytes", sig.Type, len(sig.Data))
	}
	if err := Verify(sig, a, []byte("ferry")); err != nil {
		t.Fatal(err)
	}
	if err := Verify(sig, a, []byte("other")); err == nil {
		t.Fatal("BLS signature verified over other data")
	}
	// BLS signatures are deterministic.
	sig2, _ := Sign(ki, []byte("ferry"))
	if !bytes.Equal(sig.Data, sig2.Data) {
		t.Fatal("BLS signature not deterministic")
	}
}

func TestExportImportSecp(t *testing.T) {
	s := ExportKey(specKey())
	// Lotus' format: hex of {"Type":"secp256k1","PrivateKey":"<base64>"}.
	j, _ := hex.DecodeString(s)
	if string(j) != `{"Type":"secp256k1","PrivateKey":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}` {
		t.Fatalf("export JSON %s", j)
	}
	ki, err := ImportKey(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ki.PrivateKey, specKey().PrivateKey) {
		t.Fatal("round trip changed key")
	}
}

func TestImportKeyRejects(t *testing.T) {
	for name, s := range map[string]string{
		"not hex":    "zz",
		"not json":   hex.EncodeToString([]byte("hello")),
		"bad type":   hex.EncodeToString([]byte(`{"Type":"ed25519","PrivateKey":"AQE="}`)),
		"short key":  hex.EncodeToString([]byte(`{"Type":"secp256k1","PrivateKey":"AQE="}`)),
		"zero secp":  hex.EncodeToString([]byte(`{"Type":"secp256k1","PrivateKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`)),
		"zero bls":   hex.EncodeToString([]byte(`{"Type":"bls","PrivateKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`)),
		"bls over r": hex.EncodeToString([]byte(`{"Type":"bls","PrivateKey":"//////////////////////////////////////////8="}`)),
		"empty":      "",
	} {
		if _, err := ImportKey(s); err == nil {
			t.Errorf("%s: imported", name)
		}
	}
}

func TestGenerate(t *testing.T) {
	for _, typ := range []string{TypeSecp256k1, TypeBLS} {
		ki, err := Generate(typ)
		if err != nil {
			t.Fatal(err)
		}
		a, err := ki.Address()
		if err != nil {
			t.Fatal(err)
		}
		sig, err := Sign(ki, []byte("data"))
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(sig, a, []byte("data")); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		// A signature by another key of the same type fails.
		ki2, _ := Generate(typ)
		a2, _ := ki2.Address()
		if err := Verify(sig, a2, []byte("data")); err == nil {
			t.Fatalf("%s: verified for another address", typ)
		}
	}
	if _, err := Generate("rsa"); err == nil {
		t.Fatal("generated unknown type")
	}
}

func TestVerifyGarbage(t *testing.T) {
	a, _ := specKey().Address()
	b, _ := address.NewFromString(lotusBLSAddr)
	cases := []struct {
		sig  *crypto.Signature
		addr address.Address
	}{
		{nil, a},
		{&crypto.Signature{Type: crypto.SigTypeSecp256k1}, a},
		{&crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: make([]byte, 65)}, a},
		{&crypto.Signature{Type: crypto.SigTypeBLS, Data: make([]byte, 96)}, b},
		{&crypto.Signature{Type: crypto.SigTypeBLS, Data: bytes.Repeat([]byte{0xff}, 96)}, b},
		{&crypto.Signature{Type: crypto.SigTypeBLS, Data: make([]byte, 96)}, a},
		{&crypto.Signature{Type: 7, Data: make([]byte, 96)}, a},
		{&crypto.Signature{Type: crypto.SigTypeBLS, Data: make([]byte, 96)}, address.Undef},
	}
	for i, c := range cases {
		if err := Verify(c.sig, c.addr, []byte("x")); err == nil {
			t.Errorf("case %d verified", i)
		}
	}
}

func TestWallet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	w, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %o", fi.Mode().Perm())
	}
	if _, err := w.Default(); !errors.Is(err, ErrNoDefault) {
		t.Fatalf("default on empty wallet: %v", err)
	}
	a1, err := w.New(TypeSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := w.New(TypeBLS)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := w.Default(); err != nil || d != a1 {
		t.Fatalf("default %s %v, want first key %s", d, err, a1)
	}
	a3, err := w.Import(specKey())
	if err != nil || a3.String() != specAddr {
		t.Fatalf("import: %s %v", a3, err)
	}
	list, err := w.List()
	if err != nil || len(list) != 3 {
		t.Fatalf("list %v %v", list, err)
	}
	for _, a := range []address.Address{a1, a2, a3} {
		fi, err := os.Stat(filepath.Join(dir, a.String()+".key"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file mode %o", fi.Mode().Perm())
		}
		if ok, err := w.Has(a); !ok || err != nil {
			t.Fatalf("has %s: %v %v", a, ok, err)
		}
		sig, err := w.Sign(a, []byte("msg"))
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(sig, a, []byte("msg")); err != nil {
			t.Fatal(err)
		}
	}
	sigf := w.Signer(a2)
	if sig, err := sigf([]byte("m")); err != nil || Verify(sig, a2, []byte("m")) != nil {
		t.Fatalf("signer: %v", err)
	}
	if err := w.SetDefault(a2); err != nil {
		t.Fatal(err)
	}
	// A reopened wallet sees the same keys and default.
	w2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := w2.Default(); d != a2 {
		t.Fatalf("default after reopen %s", d)
	}
	ki, err := w2.Export(a3)
	if err != nil || !bytes.Equal(ki.PrivateKey, specKey().PrivateKey) {
		t.Fatalf("export %v", err)
	}
	unknown, _ := address.NewFromString(lotusBLSAddr)
	if ok, _ := w.Has(unknown); ok {
		t.Fatal("has unknown key")
	}
	if _, err := w.Sign(unknown, nil); !errors.Is(err, ErrNoKey) {
		t.Fatalf("sign with unknown key: %v", err)
	}
	if err := w.SetDefault(unknown); !errors.Is(err, ErrNoKey) {
		t.Fatalf("default to unknown key: %v", err)
	}
	// A key file that holds another address' key is refused.
	b, _ := os.ReadFile(filepath.Join(dir, a1.String()+".key"))
	if err := os.WriteFile(filepath.Join(dir, a3.String()+".key"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Sign(a3, nil); err == nil || !strings.Contains(err.Error(), "holds the key of") {
		t.Fatalf("mismatched key file: %v", err)
	}
	// No temporary files left behind.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp") {
			t.Fatalf("left %s", e.Name())
		}
	}
}

func TestOpenRejectsOpenDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil {
		t.Fatal("opened a world-readable keystore")
	}
}

func TestWalletConcurrent(t *testing.T) {
	w, err := Open(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := w.Import(specKey())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := w.Sign(a, []byte("x"))
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, err := w.Import(specKey())
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	sig, _ := hex.DecodeString(specSig)
	f.Add(byte(crypto.SigTypeSecp256k1), sig, specAddr, []byte("ferry"))
	blsKI, _ := ImportKey(lotusBLSExport)
	bs, _ := Sign(blsKI, []byte("ferry"))
	f.Add(byte(crypto.SigTypeBLS), bs.Data, lotusBLSAddr, []byte("ferry"))
	f.Add(byte(crypto.SigTypeBLS), make([]byte, 96), lotusBLSAddr, []byte{})
	f.Add(byte(9), []byte{1, 2, 3}, "f01000", []byte("x"))
	f.Fuzz(func(t *testing.T, typ byte, data []byte, addr string, msg []byte) {
		a, err := address.NewFromString(addr)
		if err != nil {
			a = address.Undef
		}
		s := &crypto.Signature{Type: crypto.SigType(typ), Data: data}
		if Verify(s, a, msg) == nil {
			// Only real signatures verify: a verified one must fail for
			// other data.
			if Verify(s, a, append(msg, 0)) == nil {
				t.Fatalf("signature verifies for two messages")
			}
		}
	})
}

func BenchmarkSignSecp256k1(b *testing.B) {
	ki := specKey()
	for i := 0; i < b.N; i++ {
		if _, err := Sign(ki, []byte("ferry")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifySecp256k1(b *testing.B) {
	ki := specKey()
	a, _ := ki.Address()
	sig, _ := Sign(ki, []byte("ferry"))
	for i := 0; i < b.N; i++ {
		if err := Verify(sig, a, []byte("ferry")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyBLS(b *testing.B) {
	ki, _ := ImportKey(lotusBLSExport)
	a, _ := ki.Address()
	sig, _ := Sign(ki, []byte("ferry"))
	for i := 0; i < b.N; i++ {
		if err := Verify(sig, a, []byte("ferry")); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzImportKey feeds ImportKey what a user may paste: a key that imports
// must export to the same key and import again to the same address.
func FuzzImportKey(f *testing.F) {
	f.Add(lotusBLSExport)
	f.Add(ExportKey(specKey()))
	f.Add("7b2254797065223a22626c73222c22507269766174654b6579223a22227d") // {"Type":"bls","PrivateKey":""}
	f.Add("not hex")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		ki, err := ImportKey(s)
		if err != nil {
			return
		}
		a, err := ki.Address()
		if err != nil {
			t.Fatalf("imported key has no address: %v", err)
		}
		again, err := ImportKey(ExportKey(ki))
		if err != nil {
			t.Fatalf("re-importing the export: %v", err)
		}
		if b, _ := again.Address(); b != a {
			t.Fatalf("address %s after a round trip, was %s", b, a)
		}
	})
}
