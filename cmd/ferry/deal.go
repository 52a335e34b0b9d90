package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/wire"
)

var dealCmd = &cli.Command{
	Name:      "deal",
	Usage:     "propose a storage deal to a provider",
	ArgsUsage: "[FILE.car]",
	Description: "With Boost's flags: --provider, --http-url, --commp, --car-size, --piece-size,\n" +
		"--payload-cid. Given a CAR file, the last four are computed from it (and checked\n" +
		"when also given). With --serve, ferry serves the file over HTTP itself, proposes\n" +
		"with that URL and stays up until the provider has the data.\n\n" +
		"Defaults: --duration 518400 epochs (180 days); --start-epoch chain head + 5760\n" +
		"(two days, Boost's default); --storage-price the provider's ask (verified price\n" +
		"for --verified) in attoFIL per GiB per epoch, times the piece size, rounded up;\n" +
		"--provider-collateral the chain's minimum for the piece size.\n\n" +
		"Prints the deal UUID. A rejected deal exits non-zero with the provider's reason.\n\n" +
		"With --ddo, a direct data onboarding deal (mk20 ddo_v1, Curio's Market 2.0 HTTP API):\n" +
		"the provider downloads --http-url, or --upload sends FILE in chunks; the piece CID v2\n" +
		"comes from FILE or --commp; --allocation-id names a verified allocation. Prints the\n" +
		"deal's ULID, which deal-status --deal-uuid takes.",
	Flags: append([]cli.Flag{
		&cli.StringFlag{Name: "provider", Usage: "the storage provider's miner address (f0…)", Required: true},
		&cli.StringFlag{Name: "http-url", Usage: "URL the provider downloads the CAR file from"},
		&cli.StringSliceFlag{Name: "http-headers", Usage: "HTTP headers for the download, Key=Value (repeatable)"},
		&cli.StringFlag{Name: "commp", Usage: "piece CID (CommP) of the CAR file"},
		&cli.Uint64Flag{Name: "car-size", Usage: "size of the CAR file in bytes"},
		&cli.Uint64Flag{Name: "piece-size", Usage: "padded piece size of the CAR file"},
		&cli.StringFlag{Name: "payload-cid", Usage: "root CID of the CAR file"},
		&cli.Int64Flag{Name: "duration", Usage: "deal duration in epochs", Value: int64(client.DefaultDuration)},
		&cli.Int64Flag{Name: "start-epoch", Usage: "epoch by which the deal must be sealed (default: head + 5760)"},
		&cli.StringFlag{Name: "storage-price", Usage: "price in attoFIL per GiB per epoch (default: the provider's ask)"},
		&cli.StringFlag{Name: "provider-collateral", Usage: "provider collateral in attoFIL (default: the chain's minimum)"},
		&cli.BoolFlag{Name: "verified", Usage: "make a verified deal (uses DataCap)"},
		&cli.BoolFlag{Name: "remove-unsealed-copy", Usage: "ask the provider to keep no unsealed copy"},
		&cli.BoolFlag{Name: "skip-ipni-announce", Usage: "ask the provider not to announce the deal to IPNI"},
		&cli.BoolFlag{Name: "offline", Usage: "offline deal: the provider imports the data itself"},
		&cli.BoolFlag{Name: "serve", Usage: "serve FILE.car over HTTP and wait until the provider has it"},
		&cli.StringFlag{Name: "serve-addr", Usage: "address to serve on with --serve (default: a free loopback port, or ServeAddr in the config)"},
		&cli.DurationFlag{Name: "transfer-timeout", Usage: "with --serve, give up waiting after this long (0: no limit)"},
		walletFlag, jsonFlag,
	}, ddoFlags...),
	Action: dealAction,
}

// dealOutput is what `ferry deal` prints. The first keys are those of
// `boost deal --json`, with Boost's value types (epochs and attoFIL
// amounts as strings), so that scripts written for it read this too; url
// is there for online deals only, as in Boost.
type dealOutput struct {
	DealUUID           string `json:"dealUuid"`
	Provider           string `json:"provider"`
	ClientWallet       string `json:"clientWallet"`
	PayloadCID         string `json:"payloadCid"`
	URL                string `json:"url,omitempty"`
	Commp              string `json:"commp"`
	StartEpoch         string `json:"startEpoch"`
	EndEpoch           string `json:"endEpoch"`
	ProviderCollateral string `json:"providerCollateral"`

	Accepted             bool   `json:"accepted"`
	Message              string `json:"message,omitempty"` // the provider's reason for a rejection
	PieceSize            uint64 `json:"pieceSize"`
	CARSize              uint64 `json:"carSize"`
	StoragePricePerEpoch string `json:"storagePricePerEpoch"` // attoFIL for the whole piece
	Verified             bool   `json:"verified"`
	SignedProposalCID    string `json:"signedProposalCid"`
	// With --serve, once the provider has the data:
	Status        string `json:"status,omitempty"`
	BytesReceived uint64 `json:"bytesReceived,omitempty"`
}

