package piece

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"testing"

	hashhash "github.com/filecoin-project/go-fil-commp-hashhash"
	"github.com/filecoin-project/go-state-types/abi"
)

// oracle computes the CommP of payload with go-fil-commp-hashhash.
func oracle(t testing.TB, payload []byte) ([32]byte, abi.PaddedPieceSize) {
	t.Helper()
	h := new(hashhash.Calc)
	if _, err := h.Write(payload); err != nil {
		t.Fatal(err)
	}
	d, size, err := h.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var r [32]byte
	copy(r[:], d)
	return r, abi.PaddedPieceSize(size)
}

// ours computes the CommP of payload writing it in pieces of the given sizes.
func ours(t testing.TB, payload []byte, step int) Commitment {
	t.Helper()
	c := NewCalc()
	for p := payload; len(p) > 0; {
		n := min(step, len(p))
		if _, err := c.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	cm, err := c.Sum()
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

func randBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func TestCommPVectors(t *testing.T) {
	four := append(append(append(bytes.Repeat([]byte{0}, 127), bytes.Repeat([]byte{1}, 127)...), bytes.Repeat([]byte{2}, 127)...), bytes.Repeat([]byte{3}, 127)...)
	cases := []struct {
		payload []byte
		v1, v2  string
		size    abi.PaddedPieceSize
	}{
		{bytes.Repeat([]byte{0}, 127), "baga6ea4seaqdomn3tgwgrh3g532zopskstnbrd2n3sxfqbze7rxt7vqn7veigmy", "", 128},
		{bytes.Repeat([]byte{0xCC}, 127), "baga6ea4seaqmfldjtozgne6adk7eve2vdxte7vzlivae7nzsbrawobo546zkijq", "", 128},
		{bytes.Repeat([]byte{0xCC}, 1024), "baga6ea4seaqdlpnhgsndrgjeu4p46hahlsr4lybg6du4d56ooppdpxhcofxeuoi", "", 2048},
		{four, "baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi", "bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi", 512},
	}
	for i, tc := range cases {
		for _, step := range []int{1, 7, 127, 1 << 20} {
			cm := ours(t, tc.payload, step)
			if got := cm.CID().String(); got != tc.v1 {
				t.Errorf("case %d step %d: v1 %s, want %s", i, step, got, tc.v1)
			}
			if cm.Size != tc.size || cm.PayloadSize != uint64(len(tc.payload)) {
				t.Errorf("case %d: sizes %d/%d, want %d/%d", i, cm.PayloadSize, cm.Size, len(tc.payload), tc.size)
			}
			if tc.v2 != "" {
				if got := cm.CIDv2().String(); got != tc.v2 {
					t.Errorf("case %d: v2 %s, want %s", i, got, tc.v2)
				}
			}
		}
	}
	// Empty payload: refused by Calc; its v2 CID is that of the 128-byte zero piece.
	if _, err := NewCalc().Sum(); err != ErrEmptyPayload {
		t.Errorf("empty payload: err %v, want ErrEmptyPayload", err)
	}
	v2, err := CIDv2(ZeroCommitment(128), 0, 128)
	if err != nil {
		t.Fatal(err)
	}
	if want := "bafkzcibcp4bdomn3tgwgrh3g532zopskstnbrd2n3sxfqbze7rxt7vqn7veigmy"; v2.String() != want {
		t.Errorf("empty v2 %s, want %s", v2, want)
	}
}

func TestZeroCommitments(t *testing.T) {
	for _, tc := range []struct {
		size abi.PaddedPieceSize
		hex  string
	}{
		{64, "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb0b"},
		{128, "3731bb99ac689f66eef5973e4a94da188f4ddcae580724fc6f3fd60dfd488333"},
		{32 << 30, "077e5fde35c50a9303a55009e3498a4ebedff39c42b710b730d8ec7ac7afa63e"},
	} {
		z := ZeroCommitment(tc.size)
		if got := hex.EncodeToString(z[:]); got != tc.hex {
			t.Errorf("Z(%d) = %s, want %s", tc.size, got, tc.hex)
		}
	}
	// A tiny payload zero-filled to 64 GiB must be cheap and match Raise.
	c := NewCalc()
	c.Write(bytes.Repeat([]byte{0}, 1024))
	cm, err := c.SumAs(64 << 30)
	if err != nil {
		t.Fatal(err)
	}
	if cm.Root != ZeroCommitment(64<<30) {
		t.Error("1 KiB of zeros in a 64 GiB piece is not Z(64 GiB)")
	}
}

// boundarySizes are payload sizes around the quad, chunk and piece edges.
func boundarySizes() []int {
	s := []int{65, 66, 100, 126, 127, 128, 129, 253, 254, 255, 256, 381, 508, 509, 1016, 1017, 2032, 4064,
		chunkU - 1, chunkU, chunkU + 1, 1<<20 - 1, 1 << 20, 1<<20 + 1, 2*chunkU - 127, 2*chunkU + 127}
	for k := 3; k <= 17; k++ {
		u := 127 << k
		s = append(s, u-1, u, u+1)
	}
	return s
}

func TestCommPOracle(t *testing.T) {
	sizes := boundarySizes()
	if raceEnabled {
		// The race detector makes hashing ~20x slower: keep the multi-chunk edges only.
		sizes = []int{65, 127, 1016, chunkU - 1, chunkU, chunkU + 1, 3*chunkU + 5, 127<<15 + 1}
	}
	r := rand.New(rand.NewSource(7))
	for i := 0; i < 20 && !raceEnabled; i++ {
		sizes = append(sizes, 65+r.Intn(1<<16))
	}
	for i := 0; i < 4 && !raceEnabled; i++ {
		sizes = append(sizes, 65+r.Intn(8<<20))
	}
	if !testing.Short() && !raceEnabled {
		sizes = append(sizes, 64<<20, 64<<20-1, 127<<19+1)
	}
	for _, n := range sizes {
		payload := randBytes(int64(n), n)
		want, wantSize := oracle(t, payload)
		step := 1 + r.Intn(3<<20)
		got := ours(t, payload, step)
		if got.Root != want || got.Size != wantSize {
			t.Fatalf("size %d step %d: got %x/%d, want %x/%d", n, step, got.Root, got.Size, want, wantSize)
		}
	}
}

// TestCommPSmall checks the under-65-byte policy: zero-fill to 127 bytes.
func TestCommPSmall(t *testing.T) {
	for n := 1; n <= 127; n++ {
		p := randBytes(int64(n), n)
		full := append(append([]byte{}, p...), make([]byte, 127-n)...)
		want, _ := oracle(t, full)
		got := ours(t, p, 13)
		if got.Root != want || got.Size != 128 || got.PayloadSize != uint64(n) {
			t.Fatalf("%d bytes: got %x/%d, want %x of the zero-filled 127", n, got.Root, got.Size, want)
		}
	}
}

func TestSumAs(t *testing.T) {
	p := randBytes(3, 5000)
	want, size := oracle(t, p)
	for _, target := range []abi.PaddedPieceSize{size, size * 2, 1 << 20, 32 << 30} {
		var sink bytes.Buffer
		c := NewCalc()
		if target <= 1<<20 {
			c = NewCalcWithSink(&sink)
		}
		c.Write(p)
		cm, err := c.SumAs(target)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := Raise(want, size, target)
		if cm.Root != w || cm.Size != target {
			t.Fatalf("SumAs(%d) wrong", target)
		}
		if target <= 1<<20 {
			if abi.PaddedPieceSize(sink.Len()) != target {
				t.Fatalf("sink has %d bytes, want %d", sink.Len(), target)
			}
			// The sink holds fr32(payload zero-filled).
			full := make([]byte, target.Unpadded())
			copy(full, p)
			padded := make([]byte, target)
			Pad(padded, full)
			if !bytes.Equal(padded, sink.Bytes()) {
				t.Fatal("sink bytes differ from Pad of the zero-filled payload")
			}
		}
	}
	c := NewCalc()
	c.Write(p)
	if _, err := c.SumAs(size / 2); err == nil {
		t.Error("SumAs smaller than the payload succeeded")
	}
	if _, err := c.SumAs(size + 1); err == nil {
		t.Error("SumAs of an invalid size succeeded")
	}
	if _, err := c.Write([]byte{1}); err == nil {
		t.Error("Write after Sum succeeded")
	}
}

// TestCalcSinkLarge checks the sink across several chunks with the oracle.
func TestCalcSinkLarge(t *testing.T) {
	p := randBytes(11, 3*chunkU+1000)
	var sink bytes.Buffer
	c := NewCalcWithSink(&sink)
	io.Copy(c, bytes.NewReader(p))
	cm, err := c.Sum()
	if err != nil {
		t.Fatal(err)
	}
	want, size := oracle(t, p)
	if cm.Root != want || abi.PaddedPieceSize(sink.Len()) != size {
		t.Fatal("multi-chunk sink mismatch")
	}
	un, err := io.ReadAll(NewUnpadReader(&sink))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(un[:len(p)], p) || len(un) != int(size.Unpadded()) {
		t.Fatal("unpadded sink differs from payload")
	}
}

func BenchmarkCalc(b *testing.B) {
	for _, n := range []int{64 << 20, 256 << 20} {
		b.Run(fmt.Sprintf("%dMiB", n>>20), func(b *testing.B) {
			buf := randBytes(1, 16<<20)
			b.SetBytes(int64(n))
			for b.Loop() {
				c := NewCalc()
				for w := 0; w < n; w += len(buf) {
					c.Write(buf[:min(len(buf), n-w)])
				}
				if _, err := c.Sum(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHashhash(b *testing.B) {
	n := 64 << 20
	buf := randBytes(1, 16<<20)
	b.SetBytes(int64(n))
	for b.Loop() {
		c := new(hashhash.Calc)
		for w := 0; w < n; w += len(buf) {
			c.Write(buf[:min(len(buf), n-w)])
		}
		c.Digest()
	}
}
