package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/google/uuid"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/wire"
)

// dealUUIDArg parses the command's single deal UUID argument.
func dealUUIDArg(cctx *cli.Context, usage string) (uuid.UUID, error) {
	if cctx.NArg() != 1 {
		return uuid.Nil, fmt.Errorf("usage: %s", usage)
	}
	id, err := uuid.Parse(cctx.Args().First())
	if err != nil {
		return uuid.Nil, fmt.Errorf("deal UUID %q: %w", cctx.Args().First(), err)
	}
	return id, nil
}

// dealAction is a command acting on one deal. With --json it prints the
// deal as `deal show --json` does, after the action.
func dealAction(name, usage string, do func(a api.Ferry, ctx context.Context, id uuid.UUID) error, done string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "<deal UUID>",
		Flags:     []cli.Flag{jsonFlag},
		Action: func(cctx *cli.Context) error {
			id, err := dealUUIDArg(cctx, "ferryd deal "+name+" <deal UUID>")
			if err != nil {
				return err
			}
			return withAPI(cctx, func(a api.Ferry) error {
				if err := do(a, cctx.Context, id); err != nil {
					return err
				}
				return printDealAfter(cctx, a, id, fmt.Sprintf("deal %s %s", id, done))
			})
		},
	}
}

// printDealAfter reports an action on deal id: the line done, or with
// --json the deal as it is now.
func printDealAfter(cctx *cli.Context, a api.Ferry, id uuid.UUID, done string) error {
	if !cctx.Bool("json") {
		fmt.Fprintln(cctx.App.Writer, done)
		return nil
	}
	d, err := a.DealShow(cctx.Context, id)
	if err != nil {
		return fmt.Errorf("reading deal %s back: %w", id, err)
	}
	return cliutil.WriteJSON(cctx.App.Writer, d)
}

// dealCmd is `ferryd deal list|show|retry|fail|cancel`.
var dealCmd = &cli.Command{
	Name:  "deal",
	Usage: "inspect and steer storage deals",
	Subcommands: []*cli.Command{{
		Name:  "list",
		Usage: "list deals, newest first",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state", Usage: "only deals that are active (in the pipeline), failed, complete or ended"},
			&cli.IntFlag{Name: "limit", Value: 100, Usage: "list at most this many deals; 0 for all"},
			&cli.StringFlag{Name: "after", Usage: "list the deals after this deal UUID (the last of the page before): the next page"},
			&cli.IntFlag{Name: "offset", Usage: "skip this many deals, newest first (reads every deal skipped: page with --after)"},
			jsonFlag,
		},
		Action: func(cctx *cli.Context) error {
			f := market.DealFilter{State: cctx.String("state"), Limit: cctx.Int("limit"), Offset: cctx.Int("offset")}
			return withAPI(cctx, func(a api.Ferry) error {
				if s := cctx.String("after"); s != "" {
					id, err := uuid.Parse(s)
					if err != nil {
						return fmt.Errorf("--after %q: %w", s, err)
					}
					d, err := a.DealShow(cctx.Context, id)
					if err != nil {
						return fmt.Errorf("--after %s: %w", id, err)
					}
					c := d.Cursor()
					f.After = &c
				}
				ds, err := a.DealList(cctx.Context, f)
				if err != nil {
					return err
				}
				if cctx.Bool("json") {
					return cliutil.WriteJSON(cctx.App.Writer, ds)
				}
				if err := printDeals(cctx.App.Writer, ds); err != nil {
					return err
				}
				if f.Limit > 0 && len(ds) == f.Limit {
					fmt.Fprintf(cctx.App.ErrWriter, "(%d deals; --after %s for the next page, --limit 0 for all)\n", f.Limit, ds[len(ds)-1].UUID)
				}
				return nil
			})
		},
	}, {
		Name:      "show",
		Usage:     "show one deal with its log",
		ArgsUsage: "<deal UUID>",
		Flags:     []cli.Flag{jsonFlag},
		Action: func(cctx *cli.Context) error {
			id, err := dealUUIDArg(cctx, "ferryd deal show <deal UUID>")
			if err != nil {
				return err
			}
			return withAPI(cctx, func(a api.Ferry) error {
				d, err := a.DealShow(cctx.Context, id)
				if err != nil {
					return err
				}
				return cliutil.Print(cctx, d, func(w io.Writer) { printDeal(w, d) })
			})
		},
	},
		dealAction("retry", "retry a deal waiting for an operator, now", api.Ferry.DealRetry, "resumed"),
		dealAction("fail", "fail a deal for good, releasing its funds, staging space and data", api.Ferry.DealFail, "failed"),
		dealAction("cancel", "cancel a deal that is not yet published", api.Ferry.DealCancel, "cancelled"),
	},
}

