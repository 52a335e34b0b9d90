package sealing

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
	"github.com/ferry-fil/ferry/piece"
)

// fakeNode is a chain.Node whose head height the test sets. Methods the
// sealing code must not call panic through the nil embedded interface.
type fakeNode struct {
	chain.Node
	mu      sync.Mutex
	height  abi.ChainEpoch
	allocs  map[chain.AllocationID]*chain.Allocation // by ID, whatever the client
	pending map[abi.DealID]chain.AllocationID        // verified market deals' allocations
}

// StateGetAllocation returns the allocation the test put in allocs.
func (f *fakeNode) StateGetAllocation(_ context.Context, client address.Address, id chain.AllocationID, _ chain.TipSetKey) (*chain.Allocation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.allocs[id]
	if a == nil {
		return nil, nil
	}
	if c, err := address.IDFromAddress(client); err != nil || abi.ActorID(c) != a.Client {
		return nil, nil
	}
	return a, nil
}

// StateGetAllocationIdForPendingDeal returns the allocation the test put in
// pending.
func (f *fakeNode) StateGetAllocationIdForPendingDeal(_ context.Context, id abi.DealID, _ chain.TipSetKey) (chain.AllocationID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending[id], nil
}

// StateLookupID returns ID addresses as they are.
func (f *fakeNode) StateLookupID(_ context.Context, a address.Address, _ chain.TipSetKey) (address.Address, error) {
	if a.Protocol() != address.ID {
		return address.Undef, fmt.Errorf("fake node: %s is not an ID address", a)
	}
	return a, nil
}

func (f *fakeNode) ChainHead(ctx context.Context) (*chain.TipSet, error) {
	f.mu.Lock()
	h := f.height
	f.mu.Unlock()
	return tipsetAt(h)
}

func tipsetAt(h abi.ChainEpoch) (*chain.TipSet, error) {
	mh, _ := multihash.Sum([]byte{byte(h), byte(h >> 8), byte(h >> 16)}, multihash.SHA2_256, -1)
	return chain.NewTipSet([]*chain.BlockHeader{{Height: h}}, []cid.Cid{cid.NewCidV1(cid.DagCBOR, mh)})
}

var (
	testMiner, _  = address.NewIDAddress(1000)
	testClient, _ = address.NewIDAddress(1001)
)

func openTestDB(t testing.TB, dir string) *Sealing {
	t.Helper()
	return openTestSealing(t, dir, Config{SectorSize: 2 << 10}, &fakeNode{height: 10})
}

func openTestSealing(t testing.TB, dir string, cfg Config, node Chain) *Sealing {
	t.Helper()
	ctx := context.Background()
	sqldb, err := db.Open(ctx, dbtest.Source(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	cfg.Dir = filepath.Join(dir, "sectors")
	if cfg.SectorSize == 0 {
		cfg.SectorSize = 2 << 10
	}
	s, err := New(cfg, sqldb, node, nil, testMiner, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testPiece is a deal's payload and its commitment.
type testPiece struct {
	data []byte
	size abi.UnpaddedPieceSize
	cid  cid.Cid
}

func makePiece(t testing.TB, seed int64, payload int, size abi.PaddedPieceSize) testPiece {
	t.Helper()
	data := make([]byte, payload)
	rand.New(rand.NewSource(seed)).Read(data)
	c := piece.NewCalc()
	c.Write(data)
	comm, err := c.SumAs(size)
	if err != nil {
		t.Fatal(err)
	}
	return testPiece{data: data, size: size.Unpadded(), cid: comm.CID()}
}

func dealFor(p testPiece, start abi.ChainEpoch) Deal {
	return Deal{
		UUID:         uuid.New(),
		DealID:       0,
		KeepUnsealed: true,
		Proposal: &market.DealProposal{
			PieceCID:             p.cid,
			PieceSize:            p.size.Padded(),
			Client:               testClient,
			Provider:             testMiner,
			StartEpoch:           start,
			EndEpoch:             start + 518400,
			StoragePricePerEpoch: big.Zero(),
			ProviderCollateral:   big.Zero(),
			ClientCollateral:     big.Zero(),
		},
	}
}

func readBack(t testing.TB, s *Sealing, c cid.Cid) []byte {
	t.Helper()
	r, err := s.ReadPiece(context.Background(), c)
	if err != nil {
		t.Fatalf("ReadPiece %s: %v", c, err)
	}
	defer r.Close()
	out, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		t.Fatalf("reading piece %s: %v", c, err)
	}
	return out
}

// checkPayload checks that the read-back piece is the payload zero-filled.
func checkPayload(t testing.TB, got []byte, p testPiece) {
	t.Helper()
	want := make([]byte, p.size)
	copy(want, p.data)
	if !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes differ from the %d-byte payload (zero-filled to %d)", len(got), len(p.data), p.size)
	}
}

// gatedReader blocks its first Read until open is closed; then it reads r,
// or fails with fail when that is set.
type gatedReader struct {
	r    io.Reader
	open chan struct{}
	fail error
}

func (g *gatedReader) Read(p []byte) (int, error) {
	<-g.open
	if g.fail != nil {
		return 0, g.fail
	}
	return g.r.Read(p)
}

// waitReserved waits until the deal's placement is recorded and returns it.
func waitReserved(t testing.TB, s *Sealing, d Deal) Placement {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		pl, _, _, found, err := s.st.dealPlacement(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		if found {
			return pl
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("deal %s was never placed", d.UUID)
	return Placement{}
}

// addResult is what an AddPieceToAny call run in a goroutine returned.
type addResult struct {
	pl  Placement
	err error
}

// addAsync runs AddPieceToAny in a goroutine and returns where its result
// will be.
func addAsync(ctx context.Context, s *Sealing, p testPiece, r io.Reader, d Deal) <-chan addResult {
	ch := make(chan addResult, 1)
	go func() {
		pl, err := s.AddPieceToAny(ctx, p.size, r, d)
		ch <- addResult{pl, err}
	}()
	return ch
}
