package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v9/verifreg"
	"github.com/ipfs/go-cid"
	"github.com/oklog/ulid/v2"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/httpdeal/mk20"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/piece"
)

// The flags `ferry deal` takes for a direct (mk20 ddo_v1) deal, beside
// --provider, --http-url, --http-headers, --commp, --duration,
// --start-epoch, --skip-ipni-announce and --wallet.
var ddoFlags = []cli.Flag{
	&cli.BoolFlag{Name: "ddo", Usage: "make a direct data onboarding deal over Curio's Market 2.0 HTTP API (mk20 ddo_v1)"},
	&cli.BoolFlag{Name: "upload", Usage: "with --ddo: upload FILE to the provider in chunks (resuming missing chunks) instead of --http-url"},
	&cli.Uint64Flag{Name: "allocation-id", Usage: "with --ddo: the client's verified allocation for the piece"},
	&cli.Int64Flag{Name: "chunk-size", Usage: "with --upload: chunk size in bytes, a power of two of 16 MiB to 256 MiB", Value: client.DefaultUploadChunk},
	&cli.StringFlag{Name: "deal-id", Usage: "with --ddo: the deal's ULID (default: a new one; give the old one to resume an upload)"},
	&cli.StringSliceFlag{Name: "fallback-url", Usage: "with --ddo and --http-url: another URL of the same payload, tried when the ones before it fail (repeat it; --http-headers are not sent to it)"},
}

// ddoOutput is what `ferry deal --ddo` prints.
type ddoOutput struct {
	DealID       string `json:"dealId"`
	Provider     string `json:"provider"`
	ClientWallet string `json:"clientWallet"`
	ProviderURL  string `json:"providerUrl"`
	PieceCID     string `json:"pieceCid"`   // v2
	PieceCIDV1   string `json:"pieceCidV1"` // v1
	PieceSize    uint64 `json:"pieceSize"`
	RawSize      uint64 `json:"rawSize"`
	URL          string `json:"url,omitempty"`
	Uploaded     bool   `json:"uploaded"`
	StartEpoch   int64  `json:"startEpoch"`
	Duration     int64  `json:"duration"`
	AllocationID uint64 `json:"allocationId,omitempty"`
	Accepted     bool   `json:"accepted"`
	Message      string `json:"message,omitempty"`
	Status       string `json:"status,omitempty"`
}

// mk20Client finds the provider's Market 2.0 API among the miner's
// on-chain addresses.
func mk20Client(c *cli.Context, r *client.Repo, miner, wallet address.Address) (*client.MK20Client, error) {
	n, closer, err := dialChain(c, r)
	if err != nil {
		return nil, err
	}
	defer closer()
	p, err := client.LookupProvider(c.Context, n, miner)
	if err != nil {
		return nil, err
	}
	mc, err := client.FindMK20(c.Context, client.DealBaseURLs(p.AddrInfo.Addrs), client.MK20Client{Client: wallet, Sign: r.Wallet.Signer(wallet)})
	if err != nil {
		return nil, fmt.Errorf("miner %s: finding its Market 2.0 API: %w", miner, err)
	}
	return mc, nil
}

