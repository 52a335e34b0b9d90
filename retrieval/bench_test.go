package retrieval

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/internal/carv1"
	"github.com/ferry-fil/ferry/piece"
)

// fr32Piece reads a piece stored fr32-padded at the start of a file through
// piece.UnpadRange, as the sealing subsystem does.
type fr32Piece struct {
	f    *os.File
	size int64
}

func (u *fr32Piece) ReadAt(p []byte, off int64) (int, error) {
	if off >= u.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), u.size-off)
	n, err := io.ReadFull(piece.UnpadRange(u.f, 0, uint64(off), uint64(want)), p[:want])
	if err == nil && want < int64(len(p)) {
		err = io.EOF
	}
	return n, err
}

func (u *fr32Piece) Close() error { return nil }
func (u *fr32Piece) Size() int64  { return u.size }

// unsealedFile writes a random piece of padded size size, fr32-padded, to a
// file and returns its CID and a source reading it.
func unsealedFile(b testing.TB, size abi.PaddedPieceSize) (cid.Cid, index.PieceSource) {
	path := filepath.Join(b.TempDir(), "unsealed")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	pw := piece.NewPadWriter(f)
	calc := piece.NewCalc()
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 127<<13)
	for left := int64(size.Unpadded()); left > 0; left -= int64(len(buf)) {
		rng.Read(buf)
		pw.Write(buf)
		calc.Write(buf)
	}
	if err := pw.Close(); err != nil {
		b.Fatal(err)
	}
	comm, err := calc.Sum()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return comm.CID(), index.PieceSourceFunc(func(ctx context.Context, c cid.Cid) (index.PieceReader, error) {
		if !c.Equals(comm.CID()) {
			return nil, fmt.Errorf("%s: %w", c, index.ErrNotFound)
		}
		return &fr32Piece{f, int64(size.Unpadded())}, nil
	})
}

// BenchmarkServePiece serves a 128 MiB piece from an fr32 file over
// loopback.
func BenchmarkServePiece(b *testing.B) {
	const size = 128 << 20
	pc, src := unsealedFile(b, size)
	srv := httptest.NewServer(newServer(b, nil, src))
	defer srv.Close()
	b.SetBytes(int64(abi.PaddedPieceSize(size).Unpadded()))
	for b.Loop() {
		resp, err := http.Get(srv.URL + "/piece/" + pc.String())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

// dagPiece stores the CAR of a UnixFS file of about size bytes as an
// fr32-padded piece of padded size psize, indexes it and returns the
// file's DAG, the CAR's length and a server over it.
func dagPiece(b *testing.B, psize abi.PaddedPieceSize, opts ...Option) (carv1.FileDAG, cid.Cid, int64, *httptest.Server) {
	ctx := context.Background()
	payload := int64(psize.Unpadded())
	path := filepath.Join(b.TempDir(), "unsealed")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	pw := piece.NewPadWriter(f)
	calc := piece.NewCalc()
	var car bytes.Buffer
	dag, err := carv1.WriteFileDAG(&car, uint64(payload-payload/64), 256<<10, 3)
	if err != nil {
		b.Fatal(err)
	}
	carLen := int64(car.Len())
	car.Write(make([]byte, payload-carLen))
	pw.Write(car.Bytes())
	calc.Write(car.Bytes())
	if err := pw.Close(); err != nil {
		b.Fatal(err)
	}
	comm, err := calc.Sum()
	if err != nil {
		b.Fatal(err)
	}
	pc := comm.CID()
	src := index.PieceSourceFunc(func(ctx context.Context, c cid.Cid) (index.PieceReader, error) {
		if !c.Equals(pc) {
			return nil, fmt.Errorf("%s: %w", c, index.ErrNotFound)
		}
		return &fr32Piece{f, payload}, nil
	})
	sqldb, err := db.Open(ctx, filepath.Join(b.TempDir(), "ferry.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sqldb.Close() })
	idx := index.New(sqldb, src)
	if _, err := idx.Rebuild(ctx, pc); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(newServer(b, idx, src, opts...))
	b.Cleanup(srv.Close)
	return dag, pc, carLen, srv
}

func benchGet(b *testing.B, u, accept string, want int64) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || want >= 0 && n != want {
		b.Fatalf("GET %s: %s, %d bytes (%v), want %d", u, resp.Status, n, err, want)
	}
}

// BenchmarkServeDAG serves the whole DAG of a 128 MiB piece as a CAR,
// through the stream of sections (ferry) and through boxo's traversal,
// and the same piece through /piece/, over loopback. The target: ferry at
// 80% of piece or more.
func BenchmarkServeDAG(b *testing.B) {
	const size = 128 << 20
	for _, bc := range []struct {
		name string
		opts []Option
	}{{"ferry", nil}, {"boxo", []Option{WithLibraryOnly()}}} {
		b.Run(bc.name, func(b *testing.B) {
			dag, _, carLen, srv := dagPiece(b, size, bc.opts...)
			b.SetBytes(carLen)
			for b.Loop() {
				benchGet(b, srv.URL+"/ipfs/"+dag.Root.String()+"?dag-scope=all", CARContentType, carLen)
			}
		})
	}
	b.Run("piece", func(b *testing.B) {
		_, pc, _, srv := dagPiece(b, size)
		b.SetBytes(int64(abi.PaddedPieceSize(size).Unpadded()))
		for b.Loop() {
			benchGet(b, srv.URL+"/piece/"+pc.String(), "", int64(abi.PaddedPieceSize(size).Unpadded()))
		}
	})
}

// BenchmarkServeRange serves 1 MiB entity-bytes ranges of a file in a
// 128 MiB piece, near its start and near its end, through rangeCAR
// (ferry) and through boxo's traversal.
func BenchmarkServeRange(b *testing.B) {
	const size = 128 << 20
	for _, bc := range []struct {
		name string
		opts []Option
	}{{"ferry", nil}, {"boxo", []Option{WithLibraryOnly()}}} {
		for _, at := range []string{"start", "end"} {
			b.Run(bc.name+"/"+at, func(b *testing.B) {
				dag, _, _, srv := dagPiece(b, size, bc.opts...)
				from := uint64(0)
				if at == "end" {
					from = dag.Size - 2<<20
				}
				u := fmt.Sprintf("%s/ipfs/%s?dag-scope=entity&entity-bytes=%d:%d", srv.URL, dag.Root, from, from+1<<20-1)
				b.SetBytes(1 << 20)
				for b.Loop() {
					benchGet(b, u, CARContentType, -1)
				}
			})
		}
	}
}
