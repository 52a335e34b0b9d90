package market

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-bitfield"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/filecoin-project/go-state-types/network"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/sender"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/transfer"
	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

// fakeChain is a chain.Node for tests. What must survive a killed process
// (nonces, executed messages, deals) is saved to a JSON file in its dir.
type fakeChain struct {
	mu   sync.Mutex
	path string
	st   fakeChainState

	height     abi.ChainEpoch
	keys       map[address.Address]wallet.KeyInfo
	accounts   map[address.Address]address.Address
	market     map[address.Address]chain.MarketBalance
	walletBal  abi.TokenAmount
	dataCap    map[address.Address]abi.StoragePower
	collMin    abi.TokenAmount
	worker     address.Address
	balanceErr map[address.Address]error // StateMarketBalance fails for these
	rejectNext int                       // the next publish marks its deal at this index invalid (-1: none)
	stealNonce bool                      // another message takes the nonce of the next publish
	slashed    map[abi.DealID]abi.ChainEpoch
	allocs     map[chain.AllocationID]*chain.Allocation // verified allocations by ID
	claimed    func(chain.ClaimID) *chain.Claim         // the claims the sealer made, when set
}

type fakeChainState struct {
	Nonce      uint64
	Msgs       map[string]*fakeMsg
	NextDealID abi.DealID
	Deals      map[abi.DealID]bool
}

type fakeMsg struct {
	Method   abi.MethodNum
	Deals    int
	Return   []byte
	ExitCode int
	Pushes   int
	Height   abi.ChainEpoch
}

var testMiner = mustID(1000)

func mustID(n uint64) address.Address {
	a, err := address.NewIDAddress(n)
	if err != nil {
		panic(err)
	}
	return a
}

func newFakeChain(t testing.TB, dir string, workerKey wallet.KeyInfo) *fakeChain {
	t.Helper()
	fc := &fakeChain{
		path:       filepath.Join(dir, "fakechain.json"),
		height:     100,
		keys:       map[address.Address]wallet.KeyInfo{},
		accounts:   map[address.Address]address.Address{},
		market:     map[address.Address]chain.MarketBalance{},
		balanceErr: map[address.Address]error{},
		walletBal:  chain.FIL(100),
		dataCap:    map[address.Address]abi.StoragePower{},
		collMin:    big.NewInt(10),
		rejectNext: -1,
		slashed:    map[abi.DealID]abi.ChainEpoch{},
		allocs:     map[chain.AllocationID]*chain.Allocation{},
		st:         fakeChainState{Msgs: map[string]*fakeMsg{}, NextDealID: 1, Deals: map[abi.DealID]bool{}},
	}
	wa, err := workerKey.Address()
	if err != nil {
		t.Fatal(err)
	}
	fc.worker = wa
	fc.keys[wa] = workerKey
	fc.market[testMiner] = chain.MarketBalance{Escrow: chain.FIL(10), Locked: big.Zero()}
	if b, err := os.ReadFile(fc.path); err == nil {
		if err := json.Unmarshal(b, &fc.st); err != nil {
			t.Fatalf("fake chain state: %v", err)
		}
	}
	return fc
}

func (fc *fakeChain) saveLocked() {
	b, err := json.Marshal(fc.st)
	if err != nil {
		panic(err)
	}
	tmp := fc.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		panic(err)
	}
	if err := os.Rename(tmp, fc.path); err != nil {
		panic(err)
	}
}

func (fc *fakeChain) addClient(t testing.TB, id address.Address, ki wallet.KeyInfo, escrow abi.TokenAmount) address.Address {
	key, err := ki.Address()
	if err != nil {
		t.Fatal(err)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.accounts[id] = key
	fc.market[id] = chain.MarketBalance{Escrow: escrow, Locked: big.Zero()}
	return key
}

func (fc *fakeChain) setHeight(h abi.ChainEpoch) {
	fc.mu.Lock()
	fc.height = h
	fc.mu.Unlock()
}

// slash gives a deal a slash epoch.
func (fc *fakeChain) slash(id abi.DealID, at abi.ChainEpoch) {
	fc.mu.Lock()
	fc.slashed[id] = at
	fc.mu.Unlock()
}

// dropDeal removes a deal from the chain, as the market actor's cron does.
func (fc *fakeChain) dropDeal(id abi.DealID) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	delete(fc.st.Deals, id)
	fc.saveLocked()
}

