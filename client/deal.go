package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

// Deal defaults and bounds.
const (
	// DefaultDuration is Boost's default deal duration: 180 days of 30 s
	// epochs.
	DefaultDuration = abi.ChainEpoch(518400)
	// MinDuration and MaxDuration are the market actor's deal duration
	// bounds (180 and 1278 days).
	MinDuration = abi.ChainEpoch(518400)
	MaxDuration = abi.ChainEpoch(3680640)
	// DefaultStartDelay is how far after the chain head a deal starts when
	// no start epoch is given: Boost's client default of two days (5760
	// epochs). It leaves room for the provider's expected seal duration
	// (24 h = 2880 epochs by default) and stays well inside its maximum
	// start delay (14 days).
	DefaultStartDelay = abi.ChainEpoch(5760)
	// MaxLabelBytes is the longest label a provider accepts.
	MaxLabelBytes = 256
)

// ErrRejected wraps a provider's refusal of a deal.
var ErrRejected = errors.New("deal rejected")

// ErrInsufficientEscrow is returned when the client's market escrow cannot
// pay for the deal.
var ErrInsufficientEscrow = errors.New("not enough market escrow")

// DealRequest is everything a deal is made from, as given by the user.
// Zero values of StartEpoch, Duration, PricePerGiBEpoch and
// ProviderCollateral mean "choose the default".
type DealRequest struct {
	// Provider is the miner actor (f0…).
	Provider address.Address
	// Client is the wallet address paying for the deal.
	Client address.Address
	// PieceCID is the CommP of the CAR file.
	PieceCID cid.Cid
	// PieceSize is the padded piece size.
	PieceSize abi.PaddedPieceSize
	// CARSize is the CAR file's size in bytes (the transfer size).
	CARSize uint64
	// PayloadCID is the CAR's root.
	PayloadCID cid.Cid
	// StartEpoch is when the deal must be in a proven sector; 0: head +
	// DefaultStartDelay.
	StartEpoch abi.ChainEpoch
	// Duration is the deal's length in epochs; 0: DefaultDuration.
	Duration abi.ChainEpoch
	// PricePerGiBEpoch is the storage price in attoFIL per GiB per epoch;
	// nil: the provider's ask (verified price for verified deals).
	PricePerGiBEpoch *big.Int
	// ProviderCollateral is the provider's collateral; nil: the chain's
	// minimum for the piece size.
	ProviderCollateral *big.Int
	// Verified makes a verified (DataCap) deal.
	Verified bool
	// RemoveUnsealedCopy asks the provider to keep no unsealed copy.
	RemoveUnsealedCopy bool
	// SkipIPNIAnnounce asks the provider not to announce to IPNI.
	SkipIPNIAnnounce bool
	// Offline means the provider's operator imports the data; no URL.
	Offline bool
	// HTTPURL is where the provider downloads the CAR from.
	HTTPURL string
	// HTTPHeaders are sent with the download requests.
	HTTPHeaders map[string]string
}

// Validate checks the request on its own, before anything is asked of the
// chain or the provider.
func (r *DealRequest) Validate() error {
	if r.Provider == address.Undef {
		return errors.New("no provider given (--provider f0…)")
	}
	if r.Provider.Protocol() != address.ID {
		return fmt.Errorf("provider %s is not a miner ID address (f0…)", r.Provider)
	}
	if r.Client == address.Undef {
		return errors.New("no client wallet")
	}
	if _, err := piece.ParseCID(r.PieceCID); err != nil {
		return fmt.Errorf("--commp: %w", err)
	}
	if err := piece.ValidatePadded(r.PieceSize); err != nil {
		return fmt.Errorf("--piece-size: %w", err)
	}
	if r.CARSize == 0 {
		return errors.New("--car-size must be given and above 0")
	}
	if need := piece.PaddedSizeFor(r.CARSize); need > r.PieceSize {
		return fmt.Errorf("a %d-byte CAR needs a piece of at least %d bytes, --piece-size is %d", r.CARSize, need, r.PieceSize)
	}
	if !r.PayloadCID.Defined() {
		return errors.New("--payload-cid must be given")
	}
	if l := len(r.PayloadCID.String()); l > MaxLabelBytes {
		return fmt.Errorf("payload CID is %d bytes as a string, above the %d-byte label limit", l, MaxLabelBytes)
	}
	d := r.Duration
	if d == 0 {
		d = DefaultDuration
	}
	if d < MinDuration || d > MaxDuration {
		return fmt.Errorf("--duration %d outside the market's %d…%d epochs (180…1278 days)", d, MinDuration, MaxDuration)
	}
	if r.StartEpoch < 0 {
		return fmt.Errorf("--start-epoch %d is negative", r.StartEpoch)
	}
	if r.PricePerGiBEpoch != nil && r.PricePerGiBEpoch.Sign() < 0 {
		return errors.New("--storage-price is negative")
	}
	if r.ProviderCollateral != nil && r.ProviderCollateral.Sign() < 0 {
		return errors.New("--provider-collateral is negative")
	}
	if r.Offline {
		if r.HTTPURL != "" {
			return errors.New("--offline deals take no --http-url")
		}
		return nil
	}
	if r.HTTPURL == "" {
		return errors.New("--http-url is required for online deals (or use --offline or --serve)")
	}
	u, err := url.Parse(r.HTTPURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "libp2p") || (u.Host == "" && u.Scheme != "libp2p") {
		return fmt.Errorf("--http-url %q is not an http(s) URL", r.HTTPURL)
	}
	return nil
}

