package devnet

import (
	"fmt"
	"sort"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/wallet"
)

const (
	// MaxMessageSize bounds a message's CBOR size. Lotus allows 64 KiB;
	// the devnet allows more so that a PublishStorageDeals of a few hundred
	// deals fits in one message.
	MaxMessageSize = 512 << 10
	// maxNonceGap bounds how far ahead of the sender's nonce a message may
	// wait in the pool.
	maxNonceGap = 1000
	// replaceFactor: a message replacing a pending one with the same nonce
	// must raise its premium by at least 25%, as in Lotus.
	replaceNum, replaceDen = 125, 100
)

// pooled is a pending message.
type pooled struct {
	smsg   *chain.SignedMessage
	cid    cid.Cid
	seq    uint64 // arrival order
	sender uint64 // sender's actor ID
}

// mpool holds messages waiting to be included, by sender ID and nonce.
type mpool struct {
	bySender map[uint64]map[uint64]*pooled
	cost     map[uint64]abi.TokenAmount // per sender: sum of maxCost of its pending messages
	seq      uint64
}

func newMpool() *mpool {
	return &mpool{bySender: map[uint64]map[uint64]*pooled{}, cost: map[uint64]abi.TokenAmount{}}
}

// nextNonce is the sender's state nonce plus its consecutive pending
// messages.
func (p *mpool) nextNonce(st *state, id uint64) uint64 {
	n := st.Actors[id].Nonce
	for {
		if _, ok := p.bySender[id][n]; !ok {
			return n
		}
		n++
	}
}

// pendingCost sums value + gas limit × fee cap of the sender's pending
// messages, except the one with nonce skip.
func (p *mpool) pendingCost(id uint64, skip uint64) abi.TokenAmount {
	t, ok := p.cost[id]
	if !ok {
		return big.Zero()
	}
	if m, ok := p.bySender[id][skip]; ok {
		t = big.Sub(t, maxCost(&m.smsg.Message))
	}
	return t
}

// remove drops the pending message of sender id with nonce n.
func (p *mpool) remove(id, n uint64) {
	m, ok := p.bySender[id][n]
	if !ok {
		return
	}
	delete(p.bySender[id], n)
	if len(p.bySender[id]) == 0 {
		delete(p.bySender, id)
		delete(p.cost, id)
		return
	}
	p.cost[id] = big.Sub(p.cost[id], maxCost(&m.smsg.Message))
}

func maxCost(m *chain.Message) abi.TokenAmount {
	return big.Add(m.Value, big.Mul(big.NewInt(m.GasLimit), m.GasFeeCap))
}

// check validates a signed message against the state; it returns the
// sender's ID. Nothing is changed.
func (p *mpool) check(st *state, sm *chain.SignedMessage, c cid.Cid, mcid cid.Cid) (uint64, error) {
	m := &sm.Message
	if m.Version != 0 {
		return 0, fmt.Errorf("message version %d is not supported (want 0)", m.Version)
	}
	if m.To == address.Undef || m.From == address.Undef {
		return 0, fmt.Errorf("message has an empty To or From address")
	}
	for name, v := range map[string]abi.TokenAmount{"Value": m.Value, "GasFeeCap": m.GasFeeCap, "GasPremium": m.GasPremium} {
		if v.Int == nil || v.Sign() < 0 {
			return 0, fmt.Errorf("message %s %v is negative or missing", name, v)
		}
	}
	if m.Value.GreaterThan(totalFilecoin) {
		return 0, fmt.Errorf("message value %s exceeds the total FIL supply", m.Value)
	}
	if !methodExists(st, m.To, m.Method) {
		return 0, fmt.Errorf("actor %s has no method %d", m.To, m.Method)
	}
	if need := gasUsed(m); m.GasLimit < need {
		return 0, fmt.Errorf("gas limit %d is below the %d gas this message uses", m.GasLimit, need)
	}
	if m.GasLimit > BlockGasLimit {
		return 0, fmt.Errorf("gas limit %d exceeds the block gas limit %d", m.GasLimit, BlockGasLimit)
	}
	if m.GasFeeCap.LessThan(big.NewInt(BaseFee)) {
		return 0, fmt.Errorf("gas fee cap %s is below the base fee %d", m.GasFeeCap, BaseFee)
	}
	if m.GasPremium.GreaterThan(m.GasFeeCap) {
		return 0, fmt.Errorf("gas premium %s is above the gas fee cap %s", m.GasPremium, m.GasFeeCap)
	}
	if size := 100 + len(m.Params) + len(sm.Signature.Data); size > MaxMessageSize {
		return 0, fmt.Errorf("message is about %d bytes, more than %d", size, MaxMessageSize)
	}

	id, from, ok := st.actor(m.From)
	if !ok {
		return 0, fmt.Errorf("sender %s has no actor (send it funds first)", m.From)
	}
	if from.Code != codeAccount {
		return 0, fmt.Errorf("sender %s is a %s actor, not an account", m.From, from.Code)
	}
	if err := checkSigType(&sm.Signature, from.Address); err != nil {
		return 0, err
	}
	// BLS messages are signed over (and identified by) the unsigned CID.
	if err := wallet.Verify(&sm.Signature, from.Address, mcid.Bytes()); err != nil {
		return 0, fmt.Errorf("message signature by %s: %w", from.Address, err)
	}
	if m.Nonce < from.Nonce {
		return 0, fmt.Errorf("nonce %d is too low: the sender's next nonce is %d", m.Nonce, from.Nonce)
	}
	if m.Nonce > from.Nonce+maxNonceGap {
		return 0, fmt.Errorf("nonce %d is too far ahead of the sender's nonce %d", m.Nonce, from.Nonce)
	}
	if old, ok := p.bySender[id][m.Nonce]; ok && !old.cid.Equals(c) {
		min := big.Div(big.Mul(old.smsg.Message.GasPremium, big.NewInt(replaceNum)), big.NewInt(replaceDen))
		if m.GasPremium.LessThan(min) || m.GasPremium.Equals(old.smsg.Message.GasPremium) {
			// Lotus' wording, which senders recognise.
			return 0, fmt.Errorf("message from %s with nonce %d already in mpool, increase GasPremium to %s to replace it", m.From, m.Nonce, big.Add(min, big.NewInt(1)))
		}
	}
	need := big.Add(p.pendingCost(id, m.Nonce), maxCost(m))
	if from.Balance.LessThan(need) {
		return 0, fmt.Errorf("not enough funds: %s has %s attoFIL, needs %s for value and gas of its pending messages", m.From, from.Balance, need)
	}
	return id, nil
}

