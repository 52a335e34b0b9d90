package retrieval

import (
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

	"github.com/ferry-fil/ferry/index"
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
	srv := httptest.NewServer(New(nil, src))
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