func ddoDealAction(c *cli.Context) error {
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	miner, err := parseMiner(c.String("provider"))
	if err != nil {
		return err
	}
	wallet, err := clientAddress(c, r)
	if err != nil {
		return err
	}
	req := client.DDORequest{Client: wallet, Provider: miner, URL: c.String("http-url"), FallbackURLs: c.StringSlice("fallback-url"), SkipIPNIAnnounce: c.Bool("skip-ipni-announce"),
		Duration: abi.ChainEpoch(c.Int64("duration")), StartEpoch: abi.ChainEpoch(c.Int64("start-epoch")),
		AllocationID: verifreg.AllocationId(c.Uint64("allocation-id"))}
	if req.Headers, err = client.ParseHTTPHeaders(c.StringSlice("http-headers")); err != nil {
		return fmt.Errorf("--http-headers: %w", err)
	}
	if s := c.String("deal-id"); s != "" {
		if req.ID, err = ulid.ParseStrict(s); err != nil {
			return fmt.Errorf("--deal-id %q is not a ULID: %w", s, err)
		}
	}
	upload := c.Bool("upload")
	file := c.Args().First()
	switch {
	case c.NArg() > 1:
		return errors.New("deal --ddo: at most one FILE")
	case upload && file == "":
		return errors.New("--upload needs the FILE to upload")
	case upload && req.URL != "":
		return errors.New("--upload and --http-url exclude each other")
	case !upload && req.URL == "":
		return errors.New("deal --ddo needs --http-url or --upload FILE")
	case req.URL == "" && len(req.FallbackURLs) > 0:
		return errors.New("--fallback-url needs --http-url")
	}
	if file != "" {
		prog := cliutil.NewProgress(c.Bool("json"))
		cm, err := piece.FromFile(c.Context, file, func(done, total uint64) {
			prog.Show("computing CommP: %s / %s", cliutil.HumanBytes(int64(done)), cliutil.HumanBytes(int64(total)))
		})
		prog.Done()
		if err != nil {
			return err
		}
		req.PieceCID = cm.CIDv2()
	}
	if c.IsSet("commp") {
		pc, err := cid.Parse(c.String("commp"))
		if err != nil {
			return fmt.Errorf("--commp %q: %w", c.String("commp"), err)
		}
		if req.PieceCID.Defined() && pc != req.PieceCID {
			return fmt.Errorf("the piece CID v2 of %s is %s, not --commp %s", file, req.PieceCID, pc)
		}
		req.PieceCID = pc
	}
	pi, err := mk20.ParsePieceCID(req.PieceCID)
	if err != nil {
		return fmt.Errorf("deal --ddo needs a piece CID v2 (give FILE or --commp bafkzcib…): %w", err)
	}
	if req.StartEpoch == 0 {
		n, closer, err := dialChain(c, r)
		if err != nil {
			return err
		}
		head, err := n.ChainHead(c.Context)
		closer()
		if err != nil {
			return fmt.Errorf("reading the chain head: %w", err)
		}
		req.StartEpoch = head.Height() + client.DefaultStartDelay
	}
	mc, err := mk20Client(c, r, miner, wallet)
	if err != nil {
		return err
	}
	d := req.Deal()
	out := ddoOutput{DealID: d.Identifier.String(), Provider: miner.String(), ClientWallet: wallet.String(), ProviderURL: mc.BaseURL,
		PieceCID: req.PieceCID.String(), PieceCIDV1: pi.PieceCID.String(), PieceSize: uint64(pi.Size), RawSize: pi.RawSize,
		URL: req.URL, StartEpoch: int64(*d.Products.DDOV1.StartEpoch), Duration: int64(d.Products.DDOV1.Duration), AllocationID: uint64(req.AllocationID)}
	human := func(w io.Writer) {
		fmt.Fprintf(w, "deal ID:        %s\n", out.DealID)
		fmt.Fprintf(w, "provider:       %s at %s\n", out.Provider, out.ProviderURL)
		fmt.Fprintf(w, "client wallet:  %s\n", out.ClientWallet)
		fmt.Fprintf(w, "piece CID:      %s (v1 %s, %s piece, %d bytes)\n", out.PieceCID, out.PieceCIDV1, cliutil.HumanBytes(int64(out.PieceSize)), out.RawSize)
		fmt.Fprintf(w, "epochs:         from %d for %d\n", out.StartEpoch, out.Duration)
		if out.Accepted {
			fmt.Fprintln(w, "accepted by the provider")
		}
		if out.Uploaded {
			fmt.Fprintln(w, "uploaded")
		}
	}
	// A deal named by --deal-id that the provider has already is resumed,
	// not proposed again (its start epoch, computed anew, would differ).
	resumed := false
	if c.IsSet("deal-id") {
		if st, err := mc.Status(c.Context, d.Identifier); err == nil && st.DDOV1 != nil {
			resumed = true
			out.Message = "resumed: the provider has the deal (" + string(st.DDOV1.State) + ")"
		}
	}
	if !resumed {
		if err := mc.MakeDeal(c.Context, d); err != nil {
			var me *client.MK20Error
			if errors.As(err, &me) {
				out.Message = me.Reason
				if c.Bool("json") {
					_ = cliutil.Print(c, out, human)
				}
				return fmt.Errorf("%w by miner %s (%d): %s", client.ErrRejected, miner, me.Code, me.Reason)
			}
			return err
		}
	}
	out.Accepted = true
	if upload {
		prog := cliutil.NewProgress(c.Bool("json"))
		err := mc.Upload(c.Context, d.Identifier, file, c.Int64("chunk-size"), func(done, total uint64) {
			prog.Show("upload: %s / %s", cliutil.HumanBytes(int64(done)), cliutil.HumanBytes(int64(total)))
		})
		prog.Done()
		if err != nil {
			return fmt.Errorf("deal %s: uploading %s (run again with --deal-id %s to send what is missing): %w", d.Identifier, file, d.Identifier, err)
		}
		out.Uploaded = true
	}
	if st, err := mc.Status(c.Context, d.Identifier); err == nil && st.DDOV1 != nil {
		out.Status = string(st.DDOV1.State)
	}
	if err := cliutil.Print(c, out, human); err != nil {
		return err
	}
	if !c.Bool("json") {
		fmt.Fprintf(c.App.Writer, "follow the deal with:\n  ferry deal-status --provider %s --deal-uuid %s --watch\n", out.Provider, out.DealID)
	}
	return nil
}

