package devnet

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	_ "github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/ferry-fil/ferry/chain"
)

// keepStates is how many recent state snapshots the store keeps, for
// queries at a past tipset.
const keepStates = 300

// schema is the devnet database: one row per block, per executed message,
// per kept state snapshot, and the pending message pool.
const schema = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
	height INTEGER PRIMARY KEY,
	cid    TEXT NOT NULL UNIQUE,
	header BLOB NOT NULL  -- BlockHeader CBOR
);
CREATE TABLE IF NOT EXISTS messages (
	cid       TEXT PRIMARY KEY,  -- the signed message's CID
	ucid      TEXT NOT NULL,     -- the unsigned message's CID
	height    INTEGER NOT NULL,
	idx       INTEGER NOT NULL,
	msg       BLOB NOT NULL,     -- SignedMessage CBOR
	exit_code INTEGER NOT NULL,
	ret       BLOB,
	gas_used  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_ucid ON messages (ucid);
CREATE TABLE IF NOT EXISTS replaced (  -- pool messages replaced by another with the same nonce
	cid    TEXT PRIMARY KEY,
	sender INTEGER NOT NULL,
	nonce  INTEGER NOT NULL,
	msg    BLOB  -- SignedMessage CBOR of the replaced message
);
CREATE TABLE IF NOT EXISTS states (
	height   INTEGER PRIMARY KEY,
	snapshot BLOB  -- NULL: unchanged since the previous stored snapshot
);
CREATE TABLE IF NOT EXISTS mpool (
	cid TEXT PRIMARY KEY,
	seq INTEGER NOT NULL,
	msg BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS msg_uuids (  -- MpoolPushMessage's MsgUuid → the message it signed
	uuid TEXT PRIMARY KEY,
	msg  BLOB NOT NULL  -- SignedMessage CBOR
);
`

// store is the devnet's SQLite database.
type store struct {
	db *sql.DB
}

func openStore(ctx context.Context, path string) (*store, error) {
	dsn := fmt.Sprintf("file:%s?_journal_mode=WAL&_busy_timeout=10000&_synchronous=NORMAL&_txlock=immediate", path)
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening devnet database %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("creating devnet schema in %s: %w", path, err)
	}
	// Columns added after the first version of the schema.
	for _, col := range []struct{ table, name, ddl string }{
		{"messages", "sender", `ALTER TABLE messages ADD COLUMN sender INTEGER`},
		{"messages", "nonce", `ALTER TABLE messages ADD COLUMN nonce INTEGER`},
		{"replaced", "msg", `ALTER TABLE replaced ADD COLUMN msg BLOB`},
	} {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?`, col.table, col.name).Scan(&n); err != nil {
			db.Close()
			return nil, fmt.Errorf("reading devnet schema in %s: %w", path, err)
		}
		if n == 0 {
			if _, err := db.ExecContext(ctx, col.ddl); err != nil {
				db.Close()
				return nil, fmt.Errorf("updating devnet schema in %s: %w", path, err)
			}
		}
	}
	if _, err := db.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS messages_sender_nonce ON messages (sender, nonce)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("updating devnet schema in %s: %w", path, err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

func (s *store) getMeta(ctx context.Context, key string) ([]byte, bool, error) {
	var v []byte
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading devnet meta %s: %w", key, err)
	}
	return v, true, nil
}

// executed is a message included in a block, with its receipt.
type executed struct {
	smsg    *chain.SignedMessage
	cid     cid.Cid // signed CID
	ucid    cid.Cid
	sender  uint64 // sender's actor ID
	receipt chain.MessageReceipt
}

// blockWrite is everything one block adds to the store.
type blockWrite struct {
	height   abi.ChainEpoch
	cid      cid.Cid
	header   []byte
	msgs     []executed
	snapshot []byte // nil when unchanged since the previous block
	meta     map[string][]byte
}