// publishCmd is `ferryd publish now`.
var publishCmd = &cli.Command{
	Name:  "publish",
	Usage: "publish deals on chain",
	Subcommands: []*cli.Command{{
		Name:  "now",
		Usage: "publish the deals waiting for a batch without waiting for it to fill",
		Flags: []cli.Flag{jsonFlag},
		Action: func(cctx *cli.Context) error {
			return withAPI(cctx, func(a api.Ferry) error {
				if err := a.PublishNow(cctx.Context); err != nil {
					return err
				}
				out := struct {
					Published bool `json:"published"`
				}{true}
				return cliutil.Print(cctx, out, func(w io.Writer) { fmt.Fprintln(w, "published the waiting deals") })
			})
		},
	}},
}

// importDataCmd is `ferryd import-data <deal UUID> <file>`.
var importDataCmd = &cli.Command{
	Name:      "import-data",
	Usage:     "give an offline deal its data (the file's piece CID must match the deal's)",
	ArgsUsage: "<deal UUID> <file>",
	Flags:     []cli.Flag{jsonFlag},
	Action: func(cctx *cli.Context) error {
		if cctx.NArg() != 2 {
			return fmt.Errorf("usage: ferryd import-data <deal UUID> <file>")
		}
		id, err := uuid.Parse(cctx.Args().Get(0))
		if err != nil {
			return fmt.Errorf("deal UUID %q: %w", cctx.Args().Get(0), err)
		}
		path, err := filepath.Abs(cctx.Args().Get(1))
		if err != nil {
			return fmt.Errorf("file %q: %w", cctx.Args().Get(1), err)
		}
		return withAPI(cctx, func(a api.Ferry) error {
			// The daemon hashes the whole file before it answers; show
			// how far it got (the deal's bytes received) meanwhile.
			prog := cliutil.NewProgress(cctx.Bool("json"))
			var size int64
			if st, err := os.Stat(path); err == nil {
				size = st.Size()
			}
			done := make(chan error, 1)
			go func() { done <- a.DealImportData(cctx.Context, id, path) }()
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case err := <-done:
					prog.Done()
					if err != nil {
						return err
					}
					return printDealAfter(cctx, a, id, fmt.Sprintf("deal %s: data imported from %s", id, path))
				case <-tick.C:
					if d, err := a.DealShow(cctx.Context, id); err == nil {
						prog.Show("checking %s: %s of %s", filepath.Base(path), cliutil.HumanBytes(int64(d.BytesReceived)), cliutil.HumanBytes(size))
					}
				}
			}
		})
	},
}

// askCmd is `ferryd ask get|set`.
var askCmd = &cli.Command{
	Name:  "ask",
	Usage: "show or change the storage ask",
	Subcommands: []*cli.Command{{
		Name:  "get",
		Usage: "show the signed storage ask",
		Flags: []cli.Flag{jsonFlag},
		Action: func(cctx *cli.Context) error {
			return withAPI(cctx, func(a api.Ferry) error {
				ask, err := a.AskGet(cctx.Context)
				if err != nil {
					return err
				}
				return printAsk(cctx, ask)
			})
		},
	}, {
		Name:  "set",
		Usage: "replace the storage ask",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "price", Usage: "attoFIL per GiB per epoch (or FIL with a \"FIL\" suffix)", Required: true},
			&cli.StringFlag{Name: "verified-price", Usage: "price for verified deals, same units", Required: true},
			&cli.StringFlag{Name: "min-piece-size", Value: "256B", Usage: "smallest padded piece (B, KiB, MiB, GiB)"},
			&cli.StringFlag{Name: "max-piece-size", Value: "32GiB", Usage: "largest padded piece (B, KiB, MiB, GiB)"},
			&cli.Int64Flag{Name: "duration", Value: 0, Usage: "epochs the ask stays valid (0: one year)"},
			jsonFlag,
		},
		Action: func(cctx *cli.Context) error {
			price, err := parseAttoFIL(cctx.String("price"))
			if err != nil {
				return fmt.Errorf("--price: %w", err)
			}
			vprice, err := parseAttoFIL(cctx.String("verified-price"))
			if err != nil {
				return fmt.Errorf("--verified-price: %w", err)
			}
			minSize, err := parsePieceSize(cctx.String("min-piece-size"))
			if err != nil {
				return fmt.Errorf("--min-piece-size: %w", err)
			}
			maxSize, err := parsePieceSize(cctx.String("max-piece-size"))
			if err != nil {
				return fmt.Errorf("--max-piece-size: %w", err)
			}
			return withAPI(cctx, func(a api.Ferry) error {
				ask, err := a.AskSet(cctx.Context, market.AskParams{
					Price: price, VerifiedPrice: vprice, MinPieceSize: minSize, MaxPieceSize: maxSize,
					Duration: abi.ChainEpoch(cctx.Int64("duration")),
				})
				if err != nil {
					return err
				}
				return printAsk(cctx, ask)
			})
		},
	}},
}

