package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

// Deadlines of one request/response exchange, as Boost's client uses them.
const (
	writeTimeout = 10 * time.Second
	readTimeout  = 60 * time.Second
	dialTimeout  = 30 * time.Second
)

// ErrUnreachable wraps failures to connect to a provider.
var ErrUnreachable = errors.New("provider unreachable")

// Provider is a storage provider as the chain describes it.
type Provider struct {
	// Miner is the miner actor's address.
	Miner address.Address
	// Info is the miner actor's info.
	Info chain.MinerInfo
	// AddrInfo is the provider's libp2p identity and addresses.
	AddrInfo peer.AddrInfo
}

// LookupProvider reads a miner's peer ID and multiaddrs from the chain.
func LookupProvider(ctx context.Context, n chain.Node, miner address.Address) (*Provider, error) {
	if miner.Protocol() != address.ID {
		return nil, fmt.Errorf("provider %s: a miner is named by its ID address (f0…)", miner)
	}
	info, err := n.StateMinerInfo(ctx, miner, chain.EmptyTSK)
	if err != nil {
		return nil, fmt.Errorf("looking up miner %s on chain: %w", miner, err)
	}
	if info.PeerId == nil {
		return nil, fmt.Errorf("miner %s has no peer ID on chain", miner)
	}
	var addrs []multiaddr.Multiaddr
	for i, b := range info.Multiaddrs {
		a, err := multiaddr.NewMultiaddrBytes(b)
		if err != nil {
			return nil, fmt.Errorf("miner %s: multiaddr %d on chain is invalid: %w", miner, i, err)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("miner %s has no multiaddrs on chain", miner)
	}
	return &Provider{Miner: miner, Info: info, AddrInfo: peer.AddrInfo{ID: *info.PeerId, Addrs: addrs}}, nil
}

// NewHost starts a libp2p host that dials out only. Close it when done.
func NewHost() (host.Host, error) {
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		return nil, fmt.Errorf("starting libp2p: %w", err)
	}
	return h, nil
}

// Connect dials the provider.
func Connect(ctx context.Context, h host.Host, p *Provider) error {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := h.Connect(ctx, p.AddrInfo); err != nil {
		return fmt.Errorf("%w: miner %s at %v: %v", ErrUnreachable, p.Miner, p.AddrInfo.Addrs, err)
	}
	return nil
}

// rpc sends req (nil: nothing) on a new stream of protocol proto and reads
// resp.
func rpc(ctx context.Context, h host.Host, p *Provider, protos []protocol.ID, req cbg.CBORMarshaler, resp cbg.CBORUnmarshaler) error {
	if err := Connect(ctx, h, p); err != nil {
		return err
	}
	s, err := h.NewStream(ctx, p.AddrInfo.ID, protos...)
	if err != nil {
		return fmt.Errorf("opening %s stream to miner %s: %w", protos[0], p.Miner, err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		// Unblock reads and writes when the context ends first.
		select {
		case <-ctx.Done():
			s.Reset()
		case <-done:
		}
	}()
	defer s.Close()
	if req != nil {
		_ = s.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := wire.Write(s, req); err != nil {
			s.Reset()
			return fmt.Errorf("sending to miner %s: %w", p.Miner, err)
		}
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return fmt.Errorf("sending to miner %s: %w", p.Miner, err)
	}
	_ = s.SetReadDeadline(time.Now().Add(readTimeout))
	if err := wire.Read(s, resp, 0); err != nil {
		s.Reset()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("reading the answer of miner %s: %w", p.Miner, err)
	}
	return nil
}

// QueryAsk asks the provider for its storage ask over libp2p and checks it:
// it must be the miner's, signed by its worker key.
func QueryAsk(ctx context.Context, n chain.Node, h host.Host, p *Provider) (*wire.StorageAsk, error) {
	var resp wire.AskResponse
	if err := rpc(ctx, h, p, []protocol.ID{wire.AskProtocol}, &wire.AskRequest{Miner: p.Miner}, &resp); err != nil {
		return nil, fmt.Errorf("querying the ask: %w", err)
	}
	return checkAsk(ctx, n, p, &resp)
}

// checkAsk checks an ask answer: it must be the miner's, signed by its
// worker key.
func checkAsk(ctx context.Context, n chain.Node, p *Provider, resp *wire.AskResponse) (*wire.StorageAsk, error) {
	if resp.Ask == nil || resp.Ask.Ask == nil {
		return nil, fmt.Errorf("miner %s has no storage ask", p.Miner)
	}
	ask := resp.Ask.Ask
	if ask.Miner != p.Miner {
		return nil, fmt.Errorf("miner %s answered with the ask of %s", p.Miner, ask.Miner)
	}
	worker, err := n.StateAccountKey(ctx, p.Info.Worker, chain.EmptyTSK)
	if err != nil {
		return nil, fmt.Errorf("resolving the worker key of miner %s: %w", p.Miner, err)
	}
	var buf bytes.Buffer
	if err := ask.MarshalCBOR(&buf); err != nil {
		return nil, fmt.Errorf("encoding the ask: %w", err)
	}
	if err := wallet.Verify(resp.Ask.Signature, worker, buf.Bytes()); err != nil {
		return nil, fmt.Errorf("the ask of miner %s is not signed by its worker %s: %w", p.Miner, worker, err)
	}
	return ask, nil
}

// Transports asks the provider which retrieval transports it serves.
func Transports(ctx context.Context, h host.Host, p *Provider) (*wire.QueryResponse, error) {
	var resp wire.QueryResponse
	if err := rpc(ctx, h, p, []protocol.ID{wire.TransportsProtocol}, nil, &resp); err != nil {
		return nil, fmt.Errorf("querying retrieval transports: %w", err)
	}
	return &resp, nil
}

// Propose sends a deal proposal and returns the provider's answer.
func Propose(ctx context.Context, h host.Host, p *Provider, params *wire.DealParams) (*wire.DealResponse, error) {
	var resp wire.DealResponse
	if err := rpc(ctx, h, p, []protocol.ID{wire.DealProtocolv121, wire.DealProtocolv120}, params, &resp); err != nil {
		return nil, fmt.Errorf("proposing the deal: %w", err)
	}
	return &resp, nil
}

// QueryDealStatus asks the provider for a deal's status, signing the
// request with the deal's client wallet.
func QueryDealStatus(ctx context.Context, h host.Host, p *Provider, w *wallet.Wallet, clientAddr address.Address, dealUUID [16]byte) (*wire.DealStatusResponse, error) {
	sig, err := w.Sign(clientAddr, wire.StatusSigningBytes(dealUUID))
	if err != nil {
		return nil, fmt.Errorf("signing the status request: %w", err)
	}
	req := &wire.DealStatusRequest{DealUUID: dealUUID, Signature: *sig}
	var resp wire.DealStatusResponse
	if err := rpc(ctx, h, p, []protocol.ID{wire.DealStatusProtocol}, req, &resp); err != nil {
		return nil, fmt.Errorf("querying the deal status: %w", err)
	}
	return &resp, nil
}
