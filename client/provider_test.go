package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

// fakeChain answers the chain reads a client makes before a deal.
type fakeChain struct {
	chain.Node
	info   chain.MinerInfo
	head   abi.ChainEpoch
	escrow big.Int
	minCol big.Int
}

func (f *fakeChain) StateMinerInfo(_ context.Context, m address.Address, _ chain.TipSetKey) (chain.MinerInfo, error) {
	if m.String() != "f01000" {
		return chain.MinerInfo{}, errors.New("actor not found")
	}
	return f.info, nil
}

func (f *fakeChain) StateAccountKey(_ context.Context, a address.Address, _ chain.TipSetKey) (address.Address, error) {
	return a, nil
}

func (f *fakeChain) ChainHead(context.Context) (*chain.TipSet, error) {
	mh, _ := multihash.Sum([]byte("block"), multihash.BLAKE2B_MIN+31, -1)
	return chain.NewTipSet([]*chain.BlockHeader{{Height: f.head}}, []cid.Cid{cid.NewCidV1(cid.DagCBOR, mh)})
}

func (f *fakeChain) StateDealProviderCollateralBounds(context.Context, abi.PaddedPieceSize, bool, chain.TipSetKey) (chain.DealCollateralBounds, error) {
	return chain.DealCollateralBounds{Min: f.minCol, Max: big.Mul(f.minCol, big.NewInt(2))}, nil
}

func (f *fakeChain) StateMarketBalance(context.Context, address.Address, chain.TipSetKey) (chain.MarketBalance, error) {
	return chain.MarketBalance{Escrow: f.escrow, Locked: big.Zero()}, nil
}

// fakeProvider speaks the deal protocols over real libp2p.
type fakeProvider struct {
	h      host.Host
	worker address.Address
	wk     *wallet.Wallet
	ask    wire.StorageAsk
	badAsk bool // sign the ask with another key

	mu       sync.Mutex
	proposed []wire.DealParams
	reject   string
	status   string
}

func newFakeProvider(t *testing.T) (*fakeProvider, *fakeChain) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	wk, err := wallet.Open(t.TempDir() + "/ks")
	if err != nil {
		t.Fatal(err)
	}
	worker, err := wk.New(wallet.TypeBLS)
	if err != nil {
		t.Fatal(err)
	}
	miner := mustAddr(t, "f01000")
	fp := &fakeProvider{h: h, worker: worker, wk: wk, status: "Accepted", ask: wire.StorageAsk{
		Price: big.NewInt(50_000_000), VerifiedPrice: big.NewInt(5_000_000),
		MinPieceSize: 256, MaxPieceSize: 32 << 30, Miner: miner, Timestamp: 1, Expiry: 100000, SeqNo: 3,
	}}
	h.SetStreamHandler(wire.AskProtocol, fp.handleAsk)
	h.SetStreamHandler(wire.DealProtocolv121, fp.handleDeal)
	h.SetStreamHandler(wire.DealStatusProtocol, fp.handleStatus)
	id := h.ID()
	fc := &fakeChain{head: 500, escrow: chain.FIL(1), minCol: big.NewInt(777), info: chain.MinerInfo{Worker: worker, PeerId: &id}}
	for _, a := range h.Addrs() {
		fc.info.Multiaddrs = append(fc.info.Multiaddrs, a.Bytes())
	}
	return fp, fc
}

func (fp *fakeProvider) handleAsk(s network.Stream) {
	defer s.Close()
	var req wire.AskRequest
	if err := wire.Read(s, &req, 0); err != nil {
		s.Reset()
		return
	}
	fp.mu.Lock()
	ask, bad := fp.ask, fp.badAsk
	fp.mu.Unlock()
	var buf bytes.Buffer
	_ = ask.MarshalCBOR(&buf)
	signer := fp.worker
	if bad {
		signer, _ = fp.wk.New(wallet.TypeSecp256k1)
	}
	sig, _ := fp.wk.Sign(signer, buf.Bytes())
	_ = wire.Write(s, &wire.AskResponse{Ask: &wire.SignedStorageAsk{Ask: &ask, Signature: sig}})
}

func (fp *fakeProvider) handleDeal(s network.Stream) {
	defer s.Close()
	var p wire.DealParams
	if err := wire.Read(s, &p, 0); err != nil {
		s.Reset()
		return
	}
	var buf bytes.Buffer
	_ = p.ClientDealProposal.Proposal.MarshalCBOR(&buf)
	resp := wire.DealResponse{Accepted: true}
	if err := wallet.Verify(&p.ClientDealProposal.ClientSignature, p.ClientDealProposal.Proposal.Client, buf.Bytes()); err != nil {
		resp = wire.DealResponse{Message: "bad signature"}
	}
	fp.mu.Lock()
	fp.proposed = append(fp.proposed, p)
	if fp.reject != "" {
		resp = wire.DealResponse{Message: fp.reject}
	}
	fp.mu.Unlock()
	_ = wire.Write(s, &resp)
}