// newDealOutput describes the proposal res made for req.
func newDealOutput(req client.DealRequest, res *client.DealResult) dealOutput {
	p := res.Proposal.Proposal
	out := dealOutput{
		DealUUID: res.DealUUID.String(), Provider: p.Provider.String(), ClientWallet: p.Client.String(),
		PayloadCID: req.PayloadCID.String(), Commp: p.PieceCID.String(),
		StartEpoch: p.StartEpoch.String(), EndEpoch: p.EndEpoch.String(), ProviderCollateral: p.ProviderCollateral.String(),
		Accepted: res.Accepted, Message: res.Message, PieceSize: uint64(p.PieceSize), CARSize: req.CARSize,
		StoragePricePerEpoch: p.StoragePricePerEpoch.String(), Verified: p.VerifiedDeal,
		SignedProposalCID: res.SignedProposalCID.String(),
	}
	if !req.Offline {
		out.URL = req.HTTPURL
	}
	return out
}

func dealAction(c *cli.Context) error {
	if c.Bool("ddo") {
		return ddoDealAction(c)
	}
	for _, f := range []string{"upload", "allocation-id", "deal-id"} {
		if c.IsSet(f) {
			return fmt.Errorf("--%s is for --ddo deals", f)
		}
	}
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	req, err := dealRequestFromFlags(c, r)
	if err != nil {
		return err
	}
	serve := c.Bool("serve")
	var fsrv *client.FileServer
	if serve {
		addr := c.String("serve-addr")
		if addr == "" {
			addr = r.Config.ServeAddr
		}
		if fsrv, err = client.ServeFile(c.Args().First(), addr); err != nil {
			return err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = fsrv.Close(ctx)
		}()
		req.HTTPURL = fsrv.URL
	}

	n, closer, err := dialChain(c, r)
	if err != nil {
		return err
	}
	defer closer()
	h, err := client.NewHost()
	if err != nil {
		return err
	}
	defer h.Close()

	res, err := client.MakeDeal(c.Context, n, h, r.Wallet, req)
	if res == nil {
		return err
	}
	out := newDealOutput(req, res)
	human := func(w io.Writer) {
		fmt.Fprintf(w, "deal UUID:            %s\n", out.DealUUID)
		fmt.Fprintf(w, "provider:             %s\n", out.Provider)
		fmt.Fprintf(w, "client wallet:        %s\n", out.ClientWallet)
		fmt.Fprintf(w, "payload CID:          %s\n", out.PayloadCID)
		fmt.Fprintf(w, "piece CID:            %s (%s piece, %d-byte CAR)\n", out.Commp, cliutil.HumanBytes(int64(out.PieceSize)), out.CARSize)
		if out.URL != "" {
			fmt.Fprintf(w, "url:                  %s\n", out.URL)
		}
		fmt.Fprintf(w, "epochs:               %s … %s\n", out.StartEpoch, out.EndEpoch)
		fmt.Fprintf(w, "price per epoch:      %s attoFIL\n", out.StoragePricePerEpoch)
		fmt.Fprintf(w, "provider collateral:  %s\n", chain.FormatFIL(res.Proposal.Proposal.ProviderCollateral))
		fmt.Fprintf(w, "signed proposal CID:  %s\n", out.SignedProposalCID)
		if out.Accepted {
			fmt.Fprintln(w, "accepted by the provider")
		}
	}
	if err != nil { // rejected
		if c.Bool("json") {
			_ = cliutil.Print(c, out, human)
		}
		return err
	}
	if !serve {
		return cliutil.Print(c, out, human)
	}
	if !c.Bool("json") {
		human(c.App.Writer)
	}

	// --serve: stay up until the provider has the data.
	ctx := c.Context
	if d := c.Duration("transfer-timeout"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	prov, err := client.LookupProvider(ctx, n, req.Provider)
	if err != nil {
		return err
	}
	sw := &client.StatusWatcher{Host: h, Provider: prov, Wallet: r.Wallet, Client: req.Client, DealUUID: res.DealUUID}
	prog := cliutil.NewProgress(c.Bool("json"))
	final, err := sw.WaitTransferred(ctx, func(s *wire.DealStatusResponse) {
		st := ""
		if s.DealStatus != nil {
			st = s.DealStatus.Status
		}
		prog.Show("transfer: %s / %s received (status %s, %s served)", cliutil.HumanBytes(int64(s.NBytesReceived)), cliutil.HumanBytes(int64(req.CARSize)), st, cliutil.HumanBytes(fsrv.Served()))
	})
	prog.Done()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("deal %s: the provider did not get the data within %s (%s served so far)", res.DealUUID, c.Duration("transfer-timeout"), cliutil.HumanBytes(fsrv.Served()))
		}
		return fmt.Errorf("deal %s: waiting for the transfer: %w", res.DealUUID, err)
	}
	out.BytesReceived = final.NBytesReceived
	if final.DealStatus != nil {
		out.Status = final.DealStatus.Status
	}
	if c.Bool("json") {
		return cliutil.Print(c, out, human)
	}
	fmt.Fprintf(c.App.Writer, "the provider has the data (status %s); follow the deal with:\n  ferry deal-status --provider %s --deal-uuid %s --watch\n", out.Status, out.Provider, out.DealUUID)
	return nil
}