// parseAttoFIL reads "123" as attoFIL and "0.5FIL" / "0.5 FIL" as FIL.
func parseAttoFIL(s string) (abi.TokenAmount, error) {
	s = strings.TrimSpace(s)
	if f, ok := strings.CutSuffix(strings.ToUpper(s), "FIL"); ok {
		return chain.ParseFIL(strings.TrimSpace(f))
	}
	v, err := big.FromString(s)
	if err != nil {
		return big.Int{}, fmt.Errorf("%q is not an attoFIL amount", s)
	}
	if v.Sign() < 0 {
		return big.Int{}, fmt.Errorf("%q is negative", s)
	}
	return v, nil
}

// parsePieceSize reads a padded piece size such as "2KiB" or "32GiB".
func parsePieceSize(s string) (abi.PaddedPieceSize, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   uint64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := uint64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	var n uint64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	p := abi.PaddedPieceSize(n * mult)
	if err := p.Validate(); err != nil {
		return 0, fmt.Errorf("%d bytes is not a padded piece size: %w", p, err)
	}
	return p, nil
}

func printDeals(w io.Writer, ds []market.DealInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UUID\tKIND\tCREATED\tCHECKPOINT\tPIECE SIZE\tCHAIN ID\tSECTOR\tSTATE")
	for _, d := range ds {
		sector := "-"
		if d.Sector != nil {
			sector = fmt.Sprint(*d.Sector)
		}
		state := d.SealingState
		switch d.Retry {
		case market.RetryFatal:
			state = "failed: " + d.Error
		case market.RetryAuto, market.RetryManual:
			state = fmt.Sprintf("retry %s: %s", d.Retry, d.Error)
		}
		// A direct deal has no chain deal: its allocation stands in.
		chainID := fmt.Sprint(d.ChainDealID)
		if d.Kind == market.KindDirect {
			chainID = fmt.Sprintf("allocation %d", d.AllocationID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.UUID, d.Kind, d.CreatedAt.Format(time.DateTime), d.Checkpoint, d.PieceSize, chainID, sector, state)
	}
	return tw.Flush()
}

func printDeal(w io.Writer, d *market.DealDetail) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	row("UUID", d.UUID)
	row("Kind", d.Kind)
	row("Checkpoint", d.Checkpoint)
	if d.Retry != "" {
		row("Retry", d.Retry)
	}
	if d.Error != "" {
		row("Error", d.Error)
	}
	row("Client", fmt.Sprintf("%s (peer %s)", d.Client, d.ClientPeer))
	row("Piece", fmt.Sprintf("%s (%d bytes)", d.PieceCID, d.PieceSize))
	if d.PieceCIDv2 != "" {
		row("Piece CID v2", d.PieceCIDv2)
	}
	if d.Kind == market.KindDirect {
		claim := "not yet"
		if d.ClaimID != 0 {
			claim = fmt.Sprint(d.ClaimID)
		}
		row("Allocation", fmt.Sprintf("%d (claim: %s)", d.AllocationID, claim))
	} else {
		row("Data root", d.DataRoot)
	}
	if d.DataPath != "" {
		row("Data file", d.DataPath)
	}
	row("Epochs", fmt.Sprintf("%d to %d", d.StartEpoch, d.EndEpoch))
	row("Verified", d.Verified)
	if d.IsOffline {
		row("Transfer", "offline")
	} else {
		row("Transfer", fmt.Sprintf("%d of %d bytes", d.BytesReceived, d.TransferSize))
	}
	if d.TransferURL != "" {
		from := d.TransferURL
		if d.TransferFallbacks > 0 {
			from += fmt.Sprintf(" (then %d more)", d.TransferFallbacks)
		}
		row("Downloading from", from)
	}
	if d.PublishCID != "" {
		row("Publish message", d.PublishCID)
	}
	if d.AddPieceBytes > 0 {
		of := ""
		if d.TransferSize > 0 {
			of = " of " + cliutil.HumanBytes(int64(d.TransferSize))
		}
		row("Adding piece", cliutil.HumanBytes(int64(d.AddPieceBytes))+of+" written into a sector")
	}
	if d.Kind != market.KindDirect && d.Checkpoint >= market.PublishConfirmed {
		row("Chain deal ID", d.ChainDealID)
	}
	if d.Sector != nil {
		row("Sector", fmt.Sprintf("%d (%s)", *d.Sector, d.SealingState))
	}
	tw.Flush()
	fmt.Fprintln(w, "Log:")
	for _, l := range d.Logs {
		fmt.Fprintf(w, "  %s  %s\n", l.At.Format("2006-01-02 15:04:05.000"), l.Text)
	}
}

// printAsk prints the provider's ask as `ferry provider ask` prints it
// (JSON null when there is none).
func printAsk(cctx *cli.Context, a *wire.SignedStorageAsk) error {
	if a == nil || a.Ask == nil {
		return cliutil.Print(cctx, nil, func(w io.Writer) { fmt.Fprintln(w, "no storage ask") })
	}
	out := cliutil.NewAsk(a.Ask)
	return cliutil.Print(cctx, out, out.WriteText)
}
