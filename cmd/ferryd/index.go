package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/internal/cliutil"
)

// indexCmd is `ferryd index list|status|rebuild|announce`.
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
					return cliutil.WriteJSON(cctx.App.Writer, pieces)
				}
				tw := tabwriter.NewWriter(cctx.App.Writer, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PIECE CID\tPIECE CID V2\tSTATE\tBLOCKS\tAGGREGATE\tANNOUNCED\tERROR")
				for _, p := range pieces {
					state := p.State
					if p.BytesTotal > 0 {
						state += fmt.Sprintf(" (%d%%)", p.BytesRead*100/p.BytesTotal)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%v\t%v\t%s\n", p.PieceCID, orDash(p.PieceCIDv2), state, p.Blocks, p.Aggregate, p.Announced, p.Error)
				}
				return tw.Flush()
			})
		},
	}, {
		Name:      "status",
		Usage:     "show one piece of the index, with the progress of an indexing run",
		ArgsUsage: "<piece CID>",
		Flags:     []cli.Flag{jsonFlag},
		Action: func(cctx *cli.Context) error {
			pc, err := pieceArg(cctx)
			if err != nil {
				return err
			}
			return withAPI(cctx, func(f api.Ferry) error {
				st, err := f.IndexStatus(cctx.Context, pc)
				if err != nil {
					return err
				}
				if cctx.Bool("json") {
					return cliutil.WriteJSON(cctx.App.Writer, st)
				}
				tw := tabwriter.NewWriter(cctx.App.Writer, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "Piece:\t%s\n", st.PieceCID)
				if st.PieceCIDv2 != "" {
					fmt.Fprintf(tw, "Piece CID v2:\t%s (%d bytes of payload in %d)\n", st.PieceCIDv2, st.RawSize, st.PieceSize)
				}
				fmt.Fprintf(tw, "State:\t%s\nBlocks:\t%d\nAggregate:\t%v\nAnnounced:\t%v\n", st.State, st.Blocks, st.Aggregate, st.Announced)
				if st.BytesTotal > 0 {
					fmt.Fprintf(tw, "Read:\t%s of %s\n", cliutil.HumanBytes(st.BytesRead), cliutil.HumanBytes(st.BytesTotal))
				}
				if st.Error != "" {
					fmt.Fprintf(tw, "Error:\t%s\n", st.Error)
				}
				return tw.Flush()
			})
		},
	}, {
		Name:      "rebuild",
		Usage:     "index a piece again from its unsealed copy",
		ArgsUsage: "<piece CID>",
		Flags:     []cli.Flag{jsonFlag},
		Action: func(cctx *cli.Context) error {
			pc, err := pieceArg(cctx)
			if err != nil {
				return err
			}
			return withAPI(cctx, func(f api.Ferry) error {
				// The rebuild runs in one call; another shows its progress.
				prog := cliutil.NewProgress(cctx.Bool("json"))
				stop := make(chan struct{})
				shown := make(chan struct{})
				go func() {
					defer close(shown)
					t := time.NewTicker(500 * time.Millisecond)
					defer t.Stop()
					for {
						select {
						case <-stop:
							return
						case <-t.C:
						}
						if st, err := f.IndexStatus(cctx.Context, pc); err == nil && st.BytesTotal > 0 {
							prog.Show("indexing %s: %s of %s read", pc, cliutil.HumanBytes(st.BytesRead), cliutil.HumanBytes(st.BytesTotal))
						}
					}
				}()
				n, err := f.IndexRebuild(cctx.Context, pc)
				close(stop)
				<-shown
				prog.Done()
				if err != nil {
					return err
				}
				out := struct {
					PieceCID string `json:"pieceCid"`
					Blocks   int64  `json:"blocks"`
				}{pc.String(), n}
				return cliutil.Print(cctx, out, func(w io.Writer) { fmt.Fprintf(w, "indexed %d blocks of %s\n", n, pc) })
			})
		},
	}, {
		Name:      "announce",
		Usage:     "advertise a piece to IPNI (again)",
		ArgsUsage: "<piece CID>",
		Flags:     []cli.Flag{jsonFlag},
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
				out := struct {
					PieceCID string `json:"pieceCid"`
					AdCID    string `json:"adCid"`
				}{pc.String(), ad.String()}
				return cliutil.Print(cctx, out, func(w io.Writer) { fmt.Fprintf(w, "%s is advertised in %s\n", pc, ad) })
			})
		},
	}},
}

// pieceArg reads the one piece CID argument, v1 or v2.
func pieceArg(cctx *cli.Context) (cid.Cid, error) {
	if cctx.NArg() != 1 {
		return cid.Undef, fmt.Errorf("usage: ferryd index %s <piece CID>", cctx.Command.Name)
	}
	return pieceCIDArg(cctx.Args().First())
}

// orDash is s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
