package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/cliutil"
)

// allocateCmd is `boost allocate`: DataCap allocations for providers to
// claim when they seal the pieces (direct data onboarding).
var allocateCmd = &cli.Command{
	Name:  "allocate",
	Usage: "make DataCap allocations for pieces that providers claim when they seal them (direct data onboarding)",
	Description: "One allocation per piece and provider, from the wallet's DataCap (checked first). Pieces are\n" +
		"given as --piece-info CID=PADDED_SIZE (repeatable), --piece-cid and --piece-size, or --piece-file\n" +
		"with CSV lines pieceCid,pieceSize,miner,termMin,termMax,expiration. Expirations are epochs after\n" +
		"the chain head. Prints the new allocation IDs; give one to the provider with the piece\n" +
		"(Boost: boostd import-direct --allocation-id).",
	Flags: []cli.Flag{
		&cli.StringSliceFlag{Name: "provider", Aliases: []string{"miner", "m", "p"}, Usage: "storage provider (f0…), repeatable"},
		&cli.StringSliceFlag{Name: "piece-info", Aliases: []string{"pi"}, Usage: "piece as CID=PADDED_SIZE, repeatable"},
		&cli.StringFlag{Name: "piece-cid", Usage: "a piece CID (v1 with --piece-size, or v2)"},
		&cli.Uint64Flag{Name: "piece-size", Usage: "padded size of --piece-cid in bytes"},
		&cli.StringFlag{Name: "piece-file", Aliases: []string{"pf"}, Usage: "CSV file of pieceCid,pieceSize,miner,termMin,termMax,expiration"},
		&cli.Int64Flag{Name: "term-min", Aliases: []string{"tmin"}, Value: int64(client.DefaultTermMin), Usage: "the shortest time (epochs) the provider must keep the piece"},
		&cli.Int64Flag{Name: "term-max", Aliases: []string{"tmax"}, Value: int64(client.DefaultTermMax), Usage: "the longest time (epochs) the provider earns power for the piece"},
		&cli.Int64Flag{Name: "expiration", Value: int64(client.DefaultAllocationExpiration), Usage: "epochs from now until which the provider can claim the allocation"},
		&cli.IntFlag{Name: "batch-size", Value: client.DefaultAllocationBatch, Usage: "allocations per message"},
		walletFlag, jsonFlag,
	},
	Action: allocate,
}

// allocationRequests reads the pieces and providers of the flags.
func allocationRequests(c *cli.Context) ([]client.AllocationRequest, error) {
	infos, file := c.StringSlice("piece-info"), c.String("piece-file")
	if pc := c.String("piece-cid"); pc != "" {
		infos = append(infos, fmt.Sprintf("%s=%d", pc, c.Uint64("piece-size")))
	} else if c.IsSet("piece-size") {
		return nil, errors.New("--piece-size needs --piece-cid")
	}
	if file != "" {
		if len(infos) > 0 || len(c.StringSlice("provider")) > 0 {
			return nil, errors.New("--piece-file lists pieces and providers: give no --piece-info, --piece-cid or --provider with it")
		}
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("opening the piece file: %w", err)
		}
		defer f.Close()
		return client.ReadPieceFile(f)
	}
	if len(infos) == 0 {
		return nil, errors.New("give the pieces: --piece-info CID=SIZE, --piece-cid and --piece-size, or --piece-file")
	}
	if len(c.StringSlice("provider")) == 0 {
		return nil, errors.New("give at least one --provider (or use --piece-file)")
	}
	var reqs []client.AllocationRequest
	for _, p := range c.StringSlice("provider") {
		prov, err := parseMiner(p)
		if err != nil {
			return nil, err
		}
		for _, pi := range infos {
			pc, size, err := client.ParsePieceInfo(pi)
			if err != nil {
				return nil, err
			}
			reqs = append(reqs, client.AllocationRequest{
				Provider: prov, PieceCID: pc, PieceSize: size, TermMin: abi.ChainEpoch(c.Int64("term-min")),
				TermMax: abi.ChainEpoch(c.Int64("term-max")), Expiration: abi.ChainEpoch(c.Int64("expiration")),
			})
		}
	}
	return reqs, nil
}

