package node

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

// proposalBytes is a well-formed proposal the provider rejects (its
// client has no account): what matters is that it is answered.
func proposalBytes(t *testing.T, n *Node) []byte {
	t.Helper()
	key, err := wallet.Generate(wallet.TypeSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := key.Address()
	pc, err := commcid.DataCommitmentV1ToCID(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	label, _ := market.NewLabelFromString("x")
	prop := market.DealProposal{
		PieceCID: pc, PieceSize: 2048, Client: client, Provider: n.Miner, Label: label,
		StartEpoch: 100_000, EndEpoch: 700_000,
		StoragePricePerEpoch: big.Zero(), ProviderCollateral: big.Zero(), ClientCollateral: big.Zero(),
	}
	var pb bytes.Buffer
	if err := prop.MarshalCBOR(&pb); err != nil {
		t.Fatal(err)
	}
	sig, err := wallet.Sign(key, pb.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	params := wire.DealParams{
		DealUUID:           uuid.New(),
		IsOffline:          true,
		ClientDealProposal: market.ClientDealProposal{Proposal: prop, ClientSignature: crypto.Signature{Type: sig.Type, Data: sig.Data}},
		DealDataRoot:       pc,
	}
	var b bytes.Buffer
	if err := params.MarshalCBOR(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// proposeAtOnce opens count proposal streams from one peer and has all of
// them open on the provider, each half written, before any is finished:
// count proposals in flight at once. It returns how many were answered,
// how many of those said busy, and the errors of those not answered.
func proposeAtOnce(t *testing.T, n *Node, count int) (answered, busy int, errs []error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.ResourceManager(&network.NullResourceManager{}))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Connect(ctx, peer.AddrInfo{ID: n.Host.ID(), Addrs: n.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	req := proposalBytes(t, n)
	half := len(req) / 2
	release := make(chan struct{})
	var opened, done sync.WaitGroup
	var mu sync.Mutex
	for i := 0; i < count; i++ {
		opened.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			var once sync.Once
			ready := func() { once.Do(opened.Done) }
			defer ready()
			err := func() error {
				s, err := h.NewStream(ctx, n.Host.ID(), wire.DealProtocolv121)
				if err != nil {
					return fmt.Errorf("opening: %w", err)
				}
				defer s.Close()
				if _, err := s.Write(req[:half]); err != nil {
					return fmt.Errorf("writing: %w", err)
				}
				ready()
				<-release
				if _, err := s.Write(req[half:]); err != nil {
					return fmt.Errorf("writing: %w", err)
				}
				var resp wire.DealResponse
				if err := wire.Read(s, &resp, 0); err != nil {
					return fmt.Errorf("reading the answer: %w", err)
				}
				mu.Lock()
				defer mu.Unlock()
				answered++
				if strings.HasPrefix(resp.Message, "busy:") && strings.Contains(resp.Message, "retry") {
					busy++
				}
				return nil
			}()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	opened.Wait()
	// Every stream is open on the provider before any proposal is whole
	// (unless the provider refused some: then their writes fail).
	deadline := time.Now().Add(20 * time.Second)
	for inbound(n) < count && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	done.Wait()
	return answered, busy, errs
}

// inbound is how many proposal streams are open on the provider.
func inbound(n *Node) int {
	var got int
	_ = n.Host.Network().ResourceManager().ViewProtocol(wire.DealProtocolv121, func(s network.ProtocolScope) error {
		got = s.Stat().NumStreamsInbound
		return nil
	})
	return got
}

// TestManyProposalsFromOnePeer: a data-preparation client sends 100
// proposals at once over one connection. Every one gets an answer, none is
// reset by libp2p's resource manager; with the provider's limit below 100,
// those beyond it are answered "busy: … retry".
func TestManyProposalsFromOnePeer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		perPeer  int
		wantBusy int
	}{
		{"served", 256, 0},
		{"busy beyond the limit", 10, 90},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testRepo(t, fmt.Sprintf("ProposalsPerPeer = %d", tc.perPeer))
			n, err := Start(context.Background(), dir, Options{Logf: func(string, ...any) {}})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			answered, busy, errs := proposeAtOnce(t, n, 100)
			if len(errs) > 0 {
				t.Fatalf("%d of 100 proposals got no answer, the first: %v", len(errs), errs[0])
			}
			if answered != 100 || busy != tc.wantBusy {
				t.Fatalf("%d answered, %d of them busy; want 100 and %d", answered, busy, tc.wantBusy)
			}
		})
	}
}
