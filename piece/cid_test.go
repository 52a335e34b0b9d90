package piece

import (
	"bytes"
	"errors"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

func TestCIDRoundTrip(t *testing.T) {
	root := ZeroCommitment(1 << 20)
	v1 := CIDv1(root)
	got, err := ParseCID(v1)
	if err != nil || got != root {
		t.Fatalf("ParseCID: %v", err)
	}
	for _, payload := range []uint64{0, 1, 1000, uint64((1 << 20) / 128 * 127)} {
		v2, err := V1ToV2(v1, payload, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		back, p, s, err := V2ToV1(v2)
		if err != nil || back != v1 || p != payload || s != 1<<20 {
			t.Fatalf("V2ToV1(%s) = %s %d %d %v", v2, back, p, s, err)
		}
	}
	if _, err := CIDv2(root, 1<<20, 1<<20); err == nil {
		t.Error("CIDv2 with payload above capacity")
	}
	if _, err := CIDv2(root, 0, 1000); err == nil {
		t.Error("CIDv2 with invalid size")
	}
}

func TestParseCIDErrors(t *testing.T) {
	root := ZeroCommitment(128)
	sha, _ := multihash.Sum([]byte("x"), multihash.SHA2_256, -1)
	trunc, _ := multihash.Encode(root[:], MhV1)
	short, _ := multihash.Encode(root[:31], MhV1)
	v2, _ := CIDv2(root, 5, 128)
	for name, c := range map[string]cid.Cid{
		"undef":       cid.Undef,
		"raw sha256":  cid.NewCidV1(cid.Raw, sha),
		"dag-pb v0":   cid.NewCidV0(sha),
		"wrong hash":  cid.NewCidV1(cid.FilCommitmentUnsealed, sha),
		"wrong codec": cid.NewCidV1(cid.FilCommitmentSealed, trunc),
		"short":       cid.NewCidV1(cid.FilCommitmentUnsealed, short),
		"v2":          v2,
	} {
		if _, err := ParseCID(c); !errors.Is(err, ErrNotPieceCID) {
			t.Errorf("ParseCID(%s): %v", name, err)
		}
	}
	v1 := CIDv1(root)
	bad := func(digest []byte) cid.Cid {
		mh, _ := multihash.Encode(digest, MhV2)
		return cid.NewCidV1(cid.Raw, mh)
	}
	for name, c := range map[string]cid.Cid{
		"v1":            v1,
		"no root":       bad([]byte{0, 2}),
		"height 1":      bad(append([]byte{0, 1}, root[:]...)),
		"height 40":     bad(append([]byte{0, 40}, root[:]...)),
		"padding > cap": bad(append([]byte{128, 1, 2}, root[:]...)),
		"long root":     bad(append(append([]byte{0, 2}, root[:]...), 0)),
	} {
		if _, _, _, err := ParseCIDv2(c); !errors.Is(err, ErrNotPieceCID) {
			t.Errorf("ParseCIDv2(%s): %v", name, err)
		}
	}
}

// ParseAnyCID and ParseCIDString take either version and give v1, with a
// v2's sizes; anything else is ErrNotPieceCID.
func TestParseAnyCID(t *testing.T) {
	// SPEC.md §2: 127×0x00‖127×0x01‖127×0x02‖127×0x03.
	v1s := "baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"
	v2s := "bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"
	v1, size, payload, err := ParseCIDString(v2s)
	if err != nil || v1.String() != v1s || size != 512 || payload != 508 {
		t.Fatalf("v2: %s %d %d %v", v1, size, payload, err)
	}
	got, size, payload, err := ParseCIDString(v1s)
	if err != nil || got.String() != v1s || size != 0 || payload != 0 {
		t.Fatalf("v1: %s %d %d %v", got, size, payload, err)
	}
	for _, bad := range []string{"", "nonsense", "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"} {
		if _, _, _, err := ParseCIDString(bad); !errors.Is(err, ErrNotPieceCID) {
			t.Errorf("ParseCIDString(%q): %v", bad, err)
		}
	}
	if _, _, _, err := ParseAnyCID(cid.Undef); !errors.Is(err, ErrNotPieceCID) {
		t.Errorf("ParseAnyCID(undef): %v", err)
	}
}

func FuzzParseCID(f *testing.F) {
	root := ZeroCommitment(2048)
	f.Add(CIDv1(root).Bytes())
	v2, _ := CIDv2(root, 100, 2048)
	f.Add(v2.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		_, c, err := cid.CidFromBytes(b)
		if err != nil {
			return
		}
		if r, err := ParseCID(c); err == nil {
			if CIDv1(r) != c {
				t.Fatalf("v1 %s does not round-trip", c)
			}
		}
		r, p, s, err := ParseCIDv2(c)
		if err == nil {
			again, err := CIDv2(r, p, s)
			if err != nil || !bytes.Equal(again.Bytes(), c.Bytes()) {
				t.Fatalf("v2 %s does not round-trip: %v", c, err)
			}
		}
		sr, sp, ss, serr := ParseCIDv2Strict(c)
		switch {
		case serr == nil && err != nil:
			t.Fatalf("strict parse takes %s, which ParseCIDv2 refuses: %v", c, err)
		case serr == nil && (sr != r || sp != p || ss != s):
			t.Fatalf("strict parse of %s differs from ParseCIDv2", c)
		case serr == nil && (ss != PaddedSizeFor(sp) || sp < 65):
			t.Fatalf("strict parse takes %s: %d bytes in a %d-byte piece", c, sp, ss)
		case serr != nil && err == nil && s == PaddedSizeFor(p) && p >= 65:
			t.Fatalf("strict parse refuses %s, %d bytes in the smallest piece: %v", c, p, serr)
		}
		// Either version reads as the v1 it names, v2 with its sizes.
		v1, size, payload, err := ParseAnyCID(c)
		if err != nil {
			return
		}
		if _, perr := ParseCID(v1); perr != nil {
			t.Fatalf("ParseAnyCID(%s) gave %s, not a v1: %v", c, v1, perr)
		}
		if size == 0 {
			if v1 != c {
				t.Fatalf("ParseAnyCID(%s) of a v1 gave %s", c, v1)
			}
			return
		}
		if again, err := V1ToV2(v1, payload, size); err != nil || !bytes.Equal(again.Bytes(), c.Bytes()) {
			t.Fatalf("ParseAnyCID(%s) = %s %d %d does not make the v2 again: %v", c, v1, size, payload, err)
		}
	})
}

func FuzzFr32RoundTrip(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0xFF}, 127))
	f.Add([]byte("hello"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := len(b) / 127 * 127
		in := b[:n]
		out := make([]byte, n/127*128)
		Pad(out, in)
		for i := 31; i < len(out); i += 32 {
			if out[i]&0xC0 != 0 {
				t.Fatal("node top bits set")
			}
		}
		if !bytes.Equal(out, padBits(in)) {
			t.Fatal("Pad differs from the bit definition")
		}
		back := make([]byte, n)
		Unpad(back, out)
		if !bytes.Equal(back, in) {
			t.Fatal("round trip differs")
		}
		// Unpad of arbitrary padded bytes then Pad clears only the top bits.
		m := len(b) / 128 * 128
		un := make([]byte, m/128*127)
		Unpad(un, b[:m])
		re := make([]byte, m)
		Pad(re, un)
		for i := range re {
			want := b[i]
			if i%32 == 31 {
				want &= 0x3F
			}
			if re[i] != want {
				t.Fatalf("byte %d: %x, want %x", i, re[i], want)
			}
		}
	})
}

