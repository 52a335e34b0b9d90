package node

import (
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/ferry-fil/ferry/wire"
)

// Data-preparation tools propose many deals to one provider at once, each
// on its own stream. libp2p's resource manager lets one peer open only 64
// inbound streams of one protocol by default and resets the others; ferryd
// raises the limits of the deal protocols so that ProposalsPerPeer
// proposals of one client (and as many status and ask queries) are served,
// and answers the proposals beyond that itself, with a rejection that says
// to retry.

// dealProtocols are the protocols whose limits are raised.
func dealProtocols() []protocol.ID {
	return []protocol.ID{wire.DealProtocolv121, wire.DealProtocolv120, wire.DealStatusProtocol, wire.AskProtocol, wire.TransportsProtocol}
}

// isProposal reports whether p is a proposal protocol, which
// limitProposals answers itself when busy.
func isProposal(p protocol.ID) bool {
	return p == wire.DealProtocolv121 || p == wire.DealProtocolv120
}

// proposalReadTimeout bounds how long a busy answer waits for the proposal
// it answers.
const proposalReadTimeout = 30 * time.Second

// newHost starts the libp2p host with the repo's identity on the listen
// addresses, with the deal protocols' limits.
func newHost(key crypto.PrivKey, cfg Libp2pConfig) (host.Host, error) {
	rm, err := resourceManager(cfg.ProposalsPerPeer)
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings(cfg.ListenAddresses...), libp2p.ResourceManager(rm))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("starting libp2p on %v: %w", cfg.ListenAddresses, err)
	}
	return h, nil
}

// resourceManager is libp2p's default resource manager (scaled to the
// machine) with room for dealStreams(perPeer) inbound streams of one peer on
// each deal protocol, and as many more on the peer and transient scopes
// they pass through. Only a client with more streams than that open at once
// is reset by libp2p; below it, proposals beyond perPeer are answered busy.
func resourceManager(perPeer int) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	streams := dealStreams(perPeer)
	for _, p := range dealProtocols() {
		limits.AddProtocolPeerLimit(p,
			rcmgr.BaseLimit{StreamsInbound: streams, StreamsOutbound: streams, Streams: 2 * streams, Memory: 64 << 20},
			rcmgr.BaseLimitIncrease{})
		limits.AddProtocolLimit(p,
			rcmgr.BaseLimit{StreamsInbound: 8 * streams, StreamsOutbound: 8 * streams, Streams: 16 * streams, Memory: 256 << 20},
			rcmgr.BaseLimitIncrease{StreamsInbound: streams, StreamsOutbound: streams, Streams: 2 * streams, Memory: 128 << 20})
	}
	limits.PeerBaseLimit.StreamsInbound += streams
	limits.PeerBaseLimit.Streams += streams
	limits.TransientBaseLimit.StreamsInbound += streams
	limits.TransientBaseLimit.Streams += streams
	limits.SystemBaseLimit.StreamsInbound += 4 * streams
	limits.SystemBaseLimit.Streams += 4 * streams
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		return nil, fmt.Errorf("making libp2p's resource manager: %w", err)
	}
	return rm, nil
}

// dealStreams is how many inbound streams of one peer the resource manager
// lets in on each deal protocol: well above perPeer, since the proposals
// beyond perPeer hold a stream too while they are answered busy.
func dealStreams(perPeer int) int { return max(4*perPeer, 1024) }

// limitProposals returns h as the market sees it: the handlers it sets for
// the proposal protocols run for at most perPeer streams of one peer at a
// time; a proposal beyond that is read and answered at once with a
// rejection that says to retry.
func limitProposals(h host.Host, perPeer int) host.Host {
	return &proposalLimit{Host: h, perPeer: perPeer, inFlight: map[peer.ID]int{}}
}

type proposalLimit struct {
	host.Host
	perPeer int

	mu       sync.Mutex
	inFlight map[peer.ID]int
}

// SetStreamHandler sets handler, behind the limit for the proposal
// protocols.
func (l *proposalLimit) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	if isProposal(pid) {
		next := handler
		handler = func(s network.Stream) {
			p := s.Conn().RemotePeer()
			if !l.enter(p) {
				l.busy(s)
				return
			}
			defer l.leave(p)
			next(s)
		}
	}
	l.Host.SetStreamHandler(pid, handler)
}

func (l *proposalLimit) enter(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight[p] >= l.perPeer {
		return false
	}
	l.inFlight[p]++
	return true
}

func (l *proposalLimit) leave(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight[p]--; l.inFlight[p] <= 0 {
		delete(l.inFlight, p)
	}
}

// busy reads the proposal on s (a client may not read an answer before it
// wrote its request) and rejects it, saying why and what to do.
func (l *proposalLimit) busy(s network.Stream) {
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(proposalReadTimeout))
	var req wire.DealParams
	if err := wire.Read(s, &req, 0); err != nil {
		_ = s.Reset()
		return
	}
	resp := wire.DealResponse{Message: fmt.Sprintf("busy: the provider is handling %d proposals from you already; retry in a few seconds", l.perPeer)}
	_ = s.SetWriteDeadline(time.Now().Add(proposalReadTimeout))
	if err := wire.Write(s, &resp); err != nil {
		_ = s.Reset()
	}
}
