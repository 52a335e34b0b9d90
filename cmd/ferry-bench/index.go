package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/internal/carv1"
	"github.com/ferry-fil/ferry/piece"
)

// indexCommand measures the piece directory: a CAR of many small blocks is
// written to a temporary directory, then indexed into a fresh database.
func indexCommand() *cli.Command {
	return &cli.Command{
		Name:  "index",
		Usage: "index a generated CAR of many small blocks (target: 1,000,000 blocks in under a minute)",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "blocks", Value: 1_000_000, Usage: "blocks in the generated CAR"},
			&cli.IntFlag{Name: "block-size", Value: 64, Usage: "bytes per block"},
			&cli.StringFlag{Name: "dir", Usage: "working directory (default: a new temporary directory, removed afterwards)"},
		},
		Action: func(cctx *cli.Context) error {
			dir := cctx.String("dir")
			if dir == "" {
				d, err := os.MkdirTemp("", "ferry-bench-index-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				dir = d
			}
			ctx := cctx.Context
			n, size := cctx.Int("blocks"), cctx.Int("block-size")
			carPath := filepath.Join(dir, "bench.car")
			start := time.Now()
			pieceCid, err := writeBenchCAR(carPath, n, size)
			if err != nil {
				return err
			}
			fmt.Printf("generated %d blocks of %d bytes (%s) in %v\n", n, size, pieceCid, time.Since(start).Round(time.Millisecond))

			sqldb, err := db.Open(ctx, filepath.Join(dir, "ferry.db"))
			if err != nil {
				return err
			}
			defer sqldb.Close()
			f, err := os.Open(carPath)
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			svc := index.New(sqldb, nil)
			start = time.Now()
			res, err := svc.IndexPiece(ctx, pieceCid, f, st.Size())
			if err != nil {
				return err
			}
			el := time.Since(start)
			fmt.Printf("index: %d blocks in %v, %.0f blocks/s (target: 1,000,000 blocks in under 60s)\n",
				res.Blocks, el.Round(time.Millisecond), float64(res.Blocks)/el.Seconds())
			return lookupSample(ctx, svc, n, size)
		},
	}
}

func benchBlock(buf []byte, i int) (cid.Cid, []byte) {
	binary.LittleEndian.PutUint64(buf, uint64(i))
	for j := 8; j < len(buf); j++ {
		buf[j] = byte(i*31 + j)
	}
	d := sha256.Sum256(buf)
	mh, _ := multihash.Encode(d[:], multihash.SHA2_256)
	return cid.NewCidV1(cid.Raw, mh), buf
}

// writeBenchCAR writes a CARv1 of n distinct raw blocks and returns its
// piece CID.
func writeBenchCAR(path string, n, size int) (cid.Cid, error) {
	if size < 8 {
		size = 8
	}
	f, err := os.Create(path)
	if err != nil {
		return cid.Undef, err
	}
	defer f.Close()
	calc := piece.NewCalc()
	w := bufio.NewWriterSize(&teeWriter{f, calc}, 1<<20)
	buf := make([]byte, size)
	root, _ := benchBlock(buf, 0)
	if _, err := carv1.WriteHeader(w, []cid.Cid{root}); err != nil {
		return cid.Undef, err
	}
	for i := 0; i < n; i++ {
		c, data := benchBlock(buf, i)
		if _, err := carv1.WriteBlock(w, c, data); err != nil {
			return cid.Undef, err
		}
	}
	if err := w.Flush(); err != nil {
		return cid.Undef, err
	}
	comm, err := calc.Sum()
	if err != nil {
		return cid.Undef, err
	}
	return comm.CID(), f.Close()
}

type teeWriter struct {
	a, b interface{ Write([]byte) (int, error) }
}

func (t *teeWriter) Write(p []byte) (int, error) {
	if n, err := t.a.Write(p); err != nil {
		return n, err
	}
	return t.b.Write(p)
}

// lookupSample times PiecesContaining over a sample of the indexed blocks.
func lookupSample(ctx context.Context, svc *index.Service, n, size int) error {
	const samples = 10_000
	buf := make([]byte, max(size, 8))
	start := time.Now()
	for i := 0; i < samples; i++ {
		c, _ := benchBlock(buf, (i*7919)%n)
		locs, err := svc.PiecesContaining(ctx, c.Hash())
		if err != nil {
			return err
		}
		if len(locs) != 1 {
			return fmt.Errorf("block %d: %d locations", i, len(locs))
		}
	}
	el := time.Since(start)
	fmt.Printf("lookup: %d PiecesContaining in %v, %.0f lookups/s\n", samples, el.Round(time.Millisecond), samples/el.Seconds())
	return nil
}
