package devnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/wallet"
)

// Genesis balances.
var (
	// GenesisBalance is what the genesis account holds at genesis:
	// 1,000,000,000 FIL.
	GenesisBalance = big.Mul(big.NewInt(1_000_000_000), big.NewInt(fil))
	// rootBalance pays the verified registry root key's gas: 1,000 FIL.
	rootBalance = big.Mul(big.NewInt(1_000), big.NewInt(fil))
)

// Config configures a devnet.
type Config struct {
	// Dir is the state directory (created if missing): the chain database
	// and the devnet's own keystore (keystore/, the verified registry root
	// key, and the genesis key when Wallet is nil).
	Dir string
	// BlockTime is the time between blocks (default 1s). A negative
	// BlockTime produces no blocks by itself: call Mine.
	BlockTime time.Duration
	// Wallet holds the keys the node "holds", as a Lotus node's wallet:
	// WalletSign and MpoolPushMessage sign with them. The genesis key is
	// created in it. Nil means the devnet's own keystore in Dir.
	Wallet *wallet.Wallet
	// Policy overrides chain parameters (deal durations, challenge delay…);
	// zero fields keep their defaults.
	Policy Policy
	// Logf receives rare operational messages (a block that could not be
	// written). Nil means the standard logger.
	Logf func(format string, args ...any)
}

// ErrClosed is returned by Mine after Close.
var ErrClosed = errors.New("devnet is closed")

// Devnet is the embedded chain. It implements chain.FullNode.
type Devnet struct {
	cfg      Config
	policy   Policy
	store    *store
	wallets  []*wallet.Wallet // the node wallet first, then the devnet's own
	genesis  address.Address
	root     address.Address
	secret   []byte // signs the API's tokens, made at genesis
	logf     func(format string, args ...any)
	mineLock sync.Mutex // serialises block production
	pushMu   sync.Mutex // serialises MpoolPushMessage's nonce assignment

	mu       sync.RWMutex
	st       *state
	snap     []byte // the encoded st, for rollback
	head     *chain.TipSet
	receipts cid.Cid // receipts root of the head's messages
	pool     *mpool
	headCh   chan struct{} // closed and replaced at each new head
	cache    *stateCache

	cancel   context.CancelFunc
	done     chan struct{}
	closed   bool
	closedCh chan struct{} // closed by Close, to wake waiters
}

var _ chain.Node = (*Devnet)(nil)

// Open opens the devnet in cfg.Dir, making genesis on first start, and
// starts block production.
func Open(ctx context.Context, cfg Config) (*Devnet, error) {
	if cfg.Dir == "" {
		return nil, errors.New("devnet: no state directory given")
	}
	if cfg.BlockTime == 0 {
		cfg.BlockTime = time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("devnet: creating %s: %w", cfg.Dir, err)
	}
	own, err := wallet.Open(filepath.Join(cfg.Dir, "keystore"))
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	st, err := openStore(ctx, filepath.Join(cfg.Dir, "chain.db"))
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	d := &Devnet{
		cfg: cfg, policy: cfg.Policy.withDefaults(), store: st, logf: cfg.Logf,
		pool: newMpool(), headCh: make(chan struct{}), cache: &stateCache{},
		closedCh: make(chan struct{}),
	}
	if d.logf == nil {
		d.logf = log.Printf
	}
	if cfg.Wallet != nil {
		d.wallets = []*wallet.Wallet{cfg.Wallet, own}
	} else {
		d.wallets = []*wallet.Wallet{own}
	}
	if err := d.load(ctx); err != nil {
		st.close()
		return nil, fmt.Errorf("devnet: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go d.run(runCtx)
	return d, nil
}

// load reads the chain from the store, or makes genesis.
func (d *Devnet) load(ctx context.Context) error {
	h, err := d.store.headHeight(ctx)
	if err != nil {
		return err
	}
	if h < 0 {
		return d.makeGenesis(ctx)
	}
	for key, dst := range map[string]*address.Address{"genesis": &d.genesis, "root": &d.root} {
		b, ok, err := d.store.getMeta(ctx, key)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("chain database has no %s address", key)
		}
		if *dst, err = address.NewFromBytes(b); err != nil {
			return fmt.Errorf("decoding %s address: %w", key, err)
		}
	}
	secret, ok, err := d.store.getMeta(ctx, "secret")
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("chain database has no API secret")
	}
	d.secret = secret
	snap, err := d.store.snapshot(ctx, h)
	if err != nil {
		return err
	}
	s, err := decodeState(snap)
	if err != nil {
		return err
	}
	bh, err := d.store.header(ctx, h)
	if err != nil {
		return err
	}
	ts, err := tipsetOf(bh)
	if err != nil {
		return err
	}
	rc, _, err := d.store.getMeta(ctx, "receipts")
	if err != nil {
		return err
	}
	if _, d.receipts, err = cid.CidFromBytes(rc); err != nil {
		return fmt.Errorf("decoding receipts root: %w", err)
	}
	d.st, d.snap, d.head = s, snap, ts
	// Pending messages are kept across restarts when still valid.
	pending, err := d.store.poolLoad(ctx)
	if err != nil {
		return err
	}
	for _, sm := range pending {
		if _, err := d.push(ctx, sm, false, uuid.Nil); err != nil {
			c, _ := sm.Cid()
			d.logf("devnet: dropping pending message %s after restart: %v", c, err)
			if c.Defined() {
				_ = d.store.poolRemove(ctx, c)
			}
		}
	}
	return nil
}