// dealRequestFromFlags turns the flags (and the CAR file, when given) into
// a request.
func dealRequestFromFlags(c *cli.Context, r *client.Repo) (client.DealRequest, error) {
	var req client.DealRequest
	var err error
	if req.Provider, err = parseMiner(c.String("provider")); err != nil {
		return req, err
	}
	if req.Client, err = clientAddress(c, r); err != nil {
		return req, err
	}
	if c.NArg() > 1 {
		return req, fmt.Errorf("deal: at most one CAR file")
	}
	if c.IsSet("payload-cid") {
		if req.PayloadCID, err = cid.Parse(c.String("payload-cid")); err != nil {
			return req, fmt.Errorf("--payload-cid %q: %w", c.String("payload-cid"), err)
		}
	}
	if c.IsSet("commp") {
		if req.PieceCID, err = cid.Parse(c.String("commp")); err != nil {
			return req, fmt.Errorf("--commp %q: %w", c.String("commp"), err)
		}
	}
	req.CARSize = c.Uint64("car-size")
	req.PieceSize = abi.PaddedPieceSize(c.Uint64("piece-size"))
	req.Duration = abi.ChainEpoch(c.Int64("duration"))
	req.StartEpoch = abi.ChainEpoch(c.Int64("start-epoch"))
	if c.IsSet("storage-price") {
		v, err := big.FromString(c.String("storage-price"))
		if err != nil {
			return req, fmt.Errorf("--storage-price %q is not an attoFIL integer", c.String("storage-price"))
		}
		req.PricePerGiBEpoch = &v
	}
	if c.IsSet("provider-collateral") {
		v, err := big.FromString(c.String("provider-collateral"))
		if err != nil {
			return req, fmt.Errorf("--provider-collateral %q is not an attoFIL integer", c.String("provider-collateral"))
		}
		req.ProviderCollateral = &v
	}
	req.Verified = c.Bool("verified")
	req.RemoveUnsealedCopy = c.Bool("remove-unsealed-copy")
	req.SkipIPNIAnnounce = c.Bool("skip-ipni-announce")
	req.Offline = c.Bool("offline")
	req.HTTPURL = c.String("http-url")
	if req.HTTPHeaders, err = client.ParseHTTPHeaders(c.StringSlice("http-headers")); err != nil {
		return req, fmt.Errorf("--http-headers: %w", err)
	}
	if c.Bool("serve") {
		if c.NArg() != 1 {
			return req, fmt.Errorf("--serve needs the CAR file to serve")
		}
		if req.HTTPURL != "" || req.Offline {
			return req, fmt.Errorf("--serve chooses the URL itself: drop --http-url / --offline")
		}
	}
	if c.NArg() == 0 {
		return req, req.Validate()
	}

	path := c.Args().First()
	prog := cliutil.NewProgress(c.Bool("json"))
	info, err := client.InspectCAR(c.Context, path, func(n int64) { prog.Show("computing CommP: %s read", cliutil.HumanBytes(n)) })
	prog.Done()
	if err != nil {
		return req, err
	}
	if req.PayloadCID.Defined() && req.PayloadCID != info.Root {
		return req, fmt.Errorf("the root of %s is %s, not --payload-cid %s", path, info.Root, req.PayloadCID)
	}
	req.PayloadCID = info.Root
	if req.CARSize != 0 && req.CARSize != info.Size {
		return req, fmt.Errorf("%s is %d bytes, not --car-size %d", path, info.Size, req.CARSize)
	}
	req.CARSize = info.Size
	if req.PieceSize == 0 {
		req.PieceSize = info.PieceSize
	}
	pc, err := info.PieceCIDFor(req.PieceSize)
	if err != nil {
		return req, fmt.Errorf("--piece-size: %w", err)
	}
	if req.PieceCID.Defined() && req.PieceCID != pc {
		return req, fmt.Errorf("the piece CID of %s is %s, not --commp %s", path, pc, req.PieceCID)
	}
	req.PieceCID = pc
	if c.Bool("serve") {
		// The URL is known once the server listens; validate the rest.
		req.HTTPURL = "http://127.0.0.1/"
		err = req.Validate()
		req.HTTPURL = ""
		return req, err
	}
	return req, req.Validate()
}

