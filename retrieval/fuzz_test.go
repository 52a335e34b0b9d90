package retrieval

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"

	"github.com/ipfs/boxo/gateway"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/internal/carv1"
	"github.com/ferry-fil/ferry/piece"
)

// FuzzVerifyCAR feeds arbitrary bytes to the CAR verifier a client runs on
// a gateway's answer: an error or success, never a panic; success only for
// a complete DAG under the root.
func FuzzVerifyCAR(f *testing.F) {
	d := makeDAG(f)
	dfs := []blk{d.C, d.D, d.F, d.L1, d.L2, d.L3}
	f.Add(carOf(f, d.C.c, dfs))
	f.Add(carOf(f, d.C.c, dfs[:3]))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		if err := VerifyCAR(bytes.NewReader(data), d.C.c, &out); err != nil {
			return
		}
		// Whatever passed must verify again from what was written.
		if err := VerifyCAR(bytes.NewReader(out.Bytes()), d.C.c, io.Discard); err != nil {
			t.Fatalf("accepted CAR does not re-verify: %v", err)
		}
	})
}

// FuzzLinks decodes arbitrary block data under each codec the DAG walk
// understands.
func FuzzLinks(f *testing.F) {
	d := makeDAG(f)
	for _, b := range []blk{d.C, d.D, d.F} {
		f.Add(uint8(0), b.data)
		f.Add(uint8(1), b.data)
		f.Add(uint8(2), b.data)
	}
	codecs := []uint64{cid.DagCBOR, cid.DagProtobuf, cid.DagJSON, cid.Raw}
	f.Fuzz(func(t *testing.T, codec uint8, data []byte) {
		mh, _ := multihash.Sum(data, multihash.SHA2_256, -1)
		c := cid.NewCidV1(codecs[int(codec)%len(codecs)], mh)
		links(c, data)
		unixfsNode(c, data)
	})
}

// FuzzParseSection decodes arbitrary bytes as the CAR section the index
// points at.
func FuzzParseSection(f *testing.F) {
	b := rawBlock(f, []byte("hello section"))
	var sec bytes.Buffer
	carv1.WriteBlock(&sec, b.c, b.data)
	f.Add(sec.Bytes(), uint64(len(b.data)))
	f.Add(sec.Bytes()[:10], uint64(len(b.data)))
	f.Fuzz(func(t *testing.T, data []byte, size uint64) {
		got, err := parseSection(data, size, b.c)
		if err == nil && !bytes.Equal(got, b.data) {
			t.Fatalf("accepted data %q for %s", got, b.c)
		}
	})
}

// FuzzEntityBytes parses arbitrary entity-bytes values as the gateway
// does and resolves them against arbitrary file sizes for rangeCAR: an
// error, no range, or a range inside the file, never a panic.
func FuzzEntityBytes(f *testing.F) {
	for _, s := range []string{"0:*", "10:20", "-1024:*", "499:-1000", "5:2", "abc", ""} {
		f.Add(s, uint64(1234))
	}
	f.Fuzz(func(t *testing.T, s string, size uint64) {
		r, err := gateway.NewDagByteRange(s)
		if err != nil {
			return
		}
		from, to, ok := resolveRange(r, size)
		if !ok {
			return
		}
		if from > to || to >= size {
			t.Fatalf("%q of %d: range %d-%d", s, size, from, to)
		}
		if r.From >= 0 && from != uint64(r.From) {
			t.Fatalf("%q of %d: starts at %d", s, size, from)
		}
		if r.To == nil && to != size-1 {
			t.Fatalf("%q of %d: ends at %d", s, size, to)
		}
	})
}

