package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc"
	"github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v13/miner"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/network"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/filecoin-project/lotus/lib/rpcenc"
	lpiece "github.com/filecoin-project/lotus/storage/pipeline/piece"
	"github.com/filecoin-project/lotus/storage/sealer/fr32"
	"github.com/filecoin-project/lotus/storage/sealer/partialfile"
	"github.com/filecoin-project/lotus/storage/sealer/storiface"

	ferryauth "github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/minerapi"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/sealing"
)

var (
	testMiner, _  = address.NewIDAddress(1000)
	testClient, _ = address.NewIDAddress(1001)
)

const sectorSize = abi.SectorSize(8 << 20)

// sectorOffset is Lotus' api.SectorOffset (package api needs filecoin-ffi).
type sectorOffset struct {
	Sector abi.SectorNumber
	Offset abi.PaddedPieceSize
}

// sectorInfo is Lotus' api.SectorInfo field for field, with Lotus' own
// piece type.
type sectorInfo struct {
	SectorID abi.SectorNumber
	State    string
	CommD    *cid.Cid
	CommR    *cid.Cid
	Proof    []byte
	Deals    []abi.DealID
	Pieces   []struct {
		Piece    abi.PieceInfo
		DealInfo *lpiece.PieceDealInfo
	}
	Ticket struct {
		Value abi.SealRandomness
		Epoch abi.ChainEpoch
	}
	Seed struct {
		Value abi.InteractiveSealRandomness
		Epoch abi.ChainEpoch
	}
	PreCommitMsg         *cid.Cid
	CommitMsg            *cid.Cid
	Retries              uint64
	ToUpgrade            bool
	ReplicaUpdateMessage *cid.Cid
	LastErr              string
	Log                  []struct {
		Kind      string
		Timestamp uint64
		Trace     string
		Message   string
	}
	SealProof          abi.RegisteredSealProof
	Activation         abi.ChainEpoch
	Expiration         abi.ChainEpoch
	DealWeight         abi.DealWeight
	VerifiedDealWeight abi.DealWeight
	InitialPledge      abi.TokenAmount
	OnTime             abi.ChainEpoch
	Early              abi.ChainEpoch
}

// lotusClient is what Lotus' v0 StorageMiner client declares for these
// methods, with Lotus' types.
type lotusClient struct {
	ActorAddress        func(context.Context) (address.Address, error)
	SectorAddPieceToAny func(context.Context, abi.UnpaddedPieceSize, storiface.Data, lpiece.PieceDealInfo) (sectorOffset, error)
	SectorsStatus       func(context.Context, abi.SectorNumber, bool) (sectorInfo, error)
	StorageFindSector   func(context.Context, abi.SectorID, storiface.SectorFileType, abi.SectorSize, bool) ([]storiface.SectorStorageInfo, error)
	StorageList         func(context.Context) (map[storiface.ID][]storiface.Decl, error)
	StorageInfo         func(context.Context, storiface.ID) (storiface.StorageInfo, error)
	SectorsUnsealPiece  func(context.Context, storiface.SectorRef, storiface.UnpaddedByteIndex, abi.UnpaddedPieceSize, abi.SealRandomness, *cid.Cid) error
}

// dialLotus connects Lotus' own client code (go-jsonrpc with rpcenc's
// reader encoder, push URL derived as Lotus derives it) to addr over HTTP.
func dialLotus(t *testing.T, addr, token string) *lotusClient {
	return dialLotusScheme(t, "http", addr, token)
}

