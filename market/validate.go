package market

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/transfer"
	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

// rejection is a proposal the provider turns down. reason is what the
// client is told: one stable sentence, starting "deal rejected", with no
// internal detail. cause, when set, is what went wrong inside the
// provider (a chain read, the database), logged for the operator with the
// deal's UUID and never sent. Curio's mk12 validationError is the model.
type rejection struct {
	reason string
	cause  error
}

func (r *rejection) Error() string {
	if r.cause == nil {
		return r.reason
	}
	return r.reason + ": " + r.cause.Error()
}

func (r *rejection) Unwrap() error { return r.cause }

// reject is a rejection whose reason says it all.
func reject(format string, args ...any) *rejection {
	return &rejection{reason: "deal rejected: " + fmt.Sprintf(format, args...)}
}

// rejectFor is a rejection with a cause the client is not told.
func rejectFor(cause error, format string, args ...any) *rejection {
	return &rejection{reason: "deal rejected: " + fmt.Sprintf(format, args...), cause: cause}
}

// unavailable is the rejection of a proposal the provider could not check
// or record because something of its own failed: the client is told to
// try again, the operator gets the cause.
func unavailable(cause error, what string) *rejection {
	return rejectFor(cause, "the provider could not %s; try again later", what)
}

// proposalInfo is what validation learnt about an acceptable proposal.
type proposalInfo struct {
	params      *wire.DealParams
	signedCID   cid.Cid
	clientKey   address.Address
	head        abi.ChainEpoch
	clientAvail abi.TokenAmount // the client's market escrow not locked, at validation
	proposalCBO []byte
}