// makeGenesis creates the genesis and verified registry root keys, the
// genesis state and block 0.
func (d *Devnet) makeGenesis(ctx context.Context) error {
	gen, err := d.wallets[0].New(wallet.TypeSecp256k1)
	if err != nil {
		return fmt.Errorf("making the genesis key: %w", err)
	}
	own := d.wallets[len(d.wallets)-1]
	root, err := own.New(wallet.TypeSecp256k1)
	if err != nil {
		return fmt.Errorf("making the verified registry root key: %w", err)
	}
	d.genesis, d.root = gen, root
	d.secret = make([]byte, 32)
	if _, err := rand.Read(d.secret); err != nil {
		return fmt.Errorf("making the API secret: %w", err)
	}

	s := newState()
	s.NextID = firstGenesisAccountID
	_, g := s.newActor(codeAccount, gen)
	g.Balance = GenesisBalance
	rootID, r := s.newActor(codeAccount, root)
	r.Balance = rootBalance
	s.Verifreg.Root = rootID
	s.NextID = firstActorID

	snap, err := s.encode()
	if err != nil {
		return err
	}
	receipts := receiptsRoot(nil)
	bh := &chain.BlockHeader{
		Miner:                 idAddr(idSystem),
		Ticket:                &chain.Ticket{VRFProof: fakeProof("ticket", nil, 0, 32)},
		ElectionProof:         &chain.ElectionProof{WinCount: 1, VRFProof: fakeProof("election", nil, 0, 32)},
		BeaconEntries:         []chain.BeaconEntry{},
		Parents:               []cid.Cid{},
		ParentWeight:          big.Zero(),
		Height:                0,
		ParentStateRoot:       stateRoot(snap),
		ParentMessageReceipts: receipts,
		Messages:              messagesRoot(nil),
		BLSAggregate:          &crypto.Signature{Type: crypto.SigTypeBLS, Data: []byte{}},
		Timestamp:             uint64(time.Now().Unix()),
		BlockSig:              &crypto.Signature{Type: crypto.SigTypeBLS, Data: fakeProof("blocksig", nil, 0, 96)},
		ParentBaseFee:         big.NewInt(BaseFee),
	}
	ts, hdr, err := encodeBlock(bh)
	if err != nil {
		return err
	}
	err = d.store.writeBlock(ctx, &blockWrite{
		height: 0, cid: ts.Cids()[0], header: hdr, snapshot: snap,
		meta: map[string][]byte{"genesis": gen.Bytes(), "root": root.Bytes(), "secret": d.secret, "receipts": receipts.Bytes()},
	})
	if err != nil {
		return err
	}
	d.st, d.snap, d.head, d.receipts = s, snap, ts, receipts
	return nil
}