func (fc *fakeChain) publishMsgs() (msgs, pushes int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for _, m := range fc.st.Msgs {
		if m.Method == 4 {
			msgs++
			pushes += m.Pushes
		}
	}
	return
}

func (fc *fakeChain) Version(context.Context) (chain.APIVersion, error) {
	return chain.APIVersion{Version: "fake", BlockDelay: 30}, nil
}

func (fc *fakeChain) ChainHead(context.Context) (*chain.TipSet, error) {
	fc.mu.Lock()
	h := fc.height
	fc.mu.Unlock()
	c, _ := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: 0x12, MhLength: -1}.Sum([]byte(fmt.Sprint(h)))
	return chain.NewTipSet([]*chain.BlockHeader{{Height: h, Miner: testMiner}}, []cid.Cid{c})
}

func (fc *fakeChain) ChainGetTipSetByHeight(ctx context.Context, h abi.ChainEpoch, _ chain.TipSetKey) (*chain.TipSet, error) {
	return fc.ChainHead(ctx)
}

func (fc *fakeChain) StateNetworkVersion(context.Context, chain.TipSetKey) (network.Version, error) {
	return network.Version21, nil
}

func (fc *fakeChain) StateLookupID(_ context.Context, a address.Address, _ chain.TipSetKey) (address.Address, error) {
	return a, nil
}

func (fc *fakeChain) StateAccountKey(_ context.Context, a address.Address, _ chain.TipSetKey) (address.Address, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if a.Protocol() != address.ID {
		return a, nil
	}
	k, ok := fc.accounts[a]
	if !ok {
		return address.Undef, fmt.Errorf("actor %s not found", a)
	}
	return k, nil
}

func (fc *fakeChain) StateMinerInfo(_ context.Context, m address.Address, _ chain.TipSetKey) (chain.MinerInfo, error) {
	return chain.MinerInfo{Owner: fc.worker, Worker: fc.worker, SectorSize: 2048}, nil
}

func (fc *fakeChain) StateMarketBalance(_ context.Context, a address.Address, _ chain.TipSetKey) (chain.MarketBalance, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if err := fc.balanceErr[a]; err != nil {
		return chain.MarketBalance{}, err
	}
	b, ok := fc.market[a]
	if !ok {
		return chain.MarketBalance{Escrow: big.Zero(), Locked: big.Zero()}, nil
	}
	return b, nil
}

func (fc *fakeChain) StateMarketStorageDeal(_ context.Context, id abi.DealID, _ chain.TipSetKey) (*chain.MarketDeal, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if !fc.st.Deals[id] {
		return nil, fmt.Errorf("deal %d not found", id)
	}
	slash, ok := fc.slashed[id]
	if !ok {
		slash = -1
	}
	return &chain.MarketDeal{State: chain.MarketDealState{SectorStartEpoch: fc.height, LastUpdatedEpoch: -1, SlashEpoch: slash}}, nil
}

// StateGetAllocation returns an allocation the test made, if its client is
// client.
func (fc *fakeChain) StateGetAllocation(_ context.Context, client address.Address, id chain.AllocationID, _ chain.TipSetKey) (*chain.Allocation, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	a := fc.allocs[id]
	if a == nil || mustID(uint64(a.Client)) != client {
		return nil, nil
	}
	out := *a
	return &out, nil
}

// StateGetClaim returns the claim the fake sealer made of allocation id.
func (fc *fakeChain) StateGetClaim(_ context.Context, provider address.Address, id chain.ClaimID, _ chain.TipSetKey) (*chain.Claim, error) {
	fc.mu.Lock()
	claimed := fc.claimed
	fc.mu.Unlock()
	if provider != testMiner || claimed == nil {
		return nil, nil
	}
	return claimed(id), nil
}

