package market

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

// AskParams are what an operator sets in the storage ask.
type AskParams struct {
	// Price and VerifiedPrice are attoFIL per GiB per epoch.
	Price, VerifiedPrice abi.TokenAmount
	// MinPieceSize and MaxPieceSize bound accepted pieces (padded bytes).
	MinPieceSize, MaxPieceSize abi.PaddedPieceSize
	// Duration is how many epochs the ask stays valid; 0 is one year.
	Duration abi.ChainEpoch
}

// Ask returns the current signed ask.
func (p *Provider) Ask(ctx context.Context) (*wire.SignedStorageAsk, error) {
	a := p.ask.Load()
	if a == nil {
		return nil, errors.New("market: no storage ask yet")
	}
	return a, nil
}

// SetAsk makes, signs with the worker key and stores a new ask.
func (p *Provider) SetAsk(ctx context.Context, ap AskParams) (*wire.SignedStorageAsk, error) {
	if ap.Price.Int == nil || ap.Price.Sign() < 0 || ap.VerifiedPrice.Int == nil || ap.VerifiedPrice.Sign() < 0 {
		return nil, errors.New("market: ask prices must be set and not negative")
	}
	if ap.MinPieceSize > ap.MaxPieceSize {
		return nil, fmt.Errorf("market: ask minimum piece size %d is above the maximum %d", ap.MinPieceSize, ap.MaxPieceSize)
	}
	if ap.Duration == 0 {
		ap.Duration = 365 * 2880
	}
	p.askMu.Lock()
	defer p.askMu.Unlock()
	head, err := p.d.Node.ChainHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("market: reading chain head for the ask: %w", err)
	}
	var seq uint64
	if cur := p.ask.Load(); cur != nil && cur.Ask != nil {
		seq = cur.Ask.SeqNo + 1
	}
	ask := &wire.StorageAsk{
		Price: ap.Price, VerifiedPrice: ap.VerifiedPrice, MinPieceSize: ap.MinPieceSize, MaxPieceSize: ap.MaxPieceSize,
		Miner: p.cfg.Miner, Timestamp: head.Height(), Expiry: head.Height() + ap.Duration, SeqNo: seq,
	}
	var buf bytes.Buffer
	if err := ask.MarshalCBOR(&buf); err != nil {
		return nil, fmt.Errorf("market: encoding ask: %w", err)
	}
	sig, err := p.d.Node.WalletSign(ctx, p.worker, buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("market: signing ask with worker %s: %w", p.worker, err)
	}
	signed := &wire.SignedStorageAsk{Ask: ask, Signature: sig}
	if err := p.store.putAsk(ctx, signed); err != nil {
		return nil, fmt.Errorf("market: %w", err)
	}
	p.ask.Store(signed)
	return signed, nil
}

// loadAsk reads the stored ask, making the default one at first start.
func (p *Provider) loadAsk(ctx context.Context) error {
	a, err := p.store.ask(ctx)
	if err != nil {
		return fmt.Errorf("market: %w", err)
	}
	if a == nil {
		_, err := p.SetAsk(ctx, AskParams{
			Price: DefaultAskPrice(), VerifiedPrice: DefaultVerifiedAskPrice(),
			MinPieceSize: DefaultMinPieceSize, MaxPieceSize: DefaultMaxPieceSize,
		})
		return err
	}
	p.ask.Store(a)
	return nil
}

// Status answers a deal status request.
func (p *Provider) Status(ctx context.Context, req *wire.DealStatusRequest) wire.DealStatusResponse {
	resp := wire.DealStatusResponse{DealUUID: req.DealUUID}
	d, err := p.store.deal(ctx, req.DealUUID)
	if errors.Is(err, ErrUnknownDeal) {
		resp.Error = fmt.Sprintf("no deal with UUID %s", req.DealUUID)
		return resp
	}
	if err != nil {
		resp.Error = fmt.Sprintf("reading deal %s: %v", req.DealUUID, err)
		return resp
	}
	if err := wallet.Verify(&req.Signature, d.ClientKey, wire.StatusSigningBytes(req.DealUUID)); err != nil {
		resp.Error = "signature verification failed"
		return resp
	}
	if d.Kind != KindMarket {
		resp.Error = fmt.Sprintf("deal %s is a direct data onboarding deal, not a storage market deal", req.DealUUID)
		return resp
	}
	st := &wire.DealStatus{
		Error:             d.Error,
		Status:            d.Checkpoint.String(),
		SealingStatus:     d.SealingState,
		Proposal:          d.Proposal.Proposal,
		SignedProposalCid: d.SignedCID,
		ChainDealID:       d.ChainDealID,
	}
	if d.PublishCid.Defined() {
		c := d.PublishCid
		st.PublishCid = &c
	}
	if d.Sector >= 0 && d.Checkpoint != Complete {
		if ss, err := p.d.Sealer.SectorStatus(ctx, d.UUID); err == nil {
			st.SealingStatus = string(ss.State)
		}
	}
	resp.DealStatus = st
	resp.IsOffline = d.IsOffline
	resp.TransferSize = d.TransferSize
	resp.NBytesReceived = p.received(d)
	return resp
}

// addedBytes is how much of a deal's data AddPiece has read, while it runs.
func (p *Provider) addedBytes(d *dealRow) uint64 {
	if !d.addsPiece() {
		return 0
	}
	p.mu.Lock()
	rd := p.running[d.UUID]
	p.mu.Unlock()
	if rd == nil {
		return 0
	}
	return uint64(rd.added.Load())
}

func (p *Provider) received(d *dealRow) uint64 {
	p.mu.Lock()
	rd := p.running[d.UUID]
	imported := p.imports[d.UUID]
	p.mu.Unlock()
	if imported != nil && d.Checkpoint == Accepted {
		return uint64(imported.Load())
	}
	if rd != nil && d.Checkpoint == Accepted {
		if n := rd.received.Load(); n > d.BytesReceived {
			return n
		}
	}
	return d.BytesReceived
}