// writeBlock stores a block, its messages and receipts and the state after
// it in one transaction, and drops the included messages from the pool.
func (s *store) writeBlock(ctx context.Context, w *blockWrite) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("writing block %d: %w", w.height, err)
	}
	defer tx.Rollback()
	for k, v := range w.meta {
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`, k, v); err != nil {
			return fmt.Errorf("writing block %d meta: %w", w.height, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO blocks (height, cid, header) VALUES (?, ?, ?)`, int64(w.height), w.cid.String(), w.header); err != nil {
		return fmt.Errorf("writing block %d: %w", w.height, err)
	}
	if len(w.msgs) > 0 {
		ins, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO messages (cid, ucid, height, idx, msg, exit_code, ret, gas_used, sender, nonce) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("writing block %d messages: %w", w.height, err)
		}
		defer ins.Close()
		del, err := tx.PrepareContext(ctx, `DELETE FROM mpool WHERE cid = ?`)
		if err != nil {
			return fmt.Errorf("writing block %d messages: %w", w.height, err)
		}
		defer del.Close()
		for i, m := range w.msgs {
			var buf bytes.Buffer
			if err := m.smsg.MarshalCBOR(&buf); err != nil {
				return fmt.Errorf("encoding message %s: %w", m.cid, err)
			}
			if _, err := ins.ExecContext(ctx, m.cid.String(), m.ucid.String(), int64(w.height), i, buf.Bytes(),
				int64(m.receipt.ExitCode), m.receipt.Return, m.receipt.GasUsed, int64(m.sender), int64(m.smsg.Message.Nonce)); err != nil {
				return fmt.Errorf("writing message %s: %w", m.cid, err)
			}
			if _, err := del.ExecContext(ctx, m.cid.String()); err != nil {
				return fmt.Errorf("removing message %s from the pool: %w", m.cid, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO states (height, snapshot) VALUES (?, ?)`, int64(w.height), w.snapshot); err != nil {
		return fmt.Errorf("writing state at %d: %w", w.height, err)
	}
	// Drop old states, but keep the stored snapshot the kept ones refer to.
	cutoff := int64(w.height) - keepStates
	if _, err := tx.ExecContext(ctx, `DELETE FROM states WHERE height < ? AND height <>
		(SELECT MAX(height) FROM states WHERE height <= ? AND snapshot IS NOT NULL)`, cutoff, cutoff); err != nil {
		return fmt.Errorf("pruning states: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing block %d: %w", w.height, err)
	}
	return nil
}

// headHeight returns the height of the last block, or -1 for an empty chain.
func (s *store) headHeight(ctx context.Context) (abi.ChainEpoch, error) {
	var h sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(height) FROM blocks`).Scan(&h); err != nil {
		return 0, fmt.Errorf("reading chain head: %w", err)
	}
	if !h.Valid {
		return -1, nil
	}
	return abi.ChainEpoch(h.Int64), nil
}

// header returns the stored header of the block at height h.
func (s *store) header(ctx context.Context, h abi.ChainEpoch) (*chain.BlockHeader, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT header FROM blocks WHERE height = ?`, int64(h)).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("no block at height %d", h)
	}
	if err != nil {
		return nil, fmt.Errorf("reading block %d: %w", h, err)
	}
	var bh chain.BlockHeader
	if err := bh.UnmarshalCBOR(bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("decoding block %d: %w", h, err)
	}
	return &bh, nil
}

// heightOf returns the height of the block with CID c.
func (s *store) heightOf(ctx context.Context, c cid.Cid) (abi.ChainEpoch, bool, error) {
	var h int64
	err := s.db.QueryRowContext(ctx, `SELECT height FROM blocks WHERE cid = ?`, c.String()).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("looking up block %s: %w", c, err)
	}
	return abi.ChainEpoch(h), true, nil
}

// snapshot returns the state after the block at height h, if still kept.
func (s *store) snapshot(ctx context.Context, h abi.ChainEpoch) ([]byte, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT s.snapshot FROM states s WHERE EXISTS (SELECT 1 FROM states WHERE height = ?)
		AND s.height = (SELECT MAX(height) FROM states WHERE height <= ? AND snapshot IS NOT NULL)`, int64(h), int64(h)).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("the state at epoch %d is no longer kept (the devnet keeps the last %d)", h, keepStates)
	}
	if err != nil {
		return nil, fmt.Errorf("reading state at %d: %w", h, err)
	}
	return b, nil
}

// found is a message lookup result.
type found struct {
	cid     cid.Cid
	height  abi.ChainEpoch
	receipt chain.MessageReceipt
}

// findMessage looks a message up by its signed or unsigned CID.
func (s *store) findMessage(ctx context.Context, c cid.Cid) (*found, error) {
	var (
		sc       string
		h, code  int64
		ret      []byte
		gas      int64
		cidText  = c.String()
		rowQuery = `SELECT cid, height, exit_code, ret, gas_used FROM messages WHERE cid = ? OR ucid = ? ORDER BY height LIMIT 1`
	)
	err := s.db.QueryRowContext(ctx, rowQuery, cidText, cidText).Scan(&sc, &h, &code, &ret, &gas)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up message %s: %w", c, err)
	}
	return &found{cid: c, height: abi.ChainEpoch(h), receipt: chain.MessageReceipt{
		ExitCode: exitcode.ExitCode(code), Return: ret, GasUsed: gas,
	}}, nil
}