func FuzzCommPOracle(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0xCC}, 127), uint16(7))
	f.Add(bytes.Repeat([]byte{1}, 65), uint16(1))
	f.Add(bytes.Repeat([]byte{2, 3}, 1000), uint16(300))
	f.Fuzz(func(t *testing.T, b []byte, step uint16) {
		if len(b) < 65 {
			return
		}
		want, size := oracle(t, b)
		got := ours(t, b, int(step)+1)
		if got.Root != want || got.Size != size {
			t.Fatalf("%d bytes: ours %x/%d, hashhash %x/%d", len(b), got.Root, got.Size, want, size)
		}
	})
}

func TestParseCIDv2Strict(t *testing.T) {
	// The SPEC vector: 508 bytes (127×0x00‖127×0x01‖127×0x02‖127×0x03) in a 512-byte piece.
	v2, err := cid.Parse("bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi")
	if err != nil {
		t.Fatal(err)
	}
	if _, p, s, err := ParseCIDv2Strict(v2); err != nil || p != 508 || s != 512 {
		t.Fatalf("ParseCIDv2Strict(vector) = %d %d %v", p, s, err)
	}
	root := ZeroCommitment(2048)
	for _, tc := range []struct {
		payload uint64
		size    abi.PaddedPieceSize
		ok      bool
	}{
		{65, 128, true}, {127, 128, true}, {64, 128, false}, {1, 128, false},
		{128, 256, true}, {1016, 1024, true}, {508, 1024, false}, {509, 1024, true},
		{0, 2048, false}, {2032, 2048, true},
	} {
		c, err := CIDv2(root, tc.payload, tc.size)
		if err != nil {
			t.Fatal(err)
		}
		_, _, _, err = ParseCIDv2Strict(c)
		if (err == nil) != tc.ok {
			t.Errorf("%d bytes in a %d-byte piece: err %v, want ok %v", tc.payload, tc.size, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrNotPieceCID) {
			t.Errorf("%d bytes in %d: error %v does not wrap ErrNotPieceCID", tc.payload, tc.size, err)
		}
	}
}

// FuzzParseCIDString: a piece CID read from text (a command-line argument,
// a URL path) parses only to the v1 of the CID it spells, with a v2's
// sizes, or is ErrNotPieceCID; never a panic.
func FuzzParseCIDString(f *testing.F) {
	f.Add("baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi")
	f.Add("bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi")
	f.Add("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		v1, size, payload, err := ParseCIDString(s)
		if err != nil {
			if !errors.Is(err, ErrNotPieceCID) {
				t.Fatalf("%q: error %v is not ErrNotPieceCID", s, err)
			}
			return
		}
		c, err := cid.Decode(s)
		if err != nil {
			t.Fatalf("%q parsed as a piece CID but is not a CID: %v", s, err)
		}
		if size == 0 && v1 != c {
			t.Fatalf("%q: a v1 gave %s", s, v1)
		}
		if size != 0 {
			if again, err := V1ToV2(v1, payload, size); err != nil || again != c {
				t.Fatalf("%q: %s %d %d is not the v2 it spells: %v", s, v1, size, payload, err)
			}
		}
	})
}
