package sender

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
)

// state is where a message is (see the package doc).
type state string

const (
	stateRecorded state = "recorded"
	stateSigned   state = "signed"
	statePushed   state = "pushed"
	stateExecuted state = "executed"
)

// record is one row of chain_messages.
type record struct {
	id      uuid.UUID
	msg     chain.Message // as the caller gave it: no nonce, gas as given
	maxFee  abi.TokenAmount
	version int64
	state   state
	signed  *chain.SignedMessage // nil while recorded
	cid     cid.Cid              // of signed
}

// spec is the MessageSendSpec the record was sent with.
func (r *record) spec() *chain.MessageSendSpec {
	return &chain.MessageSendSpec{MaxFee: r.maxFee}
}

// store holds every query of chain_messages and chain_nonces.
type store struct {
	db *sql.DB
}

const recordColumns = `id, message, max_fee, version, state, signed, cid`

func scanRecord(row interface{ Scan(...any) error }) (*record, error) {
	var r record
	var id, maxFee, st, c string
	var msg, signed []byte
	if err := row.Scan(&id, &msg, &maxFee, &r.version, &st, &signed, &c); err != nil {
		return nil, err
	}
	var err error
	if r.id, err = uuid.Parse(id); err != nil {
		return nil, fmt.Errorf("message id %q: %w", id, err)
	}
	if err := r.msg.UnmarshalCBOR(bytes.NewReader(msg)); err != nil {
		return nil, fmt.Errorf("decoding message %s: %w", r.id, err)
	}
	r.maxFee = big.Zero()
	if maxFee != "" {
		if r.maxFee, err = big.FromString(maxFee); err != nil {
			return nil, fmt.Errorf("message %s: max fee %q: %w", r.id, maxFee, err)
		}
	}
	r.state = state(st)
	if signed != nil {
		r.signed = new(chain.SignedMessage)
		if err := r.signed.UnmarshalCBOR(bytes.NewReader(signed)); err != nil {
			return nil, fmt.Errorf("decoding signed message %s: %w", r.id, err)
		}
		if r.cid, err = cid.Decode(c); err != nil {
			return nil, fmt.Errorf("message %s: CID %q: %w", r.id, c, err)
		}
	}
	return &r, nil
}

// get returns the record of id, or nil.
func (s *store) get(ctx context.Context, id uuid.UUID) (*record, error) {
	r, err := scanRecord(s.db.QueryRowContext(ctx, `SELECT `+recordColumns+` FROM chain_messages WHERE id = ?`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading message %s: %w", id, err)
	}
	return r, nil
}

// insert records a new message from the key address from in state
// recorded, unless id is recorded already (by another Sender meanwhile).
func (s *store) insert(ctx context.Context, from address.Address, id uuid.UUID, msg *chain.Message, maxFee abi.TokenAmount) error {
	b, err := msg.Serialize()
	if err != nil {
		return err
	}
	fee := ""
	if !maxFee.Nil() {
		fee = maxFee.String()
	}
	now := time.Now().UnixNano()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO chain_messages (id, from_addr, created_at, updated_at, message, max_fee, version, state, cid, exec_cid)
		VALUES (?, ?, ?, ?, ?, ?, 0, ?, '', '') ON CONFLICT (id) DO NOTHING`,
		id.String(), from.String(), now, now, b, fee, string(stateRecorded)); err != nil {
		return fmt.Errorf("recording message %s: %w", id, err)
	}
	return nil
}

// signLocally assigns from's next nonce (at least poolNonce), lets sign make
// the signed message with it and records that message, in one
// transaction, provided the record is still recorded at version. It returns
// false when another Sender got there first.
func (s *store) signLocally(ctx context.Context, from address.Address, r *record, poolNonce uint64, sign func(nonce uint64) (*chain.SignedMessage, cid.Cid, error)) (bool, error) {
	done := false
	err := db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO chain_nonces (from_addr, next) VALUES (?, 0) ON CONFLICT (from_addr) DO NOTHING`, from.String()); err != nil {
			return fmt.Errorf("assigning a nonce of %s: %w", from, err)
		}
		// Updating the row first takes its lock, so concurrent senders of
		// one address queue here (SQLite locks the database anyway).
		var n int64
		if err := tx.QueryRowContext(ctx, `UPDATE chain_nonces SET next = CASE WHEN next > ? THEN next ELSE ? END + 1
			WHERE from_addr = ? RETURNING next - 1`, int64(poolNonce), int64(poolNonce), from.String()).Scan(&n); err != nil {
			return fmt.Errorf("assigning a nonce of %s: %w", from, err)
		}
		sm, c, err := sign(uint64(n))
		if err != nil {
			return err
		}
		ok, err := setSigned(ctx, tx, r, sm, c, stateSigned)
		if err != nil {
			return err
		}
		if !ok {
			return errRaced
		}
		done = true
		return nil
	})
	if errors.Is(err, errRaced) {
		return false, nil
	}
	return done, err
}