// allocate makes an allocation of client for the test miner.
func (fc *fakeChain) allocate(id chain.AllocationID, client address.Address, pc cid.Cid, size abi.PaddedPieceSize, termMin, termMax, expiration abi.ChainEpoch) {
	c, err := address.IDFromAddress(client)
	if err != nil {
		panic(err)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.allocs[id] = &chain.Allocation{Client: abi.ActorID(c), Provider: 1000, Data: pc, Size: size,
		TermMin: termMin, TermMax: termMax, Expiration: expiration}
}

func (fc *fakeChain) StateDealProviderCollateralBounds(context.Context, abi.PaddedPieceSize, bool, chain.TipSetKey) (chain.DealCollateralBounds, error) {
	return chain.DealCollateralBounds{Min: fc.collMin, Max: big.Mul(fc.collMin, big.NewInt(100))}, nil
}

func (fc *fakeChain) StateVerifiedClientStatus(_ context.Context, a address.Address, _ chain.TipSetKey) (*abi.StoragePower, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if dc, ok := fc.dataCap[a]; ok {
		return &dc, nil
	}
	return nil, nil
}

func (fc *fakeChain) StateSectorPreCommitInfo(context.Context, address.Address, abi.SectorNumber, chain.TipSetKey) (*chain.SectorPreCommitOnChainInfo, error) {
	return nil, nil
}

func (fc *fakeChain) StateSectorGetInfo(context.Context, address.Address, abi.SectorNumber, chain.TipSetKey) (*chain.SectorOnChainInfo, error) {
	return nil, nil
}

func (fc *fakeChain) lookup(c cid.Cid) *chain.MsgLookup {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	m, ok := fc.st.Msgs[c.String()]
	if !ok {
		return nil
	}
	return &chain.MsgLookup{Message: c, Receipt: chain.MessageReceipt{ExitCode: exitcode.ExitCode(m.ExitCode), Return: m.Return}, Height: m.Height}
}

func (fc *fakeChain) StateWaitMsg(ctx context.Context, c cid.Cid, _ uint64, _ abi.ChainEpoch, _ bool) (*chain.MsgLookup, error) {
	for {
		if l := fc.lookup(c); l != nil {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (fc *fakeChain) StateSearchMsg(_ context.Context, _ chain.TipSetKey, c cid.Cid, _ abi.ChainEpoch, _ bool) (*chain.MsgLookup, error) {
	return fc.lookup(c), nil
}

func (fc *fakeChain) WalletBalance(context.Context, address.Address) (big.Int, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.walletBal, nil
}

func (fc *fakeChain) WalletSign(_ context.Context, a address.Address, data []byte) (*crypto.Signature, error) {
	fc.mu.Lock()
	ki, ok := fc.keys[a]
	fc.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no key for %s", a)
	}
	return wallet.Sign(ki, data)
}

func (fc *fakeChain) WalletHas(_ context.Context, a address.Address) (bool, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	_, ok := fc.keys[a]
	return ok, nil
}

func (fc *fakeChain) WalletDefaultAddress(context.Context) (address.Address, error) {
	return fc.worker, nil
}

// StateGetActor returns the worker's nonce (all the message sender reads).
func (fc *fakeChain) StateGetActor(_ context.Context, a address.Address, _ chain.TipSetKey) (*chain.Actor, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return &chain.Actor{Nonce: fc.st.Nonce, Balance: fc.walletBal}, nil
}

// Has and Sign make the fake chain's keys the message sender's.
func (fc *fakeChain) Has(a address.Address) (bool, error) {
	return fc.WalletHas(context.Background(), a)
}

func (fc *fakeChain) Sign(a address.Address, data []byte) (*crypto.Signature, error) {
	return fc.WalletSign(context.Background(), a, data)
}

func (fc *fakeChain) MpoolGetNonce(context.Context, address.Address) (uint64, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.st.Nonce, nil
}

// MpoolPush checks the signature and executes the message at once.
func (fc *fakeChain) MpoolPush(_ context.Context, sm *chain.SignedMessage) (cid.Cid, error) {
	c, err := sm.Cid()
	if err != nil {
		return cid.Undef, err
	}
	mc, err := sm.Message.Cid()
	if err != nil {
		return cid.Undef, err
	}
	if err := wallet.Verify(&sm.Signature, sm.Message.From, mc.Bytes()); err != nil {
		return cid.Undef, fmt.Errorf("bad message signature: %w", err)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if m, ok := fc.st.Msgs[c.String()]; ok {
		m.Pushes++
		fc.saveLocked()
		return c, nil
	}
	if fc.stealNonce && sm.Message.Method == 4 {
		fc.stealNonce = false
		fc.st.Nonce++
		fc.st.Msgs["other"] = &fakeMsg{Method: 99, Pushes: 1}
	}
	if sm.Message.Nonce != fc.st.Nonce {
		return cid.Undef, fmt.Errorf("nonce %d, expected %d", sm.Message.Nonce, fc.st.Nonce)
	}
	fc.st.Nonce++
	m := &fakeMsg{Method: sm.Message.Method, Pushes: 1, Height: fc.height}
	if sm.Message.Method == 4 {
		var params market.PublishStorageDealsParams
		if err := params.UnmarshalCBOR(bytes.NewReader(sm.Message.Params)); err != nil {
			return cid.Undef, err
		}
		m.Deals = len(params.Deals)
		var ret market.PublishStorageDealsReturn
		var valid []uint64
		for i := range params.Deals {
			if i == fc.rejectNext {
				continue
			}
			valid = append(valid, uint64(i))
			ret.IDs = append(ret.IDs, fc.st.NextDealID)
			fc.st.Deals[fc.st.NextDealID] = true
			fc.st.NextDealID++
		}
		fc.rejectNext = -1
		ret.ValidDeals = bitfield.NewFromSet(valid)
		var buf bytes.Buffer
		if err := ret.MarshalCBOR(&buf); err != nil {
			return cid.Undef, err
		}
		m.Return = buf.Bytes()
	}
	fc.st.Msgs[c.String()] = m
	fc.saveLocked()
	return c, nil
}

func (fc *fakeChain) MpoolPushMessage(context.Context, *chain.Message, *chain.MessageSendSpec) (*chain.SignedMessage, error) {
	return nil, errors.New("fake chain: MpoolPushMessage not used by the market")
}

func (fc *fakeChain) GasEstimateMessageGas(_ context.Context, m *chain.Message, _ *chain.MessageSendSpec, _ chain.TipSetKey) (*chain.Message, error) {
	out := *m
	out.GasLimit = 1_000_000
	out.GasFeeCap = big.NewInt(100)
	out.GasPremium = big.NewInt(10)
	return &out, nil
}

// fakeSealer records placements in a JSON file so they survive a kill.
type fakeSealer struct {
	mu    sync.Mutex
	path  string
	st    fakeSealerState
	fail  error
	calls int // AddPieceToAny calls
	crcs  int // calls given the data's CRC-32C, which matched
	state sealing.SectorState
	hold  chan struct{} // when set, AddPieceToAny waits for it after reading the data
}

type fakeSealerState struct {
	Placed map[string]abi.SectorNumber
	Writes map[string]int // completed writes per deal (idempotent calls do not write)
	// Claims are the allocations of direct pieces placed, by ID: each is
	// claimed once its sector is proving.
	Claims map[chain.ClaimID]fakeClaim
}

type fakeClaim struct {
	Deal   string
	Sector abi.SectorNumber
	Piece  cid.Cid
	Client abi.ActorID
}

func newFakeSealer(t testing.TB, dir string) *fakeSealer {
	s := &fakeSealer{path: filepath.Join(dir, "fakesealer.json"), state: sealing.StateProving,
		st: fakeSealerState{Placed: map[string]abi.SectorNumber{}, Writes: map[string]int{}, Claims: map[chain.ClaimID]fakeClaim{}}}
	if b, err := os.ReadFile(s.path); err == nil {
		if err := json.Unmarshal(b, &s.st); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *fakeSealer) AddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, data io.Reader, d sealing.Deal) (sealing.Placement, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail != nil {
		return sealing.Placement{}, s.fail
	}
	if n, ok := s.st.Placed[d.UUID.String()]; ok {
		return sealing.Placement{Sector: n, Size: size.Padded()}, nil
	}
	calc := piece.NewCalc()
	sum := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	if _, err := io.Copy(io.MultiWriter(calc, sum), io.LimitReader(data, int64(size))); err != nil {
		return sealing.Placement{}, err
	}
	if d.DataCRC32C != nil {
		if sum.Sum32() != *d.DataCRC32C {
			return sealing.Placement{}, fmt.Errorf("fake sealer: data has CRC-32C %08x, the market gave %08x", sum.Sum32(), *d.DataCRC32C)
		}
		s.crcs++
	}
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-ctx.Done():
			return sealing.Placement{}, ctx.Err()
		}
	}
	comm, err := calc.SumAs(size.Padded())
	if err != nil {
		return sealing.Placement{}, err
	}
	if !comm.CID().Equals(d.PieceCID()) {
		return sealing.Placement{}, fmt.Errorf("fake sealer: commP mismatch")
	}
	n := abi.SectorNumber(len(s.st.Placed) + 1)
	s.st.Placed[d.UUID.String()] = n
	s.st.Writes[d.UUID.String()]++
	if m := d.PieceActivationManifest; m != nil && m.VerifiedAllocationKey != nil {
		k := m.VerifiedAllocationKey
		if _, dup := s.st.Claims[chain.ClaimID(k.ID)]; dup {
			return sealing.Placement{}, fmt.Errorf("fake sealer: allocation %d placed twice", k.ID)
		}
		s.st.Claims[chain.ClaimID(k.ID)] = fakeClaim{Deal: d.UUID.String(), Sector: n, Piece: m.CID, Client: k.Client}
	}
	b, _ := json.Marshal(s.st)
	if err := os.WriteFile(s.path, b, 0o644); err != nil {
		return sealing.Placement{}, err
	}
	return sealing.Placement{Sector: n, Size: size.Padded()}, nil
}

// claim is the claim of allocation id once its piece's sector is proving.
func (s *fakeSealer) claim(id chain.ClaimID) *chain.Claim {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.st.Claims[id]
	if !ok || s.state != sealing.StateProving {
		return nil
	}
	return &chain.Claim{Provider: 1000, Client: c.Client, Data: c.Piece, Sector: c.Sector}
}

func (s *fakeSealer) SectorStatus(_ context.Context, id uuid.UUID) (sealing.DealSectorStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.st.Placed[id.String()]
	if !ok {
		return sealing.DealSectorStatus{}, errors.New("unknown deal")
	}
	return sealing.DealSectorStatus{Sector: n, State: s.state, Proven: s.state == sealing.StateProving}, nil
}

// fakeDownloader copies from files named by "http://fake/<name>" URLs in its
// source directory, resuming like transfer.Downloader.
type fakeDownloader struct {
	srcDir  string
	mu      sync.Mutex
	calls   int
	block   chan struct{} // when set, downloads wait for it
	err     error         // when set, downloads fail with it
	clients []string      // Request.Client of each call
}

func (f *fakeDownloader) Download(ctx context.Context, req transfer.Request, path string, tee io.Writer, progress func(uint64)) error {
	f.mu.Lock()
	f.calls++
	f.clients = append(f.clients, req.Client)
	block, ferr := f.block, f.err
	f.mu.Unlock()
	if ferr != nil {
		return ferr
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	name := filepath.Base(req.URL)
	src, err := os.Open(filepath.Join(f.srcDir, name))
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer dst.Close()
	n, err := io.Copy(tee, dst)
	if err != nil {
		return err
	}
	if _, err := src.Seek(n, io.SeekStart); err != nil {
		return err
	}
	m, err := io.Copy(io.MultiWriter(dst, tee), io.LimitReader(src, int64(req.Size)-n))
	if err != nil {
		return err
	}
	progress(uint64(n + m))
	if uint64(n+m) != req.Size {
		return fmt.Errorf("got %d bytes, want %d", n+m, req.Size)
	}
	return dst.Sync()
}

// stubResolver resolves the names it holds, and no other, without a
// packet sent.
type stubResolver map[string][]netip.Addr

func (r stubResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

type fakeIndexer struct {
	mu       sync.Mutex
	calls    map[uuid.UUID]int
	data     map[uuid.UUID][]byte // what each call's Data held; no entry: the call had none
	removals []RemoveRequest
	logPath  string                   // when set, each removal is also appended to this file
	onIndex  func(IndexRequest) error // when set, called by IndexAndAnnounce first
}

// RemovePiece records the removal.
func (f *fakeIndexer) RemovePiece(_ context.Context, r RemoveRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removals = append(f.removals, r)
	if f.logPath == "" {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	lf, err := os.OpenFile(f.logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := lf.Write(append(b, '\n')); err != nil {
		lf.Close()
		return err
	}
	return lf.Close()
}

// removed returns a copy of the removals so far.
func (f *fakeIndexer) removed() []RemoveRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]RemoveRequest(nil), f.removals...)
}

func (f *fakeIndexer) IndexAndAnnounce(_ context.Context, r IndexRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onIndex != nil {
		if err := f.onIndex(r); err != nil {
			return err
		}
	}
	if f.calls == nil {
		f.calls, f.data = map[uuid.UUID]int{}, map[uuid.UUID][]byte{}
	}
	f.calls[r.DealUUID]++
	delete(f.data, r.DealUUID)
	if r.Data != nil {
		b, err := io.ReadAll(io.NewSectionReader(r.Data, 0, r.Data.Size()))
		if err != nil {
			return err
		}
		f.data[r.DealUUID] = b
	}
	return nil
}

// harness is a provider over fakes in one directory.
type harness struct {
	t        testing.TB
	dir      string
	fc       *fakeChain
	sealer   *fakeSealer
	dl       *fakeDownloader
	idx      *fakeIndexer
	p        *Provider
	cfg      Config
	clientID address.Address
	clientKI wallet.KeyInfo
	keys     sender.Keys // the worker's key, for the message sender start makes
	deps     Deps

	logMu sync.Mutex
	logs  []string // what the provider logged
}

// logged returns the provider's log lines that contain all of parts.
func (h *harness) logged(parts ...string) []string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	var out []string
	for _, l := range h.logs {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			out = append(out, l)
		}
	}
	return out
}

// Deterministic keys so a re-executed child sees the same chain.
func testKey(t testing.TB, seed byte) wallet.KeyInfo {
	return wallet.KeyInfo{Type: wallet.TypeSecp256k1, PrivateKey: bytes.Repeat([]byte{seed}, 32)}
}

func newHarness(t testing.TB, dir string, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, clientID: mustID(1001), clientKI: testKey(t, 2)}
	h.fc = newFakeChain(t, dir, testKey(t, 1))
	h.keys = h.fc
	h.fc.addClient(t, h.clientID, h.clientKI, chain.FIL(1000))
	h.sealer = newFakeSealer(t, dir)
	h.fc.claimed = h.sealer.claim
	h.dl = &fakeDownloader{srcDir: filepath.Join(dir, "src")}
	h.idx = &fakeIndexer{}
	if err := os.MkdirAll(h.dl.srcDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sqldb, err := db.Open(context.Background(), dbtest.Source(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	h.cfg = Config{
		Miner:                 testMiner,
		StagingDir:            filepath.Join(dir, "staging"),
		BlockDelay:            30 * time.Second,
		PollInterval:          10 * time.Millisecond,
		PublishMsgPeriod:      50 * time.Millisecond,
		MaxDealsPerPublishMsg: 4,
		RetryBackoff:          10 * time.Millisecond,
		MaxAutoRetries:        2,
		MaxPublishDealsFee:    big.NewInt(1000),
	}
	if mod != nil {
		mod(&h.cfg)
	}
	// The deals' URLs name fake.example, which resolves to a public
	// address no packet is sent to.
	resolver := stubResolver{"fake.example": {netip.MustParseAddr("8.8.8.8")}}
	h.deps = Deps{Node: h.fc, DB: sqldb, Sealer: h.sealer, Downloader: h.dl, Indexer: h.idx, Resolver: resolver,
		Logf: func(f string, a ...any) {
			t.Logf(f, a...)
			h.logMu.Lock()
			h.logs = append(h.logs, fmt.Sprintf(f, a...))
			h.logMu.Unlock()
		}}
	return h
}

func (h *harness) start() {
	h.t.Helper()
	ctx := context.Background()
	mi, err := h.deps.Node.StateMinerInfo(ctx, h.cfg.Miner, chain.TipSetKey{})
	if err != nil {
		h.t.Fatal(err)
	}
	steps := map[sender.Step]string{sender.StepRecorded: "MessageRecorded", sender.StepPushed: "MessagePushed"}
	h.deps.Sender, err = sender.New(ctx, sender.Config{
		DB: h.deps.DB, Node: h.deps.Node.(sender.Node), From: mi.Worker, Keys: h.keys, Logf: h.deps.Logf,
		OnStep: func(id uuid.UUID, st sender.Step) {
			if h.deps.OnCheckpoint != nil {
				h.deps.OnCheckpoint(id, steps[st])
			}
		},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	p, err := New(h.cfg, h.deps)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.p = p
	h.t.Cleanup(func() { p.Close() })
}

// payload makes deterministic deal data, stores it as a download source and
// returns its piece CID and padded size.
func (h *harness) payload(name string, n int, seed int64) (cid.Cid, abi.PaddedPieceSize) {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	if err := os.WriteFile(filepath.Join(h.dl.srcDir, name), b, 0o644); err != nil {
		h.t.Fatal(err)
	}
	size := abi.PaddedPieceSize(128)
	for uint64(size.Unpadded()) < uint64(n) {
		size *= 2
	}
	calc := piece.NewCalc()
	calc.Write(b)
	comm, err := calc.SumAs(size)
	if err != nil {
		h.t.Fatal(err)
	}
	return comm.CID(), size
}

var testRoot = func() cid.Cid {
	c, _ := cid.Decode("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi")
	return c
}()

// deal makes signed, valid DealParams for the data stored under name.
func (h *harness) deal(name string, n int, seed int64, mod func(*market.DealProposal, *wire.DealParams)) *wire.DealParams {
	h.t.Helper()
	pc, size := h.payload(name, n, seed)
	label, _ := market.NewLabelFromString("label " + name)
	ts, err := h.deps.Node.ChainHead(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	head := ts.Height()
	prop := market.DealProposal{
		PieceCID: pc, PieceSize: size, Client: h.clientID, Provider: h.cfg.Miner, Label: label,
		StartEpoch: head + 2880 + 200, EndEpoch: head + 2880 + 200 + MinDealDuration,
		StoragePricePerEpoch: big.NewInt(1000), ProviderCollateral: big.NewInt(10), ClientCollateral: big.Zero(),
	}
	params := &wire.DealParams{
		DealUUID:     uuid.New(),
		DealDataRoot: testRoot,
		Transfer: wire.Transfer{Type: "http", Size: uint64(n),
			Params: []byte(fmt.Sprintf(`{"URL":"http://fake.example/%s","Headers":{}}`, name))},
	}
	if mod != nil {
		mod(&prop, params)
	}
	h.sign(&prop, params)
	return params
}

func (h *harness) sign(prop *market.DealProposal, params *wire.DealParams) {
	var buf bytes.Buffer
	if err := prop.MarshalCBOR(&buf); err != nil {
		h.t.Fatal(err)
	}
	sig, err := wallet.Sign(h.clientKI, buf.Bytes())
	if err != nil {
		h.t.Fatal(err)
	}
	params.ClientDealProposal = market.ClientDealProposal{Proposal: *prop, ClientSignature: *sig}
}

// doneAndWaiting proposes a deal and waits for it to complete, then makes
// the downloads block and proposes three deals, created at distinct times,
// that stay in their transfer until the test ends. It returns the first
// deal, its info once complete, and the three in the order proposed.
func (h *harness) doneAndWaiting(ctx context.Context) (done *wire.DealParams, doneInfo *DealInfo, waiting []*wire.DealParams) {
	h.t.Helper()
	done = h.deal("done.car", 1500, 1, nil)
	if r := h.p.Propose(ctx, done, "p"); !r.Accepted {
		h.t.Fatal(r.Message)
	}
	doneInfo = h.waitFor(done.DealUUID, complete, Complete)
	block := make(chan struct{})
	h.dl.mu.Lock()
	h.dl.block = block
	h.dl.mu.Unlock()
	h.t.Cleanup(func() { close(block) })
	for i := 0; i < 3; i++ {
		params := h.deal(fmt.Sprintf("w%d.car", i), 1500, int64(10+i), nil)
		if r := h.p.Propose(ctx, params, "p"); !r.Accepted {
			h.t.Fatal(r.Message)
		}
		waiting = append(waiting, params)
		time.Sleep(2 * time.Millisecond) // distinct creation times
	}
	return done, doneInfo, waiting
}

// waitGone waits until the deal's staging file is removed: a failed deal
// is recorded first, then its file removed.
func (h *harness) waitGone(id uuid.UUID) {
	h.t.Helper()
	path := filepath.Join(h.cfg.StagingDir, id.String()+".car")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("staging file of deal %s kept: %v", id, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) waitFor(id uuid.UUID, want func(*DealInfo) bool, what any) *DealInfo {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		d, err := h.p.Deal(context.Background(), id)
		if err == nil && want(&d.DealInfo) {
			return &d.DealInfo
		}
		time.Sleep(5 * time.Millisecond)
	}
	d, err := h.p.Deal(context.Background(), id)
	h.t.Fatalf("deal %s never reached %v: %+v %v", id, what, d, err)
	return nil
}
