package minerapi

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v13/miner"
	"github.com/filecoin-project/go-state-types/builtin/v13/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	ferryauth "github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/sealing"
)

var (
	testMiner, _  = address.NewIDAddress(1000)
	testClient, _ = address.NewIDAddress(1001)
)

const (
	adminToken = "admin-token"
	readToken  = "read-token"
)

// verifyTestToken stands in for the JWT check: two known tokens.
func verifyTestToken(_ context.Context, token string) ([]auth.Permission, error) {
	switch token {
	case adminToken:
		return ferryauth.All(), nil
	case readToken:
		return []auth.Permission{ferryauth.Read}, nil
	}
	return nil, errors.New("unknown token")
}

// fakeSealing is a Sealing that hashes the piece bytes it is given instead
// of keeping them, so pieces of any size cost no memory.
type fakeSealing struct {
	ssize abi.SectorSize
	dir   string // the storage path: tests write unsealed files there

	mu      sync.Mutex
	sectors map[abi.SectorNumber]*sealing.SectorInfo
	next    abi.SectorNumber
	byDeal  map[uuid.UUID]sealing.Placement
	digests map[uuid.UUID][]byte // sha256 of each placed piece's bytes
	adds    int                  // placements made
	reads   int                  // Sector calls (SectorsStatus)

	// reading, when set, is called with the bytes read so far as they
	// arrive; an error it returns fails the read.
	reading func(n int64) error
	// placed, when set, runs after a placement is recorded and before
	// AddPieceToAny returns.
	placed func(ctx context.Context)
	// newHash hashes the pieces (default SHA-256).
	newHash func() hash.Hash
}

func newFakeSealing(t testing.TB, ssize abi.SectorSize) *fakeSealing {
	return &fakeSealing{ssize: ssize, dir: t.TempDir(), sectors: map[abi.SectorNumber]*sealing.SectorInfo{}, next: 1,
		byDeal: map[uuid.UUID]sealing.Placement{}, digests: map[uuid.UUID][]byte{}}
}

type hookReader struct {
	r     io.Reader
	n     int64
	h     hash.Hash
	hook  func(int64) error
	limit int64
}

func (h *hookReader) Read(p []byte) (int, error) {
	if rest := h.limit - h.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	if len(p) == 0 {
		return 0, io.EOF
	}
	n, err := h.r.Read(p)
	h.n += int64(n)
	h.h.Write(p[:n])
	if h.hook != nil {
		if herr := h.hook(h.n); herr != nil {
			return n, herr
		}
	}
	return n, err
}

func (f *fakeSealing) AddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, data io.Reader, d sealing.Deal) (sealing.Placement, error) {
	f.mu.Lock()
	if pl, ok := f.byDeal[d.UUID]; ok {
		f.mu.Unlock()
		return pl, nil
	}
	hook, newHash := f.reading, f.newHash
	f.mu.Unlock()
	if newHash == nil {
		newHash = sha256.New
	}
	hr := &hookReader{r: data, h: newHash(), hook: hook, limit: int64(size)}
	if _, err := io.CopyBuffer(io.Discard, hr, make([]byte, 1<<20)); err != nil {
		return sealing.Placement{}, fmt.Errorf("reading piece: %w", err)
	}
	if hr.n != int64(size) {
		return sealing.Placement{}, fmt.Errorf("read %d of %d bytes", hr.n, size)
	}
	f.mu.Lock()
	pl := f.placeLocked(d, size.Padded())
	f.digests[d.UUID] = hr.h.Sum(nil)
	placed := f.placed
	f.mu.Unlock()
	if placed != nil {
		placed(ctx)
	}
	return pl, nil
}

