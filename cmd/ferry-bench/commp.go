package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	hashhash "github.com/filecoin-project/go-fil-commp-hashhash"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/piece"
)

// commpCommand compares piece.Calc with go-fil-commp-hashhash on one file.
func commpCommand() *cli.Command {
	return &cli.Command{
		Name:  "commp",
		Usage: "CommP throughput and CPU cost: ferry's piece.Calc against go-fil-commp-hashhash",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "size", Value: "1GiB", Usage: "size of the random payload to create (B, KiB, MiB, GiB)"},
			&cli.StringFlag{Name: "file", Usage: "use this file instead of creating one"},
			&cli.IntFlag{Name: "rounds", Value: 3, Usage: "rounds; each runs both sides, alternating which goes first"},
		},
		Action: func(c *cli.Context) error {
			rounds := c.Int("rounds")
			if rounds < 1 {
				return errors.New("commp: --rounds must be at least 1")
			}
			path := c.String("file")
			if path == "" {
				size, err := commpParseSize(c.String("size"))
				if err != nil {
					return fmt.Errorf("commp: --size: %w", err)
				}
				f, err := os.CreateTemp("", "ferry-bench-commp-*.bin")
				if err != nil {
					return fmt.Errorf("commp: creating the payload file: %w", err)
				}
				path = f.Name()
				defer os.Remove(path)
				fmt.Fprintf(c.App.Writer, "writing %d random bytes to %s\n", size, path)
				if err := commpFillRandom(f, size); err != nil {
					f.Close()
					return fmt.Errorf("commp: writing the payload file: %w", err)
				}
				if err := f.Close(); err != nil {
					return fmt.Errorf("commp: writing the payload file: %w", err)
				}
			}
			return benchCommP(c.Context, c.App.Writer, path, rounds)
		},
	}
}

// commpParseSize parses "1GiB", "64MiB", "512KiB" or a plain byte count.
func commpParseSize(s string) (uint64, error) {
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		m      uint64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a positive size", s)
	}
	return n * mult, nil
}

// commpFillRandom writes size pseudo-random bytes to w.
func commpFillRandom(w io.Writer, size uint64) error {
	r := rand.NewChaCha8([32]byte{'f', 'e', 'r', 'r', 'y'})
	buf := make([]byte, 8<<20)
	for size > 0 {
		n := min(size, uint64(len(buf)))
		r.Read(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		size -= n
	}
	return nil
}

// commpRun is one measured pass over the file.
type commpRun struct {
	wall, cpu time.Duration
	root      [32]byte
}

// commpMeasure reads path in 8 MiB chunks into w and returns its root.
func commpMeasure(ctx context.Context, path string, w io.Writer, sum func() ([32]byte, error)) (commpRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return commpRun{}, err
	}
	defer f.Close()
	start, cpu0 := time.Now(), cpuDuration()
	buf := make([]byte, 8<<20)
	for {
		if err := ctx.Err(); err != nil {
			return commpRun{}, err
		}
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return commpRun{}, err
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return commpRun{}, err
		}
	}
	root, err := sum()
	if err != nil {
		return commpRun{}, err
	}
	return commpRun{wall: time.Since(start), cpu: cpuDuration() - cpu0, root: root}, nil
}

func commpRunFerry(ctx context.Context, path string) (commpRun, error) {
	c := piece.NewCalc()
	return commpMeasure(ctx, path, c, func() ([32]byte, error) {
		cm, err := c.Sum()
		return cm.Root, err
	})
}

func commpRunHashhash(ctx context.Context, path string) (commpRun, error) {
	c := new(hashhash.Calc)
	return commpMeasure(ctx, path, c, func() ([32]byte, error) {
		d, _, err := c.Digest()
		var r [32]byte
		copy(r[:], d)
		return r, err
	})
}

func benchCommP(ctx context.Context, out io.Writer, path string, rounds int) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("commp: %w", err)
	}
	size := float64(st.Size())
	mib, gib := size/(1<<20), size/(1<<30)
	// Warm the page cache so that neither side pays for the disk.
	if _, err := commpWarm(path); err != nil {
		return fmt.Errorf("commp: reading %s: %w", path, err)
	}
	var ours, theirs []commpRun
	for r := 0; r < rounds; r++ {
		order := []string{"ferry", "hashhash"}
		if r%2 == 1 {
			order = []string{"hashhash", "ferry"}
		}
		for _, who := range order {
			run := commpRunFerry
			if who == "hashhash" {
				run = commpRunHashhash
			}
			res, err := run(ctx, path)
			if err != nil {
				return fmt.Errorf("commp: %s round %d: %w", who, r+1, err)
			}
			fmt.Fprintf(out, "round %d %-8s %8.1f MiB/s  %5.2f CPU-s/GiB\n", r+1, who, mib/res.wall.Seconds(), res.cpu.Seconds()/gib)
			if who == "ferry" {
				ours = append(ours, res)
			} else {
				theirs = append(theirs, res)
			}
		}
		if ours[len(ours)-1].root != theirs[len(theirs)-1].root {
			return fmt.Errorf("commp: ferry and hashhash disagree on %s: %x vs %x", path, ours[len(ours)-1].root, theirs[len(theirs)-1].root)
		}
	}
	ow, oc := commpMedians(ours)
	tw, tc := commpMedians(theirs)
	fmt.Fprintf(out, "\npayload %.0f MiB, %d rounds, medians:\n", mib, rounds)
	fmt.Fprintf(out, "ferry     %8.1f MiB/s  %5.2f CPU-s/GiB\n", mib/ow, oc/gib)
	fmt.Fprintf(out, "hashhash  %8.1f MiB/s  %5.2f CPU-s/GiB\n", mib/tw, tc/gib)
	fmt.Fprintf(out, "ratio     %8.2fx faster (wall)  %5.2fx less CPU\n", tw/ow, tc/oc)
	return nil
}

// commpWarm reads the file once without hashing.
func commpWarm(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return drain(f, 8<<20)
}

// commpMedians returns the median wall and CPU seconds of runs.
func commpMedians(runs []commpRun) (wall, cpu float64) {
	var w, c []float64
	for _, r := range runs {
		w = append(w, r.wall.Seconds())
		c = append(c, r.cpu.Seconds())
	}
	slices.Sort(w)
	slices.Sort(c)
	return w[len(w)/2], c[len(c)/2]
}