// fakeProof makes deterministic bytes standing for a VRF proof or a
// signature (the devnet has no elections).
func fakeProof(kind string, parent []byte, h abi.ChainEpoch, n int) []byte {
	out := make([]byte, 0, n)
	seed := append([]byte(kind), parent...)
	seed = fmt.Appendf(seed, "%d", h)
	for i := 0; len(out) < n; i++ {
		mh, _ := multihash.Sum(fmt.Appendf(append([]byte(nil), seed...), "/%d", i), multihash.BLAKE2B_MIN+31, 32)
		dec, _ := multihash.Decode(mh)
		out = append(out, dec.Digest...)
	}
	return out[:n]
}

// encodeBlock returns the one-block tipset of bh and the header's CBOR.
func encodeBlock(bh *chain.BlockHeader) (*chain.TipSet, []byte, error) {
	b, err := bh.Serialize()
	if err != nil {
		return nil, nil, err
	}
	c, err := bh.Cid()
	if err != nil {
		return nil, nil, fmt.Errorf("block %d CID: %w", bh.Height, err)
	}
	ts, err := chain.NewTipSet([]*chain.BlockHeader{bh}, []cid.Cid{c})
	if err != nil {
		return nil, nil, err
	}
	return ts, b, nil
}

// tipsetOf makes the tipset of a stored header.
func tipsetOf(bh *chain.BlockHeader) (*chain.TipSet, error) {
	c, err := bh.Cid()
	if err != nil {
		return nil, fmt.Errorf("block %d CID: %w", bh.Height, err)
	}
	return chain.NewTipSet([]*chain.BlockHeader{bh}, []cid.Cid{c})
}

// messagesRoot stands for the block's message list: blake2b-256 over the
// concatenated message CIDs (raw codec; Lotus builds a TxMeta of AMTs).
func messagesRoot(cids []cid.Cid) cid.Cid {
	var b bytes.Buffer
	for _, c := range cids {
		b.Write(c.Bytes())
	}
	return stateRoot(b.Bytes())
}

// receiptsRoot stands for a block's receipts the same way.
func receiptsRoot(rs []chain.MessageReceipt) cid.Cid {
	var b bytes.Buffer
	for _, r := range rs {
		fmt.Fprintf(&b, "%d:%d:%x;", r.ExitCode, r.GasUsed, r.Return)
	}
	return stateRoot(b.Bytes())
}

// run produces a block every BlockTime until Close.
func (d *Devnet) run(ctx context.Context) {
	defer close(d.done)
	if d.cfg.BlockTime < 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(d.cfg.BlockTime)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := d.Mine(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
				d.logf("devnet: producing a block: %v", err)
			}
		}
	}
}

// Close stops block production and closes the database.
func (d *Devnet) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.closedCh)
	d.mu.Unlock()
	d.cancel()
	<-d.done
	d.mineLock.Lock()
	defer d.mineLock.Unlock()
	return d.store.close()
}

// GenesisAddress returns the funded genesis account's key address.
func (d *Devnet) GenesisAddress() address.Address { return d.genesis }

// RootKeyAddress returns the verified registry root key's address.
func (d *Devnet) RootKeyAddress() address.Address { return d.root }

// Mine produces the next block now, including the pending messages that
// can execute, and returns it.
func (d *Devnet) Mine(ctx context.Context) (*chain.TipSet, error) {
	d.mineLock.Lock()
	defer d.mineLock.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	return d.mineLocked(ctx)
}

