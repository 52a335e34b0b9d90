package devnet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/verifreg"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/network"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/wallet"
)

// NetworkVersion is the network version the devnet reports.
const NetworkVersion = network.Version21

// stateCache keeps the last decoded past state, so that a burst of queries
// at one tipset decodes it once.
type stateCache struct {
	mu     sync.Mutex
	height abi.ChainEpoch
	st     *state
}

// stateAt returns the state after the tipset tsk (the head when empty) and
// that tipset. The returned state must only be read; for the head the read
// lock is held until release is called.
func (d *Devnet) stateAt(ctx context.Context, tsk chain.TipSetKey) (st *state, ts *chain.TipSet, release func(), err error) {
	d.mu.RLock()
	if tsk.IsEmpty() || tsk == d.head.Key() {
		return d.st, d.head, d.mu.RUnlock, nil
	}
	d.mu.RUnlock()
	ts, err = d.tipsetByKey(ctx, tsk)
	if err != nil {
		return nil, nil, nil, err
	}
	d.cache.mu.Lock()
	defer d.cache.mu.Unlock()
	if d.cache.st == nil || d.cache.height != ts.Height() {
		snap, err := d.store.snapshot(ctx, ts.Height())
		if err != nil {
			return nil, nil, nil, err
		}
		s, err := decodeState(snap)
		if err != nil {
			return nil, nil, nil, err
		}
		d.cache.st, d.cache.height = s, ts.Height()
	}
	return d.cache.st, ts, func() {}, nil
}

// tipsetByKey loads a tipset by its key.
func (d *Devnet) tipsetByKey(ctx context.Context, tsk chain.TipSetKey) (*chain.TipSet, error) {
	cids := tsk.Cids()
	if len(cids) != 1 {
		return nil, fmt.Errorf("tipset %s not found (devnet tipsets have one block)", tsk)
	}
	h, ok, err := d.store.heightOf(ctx, cids[0])
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("tipset %s not found", tsk)
	}
	return d.tipsetAt(ctx, h)
}

// tipsetAt loads the tipset at height h.
func (d *Devnet) tipsetAt(ctx context.Context, h abi.ChainEpoch) (*chain.TipSet, error) {
	bh, err := d.store.header(ctx, h)
	if err != nil {
		return nil, err
	}
	return tipsetOf(bh)
}

// Version reports the devnet's version and block delay.
func (d *Devnet) Version(ctx context.Context) (chain.APIVersion, error) {
	delay := uint64((d.cfg.BlockTime + time.Second - 1) / time.Second)
	if delay == 0 {
		delay = 1
	}
	return chain.APIVersion{Version: "ferry-devnet", APIVersion: 2<<16 | 3<<8, BlockDelay: delay}, nil
}

// ChainHead returns the newest tipset.
func (d *Devnet) ChainHead(ctx context.Context) (*chain.TipSet, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.head, nil
}

// ChainGetTipSetByHeight returns the tipset at height h.
func (d *Devnet) ChainGetTipSetByHeight(ctx context.Context, h abi.ChainEpoch, tsk chain.TipSetKey) (*chain.TipSet, error) {
	_, ts, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	release()
	if h > ts.Height() {
		return nil, fmt.Errorf("looking for tipset with height %d greater than start point %d", h, ts.Height())
	}
	if h < 0 {
		return nil, fmt.Errorf("negative height %d", h)
	}
	if h == ts.Height() {
		return ts, nil
	}
	return d.tipsetAt(ctx, h)
}

// StateNetworkVersion returns NetworkVersion.
func (d *Devnet) StateNetworkVersion(ctx context.Context, tsk chain.TipSetKey) (network.Version, error) {
	return NetworkVersion, nil
}

// StateLookupID resolves an address to its ID address.
func (d *Devnet) StateLookupID(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (address.Address, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return address.Undef, err
	}
	defer release()
	id, ok := st.lookupID(addr)
	if !ok {
		return address.Undef, fmt.Errorf("resolution lookup failed (%s): actor not found", addr)
	}
	return idAddr(id), nil
}