// checkSigType checks the signature type fits the key address.
func checkSigType(sig *crypto.Signature, key address.Address) error {
	switch {
	case key.Protocol() == address.SECP256K1 && sig.Type == crypto.SigTypeSecp256k1:
	case key.Protocol() == address.BLS && sig.Type == crypto.SigTypeBLS:
	default:
		return fmt.Errorf("signature type %d does not fit the sender's key address %s", sig.Type, key)
	}
	return nil
}

// add puts a checked message in the pool; it returns a message it replaced.
func (p *mpool) add(id uint64, sm *chain.SignedMessage, c cid.Cid) *pooled {
	if p.bySender[id] == nil {
		p.bySender[id] = map[uint64]*pooled{}
	}
	p.seq++
	old := p.bySender[id][sm.Message.Nonce]
	if old != nil {
		p.remove(id, sm.Message.Nonce)
		if p.bySender[id] == nil {
			p.bySender[id] = map[uint64]*pooled{}
		}
	}
	p.bySender[id][sm.Message.Nonce] = &pooled{smsg: sm, cid: c, seq: p.seq, sender: id}
	cur, ok := p.cost[id]
	if !ok {
		cur = big.Zero()
	}
	p.cost[id] = big.Add(cur, maxCost(&sm.Message))
	return old
}

// selectMessages picks executable messages for the next block: for each
// sender its consecutive nonces from the state nonce, senders in order of
// their oldest message, within the block gas limit.
func (p *mpool) selectMessages(st *state) []*pooled {
	type run struct {
		first uint64
		msgs  []*pooled
	}
	var runs []run
	for id, byNonce := range p.bySender {
		a, ok := st.Actors[id]
		if !ok {
			continue
		}
		var r run
		for n := a.Nonce; ; n++ {
			m, ok := byNonce[n]
			if !ok {
				break
			}
			if len(r.msgs) == 0 {
				r.first = m.seq
			}
			r.msgs = append(r.msgs, m)
		}
		if len(r.msgs) > 0 {
			runs = append(runs, r)
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].first < runs[j].first })
	var out []*pooled
	var gas int64
	for _, r := range runs {
		for _, m := range r.msgs {
			if gas+m.smsg.Message.GasLimit > BlockGasLimit {
				break
			}
			gas += m.smsg.Message.GasLimit
			out = append(out, m)
		}
	}
	return out
}

// prune drops messages whose nonce the state has passed.
func (p *mpool) prune(st *state) []cid.Cid {
	var dropped []cid.Cid
	for id, byNonce := range p.bySender {
		a, ok := st.Actors[id]
		for n, m := range byNonce {
			if !ok || n < a.Nonce {
				dropped = append(dropped, m.cid)
				p.remove(id, n)
			}
		}
	}
	return dropped
}

// size is the number of pending messages.
func (p *mpool) size() int {
	n := 0
	for _, m := range p.bySender {
		n += len(m)
	}
	return n
}
