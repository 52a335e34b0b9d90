package devnet

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-bitfield"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	miner12 "github.com/filecoin-project/go-state-types/builtin/v12/miner"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/dline"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/filecoin-project/go-state-types/network"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/wallet"
)

// NetworkName is the name StateNetworkName reports. It names no public
// network, so no tool mistakes the devnet for one.
const NetworkName chain.NetworkName = "ferry-devnet"

// CirculatingSupply is the fixed circulating supply the devnet's market
// math assumes (500,000,000 FIL); StateCirculatingSupply reports it.
var CirculatingSupply = big.Mul(big.NewInt(500_000_000), big.NewInt(fil))

var _ chain.FullNode = (*Devnet)(nil)

// codeActorsVersion is the actors version in the devnet's code CIDs.
const codeActorsVersion = 7

// actorNames maps the devnet's actor kinds to the builtin actor names of
// Filecoin's manifests (the burnt funds actor is an account on Filecoin).
var actorNames = map[string]string{
	codeSystem: "system", codeReward: "reward", codeCron: "cron", codePower: "storagepower",
	codeMarket: "storagemarket", codeVerifreg: "verifiedregistry", codeDatacap: "datacap", codeBurnt: "account",
	codeAccount: "account", codeMiner: "storageminer",
}

// CodeCID returns the code CID the devnet gives a builtin actor name
// ("account", "storageminer", …): the legacy form of the actors before
// v8, a raw CID whose identity multihash holds "fil/7/<name>". Lotus tools
// recognise these and name them. The devnet runs no actor bytecode, so it
// does not use the code CIDs of a real network's manifest.
func CodeCID(name string) cid.Cid {
	mh, err := multihash.Sum([]byte(fmt.Sprintf("fil/%d/%s", codeActorsVersion, name)), multihash.IDENTITY, -1)
	if err != nil {
		panic(err) // the identity hash of a short string cannot fail
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// ChainGetGenesis returns the tipset at height 0.
func (d *Devnet) ChainGetGenesis(ctx context.Context) (*chain.TipSet, error) {
	return d.tipsetAt(ctx, 0)
}

// ChainGetTipSet returns the tipset with key tsk (the head when empty).
func (d *Devnet) ChainGetTipSet(ctx context.Context, tsk chain.TipSetKey) (*chain.TipSet, error) {
	if tsk.IsEmpty() {
		return d.ChainHead(ctx)
	}
	return d.tipsetByKey(ctx, tsk)
}

// blockHeight returns the height of the block with CID blk.
func (d *Devnet) blockHeight(ctx context.Context, blk cid.Cid) (abi.ChainEpoch, error) {
	h, ok, err := d.store.heightOf(ctx, blk)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("block %s not found", blk)
	}
	return h, nil
}

// ChainGetBlock returns a block header by its CID.
func (d *Devnet) ChainGetBlock(ctx context.Context, blk cid.Cid) (*chain.BlockHeader, error) {
	h, err := d.blockHeight(ctx, blk)
	if err != nil {
		return nil, err
	}
	return d.store.header(ctx, h)
}

// ChainGetMessage returns the unsigned message with CID mc, signed or
// unsigned CID, executed or still in the pool.
func (d *Devnet) ChainGetMessage(ctx context.Context, mc cid.Cid) (*chain.Message, error) {
	sm, err := d.store.message(ctx, mc)
	if err != nil {
		return nil, err
	}
	if sm == nil {
		sm = d.pooledMessage(mc)
	}
	if sm == nil {
		return nil, fmt.Errorf("message %s not found", mc)
	}
	return &sm.Message, nil
}

// pooledMessage finds a pending message by its signed or unsigned CID.
func (d *Devnet) pooledMessage(mc cid.Cid) *chain.SignedMessage {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, byNonce := range d.pool.bySender {
		for _, p := range byNonce {
			if p.cid.Equals(mc) {
				return p.smsg
			}
			if uc, err := p.smsg.Message.Cid(); err == nil && uc.Equals(mc) {
				return p.smsg
			}
		}
	}
	return nil
}

// ChainGetBlockMessages returns the messages the block includes, BLS-signed
// ones first as Lotus lists them.
func (d *Devnet) ChainGetBlockMessages(ctx context.Context, blk cid.Cid) (*chain.BlockMessages, error) {
	h, err := d.blockHeight(ctx, blk)
	if err != nil {
		return nil, err
	}
	ms, err := d.store.blockMessages(ctx, h)
	if err != nil {
		return nil, err
	}
	out := &chain.BlockMessages{BlsMessages: []*chain.Message{}, SecpkMessages: []*chain.SignedMessage{}, Cids: []cid.Cid{}}
	var secpCids []cid.Cid
	for _, m := range ms {
		if m.smsg.Signature.Type == crypto.SigTypeBLS {
			out.BlsMessages = append(out.BlsMessages, &m.smsg.Message)
			out.Cids = append(out.Cids, m.cid)
		} else {
			out.SecpkMessages = append(out.SecpkMessages, m.smsg)
			secpCids = append(secpCids, m.cid)
		}
	}
	out.Cids = append(out.Cids, secpCids...)
	return out, nil
}

// parentMessages returns the messages executed by the parent of blk, in
// execution order (the devnet executes a block's messages in that block,
// so these are the parent block's own messages).
func (d *Devnet) parentMessages(ctx context.Context, blk cid.Cid) ([]storedMessage, error) {
	h, err := d.blockHeight(ctx, blk)
	if err != nil {
		return nil, err
	}
	if h == 0 {
		return nil, nil
	}
	return d.store.blockMessages(ctx, h-1)
}

// ChainGetParentMessages returns the messages whose receipts blk's
// ParentMessageReceipts commits to.
func (d *Devnet) ChainGetParentMessages(ctx context.Context, blk cid.Cid) ([]chain.APIMessage, error) {
	ms, err := d.parentMessages(ctx, blk)
	if err != nil {
		return nil, err
	}
	out := make([]chain.APIMessage, 0, len(ms))
	for _, m := range ms {
		out = append(out, chain.APIMessage{Cid: m.cid, Message: &m.smsg.Message})
	}
	return out, nil
}

// ChainGetParentReceipts returns the receipts of ChainGetParentMessages, in
// the same order.
func (d *Devnet) ChainGetParentReceipts(ctx context.Context, blk cid.Cid) ([]*chain.MessageReceipt, error) {
	ms, err := d.parentMessages(ctx, blk)
	if err != nil {
		return nil, err
	}
	out := make([]*chain.MessageReceipt, 0, len(ms))
	for i := range ms {
		out = append(out, &ms[i].receipt)
	}
	return out, nil
}

// notifyBuffer is how many batches of head changes ChainNotify buffers.
const notifyBuffer = 16

// ChainNotify sends the head as a "current" change, then an "apply" change
// for every new tipset, in height order, until ctx ends or the devnet is
// closed; then the channel is closed.
func (d *Devnet) ChainNotify(ctx context.Context) (<-chan []*chain.HeadChange, error) {
	d.mu.RLock()
	head, wake := d.head, d.headCh
	d.mu.RUnlock()
	out := make(chan []*chain.HeadChange, notifyBuffer)
	out <- []*chain.HeadChange{{Type: chain.HCCurrent, Val: head}}
	go func() {
		defer close(out)
		last := head.Height()
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.closedCh:
				return
			case <-wake:
			}
			d.mu.RLock()
			head, wake = d.head, d.headCh
			d.mu.RUnlock()
			var changes []*chain.HeadChange
			for h := last + 1; h < head.Height(); h++ {
				ts, err := d.tipsetAt(ctx, h)
				if err != nil {
					return // closed store or cancelled: the subscriber sees the channel close
				}
				changes = append(changes, &chain.HeadChange{Type: chain.HCApply, Val: ts})
			}
			changes = append(changes, &chain.HeadChange{Type: chain.HCApply, Val: head})
			last = head.Height()
			select {
			case out <- changes:
			case <-ctx.Done():
				return
			case <-d.closedCh:
				return
			}
		}
	}()
	return out, nil
}