func (fp *fakeProvider) handleStatus(s network.Stream) {
	defer s.Close()
	var req wire.DealStatusRequest
	if err := wire.Read(s, &req, 0); err != nil {
		s.Reset()
		return
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	resp := wire.DealStatusResponse{DealUUID: req.DealUUID}
	var p *wire.DealParams
	for i := range fp.proposed {
		if fp.proposed[i].DealUUID == req.DealUUID {
			p = &fp.proposed[i]
		}
	}
	switch {
	case p == nil:
		resp.Error = "no such proposal"
	case wallet.Verify(&req.Signature, p.ClientDealProposal.Proposal.Client, wire.StatusSigningBytes(req.DealUUID)) != nil:
		resp.Error = "signature verification failed"
	default:
		resp.TransferSize = p.Transfer.Size
		spc, _ := wire.SignedProposalCID(&p.ClientDealProposal)
		resp.DealStatus = &wire.DealStatus{Status: fp.status, Proposal: p.ClientDealProposal.Proposal, SignedProposalCid: spc}
		if fp.status != "Accepted" {
			resp.NBytesReceived = p.Transfer.Size
		}
	}
	_ = wire.Write(s, &resp)
}

// set changes the provider's behaviour under its lock.
func (fp *fakeProvider) set(f func()) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	f()
}

func testDealRequest(t *testing.T, clientAddr address.Address) DealRequest {
	r := validRequest(t)
	r.Client = clientAddr
	return r
}

func TestDealWithProvider(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fp, fc := newFakeProvider(t)
	w, err := wallet.Open(t.TempDir() + "/client")
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := w.New(wallet.TypeSecp256k1)
	h, err := NewHost()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	p, err := LookupProvider(ctx, fc, mustAddr(t, "f01000"))
	if err != nil {
		t.Fatal(err)
	}
	ask, err := QueryAsk(ctx, fc, h, p)
	if err != nil || ask.SeqNo != 3 || !ask.Price.Equals(big.NewInt(50_000_000)) {
		t.Fatalf("ask %+v, %v", ask, err)
	}
	if _, err := LookupProvider(ctx, fc, mustAddr(t, "f01234")); err == nil {
		t.Fatal("unknown miner found")
	}

	// An accepted deal with the defaults filled in.
	req := testDealRequest(t, ca)
	req.HTTPHeaders = map[string]string{"Authorization": "Bearer x"}
	res, err := MakeDeal(ctx, fc, h, w, req)
	if err != nil {
		t.Fatal(err)
	}
	fp.mu.Lock()
	if !res.Accepted || len(fp.proposed) != 1 {
		t.Fatalf("result %+v, %d proposals", res, len(fp.proposed))
	}
	got := fp.proposed[0]
	prop := got.ClientDealProposal.Proposal
	if got.DealUUID != res.DealUUID || got.DealDataRoot != req.PayloadCID || got.Transfer.Size != req.CARSize || got.Transfer.Type != "http" {
		t.Fatalf("params %+v", got)
	}
	var hr wire.HTTPRequest
	if err := json.Unmarshal(got.Transfer.Params, &hr); err != nil || hr.URL != req.HTTPURL || hr.Headers["Authorization"] != "Bearer x" {
		t.Fatalf("transfer params %s: %v", got.Transfer.Params, err)
	}
	if prop.StartEpoch != 500+DefaultStartDelay || prop.EndEpoch != prop.StartEpoch+DefaultDuration {
		t.Fatalf("epochs %d…%d", prop.StartEpoch, prop.EndEpoch)
	}
	if !prop.StoragePricePerEpoch.Equals(big.NewInt(96)) || !prop.ProviderCollateral.Equals(big.NewInt(777)) {
		t.Fatalf("price %s, collateral %s", prop.StoragePricePerEpoch, prop.ProviderCollateral)
	}
	if spc, _ := wire.SignedProposalCID(&got.ClientDealProposal); spc != res.SignedProposalCID {
		t.Fatalf("signed proposal CID %s vs %s", spc, res.SignedProposalCID)
	}

	fp.mu.Unlock()

	// Status: signed by the client wallet, checked by the provider.
	sw := &StatusWatcher{Host: h, Provider: p, Wallet: w, Client: ca, DealUUID: res.DealUUID, Interval: 10 * time.Millisecond}
	st, err := sw.Poll(ctx)
	if err != nil || st.Error != "" || st.DealStatus.Status != "Accepted" || Transferred(st) {
		t.Fatalf("status %+v, %v", st, err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		fp.mu.Lock()
		fp.status = "Transferred"
		fp.mu.Unlock()
	}()
	st, err = sw.WaitTransferred(ctx, nil)
	if err != nil || st.DealStatus.Status != "Transferred" {
		t.Fatalf("waiting for the transfer: %+v %v", st, err)
	}
	// Another wallet's signature is refused by the provider.
	other, _ := w.New(wallet.TypeSecp256k1)
	st, err = (&StatusWatcher{Host: h, Provider: p, Wallet: w, Client: other, DealUUID: res.DealUUID}).Poll(ctx)
	if err != nil || st.Error != "signature verification failed" {
		t.Fatalf("status with another wallet: %+v %v", st, err)
	}
	if _, err := DealState(st); err == nil {
		t.Fatal("a status error is not an error")
	}

	// Not enough escrow: nothing is sent.
	fc.escrow = big.NewInt(10)
	if _, err := MakeDeal(ctx, fc, h, w, req); !errors.Is(err, ErrInsufficientEscrow) || !strings.Contains(err.Error(), "ferry market add-balance") {
		t.Fatalf("deal without escrow: %v", err)
	}
	fp.set(func() {
		if len(fp.proposed) != 1 {
			t.Error("a proposal was sent without escrow")
		}
	})
	fc.escrow = chain.FIL(1)

	// A rejection carries the provider's reason.
	fp.set(func() { fp.reject = "deal rejected: storage price too low" })
	res, err = MakeDeal(ctx, fc, h, w, req)
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "storage price too low") || res == nil || res.Accepted {
		t.Fatalf("rejected deal: %+v %v", res, err)
	}
	fp.set(func() { fp.reject = "" })

	// A piece outside the ask's sizes is refused before proposing.
	fp.set(func() { fp.ask.MinPieceSize = 1 << 20 })
	if _, err := MakeDeal(ctx, fc, h, w, req); err == nil || !strings.Contains(err.Error(), "takes pieces") {
		t.Fatalf("small piece: %v", err)
	}
	fp.set(func() { fp.ask.MinPieceSize = 256 })

	// An ask not signed by the worker is refused.
	fp.set(func() { fp.badAsk = true })
	if _, err := QueryAsk(ctx, fc, h, p); err == nil || !strings.Contains(err.Error(), "worker") {
		t.Fatalf("ask signed by another key: %v", err)
	}
}

func TestProviderUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fp, fc := newFakeProvider(t)
	fp.h.Close()
	h, err := NewHost()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p, err := LookupProvider(ctx, fc, mustAddr(t, "f01000"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := QueryAsk(ctx, fc, h, p); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("closed provider: %v", err)
	}
	fc.info.Multiaddrs = nil
	if _, err := LookupProvider(ctx, fc, mustAddr(t, "f01000")); err == nil {
		t.Fatal("a miner without multiaddrs was found")
	}
}

// A miner whose multiaddrs on chain include its HTTP listener's (as
// ferryd writes them, for Curio's clients) is still reached over libp2p:
// the host dials the addresses it has a transport for and skips the rest,
// as Boost's client, which hands libp2p the same list, relies on too.
func TestProviderWithHTTPAddrOnChain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, fc := newFakeProvider(t)
	httpAddr, err := multiaddr.NewMultiaddr("/ip4/127.0.0.1/tcp/7777/http")
	if err != nil {
		t.Fatal(err)
	}
	fc.info.Multiaddrs = append([]abi.Multiaddrs{httpAddr.Bytes()}, fc.info.Multiaddrs...)
	h, err := NewHost()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p, err := LookupProvider(ctx, fc, mustAddr(t, "f01000"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.AddrInfo.Addrs) != len(fc.info.Multiaddrs) || !p.AddrInfo.Addrs[0].Equal(httpAddr) {
		t.Fatalf("addresses %v", p.AddrInfo.Addrs)
	}
	if _, err := QueryAsk(ctx, fc, h, p); err != nil {
		t.Fatalf("asking a provider with an HTTP address on chain: %v", err)
	}
	// Only the HTTP address: nothing libp2p can dial (from a host not
	// connected yet).
	fc.info.Multiaddrs = []abi.Multiaddrs{httpAddr.Bytes()}
	if p, err = LookupProvider(ctx, fc, mustAddr(t, "f01000")); err != nil {
		t.Fatal(err)
	}
	h2, err := NewHost()
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if _, err := QueryAsk(ctx, fc, h2, p); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("a provider with only an HTTP address: %v", err)
	}
}
