package index

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/piece"
)

func checkBlocks(t *testing.T, s *Service, pc cid.Cid, payload []byte, blocks []testBlock) {
	t.Helper()
	ctx := context.Background()
	for _, b := range blocks {
		locs, err := s.PiecesContaining(ctx, b.c.Hash())
		if err != nil {
			t.Fatal(err)
		}
		if len(locs) != 1 || !locs[0].PieceCID.Equals(pc) {
			t.Fatalf("block %s: locations %v", b.c, locs)
		}
		c, data := readSection(t, payload, locs[0].Offset, locs[0].Size)
		if !c.Equals(b.c) || !bytes.Equal(data, b.data) {
			t.Fatalf("block %s: offset %d reads %s", b.c, locs[0].Offset, c)
		}
		l, err := s.BlockLocation(ctx, pc, b.c.Hash())
		if err != nil || l != locs[0] {
			t.Fatalf("BlockLocation %v %v, want %v", l, err, locs[0])
		}
	}
}

func TestIndexPieceCARv1(t *testing.T) {
	ctx := context.Background()
	s := New(openDB(t), nil, WithBatchSize(37)) // several batches
	carBytes, blocks := makeCAR(t, 500, 1)
	pc, payload := pieceOf(t, carBytes)

	if ok, err := s.IsIndexed(ctx, pc); err != nil || ok {
		t.Fatalf("IsIndexed before = %v, %v", ok, err)
	}
	res, err := s.IndexPiece(ctx, pc, bytes.NewReader(payload), int64(len(payload)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocks != 500 || len(res.Roots) != 1 || !res.Roots[0].Equals(blocks[0].c) || len(res.Segments) != 0 {
		t.Fatalf("result %+v", res)
	}
	if ok, err := s.IsIndexed(ctx, pc); err != nil || !ok {
		t.Fatalf("IsIndexed = %v, %v", ok, err)
	}
	checkBlocks(t, s, pc, payload, blocks)

	var got []string
	for mh, err := range s.PieceBlocks(ctx, pc) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(mh))
	}
	var want []string
	for _, b := range blocks {
		want = append(want, string(b.c.Hash()))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("PieceBlocks gave %d multihashes, want %d", len(got), len(want))
	}

	pieces, err := s.PiecesWithRoot(ctx, blocks[0].c)
	if err != nil || len(pieces) != 1 || !pieces[0].Equals(pc) {
		t.Fatalf("PiecesWithRoot = %v, %v", pieces, err)
	}
	info, err := s.Piece(ctx, pc)
	if err != nil || info.State != "indexed" || info.Blocks != 500 || info.Aggregate {
		t.Fatalf("Piece = %+v, %v", info, err)
	}

	// Indexing again replaces, never duplicates.
	if _, err := s.IndexCAR(ctx, pc, bytes.NewReader(carBytes)); err != nil {
		t.Fatal(err)
	}
	checkBlocks(t, s, pc, payload, blocks)

	if err := s.RemovePiece(ctx, pc); err != nil {
		t.Fatal(err)
	}
	locs, err := s.PiecesContaining(ctx, blocks[3].c.Hash())
	if err != nil || len(locs) != 0 {
		t.Fatalf("after remove: %v %v", locs, err)
	}
	if _, err := s.BlockLocation(ctx, pc, blocks[3].c.Hash()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("BlockLocation after remove: %v", err)
	}
	for _, err := range s.PieceBlocks(ctx, pc) {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("PieceBlocks after remove: %v", err)
		}
	}
	if err := s.RemovePiece(ctx, pc); err != nil {
		t.Fatalf("second remove: %v", err)
	}
}

