package sealing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/miner"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/sender"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
	"github.com/ferry-fil/ferry/piece"
)

// minerChain is a fake chain.Node with just enough of the miner actor's
// pre-commit / prove-commit rules: it recomputes CommD from the deals and
// rejects a mismatch, enforces the seed delay, and activates the deals.
type minerChain struct {
	fakeNode
	worker address.Address
	delay  abi.ChainEpoch

	mu        sync.Mutex
	deals     map[abi.DealID]abi.PieceInfo
	active    map[abi.DealID]abi.SectorNumber
	precommit map[abi.SectorNumber]*chain.SectorPreCommitOnChainInfo
	proven    map[abi.SectorNumber]*chain.SectorOnChainInfo
	receipts  map[cid.Cid]*chain.MsgLookup
	byUUID    map[uuid.UUID]*chain.SignedMessage
	pushes    map[abi.MethodNum]int
	nonce     uint64
}

func newMinerChain() *minerChain {
	w, _ := address.NewIDAddress(1002)
	return &minerChain{
		fakeNode: fakeNode{height: 10}, worker: w, delay: 3,
		deals: map[abi.DealID]abi.PieceInfo{}, active: map[abi.DealID]abi.SectorNumber{},
		precommit: map[abi.SectorNumber]*chain.SectorPreCommitOnChainInfo{},
		proven:    map[abi.SectorNumber]*chain.SectorOnChainInfo{},
		receipts:  map[cid.Cid]*chain.MsgLookup{}, byUUID: map[uuid.UUID]*chain.SignedMessage{},
		pushes: map[abi.MethodNum]int{},
	}
}

// tick advances the chain every d until ctx ends.
func (m *minerChain) tick(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.fakeNode.mu.Lock()
			m.fakeNode.height++
			m.fakeNode.mu.Unlock()
		}
	}
}

func (m *minerChain) head() abi.ChainEpoch {
	m.fakeNode.mu.Lock()
	defer m.fakeNode.mu.Unlock()
	return m.fakeNode.height
}