// StateAccountKey resolves an account to its key address.
func (d *Devnet) StateAccountKey(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (address.Address, error) {
	if addr.Protocol() == address.SECP256K1 || addr.Protocol() == address.BLS {
		return addr, nil
	}
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return address.Undef, err
	}
	defer release()
	_, a, ok := st.actor(addr)
	if !ok {
		return address.Undef, fmt.Errorf("resolving %s: actor not found", addr)
	}
	if a.Code != codeAccount {
		return address.Undef, fmt.Errorf("resolving %s: %s actor has no key address", addr, a.Code)
	}
	return a.Address, nil
}

// StateMinerInfo returns a miner's info.
func (d *Devnet) StateMinerInfo(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (chain.MinerInfo, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return chain.MinerInfo{}, err
	}
	defer release()
	m, err := minerAt(st, maddr)
	if err != nil {
		return chain.MinerInfo{}, err
	}
	info := chain.MinerInfo{
		Owner: idAddr(m.Owner), Worker: idAddr(m.Worker), NewWorker: address.Undef,
		ControlAddresses: []address.Address{}, WorkerChangeEpoch: -1,
		Multiaddrs:          make([]abi.Multiaddrs, 0, len(m.Multiaddrs)),
		WindowPoStProofType: m.WindowPoStProof, SectorSize: m.SectorSize,
		ConsensusFaultElapsed: -1, Beneficiary: idAddr(m.Owner),
		BeneficiaryTerm: &chain.BeneficiaryTerm{Quota: big.Zero(), UsedQuota: big.Zero(), Expiration: 0},
	}
	if n, err := builtin.PoStProofWindowPoStPartitionSectors(m.WindowPoStProof); err == nil {
		info.WindowPoStPartitionSectors = n
	}
	for _, c := range m.Control {
		info.ControlAddresses = append(info.ControlAddresses, idAddr(c))
	}
	for _, ma := range m.Multiaddrs {
		info.Multiaddrs = append(info.Multiaddrs, append(abi.Multiaddrs(nil), ma...))
	}
	if len(m.PeerID) > 0 {
		if pid, err := peer.IDFromBytes(m.PeerID); err == nil {
			info.PeerId = &pid
		}
	}
	return info, nil
}

// minerAt returns the state of the miner at maddr.
func minerAt(st *state, maddr address.Address) (*minerState, error) {
	_, a, ok := st.actor(maddr)
	if !ok {
		return nil, fmt.Errorf("miner %s: actor not found", maddr)
	}
	if a.Miner == nil {
		return nil, fmt.Errorf("%s is a %s actor, not a miner", maddr, a.Code)
	}
	return a.Miner, nil
}

// StateMarketBalance returns an address' market escrow and locked funds.
func (d *Devnet) StateMarketBalance(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (chain.MarketBalance, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return chain.MarketBalance{}, err
	}
	defer release()
	out := chain.MarketBalance{Escrow: big.Zero(), Locked: big.Zero()}
	if id, ok := st.lookupID(addr); ok {
		if e, ok := st.Market.Escrow[id]; ok {
			out.Escrow, out.Locked = e.Balance, e.Locked
		}
	}
	return out, nil
}

// StateMarketStorageDeal returns a published deal.
func (d *Devnet) StateMarketStorageDeal(ctx context.Context, dealID abi.DealID, tsk chain.TipSetKey) (*chain.MarketDeal, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	ds, ok := st.Market.Deals[dealID]
	if !ok {
		return nil, fmt.Errorf("deal %d not found", dealID)
	}
	return marketDeal(ds), nil
}

// StateDealProviderCollateralBounds returns ProviderCollateralBounds(size).
func (d *Devnet) StateDealProviderCollateralBounds(ctx context.Context, size abi.PaddedPieceSize, verified bool, tsk chain.TipSetKey) (chain.DealCollateralBounds, error) {
	if err := size.Validate(); err != nil {
		return chain.DealCollateralBounds{}, fmt.Errorf("piece size: %w", err)
	}
	min, max := ProviderCollateralBounds(size)
	return chain.DealCollateralBounds{Min: min, Max: max}, nil
}