// placeLocked puts a piece in the open sector (or a new one), after zero
// fillers that align it.
func (f *fakeSealing) placeLocked(d sealing.Deal, size abi.PaddedPieceSize) sealing.Placement {
	var si *sealing.SectorInfo
	if cur := f.sectors[f.next-1]; cur != nil && cur.State == "WaitDeals" {
		si = cur
	}
	used := func() abi.PaddedPieceSize {
		if si == nil {
			return 0
		}
		return si.Used
	}
	if si == nil || uint64((used()+size-1)/size*size+size) > uint64(f.ssize) {
		si = &sealing.SectorInfo{Number: f.next, State: "WaitDeals", SectorSize: f.ssize, Unsealed: true}
		f.sectors[f.next] = si
		f.next++
	}
	for si.Used%size != 0 {
		fill := si.Used & -si.Used // the lowest set bit: the largest aligned filler
		si.Pieces = append(si.Pieces, sealing.SectorPiece{Offset: si.Used, Size: fill, Filler: true, Written: true,
			PieceCID: piece.CIDv1(piece.ZeroCommitment(fill))})
		si.Used += fill
	}
	id := d.UUID
	sched := d.DealSchedule
	var publish *cid.Cid
	if d.Proposal != nil {
		sched = sealing.DealSchedule{StartEpoch: d.Proposal.StartEpoch, EndEpoch: d.Proposal.EndEpoch}
		pc := d.PublishCid
		publish = &pc
	}
	si.Pieces = append(si.Pieces, sealing.SectorPiece{Offset: si.Used, Size: size, PieceCID: d.PieceCID(), Written: true,
		DealUUID: &id, DealID: d.DealID, PublishCid: publish, Proposal: d.Proposal,
		StartEpoch: sched.StartEpoch, EndEpoch: sched.EndEpoch, KeepUnsealed: d.KeepUnsealed,
		Direct: d.IsDirect(), Manifest: d.PieceActivationManifest})
	si.Deals++
	pl := sealing.Placement{Sector: si.Number, Offset: si.Used, Size: size}
	si.Used += size
	f.byDeal[d.UUID] = pl
	f.adds++
	return pl
}

func (f *fakeSealing) Sectors(ctx context.Context) ([]sealing.SectorInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sealing.SectorInfo
	for n := abi.SectorNumber(1); n < f.next; n++ {
		out = append(out, f.copyLocked(n))
	}
	return out, nil
}

func (f *fakeSealing) Sector(ctx context.Context, n abi.SectorNumber) (sealing.SectorInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.sectors[n] == nil {
		return sealing.SectorInfo{}, fmt.Errorf("sector %d: %w", n, sealing.ErrUnknownSector)
	}
	return f.copyLocked(n), nil
}

func (f *fakeSealing) copyLocked(n abi.SectorNumber) sealing.SectorInfo {
	si := *f.sectors[n]
	si.Pieces = append([]sealing.SectorPiece(nil), si.Pieces...)
	return si
}

func (f *fakeSealing) setState(n abi.SectorNumber, state SectorState) {
	f.mu.Lock()
	f.sectors[n].State = state
	f.mu.Unlock()
}

func (f *fakeSealing) readCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

func (f *fakeSealing) addCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.adds
}

func (f *fakeSealing) Storage() (string, sealing.StorageMeta) {
	return f.dir, sealing.StorageMeta{ID: "5d1a6a0e-8d5b-4d2c-9d3f-0e6c7b1a2f34", Weight: 10, CanSeal: true, CanStore: true}
}

// writeUnsealed puts sector n's unsealed file in the storage path.
func (f *fakeSealing) writeUnsealed(t testing.TB, n abi.SectorNumber, b []byte) {
	t.Helper()
	dir := filepath.Join(f.dir, "unsealed")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SectorName(abi.SectorID{Miner: 1000, Number: n})), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// testServer is a Server on a loopback listener that can be stopped and
// started again on the same address.
type testServer struct {
	t    testing.TB
	addr string
	srv  *Server
	hs   *httptest.Server
}

func startTestServer(t testing.TB, s Sealing, ssize abi.SectorSize) *testServer {
	t.Helper()
	ts := &testServer{t: t, addr: "127.0.0.1:0"}
	ts.start(s, ssize)
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) start(s Sealing, ssize abi.SectorSize) {
	ts.t.Helper()
	l, err := net.Listen("tcp", ts.addr)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.addr = l.Addr().String()
	srv, err := NewServer(ServerConfig{Miner: testMiner, SectorSize: ssize,
		RemoteURL: "http://" + ts.addr + "/remote", Verify: verifyTestToken, Version: "ferry-test"}, s)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.srv = srv
	ts.hs = &httptest.Server{Listener: l, Config: &http.Server{Handler: srv}}
	ts.hs.Start()
}