func (m *minerChain) StateMinerInfo(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (chain.MinerInfo, error) {
	return chain.MinerInfo{Owner: m.worker, Worker: m.worker, SectorSize: 2048}, nil
}

func (m *minerChain) StateSectorPreCommitInfo(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk chain.TipSetKey) (*chain.SectorPreCommitOnChainInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.precommit[n], nil
}

func (m *minerChain) StateSectorGetInfo(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk chain.TipSetKey) (*chain.SectorOnChainInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proven[n], nil
}

func (m *minerChain) StateSearchMsg(ctx context.Context, from chain.TipSetKey, msg cid.Cid, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.receipts[msg]
	if l == nil || l.Height >= m.head() {
		return nil, nil // not executed yet
	}
	return l, nil
}

func (m *minerChain) MpoolPushMessage(ctx context.Context, msg *chain.Message, spec *chain.MessageSendSpec) (*chain.SignedMessage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pushes[msg.Method]++
	if sm := m.byUUID[spec.MsgUuid]; sm != nil {
		return sm, nil
	}
	if msg.From != m.worker {
		return nil, fmt.Errorf("message from %s, not the worker", msg.From)
	}
	msg.Nonce = m.nonce
	m.nonce++
	sm := &chain.SignedMessage{Message: *msg}
	c, err := sm.Cid()
	if err != nil {
		return nil, err
	}
	m.byUUID[spec.MsgUuid] = sm
	h := m.head()
	code := m.execute(msg, h)
	m.receipts[c] = &chain.MsgLookup{Message: c, Receipt: chain.MessageReceipt{ExitCode: code}, Height: h}
	return sm, nil
}

// pushSender is the MessageSender of the tests: MpoolPushMessage with the
// id as MsgUuid, which minerChain answers with the message it already has;
// Wait follows the chain until the message has executed with confidence
// epochs on top.
type pushSender struct{ m *minerChain }

func (p pushSender) Send(ctx context.Context, id uuid.UUID, msg *chain.Message, spec *chain.MessageSendSpec) (cid.Cid, error) {
	sp := *spec
	sp.MsgUuid = id
	sm, err := p.m.MpoolPushMessage(ctx, msg, &sp)
	if err != nil {
		return cid.Undef, err
	}
	return sm.Cid()
}

func (p pushSender) Wait(ctx context.Context, id uuid.UUID, confidence uint64) (*chain.MsgLookup, error) {
	p.m.mu.Lock()
	sm := p.m.byUUID[id]
	p.m.mu.Unlock()
	if sm == nil {
		return nil, fmt.Errorf("waiting for %s: %w", id, sender.ErrUnknownID)
	}
	c, err := sm.Cid()
	if err != nil {
		return nil, err
	}
	for {
		l, err := p.m.StateSearchMsg(ctx, chain.EmptyTSK, c, -1, true)
		if err != nil {
			return nil, err
		}
		if l != nil && p.m.head() >= l.Height+abi.ChainEpoch(confidence) {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// execute applies a miner message at height h. Call with m.mu.
func (m *minerChain) execute(msg *chain.Message, h abi.ChainEpoch) exitcode.ExitCode {
	switch msg.Method {
	case builtin.MethodsMiner.PreCommitSectorBatch2:
		var p miner.PreCommitSectorBatchParams2
		if err := p.UnmarshalCBOR(bytes.NewReader(msg.Params)); err != nil {
			return exitcode.ErrSerialization
		}
		for _, si := range p.Sectors {
			var pieces []abi.PieceInfo
			for _, id := range si.DealIDs {
				pi, ok := m.deals[id]
				if !ok {
					return exitcode.ErrNotFound
				}
				pieces = append(pieces, pi)
			}
			commD, err := piece.CommD(2048, pieces)
			if err != nil || si.UnsealedCid == nil || !commD.Equals(*si.UnsealedCid) {
				return exitcode.ErrIllegalArgument
			}
			if m.precommit[si.SectorNumber] != nil || si.SealRandEpoch >= h {
				return exitcode.ErrIllegalArgument
			}
			m.precommit[si.SectorNumber] = &chain.SectorPreCommitOnChainInfo{Info: si, PreCommitEpoch: h, PreCommitDeposit: big.Zero()}
		}
	case builtin.MethodsMiner.ProveCommitSector:
		var p miner.ProveCommitSectorParams
		if err := p.UnmarshalCBOR(bytes.NewReader(msg.Params)); err != nil {
			return exitcode.ErrSerialization
		}
		pc := m.precommit[p.SectorNumber]
		if pc == nil || h <= pc.PreCommitEpoch+m.delay || len(p.Proof) == 0 {
			return exitcode.ErrForbidden
		}
		for _, id := range pc.Info.DealIDs {
			m.active[id] = p.SectorNumber
		}
		m.proven[p.SectorNumber] = &chain.SectorOnChainInfo{SectorNumber: p.SectorNumber, SealedCID: pc.Info.SealedCID, Activation: h}
		delete(m.precommit, p.SectorNumber)
	default:
		return exitcode.SysErrInvalidMethod
	}
	return exitcode.Ok
}

func waitState(t *testing.T, s *Sealing, n abi.SectorNumber, states ...SectorState) SectorInfo {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		si, err := s.Sector(context.Background(), n)
		if err == nil {
			for _, st := range states {
				if si.State == st {
					return si
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	si, _ := s.Sector(context.Background(), n)
	t.Fatalf("sector %d stuck in %s (want %v): %s", n, si.State, states, si.LastError)
	return si
}

func fsmConfig() Config {
	return Config{SectorSize: 2048, WaitDealsDelay: 30 * time.Millisecond, PollInterval: 2 * time.Millisecond,
		PreCommitChallengeDelay: 3, StartEpochSealingBuffer: 5, RetryDelay: 5 * time.Millisecond}
}

func TestSectorToProving(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	mc := newMinerChain()
	go mc.tick(ctx, time.Millisecond)
	sqldb, err := db.Open(ctx, dbtest.Source(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	cfg := fsmConfig()
	cfg.Dir = filepath.Join(dir, "sectors")
	s, err := New(cfg, sqldb, mc, pushSender{mc}, testMiner, NewDevnetSealer())
	if err != nil {
		t.Fatal(err)
	}
	var ps []testPiece
	var deals []Deal
	for i, sz := range []abi.PaddedPieceSize{256, 512} {
		p := makePiece(t, int64(i), int(sz)/2, sz)
		d := dealFor(p, 100000)
		d.DealID = abi.DealID(100 + i)
		d.KeepUnsealed = false
		mc.mu.Lock()
		mc.deals[d.DealID] = abi.PieceInfo{Size: sz, PieceCID: p.cid}
		mc.mu.Unlock()
		if _, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), d); err != nil {
			t.Fatal(err)
		}
		ps, deals = append(ps, p), append(deals, d)
	}
	if st, err := s.SectorStatus(ctx, deals[0].UUID); err != nil || st != (DealSectorStatus{Sector: 1, State: StateWaitDeals}) {
		t.Fatalf("status of a deal in an open sector: %+v %v", st, err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	waitState(t, s, 1, StateWaitSeed, StateCommitting, StateSubmitCommit, StateCommitWait, StateFinalizeSector, StateProving)
	// Restart in the middle: a new Sealing on the same database resumes
	// without sending a second pre-commit.
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s2, err := New(cfg, sqldb, mc, pushSender{mc}, testMiner, NewDevnetSealer())
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- s2.Run(ctx) }()
	si := waitState(t, s2, 1, StateProving)
	cancel()
	<-done

	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.pushes[builtin.MethodsMiner.PreCommitSectorBatch2] != 1 || mc.pushes[builtin.MethodsMiner.ProveCommitSector] != 1 {
		t.Fatalf("pushes: %v, want one pre-commit and one prove-commit", mc.pushes)
	}
	for id := range mc.deals {
		if mc.active[id] != 1 {
			t.Fatalf("deal %d not active in sector 1", id)
		}
	}
	if si.CommD == nil || si.Unsealed || si.PackReason != "wait-timeout" {
		t.Fatalf("proving sector: %+v", si)
	}
	for _, d := range deals {
		if st, err := s2.SectorStatus(context.Background(), d.UUID); err != nil || st != (DealSectorStatus{Sector: 1, State: StateProving, Proven: true}) {
			t.Fatalf("status of a deal in a proving sector: %+v %v", st, err)
		}
	}
	for _, p := range ps {
		if _, err := s2.ReadPiece(context.Background(), p.cid); !errors.Is(err, ErrNoUnsealedCopy) {
			t.Fatalf("unsealed copy still readable after removal: %v", err)
		}
	}
}
