package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/retrieval"
)

// retrievalCommand compares serving a piece from an fr32-padded unsealed
// file through the retrieval handler with net/http's FileServer serving the
// same payload bytes from a plain file, both over loopback, in alternating
// rounds.
func retrievalCommand() *cli.Command {
	return &cli.Command{
		Name:  "retrieval",
		Usage: "GET /piece/ from an unsealed (fr32) file vs http.FileServer on the unpadded bytes (target ratio >= 0.7)",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "size", Value: 1 << 30, Usage: "padded piece size (a power of two)"},
			&cli.IntFlag{Name: "rounds", Value: 5, Usage: "rounds; each runs both downloads, in alternating order"},
			&cli.StringFlag{Name: "dir", Usage: "directory for the files (default: a new temporary directory)"},
		},
		Action: func(cctx *cli.Context) error {
			return benchRetrieval(cctx.Context, abi.PaddedPieceSize(cctx.Uint64("size")), cctx.Int("rounds"), cctx.String("dir"))
		},
	}
}

// unsealedPiece reads the payload of a piece stored fr32-padded at the
// start of a file, as the sealing subsystem's ReadPiece does.
type unsealedPiece struct {
	f    *os.File
	size int64 // unpadded
}

func (u *unsealedPiece) ReadAt(p []byte, off int64) (int, error) {
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

func (u *unsealedPiece) Close() error { return nil }
func (u *unsealedPiece) Size() int64  { return u.size }

// noSegments is a piece directory without aggregates.
type noSegments struct{}

func (noSegments) PiecesContaining(context.Context, multihash.Multihash) ([]index.Location, error) {
	return nil, nil
}
func (noSegments) FindSegment(context.Context, cid.Cid) ([]index.SegmentInfo, error) { return nil, nil }
func (noSegments) Piece(_ context.Context, c cid.Cid) (index.PieceInfo, error) {
	return index.PieceInfo{}, index.ErrNotFound
}

func benchRetrieval(ctx context.Context, size abi.PaddedPieceSize, rounds int, dir string) error {
	if err := piece.ValidatePadded(size); err != nil {
		return err
	}
	if rounds <= 0 {
		return errors.New("retrieval: rounds must be positive")
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "ferry-bench-retrieval-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	plainDir := filepath.Join(dir, "plain")
	if err := os.MkdirAll(plainDir, 0o755); err != nil {
		return err
	}
	plainPath := filepath.Join(plainDir, "piece")
	unsealedPath := filepath.Join(dir, "unsealed")

	// The payload: random bytes, the piece's whole unpadded capacity.
	start := time.Now()
	plain, err := os.Create(plainPath)
	if err != nil {
		return err
	}
	defer os.Remove(plainPath)
	unsealed, err := os.Create(unsealedPath)
	if err != nil {
		plain.Close()
		return err
	}
	defer os.Remove(unsealedPath)
	calc := piece.NewCalc()
	pw := piece.NewPadWriter(unsealed)
	rng := rand.NewChaCha8([32]byte{7})
	buf := make([]byte, 127<<13)
	for left := int64(size.Unpadded()); left > 0; {
		b := buf[:min(int64(len(buf)), left)]
		rng.Read(b)
		for _, w := range []io.Writer{plain, pw, calc} {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		left -= int64(len(b))
	}
	if err := pw.Close(); err != nil {
		return err
	}
	plain.Close()
	if err := unsealed.Sync(); err != nil {
		return err
	}
	comm, err := calc.Sum()
	if err != nil {
		return err
	}
	pc := comm.CID()
	fmt.Printf("prepared a %d-byte piece %s (unsealed file %d bytes) in %v\n", size, pc, size, time.Since(start).Round(time.Millisecond))

	src := index.PieceSourceFunc(func(ctx context.Context, c cid.Cid) (index.PieceReader, error) {
		if !c.Equals(pc) {
			return nil, fmt.Errorf("piece %s: %w", c, index.ErrNotFound)
		}
		return &unsealedPiece{f: unsealed, size: int64(size.Unpadded())}, nil
	})
	if unsealed, err = os.Open(unsealedPath); err != nil {
		return err
	}
	defer unsealed.Close()

	ours, err := rtServe(retrieval.New(noSegments{}, src))
	if err != nil {
		return err
	}
	defer ours.Close()
	ref, err := rtServe(http.FileServer(http.Dir(plainDir)))
	if err != nil {
		return err
	}
	defer ref.Close()
	ourURL := "http://" + ours.Addr().String() + "/piece/" + pc.String()
	refURL := "http://" + ref.Addr().String() + "/piece"

	var ourRates, refRates []float64
	for i := 0; i < rounds; i++ {
		order := []bool{i%2 == 0, i%2 != 0}
		for _, mine := range order {
			u := refURL
			if mine {
				u = ourURL
			}
			rate, err := rtDownload(ctx, u, int64(size.Unpadded()))
			if err != nil {
				return err
			}
			if mine {
				ourRates = append(ourRates, rate)
			} else {
				refRates = append(refRates, rate)
			}
		}
	}
	om, rm := rtMedian(ourRates), rtMedian(refRates)
	fmt.Printf("retrieval /piece/ (fr32 unsealed file): median %.0f MiB/s over %d rounds\n", om/(1<<20), rounds)
	fmt.Printf("http.FileServer (plain file):           median %.0f MiB/s over %d rounds\n", rm/(1<<20), rounds)
	fmt.Printf("ratio %.2f (target >= 0.7)\n", om/rm)
	return nil
}

type rtServer struct {
	l   net.Listener
	srv *http.Server
}

func rtServe(h http.Handler) (*rtServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &rtServer{l: l, srv: &http.Server{Handler: h}}
	go s.srv.Serve(l)
	return s, nil
}

func (s *rtServer) Addr() net.Addr { return s.l.Addr() }
func (s *rtServer) Close() error   { return s.srv.Close() }

// download GETs u into io.Discard and returns bytes per second.
func rtDownload(ctx context.Context, u string, want int64) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, err
	}
	if n != want {
		return 0, fmt.Errorf("GET %s: %d bytes, want %d", u, n, want)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func rtMedian(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
