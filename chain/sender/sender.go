package sender

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
)

// Node is what a Sender needs of the chain: a Lotus full node or the
// devnet (chain.FullNode has it all).
type Node interface {
	ChainHead(ctx context.Context) (*chain.TipSet, error)
	StateGetActor(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (*chain.Actor, error)
	StateAccountKey(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (address.Address, error)
	StateSearchMsg(ctx context.Context, from chain.TipSetKey, msg cid.Cid, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error)
	StateWaitMsg(ctx context.Context, msg cid.Cid, confidence uint64, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error)
	MpoolGetNonce(ctx context.Context, addr address.Address) (uint64, error)
	MpoolPush(ctx context.Context, smsg *chain.SignedMessage) (cid.Cid, error)
	MpoolPushMessage(ctx context.Context, msg *chain.Message, spec *chain.MessageSendSpec) (*chain.SignedMessage, error)
	GasEstimateMessageGas(ctx context.Context, msg *chain.Message, spec *chain.MessageSendSpec, tsk chain.TipSetKey) (*chain.Message, error)
}

// Keys holds private keys: a *wallet.Wallet.
type Keys interface {
	Has(addr address.Address) (bool, error)
	Sign(addr address.Address, data []byte) (*crypto.Signature, error)
}

// Step is a point of Send that Config.OnStep hears about.
type Step string

const (
	// StepRecorded: the message is in the database and about to be pushed
	// (locally signed: the signed message; node-signed: the request,
	// before MpoolPushMessage).
	StepRecorded Step = "recorded"
	// StepPushed: the push returned and its result is not recorded yet.
	StepPushed Step = "pushed"
)

// Config configures a Sender.
type Config struct {
	// DB holds chain_messages and chain_nonces (db.Open migrates them).
	DB *sql.DB
	// Node is the chain.
	Node Node
	// From is the address every message is sent from: a key address (f1,
	// f3) or the ID address of an account.
	From address.Address
	// Keys signs locally when it holds From's key; otherwise (or when nil)
	// the node signs, through MpoolPushMessage.
	Keys Keys
	// Recheck is how long Wait waits for a message before it checks
	// whether another message took its nonce and pushes it again (default
	// 5 minutes, ten Filecoin epochs).
	Recheck time.Duration
	// Logf receives what a caller does not see (a push again that the
	// pool refused); nil is the standard logger.
	Logf func(format string, args ...any)
	// OnStep, when set, is called at each Step (crash tests kill the
	// process there).
	OnStep func(id uuid.UUID, s Step)
}

// Errors of Send and Wait.
var (
	// ErrIDReused: Send was given an id already used for another message.
	ErrIDReused = errors.New("message id already names a different message")
	// ErrUnknownID: Wait was given an id no message was sent as.
	ErrUnknownID = errors.New("no message was sent under this id")
)

// Sender sends messages from one address. It is safe for concurrent use,
// and several Senders of one address may share a database.
type Sender struct {
	cfg   Config
	key   address.Address // From's key address
	local bool            // cfg.Keys holds key
	store store

	mu sync.Mutex // one nonce assignment, push or re-signing at a time

	idMu sync.Mutex
	id   address.Address // From's ID address, once known
}

// New makes the Sender of cfg.From. An ID address is resolved to its key
// address, which must then be an account's.
func New(ctx context.Context, cfg Config) (*Sender, error) {
	if cfg.DB == nil || cfg.Node == nil {
		return nil, errors.New("message sender: no database or chain node")
	}
	if cfg.From == address.Undef {
		return nil, errors.New("message sender: no From address")
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = 5 * time.Minute
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	s := &Sender{cfg: cfg, key: cfg.From, store: store{db: cfg.DB}}
	if cfg.From.Protocol() == address.ID {
		key, err := cfg.Node.StateAccountKey(ctx, cfg.From, chain.EmptyTSK)
		if err != nil {
			return nil, fmt.Errorf("message sender: resolving %s to its key address: %w", cfg.From, err)
		}
		s.key, s.id = key, cfg.From
	}
	if cfg.Keys != nil {
		has, err := cfg.Keys.Has(s.key)
		if err != nil {
			return nil, fmt.Errorf("message sender: looking for the key of %s: %w", s.key, err)
		}
		s.local = has
	}
	return s, nil
}

// From returns the key address the Sender sends from.
func (s *Sender) From() address.Address { return s.key }

// SignsLocally reports whether the Sender signs with Config.Keys (true) or
// lets the node sign (false).
func (s *Sender) SignsLocally() bool { return s.local }

// Send signs and pushes msg (From, To, Value, Method and Params set; nonce
// and gas are filled in, the fee bounded by spec.MaxFee) as the message
// named id, and returns its CID. Called again with the same id (after a
// crash, say) it never sends a second message: it returns the CID of the
// one already sent, pushing it again in case the pool lost it.
func (s *Sender) Send(ctx context.Context, id uuid.UUID, msg *chain.Message, spec *chain.MessageSendSpec) (cid.Cid, error) {
	if id == uuid.Nil {
		return cid.Undef, errors.New("sending a message: no message id")
	}
	if msg == nil {
		return cid.Undef, fmt.Errorf("sending message %s: no message", id)
	}
	if msg.Nonce != 0 {
		return cid.Undef, fmt.Errorf("sending message %s: nonce %d set (the sender assigns nonces)", id, msg.Nonce)
	}
	if err := s.checkFrom(ctx, msg.From); err != nil {
		return cid.Undef, fmt.Errorf("sending message %s: %w", id, err)
	}
	want := *msg
	if want.Value.Nil() {
		want.Value = big.Zero()
	}
	maxFee := big.Zero()
	if spec != nil && !spec.MaxFee.Nil() {
		maxFee = spec.MaxFee
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.store.get(ctx, id)
	if err != nil {
		return cid.Undef, err
	}
	if r == nil {
		if err := s.store.insert(ctx, s.key, id, &want, maxFee); err != nil {
			return cid.Undef, err
		}
		if r, err = s.store.get(ctx, id); err != nil {
			return cid.Undef, err
		}
		if r == nil {
			return cid.Undef, fmt.Errorf("sending message %s: its record vanished", id)
		}
	}
	if !sameCall(&r.msg, &want) {
		return cid.Undef, fmt.Errorf("sending message %s (to %s, method %d): %w (to %s, method %d)", id, want.To, want.Method, ErrIDReused, r.msg.To, r.msg.Method)
	}
	return s.deliver(ctx, r)
}

// Wait waits until the message sent as id has executed with confidence
// epochs on top and returns its lookup; lookup.Message is the CID that
// executed, should the message have been replaced.
func (s *Sender) Wait(ctx context.Context, id uuid.UUID, confidence uint64) (*chain.MsgLookup, error) {
	for {
		r, err := s.store.get(ctx, id)
		if err != nil {
			return nil, err
		}
		if r == nil {
			return nil, fmt.Errorf("waiting for message %s: %w", id, ErrUnknownID)
		}
		if r.state == stateRecorded || r.state == stateSigned {
			// Not signed yet, or never known to be pushed (a crash, a
			// refusal, a re-signing): finish what Send started, as a node
			// cannot wait for a message it has not seen.
			s.mu.Lock()
			_, err := s.deliver(ctx, r)
			s.mu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("waiting for message %s: %w", id, err)
			}
			if r, err = s.reload(ctx, id); err != nil {
				return nil, err
			}
		}
		wctx, cancel := context.WithTimeout(ctx, s.cfg.Recheck)
		l, err := s.cfg.Node.StateWaitMsg(wctx, r.cid, confidence, -1, true)
		// A node that lost the message (or another node behind the same
		// address) is given it again, as after a Recheck.
		timedOut := wctx.Err() != nil || (err != nil && notFound(err))
		cancel()
		if err == nil {
			if r.state != stateExecuted {
				if err := s.store.setState(ctx, r, stateExecuted, l.Message); err != nil {
					return nil, err
				}
			}
			return l, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("waiting for message %s (%s): %w", id, r.cid, ctx.Err())
		}
		if !timedOut {
			return nil, fmt.Errorf("waiting for message %s (%s): %w", id, r.cid, err)
		}
		if err := s.recheck(ctx, r); err != nil {
			return nil, fmt.Errorf("waiting for message %s (%s): %w", id, r.cid, err)
		}
	}
}

// checkFrom makes sure from is the Sender's address (key or ID).
func (s *Sender) checkFrom(ctx context.Context, from address.Address) error {
	if from == s.key {
		return nil
	}
	s.idMu.Lock()
	id := s.id
	s.idMu.Unlock()
	if id != address.Undef {
		if from == id {
			return nil
		}
		return fmt.Errorf("the message is from %s, this sender sends from %s (%s)", from, s.key, id)
	}
	if from.Protocol() == address.ID {
		key, err := s.cfg.Node.StateAccountKey(ctx, from, chain.EmptyTSK)
		if err != nil {
			return fmt.Errorf("resolving %s: %w", from, err)
		}
		if key == s.key {
			s.idMu.Lock()
			s.id = from
			s.idMu.Unlock()
			return nil
		}
	}
	return fmt.Errorf("the message is from %s, this sender sends from %s", from, s.key)
}

// sameCall reports whether two requests are the same message.
func sameCall(a, b *chain.Message) bool {
	return a.To == b.To && a.Method == b.Method && a.Value.Equals(b.Value) && bytes.Equal(a.Params, b.Params)
}

// deliver gets r into the pool (or finds it executed), signing it first if
// it is only recorded, and returns its CID. s.mu is held.
func (s *Sender) deliver(ctx context.Context, r *record) (cid.Cid, error) {
	for {
		switch r.state {
		case stateExecuted:
			return r.cid, nil
		case stateRecorded:
			var err error
			if s.local {
				err = s.signLocally(ctx, r)
			} else {
				err = s.pushThroughNode(ctx, r)
			}
			if err != nil {
				return cid.Undef, fmt.Errorf("sending message %s: %w", r.id, err)
			}
			if r, err = s.reload(ctx, r.id); err != nil {
				return cid.Undef, err
			}
			if r.state == statePushed {
				return r.cid, nil // the node pushed it
			}
		case stateSigned, statePushed:
			_, perr := s.cfg.Node.MpoolPush(ctx, r.signed)
			if perr != nil && !alreadyPooled(perr) {
				// Refused: executed, its nonce taken, or a real refusal?
				st, err := s.status(ctx, r)
				if err != nil {
					return cid.Undef, fmt.Errorf("sending message %s (%s): %w (after the pool refused it: %v)", r.id, r.cid, err, perr)
				}
				switch {
				case st.executed != nil:
					return r.cid, nil
				case st.taken:
					if err := s.resign(ctx, r, st); err != nil {
						return cid.Undef, err
					}
					if r, err = s.reload(ctx, r.id); err != nil {
						return cid.Undef, err
					}
					continue
				case r.state == stateSigned:
					return cid.Undef, fmt.Errorf("pushing message %s (%s): %w", r.id, r.cid, perr)
				}
				// The pool took it once: Wait pushes it again later.
				s.cfg.Logf("chain: pushing message %s (%s) again: %v", r.id, r.cid, perr)
				return r.cid, nil
			}
			if r.state == stateSigned {
				s.step(r.id, StepPushed)
				if err := s.store.setState(ctx, r, statePushed, cid.Undef); err != nil {
					return cid.Undef, err
				}
			}
			return r.cid, nil
		default:
			return cid.Undef, fmt.Errorf("message %s is in unknown state %q", r.id, r.state)
		}
	}
}

func (s *Sender) reload(ctx context.Context, id uuid.UUID) (*record, error) {
	r, err := s.store.get(ctx, id)
	if err == nil && r == nil {
		err = fmt.Errorf("message %s: its record vanished", id)
	}
	return r, err
}

func (s *Sender) step(id uuid.UUID, st Step) {
	if s.cfg.OnStep != nil {
		s.cfg.OnStep(id, st)
	}
}

// signLocally estimates gas, assigns a nonce, signs and records r.
func (s *Sender) signLocally(ctx context.Context, r *record) error {
	m, err := s.cfg.Node.GasEstimateMessageGas(ctx, &r.msg, r.spec(), chain.EmptyTSK)
	if err != nil {
		return fmt.Errorf("estimating gas: %w", err)
	}
	pool, err := s.cfg.Node.MpoolGetNonce(ctx, r.msg.From)
	if err != nil {
		return fmt.Errorf("reading the nonce of %s: %w", r.msg.From, err)
	}
	m.From = r.msg.From
	ok, err := s.store.signLocally(ctx, s.key, r, pool, func(nonce uint64) (*chain.SignedMessage, cid.Cid, error) {
		m.Nonce = nonce
		sm, err := chain.SignMessage(m, func(b []byte) (*crypto.Signature, error) { return s.cfg.Keys.Sign(s.key, b) })
		if err != nil {
			return nil, cid.Undef, err
		}
		c, err := sm.Cid()
		return sm, c, err
	})
	if err != nil {
		return err
	}
	if ok {
		s.step(r.id, StepRecorded)
	}
	return nil
}

// pushThroughNode has the node sign and push r under a MsgUuid derived
// from its id and version, and records what it signed.
func (s *Sender) pushThroughNode(ctx context.Context, r *record) error {
	spec := r.spec()
	spec.MsgUuid = nodeUUID(r.id, r.version)
	s.step(r.id, StepRecorded)
	m := r.msg
	sm, err := s.cfg.Node.MpoolPushMessage(ctx, &m, spec)
	if err != nil {
		return fmt.Errorf("pushing through the node: %w", err)
	}
	s.step(r.id, StepPushed)
	c, err := sm.Cid()
	if err != nil {
		return err
	}
	if _, err := s.store.setNodeSigned(ctx, r, sm, c); err != nil {
		return err
	}
	return nil
}

// nodeUUID is the MsgUuid of version v of message id: id itself at first,
// then a name-based UUID per re-signing, so the node signs anew.
func nodeUUID(id uuid.UUID, v int64) uuid.UUID {
	if v == 0 {
		return id
	}
	return uuid.NewSHA1(id, fmt.Appendf(nil, "re-signed %d", v))
}

// status is what the chain says of a message that is not (known to be)
// executed.
type status struct {
	executed *chain.MsgLookup // it (or a replacement) executed
	taken    bool             // another message executed with its nonce
	nonce    uint64           // the sender's nonce at head
	head     *chain.TipSet
}

// status reads the sender's nonce and looks the message up at one tipset:
// while the nonce has not passed the message's, nothing can have executed
// in its place; once it has, either the message (or a replacement of it)
// executed or its nonce was taken.
func (s *Sender) status(ctx context.Context, r *record) (status, error) {
	head, err := s.cfg.Node.ChainHead(ctx)
	if err != nil {
		return status{}, fmt.Errorf("reading the chain head: %w", err)
	}
	act, err := s.cfg.Node.StateGetActor(ctx, s.key, head.Key())
	if err != nil {
		return status{}, fmt.Errorf("reading the nonce of %s: %w", s.key, err)
	}
	st := status{nonce: act.Nonce, head: head}
	if act.Nonce <= r.signed.Message.Nonce {
		return st, nil // pending
	}
	l, err := s.cfg.Node.StateSearchMsg(ctx, head.Key(), r.cid, -1, true)
	switch {
	case err != nil && notFound(err):
		// The node has never seen the message, so it did not execute.
		st.taken = true
	case err != nil:
		return status{}, fmt.Errorf("looking up message %s: %w", r.cid, err)
	case l != nil:
		st.executed = l
	default:
		st.taken = true
	}
	return st, nil
}

// notFound reports whether a lookup failed because the node does not have
// the message at all: Lotus loads it from its blockstore first, and says
// so in these words (over JSON-RPC only the text arrives). The devnet
// answers such a lookup with no lookup and no error.
func notFound(err error) bool {
	s := err.Error()
	return strings.Contains(s, "could not find") || strings.Contains(s, "not found")
}

// resign gives r a new nonce: its old one was taken.
func (s *Sender) resign(ctx context.Context, r *record, st status) error {
	s.cfg.Logf("chain: message %s (%s, nonce %d) can never land: %s's nonce is %d at epoch %d without it; signing it again with a new nonce",
		r.id, r.cid, r.signed.Message.Nonce, s.key, st.nonce, st.head.Height())
	_, err := s.store.resign(ctx, r)
	return err
}

// recheck runs when a message waited Recheck without executing: it is
// signed again if its nonce was taken, and pushed again (with the
// sender's earlier pending messages) otherwise.
func (s *Sender) recheck(ctx context.Context, seen *record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.reload(ctx, seen.id)
	if err != nil {
		return err
	}
	if r.version != seen.version || r.signed == nil {
		return nil // re-signed meanwhile: wait for the new one
	}
	st, err := s.status(ctx, r)
	if err != nil {
		return err
	}
	switch {
	case st.executed != nil:
		return nil
	case st.taken:
		if err := s.resign(ctx, r, st); err != nil {
			return err
		}
		r, err = s.reload(ctx, r.id)
		if err != nil {
			return err
		}
		_, err = s.deliver(ctx, r)
		return err
	}
	earlier, err := s.store.pendingBefore(ctx, s.key, r.signed.Message.Nonce)
	if err != nil {
		return err
	}
	for _, sm := range append(earlier, r.signed) {
		if _, err := s.cfg.Node.MpoolPush(ctx, sm); err != nil && !alreadyPooled(err) {
			s.cfg.Logf("chain: pushing message %s (nonce %d) of %s again: %v", r.id, sm.Message.Nonce, s.key, err)
		}
	}
	return nil
}

// alreadyPooled reports whether a push was refused because the pool holds
// a message of that nonce already (the message itself, or one that a
// replacement would need a higher premium for): Lotus' and the devnet's
// wording, which reaches us as text over JSON-RPC.
func alreadyPooled(err error) bool {
	return strings.Contains(err.Error(), "already in mpool")
}
