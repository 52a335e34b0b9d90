package carroot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipld/go-car/v2/blockstore"
	"github.com/multiformats/go-multihash"
	"github.com/multiformats/go-varint"
)

func rawBlock(t testing.TB, data []byte) blocks.Block {
	mh, err := multihash.Sum(data, multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, mh))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// carV1 builds a CAR v1 with one block by hand: varint header length,
// dag-cbor {roots: [root], version: 1}, then the block section.
func carV1(b blocks.Block) []byte {
	cb := append([]byte{0}, b.Cid().Bytes()...) // dag-cbor CID bytes carry a leading 0
	var h []byte
	h = append(h, 0xa2)
	h = append(h, 0x65)
	h = append(h, "roots"...)
	h = append(h, 0x81, 0xd8, 0x2a, 0x58, byte(len(cb)))
	h = append(h, cb...)
	h = append(h, 0x67)
	h = append(h, "version"...)
	h = append(h, 0x01)
	out := append(varint.ToUvarint(uint64(len(h))), h...)
	sec := append(b.Cid().Bytes(), b.RawData()...)
	out = append(out, varint.ToUvarint(uint64(len(sec)))...)
	return append(out, sec...)
}

func TestRoots(t *testing.T) {
	b := rawBlock(t, []byte("hello ferry"))
	v1 := carV1(b)
	roots, err := Roots(bytes.NewReader(v1))
	if err != nil || len(roots) != 1 || roots[0] != b.Cid() {
		t.Fatalf("v1 roots %v, %v", roots, err)
	}

	path := filepath.Join(t.TempDir(), "v2.car")
	bs, err := blockstore.OpenReadWrite(path, []cid.Cid{b.Cid()})
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.Put(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := bs.Finalize(); err != nil {
		t.Fatal(err)
	}
	roots, err = FileRoots(path)
	if err != nil || len(roots) != 1 || roots[0] != b.Cid() {
		t.Fatalf("v2 roots %v, %v", roots, err)
	}

	for name, data := range map[string][]byte{
		"text":  []byte("just some text, not a CAR file at all"),
		"empty": nil,
		"huge":  {0xff, 0xff, 0xff, 0xff, 0x0f, 0xa2},
	} {
		if _, err := Roots(bytes.NewReader(data)); !errors.Is(err, ErrNotCAR) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := FileRoots(filepath.Join(t.TempDir(), "missing")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzRoots(f *testing.F) {
	f.Add(carV1(rawBlock(f, []byte("seed"))))
	f.Add([]byte("not a car"))
	f.Fuzz(func(t *testing.T, data []byte) {
		roots, err := Roots(bytes.NewReader(data))
		if err == nil && len(roots) == 0 {
			t.Fatal("a CAR without roots was accepted silently")
		}
	})
}