var dealStatusCmd = &cli.Command{
	Name:  "deal-status",
	Usage: "ask a provider for a deal's status",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "provider", Usage: "the storage provider's miner address (f0…)", Required: true},
		&cli.StringFlag{Name: "deal-uuid", Aliases: []string{"deal-id"}, Usage: "the deal's UUID, or the ULID of a --ddo deal", Required: true},
		&cli.BoolFlag{Name: "watch", Usage: "follow the deal until it completes or fails"},
		&cli.DurationFlag{Name: "interval", Usage: "time between polls with --watch", Value: 2 * time.Second},
		walletFlag, jsonFlag,
	},
	Action: dealStatusAction,
}

// statusOutput is what `ferry deal-status` prints. The first keys are
// those of `boost deal-status --json` (publishCid is null until the deal
// is published, as there); the rest are Ferry's.
type statusOutput struct {
	DealUUID      string  `json:"dealUuid"`
	Provider      string  `json:"provider"`
	ClientWallet  string  `json:"clientWallet"`
	Label         string  `json:"label"`
	ChainDealID   uint64  `json:"chainDealId"`
	Status        string  `json:"status"`
	SealingStatus string  `json:"sealingStatus"`
	StatusMessage string  `json:"statusMessage"`
	PublishCid    *string `json:"publishCid"`

	Error             string `json:"error,omitempty"` // why the deal failed, or its pending retry
	PieceCID          string `json:"pieceCid"`
	SignedProposalCID string `json:"signedProposalCid"`
	IsOffline         bool   `json:"isOffline"`
	TransferSize      uint64 `json:"transferSize"`
	BytesReceived     uint64 `json:"bytesReceived"`
}

// newStatusOutput describes the provider's answer about a deal of client
// with provider.
func newStatusOutput(r *wire.DealStatusResponse, provider, client address.Address) statusOutput {
	o := statusOutput{
		DealUUID: uuid.UUID(r.DealUUID).String(), Provider: provider.String(), ClientWallet: client.String(),
		Error: r.Error, IsOffline: r.IsOffline, TransferSize: r.TransferSize, BytesReceived: r.NBytesReceived,
	}
	s := r.DealStatus
	if s == nil {
		return o
	}
	o.Status, o.SealingStatus, o.ChainDealID = s.Status, s.SealingStatus, uint64(s.ChainDealID)
	o.StatusMessage = statusMessage(r)
	o.Label = labelText(s.Proposal.Label)
	if s.Error != "" {
		o.Error = s.Error
	}
	if s.PublishCid != nil {
		pc := s.PublishCid.String()
		o.PublishCid = &pc
	}
	if s.SignedProposalCid.Defined() {
		o.SignedProposalCID = s.SignedProposalCid.String()
	}
	if s.Proposal.PieceCID.Defined() {
		o.PieceCID = s.Proposal.PieceCID.String()
	}
	return o
}

// labelText is a deal label as text: the string, or the bytes in hex
// after "bytes:".
func labelText(l market.DealLabel) string {
	if l.IsString() {
		s, _ := l.ToString()
		return s
	}
	b, _ := l.ToBytes()
	return "bytes:" + hex.EncodeToString(b)
}

