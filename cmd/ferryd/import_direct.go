package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/piece"
)

// importDirectCmd is `boostd import-direct`: a direct data onboarding deal
// (FIP-0076) for a client's allocation, its data a file on this machine.
var importDirectCmd = &cli.Command{
	Name:      "import-direct",
	Usage:     "take a direct data onboarding deal: claim a client's DataCap allocation with a piece whose data is a file here",
	ArgsUsage: "<piece CID> <file>",
	Description: "The client made an allocation for this provider and the piece (ferry allocate, boost allocate);\n" +
		"the allocation must exist, name this miner, the piece (CID v1 or v2) and its padded size, and not\n" +
		"expire before the start epoch. The deal ends at the start + the allocation's TermMin. The file's piece\n" +
		"commitment is checked, then the piece goes to a sector with its activation manifest, is indexed and\n" +
		"announced, and the deal is Complete once its sector is proven and the claim is on chain. Follow it\n" +
		"with ferryd deal show.",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "client", Aliases: []string{"client-addr"}, Usage: "the allocation's client (f0…, f1…, f3…)", Required: true},
		&cli.Uint64Flag{Name: "allocation-id", Usage: "the client's allocation to claim", Required: true},
		&cli.Int64Flag{Name: "start-epoch", Usage: "when the piece must be in a proven sector (default: the chain head + 2 days)"},
		&cli.BoolFlag{Name: "delete-after-import", Usage: "remove the file once the piece is in a sector"},
		&cli.BoolFlag{Name: "remove-unsealed-copy", Usage: "keep no unsealed copy once the sector is proven (no retrievals from here)"},
		&cli.BoolFlag{Name: "skip-ipni-announce", Usage: "index the piece but do not announce it to IPNI"},
		jsonFlag,
	},
	Action: func(cctx *cli.Context) error {
		dd, err := directDealArgs(cctx)
		if err != nil {
			return err
		}
		return withAPI(cctx, func(a api.Ferry) error {
			d, err := a.DealImportDirect(cctx.Context, dd)
			if err != nil {
				return err
			}
			return cliutil.Print(cctx, d, func(w io.Writer) {
				fmt.Fprintf(w, "direct deal %s accepted: allocation %d, piece %s, epochs %d to %d\n", d.UUID, d.AllocationID, d.PieceCID, d.StartEpoch, d.EndEpoch)
				fmt.Fprintf(w, "follow it with: ferryd deal show %s\n", d.UUID)
			})
		})
	},
}

// directDealArgs reads import-direct's arguments and flags.
func directDealArgs(cctx *cli.Context) (market.DirectDeal, error) {
	if cctx.NArg() != 2 {
		return market.DirectDeal{}, fmt.Errorf("usage: ferryd import-direct --client ADDR --allocation-id N <piece CID> <file>")
	}
	pc, err := pieceCIDArg(cctx.Args().Get(0))
	if err != nil {
		return market.DirectDeal{}, err
	}
	path, err := filepath.Abs(cctx.Args().Get(1))
	if err != nil {
		return market.DirectDeal{}, fmt.Errorf("file %q: %w", cctx.Args().Get(1), err)
	}
	client, err := address.NewFromString(cctx.String("client"))
	if err != nil {
		return market.DirectDeal{}, fmt.Errorf("--client %q: %w", cctx.String("client"), err)
	}
	if cctx.Uint64("allocation-id") == 0 {
		return market.DirectDeal{}, fmt.Errorf("--allocation-id: allocation IDs start at 1")
	}
	return market.DirectDeal{
		Client: client, AllocationID: chain.AllocationID(cctx.Uint64("allocation-id")), PieceCID: pc,
		StartEpoch:         abi.ChainEpoch(cctx.Int64("start-epoch")),
		Data:               market.DirectData{File: path, DeleteAfterImport: cctx.Bool("delete-after-import")},
		RemoveUnsealedCopy: cctx.Bool("remove-unsealed-copy"), SkipIPNIAnnounce: cctx.Bool("skip-ipni-announce"),
		Source: "ferryd import-direct",
	}, nil
}

// pieceCIDArg reads a piece CID argument, v1 or v2; it is passed on as
// given (the daemon takes either).
func pieceCIDArg(s string) (cid.Cid, error) {
	if _, _, _, err := piece.ParseCIDString(s); err != nil {
		return cid.Undef, fmt.Errorf("reading the piece CID: %w", err)
	}
	return cid.Decode(s)
}
