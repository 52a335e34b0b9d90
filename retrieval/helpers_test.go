package retrieval

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	basicnode "github.com/ipld/go-ipld-prime/node/basic"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/internal/carv1"
	"github.com/ferry-fil/ferry/piece"
)

// dag is a small mixed DAG:
//
//	C (dag-cbor) → D (UnixFS dir) → F (UnixFS file) → L1, L2 (raw)
//	                              → L3 (raw)
type dag struct {
	C, D, F, L1, L2, L3 blk
}

func (d dag) all() []blk { return []blk{d.L3, d.F, d.C, d.L1, d.D, d.L2} } // not DFS on purpose

func rawBlock(t testing.TB, data []byte) blk {
	mh, err := multihash.Sum(data, multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return blk{cid.NewCidV1(cid.Raw, mh), data}
}

func makeDAG(t testing.TB) dag {
	var d dag
	d.L1 = rawBlock(t, bytes.Repeat([]byte("one "), 100))
	d.L2 = rawBlock(t, bytes.Repeat([]byte("two "), 50))
	d.L3 = rawBlock(t, []byte("three"))
	fsn := unixfs.NewFSNode(unixfs.TFile)
	fsn.AddBlockSize(uint64(len(d.L1.data)))
	fsn.AddBlockSize(uint64(len(d.L2.data)))
	fb, err := fsn.GetBytes()
	if err != nil {
		t.Fatal(err)
	}
	f := merkledag.NodeWithData(fb)
	f.SetCidBuilder(merkledag.V1CidPrefix())
	f.AddRawLink("", link(d.L1))
	f.AddRawLink("", link(d.L2))
	d.F = blk{f.Cid(), f.RawData()}
	dir := merkledag.NodeWithData(unixfs.FolderPBData())
	dir.SetCidBuilder(merkledag.V1CidPrefix())
	dir.AddRawLink("a", link(d.F))
	dir.AddRawLink("b", link(d.L3))
	d.D = blk{dir.Cid(), dir.RawData()}
	n, err := qp.BuildMap(basicnode.Prototype.Any, 2, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "dir", qp.Link(cidlink.Link{Cid: d.D.c}))
		qp.MapEntry(ma, "x", qp.Int(1))
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := dagcbor.Encode(n, &buf); err != nil {
		t.Fatal(err)
	}
	mh, _ := multihash.Sum(buf.Bytes(), multihash.SHA2_256, -1)
	d.C = blk{cid.NewCidV1(cid.DagCBOR, mh), buf.Bytes()}
	return d
}

// carOf returns a CARv1 of blocks with the given root.
func carOf(t testing.TB, root cid.Cid, blocks []blk) []byte {
	var buf bytes.Buffer
	carv1.WriteHeader(&buf, []cid.Cid{root})
	for _, b := range blocks {
		carv1.WriteBlock(&buf, b.c, b.data)
	}
	return buf.Bytes()
}

// memSource serves unpadded pieces from memory.
type memSource struct {
	mu       sync.Mutex
	pieces   map[cid.Cid][]byte
	sealed   map[cid.Cid]bool // known but without an unsealed copy
	unseal   map[cid.Cid]bool // its unsealed copy is being made
	openings int
	// likeSealing answers ErrNoUnsealedCopy for unknown pieces too, as
	// sealing.ReadPiece does.
	likeSealing bool
}

type memPiece struct{ *bytes.Reader }

func (memPiece) Close() error { return nil }

func (m *memSource) ReadPiece(ctx context.Context, pc cid.Cid) (index.PieceReader, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.openings++
	if m.sealed[pc] {
		return nil, fmt.Errorf("piece %s: %w", pc, index.ErrNoUnsealedCopy)
	}
	if m.unseal[pc] {
		return nil, fmt.Errorf("piece %s: unsealing since a minute: %w", pc, index.ErrUnsealing)
	}
	b, ok := m.pieces[pc]
	if !ok && m.likeSealing {
		return nil, fmt.Errorf("piece %s: %w", pc, index.ErrNoUnsealedCopy)
	}
	if !ok {
		return nil, fmt.Errorf("piece %s: %w", pc, index.ErrNotFound)
	}
	return memPiece{bytes.NewReader(b)}, nil
}

type fixture struct {
	dag     dag
	tree    *unixfsTree // in the same piece as dag
	payload []byte      // unpadded piece
	pc      cid.Cid
	idx     *index.Service
	src     *memSource
	srv     *httptest.Server
	db      *sql.DB
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{dag: makeDAG(t), tree: makeTree(t), src: &memSource{pieces: map[cid.Cid][]byte{}, sealed: map[cid.Cid]bool{}, unseal: map[cid.Cid]bool{}}}
	carBytes := carOf(t, f.dag.C.c, append(f.dag.all(), f.tree.blocks()...))
	calc := piece.NewCalc()
	calc.Write(carBytes)
	comm, err := calc.Sum()
	if err != nil {
		t.Fatal(err)
	}
	f.pc = comm.CID()
	f.payload = make([]byte, piece.UnpaddedSizeFor(uint64(len(carBytes))))
	copy(f.payload, carBytes)
	f.src.pieces[f.pc] = f.payload
	if f.db, err = db.Open(ctx, filepath.Join(t.TempDir(), "ferry.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	f.idx = index.New(f.db, f.src)
	if _, err := f.idx.Rebuild(ctx, f.pc); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(newServer(t, f.idx, f.src))
	t.Cleanup(f.srv.Close)
	return f
}

func link(b blk) *format.Link { return &format.Link{Cid: b.c, Size: uint64(len(b.data))} }

// newServer returns the retrieval handler over dir and src.
func newServer(t testing.TB, dir Directory, src index.PieceSource, opts ...Option) *Server {
	t.Helper()
	s, err := New(dir, src, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
