package retrieval

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
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

// countingDir counts the index lookups of blocks.
type countingDir struct {
	Directory
	lookups atomic.Int64
}

func (d *countingDir) PiecesContaining(ctx context.Context, mh multihash.Multihash) ([]index.Location, error) {
	d.lookups.Add(1)
	return d.Directory.PiecesContaining(ctx, mh)
}

// carPiece stores carBytes as the payload of an indexed piece and returns
// the directory, the source and servers over them: the default one (whole
// DAGs streamed by dagCAR) and one with boxo's traversal for everything.
func carPiece(t testing.TB, carBytes []byte) (dir *countingDir, src *memSource, ours, lib *httptest.Server) {
	t.Helper()
	ctx := context.Background()
	calc := piece.NewCalc()
	calc.Write(carBytes)
	comm, err := calc.Sum()
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, piece.UnpaddedSizeFor(uint64(len(carBytes))))
	copy(payload, carBytes)
	src = &memSource{pieces: map[cid.Cid][]byte{comm.CID(): payload}}
	sqldb, err := db.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	idx := index.New(sqldb, src)
	if _, err := idx.Rebuild(ctx, comm.CID()); err != nil {
		t.Fatal(err)
	}
	dir = &countingDir{Directory: idx}
	ours = httptest.NewServer(newServer(t, dir, src))
	t.Cleanup(ours.Close)
	lib = httptest.NewServer(newServer(t, idx, src, WithLibraryOnly()))
	t.Cleanup(lib.Close)
	return dir, src, ours, lib
}

// cborBlock encodes a DAG-CBOR map of links (and a number, so that two
// maps of the same links differ) as a block.
func cborBlock(t testing.TB, n int64, ls ...cid.Cid) blk {
	nd, err := qp.BuildMap(basicnode.Prototype.Any, int64(len(ls)+1), func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "n", qp.Int(n))
		for i, l := range ls {
			qp.MapEntry(ma, fmt.Sprintf("l%d", i), qp.Link(cidlink.Link{Cid: l}))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := dagcbor.Encode(nd, &buf); err != nil {
		t.Fatal(err)
	}
	mh, _ := multihash.Sum(buf.Bytes(), multihash.SHA2_256, -1)
	return blk{cid.NewCidV1(cid.DagCBOR, mh), buf.Bytes()}
}

// identityOf inlines b in an identity CID of its codec.
func identityOf(t testing.TB, b blk) cid.Cid {
	mh, err := multihash.Sum(b.data, multihash.IDENTITY, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(b.c.Type(), mh)
}

// TestDAGCARMatchesLibrary serves whole DAGs from pieces whose CARs hold
// the blocks in depth-first order, in another order, with duplicates,
// with identity CIDs written as blocks, with another DAG's blocks in
// between and with blocks larger than a read chunk: the CAR streamed from
// the sections is byte for byte what boxo's traversal sends, it holds no
// identity CID, and a CAR stored in order is read without a lookup per
// block.
func TestDAGCARMatchesLibrary(t *testing.T) {
	d := makeDAG(t)
	dfs := []blk{d.C, d.D, d.F, d.L1, d.L2, d.L3}

	// A DAG-CBOR root linking twice to L1, and to an identity CID that
	// inlines a DAG-CBOR node linking to L2 and to an identity raw block.
	idRaw := identityOf(t, rawBlock(t, []byte("inline")))
	inner := cborBlock(t, 1, d.L2.c, idRaw)
	idInner := identityOf(t, inner)
	top := cborBlock(t, 2, d.L1.c, idInner, d.L1.c, d.L3.c)
	other := rawBlock(t, []byte("another DAG's block"))

	var big bytes.Buffer
	bigDAG, err := carv1.WriteFileDAG(&big, 5<<20+123, 1<<20+4567, 11) // leaves straddle read chunks
	if err != nil {
		t.Fatal(err)
	}
	var small bytes.Buffer
	smallDAG, err := carv1.WriteFileDAG(&small, 3<<20, 1000, 12) // thousands of sections per chunk
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name    string
		root    cid.Cid
		car     []byte
		inOrder bool // stored depth-first, each block once
	}{
		{"depth-first", d.C.c, carOf(t, d.C.c, dfs), true},
		{"shuffled", d.C.c, carOf(t, d.C.c, d.all()), false},
		{"duplicates", d.C.c, carOf(t, d.C.c, []blk{d.C, d.D, d.F, d.L1, d.L2, d.L1, d.L3}), false},
		{"identity sections", top.c, carOf(t, top.c, []blk{top, d.L1, {idInner, inner.data}, inner, d.L2, {idRaw, []byte("inline")}, d.L3}), false},
		{"another DAG between", d.C.c, carOf(t, d.C.c, []blk{d.C, d.D, other, d.F, d.L1, d.L2, d.L3}), false},
		{"large leaves", bigDAG.Root, big.Bytes(), true},
		{"small leaves", smallDAG.Root, small.Bytes(), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, _, ours, lib := carPiece(t, c.car)
			u := "/ipfs/" + c.root.String() + "?dag-scope=all"
			wantHdr, want := getCAR(t, lib.URL+u)
			dir.lookups.Store(0)
			gotHdr, got := getCAR(t, ours.URL+u)
			if !bytes.Equal(got, want) {
				_, gb := carRead(t, got)
				_, wb := carRead(t, want)
				t.Fatalf("streamed CAR of %d blocks differs from boxo's of %d", len(gb), len(wb))
			}
			for _, h := range []string{"Content-Type", "Etag", "Accept-Ranges", "X-Ipfs-Roots", "Content-Disposition"} {
				if gotHdr.Get(h) != wantHdr.Get(h) {
					t.Errorf("%s: %q, boxo %q", h, gotHdr.Get(h), wantHdr.Get(h))
				}
			}
			if gotHdr.Get("Accept-Ranges") != "none" {
				t.Errorf("Accept-Ranges %q on a CAR", gotHdr.Get("Accept-Ranges"))
			}
			_, blocks := carRead(t, got)
			for _, b := range blocks {
				if isIdentity(b.c) {
					t.Fatalf("identity CID %s written as a block", b.c)
				}
			}
			if n := dir.lookups.Load(); c.inOrder && n > 5 {
				t.Fatalf("%d index lookups for a CAR stored in order (%d blocks)", n, len(blocks))
			}
		})
	}
}