// FuzzResolveReceived feeds arbitrary bytes as a gateway's answer to a
// path request: reading and walking them gives an error or a CID, never a
// panic, and a CID only if the path really leads there.
func FuzzResolveReceived(f *testing.F) {
	tr := makeTree(f)
	all := tr.blocks()
	f.Add(carOf(f, tr.root, all), "dir/sub/file.bin")
	f.Add(carOf(f, tr.root, all), "hamt/nested dir/x.bin")
	f.Add(carOf(f, tr.root, all[:2]), "dir/sub")
	f.Add([]byte{}, "raw.txt")
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		got, _, err := readPathBlocks(bytes.NewReader(data))
		if err != nil {
			return
		}
		root, ok := got[tr.root]
		if !ok {
			return
		}
		segs, err := splitContentPath(path)
		if err != nil || len(segs) == 0 {
			return
		}
		res, err := resolvePath(context.Background(), got, tr.root, root, segs)
		if err != nil {
			return
		}
		// The blocks are hash-checked, so they are the tree's own: the
		// walk must agree with one over the whole tree.
		want, err := resolvePath(context.Background(), receivedBlocks(blockMap(all)), tr.root, root, segs)
		if err != nil || !want.terminal.c.Equals(res.terminal.c) {
			t.Fatalf("%q resolved to %s over the blocks sent, %v over the tree (%v)", path, res.terminal.c, want.terminal.c, err)
		}
	})
}

func blockMap(bs []blk) map[cid.Cid][]byte {
	m := make(map[cid.Cid][]byte, len(bs))
	for _, b := range bs {
		m[b.c] = b.data
	}
	return m
}

// pieceDir is a directory that knows one block: the root, at an offset of
// one piece.
type pieceDir struct {
	root cid.Cid
	loc  index.Location
}

func (d pieceDir) PiecesContaining(_ context.Context, mh multihash.Multihash) ([]index.Location, error) {
	if bytes.Equal(mh, d.root.Hash()) {
		return []index.Location{d.loc}, nil
	}
	return nil, nil
}
func (pieceDir) FindSegment(context.Context, cid.Cid) ([]index.SegmentInfo, error) { return nil, nil }
func (pieceDir) Piece(context.Context, cid.Cid) (index.PieceInfo, error) {
	return index.PieceInfo{}, index.ErrNotFound
}

// FuzzDAGCAR feeds arbitrary bytes as the piece a whole DAG is streamed
// from, its root's section where the CAR header ends: the stream ends or
// fails, never panics, writes no more than the piece holds (plus the
// headers it writes itself), and a depth-first CAR comes out as it is.
func FuzzDAGCAR(f *testing.F) {
	d := makeDAG(f)
	dfs := carOf(f, d.C.c, []blk{d.C, d.D, d.F, d.L1, d.L2, d.L3})
	f.Add(dfs)
	f.Add(carOf(f, d.C.c, d.all()))
	f.Add(carOf(f, d.C.c, []blk{d.C, d.D, d.F}))
	f.Add(dfs[:len(dfs)-7])
	f.Fuzz(func(t *testing.T, data []byte) {
		pc := piece.CIDv1([32]byte{1})
		off := uint64(0)
		if l, k := binary.Uvarint(data); k > 0 && l < uint64(len(data)) {
			off = uint64(k) + l
		}
		dir := pieceDir{d.C.c, index.Location{PieceCID: pc, Offset: off, Size: uint64(len(d.C.data))}}
		src := &memSource{pieces: map[cid.Cid][]byte{pc: data}}
		var out bytes.Buffer
		_, err := newDAGCAR(context.Background(), NewBlockstore(dir, src), d.C.c).WriteTo(&out)
		if limit := len(data) + len(carv1.Header([]cid.Cid{d.C.c})) + 6*64; out.Len() > limit {
			t.Fatalf("%d bytes out of a %d-byte piece", out.Len(), len(data))
		}
		if bytes.Equal(data, dfs) && (err != nil || !bytes.Equal(out.Bytes(), dfs)) {
			t.Fatalf("the depth-first CAR came out as %d bytes (%v)", out.Len(), err)
		}
	})
}