// validate runs every check of SPEC.md §1 in order and the built-in and
// external deal filters. It returns what it learnt, or why the proposal is
// rejected.
func (p *Provider) validate(ctx context.Context, params *wire.DealParams) (*proposalInfo, *rejection) {
	prop := &params.ClientDealProposal.Proposal
	info := &proposalInfo{params: params}

	if params.DealUUID == [16]byte{} {
		return nil, reject("the deal UUID is missing")
	}
	if !prop.PieceCID.Defined() {
		return nil, reject("proposal PieceCID is undefined")
	}

	// Client signature over the CBOR of the proposal.
	var buf bytes.Buffer
	if err := prop.MarshalCBOR(&buf); err != nil {
		return nil, rejectFor(err, "the proposal cannot be encoded")
	}
	info.proposalCBO = buf.Bytes()
	key, err := p.d.Node.StateAccountKey(ctx, prop.Client, chain.TipSetKey{})
	if err != nil {
		return nil, rejectFor(err, "cannot resolve the client address %s to a key address", prop.Client)
	}
	info.clientKey = key
	sig := params.ClientDealProposal.ClientSignature
	if err := wallet.Verify(&sig, key, info.proposalCBO); err != nil {
		return nil, rejectFor(err, "invalid client signature")
	}

	if prop.Provider != p.cfg.Miner {
		return nil, reject("the proposal is for provider %s, this is %s", prop.Provider, p.cfg.Miner)
	}
	if n := labelLen(prop.Label); n > MaxLabelSize {
		return nil, reject("the deal label is %d bytes, at most %d are allowed", n, MaxLabelSize)
	}
	if err := piece.ValidatePadded(prop.PieceSize); err != nil {
		return nil, rejectFor(err, "invalid piece size %d", prop.PieceSize)
	}
	if _, err := piece.ParseCID(prop.PieceCID); err != nil {
		return nil, rejectFor(err, "the PieceCID %s is not a piece commitment CID", prop.PieceCID)
	}
	if prop.EndEpoch <= prop.StartEpoch {
		return nil, reject("the end epoch %d is not after the start epoch %d", prop.EndEpoch, prop.StartEpoch)
	}

	head, err := p.d.Node.ChainHead(ctx)
	if err != nil {
		return nil, unavailable(err, "read the chain head")
	}
	info.head = head.Height()
	if prop.StartEpoch <= info.head {
		return nil, reject("the start epoch %d has already passed (current epoch %d)", prop.StartEpoch, info.head)
	}
	if d := prop.Duration(); d < MinDealDuration || d > MaxDealDuration {
		return nil, reject("the deal duration %d epochs is outside the market's bounds [%d, %d]", d, MinDealDuration, MaxDealDuration)
	}
	if maxEnd := info.head + MaxSectorExpirationExtension; prop.EndEpoch > maxEnd {
		return nil, reject("the end epoch %d is more than %d epochs past the current epoch %d", prop.EndEpoch, MaxSectorExpirationExtension, info.head)
	}

	bounds, err := p.d.Node.StateDealProviderCollateralBounds(ctx, prop.PieceSize, prop.VerifiedDeal, chain.TipSetKey{})
	if err != nil {
		return nil, unavailable(err, "read the provider collateral bounds")
	}
	maxColl := big.Mul(bounds.Min, big.NewInt(2))
	if prop.ProviderCollateral.LessThan(bounds.Min) || prop.ProviderCollateral.GreaterThan(maxColl) {
		return nil, reject("the provider collateral %s is outside the bounds [%s, %s]", prop.ProviderCollateral, bounds.Min, maxColl)
	}

	ask := p.ask.Load()
	if ask == nil || ask.Ask == nil {
		return nil, reject("the provider has no storage ask")
	}
	price := ask.Ask.Price
	if prop.VerifiedDeal {
		price = ask.Ask.VerifiedPrice
	}
	minPrice := big.Div(big.Mul(price, big.NewIntUnsigned(uint64(prop.PieceSize))), big.NewInt(1<<30))
	if prop.StoragePricePerEpoch.LessThan(minPrice) {
		return nil, reject("the storage price per epoch %s is less than the asking price %s for a piece of %d bytes", prop.StoragePricePerEpoch, minPrice, prop.PieceSize)
	}
	if prop.PieceSize < ask.Ask.MinPieceSize {
		return nil, reject("the piece size %d is less than the minimum %d", prop.PieceSize, ask.Ask.MinPieceSize)
	}
	if prop.PieceSize > ask.Ask.MaxPieceSize {
		return nil, reject("the piece size %d is more than the maximum %d", prop.PieceSize, ask.Ask.MaxPieceSize)
	}

	bal, err := p.d.Node.StateMarketBalance(ctx, prop.Client, chain.TipSetKey{})
	if err != nil {
		return nil, unavailable(err, "read the client's market balance")
	}
	avail := big.Sub(bal.Escrow, bal.Locked)
	info.clientAvail = avail
	if need := prop.ClientBalanceRequirement(); avail.LessThan(need) {
		return nil, reject("the client's available market escrow %s is less than the %s the deal requires", avail, need)
	}

	if prop.VerifiedDeal {
		if rej := verifiedAllocationFits(prop, info.head); rej != nil {
			return nil, rej
		}
		dc, err := p.d.Node.StateVerifiedClientStatus(ctx, prop.Client, chain.TipSetKey{})
		if err != nil {
			return nil, unavailable(err, "read the client's DataCap")
		}
		if dc == nil {
			return nil, reject("the client %s is not a verified client", prop.Client)
		}
		if dc.LessThan(big.NewIntUnsigned(uint64(prop.PieceSize))) {
			return nil, reject("the client's DataCap %s is less than the piece size %d", *dc, prop.PieceSize)
		}
	}

	spc, err := wire.SignedProposalCID(&params.ClientDealProposal)
	if err != nil {
		return nil, rejectFor(err, "the signed proposal cannot be encoded")
	}
	info.signedCID = spc

	// The duplicate and UUID checks come next; admission repeats them inside
	// its transaction, which is what makes them race-free. Checking here
	// first keeps the rejection order of the reference provider.
	if err := p.store.duplicate(ctx, &newDeal{params: params, signedCID: spc, clientKey: info.clientKey}); err != nil {
		return nil, duplicateRejection(err)
	}
	if rej := p.policy(ctx, info); rej != nil {
		return nil, rej
	}
	if rej := p.runFilter(ctx, info); rej != nil {
		return nil, rej
	}
	return info, nil
}

// verifiedAllocationFits checks a verified deal against the allocation
// the market actor makes for it at publish, which the verified registry
// validates (a deal it refuses fails the whole publish message): at least
// MinAllocationSize, and an Expiration, min(start, publish epoch + 60
// days), that is the deal's start, so that the sector activated by then
// can claim it. Its terms always fit: TermMin is the duration, which the
// market bounds already keep between the registry's 180 days and, with
// TermMax's 90 days more, its 5 years.
func verifiedAllocationFits(prop *market.DealProposal, head abi.ChainEpoch) *rejection {
	switch {
	case prop.PieceSize < MinAllocationSize:
		return reject("a verified deal's piece must be at least %d bytes (1 MiB, the verified registry's smallest allocation); this one is %d", MinAllocationSize, prop.PieceSize)
	case prop.StartEpoch > head+verifreg.MaximumVerifiedAllocationExpiration:
		return reject("a verified deal must start within %d epochs (60 days, the verified registry's longest allocation expiry); this one starts at %d, %d epochs after the current epoch %d",
			verifreg.MaximumVerifiedAllocationExpiration, prop.StartEpoch, prop.StartEpoch-head, head)
	}
	return nil
}