// dialLotusScheme is dialLotus over http or ws (Boost's miner client uses
// a websocket).
func dialLotusScheme(t *testing.T, scheme, addr, token string) *lotusClient {
	t.Helper()
	var c lotusClient
	header := http.Header{}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	closer, err := jsonrpc.NewMergeClient(context.Background(), scheme+"://"+addr+"/rpc/v0", "Filecoin", []interface{}{&c}, header,
		rpcenc.ReaderParamEncoder("http://"+addr+"/rpc/streams/v0/push"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closer)
	return &c
}

// headNode is the chain as sealing's AddPieceToAny sees it: a head.
type headNode struct {
	chain.FullNode
	height abi.ChainEpoch
}

func (n headNode) ChainHead(context.Context) (*chain.TipSet, error) {
	mh, _ := multihash.Sum([]byte(fmt.Sprint(n.height)), multihash.SHA2_256, -1)
	return chain.NewTipSet([]*chain.BlockHeader{{Height: n.height}}, []cid.Cid{cid.NewCidV1(cid.DagCBOR, mh)})
}

type ferryServer struct {
	addr   string
	admin  string
	read   string
	seal   *sealing.Sealing
	secret []byte
}

// unsealedPath is where sealing keeps sector n's unsealed file: Lotus'
// layout.
func (fs *ferryServer) unsealedPath(n abi.SectorNumber) string {
	dir, _ := fs.seal.Storage()
	return filepath.Join(dir, "unsealed", minerapi.SectorName(abi.SectorID{Miner: 1000, Number: n}))
}

// startFerryServer runs minerapi.Server over real sealing on loopback,
// with real JWTs.
func startFerryServer(t *testing.T) *ferryServer {
	t.Helper()
	dir := t.TempDir()
	sqldb, err := db.Open(context.Background(), filepath.Join(dir, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	cfg := sealing.Config{Dir: filepath.Join(dir, "sectors"), SectorSize: sectorSize}
	s, err := sealing.New(cfg, sqldb, headNode{height: 10}, nil, testMiner, sealing.NewDevnetSealer())
	if err != nil {
		t.Fatal(err)
	}
	fs := &ferryServer{seal: s, secret: []byte("interop-secret-interop-secret-32")}
	if fs.admin, err = ferryauth.Mint(fs.secret, ferryauth.All()...); err != nil {
		t.Fatal(err)
	}
	if fs.read, err = ferryauth.Mint(fs.secret, ferryauth.Read); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs.addr = l.Addr().String()
	srv, err := minerapi.NewServer(minerapi.ServerConfig{
		Miner: testMiner, SectorSize: sectorSize,
		RemoteURL: "http://" + fs.addr + "/remote", Version: "ferry-interop",
		Verify: func(ctx context.Context, token string) ([]auth.Permission, error) {
			return ferryauth.Verify(fs.secret, token)
		},
	}, fs.seal)
	if err != nil {
		t.Fatal(err)
	}
	hs := &httptest.Server{Listener: l, Config: &http.Server{Handler: srv}}
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	})
	return fs
}

// testPiece is a payload, zero-filled to an unpadded piece size, and its
// piece CID.
type testPiece struct {
	payload []byte
	size    abi.UnpaddedPieceSize
	cid     cid.Cid
}

func (p testPiece) full() []byte {
	b := make([]byte, p.size)
	copy(b, p.payload)
	return b
}

func makePiece(t *testing.T, seed int64, payload int, size abi.PaddedPieceSize) testPiece {
	t.Helper()
	data := make([]byte, payload)
	rand.New(rand.NewSource(seed)).Read(data)
	c := piece.NewCalc()
	c.Write(data)
	comm, err := c.SumAs(size)
	if err != nil {
		t.Fatal(err)
	}
	return testPiece{payload: data, size: size.Unpadded(), cid: comm.CID()}
}

func lotusDealInfo(p testPiece, dealID abi.DealID) lpiece.PieceDealInfo {
	mh, _ := multihash.Sum([]byte(fmt.Sprint("publish", dealID)), multihash.SHA2_256, -1)
	publish := cid.NewCidV1(cid.DagCBOR, mh)
	prop := market.DealProposal{
		PieceCID: p.cid, PieceSize: p.size.Padded(), Client: testClient, Provider: testMiner,
		StartEpoch: 10000, EndEpoch: 10000 + 518400,
		StoragePricePerEpoch: big.Zero(), ProviderCollateral: big.Zero(), ClientCollateral: big.Zero(),
	}
	return lpiece.PieceDealInfo{PublishCid: &publish, DealID: dealID, DealProposal: &prop,
		DealSchedule: lpiece.DealSchedule{StartEpoch: prop.StartEpoch, EndEpoch: prop.EndEpoch}, KeepUnsealed: true}
}

// TestLotusClientToFerryServer: Lotus' own client code hands a piece to
// ferryd's miner API, which writes it with ferryd's sealing into a file
// Lotus' partialfile reads back; the results parse as Lotus' types.
func TestLotusClientToFerryServer(t *testing.T) {
	ctx := context.Background()
	fs := startFerryServer(t)
	lc := dialLotus(t, fs.addr, fs.admin)

	if a, err := lc.ActorAddress(ctx); err != nil || a != testMiner {
		t.Fatalf("ActorAddress = %s, %v", a, err)
	}
	first, second := makePiece(t, 1, 1000000, 1<<20), makePiece(t, 2, 200000, 256<<10)
	off, err := lc.SectorAddPieceToAny(ctx, first.size, bytes.NewReader(first.full()), lotusDealInfo(first, 7))
	if err != nil || off != (sectorOffset{1, 0}) {
		t.Fatalf("SectorAddPieceToAny = %+v, %v", off, err)
	}
	off, err = lc.SectorAddPieceToAny(ctx, second.size, bytes.NewReader(second.full()), lotusDealInfo(second, 8))
	if err != nil || off != (sectorOffset{1, 1 << 20}) {
		t.Fatalf("SectorAddPieceToAny = %+v, %v", off, err)
	}

	si, err := lc.SectorsStatus(ctx, 1, false)
	if err != nil {
		t.Fatalf("SectorsStatus (Lotus' types): %v", err)
	}
	if si.State != "WaitDeals" || len(si.Pieces) != 2 || si.Deals[0] != 7 || si.Deals[1] != 8 ||
		!si.Pieces[1].Piece.PieceCID.Equals(second.cid) || si.DealWeight.Int == nil || si.InitialPledge.Sign() != 0 {
		t.Fatalf("SectorsStatus = %+v", si)
	}
	paths, err := lc.StorageFindSector(ctx, abi.SectorID{Miner: 1000, Number: 1}, storiface.FTUnsealed, sectorSize, false)
	if err != nil || len(paths) != 1 || paths[0].URLs[0] != "http://"+fs.addr+"/remote/unsealed/s-t01000-1" || !paths[0].CanStore {
		t.Fatalf("StorageFindSector = %+v, %v", paths, err)
	}
	decls, err := lc.StorageList(ctx)
	if err != nil || len(decls[paths[0].ID]) != 1 || decls[paths[0].ID][0] != (storiface.Decl{SectorID: abi.SectorID{Miner: 1000, Number: 1}, SectorFileType: storiface.FTUnsealed}) {
		t.Fatalf("StorageList = %+v, %v", decls, err)
	}
	if info, err := lc.StorageInfo(ctx, paths[0].ID); err != nil || info.ID != paths[0].ID || info.URLs[0] != "http://"+fs.addr+"/remote" {
		t.Fatalf("StorageInfo = %+v, %v", info, err)
	}
	ref := storiface.SectorRef{ID: abi.SectorID{Miner: 1000, Number: 1}, ProofType: abi.RegisteredSealProof_StackedDrg8MiBV1_1}
	if err := lc.SectorsUnsealPiece(ctx, ref, 0, first.size, nil, nil); err != nil {
		t.Fatalf("SectorsUnsealPiece: %v", err)
	}

	// Lotus' partialfile reads ferryd's unsealed file.
	pf, err := partialfile.OpenPartialFile(abi.PaddedPieceSize(sectorSize), fs.unsealedPath(1))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	for _, c := range []struct {
		p   testPiece
		off storiface.PaddedByteIndex
	}{{first, 0}, {second, 1 << 20}} {
		if ok, err := pf.HasAllocated(storiface.UnpaddedByteIndex(abi.PaddedPieceSize(c.off).Unpadded()), c.p.size); err != nil || !ok {
			t.Fatalf("piece at %d not allocated in the partial file: %v", c.off, err)
		}
		r, err := pf.Reader(c.off, c.p.size.Padded())
		if err != nil {
			t.Fatal(err)
		}
		padded, _ := io.ReadAll(r)
		out := make([]byte, c.p.size)
		fr32.Unpad(padded, out)
		if !bytes.Equal(out, c.p.full()) {
			t.Fatalf("piece at %d reads back different through Lotus' partialfile", c.off)
		}
	}

	// Ferry's client reads it back over /remote with the token.
	fc, err := minerapi.DialURL(ctx, "http://"+fs.addr+"/rpc/v0", fs.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	pr, err := fc.OpenPiece(ctx, abi.SectorID{Miner: 1000, Number: 1}, sectorSize, 1<<20, second.size.Padded())
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(pr, 0, pr.Size()))
	if err != nil || !bytes.Equal(got, second.full()) {
		t.Fatalf("reading the piece over /remote: %d bytes, %v", len(got), err)
	}
}

// TestLotusClientDirectPiece: Lotus' client hands a direct piece (its
// PieceActivationManifest in PieceDealInfo, no deal) to ferryd's miner
// API; ferryd's sealing places it, and SectorsStatus lists the manifest
// as Lotus' types read it, which is what the market's Sealer matches a
// direct piece by.
func TestLotusClientDirectPiece(t *testing.T) {
	ctx := context.Background()
	fs := startFerryServer(t)
	lc := dialLotus(t, fs.addr, fs.admin)
	p := makePiece(t, 3, 100000, 128<<10)
	info := lpiece.PieceDealInfo{
		DealSchedule:            lpiece.DealSchedule{StartEpoch: 10000, EndEpoch: 10000 + 518400},
		PieceActivationManifest: &miner.PieceActivationManifest{CID: p.cid, Size: p.size.Padded()},
	}
	if err := info.Valid(network.Version23); err != nil {
		t.Fatalf("Lotus refuses the piece info: %v", err)
	}
	off, err := lc.SectorAddPieceToAny(ctx, p.size, bytes.NewReader(p.full()), info)
	if err != nil || off != (sectorOffset{1, 0}) {
		t.Fatalf("SectorAddPieceToAny = %+v, %v", off, err)
	}
	// Again: the same piece, placed once.
	if off, err := lc.SectorAddPieceToAny(ctx, p.size, bytes.NewReader(p.full()), info); err != nil || off != (sectorOffset{1, 0}) {
		t.Fatalf("SectorAddPieceToAny again = %+v, %v", off, err)
	}
	si, err := lc.SectorsStatus(ctx, 1, false)
	if err != nil {
		t.Fatalf("SectorsStatus (Lotus' types): %v", err)
	}
	if len(si.Pieces) != 1 || si.Pieces[0].DealInfo == nil || si.Pieces[0].DealInfo.PieceActivationManifest == nil ||
		!si.Pieces[0].DealInfo.PieceActivationManifest.CID.Equals(p.cid) || si.Pieces[0].DealInfo.DealSchedule != info.DealSchedule {
		t.Fatalf("SectorsStatus pieces = %+v", si.Pieces)
	}
}

// TestLotusClientOverWebsocket: the same hand-off over a websocket.
func TestLotusClientOverWebsocket(t *testing.T) {
	ctx := context.Background()
	fs := startFerryServer(t)
	lc := dialLotusScheme(t, "ws", fs.addr, fs.admin)
	p := makePiece(t, 4, 100000, 128<<10)
	off, err := lc.SectorAddPieceToAny(ctx, p.size, bytes.NewReader(p.full()), lotusDealInfo(p, 11))
	if err != nil || off != (sectorOffset{1, 0}) {
		t.Fatalf("SectorAddPieceToAny over ws = %+v, %v", off, err)
	}
	if si, err := lc.SectorsStatus(ctx, 1, false); err != nil || len(si.Pieces) != 1 || !si.Pieces[0].Piece.PieceCID.Equals(p.cid) {
		t.Fatalf("SectorsStatus over ws = %+v, %v", si, err)
	}
}

// TestLotusClientPermissions: Lotus' client without admin gets Lotus'
// refusal, and its push goroutine is let go (goleak checks it ends).
func TestLotusClientPermissions(t *testing.T) {
	ctx := context.Background()
	fs := startFerryServer(t)
	p := makePiece(t, 3, 1000, 2048)
	for _, tok := range []string{"", fs.read} {
		lc := dialLotus(t, fs.addr, tok)
		_, err := lc.SectorAddPieceToAny(ctx, p.size, bytes.NewReader(p.full()), lotusDealInfo(p, 9))
		if err == nil || !strings.Contains(err.Error(), "missing permission to invoke 'SectorAddPieceToAny' (need 'admin')") {
			t.Fatalf("token %q: %v", tok, err)
		}
		if _, err := lc.ActorAddress(ctx); err != nil {
			t.Fatalf("token %q: ActorAddress: %v", tok, err)
		}
	}
	bad := dialLotus(t, fs.addr, "x.y.z")
	if _, err := bad.ActorAddress(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a bad token: %v", err)
	}
	if sectors, err := fs.seal.Sectors(ctx); err != nil || len(sectors) != 0 {
		t.Fatalf("sectors after refused calls: %v, %v", sectors, err)
	}
}

// lotusMiner is a lotus-miner stand-in served with Lotus' own rpcenc
// decoder and push handler; its AddPiece reads the reader and checks the
// deal with Lotus' own PieceDealInfo.Valid.
type lotusMiner struct {
	mu      sync.Mutex
	pieces  []lpiece.PieceDealInfo
	sums    map[abi.DealID][32]byte
	refuse  bool
	reading func(n int64) error
}

func (m *lotusMiner) ActorAddress(context.Context) (address.Address, error) { return testMiner, nil }

// AuthVerify answers as lotus-miner does for an admin token (this
// stand-in checks no tokens).
func (m *lotusMiner) AuthVerify(context.Context, string) ([]auth.Permission, error) {
	return []auth.Permission{"read", "write", "sign", "admin"}, nil
}

func (m *lotusMiner) ActorSectorSize(context.Context, address.Address) (abi.SectorSize, error) {
	return sectorSize, nil
}

func (m *lotusMiner) SectorAddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, r storiface.Data, d lpiece.PieceDealInfo) (sectorOffset, error) {
	if err := d.Valid(network.Version25); err != nil {
		return sectorOffset{}, fmt.Errorf("piece metadata invalid: %w", err)
	}
	if m.refuse {
		return sectorOffset{}, errors.New("cannot add piece: refused before reading")
	}
	// Lotus' push handler waits for the reader to be closed or read to its
	// end, whatever happens to the client: close it on the way out.
	if c, ok := r.(io.Closer); ok {
		defer c.Close()
	}
	h := sha256.New()
	var n int64
	buf := make([]byte, 1<<20)
	for n < int64(size) {
		k, err := r.Read(buf[:min(int64(len(buf)), int64(size)-n)])
		h.Write(buf[:k])
		n += int64(k)
		if m.reading != nil {
			if err := m.reading(n); err != nil {
				return sectorOffset{}, err
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return sectorOffset{}, fmt.Errorf("reading piece: %w", err)
		}
	}
	if n != int64(size) {
		return sectorOffset{}, fmt.Errorf("read %d of %d bytes", n, size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var off abi.PaddedPieceSize
	for _, p := range m.pieces {
		off += p.DealProposal.PieceSize
	}
	m.pieces = append(m.pieces, d)
	m.sums[d.DealID] = [32]byte(h.Sum(nil))
	return sectorOffset{Sector: 1, Offset: off}, nil
}

func (m *lotusMiner) SectorsListInStates(ctx context.Context, states []string) ([]abi.SectorNumber, error) {
	return []abi.SectorNumber{1}, nil
}

func (m *lotusMiner) SectorsStatus(ctx context.Context, n abi.SectorNumber, onChain bool) (sectorInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	si := sectorInfo{SectorID: n, State: "WaitDeals", DealWeight: big.Zero(), VerifiedDealWeight: big.Zero(), InitialPledge: big.Zero()}
	for i := range m.pieces {
		p := m.pieces[i]
		si.Deals = append(si.Deals, p.DealID)
		si.Pieces = append(si.Pieces, struct {
			Piece    abi.PieceInfo
			DealInfo *lpiece.PieceDealInfo
		}{abi.PieceInfo{Size: p.DealProposal.PieceSize, PieceCID: p.DealProposal.PieceCID}, &p})
	}
	return si, nil
}

// startLotusMiner serves m as lotus-miner's node/rpc.go wires its API
// (the push handler beside /rpc/v0), without auth.
func startLotusMiner(t *testing.T, m *lotusMiner) (*httptest.Server, string) {
	t.Helper()
	readerHandler, readerOpt := rpcenc.ReaderParamDecoder()
	rpc := jsonrpc.NewServer(readerOpt)
	rpc.Register("Filecoin", m)
	mux := http.NewServeMux()
	mux.Handle("/rpc/v0", rpc)
	mux.Handle("/rpc/streams/v0/push/", readerHandler)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	})
	return hs, hs.Listener.Addr().String()
}

func ferryDeal(d lpiece.PieceDealInfo) minerapi.PieceDealInfo {
	return minerapi.PieceDealInfo{PublishCid: d.PublishCid, DealID: d.DealID, DealProposal: d.DealProposal,
		DealSchedule: minerapi.DealSchedule(d.DealSchedule), KeepUnsealed: d.KeepUnsealed}
}

// TestFerryClientToLotusServer: ferry's client pushes pieces to a server
// running Lotus' rpcenc (Lotus POSTs only after its first read), and its
// PieceDealInfo passes Lotus' own validation.
func TestFerryClientToLotusServer(t *testing.T) {
	ctx := context.Background()
	m := &lotusMiner{sums: map[abi.DealID][32]byte{}}
	_, addr := startLotusMiner(t, m)
	c, err := minerapi.Dial(ctx, "no-token:/ip4/127.0.0.1/tcp/"+addr[strings.LastIndexByte(addr, ':')+1:]+"/http")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, ps := range []abi.PaddedPieceSize{1 << 20, 64 << 20} {
		p := makePiece(t, int64(i), int(ps.Unpadded())-12345, ps)
		d := lotusDealInfo(p, abi.DealID(20+i))
		if _, err := c.SectorAddPieceToAny(ctx, p.size, bytes.NewReader(p.payload), ferryDeal(d)); err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		if m.sums[d.DealID] != sha256.Sum256(p.full()) {
			t.Fatalf("piece %d: Lotus' server got other bytes than the zero-filled payload", i)
		}
	}

	// A server that answers without reading never closes the reader (Lotus'
	// rpcenc): the call still returns, and the push is let go.
	m.refuse = true
	p := makePiece(t, 5, 2000, 2048)
	if _, err := c.SectorAddPieceToAny(ctx, p.size, bytes.NewReader(p.payload), ferryDeal(lotusDealInfo(p, 30))); err == nil || !strings.Contains(err.Error(), "refused before reading") {
		t.Fatalf("a refusal before reading: %v", err)
	}
}

// TestFerrySealerAgainstLotusServer: the market's Sealer finds, through
// Lotus-shaped SectorsStatus, a deal Lotus already placed, and does not
// hand it over again.
func TestFerrySealerAgainstLotusServer(t *testing.T) {
	ctx := context.Background()
	m := &lotusMiner{sums: map[abi.DealID][32]byte{}}
	_, addr := startLotusMiner(t, m)
	c, err := minerapi.DialURL(ctx, "http://"+addr+"/rpc/v0", "an admin token")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sqldb, err := db.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	s, err := minerapi.NewSealer(ctx, c, testMiner, noChain{}, sqldb)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, second := makePiece(t, 1, 1000, 2048), makePiece(t, 2, 3000, 4096)
	d1, d2 := lotusDealInfo(first, 41), lotusDealInfo(second, 42)
	// The first deal was handed over by a process that died before it
	// recorded the answer.
	if _, err := c.SectorAddPieceToAny(ctx, first.size, bytes.NewReader(first.payload), ferryDeal(d1)); err != nil {
		t.Fatal(err)
	}
	pl, err := s.AddPieceToAny(ctx, first.size, failReader{}, sealingDeal(d1))
	if err != nil || pl != (sealing.Placement{Sector: 1, Offset: 0, Size: 2048}) {
		t.Fatalf("deal already at the miner: %+v, %v", pl, err)
	}
	pl, err = s.AddPieceToAny(ctx, second.size, bytes.NewReader(second.payload), sealingDeal(d2))
	if err != nil || pl != (sealing.Placement{Sector: 1, Offset: 2048, Size: 4096}) {
		t.Fatalf("new deal: %+v, %v", pl, err)
	}
	if len(m.pieces) != 2 {
		t.Fatalf("Lotus holds %d pieces, want 2", len(m.pieces))
	}
}

// TestLotusServerRestartMidStream: lotus-miner goes away while a piece
// streams; ferry's client reports it as unavailable (transient).
func TestLotusServerRestartMidStream(t *testing.T) {
	ctx := context.Background()
	reached, release := make(chan struct{}), make(chan struct{})
	m := &lotusMiner{sums: map[abi.DealID][32]byte{}, reading: func(n int64) error {
		if n >= 1<<20 {
			close(reached)
			<-release
			return errors.New("killed")
		}
		return nil
	}}
	hs, addr := startLotusMiner(t, m)
	c, err := minerapi.DialURL(ctx, "http://"+addr+"/rpc/v0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := makePiece(t, 6, 4<<20, 8<<20)
	res := make(chan error, 1)
	go func() {
		_, err := c.SectorAddPieceToAny(ctx, p.size, bytes.NewReader(p.payload), ferryDeal(lotusDealInfo(p, 50)))
		res <- err
	}()
	<-reached
	hs.Listener.Close()
	hs.CloseClientConnections()
	close(release)
	if err := <-res; !errors.Is(err, minerapi.ErrUnavailable) {
		t.Fatalf("the call cut by the restart: %v (want ErrUnavailable)", err)
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) {
	return 0, errors.New("the piece was read: handed over twice")
}

// noChain knows no active deal and no claim.
type noChain struct{}

func (noChain) StateMarketStorageDeal(context.Context, abi.DealID, chain.TipSetKey) (*chain.MarketDeal, error) {
	return &chain.MarketDeal{State: chain.MarketDealState{SectorStartEpoch: -1, LastUpdatedEpoch: -1, SlashEpoch: -1}}, nil
}

func (noChain) StateGetClaim(context.Context, address.Address, chain.ClaimID, chain.TipSetKey) (*chain.Claim, error) {
	return nil, nil
}

func sealingDeal(d lpiece.PieceDealInfo) sealing.Deal {
	return sealing.Deal{UUID: uuid.New(), DealID: d.DealID, PublishCid: *d.PublishCid, Proposal: d.DealProposal, KeepUnsealed: d.KeepUnsealed}
}
