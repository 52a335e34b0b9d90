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
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/transfer"
	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

// proposalInfo is what validation learnt about an acceptable proposal.
type proposalInfo struct {
	params      *wire.DealParams
	signedCID   cid.Cid
	clientKey   address.Address
	head        abi.ChainEpoch
	proposalCBO []byte
}

// validate runs every check of SPEC.md §1 in order and the built-in and
// external deal filters. It returns a rejection sentence, or "" and what it
// learnt.
func (p *Provider) validate(ctx context.Context, params *wire.DealParams) (*proposalInfo, string) {
	prop := &params.ClientDealProposal.Proposal
	info := &proposalInfo{params: params}

	if params.DealUUID == [16]byte{} {
		return nil, "deal rejected: the deal UUID is missing"
	}
	if !prop.PieceCID.Defined() {
		return nil, "deal rejected: proposal PieceCID is undefined"
	}

	// Client signature over the CBOR of the proposal.
	var buf bytes.Buffer
	if err := prop.MarshalCBOR(&buf); err != nil {
		return nil, fmt.Sprintf("deal rejected: the proposal cannot be encoded: %v", err)
	}
	info.proposalCBO = buf.Bytes()
	key, err := p.d.Node.StateAccountKey(ctx, prop.Client, chain.TipSetKey{})
	if err != nil {
		return nil, fmt.Sprintf("deal rejected: cannot resolve the client address %s to a key address: %v", prop.Client, err)
	}
	info.clientKey = key
	sig := params.ClientDealProposal.ClientSignature
	if err := wallet.Verify(&sig, key, info.proposalCBO); err != nil {
		return nil, fmt.Sprintf("deal rejected: invalid client signature: %v", err)
	}

	if prop.Provider != p.cfg.Miner {
		return nil, fmt.Sprintf("deal rejected: the proposal is for provider %s, this is %s", prop.Provider, p.cfg.Miner)
	}
	if n := labelLen(prop.Label); n > MaxLabelSize {
		return nil, fmt.Sprintf("deal rejected: the deal label is %d bytes, at most %d are allowed", n, MaxLabelSize)
	}
	if err := piece.ValidatePadded(prop.PieceSize); err != nil {
		return nil, fmt.Sprintf("deal rejected: invalid piece size %d: %v", prop.PieceSize, err)
	}
	if _, err := piece.ParseCID(prop.PieceCID); err != nil {
		return nil, fmt.Sprintf("deal rejected: the PieceCID %s is not a piece commitment CID: %v", prop.PieceCID, err)
	}
	if prop.EndEpoch <= prop.StartEpoch {
		return nil, fmt.Sprintf("deal rejected: the end epoch %d is not after the start epoch %d", prop.EndEpoch, prop.StartEpoch)
	}

	head, err := p.d.Node.ChainHead(ctx)
	if err != nil {
		return nil, fmt.Sprintf("deal rejected: the provider cannot read the chain head: %v", err)
	}
	info.head = head.Height()
	if prop.StartEpoch <= info.head {
		return nil, fmt.Sprintf("deal rejected: the start epoch %d has already passed (current epoch %d)", prop.StartEpoch, info.head)
	}
	if d := prop.Duration(); d < MinDealDuration || d > MaxDealDuration {
		return nil, fmt.Sprintf("deal rejected: the deal duration %d epochs is outside the market's bounds [%d, %d]", d, MinDealDuration, MaxDealDuration)
	}
	if maxEnd := info.head + MaxSectorExpirationExtension; prop.EndEpoch > maxEnd {
		return nil, fmt.Sprintf("deal rejected: the end epoch %d is more than %d epochs past the current epoch %d", prop.EndEpoch, MaxSectorExpirationExtension, info.head)
	}

	bounds, err := p.d.Node.StateDealProviderCollateralBounds(ctx, prop.PieceSize, prop.VerifiedDeal, chain.TipSetKey{})
	if err != nil {
		return nil, fmt.Sprintf("deal rejected: the provider cannot read the collateral bounds: %v", err)
	}
	maxColl := big.Mul(bounds.Min, big.NewInt(2))
	if prop.ProviderCollateral.LessThan(bounds.Min) || prop.ProviderCollateral.GreaterThan(maxColl) {
		return nil, fmt.Sprintf("deal rejected: the provider collateral %s is outside the bounds [%s, %s]", prop.ProviderCollateral, bounds.Min, maxColl)
	}

	ask := p.ask.Load()
	if ask == nil || ask.Ask == nil {
		return nil, "deal rejected: the provider has no storage ask"
	}
	price := ask.Ask.Price
	if prop.VerifiedDeal {
		price = ask.Ask.VerifiedPrice
	}
	minPrice := big.Div(big.Mul(price, big.NewIntUnsigned(uint64(prop.PieceSize))), big.NewInt(1<<30))
	if prop.StoragePricePerEpoch.LessThan(minPrice) {
		return nil, fmt.Sprintf("deal rejected: the storage price per epoch %s is less than the asking price %s for a piece of %d bytes", prop.StoragePricePerEpoch, minPrice, prop.PieceSize)
	}
	if prop.PieceSize < ask.Ask.MinPieceSize {
		return nil, fmt.Sprintf("deal rejected: the piece size %d is less than the minimum %d", prop.PieceSize, ask.Ask.MinPieceSize)
	}
	if prop.PieceSize > ask.Ask.MaxPieceSize {
		return nil, fmt.Sprintf("deal rejected: the piece size %d is more than the maximum %d", prop.PieceSize, ask.Ask.MaxPieceSize)
	}

	bal, err := p.d.Node.StateMarketBalance(ctx, prop.Client, chain.TipSetKey{})
	if err != nil {
		return nil, fmt.Sprintf("deal rejected: the provider cannot read the client's market balance: %v", err)
	}
	avail := big.Sub(bal.Escrow, bal.Locked)
	if need := prop.ClientBalanceRequirement(); avail.LessThan(need) {
		return nil, fmt.Sprintf("deal rejected: the client's available market escrow %s is less than the %s the deal requires", avail, need)
	}

	if prop.VerifiedDeal {
		dc, err := p.d.Node.StateVerifiedClientStatus(ctx, prop.Client, chain.TipSetKey{})
		if err != nil {
			return nil, fmt.Sprintf("deal rejected: the provider cannot read the client's DataCap: %v", err)
		}
		if dc == nil {
			return nil, fmt.Sprintf("deal rejected: the client %s is not a verified client", prop.Client)
		}
		if dc.LessThan(big.NewIntUnsigned(uint64(prop.PieceSize))) {
			return nil, fmt.Sprintf("deal rejected: the client's DataCap %s is less than the piece size %d", *dc, prop.PieceSize)
		}
	}

	spc, err := wire.SignedProposalCID(&params.ClientDealProposal)
	if err != nil {
		return nil, fmt.Sprintf("deal rejected: %v", err)
	}
	info.signedCID = spc

	// The duplicate and UUID checks come next; admission repeats them inside
	// its transaction, which is what makes them race-free. Checking here
	// first keeps the rejection order of the reference provider.
	if err := p.store.duplicate(ctx, info.signedCID, params.DealUUID); err != nil {
		var dup duplicateError
		if errors.As(err, &dup) {
			return nil, "deal rejected: " + dup.Error()
		}
		return nil, fmt.Sprintf("deal rejected: the provider cannot read its deals: %v", err)
	}
	if reason := p.policy(info); reason != "" {
		return nil, reason
	}
	if reason := p.runFilter(ctx, info); reason != "" {
		return nil, reason
	}
	return info, ""
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
func (p *Provider) policy(info *proposalInfo) string {
	params := info.params
	prop := &params.ClientDealProposal.Proposal
	switch {
	case !params.DealDataRoot.Defined():
		return "deal rejected: the deal data root CID is missing"
	case params.IsOffline && p.cfg.RejectOffline:
		return "deal rejected: this provider does not accept offline deals"
	case !params.IsOffline && p.cfg.RejectOnline:
		return "deal rejected: this provider does not accept online deals"
	case prop.VerifiedDeal && p.cfg.RejectVerified:
		return "deal rejected: this provider does not accept verified deals"
	case !prop.VerifiedDeal && p.cfg.RejectUnverified:
		return "deal rejected: this provider does not accept unverified deals"
	}
	for _, c := range p.cfg.PieceCIDBlocklist {
		if c.Equals(prop.PieceCID) {
			return fmt.Sprintf("deal rejected: the piece %s is blocked by this provider", prop.PieceCID)
		}
	}
	if p.cfg.MinPieceSize != 0 && prop.PieceSize < p.cfg.MinPieceSize {
		return fmt.Sprintf("deal rejected: the piece size %d is less than this provider's minimum %d", prop.PieceSize, p.cfg.MinPieceSize)
	}
	if p.cfg.MaxPieceSize != 0 && prop.PieceSize > p.cfg.MaxPieceSize {
		return fmt.Sprintf("deal rejected: the piece size %d is more than this provider's maximum %d", prop.PieceSize, p.cfg.MaxPieceSize)
	}
	sealEpochs := p.epochs(p.cfg.ExpectedSealDuration)
	if earliest := info.head + sealEpochs; prop.StartEpoch < earliest {
		return fmt.Sprintf("deal rejected: the start epoch %d is too soon; sealing takes until about epoch %d", prop.StartEpoch, earliest)
	}
	if latest := info.head + p.epochs(p.cfg.MaxDealStartDelay); prop.StartEpoch > latest {
		return fmt.Sprintf("deal rejected: the start epoch %d is too far in the future; the latest accepted is %d", prop.StartEpoch, latest)
	}
	if !params.IsOffline {
		t := params.Transfer
		if t.Type != wire.TransferHTTP {
			return fmt.Sprintf("deal rejected: transfer type %q is not supported (use \"http\")", t.Type)
		}
		if _, err := transfer.ParseHTTPParams(t.Params); err != nil {
			return fmt.Sprintf("deal rejected: %v", err)
		}
		if t.Size == 0 {
			return "deal rejected: the transfer size is zero"
		}
		if t.Size > uint64(prop.PieceSize.Unpadded()) {
			return fmt.Sprintf("deal rejected: the transfer size %d is more than the piece holds (%d bytes)", t.Size, prop.PieceSize.Unpadded())
		}
	}
	return ""
}

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
func (p *Provider) runFilter(ctx context.Context, info *proposalInfo) string {
	if len(p.cfg.FilterCommand) == 0 {
		return ""
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
		return fmt.Sprintf("deal rejected: encoding the deal for the filter: %v", err)
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
		return ""
	}
	if ctx.Err() != nil {
		return fmt.Sprintf("deal rejected: the deal filter did not answer within %s", p.cfg.FilterTimeout)
	}
	reason := strings.TrimSpace(out.String())
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return fmt.Sprintf("deal rejected: the deal filter could not run: %v", err)
	}
	if reason == "" {
		reason = fmt.Sprintf("exit status %d", exitErr.ExitCode())
	}
	return "deal rejected by filter: " + reason
}