// findReplacement looks up the executed message that replaced the pool
// message c, if any: as in Lotus, one with the same sender and nonce that
// makes the same call (To, Method, Value, Params; gas may differ).
func (s *store) findReplacement(ctx context.Context, c cid.Cid) (*found, error) {
	var sender, nonce int64
	var oldb []byte
	err := s.db.QueryRowContext(ctx, `SELECT sender, nonce, msg FROM replaced WHERE cid = ?`, c.String()).Scan(&sender, &nonce, &oldb)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up replaced message %s: %w", c, err)
	}
	var (
		sc      string
		h, code int64
		ret     []byte
		gas     int64
		newb    []byte
	)
	err = s.db.QueryRowContext(ctx, `SELECT cid, height, exit_code, ret, gas_used, msg FROM messages WHERE sender = ? AND nonce = ?`, sender, nonce).Scan(&sc, &h, &code, &ret, &gas, &newb)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up the replacement of %s: %w", c, err)
	}
	if oldb != nil { // rows written before the devnet kept the message
		var old, repl chain.SignedMessage
		if err := old.UnmarshalCBOR(bytes.NewReader(oldb)); err != nil {
			return nil, fmt.Errorf("decoding replaced message %s: %w", c, err)
		}
		if err := repl.UnmarshalCBOR(bytes.NewReader(newb)); err != nil {
			return nil, fmt.Errorf("decoding the replacement of %s: %w", c, err)
		}
		if !old.Message.EqualCall(&repl.Message) {
			return nil, nil // another call took the nonce: c can never execute
		}
	}
	rc, err := cid.Decode(sc)
	if err != nil {
		return nil, fmt.Errorf("decoding message CID %q: %w", sc, err)
	}
	return &found{cid: rc, height: abi.ChainEpoch(h), receipt: chain.MessageReceipt{
		ExitCode: exitcode.ExitCode(code), Return: ret, GasUsed: gas,
	}}, nil
}

// poolReplaced records that pool message c (of sender, nonce) was replaced.
func (s *store) poolReplaced(ctx context.Context, c cid.Cid, sender, nonce uint64, old *chain.SignedMessage) error {
	b, err := old.Serialize()
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO replaced (cid, sender, nonce, msg) VALUES (?, ?, ?, ?)
		ON CONFLICT (cid) DO UPDATE SET sender = excluded.sender, nonce = excluded.nonce, msg = excluded.msg`, c.String(), int64(sender), int64(nonce), b); err != nil {
		return fmt.Errorf("recording replaced message %s: %w", c, err)
	}
	return s.poolRemove(ctx, c)
}

// poolAdd remembers a pending message, so that a restart keeps it. A
// message MpoolPushMessage signed under a MsgUuid (not uuid.Nil) is
// remembered by that id in the same transaction.
func (s *store) poolAdd(ctx context.Context, c cid.Cid, seq uint64, smsg *chain.SignedMessage, msgUUID uuid.UUID) error {
	var buf bytes.Buffer
	if err := smsg.MarshalCBOR(&buf); err != nil {
		return fmt.Errorf("encoding message %s: %w", c, err)
	}
	const add = `INSERT INTO mpool (cid, seq, msg) VALUES (?, ?, ?)
		ON CONFLICT (cid) DO UPDATE SET seq = excluded.seq, msg = excluded.msg`
	if msgUUID == uuid.Nil {
		if _, err := s.db.ExecContext(ctx, add, c.String(), int64(seq), buf.Bytes()); err != nil {
			return fmt.Errorf("storing pending message %s: %w", c, err)
		}
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storing pending message %s: %w", c, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, add, c.String(), int64(seq), buf.Bytes()); err != nil {
		return fmt.Errorf("storing pending message %s: %w", c, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO msg_uuids (uuid, msg) VALUES (?, ?)`, msgUUID.String(), buf.Bytes()); err != nil {
		return fmt.Errorf("recording message %s as MsgUuid %s: %w", c, msgUUID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storing pending message %s: %w", c, err)
	}
	return nil
}

// signedAs returns the message MpoolPushMessage signed under MsgUuid u, or
// nil.
func (s *store) signedAs(ctx context.Context, u uuid.UUID) (*chain.SignedMessage, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT msg FROM msg_uuids WHERE uuid = ?`, u.String()).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up MsgUuid %s: %w", u, err)
	}
	var sm chain.SignedMessage
	if err := sm.UnmarshalCBOR(bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("decoding the message of MsgUuid %s: %w", u, err)
	}
	return &sm, nil
}

// poolRemove forgets a pending message (replaced or dropped).
func (s *store) poolRemove(ctx context.Context, c cid.Cid) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM mpool WHERE cid = ?`, c.String()); err != nil {
		return fmt.Errorf("removing pending message %s: %w", c, err)
	}
	return nil
}

// poolLoad returns the stored pending messages in arrival order.
func (s *store) poolLoad(ctx context.Context) ([]*chain.SignedMessage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT msg FROM mpool ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("reading pending messages: %w", err)
	}
	defer rows.Close()
	var out []*chain.SignedMessage
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("reading pending messages: %w", err)
		}
		var sm chain.SignedMessage
		if err := sm.UnmarshalCBOR(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("decoding pending message: %w", err)
		}
		out = append(out, &sm)
	}
	return out, rows.Err()
}