// cut kills the server as a crash would: the listener closes and every
// connection is cut, so calls in flight are lost (their handlers see
// their contexts end).
func (ts *testServer) cut() {
	ts.hs.Listener.Close()
	ts.hs.CloseClientConnections()
}

// stop kills the server and waits for its handlers to return.
func (ts *testServer) stop() {
	if ts.hs == nil {
		return
	}
	ts.cut()
	ts.hs.Close()
	ts.srv.Close()
	ts.hs = nil
}

func (ts *testServer) url() string { return "http://" + ts.addr + APIPath }

func (ts *testServer) dial(t testing.TB, token string) *Client {
	t.Helper()
	c, err := DialURL(context.Background(), ts.url(), token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// testDeal is a published deal of a piece of padded size size.
func testDeal(dealID abi.DealID, size abi.PaddedPieceSize) sealing.Deal {
	pc := piece.CIDv1(sha256.Sum256([]byte(fmt.Sprint("piece", dealID))))
	pmh, _ := multihash.Sum([]byte(fmt.Sprint("publish", dealID)), multihash.SHA2_256, -1)
	return sealing.Deal{
		UUID:       uuid.New(),
		DealID:     dealID,
		PublishCid: cid.NewCidV1(cid.DagCBOR, pmh),
		Proposal: &market.DealProposal{
			PieceCID: pc, PieceSize: size, Client: testClient, Provider: testMiner,
			StartEpoch: 10000, EndEpoch: 10000 + 518400,
			StoragePricePerEpoch: big.Zero(), ProviderCollateral: big.Zero(), ClientCollateral: big.Zero(),
		},
	}
}

// fakeChain answers StateMarketStorageDeal and StateGetClaim from maps.
type fakeChain struct {
	mu     sync.Mutex
	deals  map[abi.DealID]*chain.MarketDeal
	claims map[chain.ClaimID]*chain.Claim
}

func (f *fakeChain) StateGetClaim(ctx context.Context, provider address.Address, id chain.ClaimID, tsk chain.TipSetKey) (*chain.Claim, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if provider != testMiner {
		return nil, nil
	}
	return f.claims[id], nil
}

// claim records the claim of a direct piece's allocation in sector.
func (f *fakeChain) claim(m *miner.PieceActivationManifest, sector abi.SectorNumber) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.claims == nil {
		f.claims = map[chain.ClaimID]*chain.Claim{}
	}
	k := m.VerifiedAllocationKey
	f.claims[chain.ClaimID(k.ID)] = &chain.Claim{Provider: 1000, Client: k.Client, Data: m.CID, Size: m.Size, Sector: sector}
}

// testDirect is a direct piece of size claiming allocation id of the
// test client.
func testDirect(id uint64, size abi.PaddedPieceSize) sealing.Deal {
	pc := piece.CIDv1(sha256.Sum256([]byte(fmt.Sprint("direct piece", id))))
	return sealing.Deal{
		UUID:         uuid.New(),
		DealSchedule: sealing.DealSchedule{StartEpoch: 10000, EndEpoch: 10000 + 518400},
		PieceActivationManifest: &miner.PieceActivationManifest{CID: pc, Size: size,
			VerifiedAllocationKey: &miner.VerifiedAllocationKey{Client: 1002, ID: verifreg.AllocationId(id)}},
	}
}

func (f *fakeChain) StateMarketStorageDeal(ctx context.Context, id abi.DealID, tsk chain.TipSetKey) (*chain.MarketDeal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if md, ok := f.deals[id]; ok {
		return md, nil
	}
	return &chain.MarketDeal{State: chain.MarketDealState{SectorStartEpoch: -1, LastUpdatedEpoch: -1, SlashEpoch: -1}}, nil
}

func (f *fakeChain) activate(id abi.DealID, sector abi.SectorNumber) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deals == nil {
		f.deals = map[abi.DealID]*chain.MarketDeal{}
	}
	f.deals[id] = &chain.MarketDeal{State: chain.MarketDealState{SectorNumber: sector, SectorStartEpoch: 100, LastUpdatedEpoch: -1, SlashEpoch: -1}}
}

func openTestDB(t testing.TB, dir string) *sql.DB {
	t.Helper()
	sqldb, err := db.Open(context.Background(), dbtest.Source(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	return sqldb
}