// getCAR GETs u as a CAR.
func getCAR(t *testing.T, u string) (http.Header, []byte) {
	t.Helper()
	resp, body := do(t, "GET", u, map[string]string{"Accept": CARContentType})
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %q", u, resp.Status, body)
	}
	return resp.Header, body
}

// TestDAGCARRead reads the stream through Read (a pipe from WriteTo) as
// well as WriteTo, and stops one half-way without leaving its goroutine.
func TestDAGCARRead(t *testing.T) {
	var buf bytes.Buffer
	dag, err := carv1.WriteFileDAG(&buf, 4<<20, 64<<10, 5)
	if err != nil {
		t.Fatal(err)
	}
	dir, src, _, _ := carPiece(t, buf.Bytes())
	ctx := context.Background()
	bs := NewBlockstore(dir, src)
	var viaWriteTo bytes.Buffer
	if _, err := newDAGCAR(ctx, bs, dag.Root).WriteTo(&viaWriteTo); err != nil {
		t.Fatal(err)
	}
	d := newDAGCAR(ctx, bs, dag.Root)
	viaRead, err := io.ReadAll(d)
	if err != nil || d.Close() != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(viaRead, viaWriteTo.Bytes()) || !bytes.Equal(viaRead, buf.Bytes()) {
		t.Fatalf("Read gave %d bytes, WriteTo %d, the stored CAR is %d", len(viaRead), viaWriteTo.Len(), buf.Len())
	}
	half := newDAGCAR(ctx, bs, dag.Root)
	if _, err := io.ReadFull(half, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := half.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRangeCARMatchesLibrary asks for entity-bytes ranges of UnixFS files
// (a deep tree of small chunks, a file of identical leaves, one with an
// identity leaf, large leaves): the CAR of rangeCAR is byte for byte what
// boxo sends, for ranges inside, across, before and past the file.
func TestRangeCARMatchesLibrary(t *testing.T) {
	tr := makeTree(t)
	var big bytes.Buffer
	bigDAG, err := carv1.WriteFileDAG(&big, 3<<20+99, 1<<20+7, 13)
	if err != nil {
		t.Fatal(err)
	}

	// A file of three identical leaves and an identity one.
	same := rawBlock(t, bytes.Repeat([]byte{0}, 100))
	idLeaf := identityOf(t, rawBlock(t, []byte("tail")))
	fsn := unixfs.NewFSNode(unixfs.TFile)
	pn := merkledag.NodeWithData(nil)
	pn.SetCidBuilder(merkledag.V1CidPrefix())
	for range 3 {
		fsn.AddBlockSize(100)
		pn.AddRawLink("", link(same))
	}
	fsn.AddBlockSize(4)
	pn.AddRawLink("", &format.Link{Cid: idLeaf, Size: 4})
	fb, err := fsn.GetBytes()
	if err != nil {
		t.Fatal(err)
	}
	pn.SetData(fb)
	repeated := blk{pn.Cid(), pn.RawData()}

	for _, c := range []struct {
		name string
		root cid.Cid
		size int
		car  []byte
	}{
		{"small chunks", tr.file, tr.fileLen, carOf(t, tr.root, tr.blocks())},
		{"identical leaves", repeated.c, 304, carOf(t, repeated.c, []blk{repeated, same})},
		{"large leaves", bigDAG.Root, int(bigDAG.Size), big.Bytes()},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, ours, lib := carPiece(t, c.car)
			n := c.size
			for _, eb := range []string{"0:0", "0:*", "1:1", fmt.Sprintf("%d:%d", n/3, n/2), fmt.Sprintf("%d:*", n-1),
				"-1:*", "-5:-2", fmt.Sprintf("0:%d", n+100), fmt.Sprintf("-%d:*", n*2), "199:200", "200:303", "300:302",
				"0:99", "100:199", "99:100", fmt.Sprintf("0:%d", 1<<20+6), fmt.Sprintf("%d:%d", 1<<20+7, 2<<20)} {
				u := "/ipfs/" + c.root.String() + "?dag-scope=entity&entity-bytes=" + eb
				wantHdr, want := getCAR(t, lib.URL+u)
				gotHdr, got := getCAR(t, ours.URL+u)
				if !bytes.Equal(got, want) {
					_, gb := carRead(t, got)
					_, wb := carRead(t, want)
					t.Fatalf("%s: range CAR of %d blocks differs from boxo's of %d", eb, len(gb), len(wb))
				}
				for _, h := range []string{"Content-Type", "Etag", "Accept-Ranges", "X-Ipfs-Roots"} {
					if gotHdr.Get(h) != wantHdr.Get(h) {
						t.Errorf("%s %s: %q, boxo %q", eb, h, gotHdr.Get(h), wantHdr.Get(h))
					}
				}
			}
		})
	}
}