// statusMessage says where a deal is in words, with Boost's words for the
// checkpoints Boost has (the checkpoint names are client.Checkpoints).
func statusMessage(r *wire.DealStatusResponse) string {
	s := r.DealStatus
	switch s.Status {
	case "Accepted":
		switch {
		case r.IsOffline:
			return "Awaiting Offline Data Import"
		case r.NBytesReceived == 0:
			return "Transfer Queued"
		case r.TransferSize > 0 && r.NBytesReceived >= r.TransferSize:
			return "Transfer Complete"
		case r.TransferSize > 0:
			return fmt.Sprintf("Transferring %.2f%%", 100*float64(r.NBytesReceived)/float64(r.TransferSize))
		}
		return "Transferring"
	case "Transferred":
		return "Ready to Publish"
	case "Published":
		return "Awaiting Publish Confirmation"
	case "PublishConfirmed":
		return "Adding to Sector"
	case "AddedPiece":
		return "Announcing"
	case "IndexedAndAnnounced":
		if s.SealingStatus != "" {
			return "Sealing: " + s.SealingStatus
		}
		return "Sealing"
	case "Complete":
		if s.Error != "" {
			return "Error: " + s.Error
		}
		return "Active"
	}
	return s.Status
}

func printStatus(w io.Writer, o statusOutput) {
	fmt.Fprintf(w, "deal %s: %s", o.DealUUID, o.Status)
	if o.SealingStatus != "" {
		fmt.Fprintf(w, ", sealing: %s", o.SealingStatus)
	}
	if o.TransferSize > 0 && o.Status == "Accepted" {
		fmt.Fprintf(w, ", transfer %s / %s", cliutil.HumanBytes(int64(o.BytesReceived)), cliutil.HumanBytes(int64(o.TransferSize)))
	}
	if o.ChainDealID != 0 {
		fmt.Fprintf(w, ", chain deal %d", o.ChainDealID)
	}
	if o.Error != "" {
		fmt.Fprintf(w, ", error: %s", o.Error)
	}
	fmt.Fprintln(w)
}

func dealStatusAction(c *cli.Context) error {
	if id, ok := isULID(c.String("deal-uuid")); ok {
		miner, err := parseMiner(c.String("provider"))
		if err != nil {
			return err
		}
		return mk20StatusAction(c, id, miner)
	}
	id, err := uuid.Parse(c.String("deal-uuid"))
	if err != nil {
		return fmt.Errorf("--deal-uuid %q: %w", c.String("deal-uuid"), err)
	}
	miner, err := parseMiner(c.String("provider"))
	if err != nil {
		return err
	}
	r, addr, n, closer, err := openWallet(c)
	if err != nil {
		return err
	}
	defer closer()
	p, err := client.LookupProvider(c.Context, n, miner)
	if err != nil {
		return err
	}
	h, err := client.NewHost()
	if err != nil {
		return err
	}
	defer h.Close()
	sw := &client.StatusWatcher{Host: h, Provider: p, Wallet: r.Wallet, Client: addr, DealUUID: id, Interval: c.Duration("interval")}
	if !c.Bool("watch") {
		resp, err := sw.Poll(c.Context)
		if err != nil {
			return err
		}
		o := newStatusOutput(resp, miner, addr)
		if resp.Error != "" {
			if c.Bool("json") {
				_ = cliutil.Print(c, o, nil)
			}
			return fmt.Errorf("deal %s: provider says: %s", id, resp.Error)
		}
		return cliutil.Print(c, o, func(w io.Writer) { printStatus(w, o) })
	}
	var last statusOutput
	final, err := sw.WaitComplete(c.Context, func(resp *wire.DealStatusResponse) {
		o := newStatusOutput(resp, miner, addr)
		changed := o.Status != last.Status || o.SealingStatus != last.SealingStatus || o.Error != last.Error
		last = o
		if !changed {
			return
		}
		if c.Bool("json") {
			_ = cliutil.Print(c, o, nil)
			return
		}
		fmt.Fprintf(c.App.Writer, "%s  ", time.Now().Format("15:04:05"))
		printStatus(c.App.Writer, o)
	})
	if err != nil {
		return fmt.Errorf("deal %s: %w", id, err)
	}
	if !c.Bool("json") {
		fmt.Fprintf(c.App.Writer, "deal %s is complete (chain deal %d)\n", id, final.DealStatus.ChainDealID)
	}
	return nil
}
