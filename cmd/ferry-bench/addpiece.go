package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/internal/procs"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/sealing"
)

// addPieceCommand compares the fused AddPiece work (fr32 + write into a
// sparse unsealed sector file + CommP, sealing.WritePadded) with a plain
// CommP pass over the same file (what `ferry commp` does).
func addPieceCommand() *cli.Command {
	return &cli.Command{
		Name:  "addpiece",
		Usage: "AddPiece (fr32 + write + CommP in one pass) against a plain CommP pass on the same file",
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: "size", Value: 1 << 30 / 128 * 127, Usage: "payload bytes of the random test file (the default fills a 1 GiB piece)"},
			&cli.StringFlag{Name: "dir", Usage: "directory for the test file and the sector file (default: the system temp dir)"},
			&cli.IntFlag{Name: "rounds", Value: 3, Usage: "alternating rounds of each; the median is reported"},
		},
		Action: func(cctx *cli.Context) error {
			return runAddPieceBench(cctx.Context, cctx.String("dir"), cctx.Int64("size"), cctx.Int("rounds"))
		},
	}
}

func runAddPieceBench(ctx context.Context, dir string, size int64, rounds int) error {
	if size <= 0 || uint64(size) > piece.MaxPayload {
		return fmt.Errorf("size %d out of range", size)
	}
	tmp, err := os.MkdirTemp(dir, "ferry-bench-addpiece-")
	if err != nil {
		return fmt.Errorf("creating work directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "payload")
	if err := writeRandomFile(src, size); err != nil {
		return err
	}
	ps := piece.PaddedSizeFor(uint64(size))

	// CommP runs as `ferry commp` does, at Go's default GOMAXPROCS;
	// AddPiece as ferryd runs it, with its spare P (internal/procs).
	commpProcs, ferrydProcs := runtime.GOMAXPROCS(0), procs.Ferryd()
	defer runtime.GOMAXPROCS(commpProcs)
	var plain, fused, syncs []time.Duration
	var rootPlain, rootFused [32]byte
	var maxSys uint64
	for range rounds {
		runtime.GOMAXPROCS(commpProcs)
		d, root, err := timeCommP(src, ps)
		if err != nil {
			return err
		}
		plain, rootPlain = append(plain, d), root
		// Each round writes into fresh, empty sector space, as AddPiece
		// does: a new sparse file.
		dstPath := filepath.Join(tmp, "unsealed")
		os.Remove(dstPath)
		dst, err := os.Create(dstPath)
		if err != nil {
			return fmt.Errorf("creating sector file: %w", err)
		}
		if err := dst.Truncate(int64(ps)); err != nil {
			dst.Close()
			return fmt.Errorf("sizing sector file: %w", err)
		}
		runtime.GOMAXPROCS(ferrydProcs)
		d, s, root, err := timeAddPiece(ctx, src, dst, ps)
		dst.Close()
		if err != nil {
			return err
		}
		fused, syncs, rootFused = append(fused, d), append(syncs, s), root
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		maxSys = max(maxSys, ms.Sys)
	}
	if rootPlain != rootFused {
		return fmt.Errorf("AddPiece and the plain pass disagree on CommP")
	}
	mp, mf, ms := medianDuration(plain), medianDuration(fused), medianDuration(syncs)
	mib := float64(size) / (1 << 20)
	fmt.Printf("payload %d bytes, piece %d bytes, %d rounds\n", size, ps, rounds)
	fmt.Printf("commp (plain piece.Calc pass, GOMAXPROCS %d):         %8.1f MiB/s  (%v)\n", commpProcs, mib/mp.Seconds(), mp.Round(time.Millisecond))
	fmt.Printf("addpiece (fr32 + write + CommP fused, GOMAXPROCS %d): %8.1f MiB/s  (%v, then fsync %v)\n", ferrydProcs, mib/mf.Seconds(), mf.Round(time.Millisecond), ms.Round(time.Millisecond))
	fmt.Printf("ratio addpiece/commp: %.1f%% (target >= 90%%); Go runtime memory from the OS: %d MiB\n", 100*mp.Seconds()/mf.Seconds(), maxSys>>20)
	return nil
}

func writeRandomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating test file: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.CopyN(w, rand.New(rand.NewSource(1)), size); err != nil {
		f.Close()
		return fmt.Errorf("writing test file: %w", err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing test file: %w", err)
	}
	return f.Close()
}

func timeCommP(src string, ps abi.PaddedPieceSize) (time.Duration, [32]byte, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, [32]byte{}, err
	}
	defer f.Close()
	start := time.Now()
	c := piece.NewCalc()
	if _, err := io.CopyBuffer(c, f, make([]byte, 1<<20)); err != nil {
		return 0, [32]byte{}, fmt.Errorf("commp pass: %w", err)
	}
	comm, err := c.SumAs(ps)
	if err != nil {
		return 0, [32]byte{}, fmt.Errorf("commp pass: %w", err)
	}
	return time.Since(start), comm.Root, nil
}

func timeAddPiece(ctx context.Context, src string, dst *os.File, ps abi.PaddedPieceSize) (time.Duration, time.Duration, [32]byte, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, 0, [32]byte{}, err
	}
	defer f.Close()
	start := time.Now()
	comm, err := sealing.WritePadded(ctx, dst, 0, ps, f)
	if err != nil {
		return 0, 0, [32]byte{}, fmt.Errorf("addpiece pass: %w", err)
	}
	d := time.Since(start)
	if err := dst.Sync(); err != nil {
		return 0, 0, [32]byte{}, fmt.Errorf("syncing sector file: %w", err)
	}
	return d, time.Since(start) - d, comm.Root, nil
}

func medianDuration(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