// readCounter counts the bytes read from the pieces of src.
type readCounter struct {
	src index.PieceSource
	n   atomic.Int64
}

type countedPiece struct {
	index.PieceReader
	n *atomic.Int64
}

func (c countedPiece) ReadAt(p []byte, off int64) (int, error) {
	k, err := c.PieceReader.ReadAt(p, off)
	c.n.Add(int64(k))
	return k, err
}

func (r *readCounter) ReadPiece(ctx context.Context, pc cid.Cid) (index.PieceReader, error) {
	pr, err := r.src.ReadPiece(ctx, pc)
	if err != nil {
		return nil, err
	}
	return countedPiece{pr, &r.n}, nil
}

// TestHeadWholeDAG answers HEAD of a whole DAG with the GET's headers,
// reading the piece no further than its first chunk.
func TestHeadWholeDAG(t *testing.T) {
	var buf bytes.Buffer
	dag, err := carv1.WriteFileDAG(&buf, 6<<20, 256<<10, 9)
	if err != nil {
		t.Fatal(err)
	}
	dir, src, ours, _ := carPiece(t, buf.Bytes())
	rc := &readCounter{src: src}
	srv := httptest.NewServer(newServer(t, dir, rc))
	defer srv.Close()
	u := "/ipfs/" + dag.Root.String() + "?format=car&dag-scope=all"
	get, _ := do(t, "GET", ours.URL+u, nil)
	head, body := do(t, "HEAD", srv.URL+u, nil)
	if head.StatusCode != 200 || len(body) != 0 {
		t.Fatalf("HEAD: %s, %d bytes", head.Status, len(body))
	}
	for _, h := range []string{"Content-Type", "Etag", "Accept-Ranges", "X-Ipfs-Roots", "Content-Disposition"} {
		if head.Header.Get(h) != get.Header.Get(h) || head.Header.Get(h) == "" {
			t.Errorf("HEAD %s %q, GET %q", h, head.Header.Get(h), get.Header.Get(h))
		}
	}
	if head.Header.Get("X-Stream-Error") != "" {
		t.Errorf("HEAD has X-Stream-Error %q", head.Header.Get("X-Stream-Error"))
	}
	if n := rc.n.Load(); n > 2<<20 {
		t.Fatalf("HEAD read %d bytes of a %d-byte CAR", n, buf.Len())
	}
}
