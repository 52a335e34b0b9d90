package main

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/sealing"
)

// sectorsCmd is `ferryd sectors list|status N`.
var sectorsCmd = &cli.Command{
	Name:  "sectors",
	Usage: "inspect sectors",
	Subcommands: []*cli.Command{{
		Name:  "list",
		Usage: "list sectors with their state and use",
		Flags: []cli.Flag{jsonFlag},
		Action: func(cctx *cli.Context) error {
			return withAPI(cctx, func(f api.Ferry) error {
				ss, err := f.SectorsList(cctx.Context)
				if err != nil {
					return err
				}
				if cctx.Bool("json") {
					return cliutil.WriteJSON(cctx.App.Writer, ss)
				}
				return printSectors(cctx.App.Writer, ss)
			})
		},
	}, {
		Name:      "status",
		Usage:     "show one sector and its pieces",
		ArgsUsage: "<sector number>",
		Flags:     []cli.Flag{jsonFlag},
		Action: func(cctx *cli.Context) error {
			if cctx.NArg() != 1 {
				return fmt.Errorf("usage: ferryd sectors status <sector number>")
			}
			n, err := strconv.ParseUint(cctx.Args().First(), 10, 64)
			if err != nil {
				return fmt.Errorf("sector number %q: %w", cctx.Args().First(), err)
			}
			return withAPI(cctx, func(f api.Ferry) error {
				si, err := f.SectorsStatus(cctx.Context, abi.SectorNumber(n))
				if err != nil {
					return err
				}
				if cctx.Bool("json") {
					return cliutil.WriteJSON(cctx.App.Writer, si)
				}
				return printSector(cctx.App.Writer, si)
			})
		},
	}},
}

func printSectors(w io.Writer, ss []sealing.SectorInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SECTOR\tSTATE\tDEALS\tUSED\tUNSEALED\tERROR")
	for _, s := range ss {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d/%d\t%v\t%s\n", s.Number, s.State, s.Deals, s.Used, s.SectorSize, s.Unsealed, s.LastError)
	}
	return tw.Flush()
}

func printSector(w io.Writer, s sealing.SectorInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Sector:\t%d\n", s.Number)
	fmt.Fprintf(tw, "State:\t%s\n", s.State)
	fmt.Fprintf(tw, "Seal proof:\t%d (%s)\n", s.SealProof, s.SectorSize.ShortString())
	fmt.Fprintf(tw, "Used:\t%d of %d padded bytes, %d deals\n", s.Used, s.SectorSize, s.Deals)
	fmt.Fprintf(tw, "Opened:\t%s\n", s.OpenedAt.Format("2006-01-02 15:04:05"))
	if s.PackReason != "" {
		fmt.Fprintf(tw, "Packed because:\t%s\n", s.PackReason)
	}
	if s.CommD != nil {
		fmt.Fprintf(tw, "CommD:\t%s\n", s.CommD)
	}
	if s.CommR != nil {
		fmt.Fprintf(tw, "CommR:\t%s\n", s.CommR)
	}
	if s.TicketEpoch >= 0 {
		fmt.Fprintf(tw, "Ticket epoch:\t%d\n", s.TicketEpoch)
	}
	if s.PreCommitMsg != nil {
		fmt.Fprintf(tw, "Pre-commit:\t%s (epoch %d)\n", s.PreCommitMsg, s.PreCommitEpoch)
	}
	if s.SeedEpoch >= 0 {
		fmt.Fprintf(tw, "Seed epoch:\t%d\n", s.SeedEpoch)
	}
	if s.CommitMsg != nil {
		fmt.Fprintf(tw, "Prove-commit:\t%s\n", s.CommitMsg)
	}
	fmt.Fprintf(tw, "Unsealed copy:\t%v\n", s.Unsealed)
	fmt.Fprintf(tw, "Retries:\t%d\n", s.Retries)
	if s.LastError != "" {
		fmt.Fprintf(tw, "Last error:\t%s\n", s.LastError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nPieces:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OFFSET\tSIZE\tKIND\tPIECE CID\tDEAL\tWRITTEN")
	for _, p := range s.Pieces {
		kind, deal := "deal", ""
		if p.Filler {
			kind = "filler"
		}
		if p.DealUUID != nil {
			deal = p.DealUUID.String()
			if p.DealID > 0 {
				deal += fmt.Sprintf(" (%d)", p.DealID)
			}
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%v\n", p.Offset, p.Size, kind, p.PieceCID, deal, p.Written)
	}
	return tw.Flush()
}
