package minerapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/sealing"
)

// The Sealer is the market's sealer seam.
var _ market.Sealer = (*Sealer)(nil)

// unreadable fails the test that reads it: a hand-off that must not send
// data.
type unreadable struct{ t testing.TB }

func (u unreadable) Read([]byte) (int, error) {
	u.t.Error("the piece data was read: the deal was handed over again")
	return 0, errors.New("must not be read")
}

type sealerHarness struct {
	fs    *fakeSealing
	ts    *testServer
	chain *fakeChain
	s     *Sealer
}

func newSealerHarness(t *testing.T) *sealerHarness {
	t.Helper()
	h := &sealerHarness{fs: newFakeSealing(t, testSectorSize), chain: &fakeChain{}}
	h.ts = startTestServer(t, h.fs, testSectorSize)
	s, err := NewSealer(context.Background(), h.ts.dial(t, adminToken), testMiner, h.chain, openTestDB(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h.s = s
	return h
}

func TestNewSealerChecksMiner(t *testing.T) {
	fs := newFakeSealing(t, testSectorSize)
	ts := startTestServer(t, fs, testSectorSize)
	other, _ := address.NewIDAddress(2000)
	_, err := NewSealer(context.Background(), ts.dial(t, adminToken), other, &fakeChain{}, openTestDB(t, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "seals for f01000, not for this market's miner f02000") {
		t.Fatalf("NewSealer for another miner: %v", err)
	}
	for _, tok := range []string{readToken, ""} {
		_, err := NewSealer(context.Background(), ts.dial(t, tok), testMiner, &fakeChain{}, openTestDB(t, t.TempDir()))
		if err == nil || !strings.Contains(err.Error(), "needs admin") {
			t.Fatalf("NewSealer with token %q: %v", tok, err)
		}
	}
	s, err := NewSealer(context.Background(), ts.dial(t, adminToken), testMiner, &fakeChain{}, openTestDB(t, t.TempDir()))
	if err != nil || s.SectorSize() != testSectorSize {
		t.Fatalf("NewSealer: %v", err)
	}
	s.Close()
}

func TestSealerAddsOnce(t *testing.T) {
	ctx := context.Background()
	h := newSealerHarness(t)
	d := testDeal(7, 4096)
	payload := randomBytes(3000, 1)
	pl, err := h.s.AddPieceToAny(ctx, 4064, bytes.NewReader(payload), d)
	if err != nil {
		t.Fatal(err)
	}
	if pl != (sealing.Placement{Sector: 1, Offset: 0, Size: 4096}) {
		t.Fatalf("placement %+v", pl)
	}
	again, err := h.s.AddPieceToAny(ctx, 4064, unreadable{t}, d)
	if err != nil || again != pl || h.fs.addCount() != 1 {
		t.Fatalf("second call: %+v, %v; %d pieces added", again, err, h.fs.addCount())
	}

	st, err := h.s.SectorStatus(ctx, d.UUID)
	if err != nil || st.Sector != 1 || st.State != sealing.StateWaitDeals || st.Proven {
		t.Fatalf("SectorStatus = %+v, %v", st, err)
	}
	h.fs.setState(1, sealing.StateProving)
	if st, err := h.s.SectorStatus(ctx, d.UUID); err != nil || st.State != sealing.StateProving || !st.Proven {
		t.Fatalf("SectorStatus once proving = %+v, %v", st, err)
	}
	if _, err := h.s.SectorStatus(ctx, testDeal(8, 2048).UUID); !errors.Is(err, sealing.ErrUnknownDeal) {
		t.Fatalf("SectorStatus of an unknown deal: %v", err)
	}
}

// TestSealerStatusPerSector: the deals of one sector share one
// SectorsStatus answer for StatusMaxAge, and a newer state is read after it.
func TestSealerStatusPerSector(t *testing.T) {
	ctx := context.Background()
	h := newSealerHarness(t)
	now := time.Unix(1_700_000_000, 0)
	h.s.now = func() time.Time { return now }
	h.s.StatusMaxAge = 10 * time.Second
	deals := []sealing.Deal{testDeal(7, 1024), testDeal(8, 1024), testDeal(9, 1024)}
	for i, d := range deals {
		if _, err := h.s.AddPieceToAny(ctx, 1016, bytes.NewReader(randomBytes(1000, int64(i))), d); err != nil {
			t.Fatal(err)
		}
	}
	reads := h.fs.readCount()
	for _, d := range deals {
		st, err := h.s.SectorStatus(ctx, d.UUID)
		if err != nil || st.Sector != 1 || st.State != sealing.StateWaitDeals {
			t.Fatalf("SectorStatus = %+v, %v", st, err)
		}
	}
	if n := h.fs.readCount() - reads; n != 1 {
		t.Fatalf("three deals of one sector read its status %d times, want once", n)
	}
	h.fs.setState(1, sealing.StateProving)
	now = now.Add(9 * time.Second)
	if st, _ := h.s.SectorStatus(ctx, deals[0].UUID); st.State != sealing.StateWaitDeals {
		t.Fatalf("within StatusMaxAge: %s, want the answer kept", st.State)
	}
	now = now.Add(time.Second)
	if st, err := h.s.SectorStatus(ctx, deals[1].UUID); err != nil || st.State != sealing.StateProving || !st.Proven {
		t.Fatalf("after StatusMaxAge: %+v, %v", st, err)
	}
	if n := h.fs.readCount() - reads; n != 2 {
		t.Fatalf("status read %d times, want twice", n)
	}
}

// TestSealerDealIDZero: the first deal of a devnet has chain deal ID 0; it
// is handed over and found again like any other, by its deal info, never
// mistaken for a filler (whose Deals entry is 0 too).
func TestSealerDealIDZero(t *testing.T) {
	ctx := context.Background()
	h := newSealerHarness(t)
	first := testDeal(0, 2048)
	if err := (&PieceDealInfo{PublishCid: &first.PublishCid, DealProposal: first.Proposal,
		DealSchedule: DealSchedule{first.Proposal.StartEpoch, first.Proposal.EndEpoch}}).Validate(); err != nil {
		t.Fatalf("deal info of deal 0: %v", err)
	}
	pl, err := h.s.AddPieceToAny(ctx, 2032, bytes.NewReader(randomBytes(2000, 4)), first)
	if err != nil || pl != (sealing.Placement{Sector: 1, Offset: 0, Size: 2048}) {
		t.Fatalf("deal 0: %+v, %v", pl, err)
	}
	// Handed over again by a process that lost its record: found.
	fresh, err := NewSealer(ctx, h.ts.dial(t, adminToken), testMiner, h.chain, openTestDB(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if again, err := fresh.AddPieceToAny(ctx, 2032, unreadable{t}, first); err != nil || again != pl || h.fs.addCount() != 1 {
		t.Fatalf("deal 0 again: %+v, %v; %d pieces added", again, err, h.fs.addCount())
	}
	// A filler is never deal 0's piece, even with the same piece CID.
	filler := SectorInfo{SectorID: 2, Deals: []abi.DealID{0}, Pieces: []SectorPiece{{Piece: abi.PieceInfo{Size: 2048, PieceCID: first.Proposal.PieceCID}}}}
	if pl, ok := pieceIn(filler, first); ok {
		t.Fatalf("a filler taken for deal 0: %+v", pl)
	}
}

// TestSealerFindsPlacementOfAnotherProcess: the deal was handed over by a
// process that died before it recorded the answer; the lookup finds it in
// an open sector, or through the chain once its sector is proving.
func TestSealerFindsPlacementOfAnotherProcess(t *testing.T) {
	ctx := context.Background()
	h := newSealerHarness(t)
	c := h.ts.dial(t, adminToken)
	open, proving := testDeal(7, 2048), testDeal(8, 4096)
	for _, d := range []sealing.Deal{open, proving} {
		if _, err := c.SectorAddPieceToAny(ctx, d.Proposal.PieceSize.Unpadded(), bytes.NewReader(nil), dealInfo(d)); err != nil {
			t.Fatal(err)
		}
	}
	// The 2048-byte piece at 0, a 2048-byte filler, the 4096-byte one at 4096.
	pl, err := h.s.AddPieceToAny(ctx, 2032, unreadable{t}, open)
	if err != nil || pl != (sealing.Placement{Sector: 1, Offset: 0, Size: 2048}) {
		t.Fatalf("deal in an open sector: %+v, %v", pl, err)
	}

	h.fs.setState(1, sealing.StateProving)
	h.chain.activate(proving.DealID, 1)
	pl, err = h.s.AddPieceToAny(ctx, 4064, unreadable{t}, proving)
	if err != nil || pl != (sealing.Placement{Sector: 1, Offset: 4096, Size: 4096}) {
		t.Fatalf("deal active on chain: %+v, %v", pl, err)
	}
	if h.fs.addCount() != 2 {
		t.Fatalf("%d pieces added, want 2", h.fs.addCount())
	}

	// The chain names a sector that does not hold the piece: an error, not a
	// second copy.
	lost := testDeal(9, 2048)
	h.chain.activate(lost.DealID, 1)
	if _, err := h.s.AddPieceToAny(ctx, 2032, unreadable{t}, lost); err == nil || !strings.Contains(err.Error(), "lists no such piece") {
		t.Fatalf("deal active in a sector without it: %v", err)
	}
}

// TestSealerMinerRestartAfterPlacement: the miner placed the piece and went
// down before it answered. The call fails as unavailable (transient); the
// retry after the restart finds the placement and sends nothing.
func TestSealerMinerRestartAfterPlacement(t *testing.T) {
	ctx := context.Background()
	h := newSealerHarness(t)
	reached := make(chan struct{})
	h.fs.placed = func(ctx context.Context) {
		close(reached)
		<-ctx.Done() // the answer never leaves
	}
	d := testDeal(7, 8192)
	payload := randomBytes(8128, 3)
	res := make(chan error, 1)
	go func() {
		_, err := h.s.AddPieceToAny(ctx, 8128, bytes.NewReader(payload), d)
		res <- err
	}()
	<-reached
	h.ts.stop()
	err := <-res
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the call cut by the restart: %v (want ErrUnavailable)", err)
	}
	if _, err := h.s.AddPieceToAny(ctx, 8128, unreadable{t}, d); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("while the miner is down: %v (want ErrUnavailable)", err)
	}

	h.fs.placed = nil
	h.ts.start(h.fs, testSectorSize)
	pl, err := h.s.AddPieceToAny(ctx, 8128, unreadable{t}, d)
	if err != nil || pl != (sealing.Placement{Sector: 1, Offset: 0, Size: 8192}) {
		t.Fatalf("after the restart: %+v, %v", pl, err)
	}
	if h.fs.addCount() != 1 {
		t.Fatalf("%d pieces added, want 1", h.fs.addCount())
	}
}

// TestSealerMinerRestartMidStream: the miner went down while the piece
// streamed: nothing was placed, so the retry hands the piece over again
// (once) and it arrives whole.
func TestSealerMinerRestartMidStream(t *testing.T) {
	ctx := context.Background()
	h := newSealerHarness(t)
	reached, release := make(chan struct{}), make(chan struct{})
	h.fs.reading = func(n int64) error {
		if n >= 1<<20 {
			close(reached)
			<-release
			return errors.New("miner killed")
		}
		return nil
	}
	const ps = abi.PaddedPieceSize(4 << 20)
	d := testDeal(7, ps)
	payload := randomBytes(int(ps.Unpadded()), 4)
	res := make(chan error, 1)
	go func() {
		_, err := h.s.AddPieceToAny(ctx, ps.Unpadded(), bytes.NewReader(payload), d)
		res <- err
	}()
	<-reached
	h.ts.cut()
	close(release)
	h.ts.stop()
	if err := <-res; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the call cut by the restart: %v (want ErrUnavailable)", err)
	}

	h.fs.reading = nil
	h.ts.start(h.fs, testSectorSize)
	pl, err := h.s.AddPieceToAny(ctx, ps.Unpadded(), bytes.NewReader(payload), d)
	if err != nil || pl.Sector != 1 || h.fs.addCount() != 1 {
		t.Fatalf("after the restart: %+v, %v; %d pieces added", pl, err, h.fs.addCount())
	}
	sum := sha256.Sum256(payload)
	if !bytes.Equal(h.fs.digests[DealUUID(d.PublishCid, d.DealID)], sum[:]) {
		t.Fatal("the piece arrived damaged")
	}
}

// TestServerPlacesPieceOnce: the server gives a deal the same sealing UUID
// on every call (a direct piece from its allocation), so a second hand-off
// returns the first placement.
func TestServerPlacesPieceOnce(t *testing.T) {
	for name, d := range map[string]sealing.Deal{"deal": testDeal(7, 2048), "direct piece": testDirect(31, 2048)} {
		t.Run(name, func(t *testing.T) {
			fs := newFakeSealing(t, testSectorSize)
			ts := startTestServer(t, fs, testSectorSize)
			c := ts.dial(t, adminToken)
			for range 2 {
				off, err := c.SectorAddPieceToAny(context.Background(), 2032, bytes.NewReader(nil), dealInfo(d))
				if err != nil || off != (SectorOffset{1, 0}) {
					t.Fatalf("%+v, %v", off, err)
				}
			}
			if fs.addCount() != 1 {
				t.Fatalf("%d placements", fs.addCount())
			}
		})
	}
}

// unsealedFile is a sector's unsealed file with payload fr32-padded at a
// padded offset.
func unsealedFile(ssize abi.SectorSize, off abi.PaddedPieceSize, payload []byte, size abi.UnpaddedPieceSize) []byte {
	f := make([]byte, ssize)
	piece.Pad(f[off:off+size.Padded()], zeroFilled(payload, size))
	return f
}

func TestSealerReadPiece(t *testing.T) {
	ctx := context.Background()
	h := newSealerHarness(t)
	first, second := testDeal(7, 2048), testDeal(8, 8192)
	payload := randomBytes(5000, 5)
	if _, err := h.s.AddPieceToAny(ctx, 2032, bytes.NewReader(nil), first); err != nil {
		t.Fatal(err)
	}
	pl, err := h.s.AddPieceToAny(ctx, 8128, bytes.NewReader(payload), second)
	if err != nil || pl.Offset != 8192 {
		t.Fatalf("%+v, %v", pl, err)
	}
	h.fs.mu.Lock()
	h.fs.sectors[1].Unsealed = false
	h.fs.mu.Unlock()
	// No unsealed copy: the read has the miner unseal, which a ferryd
	// sealer cannot do; the next reads say so.
	if _, err := h.s.ReadPiece(ctx, second.Proposal.PieceCID); !errors.Is(err, ErrUnsealing) || !strings.Contains(err.Error(), "unsealing sector 1") {
		t.Fatalf("ReadPiece without an unsealed copy: %v", err)
	}
	err = waitReadErr(t, h.s, second.Proposal.PieceCID, func(err error) bool { return !errors.Is(err, ErrUnsealing) })
	if !errors.Is(err, sealing.ErrNoUnsealedCopy) || !strings.Contains(err.Error(), "unsealing sector 1 failed") || !strings.Contains(err.Error(), "cannot unseal") {
		t.Fatalf("ReadPiece after a failed unseal: %v", err)
	}
	if err := h.s.UnsealPiece(ctx, second.Proposal.PieceCID); err == nil || !strings.Contains(err.Error(), "cannot unseal") {
		t.Fatalf("UnsealPiece without an unsealed copy: %v", err)
	}
	if _, err := h.s.ReadPiece(ctx, testDeal(99, 2048).Proposal.PieceCID); !errors.Is(err, sealing.ErrNoUnsealedCopy) || errors.Is(err, ErrUnsealing) {
		t.Fatalf("ReadPiece of a piece never handed over: %v", err)
	}
	h.fs.mu.Lock()
	h.fs.sectors[1].Unsealed = true
	h.fs.mu.Unlock()
	// The copy is listed but its file is gone: reads say so.
	r, err := h.s.ReadPiece(ctx, second.Proposal.PieceCID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(make([]byte, 10), 0); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("reading a missing file: %v", err)
	}
	h.fs.writeUnsealed(t, 1, unsealedFile(testSectorSize, 8192, payload, 8128))

	r, err = h.s.ReadPiece(ctx, second.Proposal.PieceCID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := zeroFilled(payload, 8128)
	if got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size())); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("reading the whole piece: %d bytes, %v", len(got), err)
	}
	for _, rg := range [][2]int{{0, 1}, {126, 2}, {127, 127}, {1000, 3000}, {8000, 128}, {8127, 1}} {
		buf := make([]byte, rg[1])
		n, err := r.ReadAt(buf, int64(rg[0]))
		if err != nil && !(err == io.EOF && rg[0]+rg[1] == 8128) || n != rg[1] || !bytes.Equal(buf, want[rg[0]:rg[0]+rg[1]]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", rg[0], rg[1], n, err)
		}
	}
	if n, err := r.ReadAt(make([]byte, 10), 8125); n != 3 || err != io.EOF {
		t.Fatalf("ReadAt across the end = %d, %v", n, err)
	}

	if err := h.s.UnsealPiece(ctx, second.Proposal.PieceCID); err != nil {
		t.Fatalf("UnsealPiece with an unsealed copy: %v", err)
	}

	// /remote needs admin.
	read, err := DialURL(ctx, h.ts.url(), readToken)
	if err != nil {
		t.Fatal(err)
	}
	defer read.Close()
	if _, err := read.OpenPiece(ctx, abi.SectorID{Miner: 1000, Number: 1}, testSectorSize, 8192, 8192); err == nil || !strings.Contains(err.Error(), "need 'admin'") {
		t.Fatalf("OpenPiece with a read token: %v", err)
	}
	pr := &PieceReader{c: read, ctx: ctx, url: "http://" + h.ts.addr + "/remote/unsealed/s-t01000-1", offset: 8192, size: 8128}
	if _, err := pr.ReadAt(make([]byte, 10), 0); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("reading /remote with a read token: %v", err)
	}
}