// duplicateRejection turns a duplicate check's error into a rejection.
func duplicateRejection(err error) *rejection {
	var dup duplicateError
	if errors.As(err, &dup) {
		return reject("%s", dup.Error())
	}
	return unavailable(err, "read its deals")
}

func labelLen(l market.DealLabel) int {
	if l.IsString() {
		s, _ := l.ToString()
		return len(s)
	}
	b, _ := l.ToBytes()
	return len(b)
}

// policy applies the built-in deal filter of Config.
func (p *Provider) policy(ctx context.Context, info *proposalInfo) *rejection {
	params := info.params
	prop := &params.ClientDealProposal.Proposal
	switch {
	case !params.DealDataRoot.Defined():
		return reject("the deal data root CID is missing")
	case params.IsOffline && p.cfg.RejectOffline:
		return reject("this provider does not accept offline deals")
	case !params.IsOffline && p.cfg.RejectOnline:
		return reject("this provider does not accept online deals")
	case prop.VerifiedDeal && p.cfg.RejectVerified:
		return reject("this provider does not accept verified deals")
	case !prop.VerifiedDeal && p.cfg.RejectUnverified:
		return reject("this provider does not accept unverified deals")
	}
	for _, c := range p.cfg.PieceCIDBlocklist {
		if c.Equals(prop.PieceCID) {
			return reject("the piece %s is blocked by this provider", prop.PieceCID)
		}
	}
	if p.cfg.MinPieceSize != 0 && prop.PieceSize < p.cfg.MinPieceSize {
		return reject("the piece size %d is less than this provider's minimum %d", prop.PieceSize, p.cfg.MinPieceSize)
	}
	if p.cfg.MaxPieceSize != 0 && prop.PieceSize > p.cfg.MaxPieceSize {
		return reject("the piece size %d is more than this provider's maximum %d", prop.PieceSize, p.cfg.MaxPieceSize)
	}
	if earliest := info.head + p.SealEpochs(); prop.StartEpoch < earliest {
		return reject("the start epoch %d is too soon; sealing takes until about epoch %d", prop.StartEpoch, earliest)
	}
	if latest := info.head + p.epochs(p.cfg.MaxDealStartDelay); prop.StartEpoch > latest {
		return reject("the start epoch %d is too far in the future; the latest accepted is %d", prop.StartEpoch, latest)
	}
	if !params.IsOffline {
		t := params.Transfer
		if t.Type != wire.TransferHTTP {
			return reject("transfer type %q is not supported (use \"http\")", t.Type)
		}
		req, err := transfer.ParseHTTPParams(t.Params)
		if err != nil {
			return reject("%v", err) // transfer's errors show the URL redacted
		}
		// Where the URL leads is judged now, the deal rejected rather than
		// accepted and failed at its first dial (which checks again: DNS
		// can change).
		for _, u := range req.Sources() {
			if err := transfer.CheckURL(ctx, p.d.Resolver, u.URL, p.cfg.AllowPrivateAddresses); err != nil {
				if transfer.IsPermanent(err) {
					return reject("the transfer URL is refused: %v", err)
				}
				return rejectFor(err, "the host of the transfer URL %s could not be resolved", transfer.Redact(u.URL))
			}
		}
		if t.Size == 0 {
			return reject("the transfer size is zero")
		}
		if t.Size > uint64(prop.PieceSize.Unpadded()) {
			return reject("the transfer size %d is more than the piece holds (%d bytes)", t.Size, prop.PieceSize.Unpadded())
		}
	}
	return nil
}

// SealEpochs is ExpectedSealDuration in epochs: how far after the chain
// head a deal must start, so that its sector can be sealed by then.
func (p *Provider) SealEpochs() abi.ChainEpoch { return p.epochs(p.cfg.ExpectedSealDuration) }

// epochs converts a duration to whole epochs.
func (p *Provider) epochs(d time.Duration) abi.ChainEpoch {
	return abi.ChainEpoch(d / p.blockDelay)
}

// filterDeal is the JSON an external filter command reads on stdin.
type filterDeal struct {
	DealUUID           string
	IsOffline          bool
	ClientDealProposal market.ClientDealProposal
	DealDataRoot       cid.Cid
	TransferType       string
	TransferSize       uint64
	RemoveUnsealedCopy bool
	SkipIPNIAnnounce   bool
	SignedProposalCID  cid.Cid
	CurrentEpoch       abi.ChainEpoch
	FormatVersion      string
}