// ParseHTTPHeaders parses "Key=Value" strings as Boost's --http-headers
// does.
func ParseHTTPHeaders(hs []string) (map[string]string, error) {
	if len(hs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(hs))
	for _, h := range hs {
		k, v, ok := strings.Cut(h, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("http header %q is not Key=Value", h)
		}
		out[k] = v
	}
	return out, nil
}

// PricePerEpoch is the deal's price per epoch for a price per GiB per
// epoch, rounded up so that it is never below what the provider's ask asks.
func PricePerEpoch(perGiB big.Int, size abi.PaddedPieceSize) big.Int {
	num := big.Mul(perGiB, big.NewIntUnsigned(uint64(size)))
	gib := big.NewInt(1 << 30)
	q := big.Div(num, gib)
	if rem := big.Mod(num, gib); !rem.IsZero() {
		q = big.Add(q, big.NewInt(1))
	}
	return q
}

// ProposalSpec is a fully decided proposal.
type ProposalSpec struct {
	PieceCID           cid.Cid
	PieceSize          abi.PaddedPieceSize
	Verified           bool
	Client             address.Address
	Provider           address.Address
	PayloadCID         cid.Cid
	StartEpoch         abi.ChainEpoch
	Duration           abi.ChainEpoch
	PricePerEpoch      big.Int
	ProviderCollateral big.Int
}

// BuildProposal makes the market.DealProposal (v9) of spec: the label is
// the payload CID as a string, client collateral zero.
func BuildProposal(spec ProposalSpec) (market.DealProposal, error) {
	label, err := market.NewLabelFromString(spec.PayloadCID.String())
	if err != nil {
		return market.DealProposal{}, fmt.Errorf("making the label: %w", err)
	}
	if spec.Duration <= 0 {
		return market.DealProposal{}, fmt.Errorf("duration %d is not positive", spec.Duration)
	}
	return market.DealProposal{
		PieceCID:             spec.PieceCID,
		PieceSize:            spec.PieceSize,
		VerifiedDeal:         spec.Verified,
		Client:               spec.Client,
		Provider:             spec.Provider,
		Label:                label,
		StartEpoch:           spec.StartEpoch,
		EndEpoch:             spec.StartEpoch + spec.Duration,
		StoragePricePerEpoch: spec.PricePerEpoch,
		ProviderCollateral:   spec.ProviderCollateral,
		ClientCollateral:     big.Zero(),
	}, nil
}

// SignProposal signs the CBOR of the proposal with the client's key.
func SignProposal(w *wallet.Wallet, p market.DealProposal) (*market.ClientDealProposal, error) {
	var buf bytes.Buffer
	if err := p.MarshalCBOR(&buf); err != nil {
		return nil, fmt.Errorf("encoding the proposal: %w", err)
	}
	sig, err := w.Sign(p.Client, buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("signing the proposal with %s: %w", p.Client, err)
	}
	return &market.ClientDealProposal{Proposal: p, ClientSignature: *sig}, nil
}

// DealResult is the outcome of a proposal.
type DealResult struct {
	// DealUUID identifies the deal with the provider.
	DealUUID uuid.UUID
	// Proposal is the signed proposal sent.
	Proposal market.ClientDealProposal
	// SignedProposalCID is the CID of the signed proposal.
	SignedProposalCID cid.Cid
	// Accepted and Message are the provider's answer.
	Accepted bool
	Message  string
}

