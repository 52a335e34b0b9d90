package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/chain/devnet"
)

// devnetCommand measures the embedded chain: a block executing many signed
// Sends, and a block executing one PublishStorageDeals of many deals. There
// is no reference implementation to run side by side (a Lotus devnet needs
// proofs parameters and minutes to start); the target is well under a second
// for each block.
func devnetCommand() *cli.Command {
	return &cli.Command{
		Name:  "devnet",
		Usage: "execute a block of signed Sends and a PublishStorageDeals of many deals (target: each block well under 1 s)",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "sends", Value: 1000, Usage: "Send messages in one block"},
			&cli.IntFlag{Name: "deals", Value: 256, Usage: "deals in one PublishStorageDeals"},
			&cli.StringFlag{Name: "dir", Usage: "working directory (default: a new temporary directory, removed afterwards)"},
		},
		Action: func(cctx *cli.Context) error {
			dir := cctx.String("dir")
			if dir == "" {
				d, err := os.MkdirTemp("", "ferry-bench-devnet-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				dir = d
			}
			rep, err := devnet.Benchmark(cctx.Context, dir, cctx.Int("sends"), cctx.Int("deals"))
			if err != nil {
				return fmt.Errorf("devnet benchmark: %w", err)
			}
			ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
			fmt.Printf("push %d signed Sends (signature, nonce, balance checks): %s (%.0f µs each)\n", rep.Sends, ms(rep.PushSends), float64(rep.PushSends.Microseconds())/float64(rep.Sends))
			fmt.Printf("block executing %d Sends:                             %s  (target < 1000 ms, ratio %.3f)\n", rep.Sends, ms(rep.MineSends), rep.MineSends.Seconds())
			fmt.Printf("push PublishStorageDeals of %d deals:                  %s\n", rep.Deals, ms(rep.PushPublish))
			fmt.Printf("block executing PublishStorageDeals of %d deals:       %s  (target < 1000 ms, ratio %.3f)\n", rep.Deals, ms(rep.MinePublish), rep.MinePublish.Seconds())
			fmt.Printf("empty block:                                           %s  (%.0f blocks/s)\n", ms(rep.EmptyBlockDur), rep.BlocksPerSec)
			fmt.Printf("reopen the devnet:                                     %s  (target < 1000 ms)\n", ms(rep.OpenExisting))
			return nil
		},
	}
}