// StateNetworkName returns NetworkName.
func (d *Devnet) StateNetworkName(ctx context.Context) (chain.NetworkName, error) {
	return NetworkName, nil
}

// StateGetActor returns an actor's code CID (see CodeCID), head, nonce and
// balance. The head is a CID of the actor's devnet state (blake2b-256 of
// its JSON record, raw codec), which changes when that state changes; it is
// not the root of an IPLD state object.
func (d *Devnet) StateGetActor(ctx context.Context, actor address.Address, tsk chain.TipSetKey) (*chain.Actor, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	id, a, ok := st.actor(actor)
	if !ok {
		return nil, fmt.Errorf("load state tree: getting actor %s: actor not found", actor)
	}
	rec := struct {
		Actor    *actorState
		Market   *marketState   `json:",omitempty"`
		Verifreg *verifregState `json:",omitempty"`
		Datacap  *datacapState  `json:",omitempty"`
	}{Actor: a}
	switch id {
	case idMarket:
		rec.Market = &st.Market
	case idVerifreg:
		rec.Verifreg = &st.Verifreg
	case idDatacap:
		rec.Datacap = &st.Datacap
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encoding actor %s: %w", actor, err)
	}
	return &chain.Actor{
		Code: CodeCID(actorNames[a.Code]), Head: stateRoot(b), Nonce: a.Nonce,
		Balance: big.Add(a.Balance, big.Zero()),
	}, nil
}