// MineUntil produces blocks until the head is at height h or above.
func (d *Devnet) MineUntil(ctx context.Context, h abi.ChainEpoch) (*chain.TipSet, error) {
	for {
		ts, err := d.ChainHead(ctx)
		if err != nil {
			return nil, err
		}
		if ts.Height() >= h {
			return ts, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := d.Mine(ctx); err != nil {
			return nil, err
		}
	}
}

// mineLocked makes a block; d.mu is held for writing.
func (d *Devnet) mineLocked(ctx context.Context) (*chain.TipSet, error) {
	parent := d.head
	h := parent.Height() + 1
	picked := d.pool.selectMessages(d.st)
	v := d.newVM(d.st)
	msgs := make([]executed, 0, len(picked))
	cids := make([]cid.Cid, 0, len(picked))
	rs := make([]chain.MessageReceipt, 0, len(picked))
	for _, p := range picked {
		r := v.apply(h, &p.smsg.Message)
		ucid, err := p.smsg.Message.Cid()
		if err != nil {
			return nil, d.rollback(fmt.Errorf("message CID: %w", err))
		}
		msgs = append(msgs, executed{smsg: p.smsg, cid: p.cid, ucid: ucid, sender: p.sender, receipt: r})
		cids = append(cids, p.cid)
		rs = append(rs, r)
	}
	changed := v.marketCron(h)
	changed = v.minerCron(h) || changed
	// Without messages or cron work the state is the parent's: skip
	// encoding it again.
	snap := d.snap
	if len(picked) > 0 || changed {
		var err error
		if snap, err = d.st.encode(); err != nil {
			return nil, d.rollback(err)
		}
	}
	pb := parent.Blocks()[0]
	bh := &chain.BlockHeader{
		Miner:                 idAddr(idSystem),
		Ticket:                &chain.Ticket{VRFProof: fakeProof("ticket", parent.Cids()[0].Bytes(), h, 32)},
		ElectionProof:         &chain.ElectionProof{WinCount: 1, VRFProof: fakeProof("election", parent.Cids()[0].Bytes(), h, 32)},
		BeaconEntries:         []chain.BeaconEntry{},
		Parents:               parent.Cids(),
		ParentWeight:          big.Add(pb.ParentWeight, big.NewInt(1)),
		Height:                h,
		ParentStateRoot:       stateRoot(d.snap),
		ParentMessageReceipts: d.receipts,
		Messages:              messagesRoot(cids),
		BLSAggregate:          &crypto.Signature{Type: crypto.SigTypeBLS, Data: []byte{}},
		Timestamp:             uint64(time.Now().Unix()),
		BlockSig:              &crypto.Signature{Type: crypto.SigTypeBLS, Data: fakeProof("blocksig", parent.Cids()[0].Bytes(), h, 96)},
		ParentBaseFee:         big.NewInt(BaseFee),
	}
	ts, hdr, err := encodeBlock(bh)
	if err != nil {
		return nil, d.rollback(err)
	}
	receipts := receiptsRoot(rs)
	// An unchanged state (an empty block without cron work) is not stored
	// again.
	stored := snap
	if bytes.Equal(snap, d.snap) {
		stored = nil
	}
	err = d.store.writeBlock(context.WithoutCancel(ctx), &blockWrite{
		height: h, cid: ts.Cids()[0], header: hdr, msgs: msgs, snapshot: stored,
		meta: map[string][]byte{"receipts": receipts.Bytes()},
	})
	if err != nil {
		return nil, d.rollback(err)
	}
	for _, p := range picked {
		d.pool.remove(p.sender, p.smsg.Message.Nonce)
	}
	for _, c := range d.pool.prune(d.st) {
		_ = d.store.poolRemove(context.WithoutCancel(ctx), c)
	}
	d.snap, d.head, d.receipts = snap, ts, receipts
	close(d.headCh)
	d.headCh = make(chan struct{})
	return ts, nil
}

// rollback restores the state from the last snapshot after a failed block.
func (d *Devnet) rollback(cause error) error {
	s, err := decodeState(d.snap)
	if err != nil {
		return fmt.Errorf("%w; restoring the state also failed: %v", cause, err)
	}
	d.st = s
	return cause
}

// newVM makes an executor over s.
func (d *Devnet) newVM(s *state) *vm {
	return &vm{st: s, policy: d.policy, verify: wallet.Verify, commD: piece.CommD}
}

// Policy returns the chain parameters in force.
func (d *Devnet) Policy() Policy { return d.policy }