// admit records the deal with its funds and staging tags in one
// transaction, after checking uniqueness, the provider's funds and the
// staging space within it.
func (p *Provider) admit(ctx context.Context, info *proposalInfo, clientPeer string) string {
	params := info.params
	prop := &params.ClientDealProposal.Proposal

	// Chain reads happen before the transaction; the transaction compares
	// them with everything already tagged.
	mbal, err := p.d.Node.StateMarketBalance(ctx, p.cfg.Miner, chain.TipSetKey{})
	if err != nil {
		return fmt.Sprintf("deal rejected: the provider cannot read its market balance: %v", err)
	}
	escrowAvail := big.Sub(mbal.Escrow, mbal.Locked)
	wbal, err := p.d.Node.WalletBalance(ctx, p.worker)
	if err != nil {
		return fmt.Sprintf("deal rejected: the provider cannot read its worker balance: %v", err)
	}
	nd := &newDeal{
		params: params, signedCID: info.signedCID, clientKey: info.clientKey, clientPeer: clientPeer,
		collateral: prop.ProviderCollateral, fee: p.cfg.MaxPublishDealsFee,
	}
	if !params.IsOffline {
		nd.space = params.Transfer.Size
		nd.staging = filepath.Join(p.cfg.StagingDir, params.DealUUID.String()+".car")
	}
	var reason string
	fits := func(t tagged) error {
		if need := big.Add(t.collateral, nd.collateral); need.GreaterThan(escrowAvail) {
			reason = fmt.Sprintf("deal rejected: the provider's available market escrow %s cannot cover this deal's collateral %s on top of the %s reserved for other deals",
				escrowAvail, nd.collateral, t.collateral)
		} else if need := big.Add(t.fee, nd.fee); need.GreaterThan(wbal) {
			reason = fmt.Sprintf("deal rejected: the provider's worker balance %s cannot cover the publish fee %s on top of the %s reserved for other deals",
				wbal, nd.fee, t.fee)
		} else if c := p.cfg.StagingCapacity; c > 0 && t.space+nd.space > c {
			reason = fmt.Sprintf("deal rejected: not enough staging space: %d bytes needed, %d of %d in use", nd.space, t.space, c)
		}
		if reason != "" {
			return errors.New(reason)
		}
		return nil
	}
	// The transaction is what makes admission atomic (also against other
	// processes); the mutex only spares this process' admissions SQLite's
	// busy-wait sleeps when they queue for the write lock.
	p.admitMu.Lock()
	err = p.store.admit(ctx, nd, fits)
	p.admitMu.Unlock()
	var dup duplicateError
	switch {
	case reason != "":
		return reason
	case errors.As(err, &dup):
		return "deal rejected: " + dup.Error()
	case err != nil:
		return fmt.Sprintf("deal rejected: the provider could not record the deal: %v", err)
	}
	p.hook(params.DealUUID, Accepted.String())
	return ""
}