// errRaced rolls back a transaction that found its record changed.
var errRaced = errors.New("the message record changed meanwhile")

// setSigned records the signed message of r (at r's version, still
// recorded) and moves it to st.
func setSigned(ctx context.Context, ex interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, r *record, sm *chain.SignedMessage, c cid.Cid, st state) (bool, error) {
	b, err := sm.Serialize()
	if err != nil {
		return false, err
	}
	res, err := ex.ExecContext(ctx, `UPDATE chain_messages SET state = ?, nonce = ?, signed = ?, cid = ?, updated_at = ?
		WHERE id = ? AND version = ? AND state = ?`,
		string(st), int64(sm.Message.Nonce), b, c.String(), time.Now().UnixNano(), r.id.String(), r.version, string(stateRecorded))
	if err != nil {
		return false, fmt.Errorf("recording signed message %s (%s): %w", r.id, c, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("recording signed message %s (%s): %w", r.id, c, err)
	}
	return n == 1, nil
}

// setNodeSigned records the message the node signed and pushed for r.
func (s *store) setNodeSigned(ctx context.Context, r *record, sm *chain.SignedMessage, c cid.Cid) (bool, error) {
	return setSigned(ctx, s.db, r, sm, c, statePushed)
}

// setState moves r (at its version, in state from) to state to; exec is
// the executed CID for stateExecuted.
func (s *store) setState(ctx context.Context, r *record, to state, exec cid.Cid) error {
	e := ""
	if exec.Defined() {
		e = exec.String()
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE chain_messages SET state = ?, exec_cid = ?, updated_at = ? WHERE id = ? AND version = ? AND state = ?`,
		string(to), e, time.Now().UnixNano(), r.id.String(), r.version, string(r.state)); err != nil {
		return fmt.Errorf("recording message %s as %s: %w", r.id, to, err)
	}
	return nil
}

// resign sends r back to recorded with its version one up, forgetting its
// signed message (whose nonce another message took). It returns false when
// another Sender did it first.
func (s *store) resign(ctx context.Context, r *record) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE chain_messages SET version = version + 1, state = ?, nonce = NULL, signed = NULL, cid = '', updated_at = ?
		WHERE id = ? AND version = ?`, string(stateRecorded), time.Now().UnixNano(), r.id.String(), r.version)
	if err != nil {
		return false, fmt.Errorf("re-signing message %s: %w", r.id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("re-signing message %s: %w", r.id, err)
	}
	return n == 1, nil
}

// pendingBefore returns the signed messages of from not known to have
// executed whose nonce is below nonce, lowest first.
func (s *store) pendingBefore(ctx context.Context, from address.Address, nonce uint64) ([]*chain.SignedMessage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT signed FROM chain_messages WHERE from_addr = ? AND state IN (?, ?) AND nonce < ? ORDER BY nonce`,
		from.String(), string(stateSigned), string(statePushed), int64(nonce))
	if err != nil {
		return nil, fmt.Errorf("reading pending messages of %s: %w", from, err)
	}
	defer rows.Close()
	var out []*chain.SignedMessage
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("reading pending messages of %s: %w", from, err)
		}
		var sm chain.SignedMessage
		if err := sm.UnmarshalCBOR(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("decoding a pending message of %s: %w", from, err)
		}
		out = append(out, &sm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading pending messages of %s: %w", from, err)
	}
	return out, nil
}