// StateActorCodeCIDs returns the code CIDs (see CodeCID) of the actors the
// devnet has, for the devnet's network version only.
func (d *Devnet) StateActorCodeCIDs(ctx context.Context, nv network.Version) (map[string]cid.Cid, error) {
	if nv != NetworkVersion {
		return nil, fmt.Errorf("actor code CIDs for network version %d: the devnet runs only network version %d", nv, NetworkVersion)
	}
	out := map[string]cid.Cid{}
	for _, name := range actorNames {
		out[name] = CodeCID(name)
	}
	return out, nil
}

// StateListMiners returns the ID addresses of the miner actors, in ID
// order.
func (d *Devnet) StateListMiners(ctx context.Context, tsk chain.TipSetKey) ([]address.Address, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	out := []address.Address{}
	for _, id := range st.sortedActorIDs() {
		if st.Actors[id].Miner != nil {
			out = append(out, idAddr(id))
		}
	}
	return out, nil
}

// minerPower is a miner's raw power at h: the sizes of its proven, not yet
// expired sectors. The devnet counts no quality multiplier, so quality
// adjusted power equals raw power.
func minerPower(m *minerState, h abi.ChainEpoch) abi.StoragePower {
	n := int64(0)
	for _, s := range m.Sectors {
		if s.Info.Expiration > h {
			n++
		}
	}
	return big.Mul(big.NewInt(n), big.NewInt(int64(m.SectorSize)))
}

