package minerapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand"
	"net/http"
	"strings"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/sealing"
)

const testSectorSize = abi.SectorSize(8 << 20)

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// zeroFilled is payload followed by zeros up to size bytes.
func zeroFilled(payload []byte, size abi.UnpaddedPieceSize) []byte {
	out := make([]byte, size)
	copy(out, payload)
	return out
}

func TestClientServerRoundTrip(t *testing.T) {
	ctx := context.Background()
	fs := newFakeSealing(t, testSectorSize)
	ts := startTestServer(t, fs, testSectorSize)
	c := ts.dial(t, adminToken)

	if a, err := c.ActorAddress(ctx); err != nil || a != testMiner {
		t.Fatalf("ActorAddress = %s, %v", a, err)
	}
	if ss, err := c.ActorSectorSize(ctx, testMiner); err != nil || ss != testSectorSize {
		t.Fatalf("ActorSectorSize = %d, %v", ss, err)
	}
	if v, err := c.Version(ctx); err != nil || v.APIVersion != MinerAPIVersion || v.Version != "ferry-test" {
		t.Fatalf("Version = %+v, %v", v, err)
	}

	// Two pieces: the second (smaller) one lands after the first, the
	// third (larger) needs a filler before it.
	sizes := []abi.PaddedPieceSize{4096, 2048, 8192}
	var placed []SectorOffset
	for i, ps := range sizes {
		d := testDeal(abi.DealID(10+i), ps)
		payload := randomBytes(int(ps.Unpadded())-100*i, int64(i))
		off, err := c.SectorAddPieceToAny(ctx, ps.Unpadded(), bytes.NewReader(payload), dealInfo(d))
		if err != nil {
			t.Fatalf("SectorAddPieceToAny %d: %v", i, err)
		}
		placed = append(placed, off)
		sum := sha256.Sum256(zeroFilled(payload, ps.Unpadded()))
		if got := fs.digests[DealUUID(d.PublishCid, d.DealID)]; !bytes.Equal(got, sum[:]) {
			t.Fatalf("piece %d: the server got other bytes than the zero-filled payload", i)
		}
	}
	want := []SectorOffset{{1, 0}, {1, 4096}, {1, 8192}}
	for i := range want {
		if placed[i] != want[i] {
			t.Fatalf("placements %v, want %v", placed, want)
		}
	}

	si, err := c.SectorsStatus(ctx, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	// 4096, 2048, filler 2048, 8192.
	if si.State != sealing.StateWaitDeals || len(si.Pieces) != 4 || len(si.Deals) != 4 ||
		si.Deals[0] != 10 || si.Deals[1] != 11 || si.Deals[2] != 0 || si.Deals[3] != 12 ||
		si.Pieces[2].DealInfo != nil || si.Pieces[3].DealInfo == nil || si.Pieces[3].DealInfo.DealID != 12 ||
		si.Pieces[3].Piece.Size != 8192 || si.DealWeight.Int == nil {
		t.Fatalf("SectorsStatus = %+v", si)
	}
	if pl, ok := pieceIn(si, testDeal(12, 8192)); !ok || pl.Offset != 8192 {
		t.Fatalf("offset of the third piece from SectorsStatus: %+v, %v", pl, ok)
	}
	if l, err := c.SectorsList(ctx); err != nil || len(l) != 1 || l[0] != 1 {
		t.Fatalf("SectorsList = %v, %v", l, err)
	}
	if l, err := c.SectorsListInStates(ctx, []SectorState{sealing.StateProving}); err != nil || len(l) != 0 {
		t.Fatalf("SectorsListInStates(Proving) = %v, %v", l, err)
	}
	if l, err := c.SectorsListInStates(ctx, placedStates); err != nil || len(l) != 1 {
		t.Fatalf("SectorsListInStates(placed) = %v, %v", l, err)
	}
	if m, err := c.SectorsSummary(ctx); err != nil || len(m) != 1 || m[sealing.StateWaitDeals] != 1 {
		t.Fatalf("SectorsSummary = %v, %v", m, err)
	}
	sid := abi.SectorID{Miner: 1000, Number: 1}
	paths, err := c.StorageFindSector(ctx, sid, FTUnsealed, testSectorSize, false)
	if err != nil || len(paths) != 1 || len(paths[0].URLs) != 1 ||
		paths[0].URLs[0] != "http://"+ts.addr+"/remote/unsealed/s-t01000-1" {
		t.Fatalf("StorageFindSector = %+v, %v", paths, err)
	}
	if paths, err := c.StorageFindSector(ctx, sid, FTSealed|FTCache, testSectorSize, false); err != nil || len(paths) != 0 {
		t.Fatalf("StorageFindSector(sealed) = %+v, %v", paths, err)
	}
	list, err := c.StorageList(ctx)
	if err != nil || len(list) != 1 || len(list[paths[0].ID]) != 1 || list[paths[0].ID][0] != (Decl{sid, FTUnsealed}) {
		t.Fatalf("StorageList = %+v, %v", list, err)
	}
	if info, err := c.StorageInfo(ctx, paths[0].ID); err != nil || !info.CanStore || info.URLs[0] != "http://"+ts.addr+"/remote" {
		t.Fatalf("StorageInfo = %+v, %v", info, err)
	}
	if err := c.SectorsUnsealPiece(ctx, SectorRef{ID: sid}, 0, 2032, nil, nil); err != nil {
		t.Fatalf("SectorsUnsealPiece with an unsealed copy: %v", err)
	}
	fs.mu.Lock()
	fs.sectors[1].Unsealed = false
	fs.mu.Unlock()
	if err := c.SectorsUnsealPiece(ctx, SectorRef{ID: sid}, 0, 2032, nil, nil); err == nil || !strings.Contains(err.Error(), "no unsealed copy") {
		t.Fatalf("SectorsUnsealPiece without an unsealed copy: %v", err)
	}
}

func TestAddPieceRefusesLongPayload(t *testing.T) {
	fs := newFakeSealing(t, testSectorSize)
	ts := startTestServer(t, fs, testSectorSize)
	c := ts.dial(t, adminToken)
	d := testDeal(7, 2048)
	_, err := c.SectorAddPieceToAny(context.Background(), 2032, bytes.NewReader(make([]byte, 2033)), dealInfo(d))
	if err == nil || !strings.Contains(err.Error(), "longer than the piece's 2032") {
		t.Fatalf("a 2033-byte payload for a 2032-byte piece: %v", err)
	}
	if fs.addCount() != 0 {
		t.Fatal("the server placed a piece whose payload was too long")
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	k := min(len(p), f.n)
	clear(p[:k])
	f.n -= k
	return k, nil
}

func TestAddPieceDataErrorIsReported(t *testing.T) {
	fs := newFakeSealing(t, testSectorSize)
	ts := startTestServer(t, fs, testSectorSize)
	c := ts.dial(t, adminToken)
	_, err := c.SectorAddPieceToAny(context.Background(), 8128, &failingReader{n: 3000}, dealInfo(testDeal(7, 8192)))
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || errors.Is(err, ErrUnavailable) {
		t.Fatalf("a failing data source: %v", err)
	}
	if fs.addCount() != 0 {
		t.Fatal("the server placed a piece whose data failed")
	}
}

func TestAuth(t *testing.T) {
	ctx := context.Background()
	fs := newFakeSealing(t, testSectorSize)
	ts := startTestServer(t, fs, testSectorSize)
	d := testDeal(5, 2048)

	for _, tok := range []string{"", readToken} {
		c := ts.dial(t, tok)
		if a, err := c.ActorAddress(ctx); err != nil || a != testMiner {
			t.Fatalf("token %q: reads are allowed: %s, %v", tok, a, err)
		}
		_, err := c.SectorAddPieceToAny(ctx, 2032, bytes.NewReader(make([]byte, 2032)), dealInfo(d))
		if err == nil || !strings.Contains(err.Error(), "missing permission to invoke 'SectorAddPieceToAny' (need 'admin')") {
			t.Fatalf("token %q: SectorAddPieceToAny: %v", tok, err)
		}
		if _, err := c.StorageList(ctx); err == nil || !strings.Contains(err.Error(), "missing permission to invoke 'StorageList' (need 'admin')") {
			t.Fatalf("token %q: StorageList: %v", tok, err)
		}
	}
	if fs.addCount() != 0 {
		t.Fatal("a piece was added without admin")
	}
	// AuthVerify tells a token's permissions, as lotus-miner's does.
	for tok, want := range map[string]int{adminToken: 4, readToken: 1} {
		perms, err := ts.dial(t, "").AuthVerify(ctx, tok)
		if err != nil || len(perms) != want {
			t.Fatalf("AuthVerify(%q) = %v, %v", tok, perms, err)
		}
	}
	if perms, err := ts.dial(t, "").AuthVerify(ctx, "not-a-token"); err == nil {
		t.Fatalf("AuthVerify of a bad token = %v", perms)
	}
	if n := ts.srv.streams.pending(); n != 0 {
		t.Fatalf("%d push streams left pending after refused calls", n)
	}

	bad := ts.dial(t, "not-a-token")
	if _, err := bad.ActorAddress(ctx); !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("a bad token: %v", err)
	}
	// On the wire: a bare 401, for the API, the push route and /remote.
	for _, path := range []string{APIPath, pushPath + "5d1a6a0e-8d5b-4d2c-9d3f-0e6c7b1a2f34", "/remote/unsealed/s-t01000-1"} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+ts.addr+path, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer not-a-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || len(body) != 0 {
			t.Fatalf("%s with a bad token: %s %q", path, resp.Status, body)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}