// MakeDeal validates req, fills in the defaults from the chain and the
// provider's ask, checks the client's escrow, signs the proposal and sends
// it: over HTTP to Curio's mk12 route first, at the miner's addresses as
// sptool tries them (DealBaseURLs), then over libp2p. A rejection is returned as an error wrapping ErrRejected along with
// the result.
func MakeDeal(ctx context.Context, n chain.Node, h host.Host, w *wallet.Wallet, req DealRequest) (*DealResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if has, err := w.Has(req.Client); err != nil || !has {
		return nil, fmt.Errorf("wallet %s is not in the client keystore", req.Client)
	}
	p, err := LookupProvider(ctx, n, req.Provider)
	if err != nil {
		return nil, err
	}
	ask, err := QueryAsk(ctx, n, h, p)
	if err != nil {
		return nil, err
	}
	if req.PieceSize < ask.MinPieceSize || req.PieceSize > ask.MaxPieceSize {
		return nil, fmt.Errorf("miner %s takes pieces of %d to %d bytes, this one is %d", req.Provider, ask.MinPieceSize, ask.MaxPieceSize, req.PieceSize)
	}
	spec := ProposalSpec{
		PieceCID: req.PieceCID, PieceSize: req.PieceSize, Verified: req.Verified,
		Client: req.Client, Provider: req.Provider, PayloadCID: req.PayloadCID,
		StartEpoch: req.StartEpoch, Duration: req.Duration,
	}
	if spec.Duration == 0 {
		spec.Duration = DefaultDuration
	}
	if spec.StartEpoch == 0 {
		head, err := n.ChainHead(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the chain head: %w", err)
		}
		spec.StartEpoch = head.Height() + DefaultStartDelay
	}
	perGiB := ask.Price
	if req.Verified {
		perGiB = ask.VerifiedPrice
	}
	if req.PricePerGiBEpoch != nil {
		perGiB = *req.PricePerGiBEpoch
	}
	spec.PricePerEpoch = PricePerEpoch(perGiB, req.PieceSize)
	if req.ProviderCollateral != nil {
		spec.ProviderCollateral = *req.ProviderCollateral
	} else {
		b, err := n.StateDealProviderCollateralBounds(ctx, req.PieceSize, req.Verified, chain.EmptyTSK)
		if err != nil {
			return nil, fmt.Errorf("reading the provider collateral bounds: %w", err)
		}
		spec.ProviderCollateral = b.Min
	}
	prop, err := BuildProposal(spec)
	if err != nil {
		return nil, err
	}
	if err := CheckEscrow(ctx, n, req.Client, prop.ClientBalanceRequirement()); err != nil {
		return nil, err
	}
	signed, err := SignProposal(w, prop)
	if err != nil {
		return nil, err
	}
	spc, err := wire.SignedProposalCID(signed)
	if err != nil {
		return nil, err
	}
	params := &wire.DealParams{
		DealUUID:           uuid.New(),
		IsOffline:          req.Offline,
		ClientDealProposal: *signed,
		DealDataRoot:       req.PayloadCID,
		Transfer:           wire.Transfer{Size: req.CARSize},
		RemoveUnsealedCopy: req.RemoveUnsealedCopy,
		SkipIPNIAnnounce:   req.SkipIPNIAnnounce,
	}
	if !req.Offline {
		tp, err := json.Marshal(wire.HTTPRequest{URL: req.HTTPURL, Headers: req.HTTPHeaders})
		if err != nil {
			return nil, fmt.Errorf("encoding transfer parameters: %w", err)
		}
		params.Transfer.Type = wire.TransferHTTP
		if strings.HasPrefix(req.HTTPURL, "libp2p://") {
			params.Transfer.Type = wire.TransferLibp2p
		}
		params.Transfer.Params = tp
	}
	resp, err := proposeAny(ctx, h, p, params)
	if err != nil {
		return nil, err
	}
	res := &DealResult{DealUUID: params.DealUUID, Proposal: *signed, SignedProposalCID: spc, Accepted: resp.Accepted, Message: resp.Message}
	if !resp.Accepted {
		return res, fmt.Errorf("%w by miner %s: %s", ErrRejected, req.Provider, resp.Message)
	}
	return res, nil
}

// CheckEscrow fails with ErrInsufficientEscrow, saying how much to add,
// when the client's available market escrow is below need.
func CheckEscrow(ctx context.Context, n chain.Node, client address.Address, need big.Int) error {
	mb, err := n.StateMarketBalance(ctx, client, chain.EmptyTSK)
	if err != nil {
		return fmt.Errorf("reading the market balance of %s: %w", client, err)
	}
	avail := big.Sub(mb.Escrow, mb.Locked)
	if avail.LessThan(need) {
		short := big.Sub(need, avail)
		return fmt.Errorf("%w: %s has %s available, the deal needs %s: run `ferry market add-balance %s`",
			ErrInsufficientEscrow, client, chain.FormatFIL(avail), chain.FormatFIL(need), FILNumber(short))
	}
	return nil
}

// FILNumber prints an attoFIL amount as a plain number of FIL, as
// chain.ParseFIL reads it back ("1.5").
func FILNumber(a big.Int) string {
	return strings.TrimSuffix(chain.FormatFIL(a), " FIL")
}
