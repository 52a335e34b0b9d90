package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/internal/carv1"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/retrieval"
)

// retrievalCommand measures retrieval over loopback from one piece that
// holds the CAR of a UnixFS file, stored fr32-padded as in an unsealed
// sector and indexed: GET /piece/ against net/http's FileServer on the
// same payload bytes, the whole DAG as a CAR against /piece/ of the same
// piece, and /ipfs/ whole DAGs and entity-bytes ranges through Ferry's
// fast paths against boxo's gateway alone (blocks, which have no fast
// path, through boxo), in rotating rounds.
func retrievalCommand() *cli.Command {
	return &cli.Command{
		Name:  "retrieval",
		Usage: "GET /piece/ vs http.FileServer (target >= 0.7), the whole-DAG CAR vs /piece/ (target >= 0.8), /ipfs/ fast paths vs boxo's gateway",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "size", Value: 1 << 30, Usage: "padded piece size (a power of two)"},
			&cli.IntFlag{Name: "rounds", Value: 5, Usage: "rounds; each runs every download once, in rotating order"},
			&cli.IntFlag{Name: "requests", Value: 200, Usage: "block and range requests per round"},
			&cli.StringFlag{Name: "dir", Usage: "directory for the files (default: a new temporary directory)"},
		},
		Action: func(cctx *cli.Context) error {
			return benchRetrieval(cctx.Context, abi.PaddedPieceSize(cctx.Uint64("size")), cctx.Int("rounds"), cctx.Int("requests"), cctx.String("dir"))
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

// rtLeafSize is the leaf size of the benchmark's UnixFS file, kubo's
// default chunk.
const rtLeafSize = 256 << 10

func benchRetrieval(ctx context.Context, size abi.PaddedPieceSize, rounds, requests int, dir string) error {
	if err := piece.ValidatePadded(size); err != nil {
		return err
	}
	if rounds <= 0 || requests <= 0 {
		return errors.New("retrieval: rounds and requests must be positive")
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
	payload := int64(size.Unpadded())

	// The payload: the CAR of a UnixFS file filling most of the piece,
	// then zeros, written plain, fr32-padded and through CommP.
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
	cw := &rtCounter{w: bufio.NewWriterSize(io.MultiWriter(plain, pw, calc), 1<<20)}
	fileSize := uint64(payload) - uint64(payload)/64 // room for the CAR's own bytes
	dag, err := carv1.WriteFileDAG(cw, fileSize, rtLeafSize, 7)
	if err != nil {
		return err
	}
	if cw.n > payload {
		return fmt.Errorf("retrieval: the CAR (%d bytes) does not fit the piece (%d)", cw.n, payload)
	}
	carSize := cw.n
	if _, err := io.CopyN(cw, zeros{}, payload-cw.n); err != nil {
		return err
	}
	if err := cw.w.(*bufio.Writer).Flush(); err != nil {
		return err
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
	if unsealed, err = os.Open(unsealedPath); err != nil {
		return err
	}
	defer unsealed.Close()
	src := index.PieceSourceFunc(func(ctx context.Context, c cid.Cid) (index.PieceReader, error) {
		if !c.Equals(pc) {
			return nil, fmt.Errorf("piece %s: %w", c, index.ErrNotFound)
		}
		return &unsealedPiece{f: unsealed, size: payload}, nil
	})
	sqldb, err := db.Open(ctx, filepath.Join(dir, "ferry.db"))
	if err != nil {
		return err
	}
	defer sqldb.Close()
	idx := index.New(sqldb, src)
	res, err := idx.Rebuild(ctx, pc)
	if err != nil {
		return err
	}
	fmt.Printf("prepared a %d-byte piece %s holding a %d-byte CAR (%d blocks, a %d-byte UnixFS file) in %v\n",
		size, pc, carSize, res.Blocks, fileSize, time.Since(start).Round(time.Millisecond))

	servers := map[string]http.Handler{"FileServer": http.FileServer(http.Dir(plainDir))}
	for name, opts := range map[string][]retrieval.Option{
		"ferry": nil,
		"boxo":  {retrieval.WithLibraryOnly()},
	} {
		s, err := retrieval.New(idx, src, opts...)
		if err != nil {
			return err
		}
		servers[name] = s
	}
	base := map[string]string{}
	for name, h := range servers {
		srv, err := rtServe(h)
		if err != nil {
			return err
		}
		defer srv.Close()
		base[name] = "http://" + srv.Addr().String()
	}

	// The measurements: each a GET (or a series of GETs) and the unit it
	// counts.
	const car = "application/vnd.ipld.car"
	const raw = "application/vnd.ipld.raw"
	root := dag.Root.String()
	rng := rand.New(rand.NewPCG(1, 2))
	type measure struct {
		name, unit string
		run        func() (float64, error)
	}
	// CPU-seconds per GiB of the process (server and client) beside the
	// rate: on a machine others load too, the rate swings with their
	// work, the CPU a byte costs much less.
	cpu := map[string][]float64{}
	download := func(name, u, accept string, want int64) func() (float64, error) {
		return func() (float64, error) {
			c0 := cpuTime()
			rate, err := rtDownload(ctx, u, accept, want)
			cpu[name] = append(cpu[name], (cpuTime()-c0)/(float64(want)/(1<<30)))
			return rate, err
		}
	}
	series := func(server, accept string, want int64, next func() string) func() (float64, error) {
		return func() (float64, error) {
			t0 := time.Now()
			for range requests {
				if _, err := rtDownload(ctx, base[server]+next(), accept, want); err != nil {
					return 0, err
				}
			}
			return float64(requests) / time.Since(t0).Seconds(), nil
		}
	}
	block := func() string { return "/ipfs/" + dag.Leaves[rng.IntN(len(dag.Leaves))].String() }
	const rangeLen = 1 << 20
	span := func() string {
		from := rng.Uint64N(dag.Size - rangeLen)
		return fmt.Sprintf("/ipfs/%s?dag-scope=entity&entity-bytes=%d:%d", root, from, from+rangeLen-1)
	}
	ms := []measure{
		{"/piece/ (fr32 unsealed file)", "MiB/s", download("piece", base["ferry"]+"/piece/"+pc.String(), "", payload)},
		{"http.FileServer (plain file)", "MiB/s", download("plain", base["FileServer"]+"/piece", "", payload)},
		{"whole DAG, ferry (sections in order)", "MiB/s", download("dag", base["ferry"]+"/ipfs/"+root+"?dag-scope=all", car, carSize)},
		{"whole DAG, boxo gateway", "MiB/s", download("boxo dag", base["boxo"]+"/ipfs/"+root+"?dag-scope=all", car, carSize)},
		{"1 MiB entity-bytes ranges, ferry", "req/s", series("ferry", car, -1, span)},
		{"1 MiB entity-bytes ranges, boxo gateway", "req/s", series("boxo", car, -1, span)},
		{"blocks (boxo gateway)", "req/s", series("ferry", raw, -1, block)},
	}
	rates := make([][]float64, len(ms))
	for r := range rounds {
		for k := range ms {
			i := (k + r) % len(ms)
			v, err := ms[i].run()
			if err != nil {
				return fmt.Errorf("%s: %w", ms[i].name, err)
			}
			rates[i] = append(rates[i], v)
		}
	}
	med := make(map[string]float64, len(ms))
	for i, m := range ms {
		v := median(rates[i])
		med[m.name] = v
		if m.unit == "MiB/s" {
			v /= 1 << 20
		}
		fmt.Printf("%-42s median %8.1f %s over %d rounds\n", m.name, v, m.unit, rounds)
	}
	for _, k := range []string{"piece", "plain", "dag", "boxo dag"} {
		fmt.Printf("CPU (server and client) for %-9s median %.2f CPU-s/GiB\n", k, median(cpu[k]))
	}
	ratio := func(a, b string) float64 { return med[a] / med[b] }
	fmt.Printf("ratio /piece/ to http.FileServer            %.2f (target >= 0.7)\n", ratio(ms[0].name, ms[1].name))
	fmt.Printf("ratio whole DAG (ferry) to /piece/          %.2f (target >= 0.8); in CPU per byte %.2f\n", ratio(ms[2].name, ms[0].name), median(cpu["piece"])/median(cpu["dag"]))
	fmt.Printf("ratio whole DAG, ferry to boxo              %.2f\n", ratio(ms[2].name, ms[3].name))
	fmt.Printf("ratio ranges, ferry to boxo                 %.2f\n", ratio(ms[4].name, ms[5].name))
	return nil
}

// rtCounter counts the bytes written through it.
type rtCounter struct {
	w io.Writer
	n int64
}

func (c *rtCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
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

// rtDownload GETs u (with Accept: accept, if set) into io.Discard and
// returns bytes per second; want, unless negative, is the length it must
// have.
func rtDownload(ctx context.Context, u, accept string, want int64) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
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
	if want >= 0 && n != want {
		return 0, fmt.Errorf("GET %s: %d bytes, want %d", u, n, want)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