// runFilter runs the external filter command, if any.
func (p *Provider) runFilter(ctx context.Context, info *proposalInfo) *rejection {
	if len(p.cfg.FilterCommand) == 0 {
		return nil
	}
	params := info.params
	in, err := json.Marshal(filterDeal{
		DealUUID:           params.DealUUID.String(),
		IsOffline:          params.IsOffline,
		ClientDealProposal: params.ClientDealProposal,
		DealDataRoot:       params.DealDataRoot,
		TransferType:       params.Transfer.Type,
		TransferSize:       params.Transfer.Size,
		RemoveUnsealedCopy: params.RemoveUnsealedCopy,
		SkipIPNIAnnounce:   params.SkipIPNIAnnounce,
		SignedProposalCID:  info.signedCID,
		CurrentEpoch:       info.head,
		FormatVersion:      "1.0.0",
	})
	if err != nil {
		return unavailable(err, "encode the deal for its filter")
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.FilterTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.cfg.FilterCommand[0], p.cfg.FilterCommand[1:]...)
	cmd.Stdin = bytes.NewReader(in)
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return reject("the deal filter did not answer within %s", p.cfg.FilterTimeout)
	}
	reason := strings.TrimSpace(out.String())
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return unavailable(err, "run its deal filter")
	}
	if reason == "" {
		reason = fmt.Sprintf("exit status %d", exitErr.ExitCode())
	}
	return &rejection{reason: "deal rejected by filter: " + reason}
}

// admit records the deal with its funds and staging tags in one
// transaction, after checking within it that the deal duplicates none and
// that the client's escrow, the provider's escrow and worker balance, and
// the staging space cover it on top of what other deals have tagged.
func (p *Provider) admit(ctx context.Context, info *proposalInfo, clientPeer string) *rejection {
	params := info.params
	prop := &params.ClientDealProposal.Proposal

	// Chain reads happen before the transaction; the transaction compares
	// them with everything already tagged.
	mbal, err := p.d.Node.StateMarketBalance(ctx, p.cfg.Miner, chain.TipSetKey{})
	if err != nil {
		return unavailable(fmt.Errorf("reading the market balance of %s: %w", p.cfg.Miner, err), "check its market balance")
	}
	escrowAvail := big.Sub(mbal.Escrow, mbal.Locked)
	wbal, err := p.d.Node.WalletBalance(ctx, p.worker)
	if err != nil {
		return unavailable(fmt.Errorf("reading the balance of worker %s: %w", p.worker, err), "check its worker balance")
	}
	nd := &newDeal{
		params: params, signedCID: info.signedCID, clientKey: info.clientKey, clientPeer: clientPeer,
		collateral: prop.ProviderCollateral, fee: p.cfg.MaxPublishDealsFee, escrow: prop.ClientBalanceRequirement(),
	}
	if !params.IsOffline {
		nd.space = params.Transfer.Size
		nd.staging = filepath.Join(p.cfg.StagingDir, params.DealUUID.String()+".car")
	}
	fits := func(t tagged) error {
		if need := big.Add(t.clientEscrow, nd.escrow); need.GreaterThan(info.clientAvail) {
			return reject("the client's available market escrow %s cannot cover this deal's %s on top of the %s its deals not yet published need",
				info.clientAvail, nd.escrow, t.clientEscrow)
		}
		if need := big.Add(t.collateral, nd.collateral); need.GreaterThan(escrowAvail) {
			return rejectFor(fmt.Errorf("available market escrow %s, collateral %s, %s reserved for other deals", escrowAvail, nd.collateral, t.collateral),
				"the provider does not have the market escrow for this deal's collateral at the moment")
		}
		if need := big.Add(t.fee, nd.fee); need.GreaterThan(wbal) {
			return rejectFor(fmt.Errorf("worker balance %s, publish fee %s, %s reserved for other deals", wbal, nd.fee, t.fee),
				"the provider does not have the funds for this deal's publish fee at the moment")
		}
		if c := p.cfg.StagingCapacity; c > 0 && t.space+nd.space > c {
			return rejectFor(fmt.Errorf("%d bytes needed, %d of %d in use", nd.space, t.space, c),
				"not enough staging space for this deal at the moment")
		}
		return nil
	}
	// The transaction is what makes admission atomic (also against other
	// processes); the mutex only spares this process' admissions SQLite's
	// busy-wait sleeps when they queue for the write lock.
	p.admitMu.Lock()
	err = p.store.admit(ctx, nd, fits)
	p.admitMu.Unlock()
	var rej *rejection
	var dup duplicateError
	switch {
	case errors.As(err, &rej):
		return rej
	case errors.As(err, &dup):
		return duplicateRejection(err)
	case err != nil:
		return unavailable(err, "record the deal")
	}
	p.hook(params.DealUUID, Accepted.String())
	return nil
}