// StateMinerPower returns a miner's power and the network's total (see
// minerPower); HasMinPower compares the miner's power with Filecoin's
// consensus minimum for its proof type.
func (d *Devnet) StateMinerPower(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (*chain.MinerPower, error) {
	st, ts, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	m, err := minerAt(st, maddr)
	if err != nil {
		return nil, err
	}
	own := minerPower(m, ts.Height())
	total := big.Zero()
	for _, a := range st.Actors {
		if a.Miner != nil {
			total = big.Add(total, minerPower(a.Miner, ts.Height()))
		}
	}
	out := &chain.MinerPower{
		MinerPower: chain.PowerClaim{RawBytePower: own, QualityAdjPower: own},
		TotalPower: chain.PowerClaim{RawBytePower: total, QualityAdjPower: total},
	}
	if min, err := builtin.ConsensusMinerMinPower(m.WindowPoStProof); err == nil {
		out.HasMinPower = own.GreaterThanEqual(min)
	}
	return out, nil
}

// StateMinerAvailableBalance returns the miner actor's balance: the devnet
// locks no pledge, pre-commit deposits or vesting rewards.
func (d *Devnet) StateMinerAvailableBalance(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (big.Int, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return big.Int{}, err
	}
	defer release()
	_, a, ok := st.actor(maddr)
	if !ok {
		return big.Int{}, fmt.Errorf("miner %s: actor not found", maddr)
	}
	if a.Miner == nil {
		return big.Int{}, fmt.Errorf("%s is a %s actor, not a miner", maddr, a.Code)
	}
	return big.Add(a.Balance, big.Zero()), nil
}

// minerSectors returns the miner's proven sectors in number order that
// keep passes.
func (d *Devnet) minerSectors(ctx context.Context, maddr address.Address, tsk chain.TipSetKey, keep func(abi.ChainEpoch, *sectorRecord) (bool, error)) ([]*chain.SectorOnChainInfo, error) {
	st, ts, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	m, err := minerAt(st, maddr)
	if err != nil {
		return nil, err
	}
	nums := make([]abi.SectorNumber, 0, len(m.Sectors))
	for n := range m.Sectors {
		nums = append(nums, n)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	out := []*chain.SectorOnChainInfo{}
	for _, n := range nums {
		rec := m.Sectors[n]
		if ok, err := keep(ts.Height(), rec); err != nil {
			return nil, err
		} else if !ok {
			continue
		}
		info := rec.Info
		info.DeprecatedDealIDs = append([]abi.DealID(nil), rec.DealIDs...)
		out = append(out, &info)
	}
	return out, nil
}

// StateMinerSectors returns the miner's proven sectors, only those in
// sectors when it is not nil.
func (d *Devnet) StateMinerSectors(ctx context.Context, maddr address.Address, sectors *bitfield.BitField, tsk chain.TipSetKey) ([]*chain.SectorOnChainInfo, error) {
	return d.minerSectors(ctx, maddr, tsk, func(_ abi.ChainEpoch, r *sectorRecord) (bool, error) {
		if sectors == nil {
			return true, nil
		}
		ok, err := sectors.IsSet(uint64(r.Info.SectorNumber))
		if err != nil {
			return false, fmt.Errorf("reading sector bitfield: %w", err)
		}
		return ok, nil
	})
}

// StateMinerActiveSectors returns the miner's sectors that have not
// expired (the devnet has no faults or terminations).
func (d *Devnet) StateMinerActiveSectors(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) ([]*chain.SectorOnChainInfo, error) {
	return d.minerSectors(ctx, maddr, tsk, func(h abi.ChainEpoch, r *sectorRecord) (bool, error) {
		return r.Info.Expiration > h, nil
	})
}

// StateMinerProvingDeadline returns the miner's current deadline with
// Filecoin's WindowPoSt parameters (48 deadlines of 60 epochs in a
// 2,880-epoch proving period). The devnet checks no WindowPoSt, so the
// deadlines only inform; a miner's proving period starts at an offset of
// its actor ID modulo the proving period.
func (d *Devnet) StateMinerProvingDeadline(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (*dline.Info, error) {
	st, ts, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	id, a, ok := st.actor(maddr)
	if !ok {
		return nil, fmt.Errorf("miner %s: actor not found", maddr)
	}
	if a.Miner == nil {
		return nil, fmt.Errorf("%s is a %s actor, not a miner", maddr, a.Code)
	}
	period := miner12.WPoStProvingPeriod
	offset := abi.ChainEpoch(id % uint64(period))
	h := ts.Height()
	since := (h - offset) % period
	if since < 0 {
		since += period
	}
	start := h - since
	idx := uint64(since / miner12.WPoStChallengeWindow)
	return dline.NewInfo(start, idx, h, miner12.WPoStPeriodDeadlines, period,
		miner12.WPoStChallengeWindow, miner12.WPoStChallengeLookback, miner12.FaultDeclarationCutoff).NextNotElapsed(), nil
}

// marketDeal is the MarketDeal form of a published deal.
func marketDeal(ds *dealState) *chain.MarketDeal {
	md := &chain.MarketDeal{Proposal: ds.Proposal, State: chain.MarketDealState{
		SectorStartEpoch: ds.SectorStartEpoch, LastUpdatedEpoch: ds.LastUpdatedEpoch, SlashEpoch: ds.SlashEpoch,
	}}
	if ds.SectorStartEpoch >= 0 {
		md.State.SectorNumber = ds.SectorNumber
	}
	return md
}

// StateMarketDeals returns every published deal keyed by its decimal ID.
func (d *Devnet) StateMarketDeals(ctx context.Context, tsk chain.TipSetKey) (map[string]*chain.MarketDeal, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	out := make(map[string]*chain.MarketDeal, len(st.Market.Deals))
	for id, ds := range st.Market.Deals {
		out[strconv.FormatUint(uint64(id), 10)] = marketDeal(ds)
	}
	return out, nil
}

// StateCirculatingSupply returns CirculatingSupply, the figure the
// devnet's collateral bounds are computed from.
func (d *Devnet) StateCirculatingSupply(ctx context.Context, tsk chain.TipSetKey) (abi.TokenAmount, error) {
	if !tsk.IsEmpty() {
		if _, err := d.tipsetByKey(ctx, tsk); err != nil {
			return big.Int{}, err
		}
	}
	return big.Add(CirculatingSupply, big.Zero()), nil
}

// MpoolPending returns the pending messages, by sender ID and nonce.
func (d *Devnet) MpoolPending(ctx context.Context, tsk chain.TipSetKey) ([]*chain.SignedMessage, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var ps []*pooled
	for _, byNonce := range d.pool.bySender {
		for _, p := range byNonce {
			ps = append(ps, p)
		}
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].sender != ps[j].sender {
			return ps[i].sender < ps[j].sender
		}
		return ps[i].smsg.Message.Nonce < ps[j].smsg.Message.Nonce
	})
	out := make([]*chain.SignedMessage, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.smsg)
	}
	return out, nil
}

