package market

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
)

// messagePool is what the interim sender needs from the node beyond Chain.
type messagePool interface {
	GasEstimateMessageGas(ctx context.Context, msg *chain.Message, spec *chain.MessageSendSpec, tsk chain.TipSetKey) (*chain.Message, error)
	MpoolGetNonce(ctx context.Context, addr address.Address) (uint64, error)
	MpoolPush(ctx context.Context, sm *chain.SignedMessage) (cid.Cid, error)
	StateSearchMsg(ctx context.Context, tsk chain.TipSetKey, msg cid.Cid, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error)
	StateWaitMsg(ctx context.Context, msg cid.Cid, confidence uint64, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error)
	WalletSign(ctx context.Context, addr address.Address, data []byte) (*crypto.Signature, error)
}

// nodeSender is the market's MessageSender until the chain's one takes
// over: it signs with the node's wallet, assigns nonces under a lock of its
// own (so it must be the only sender of its From address in the process)
// and records each signed message under its id (market_messages) before
// pushing it, so a Send after a crash pushes the same message again. A
// message whose nonce another message took (the worker is shared with
// sealing) and which can therefore never land is signed again with a new
// nonce under the same id.
type nodeSender struct {
	pool  messagePool
	store *store
	sign  MessageSigner
	hook  func(point string) // "MessageSigned", "MessagePushed"

	mu sync.Mutex // one nonce assignment at a time
}

// Send implements MessageSender.
func (s *nodeSender) Send(ctx context.Context, id uuid.UUID, msg *chain.Message, spec *chain.MessageSendSpec) (cid.Cid, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok, err := s.store.message(ctx, id)
	if err != nil {
		return cid.Undef, err
	}
	if !ok {
		if m, err = s.signNew(ctx, id, msg, spec); err != nil {
			return cid.Undef, err
		}
	}
	found, err := s.pool.StateSearchMsg(ctx, chain.TipSetKey{}, m.cid, -1, true)
	if err != nil {
		return cid.Undef, fmt.Errorf("looking up message %s: %w", m.cid, err)
	}
	if found != nil {
		return m.cid, nil
	}
	if _, err := s.pool.MpoolPush(ctx, &m.signed); err != nil && !alreadyKnown(err) {
		// Refused: if another message took its nonce, this one can never
		// land and is signed again with the next nonce.
		next, nerr := s.pool.MpoolGetNonce(ctx, m.signed.Message.From)
		if nerr != nil || next <= m.signed.Message.Nonce {
			return cid.Undef, fmt.Errorf("pushing message %s: %w", m.cid, err)
		}
		again, serr := s.pool.StateSearchMsg(ctx, chain.TipSetKey{}, m.cid, -1, true)
		if serr != nil {
			return cid.Undef, fmt.Errorf("looking up message %s: %w", m.cid, serr)
		}
		if again != nil {
			return m.cid, nil // it landed after all
		}
		if m, err = s.signNew(ctx, id, msg, spec); err != nil {
			return cid.Undef, err
		}
		if _, err := s.pool.MpoolPush(ctx, &m.signed); err != nil && !alreadyKnown(err) {
			return cid.Undef, fmt.Errorf("pushing message %s: %w", m.cid, err)
		}
	}
	s.hook("MessagePushed")
	return m.cid, nil
}

// signNew estimates gas, takes the next nonce, signs and records msg as id.
func (s *nodeSender) signNew(ctx context.Context, id uuid.UUID, msg *chain.Message, spec *chain.MessageSendSpec) (sentMessage, error) {
	est, err := s.pool.GasEstimateMessageGas(ctx, msg, spec, chain.TipSetKey{})
	if err != nil {
		return sentMessage{}, fmt.Errorf("estimating gas of message %s: %w", id, err)
	}
	if est.Nonce, err = s.pool.MpoolGetNonce(ctx, msg.From); err != nil {
		return sentMessage{}, fmt.Errorf("reading nonce of %s: %w", msg.From, err)
	}
	sm, c, err := s.sign(ctx, est)
	if err != nil {
		return sentMessage{}, fmt.Errorf("signing message %s: %w", id, err)
	}
	m := sentMessage{cid: c, signed: *sm}
	if err := s.store.putMessage(ctx, id, m); err != nil {
		return sentMessage{}, err
	}
	s.hook("MessageSigned")
	return m, nil
}

// Wait implements MessageSender.
func (s *nodeSender) Wait(ctx context.Context, id uuid.UUID, confidence uint64) (*chain.MsgLookup, error) {
	m, ok, err := s.store.message(ctx, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("no message was sent as %s", id)
	}
	lookup, err := s.pool.StateWaitMsg(ctx, m.cid, confidence, -1, true)
	if err != nil {
		return nil, fmt.Errorf("waiting for message %s: %w", m.cid, err)
	}
	if !lookup.Message.Defined() {
		lookup.Message = m.cid
	}
	return lookup, nil
}

// alreadyKnown reports whether a push failed only because the pool has the
// message already.
func alreadyKnown(err error) bool {
	s := err.Error()
	return strings.Contains(s, "already in mpool") || strings.Contains(s, "already known") || strings.Contains(s, "already exists")
}

// MessageSigner signs a chain message with its From key and returns the
// signed message and its CID. NodeSigner is the usual one.
type MessageSigner func(ctx context.Context, msg *chain.Message) (*chain.SignedMessage, cid.Cid, error)

// NodeSigner signs messages with the node's wallet (WalletSign) the way
// Lotus does (chain.SignMessage).
func NodeSigner(node interface {
	WalletSign(ctx context.Context, addr address.Address, data []byte) (*crypto.Signature, error)
}) MessageSigner {
	return func(ctx context.Context, msg *chain.Message) (*chain.SignedMessage, cid.Cid, error) {
		sm, err := chain.SignMessage(msg, func(data []byte) (*crypto.Signature, error) {
			return node.WalletSign(ctx, msg.From, data)
		})
		if err != nil {
			return nil, cid.Undef, err
		}
		c, err := sm.Cid()
		if err != nil {
			return nil, cid.Undef, fmt.Errorf("signed message CID: %w", err)
		}
		return sm, c, nil
	}
}