func allocate(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("allocate: unexpected argument %q (pieces are given with flags)", c.Args().First())
	}
	reqs, err := allocationRequests(c)
	if err != nil {
		return fmt.Errorf("allocate: %w", err)
	}
	r, from, n, closer, err := openWallet(c)
	if err != nil {
		return err
	}
	defer closer()
	type result struct {
		Allocations []client.AllocationInfo `json:"allocations"`
		Messages    []string                `json:"messages"`
	}
	res := result{Allocations: []client.AllocationInfo{}, Messages: []string{}}
	done, err := client.Allocate(c.Context, n, r, from, reqs, c.Int("batch-size"), func(mc cid.Cid) {
		res.Messages = append(res.Messages, mc.String())
		if !c.Bool("json") {
			fmt.Fprintf(c.App.ErrWriter, "message %s sent, waiting…\n", mc)
		}
	})
	if len(done) > 0 {
		id, lerr := n.StateLookupID(c.Context, from, chain.EmptyTSK)
		if lerr != nil {
			return fmt.Errorf("allocate: resolving %s: %w", from, lerr)
		}
		clientID, _ := address.IDFromAddress(id)
		for _, d := range done {
			a := chain.Allocation{
				Client: abi.ActorID(clientID), Provider: d.Request.Provider, Data: d.Request.Data, Size: d.Request.Size,
				TermMin: d.Request.TermMin, TermMax: d.Request.TermMax, Expiration: d.Request.Expiration,
			}
			res.Allocations = append(res.Allocations, client.NewAllocationInfo(d.ID, &a))
		}
	}
	if err != nil {
		if len(done) > 0 {
			_ = printAllocations(c, res, res.Allocations)
		}
		return fmt.Errorf("allocate: %w", err)
	}
	return printAllocations(c, res, res.Allocations)
}

// printAllocations prints v as JSON, or the allocations as a table.
func printAllocations(c *cli.Context, v any, as []client.AllocationInfo) error {
	return cliutil.Print(c, v, func(w io.Writer) {
		if len(as) == 0 {
			fmt.Fprintln(w, "no allocations")
			return
		}
		fmt.Fprintf(w, "%-10s %-9s %-9s %-64s %10s %8s %8s %10s\n", "ID", "CLIENT", "PROVIDER", "PIECE", "SIZE", "TERMMIN", "TERMMAX", "EXPIRATION")
		for _, a := range as {
			fmt.Fprintf(w, "%-10d %-9s %-9s %-64s %10d %8d %8d %10d\n", a.AllocationID, a.Client, a.Provider, a.PieceCID, a.PieceSize, a.TermMin, a.TermMax, a.Expiration)
		}
	})
}

// allocationsCmd lists a client's allocations (boost list-allocations) and
// the claims made of them.
var allocationsCmd = &cli.Command{
	Name:      "allocations",
	Usage:     "list a client's DataCap allocations, or with --claims the claims providers made of them",
	ArgsUsage: "[CLIENT_ADDRESS]",
	Description: "Without an address, the wallet's (--wallet or the default). --provider keeps one provider's\n" +
		"(repeatable); --claims without --provider reads every claim on the chain, which is slow on mainnet.",
	Flags: []cli.Flag{
		&cli.StringSliceFlag{Name: "provider", Aliases: []string{"miner", "m", "p"}, Usage: "only this provider's (f0…), repeatable"},
		&cli.BoolFlag{Name: "claims", Usage: "list the claims instead of the allocations"},
		walletFlag, jsonFlag,
	},
	Action: listAllocations,
}

func listAllocations(c *cli.Context) error {
	if c.NArg() > 1 {
		return errors.New("allocations: give at most one client address")
	}
	var providers []address.Address
	for _, p := range c.StringSlice("provider") {
		a, err := parseMiner(p)
		if err != nil {
			return fmt.Errorf("allocations: %w", err)
		}
		providers = append(providers, a)
	}
	r, err := openRepo(c)
	if err != nil && c.NArg() == 0 {
		return err
	}
	var who address.Address
	if c.NArg() == 1 {
		if who, err = address.NewFromString(c.Args().First()); err != nil {
			return fmt.Errorf("allocations: %q is not an address: %w", c.Args().First(), err)
		}
	} else if who, err = clientAddress(c, r); err != nil {
		return err
	}
	n, closer, err := dialChain(c, r)
	if err != nil {
		return err
	}
	defer closer()
	if c.Bool("claims") {
		cs, err := client.ListClaims(c.Context, n, who, providers)
		if err != nil {
			return fmt.Errorf("allocations: %w", err)
		}
		if cs == nil {
			cs = []client.ClaimInfo{}
		}
		return cliutil.Print(c, map[string]any{"claims": cs}, func(w io.Writer) {
			if len(cs) == 0 {
				fmt.Fprintln(w, "no claims")
				return
			}
			fmt.Fprintf(w, "%-10s %-9s %-9s %-64s %10s %8s %8s %10s %8s\n", "ID", "CLIENT", "PROVIDER", "PIECE", "SIZE", "TERMMIN", "TERMMAX", "TERMSTART", "SECTOR")
			for _, x := range cs {
				fmt.Fprintf(w, "%-10d %-9s %-9s %-64s %10d %8d %8d %10d %8d\n", x.ClaimID, x.Client, x.Provider, x.PieceCID, x.PieceSize, x.TermMin, x.TermMax, x.TermStart, x.Sector)
			}
		})
	}
	as, err := client.ListAllocations(c.Context, n, who, providers)
	if err != nil {
		return fmt.Errorf("allocations: %w", err)
	}
	return printAllocations(c, map[string]any{"allocations": as}, as)
}