// StateVerifiedClientStatus returns an address' DataCap in bytes (its
// DataCap tokens / 10^18), or nil when it holds none.
func (d *Devnet) StateVerifiedClientStatus(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (*abi.StoragePower, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	id, ok := st.lookupID(addr)
	if !ok {
		return nil, nil
	}
	bal, ok := st.Datacap.Balances[id]
	if !ok {
		return nil, nil
	}
	out := tokensToBytes(bal)
	return &out, nil
}

// StateSectorPreCommitInfo returns a pre-committed sector, or nil.
func (d *Devnet) StateSectorPreCommitInfo(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk chain.TipSetKey) (*chain.SectorPreCommitOnChainInfo, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	m, err := minerAt(st, maddr)
	if err != nil {
		return nil, err
	}
	pc, ok := m.PreCommits[n]
	if !ok {
		return nil, nil
	}
	out := *pc
	out.Info.DealIDs = append([]abi.DealID(nil), pc.Info.DealIDs...)
	return &out, nil
}

// StateSectorGetInfo returns a proven sector, or nil.
func (d *Devnet) StateSectorGetInfo(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk chain.TipSetKey) (*chain.SectorOnChainInfo, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	m, err := minerAt(st, maddr)
	if err != nil {
		return nil, err
	}
	rec, ok := m.Sectors[n]
	if !ok {
		return nil, nil
	}
	out := rec.Info
	out.DeprecatedDealIDs = append([]abi.DealID(nil), rec.DealIDs...)
	return &out, nil
}

// StateSearchMsg looks an executed message up without waiting. The lookup
// reports the tipset that included the message (whose state has its
// effects). With allowReplaced, a pool message replaced by another with the
// same sender and nonce is found as its replacement.
func (d *Devnet) StateSearchMsg(ctx context.Context, from chain.TipSetKey, msg cid.Cid, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error) {
	var top abi.ChainEpoch
	if from.IsEmpty() {
		d.mu.RLock()
		top = d.head.Height()
		d.mu.RUnlock()
	} else {
		ts, err := d.tipsetByKey(ctx, from)
		if err != nil {
			return nil, err
		}
		top = ts.Height()
	}
	f, err := d.store.findMessage(ctx, msg)
	if err != nil {
		return nil, err
	}
	if f == nil && allowReplaced {
		if f, err = d.store.findReplacement(ctx, msg); err != nil {
			return nil, err
		}
	}
	if f == nil {
		return nil, nil
	}
	if f.height > top || (limit >= 0 && f.height < top-limit) {
		return nil, nil
	}
	ts, err := d.tipsetAt(ctx, f.height)
	if err != nil {
		return nil, err
	}
	// Message is the CID that was executed: the one asked for, or the
	// message that replaced it.
	return &chain.MsgLookup{Message: f.cid, Receipt: f.receipt, TipSet: ts.Key(), Height: f.height}, nil
}

// StateWaitMsg waits until the message is executed and confidence more
// tipsets are on top of the one that included it.
func (d *Devnet) StateWaitMsg(ctx context.Context, msg cid.Cid, confidence uint64, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error) {
	for {
		d.mu.RLock()
		head, ch := d.head.Height(), d.headCh
		d.mu.RUnlock()
		l, err := d.StateSearchMsg(ctx, chain.EmptyTSK, msg, -1, allowReplaced)
		if err != nil {
			return nil, err
		}
		if l != nil && head >= l.Height+abi.ChainEpoch(confidence) {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for message %s: %w", msg, ctx.Err())
		case <-d.closedCh:
			return nil, fmt.Errorf("waiting for message %s: %w", msg, ErrClosed)
		case <-ch:
		}
	}
}

// WalletBalance returns the balance of addr (zero when it has no actor).
func (d *Devnet) WalletBalance(ctx context.Context, addr address.Address) (big.Int, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if _, a, ok := d.st.actor(addr); ok {
		return big.Add(a.Balance, big.Zero()), nil
	}
	return big.Zero(), nil
}

// keyFor resolves addr to the key address the node holds a key for.
func (d *Devnet) keyFor(addr address.Address) (address.Address, *wallet.Wallet, error) {
	key := addr
	if addr.Protocol() == address.ID {
		d.mu.RLock()
		_, a, ok := d.st.actor(addr)
		d.mu.RUnlock()
		if !ok || a.Code != codeAccount {
			return address.Undef, nil, fmt.Errorf("%s is not an account", addr)
		}
		key = a.Address
	}
	for _, w := range d.wallets {
		if ok, err := w.Has(key); err != nil {
			return address.Undef, nil, err
		} else if ok {
			return key, w, nil
		}
	}
	return address.Undef, nil, fmt.Errorf("the node does not hold the key of %s: %w", addr, wallet.ErrNoKey)
}

// WalletSign signs data with a key the node holds.
func (d *Devnet) WalletSign(ctx context.Context, addr address.Address, data []byte) (*crypto.Signature, error) {
	key, w, err := d.keyFor(addr)
	if err != nil {
		return nil, err
	}
	return w.Sign(key, data)
}

// WalletHas reports whether the node holds the key of addr.
func (d *Devnet) WalletHas(ctx context.Context, addr address.Address) (bool, error) {
	_, _, err := d.keyFor(addr)
	if errors.Is(err, wallet.ErrNoKey) {
		return false, nil
	}
	return err == nil, err
}

// WalletDefaultAddress returns the genesis address.
func (d *Devnet) WalletDefaultAddress(ctx context.Context) (address.Address, error) {
	return d.genesis, nil
}

// MpoolGetNonce returns the next nonce of addr, counting pending messages.
func (d *Devnet) MpoolGetNonce(ctx context.Context, addr address.Address) (uint64, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	id, ok := d.st.lookupID(addr)
	if !ok {
		return 0, fmt.Errorf("getting nonce of %s: actor not found", addr)
	}
	return d.pool.nextNonce(d.st, id), nil
}

// MpoolPush checks a signed message and adds it to the pool.
func (d *Devnet) MpoolPush(ctx context.Context, smsg *chain.SignedMessage) (cid.Cid, error) {
	return d.push(ctx, smsg, true, uuid.Nil)
}

// push checks and pools a message; persist stores it for restarts, under
// msgUUID when MpoolPushMessage signed it for one.
func (d *Devnet) push(ctx context.Context, smsg *chain.SignedMessage, persist bool, msgUUID uuid.UUID) (cid.Cid, error) {
	if smsg == nil {
		return cid.Undef, errors.New("mpool push: no message")
	}
	c, err := smsg.Cid()
	if err != nil {
		return cid.Undef, fmt.Errorf("mpool push: %w", err)
	}
	mc, err := smsg.Message.Cid()
	if err != nil {
		return cid.Undef, fmt.Errorf("mpool push: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	id, err := d.pool.check(d.st, smsg, c, mc)
	if err != nil {
		return cid.Undef, fmt.Errorf("mpool push %s: %w", c, err)
	}
	if persist {
		d.pool.seq++
		if err := d.store.poolAdd(ctx, c, d.pool.seq, smsg, msgUUID); err != nil {
			return cid.Undef, fmt.Errorf("mpool push %s: %w", c, err)
		}
	}
	if old := d.pool.add(id, smsg, c); old != nil && !old.cid.Equals(c) {
		if err := d.store.poolReplaced(ctx, old.cid, id, smsg.Message.Nonce, old.smsg); err != nil {
			d.logf("devnet: %v", err)
		}
	}
	return c, nil
}

// MpoolPushMessage fills nonce and gas, signs with a key the node holds and
// pushes the message. As in Lotus, a spec with a MsgUuid names the message:
// a second call with the same MsgUuid signs nothing and returns the message
// the first call signed (even when the pool has dropped it since).
func (d *Devnet) MpoolPushMessage(ctx context.Context, msg *chain.Message, spec *chain.MessageSendSpec) (*chain.SignedMessage, error) {
	if msg == nil {
		return nil, errors.New("mpool push message: no message")
	}
	if msg.Nonce != 0 {
		return nil, fmt.Errorf("mpool push message: expected nonce 0, got %d (the node assigns nonces)", msg.Nonce)
	}
	var msgUUID uuid.UUID
	if spec != nil {
		msgUUID = spec.MsgUuid
	}
	// Nonce assignment and push must not interleave with another push, nor
	// two pushes of one MsgUuid.
	d.pushMu.Lock()
	defer d.pushMu.Unlock()
	if msgUUID != uuid.Nil {
		sm, err := d.store.signedAs(ctx, msgUUID)
		if err != nil {
			return nil, fmt.Errorf("mpool push message: %w", err)
		}
		if sm != nil {
			return sm, nil
		}
	}
	key, w, err := d.keyFor(msg.From)
	if err != nil {
		return nil, fmt.Errorf("mpool push message: %w", err)
	}
	m, err := d.GasEstimateMessageGas(ctx, msg, spec, chain.EmptyTSK)
	if err != nil {
		return nil, fmt.Errorf("mpool push message: %w", err)
	}
	if m.Nonce, err = d.MpoolGetNonce(ctx, m.From); err != nil {
		return nil, fmt.Errorf("mpool push message: %w", err)
	}
	sm, err := chain.SignMessage(m, func(b []byte) (*crypto.Signature, error) { return w.Sign(key, b) })
	if err != nil {
		return nil, fmt.Errorf("mpool push message: %w", err)
	}
	if _, err := d.push(ctx, sm, true, msgUUID); err != nil {
		return nil, err
	}
	return sm, nil
}

// Default gas pricing of GasEstimateMessageGas.
const (
	defaultGasPremium = 1_000
	feeCapBaseFactor  = 4
	gasOverestimation = 1.25
)

// GasEstimateMessageGas fills GasLimit (the devnet's fixed gas use of the
// message × 1.25), GasPremium and GasFeeCap (4 × base fee + premium), capped
// by spec.MaxFee.
func (d *Devnet) GasEstimateMessageGas(ctx context.Context, msg *chain.Message, spec *chain.MessageSendSpec, tsk chain.TipSetKey) (*chain.Message, error) {
	if msg == nil {
		return nil, errors.New("gas estimate: no message")
	}
	m := *msg
	if m.Value.Int == nil {
		m.Value = big.Zero()
	}
	d.mu.RLock()
	ok := methodExists(d.st, m.To, m.Method)
	d.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("gas estimate: actor %s has no method %d", m.To, m.Method)
	}
	if m.GasLimit == 0 {
		m.GasLimit = int64(float64(gasUsed(&m)) * gasOverestimation)
	}
	if m.GasPremium.Int == nil || m.GasPremium.IsZero() {
		m.GasPremium = big.NewInt(defaultGasPremium)
	}
	if m.GasFeeCap.Int == nil || m.GasFeeCap.IsZero() {
		m.GasFeeCap = big.Add(big.NewInt(feeCapBaseFactor*BaseFee), m.GasPremium)
	}
	if spec != nil && spec.MaxFee.Int != nil && !spec.MaxFee.IsZero() {
		if maxCap := big.Div(spec.MaxFee, big.NewInt(m.GasLimit)); m.GasFeeCap.GreaterThan(maxCap) {
			m.GasFeeCap = maxCap
			m.GasPremium = big.Min(m.GasPremium, maxCap)
		}
	}
	return &m, nil
}

// Send sends amount from an address the node holds a key for to another and
// returns the signed message's CID (not waiting for it).
func (d *Devnet) Send(ctx context.Context, from, to address.Address, amount abi.TokenAmount) (cid.Cid, error) {
	sm, err := d.MpoolPushMessage(ctx, &chain.Message{From: from, To: to, Value: amount, Method: builtin.MethodSend}, nil)
	if err != nil {
		return cid.Undef, err
	}
	return sm.Cid()
}

// GrantDataCap makes addr a verified client with amount more DataCap: a
// real AddVerifiedClient message from the verified registry root key. It
// waits for the message and returns an error if it failed.
func (d *Devnet) GrantDataCap(ctx context.Context, addr address.Address, amount abi.StoragePower) error {
	p := &verifreg.AddVerifiedClientParams{Address: addr, Allowance: amount}
	if _, err := d.callAndWait(ctx, d.root, idAddr(idVerifreg), builtin.MethodsVerifiedRegistry.AddVerifiedClient, big.Zero(), p); err != nil {
		return fmt.Errorf("granting DataCap to %s: %w", addr, err)
	}
	return nil
}