// waitReadErr reads pc until the error satisfies done, and returns it.
func waitReadErr(t *testing.T, s *Sealer, pc cid.Cid, done func(error) bool) error {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := s.ReadPiece(context.Background(), pc)
		if err == nil {
			r.Close()
		}
		if done(err) {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("reading piece %s: still %v", pc, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSealerUnsealsInBackground: a read of a piece whose unsealed copy is
// gone starts one unseal at the miner and returns at once; reads while it
// runs say so and start no other; once the copy exists the piece reads;
// an unseal that fails is told, and the reads after UnsealRetryAfter ask
// again. Close waits for an unseal under way.
func TestSealerUnsealsInBackground(t *testing.T) {
	ctx := context.Background()
	h := newSealerHarness(t)
	d := testDeal(7, 2048)
	payload := randomBytes(1500, 9)
	if _, err := h.s.AddPieceToAny(ctx, 2032, bytes.NewReader(payload), d); err != nil {
		t.Fatal(err)
	}
	pc := d.Proposal.PieceCID
	h.fs.mu.Lock()
	h.fs.sectors[1].Unsealed = false
	h.fs.mu.Unlock()

	var mu sync.Mutex
	calls, now := 0, time.Unix(1_700_000_000, 0)
	h.s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	release, fail := make(chan struct{}), errors.New("the sealed replica is damaged")
	var outcome error
	h.s.unsealPiece = func(ctx context.Context, got cid.Cid) error {
		mu.Lock()
		calls++
		mu.Unlock()
		if !got.Equals(pc) {
			t.Errorf("unsealing %s, want %s", got, pc)
		}
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		outcome := outcome
		mu.Unlock()
		if outcome == nil {
			h.fs.writeUnsealed(t, 1, unsealedFile(testSectorSize, 0, payload, 2032))
			h.fs.mu.Lock()
			h.fs.sectors[1].Unsealed = true
			h.fs.mu.Unlock()
		}
		return outcome
	}
	for i := range 3 {
		_, err := h.s.ReadPiece(ctx, pc)
		if !errors.Is(err, ErrUnsealing) || errors.Is(err, sealing.ErrNoUnsealedCopy) {
			t.Fatalf("read %d while unsealing: %v", i, err)
		}
		if i > 0 && !strings.Contains(err.Error(), "is unsealing sector 1 for it (for ") {
			t.Fatalf("read %d does not say since when: %v", i, err)
		}
	}
	release <- struct{}{}
	waitReadErr(t, h.s, pc, func(err error) bool { return err == nil })
	r, err := h.s.ReadPiece(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	r.Close()
	if err != nil || !bytes.Equal(got, zeroFilled(payload, 2032)) {
		t.Fatalf("reading the unsealed piece: %d bytes, %v", len(got), err)
	}

	// It goes again, and this time the unseal fails.
	h.fs.mu.Lock()
	h.fs.sectors[1].Unsealed = false
	h.fs.mu.Unlock()
	mu.Lock()
	outcome = fail
	mu.Unlock()
	if _, err := h.s.ReadPiece(ctx, pc); !errors.Is(err, ErrUnsealing) {
		t.Fatal(err)
	}
	release <- struct{}{}
	err = waitReadErr(t, h.s, pc, func(err error) bool { return !errors.Is(err, ErrUnsealing) })
	if !errors.Is(err, sealing.ErrNoUnsealedCopy) || !strings.Contains(err.Error(), fail.Error()) {
		t.Fatalf("read after the unseal failed: %v", err)
	}
	mu.Lock()
	if calls != 2 {
		t.Fatalf("%d unseals, want 2", calls)
	}
	now = now.Add(UnsealRetryAfter)
	mu.Unlock()
	if _, err := h.s.ReadPiece(ctx, pc); !errors.Is(err, ErrUnsealing) {
		t.Fatalf("read after UnsealRetryAfter: %v", err)
	}
	// Close ends the unseal under way and waits for it.
	h.s.Close()
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 {
		t.Fatalf("%d unseals, want 3", calls)
	}
}

// A direct piece goes to the miner with its PieceActivationManifest in
// PieceDealInfo, as Lotus' market passes it; the lookup that keeps a piece
// from being sealed twice matches it by manifest (piece CID, size and
// allocation): in an open sector, or through its claim on chain once the
// sector is proven. Another allocation of the same piece is another piece.
func TestSealerDirectPiece(t *testing.T) {
	ctx := context.Background()
	h := newSealerHarness(t)
	d := testDirect(21, 2048)
	payload := randomBytes(2000, 21)
	pl, err := h.s.AddPieceToAny(ctx, 2032, bytes.NewReader(payload), d)
	if err != nil {
		t.Fatal(err)
	}
	if pl != (sealing.Placement{Sector: 1, Offset: 0, Size: 2048}) {
		t.Fatalf("placement %+v", pl)
	}
	si, err := h.ts.dial(t, adminToken).SectorsStatus(ctx, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(si.Pieces) != 1 || si.Pieces[0].DealInfo == nil || si.Pieces[0].DealInfo.PieceActivationManifest == nil ||
		si.Pieces[0].DealInfo.PieceActivationManifest.VerifiedAllocationKey.ID != 21 || si.Pieces[0].DealInfo.DealSchedule.EndEpoch != d.DealSchedule.EndEpoch {
		t.Fatalf("the miner lists %+v", si.Pieces)
	}
	if st, err := h.s.SectorStatus(ctx, d.UUID); err != nil || st.Sector != 1 {
		t.Fatalf("SectorStatus = %+v, %v", st, err)
	}

	// Another process (a new Sealer on its own records) finds it in the
	// open sector by its manifest, and once proven by its claim.
	other, err := NewSealer(ctx, h.ts.dial(t, adminToken), testMiner, h.chain, openTestDB(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := other.AddPieceToAny(ctx, 2032, unreadable{t}, d); err != nil || got != pl {
		t.Fatalf("direct piece in an open sector: %+v, %v", got, err)
	}
	h.fs.setState(1, sealing.StateProving)
	h.chain.claim(d.PieceActivationManifest, 1)
	third, err := NewSealer(ctx, h.ts.dial(t, adminToken), testMiner, h.chain, openTestDB(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := third.AddPieceToAny(ctx, 2032, unreadable{t}, d); err != nil || got != pl {
		t.Fatalf("direct piece claimed on chain: %+v, %v", got, err)
	}

	again := testDirect(21, 2048)
	again.PieceActivationManifest.VerifiedAllocationKey.ID = 22
	if pl2, err := h.s.AddPieceToAny(ctx, 2032, bytes.NewReader(payload), again); err != nil || pl2 == pl {
		t.Fatalf("the piece for another allocation: %+v, %v", pl2, err)
	}
	if h.fs.addCount() != 2 {
		t.Fatalf("%d pieces added, want 2", h.fs.addCount())
	}

	bad := testDirect(23, 2048)
	bad.DealSchedule = sealing.DealSchedule{}
	if _, err := h.s.AddPieceToAny(ctx, 2032, unreadable{t}, bad); err == nil || !strings.Contains(err.Error(), "schedule") {
		t.Fatalf("a direct piece without a schedule: %v", err)
	}
}