func TestIndexCARv2(t *testing.T) {
	ctx := context.Background()
	s := New(openDB(t), nil)
	v1, blocks := makeCAR(t, 50, 2)
	var v2 bytes.Buffer
	if err := car.WrapV1(bytes.NewReader(v1), &v2); err != nil {
		t.Fatal(err)
	}
	pc, payload := pieceOf(t, v2.Bytes())
	res, err := s.IndexPiece(ctx, pc, bytes.NewReader(payload), int64(v2.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocks != 50 {
		t.Fatalf("blocks %d", res.Blocks)
	}
	checkBlocks(t, s, pc, payload, blocks)
}

func TestTwoPiecesShareBlocks(t *testing.T) {
	ctx := context.Background()
	s := New(openDB(t), nil)
	carBytes, blocks := makeCAR(t, 20, 3)
	pc1, p1 := pieceOf(t, carBytes)
	// A second piece: the same blocks and one more.
	other, _ := makeCAR(t, 21, 3)
	pc2, p2 := pieceOf(t, other)
	if pc1.Equals(pc2) {
		t.Fatal("pieces should differ")
	}
	for _, p := range []struct {
		c cid.Cid
		b []byte
	}{{pc1, p1}, {pc2, p2}} {
		if _, err := s.IndexPiece(ctx, p.c, bytes.NewReader(p.b), int64(len(p.b))); err != nil {
			t.Fatal(err)
		}
	}
	locs, err := s.PiecesContaining(ctx, blocks[5].c.Hash())
	if err != nil || len(locs) != 2 {
		t.Fatalf("locations %v %v", locs, err)
	}
	if err := s.RemovePiece(ctx, pc1); err != nil {
		t.Fatal(err)
	}
	locs, _ = s.PiecesContaining(ctx, blocks[5].c.Hash())
	if len(locs) != 1 || !locs[0].PieceCID.Equals(pc2) {
		t.Fatalf("after removing one: %v", locs)
	}
}

func TestIndexBadInput(t *testing.T) {
	ctx := context.Background()
	s := New(openDB(t), nil, WithBatchSize(5))
	carBytes, blocks := makeCAR(t, 40, 4)
	pc, _ := pieceOf(t, carBytes)

	// Truncated in the middle of a block: an error, and nothing kept.
	cut := carBytes[:len(carBytes)-7]
	if _, err := s.IndexCAR(ctx, pc, bytes.NewReader(cut)); err == nil {
		t.Fatal("truncated CAR indexed")
	}
	if ok, _ := s.IsIndexed(ctx, pc); ok {
		t.Fatal("failed piece reported indexed")
	}
	info, err := s.Piece(ctx, pc)
	if err != nil || info.State != "failed" || info.Error == "" {
		t.Fatalf("Piece after failure: %+v %v", info, err)
	}
	if locs, _ := s.PiecesContaining(ctx, blocks[0].c.Hash()); len(locs) != 0 {
		t.Fatalf("rows left after failure: %v", locs)
	}
	var n int
	s.db.QueryRow(`SELECT count(*) FROM index_blocks`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d rows left", n)
	}

	for _, bad := range [][]byte{nil, []byte("not a car"), bytes.Repeat([]byte{0xff}, 100)} {
		if _, err := s.IndexCAR(ctx, pc, bytes.NewReader(bad)); err == nil {
			t.Fatalf("indexed %q", bad)
		}
	}
	if _, err := s.IndexCAR(ctx, blocks[0].c, bytes.NewReader(carBytes)); err == nil {
		t.Fatal("accepted a non-piece CID")
	}

	// A cancelled context stops indexing with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.IndexCAR(cctx, pc, bytes.NewReader(carBytes)); err == nil {
		t.Fatal("indexed with a cancelled context")
	}
}

type fakePiece struct {
	*bytes.Reader
	closed *bool
}

func (f fakePiece) Close() error { *f.closed = true; return nil }

func TestRebuild(t *testing.T) {
	ctx := context.Background()
	carBytes, blocks := makeCAR(t, 30, 5)
	pc, payload := pieceOf(t, carBytes)
	closed := false
	src := PieceSourceFunc(func(ctx context.Context, c cid.Cid) (PieceReader, error) {
		if !c.Equals(pc) {
			return nil, ErrNoUnsealedCopy
		}
		return fakePiece{bytes.NewReader(payload), &closed}, nil
	})
	s := New(openDB(t), src)
	if _, err := s.Rebuild(ctx, pc); err != nil {
		t.Fatal(err)
	}
	if !closed {
		t.Fatal("piece reader not closed")
	}
	checkBlocks(t, s, pc, payload, blocks)
	other, _ := pieceOf(t, []byte("other"))
	if _, err := s.Rebuild(ctx, other); !errors.Is(err, ErrNoUnsealedCopy) {
		t.Fatalf("Rebuild of unknown piece: %v", err)
	}
	if _, err := New(openDB(t), nil).Rebuild(ctx, pc); err == nil || !strings.Contains(err.Error(), "no piece source") {
		t.Fatalf("Rebuild without source: %v", err)
	}
	list, err := s.Pieces(ctx)
	if err != nil || len(list) != 1 || !list[0].PieceCID.Equals(pc) {
		t.Fatalf("Pieces = %v %v", list, err)
	}
}

var _ io.ReaderAt = fakePiece{}
var _ = multihash.SHA2_256

// BenchmarkIndex indexes a CAR of 100,000 small blocks per iteration.
func BenchmarkIndex(b *testing.B) {
	ctx := context.Background()
	carBytes, _ := makeCAR(b, 100_000, 99)
	pc, _ := pieceOf(b, carBytes)
	s := New(openDB(b), nil)
	b.SetBytes(int64(len(carBytes)))
	b.ResetTimer()
	for b.Loop() {
		res, err := s.IndexCAR(ctx, pc, bytes.NewReader(carBytes))
		if err != nil || res.Blocks != 100_000 {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(100_000*b.N)/b.Elapsed().Seconds(), "blocks/s")
}

// gatedReaderAt lets reads through until one starts at gateAt or later
// (but before tail, where the data segment index is looked for first),
// which waits for open to close.
type gatedReaderAt struct {
	r      io.ReaderAt
	gateAt int64
	tail   int64
	open   chan struct{}
	once   sync.Once
	held   chan struct{}
}

func (g *gatedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= g.gateAt && off < g.tail {
		g.once.Do(func() { close(g.held) })
		<-g.open
	}
	return g.r.ReadAt(p, off)
}

// An indexing run shows how far it has read while it runs.
func TestIndexProgress(t *testing.T) {
	ctx := context.Background()
	s := New(openDB(t), nil)
	carBytes, _ := makeCAR(t, 30000, 4) // several reads of the indexer
	pc, payload := pieceOf(t, carBytes)
	n := int64(len(payload))
	g := &gatedReaderAt{r: bytes.NewReader(payload), gateAt: n / 2, tail: n - 64<<10, open: make(chan struct{}), held: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := s.IndexPiece(ctx, pc, g, int64(len(payload)))
		done <- err
	}()
	<-g.held
	pi, err := s.Piece(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	if pi.State != stateIndexing || pi.BytesRead < n/4 || pi.BytesRead >= g.tail || pi.BytesTotal != n {
		t.Fatalf("while indexing: %+v (gate at %d of %d)", pi, g.gateAt, len(payload))
	}
	if list, err := s.Pieces(ctx); err != nil || len(list) != 1 || list[0].BytesRead != pi.BytesRead {
		t.Fatalf("Pieces while indexing: %+v, %v", list, err)
	}
	close(g.open)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pi, err = s.Piece(ctx, pc); err != nil || pi.State != stateIndexed || pi.BytesRead != 0 || pi.BytesTotal != 0 {
		t.Fatalf("after indexing: %+v, %v", pi, err)
	}
}

// A piece is indexed by its CID v1; its sizes, recorded beside it, make its
// CID v2, which Piece and Pieces show.
func TestPieceSizesMakeCIDv2(t *testing.T) {
	ctx := context.Background()
	s := New(openDB(t), nil)
	carBytes, _ := makeCAR(t, 20, 3)
	pc, payload := pieceOf(t, carBytes)
	if err := s.SetPieceSizes(ctx, pc, 4096, uint64(len(carBytes))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("sizes of a piece not indexed: %v", err)
	}
	if _, err := s.IndexPiece(ctx, pc, bytes.NewReader(payload), int64(len(payload))); err != nil {
		t.Fatal(err)
	}
	pi, err := s.Piece(ctx, pc)
	if err != nil || pi.PieceCIDv2.Defined() || pi.PieceSize != 0 {
		t.Fatalf("before the sizes: %+v %v", pi, err)
	}
	size := abi.PaddedPieceSize(len(payload) + len(payload)/127)
	if err := s.SetPieceSizes(ctx, pc, size, uint64(len(carBytes))); err != nil {
		t.Fatal(err)
	}
	want, err := piece.V1ToV2(pc, uint64(len(carBytes)), size)
	if err != nil {
		t.Fatal(err)
	}
	pi, err = s.Piece(ctx, pc)
	if err != nil || !pi.PieceCIDv2.Equals(want) || pi.RawSize != uint64(len(carBytes)) || pi.PieceSize != size {
		t.Fatalf("after the sizes: %+v %v; want v2 %s", pi, err, want)
	}
	all, err := s.Pieces(ctx)
	if err != nil || len(all) != 1 || !all[0].PieceCIDv2.Equals(want) {
		t.Fatalf("Pieces: %+v %v", all, err)
	}
	// Indexing again keeps them; sizes that make no v2 are refused.
	if _, err := s.IndexPiece(ctx, pc, bytes.NewReader(payload), int64(len(payload))); err != nil {
		t.Fatal(err)
	}
	if pi, _ = s.Piece(ctx, pc); !pi.PieceCIDv2.Equals(want) {
		t.Fatalf("re-indexed: %+v", pi)
	}
	if err := s.SetPieceSizes(ctx, pc, size, uint64(size)); err == nil {
		t.Fatal("a payload larger than the piece was recorded")
	}
}
