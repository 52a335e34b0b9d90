package main

import (
	"fmt"
	"github.com/ferry-fil/ferry/api"
	"os"
	"text/tabwriter"

	"github.com/ipfs/go-cid"
	"github.com/urfave/cli/v2"
)

// indexCmd is `ferryd index list|rebuild|announce`.
var indexCmd = &cli.Command{
	Name:  "index",
	Usage: "the piece index and IPNI announcements",
	Subcommands: []*cli.Command{{
		Name:  "list",
		Usage: "list indexed pieces, their blocks and whether IPNI has them",
		Flags: []cli.Flag{jsonFlag},
		Action: func(cctx *cli.Context) error {
			return withAPI(cctx, func(f api.Ferry) error {
				pieces, err := f.IndexList(cctx.Context)
				if err != nil {
					return err
				}
				if cctx.Bool("json") {
					return printJSON(pieces)
				}
				tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PIECE CID\tSTATE\tBLOCKS\tAGGREGATE\tANNOUNCED\tERROR")
				for _, p := range pieces {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%v\t%s\n", p.PieceCID, p.State, p.Blocks, p.Aggregate, p.Announced, p.Error)
				}
				return tw.Flush()
			})
		},
	}, {
		Name:      "rebuild",
		Usage:     "index a piece again from its unsealed copy",
		ArgsUsage: "<piece CID>",
		Action: func(cctx *cli.Context) error {
			pc, err := pieceArg(cctx)
			if err != nil {
				return err
			}
			return withAPI(cctx, func(f api.Ferry) error {
				n, err := f.IndexRebuild(cctx.Context, pc)
				if err != nil {
					return err
				}
				fmt.Printf("indexed %d blocks of %s\n", n, pc)
				return nil
			})
		},
	}, {
		Name:      "announce",
		Usage:     "advertise a piece to IPNI (again)",
		ArgsUsage: "<piece CID>",
		Action: func(cctx *cli.Context) error {
			pc, err := pieceArg(cctx)
			if err != nil {
				return err
			}
			return withAPI(cctx, func(f api.Ferry) error {
				ad, err := f.IndexAnnounce(cctx.Context, pc)
				if err != nil {
					return err
				}
				fmt.Printf("%s is advertised in %s\n", pc, ad)
				return nil
			})
		},
	}},
}

// pieceArg reads the one piece CID argument.
func pieceArg(cctx *cli.Context) (cid.Cid, error) {
	if cctx.NArg() != 1 {
		return cid.Undef, fmt.Errorf("usage: ferryd index %s <piece CID>", cctx.Command.Name)
	}
	pc, err := cid.Decode(cctx.Args().First())
	if err != nil {
		return cid.Undef, fmt.Errorf("%q is not a piece CID: %w", cctx.Args().First(), err)
	}
	return pc, nil
}