// mk20StatusOutput is what `ferry deal-status` prints for an mk20 deal.
type mk20StatusOutput struct {
	DealID       string `json:"dealId"`
	Provider     string `json:"provider"`
	ClientWallet string `json:"clientWallet"`
	Status       string `json:"status"`
	Error        string `json:"error,omitempty"`
}

// mk20StatusAction follows an mk20 deal (--deal-uuid is a ULID).
func mk20StatusAction(c *cli.Context, id ulid.ULID, miner address.Address) error {
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	wallet, err := clientAddress(c, r)
	if err != nil {
		return err
	}
	mc, err := mk20Client(c, r, miner, wallet)
	if err != nil {
		return err
	}
	poll := func() (mk20StatusOutput, error) {
		o := mk20StatusOutput{DealID: id.String(), Provider: miner.String(), ClientWallet: wallet.String()}
		st, err := mc.Status(c.Context, id)
		if err != nil {
			return o, fmt.Errorf("deal %s: %w", id, err)
		}
		if st.DDOV1 == nil {
			return o, fmt.Errorf("deal %s: the provider has no ddo_v1 status for it", id)
		}
		o.Status, o.Error = string(st.DDOV1.State), st.DDOV1.ErrorMsg
		return o, nil
	}
	show := func(w io.Writer, o mk20StatusOutput) {
		fmt.Fprintf(w, "deal %s: %s", o.DealID, o.Status)
		if o.Error != "" {
			fmt.Fprintf(w, ", error: %s", o.Error)
		}
		fmt.Fprintln(w)
	}
	if !c.Bool("watch") {
		o, err := poll()
		if err != nil {
			return err
		}
		return cliutil.Print(c, o, func(w io.Writer) { show(w, o) })
	}
	var last mk20StatusOutput
	t := time.NewTicker(max(c.Duration("interval"), 100*time.Millisecond))
	defer t.Stop()
	for {
		o, err := poll()
		if err == nil && o != last {
			last = o
			if c.Bool("json") {
				_ = cliutil.Print(c, o, nil)
			} else {
				fmt.Fprintf(c.App.Writer, "%s  ", time.Now().Format("15:04:05"))
				show(c.App.Writer, o)
			}
			switch mk20.State(o.Status) {
			case mk20.StateComplete:
				return nil
			case mk20.StateFailed:
				return fmt.Errorf("deal %s %w: %s", id, client.ErrDealFailed, o.Error)
			}
		}
		select {
		case <-c.Context.Done():
			return c.Context.Err()
		case <-t.C:
		}
	}
}

// isULID tells a Market 2.0 deal ID from a Boost deal UUID.
func isULID(s string) (ulid.ULID, bool) {
	if len(s) != ulid.EncodedSize {
		return ulid.ULID{}, false
	}
	id, err := ulid.ParseStrict(s)
	return id, err == nil
}