// GasEstimateFeeCap returns 4 × the devnet's constant base fee plus the
// message's premium (the default premium when it has none), as
// GasEstimateMessageGas fills it.
func (d *Devnet) GasEstimateFeeCap(ctx context.Context, msg *chain.Message, maxqueueblks int64, tsk chain.TipSetKey) (big.Int, error) {
	if msg == nil {
		return big.Int{}, errors.New("gas estimate fee cap: no message")
	}
	premium := msg.GasPremium
	if premium.Int == nil || premium.IsZero() {
		premium = big.NewInt(defaultGasPremium)
	}
	return big.Add(big.NewInt(feeCapBaseFactor*BaseFee), premium), nil
}

// GasEstimateGasPremium returns the devnet's default premium: the base fee
// is constant and blocks are never full, so any premium gets included.
func (d *Devnet) GasEstimateGasPremium(ctx context.Context, nblocksincl uint64, sender address.Address, gaslimit int64, tsk chain.TipSetKey) (big.Int, error) {
	return big.NewInt(defaultGasPremium), nil
}

// GasEstimateGasLimit returns the gas the message uses on the devnet
// (without GasEstimateMessageGas' 25% margin, as in Lotus).
func (d *Devnet) GasEstimateGasLimit(ctx context.Context, msg *chain.Message, tsk chain.TipSetKey) (int64, error) {
	if msg == nil {
		return 0, errors.New("gas estimate gas limit: no message")
	}
	d.mu.RLock()
	ok := methodExists(d.st, msg.To, msg.Method)
	d.mu.RUnlock()
	if !ok {
		return 0, fmt.Errorf("gas estimate gas limit: actor %s has no method %d", msg.To, msg.Method)
	}
	return gasUsed(msg), nil
}

// WalletList returns the addresses of the keys the node holds: the node
// wallet's, then the devnet keystore's.
func (d *Devnet) WalletList(ctx context.Context) ([]address.Address, error) {
	seen := map[address.Address]bool{}
	out := []address.Address{}
	for _, w := range d.wallets {
		as, err := w.List()
		if err != nil {
			return nil, fmt.Errorf("listing wallet keys: %w", err)
		}
		for _, a := range as {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out, nil
}

// WalletNew makes a key of type typ ("secp256k1" or "bls") in the node
// wallet and returns its address.
func (d *Devnet) WalletNew(ctx context.Context, typ chain.KeyType) (address.Address, error) {
	switch typ {
	case wallet.TypeSecp256k1, wallet.TypeBLS:
	default:
		return address.Undef, fmt.Errorf("wallet new: unknown key type %q (want %q or %q)", typ, wallet.TypeSecp256k1, wallet.TypeBLS)
	}
	a, err := d.wallets[0].New(string(typ))
	if err != nil {
		return address.Undef, fmt.Errorf("wallet new: %w", err)
	}
	return a, nil
}

// storedMessage is an executed message with its receipt.
type storedMessage struct {
	smsg    *chain.SignedMessage
	cid     cid.Cid
	receipt chain.MessageReceipt
}

// blockMessages returns the messages the block at h included, in
// execution order.
func (s *store) blockMessages(ctx context.Context, h abi.ChainEpoch) ([]storedMessage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT cid, msg, exit_code, ret, gas_used FROM messages WHERE height = ? ORDER BY idx`, int64(h))
	if err != nil {
		return nil, fmt.Errorf("reading messages of block %d: %w", h, err)
	}
	defer rows.Close()
	var out []storedMessage
	for rows.Next() {
		var (
			sc        string
			b, ret    []byte
			code, gas int64
		)
		if err := rows.Scan(&sc, &b, &code, &ret, &gas); err != nil {
			return nil, fmt.Errorf("reading messages of block %d: %w", h, err)
		}
		c, err := cid.Decode(sc)
		if err != nil {
			return nil, fmt.Errorf("decoding message CID %q: %w", sc, err)
		}
		var sm chain.SignedMessage
		if err := sm.UnmarshalCBOR(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("decoding message %s: %w", c, err)
		}
		if len(ret) == 0 {
			ret = nil
		}
		out = append(out, storedMessage{smsg: &sm, cid: c, receipt: chain.MessageReceipt{
			ExitCode: exitcode.ExitCode(code), Return: ret, GasUsed: gas,
		}})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading messages of block %d: %w", h, err)
	}
	return out, nil
}

// message returns an executed message by its signed or unsigned CID, or
// nil.
func (s *store) message(ctx context.Context, c cid.Cid) (*chain.SignedMessage, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT msg FROM messages WHERE cid = ? OR ucid = ? LIMIT 1`, c.String(), c.String()).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up message %s: %w", c, err)
	}
	var sm chain.SignedMessage
	if err := sm.UnmarshalCBOR(bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("decoding message %s: %w", c, err)
	}
	return &sm, nil
}
