package market

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	miner13 "github.com/filecoin-project/go-state-types/builtin/v13/miner"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/wire"
)

// ErrUnknownDeal is returned for a deal UUID the provider does not know.
var ErrUnknownDeal = errors.New("unknown deal")

// store holds every SQL statement of the market: deals and their logs,
// the funds and staging tags, publish batches and the ask. Its methods are typed: checkpoints, retry
// states and flags are parameters, never SQL text, and no SQL leaves it.
// Every query is written to run unchanged on SQLite and PostgreSQL (`?`
// placeholders, which the db package rebinds; RETURNING; no flag compared
// with a literal).
type store struct{ db *sql.DB }

// dealRow is a market_deals row. The piece, client and epochs are the
// proposal's for a market deal and the manifest's and import's for a
// direct deal; the pipeline's common steps read them, not the proposal.
type dealRow struct {
	UUID           uuid.UUID
	Kind           DealKind
	SignedCID      cid.Cid // a market deal's signed proposal CID
	CreatedAt      time.Time
	UpdatedAt      time.Time
	ClientPeer     string
	ClientKey      address.Address
	Proposal       market.ClientDealProposal        // a market deal's
	Manifest       *miner13.PieceActivationManifest // a direct deal's
	AllocationID   chain.AllocationID               // a direct deal's verified allocation
	PieceCID       cid.Cid
	PieceSize      abi.PaddedPieceSize
	StartEpoch     abi.ChainEpoch
	EndEpoch       abi.ChainEpoch
	Verified       bool
	DataRoot       cid.Cid
	IsOffline      bool
	TransferType   string
	TransferParams []byte
	TransferSize   uint64
	BytesReceived  uint64
	StagingPath    string
	StagingOwned   bool
	DeleteAfterAdd bool    // remove the data file once the piece is in a sector, though the market did not create it
	StagingNode    string  // the cluster node holding StagingPath; "" for this one on a single node
	DataCRC32C     *uint32 // the CRC-32C of the data checked against PieceCID at Transferred; nil when not computed
	KeepUnsealed   bool
	SkipIPNI       bool
	Checkpoint     Checkpoint
	Retry          RetryState
	Retries        int
	RetryAfter     time.Time
	Error          string
	PublishQueued  int64
	BatchID        sql.NullInt64
	PublishCid     cid.Cid
	ChainDealID    abi.DealID
	Sector         int64
	SectorOffset   uint64
	SealingState   string
	EndedAt        time.Time // zero while the deal is active
	EndReason      string    // why the deal ended: EndExpired, EndSlashed or EndRemoved
	PieceReleased  bool      // the end's piece removal was done
}

// client is the deal's client: a market deal's proposal's, a direct
// deal's allocation's (as an ID address).
func (d *dealRow) client() address.Address {
	if d.Kind == KindDirect && d.Manifest != nil && d.Manifest.VerifiedAllocationKey != nil {
		if a, err := address.NewIDAddress(uint64(d.Manifest.VerifiedAllocationKey.Client)); err == nil {
			return a
		}
	}
	return d.Proposal.Proposal.Client
}

const dealColumns = `uuid, kind, signed_proposal_cid, created_at, updated_at, client_peer, client_key, proposal,
	allocation_id, piece_cid, piece_size, start_epoch, end_epoch, verified,
	data_root, is_offline, transfer_type, transfer_params, transfer_size, bytes_received, staging_path,
	staging_owned, delete_after_add, keep_unsealed, skip_ipni, checkpoint, retry, retries, retry_after, error, publish_queued,
	batch_id, publish_cid, chain_deal_id, sector, sector_offset, sealing_state, ended_at, end_reason, piece_released,
	staging_node, data_crc32c`

type scanner interface{ Scan(dest ...any) error }

func scanDeal(s scanner) (*dealRow, error) {
	var (
		d                                 dealRow
		id, kind, spc, ckey, pc, root, rs string
		pub                               string
		created, updated, retryAfter      int64
		endedAt, allocID, psize           int64
		start, end                        int64
		prop                              []byte
		offline, owned, del, keep, skip   bool
		tsize, recv, dealID, sectorOff    int64
		crc                               sql.NullInt64
	)
	err := s.Scan(&id, &kind, &spc, &created, &updated, &d.ClientPeer, &ckey, &prop, &allocID, &pc, &psize, &start, &end,
		&d.Verified, &root, &offline, &d.TransferType, &d.TransferParams, &tsize, &recv, &d.StagingPath, &owned, &del, &keep, &skip,
		&d.Checkpoint, &rs, &d.Retries, &retryAfter, &d.Error, &d.PublishQueued, &d.BatchID, &pub, &dealID, &d.Sector, &sectorOff,
		&d.SealingState, &endedAt, &d.EndReason, &d.PieceReleased, &d.StagingNode, &crc)
	if err != nil {
		return nil, err
	}
	d.Kind, d.Retry = DealKind(kind), RetryState(rs)
	if d.UUID, err = uuid.Parse(id); err != nil {
		return nil, fmt.Errorf("deal row %q: %w", id, err)
	}
	if d.ClientKey, err = address.NewFromString(ckey); err != nil {
		return nil, fmt.Errorf("deal %s client key: %w", id, err)
	}
	if d.PieceCID, err = cid.Decode(pc); err != nil {
		return nil, fmt.Errorf("deal %s piece CID: %w", id, err)
	}
	switch d.Kind {
	case KindMarket:
		if d.SignedCID, err = cid.Decode(spc); err != nil {
			return nil, fmt.Errorf("deal %s signed proposal CID: %w", id, err)
		}
		if err := d.Proposal.UnmarshalCBOR(bytes.NewReader(prop)); err != nil {
			return nil, fmt.Errorf("deal %s proposal: %w", id, err)
		}
	case KindDirect:
		d.Manifest = new(miner13.PieceActivationManifest)
		if err := d.Manifest.UnmarshalCBOR(bytes.NewReader(prop)); err != nil {
			return nil, fmt.Errorf("deal %s piece manifest: %w", id, err)
		}
	default:
		return nil, fmt.Errorf("deal %s has an unknown kind %q", id, kind)
	}
	if root != "" {
		if d.DataRoot, err = cid.Decode(root); err != nil {
			return nil, fmt.Errorf("deal %s data root: %w", id, err)
		}
	}
	if pub != "" {
		if d.PublishCid, err = cid.Decode(pub); err != nil {
			return nil, fmt.Errorf("deal %s publish CID: %w", id, err)
		}
	}
	d.CreatedAt, d.UpdatedAt, d.RetryAfter = time.Unix(0, created), time.Unix(0, updated), time.Unix(0, retryAfter)
	if endedAt != 0 {
		d.EndedAt = time.Unix(0, endedAt)
	}
	d.AllocationID, d.PieceSize = chain.AllocationID(allocID), abi.PaddedPieceSize(psize)
	d.StartEpoch, d.EndEpoch = abi.ChainEpoch(start), abi.ChainEpoch(end)
	d.IsOffline, d.StagingOwned, d.DeleteAfterAdd, d.KeepUnsealed, d.SkipIPNI = offline, owned, del, keep, skip
	d.TransferSize, d.BytesReceived, d.ChainDealID, d.SectorOffset = uint64(tsize), uint64(recv), abi.DealID(dealID), uint64(sectorOff)
	if crc.Valid {
		sum := uint32(crc.Int64)
		d.DataCRC32C = &sum
	}
	return &d, nil
}

// sqlExec is what runs a statement: the database or a transaction.
type sqlExec interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// inCheckpoints returns one placeholder per checkpoint and the checkpoints
// as arguments, for `checkpoint IN (…)`.
func inCheckpoints(cps []Checkpoint) (string, []any) {
	args := make([]any, len(cps))
	for i, c := range cps {
		args[i] = c
	}
	return strings.TrimSuffix(strings.Repeat("?, ", len(cps)), ", "), args
}

// --- deals ---

// deal reads one deal.
func (s *store) deal(ctx context.Context, id uuid.UUID) (*dealRow, error) {
	d, err := scanDeal(s.db.QueryRowContext(ctx, `SELECT `+dealColumns+` FROM market_deals WHERE uuid = ?`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("deal %s: %w", id, ErrUnknownDeal)
	}
	if err != nil {
		return nil, fmt.Errorf("reading deal %s: %w", id, err)
	}
	return d, nil
}

// checkpoint reads a deal's checkpoint.
func (s *store) checkpoint(ctx context.Context, id uuid.UUID) (Checkpoint, error) {
	var cp Checkpoint
	err := s.db.QueryRowContext(ctx, `SELECT checkpoint FROM market_deals WHERE uuid = ?`, id.String()).Scan(&cp)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("deal %s: %w", id, ErrUnknownDeal)
	}
	if err != nil {
		return 0, fmt.Errorf("reading checkpoint of deal %s: %w", id, err)
	}
	return cp, nil
}

// unfinished lists the deals a start resumes: not Complete, not failed,
// not waiting for an operator, and not idle (dealRow.idle: an offline deal
// waiting for its data, a queued deal waiting for a batch), which
// something else moves on when it comes (an import, the publisher) and
// whose goroutine would only read the deal and stop. A provider with
// twenty thousand deals waiting so starts without twenty thousand reads
// taking the connections the operator's requests need.
func (s *store) unfinished(ctx context.Context) ([]uuid.UUID, error) {
	q, args := unfinishedQuery()
	ids, err := s.uuids(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing unfinished deals: %w", err)
	}
	return ids, nil
}

// unfinishedQuery is unfinished's statement and its arguments. It asks
// for the active deals (dealStateSQL) with the retry states the pipeline
// runs, so that the index on the state (market_deals_state_count) is read
// for the active deals only; retry IN (…) AND checkpoint != Complete
// reads as many rows on that index as there are deals, and SQLite, given
// the statistics of ANALYZE (which count values, not how often each
// comes), scans the table for it.
func unfinishedQuery() (string, []any) {
	idle, idleArgs := idleSQL()
	return `SELECT uuid FROM market_deals WHERE ` + dealStateSQL() + ` = ? AND retry IN (?, ?) AND NOT ` + idle,
		append([]any{StateActive, RetryNone, RetryAuto}, idleArgs...)
}

// idleSQL is dealRow.idle as an SQL condition, and its arguments.
func idleSQL() (string, []any) {
	return `((checkpoint = ? AND is_offline = ? AND transfer_type != ?) OR (checkpoint = ? AND publish_queued > ?))`,
		[]any{Accepted, true, transferFile, Transferred, 0}
}

// claimable lists up to limit unfinished deals at the checkpoints cps that
// no live node of the cluster holds (leases), the longest untouched
// first: work whose node died or that waits for a node doing its next
// step. Deals that wait for something else to move them on are left out
// (as dealRow.idle says): an offline deal waiting for its data, a queued
// deal waiting for a batch, a published deal whose batch has not landed.
func (s *store) claimable(ctx context.Context, cps []Checkpoint, leases Leases, limit int) ([]uuid.UUID, error) {
	if len(cps) == 0 {
		return nil, nil
	}
	in, args := inCheckpoints(cps)
	free, freeArgs := leases.FreeSQL(`'deal/' || uuid`)
	idle, idleArgs := idleSQL()
	args = append(append(append([]any{RetryNone, RetryAuto}, args...), idleArgs...), Published, batchSending)
	ids, err := s.uuids(ctx, `SELECT uuid FROM market_deals WHERE retry IN (?, ?) AND checkpoint IN (`+in+`) AND NOT `+idle+`
		AND NOT (checkpoint = ? AND batch_id IN (SELECT id FROM market_publish_batches WHERE state = ?))
		AND `+free+` ORDER BY updated_at LIMIT ?`, append(append(args, freeArgs...), limit)...)
	if err != nil {
		return nil, fmt.Errorf("listing deals no node works on: %w", err)
	}
	return ids, nil
}

// stagingDone returns those of ids whose staging file the market owns and
// no longer needs: the piece is in a sector and indexed (or at AddedPiece
// with its staging tag released: its index step failed and let the file
// go), or the deal failed.
func (s *store) stagingDone(ctx context.Context, ids []uuid.UUID) ([]uuid.UUID, error) {
	var out []uuid.UUID
	in, cps := inCheckpoints(IndexedAndAnnounced.andLater())
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		args := []any{true, RetryFatal}
		args = append(args, cps...)
		args = append(args, AddedPiece)
		for _, id := range chunk {
			args = append(args, id.String())
		}
		got, err := s.uuids(ctx, `SELECT uuid FROM market_deals d WHERE staging_owned = ? AND (retry = ? OR checkpoint IN (`+in+`)
				OR (checkpoint = ? AND NOT EXISTS (SELECT 1 FROM market_space_tags t WHERE t.uuid = d.uuid)))
			AND uuid IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(chunk)), ", ")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("looking up the deals of staged files: %w", err)
		}
		out = append(out, got...)
	}
	return out, nil
}

// uuids runs a query selecting deal UUIDs.
func (s *store) uuids(ctx context.Context, query string, args ...any) ([]uuid.UUID, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []uuid.UUID
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		id, err := uuid.Parse(v)
		if err != nil {
			return nil, fmt.Errorf("deal row %q: %w", v, err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// dealStateSQL is a deal's operator state (StateFailed, StateEnded,
// StateComplete or StateActive, in that order of precedence) as SQL over
// its row. The indexes of migration 0049 are on this very text, which
// SQLite and PostgreSQL match only when the query writes it alike: so the
// retry state and checkpoint it names are literals, written here from
// their Go values, and TestDealStateSQLIsIndexed checks it against the
// migration.
func dealStateSQL() string {
	return fmt.Sprintf(`CASE WHEN retry = '%s' THEN '%s' WHEN ended_at != 0 THEN '%s' WHEN checkpoint = '%s' THEN '%s' ELSE '%s' END`,
		RetryFatal, StateFailed, StateEnded, Complete, StateComplete, StateActive)
}

// logs returns a deal's log, oldest first.
func (s *store) logs(ctx context.Context, id uuid.UUID) ([]DealLog, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT at, text FROM market_deal_logs WHERE uuid = ? ORDER BY id`, id.String())
	if err != nil {
		return nil, fmt.Errorf("reading log of deal %s: %w", id, err)
	}
	defer rows.Close()
	out := []DealLog{}
	for rows.Next() {
		var at int64
		var l DealLog
		if err := rows.Scan(&at, &l.Text); err != nil {
			return nil, fmt.Errorf("reading log of deal %s: %w", id, err)
		}
		l.At = time.Unix(0, at)
		out = append(out, l)
	}
	return out, rows.Err()
}

// countsQuery is counts' statement.
func countsQuery() string {
	return `SELECT ` + dealStateSQL() + `, checkpoint, count(*) FROM market_deals GROUP BY ` + dealStateSQL() + `, checkpoint ORDER BY 1, 2`
}

// counts counts the deals by state and checkpoint, from the index on
// their state.
func (s *store) counts(ctx context.Context) ([]DealCount, error) {
	rows, err := s.db.QueryContext(ctx, countsQuery())
	if err != nil {
		return nil, fmt.Errorf("counting deals: %w", err)
	}
	defer rows.Close()
	var out []DealCount
	for rows.Next() {
		var c DealCount
		if err := rows.Scan(&c.State, &c.Checkpoint, &c.N); err != nil {
			return nil, fmt.Errorf("counting deals: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// log appends a line to a deal's log.
func (s *store) log(ctx context.Context, id uuid.UUID, format string, args ...any) error {
	return addLog(ctx, s.db, id, format, args...)
}

func addLog(ctx context.Context, q sqlExec, id uuid.UUID, format string, args ...any) error {
	_, err := q.ExecContext(ctx, `INSERT INTO market_deal_logs (uuid, at, text) VALUES (?, ?, ?)`,
		id.String(), time.Now().UnixNano(), fmt.Sprintf(format, args...))
	if err != nil {
		return fmt.Errorf("writing log of deal %s: %w", id, err)
	}
	return nil
}

// advanceTx moves a deal to checkpoint cp, clearing any retry state, with
// the given columns set in the same statement, and logs it. set holds
// column names and values in turn; the names are the store's own.
func advanceTx(ctx context.Context, tx *sql.Tx, id uuid.UUID, cp Checkpoint, set ...any) error {
	q := `UPDATE market_deals SET checkpoint = ?, updated_at = ?, retry = ?, retries = ?, error = ?`
	args := []any{cp, time.Now().UnixNano(), RetryNone, 0, ""}
	for i := 0; i+1 < len(set); i += 2 {
		q += ", " + set[i].(string) + " = ?"
		args = append(args, set[i+1])
	}
	if _, err := tx.ExecContext(ctx, q+` WHERE uuid = ?`, append(args, id.String())...); err != nil {
		return fmt.Errorf("recording checkpoint %s of deal %s: %w", cp, id, err)
	}
	return addLog(ctx, tx, id, "%s", checkpointLog(cp))
}

// advance runs advanceTx in its own transaction.
func (s *store) advance(ctx context.Context, id uuid.UUID, cp Checkpoint, set ...any) error {
	return db.InTx(ctx, s.db, func(tx *sql.Tx) error { return advanceTx(ctx, tx, id, cp, set...) })
}

// saveProgress records the bytes a running transfer has received.
func (s *store) saveProgress(ctx context.Context, id uuid.UUID, received uint64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE market_deals SET bytes_received = ? WHERE uuid = ?`, int64(received), id.String())
	return err
}

// setTransferred records Transferred: the deal's data, bytes long, is at
// path on node (the cluster node ID, "" on a single node), which the
// market removes once the piece is in a sector when it owns the file (a
// download) and leaves alone otherwise (an import). crc is the CRC-32C of
// the data checked against the piece CID, nil when none was computed.
func (s *store) setTransferred(ctx context.Context, id uuid.UUID, bytes uint64, path, node string, owned bool, crc *uint32) error {
	var sum sql.NullInt64
	if crc != nil {
		sum = sql.NullInt64{Int64: int64(*crc), Valid: true}
	}
	return s.advance(ctx, id, Transferred,
		"bytes_received", int64(bytes), "transfer_size", int64(bytes), "staging_path", path, "staging_node", node, "staging_owned", owned,
		"data_crc32c", sum)
}

// queueForPublish puts a Transferred deal in the publish queue, once.
func (s *store) queueForPublish(ctx context.Context, id uuid.UUID) error {
	return db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		now := time.Now().UnixNano()
		res, err := tx.ExecContext(ctx, `UPDATE market_deals SET publish_queued = ?, updated_at = ?
			WHERE uuid = ? AND checkpoint = ? AND publish_queued = ?`, now, now, id.String(), Transferred, 0)
		if err != nil {
			return fmt.Errorf("queueing deal %s for publish: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		return addLog(ctx, tx, id, "waiting for a publish batch")
	})
}

// setAddedPiece records AddedPiece with the piece's place. The deal's
// staging tag stays: its file is read once more, for the index.
func (s *store) setAddedPiece(ctx context.Context, id uuid.UUID, sector abi.SectorNumber, offset abi.PaddedPieceSize) error {
	return s.advance(ctx, id, AddedPiece, "sector", int64(sector), "sector_offset", int64(offset))
}

// releaseStagingTag releases the deal's staging tag.
func (s *store) releaseStagingTag(ctx context.Context, id uuid.UUID) error {
	return db.InTx(ctx, s.db, func(tx *sql.Tx) error { return releaseTx(ctx, tx, id, false, true) })
}

// setIndexed records IndexedAndAnnounced and releases the deal's staging
// tag (its file is gone by then).
func (s *store) setIndexed(ctx context.Context, id uuid.UUID) error {
	return db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := advanceTx(ctx, tx, id, IndexedAndAnnounced); err != nil {
			return err
		}
		return releaseTx(ctx, tx, id, false, true)
	})
}

// setSealingState records the state of the deal's sector.
func (s *store) setSealingState(ctx context.Context, id uuid.UUID, state string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE market_deals SET sealing_state = ?, updated_at = ? WHERE uuid = ?`,
		state, time.Now().UnixNano(), id.String()); err != nil {
		return fmt.Errorf("recording sealing state of deal %s: %w", id, err)
	}
	return nil
}

// retryLater records a failed step: the retry state, the attempt count,
// when to try again and the error, with logLine in the deal's log.
func (s *store) retryLater(ctx context.Context, id uuid.UUID, state RetryState, retries int, after time.Time, cause, logLine string) error {
	err := db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE market_deals SET retry = ?, retries = ?, retry_after = ?, error = ?, updated_at = ? WHERE uuid = ?`,
			state, retries, after.UnixNano(), cause, time.Now().UnixNano(), id.String()); err != nil {
			return err
		}
		return addLog(ctx, tx, id, "%s", logLine)
	})
	if err != nil {
		return fmt.Errorf("recording failure of deal %s: %w", id, err)
	}
	return nil
}

// switchSource makes a deal download from the next of its URLs: params
// name it first, and the retries start again from none.
func (s *store) switchSource(ctx context.Context, id uuid.UUID, params []byte, logLine string) error {
	err := db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE market_deals SET transfer_params = ?, bytes_received = 0, retry = ?, retries = 0, retry_after = 0, error = '', updated_at = ? WHERE uuid = ?`,
			params, RetryNone, time.Now().UnixNano(), id.String()); err != nil {
			return err
		}
		return addLog(ctx, tx, id, "%s", logLine)
	})
	if err != nil {
		return fmt.Errorf("recording the next download URL of deal %s: %w", id, err)
	}
	return nil
}

// clearRetry makes a deal waiting for a retry run again now.
func (s *store) clearRetry(ctx context.Context, id uuid.UUID, logLine string) error {
	err := db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE market_deals SET retry = ?, retries = ?, retry_after = ?, updated_at = ? WHERE uuid = ?`,
			RetryNone, 0, 0, time.Now().UnixNano(), id.String()); err != nil {
			return err
		}
		return addLog(ctx, tx, id, "%s", logLine)
	})
	if err != nil {
		return fmt.Errorf("retrying deal %s: %w", id, err)
	}
	return nil
}

// fail fails a deal for good, takes it out of the publish queue and drops
// its tags. It returns the deal's staging file, the node holding it and
// whether the market owns it, for the caller to remove.
func (s *store) fail(ctx context.Context, id uuid.UUID, reason string) (staging, node string, owned bool, err error) {
	err = db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT staging_path, staging_node, staging_owned FROM market_deals WHERE uuid = ?`,
			id.String()).Scan(&staging, &node, &owned); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE market_deals SET retry = ?, error = ?, publish_queued = ?, updated_at = ? WHERE uuid = ?`,
			RetryFatal, reason, 0, time.Now().UnixNano(), id.String()); err != nil {
			return err
		}
		if err := addLog(ctx, tx, id, "failed: %s", reason); err != nil {
			return err
		}
		return releaseTx(ctx, tx, id, true, true)
	})
	if err != nil {
		return "", "", false, fmt.Errorf("failing deal %s: %w", id, err)
	}
	return staging, node, owned, nil
}

// --- tags and admission ---

// newDeal is a deal admission records: its row and what it tags.
type newDeal struct {
	params     *wire.DealParams
	signedCID  cid.Cid
	clientKey  address.Address // the client's key address, which its escrow tag names
	clientPeer string
	staging    string          // the staging file of an online deal
	collateral abi.TokenAmount // provider collateral, tagged until published
	fee        abi.TokenAmount // the publish fee reserved, tagged until published
	escrow     abi.TokenAmount // the client's escrow the deal will lock, tagged until published
	space      uint64          // staging bytes, tagged until the piece is in a sector
}

// tagged is what the tags of the deals admitted so far hold.
type tagged struct {
	collateral, fee abi.TokenAmount
	clientEscrow    abi.TokenAmount // this deal's client's escrow, tagged by its other deals
	space           uint64
}

// Kinds of duplicate proposal.
const (
	dupIdentical = iota + 1 // the same signed proposal
	dupContent              // the same piece, client, provider, epochs and price, signed again
	dupUUID                 // the UUID is in use
)

// duplicateError: admission found a deal the proposal duplicates.
type duplicateError struct {
	kind  int
	first uuid.UUID // the earlier deal
}

func (e duplicateError) Error() string {
	switch e.kind {
	case dupIdentical:
		return fmt.Sprintf("the proposal is identical to that of deal %s", e.first)
	case dupContent:
		return fmt.Sprintf("the proposal has the same piece, client, provider, epochs and price as deal %s", e.first)
	}
	return fmt.Sprintf("the deal UUID %s is already in use", e.first)
}

// duplicate looks for a deal nd duplicates: the same signed proposal, the
// same content (which the market actor would refuse to publish twice)
// unless that deal failed before it was published, or the same UUID. It
// returns a duplicateError when there is one.
func (s *store) duplicate(ctx context.Context, nd *newDeal) error {
	return duplicateIn(ctx, s.db, nd)
}

func duplicateIn(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, nd *newDeal) error {
	prop := &nd.params.ClientDealProposal.Proposal
	published, cps := inCheckpoints(PublishConfirmed.andLater())
	// One query (a round trip, which counts on PostgreSQL) for the three
	// kinds, the first found winning.
	var kind int
	var other string
	err := q.QueryRowContext(ctx, `SELECT kind, uuid FROM (
			SELECT CAST(? AS INTEGER) AS kind, uuid FROM market_deals WHERE signed_proposal_cid = ?
			UNION ALL SELECT * FROM (SELECT CAST(? AS INTEGER) AS kind, uuid FROM market_deals WHERE piece_cid = ? AND client_key = ? AND start_epoch = ?
				AND end_epoch = ? AND provider = ? AND price = ? AND (retry != ? OR checkpoint IN (`+published+`))
				ORDER BY created_at LIMIT 1) content
			UNION ALL SELECT CAST(? AS INTEGER) AS kind, uuid FROM market_deals WHERE uuid = ?
		) dups ORDER BY kind LIMIT 1`,
		append(append([]any{dupIdentical, nd.signedCID.String(), dupContent, prop.PieceCID.String(), nd.clientKey.String(),
			int64(prop.StartEpoch), int64(prop.EndEpoch), prop.Provider.String(), prop.StoragePricePerEpoch.String(), RetryFatal},
			cps...), dupUUID, nd.params.DealUUID.String())...).Scan(&kind, &other)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking for deals proposal %s duplicates: %w", nd.signedCID, err)
	}
	first, err := uuid.Parse(other)
	if err != nil {
		return fmt.Errorf("deal row %q: %w", other, err)
	}
	return duplicateError{kind: kind, first: first}
}

// admit records nd with its tags in one transaction, after checking that
// neither its proposal nor its UUID is known (a duplicateError) and that
// fits accepts it on top of what other deals have tagged (fits' error is
// returned as it is). The transaction is what makes admission atomic,
// also against other processes.
func (s *store) admit(ctx context.Context, nd *newDeal, fits func(tagged) error) error {
	params := nd.params
	prop := &params.ClientDealProposal.Proposal
	id := params.DealUUID
	var cbor bytes.Buffer
	if err := params.ClientDealProposal.MarshalCBOR(&cbor); err != nil {
		return fmt.Errorf("encoding the proposal: %w", err)
	}
	cn, ca, err1 := splitAtto(nd.collateral)
	fn, fa, err2 := splitAtto(nd.fee)
	en, ea, err3 := splitAtto(nd.escrow)
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	return db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		// Admissions take turns, each seeing the deals and tags of those
		// before it (on SQLite every transaction does; on PostgreSQL the
		// lock makes them).
		if err := db.Serialize(ctx, tx, admissionLock); err != nil {
			return err
		}
		if err := duplicateIn(ctx, tx, nd); err != nil {
			return err
		}
		t, err := tagTotals(ctx, tx, nd.clientKey)
		if err != nil {
			return err
		}
		if err := fits(t); err != nil {
			return err
		}

		now := time.Now().UnixNano()
		_, err = tx.ExecContext(ctx, `INSERT INTO market_deals (uuid, signed_proposal_cid, created_at, updated_at, client_peer,
			client_key, proposal, piece_cid, piece_size, start_epoch, end_epoch, verified, data_root, is_offline,
			transfer_type, transfer_params, transfer_size, staging_path, keep_unsealed, skip_ipni, checkpoint, provider, price)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id.String(), nd.signedCID.String(), now, now, nd.clientPeer, nd.clientKey.String(), cbor.Bytes(),
			prop.PieceCID.String(), int64(prop.PieceSize), int64(prop.StartEpoch), int64(prop.EndEpoch), prop.VerifiedDeal,
			cidString(params.DealDataRoot), params.IsOffline, params.Transfer.Type, params.Transfer.Params,
			int64(params.Transfer.Size), nd.staging, !params.RemoveUnsealedCopy, params.SkipIPNIAnnounce, Accepted,
			prop.Provider.String(), prop.StoragePricePerEpoch.String())
		if err != nil {
			return fmt.Errorf("recording deal: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO market_funds_tags (uuid, collateral_nano, collateral_atto, fee_nano, fee_atto,
			client, escrow_nano, escrow_atto) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			id.String(), cn, ca, fn, fa, nd.clientKey.String(), en, ea); err != nil {
			return fmt.Errorf("tagging funds: %w", err)
		}
		if err := tagSpaceTx(ctx, tx, id, nd.space); err != nil {
			return err
		}
		if err := addLog(ctx, tx, id, "accepted from peer %s (offline %t, piece %s, %d bytes)", nd.clientPeer, params.IsOffline, prop.PieceCID, prop.PieceSize); err != nil {
			return err
		}
		var c tagChange
		c.funds(nd.clientKey.String(), tagSums{collateralNano: cn, collateralAtto: ca, feeNano: fn, feeAtto: fa, escrowNano: en, escrowAtto: ea}, 1)
		c.staging(int64(nd.space), 1)
		return c.writeTx(ctx, tx)
	})
}

// directConflict returns a rejection when nd's UUID is in use or another
// direct deal that has not failed claims the same allocation of the same
// client.
func directConflict(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, nd *newDirectDeal) error {
	var other string
	err := q.QueryRowContext(ctx, `SELECT uuid FROM market_deals WHERE uuid = ?`, nd.id.String()).Scan(&other)
	if err == nil {
		return rejectDirect("the deal UUID %s is already in use", nd.id)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("looking up deal %s: %w", nd.id, err)
	}
	err = q.QueryRowContext(ctx, `SELECT uuid FROM market_deals WHERE allocation_id = ? AND client_key = ? AND kind = ? AND retry != ?
		ORDER BY created_at LIMIT 1`, int64(nd.allocationID), nd.clientKey.String(), KindDirect, RetryFatal).Scan(&other)
	if err == nil {
		return rejectDirect("deal %s already claims allocation %d of client %s", other, nd.allocationID, nd.clientKey)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("looking for deals of allocation %d: %w", nd.allocationID, err)
	}
	return nil
}

// checkDirect runs admitDirect's checks on what is recorded (directConflict)
// without recording anything.
func (s *store) checkDirect(ctx context.Context, nd *newDirectDeal) error {
	return directConflict(ctx, s.db, nd)
}

// admitDirect records a direct deal, with its staging tag when its data
// goes to staging, in one transaction, after checking within it that its
// UUID is new and that no other deal that has not failed claims the same
// allocation of the same client (directConflict). The staging reservation
// nd names, if any, becomes the deal's tag in the same transaction; bytes
// beyond it must be accepted by fits on top of those held (fits' error is
// returned as it is).
func (s *store) admitDirect(ctx context.Context, nd *newDirectDeal, fits func(space uint64) error) error {
	var manifest bytes.Buffer
	if err := nd.manifest.MarshalCBOR(&manifest); err != nil {
		return fmt.Errorf("encoding the piece manifest: %w", err)
	}
	id := nd.id.String()
	return db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		// Turns with the other admissions and reservations, which also
		// hold staging space.
		if err := db.Serialize(ctx, tx, admissionLock); err != nil {
			return err
		}
		if err := directConflict(ctx, tx, nd); err != nil {
			return err
		}
		// A reservation made for this deal becomes its tag: it is
		// deleted here and the tag inserted below, in this transaction.
		var reserved uint64
		if nd.reservation != "" {
			var n int64
			err := tx.QueryRowContext(ctx, `DELETE FROM market_staging_reservations WHERE id = ? RETURNING bytes`, nd.reservation).Scan(&n)
			if errors.Is(err, sql.ErrNoRows) {
				return rejectDirect("the staging reservation %s is gone (released, or never made)", nd.reservation)
			}
			if err != nil {
				return fmt.Errorf("taking over staging reservation %s: %w", nd.reservation, err)
			}
			reserved = uint64(n)
		}
		if nd.space > reserved {
			used, err := stagingUsed(ctx, tx)
			if err != nil {
				return err
			}
			if err := fits(used); err != nil { // the reservation is gone from used
				return err
			}
		}
		now := time.Now().UnixNano()
		// signed_proposal_cid must be set and unique: a direct deal has no
		// signed proposal, and its UUID is what names it.
		_, err := tx.ExecContext(ctx, `INSERT INTO market_deals (uuid, kind, signed_proposal_cid, created_at, updated_at, client_peer,
			client_key, proposal, allocation_id, piece_cid, piece_size, start_epoch, end_epoch, verified, data_root, is_offline,
			transfer_type, transfer_params, transfer_size, staging_path, staging_node, staging_owned, delete_after_add, keep_unsealed, skip_ipni,
			checkpoint, provider, price)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, KindDirect, id, now, now, nd.source, nd.clientKey.String(), manifest.Bytes(), int64(nd.allocationID),
			nd.manifest.CID.String(), int64(nd.manifest.Size), int64(nd.start), int64(nd.end), nd.manifest.VerifiedAllocationKey != nil,
			"", nd.offline, nd.transferType, nd.params, int64(nd.size), nd.staging, nd.stagingNode, nd.owned, nd.deleteAfter, nd.keepUnsealed, nd.skipIPNI,
			Accepted, "", "")
		if err != nil {
			return fmt.Errorf("recording direct deal %s: %w", nd.id, err)
		}
		if err := tagSpaceTx(ctx, tx, nd.id, nd.space); err != nil {
			return err
		}
		if err := addLog(ctx, tx, nd.id, "direct deal accepted from %s (allocation %d of client %s, piece %s, %d bytes, epochs %d to %d)",
			nd.source, nd.allocationID, nd.clientKey, nd.manifest.CID, nd.manifest.Size, nd.start, nd.end); err != nil {
			return err
		}
		var c tagChange
		if nd.space > 0 {
			c.staging(int64(nd.space), 1)
		}
		return c.writeTx(ctx, tx)
	})
}

// tagSpaceTx tags bytes of staging for deal id (nothing for 0 bytes); the
// caller adds them to its tagChange.
func tagSpaceTx(ctx context.Context, tx *sql.Tx, id uuid.UUID, bytes uint64) error {
	if bytes == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO market_space_tags (uuid, bytes) VALUES (?, ?)`, id.String(), int64(bytes)); err != nil {
		return fmt.Errorf("tagging staging space of deal %s: %w", id, err)
	}
	return nil
}

// releaseTagsTx drops a deal's funds and staging tags, and takes what
// they held from c; the caller writes c to the totals before it commits.
func releaseTagsTx(ctx context.Context, tx *sql.Tx, id uuid.UUID, funds, space bool, c *tagChange) error {
	if funds {
		var client string
		var t tagSums
		err := tx.QueryRowContext(ctx, `DELETE FROM market_funds_tags WHERE uuid = ?
			RETURNING client, collateral_nano, collateral_atto, fee_nano, fee_atto, escrow_nano, escrow_atto`, id.String()).
			Scan(&client, &t.collateralNano, &t.collateralAtto, &t.feeNano, &t.feeAtto, &t.escrowNano, &t.escrowAtto)
		switch {
		case err == nil:
			c.funds(client, t, -1)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("releasing funds tag of deal %s: %w", id, err)
		}
	}
	if space {
		var bytes int64
		err := tx.QueryRowContext(ctx, `DELETE FROM market_space_tags WHERE uuid = ? RETURNING bytes`, id.String()).Scan(&bytes)
		switch {
		case err == nil:
			c.staging(bytes, -1)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("releasing staging tag of deal %s: %w", id, err)
		}
	}
	return nil
}

// releaseTx releases a deal's tags (releaseTagsTx) and writes the change
// to the totals.
func releaseTx(ctx context.Context, tx *sql.Tx, id uuid.UUID, funds, space bool) error {
	var c tagChange
	if err := releaseTagsTx(ctx, tx, id, funds, space, &c); err != nil {
		return err
	}
	return c.writeTx(ctx, tx)
}

// stagingUsed is the staging bytes held (tagTotals: the deals' tags and
// the reservations made for deals not yet recorded).
func stagingUsed(ctx context.Context, tx *sql.Tx) (uint64, error) {
	t, err := tagTotals(ctx, tx, address.Undef)
	return t.space, err
}

// reserveStaging records a reservation of n staging bytes under id unless
// one exists; fits is asked, within the transaction, whether n more bytes
// fit beside those held (its error is returned as it is).
func (s *store) reserveStaging(ctx context.Context, id string, n uint64, fits func(used uint64) error) error {
	err := db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		// Turns with the admissions, which also hold staging space.
		if err := db.Serialize(ctx, tx, admissionLock); err != nil {
			return err
		}
		var have int64
		err := tx.QueryRowContext(ctx, `SELECT bytes FROM market_staging_reservations WHERE id = ?`, id).Scan(&have)
		if err == nil {
			return nil // reserved before: the answer was lost
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		used, err := stagingUsed(ctx, tx)
		if err != nil {
			return err
		}
		if err := fits(used); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO market_staging_reservations (id, bytes, created_at) VALUES (?, ?, ?)`,
			id, int64(n), time.Now().UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("reserving %d staging bytes for %s: %w", n, id, err)
	}
	return nil
}

// releaseStaging drops the reservation under id, if there is one.
func (s *store) releaseStaging(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM market_staging_reservations WHERE id = ?`, id); err != nil {
		return fmt.Errorf("releasing the staging reservation of %s: %w", id, err)
	}
	return nil
}

// stagingReservations lists the ids holding a reservation, oldest first.
func (s *store) stagingReservations(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM market_staging_reservations ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("listing staging reservations: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("listing staging reservations: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// releaseStaleTags drops the tags of deals that no longer need them: funds
// once published on chain or failed, staging once the piece is in a sector
// and indexed or the deal failed. Each release goes with its checkpoint, so there are
// none unless a database written before that has some; the tags, not the
// deals, are read to find out.
func (s *store) releaseStaleTags(ctx context.Context) error {
	for _, t := range []struct {
		table        string
		from         Checkpoint
		funds, space bool
	}{{"market_funds_tags", PublishConfirmed, true, false}, {"market_space_tags", IndexedAndAnnounced, false, true}} {
		in, args := inCheckpoints(t.from.andLater())
		ids, err := s.uuids(ctx, `SELECT t.uuid FROM `+t.table+` t JOIN market_deals d ON d.uuid = t.uuid
			WHERE d.retry = ? OR d.checkpoint IN (`+in+`)`, append([]any{RetryFatal}, args...)...)
		if err != nil {
			return fmt.Errorf("looking for stale %s: %w", t.table, err)
		}
		if len(ids) == 0 {
			continue
		}
		err = db.InTx(ctx, s.db, func(tx *sql.Tx) error {
			var c tagChange
			for _, id := range ids {
				if err := releaseTagsTx(ctx, tx, id, t.funds, t.space, &c); err != nil {
					return err
				}
			}
			return c.writeTx(ctx, tx)
		})
		if err != nil {
			return fmt.Errorf("releasing %s: %w", t.table, err)
		}
	}
	return nil
}

var nano = big.NewInt(1_000_000_000)

// splitAtto splits an attoFIL amount into nanoFIL and the attoFIL rest.
func splitAtto(a big.Int) (nanoPart, attoPart int64, err error) {
	if a.Int == nil || a.Sign() < 0 {
		return 0, 0, fmt.Errorf("amount %v cannot be tagged", a)
	}
	q, r := big.Div(a, nano), big.Mod(a, nano)
	if !q.IsInt64() {
		return 0, 0, fmt.Errorf("amount %s is too large to tag", a)
	}
	return q.Int64(), r.Int64(), nil
}

// admissionLock is the name under which admissions take turns
// (db.Serialize), each reading the totals the one before left.
const admissionLock = "market.admission"

// allClients names the row of market_tag_totals that holds the sums over
// every tag; the other rows are named by a client's key address.
const allClients = "*"

// tagSums is what tags hold, or a row of market_tag_totals: nano/atto
// pairs as in the tags, and staging bytes.
type tagSums struct {
	collateralNano, collateralAtto int64
	feeNano, feeAtto               int64
	escrowNano, escrowAtto         int64
	space                          int64
}

// add adds sign times o to s.
func (s *tagSums) add(o tagSums, sign int64) {
	s.collateralNano += sign * o.collateralNano
	s.collateralAtto += sign * o.collateralAtto
	s.feeNano += sign * o.feeNano
	s.feeAtto += sign * o.feeAtto
	s.escrowNano += sign * o.escrowNano
	s.escrowAtto += sign * o.escrowAtto
	s.space += sign * o.space
}

// tagChange adds up what one transaction's tag writes and releases change
// in market_tag_totals, for writeTx to apply in one statement.
type tagChange struct {
	all     tagSums
	clients map[string]tagSums
	changed bool
}

// funds counts a funds tag of client written (sign 1) or dropped (-1).
func (c *tagChange) funds(client string, t tagSums, sign int64) {
	t.space = 0
	c.all.add(t, sign)
	if c.clients == nil {
		c.clients = map[string]tagSums{}
	}
	sum := c.clients[client]
	sum.add(t, sign)
	c.clients[client] = sum
	c.changed = true
}

// staging counts a staging tag of bytes written (sign 1) or dropped (-1).
func (c *tagChange) staging(bytes, sign int64) {
	c.all.space += sign * bytes
	c.changed = true
}

// writeTx adds the change to the totals, the row of every tag first and
// then the clients' rows. A transaction writes it after its other writes:
// the row of every tag is the one lock every tag writer takes, so taking
// it last, and all client rows only after it, no two writers wait for
// each other's locks (a release holding a deal's row waits at most for
// the transaction holding the totals to commit).
func (c *tagChange) writeTx(ctx context.Context, tx *sql.Tx) error {
	if !c.changed {
		return nil
	}
	row := func(client string, t tagSums) []any {
		return []any{client, t.collateralNano, t.collateralAtto, t.feeNano, t.feeAtto, t.escrowNano, t.escrowAtto, t.space}
	}
	values, args := `(?, ?, ?, ?, ?, ?, ?, ?)`, row(allClients, c.all)
	for _, client := range slices.Sorted(maps.Keys(c.clients)) {
		values, args = values+`, (?, ?, ?, ?, ?, ?, ?, ?)`, append(args, row(client, c.clients[client])...)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO market_tag_totals (client, collateral_nano, collateral_atto, fee_nano, fee_atto,
		escrow_nano, escrow_atto, space) VALUES `+values+` ON CONFLICT (client) DO UPDATE SET
		collateral_nano = market_tag_totals.collateral_nano + excluded.collateral_nano,
		collateral_atto = market_tag_totals.collateral_atto + excluded.collateral_atto,
		fee_nano = market_tag_totals.fee_nano + excluded.fee_nano, fee_atto = market_tag_totals.fee_atto + excluded.fee_atto,
		escrow_nano = market_tag_totals.escrow_nano + excluded.escrow_nano,
		escrow_atto = market_tag_totals.escrow_atto + excluded.escrow_atto,
		space = market_tag_totals.space + excluded.space`, args...)
	if err != nil {
		return fmt.Errorf("updating the tag totals: %w", err)
	}
	return nil
}

// tagTotals reads what the tags hold from their totals: the collateral
// and publish fees of all tags, the escrow client's tags reserve (none
// for address.Undef), and the staging bytes held, those tagged and those
// reserved for deals not yet recorded (market_staging_reservations: one
// row per upload in flight, summed here). One statement reading two rows
// of totals, however many deals hold tags.
func tagTotals(ctx context.Context, tx *sql.Tx, client address.Address) (tagged, error) {
	name := allClients
	if client != address.Undef {
		name = client.String()
	}
	var cn, ca, fn, fa, en, ea, space int64
	err := tx.QueryRowContext(ctx, `SELECT coalesce(a.collateral_nano, 0), coalesce(a.collateral_atto, 0),
		coalesce(a.fee_nano, 0), coalesce(a.fee_atto, 0), coalesce(c.escrow_nano, 0), coalesce(c.escrow_atto, 0),
		coalesce(a.space, 0) + (SELECT coalesce(sum(bytes), 0) FROM market_staging_reservations)
		FROM (SELECT 1 AS one) o LEFT JOIN market_tag_totals a ON a.client = ? LEFT JOIN market_tag_totals c ON c.client = ?`,
		allClients, name).Scan(&cn, &ca, &fn, &fa, &en, &ea, &space)
	if err != nil {
		return tagged{}, fmt.Errorf("reading the tag totals: %w", err)
	}
	t := tagged{collateral: joinAtto(cn, ca), fee: joinAtto(fn, fa), clientEscrow: joinAtto(en, ea), space: uint64(space)}
	if client == address.Undef {
		t.clientEscrow = big.Zero()
	}
	return t, nil
}

// joinAtto is the amount splitAtto split (or the sums of its parts).
func joinAtto(nanoPart, attoPart int64) big.Int {
	return big.Add(big.Mul(big.NewInt(nanoPart), nano), big.NewInt(attoPart))
}

func cidString(c cid.Cid) string {
	if !c.Defined() {
		return ""
	}
	return c.String()
}

// --- publish batches ---

// publishLock serialises the transactions that record and land publish
// batches (two nodes may, one having led before the other).
const publishLock = "market.publish"

// Batch states.
const (
	batchSending = "sending" // recorded; its message is being sent or waited for
	batchLanded  = "landed"
	batchFailed  = "failed"
)

// batchRow is a market_publish_batches row.
type batchRow struct {
	id     int64
	msgID  uuid.UUID // the message's id at the sender; uuid.Nil for a batch signed before there was one
	msgCid cid.Cid   // undefined until the sender returned it
	deals  []uuid.UUID
	state  string
	err    string // why a failed batch failed
}

// publishQueue returns up to limit queued deals, the longest queued first,
// and when the first was queued.
func (s *store) publishQueue(ctx context.Context, limit int) ([]uuid.UUID, time.Time, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT uuid, publish_queued FROM market_deals
		WHERE publish_queued > ? AND checkpoint = ? AND retry IN (?, ?) ORDER BY publish_queued, uuid LIMIT ?`,
		0, Transferred, RetryNone, RetryAuto, limit)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("reading the publish queue: %w", err)
	}
	defer rows.Close()
	var ids []uuid.UUID
	var oldest int64
	for rows.Next() {
		var v string
		var q int64
		if err := rows.Scan(&v, &q); err != nil {
			return nil, time.Time{}, fmt.Errorf("reading the publish queue: %w", err)
		}
		id, err := uuid.Parse(v)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("deal row %q: %w", v, err)
		}
		if oldest == 0 {
			oldest = q
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("reading the publish queue: %w", err)
	}
	return ids, time.Unix(0, oldest), nil
}

// recordBatch records a batch of deals to publish in one message, sent as
// msgID, and moves the deals to Published, in one transaction.
func (s *store) recordBatch(ctx context.Context, msgID uuid.UUID, deals []uuid.UUID) (int64, error) {
	ids := make([]string, len(deals))
	for i, d := range deals {
		ids[i] = d.String()
	}
	djson, err := json.Marshal(ids)
	if err != nil {
		return 0, fmt.Errorf("encoding publish batch deals: %w", err)
	}
	var batchID int64
	err = db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := db.Serialize(ctx, tx, publishLock); err != nil {
			return err
		}
		// Only deals still queued go in: a deal another publisher (a node
		// that led before) batched meanwhile makes the batch fail whole,
		// so no deal is ever in two messages.
		in, cps := inCheckpoints([]Checkpoint{Transferred})
		for _, d := range deals {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM market_deals WHERE uuid = ? AND checkpoint IN (`+in+`) AND publish_queued > ?`,
				append(append([]any{d.String()}, cps...), 0)...).Scan(&n); err != nil {
				return fmt.Errorf("checking deal %s is still queued: %w", d, err)
			}
			if n != 1 {
				return fmt.Errorf("deal %s is no longer queued for publishing", d)
			}
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO market_publish_batches (created_at, msg_id, msg_cid, deals, state)
			VALUES (?, ?, ?, ?, ?) RETURNING id`, time.Now().UnixNano(), msgID.String(), "", string(djson), batchSending).Scan(&batchID)
		if err != nil {
			return fmt.Errorf("recording publish batch: %w", err)
		}
		for _, d := range deals {
			if err := advanceTx(ctx, tx, d, Published, "publish_queued", 0, "batch_id", batchID); err != nil {
				return err
			}
		}
		return nil
	})
	return batchID, err
}

// batch reads a publish batch.
func (s *store) batch(ctx context.Context, id int64) (*batchRow, error) {
	b := batchRow{id: id}
	var mid, mc, ds string
	err := s.db.QueryRowContext(ctx, `SELECT msg_id, msg_cid, deals, state, error FROM market_publish_batches WHERE id = ?`, id).Scan(&mid, &mc, &ds, &b.state, &b.err)
	if err != nil {
		return nil, fmt.Errorf("reading publish batch %d: %w", id, err)
	}
	if mid != "" {
		if b.msgID, err = uuid.Parse(mid); err != nil {
			return nil, fmt.Errorf("publish batch %d message id: %w", id, err)
		}
	}
	if mc != "" {
		if b.msgCid, err = cid.Decode(mc); err != nil {
			return nil, fmt.Errorf("publish batch %d message CID: %w", id, err)
		}
	}
	var ss []string
	if err := json.Unmarshal([]byte(ds), &ss); err != nil {
		return nil, fmt.Errorf("publish batch %d deals: %w", id, err)
	}
	for _, v := range ss {
		u, err := uuid.Parse(v)
		if err != nil {
			return nil, fmt.Errorf("publish batch %d deals: %w", id, err)
		}
		b.deals = append(b.deals, u)
	}
	return &b, nil
}

// sendingBatches lists the batches whose message has not landed.
func (s *store) sendingBatches(ctx context.Context) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM market_publish_batches WHERE state = ? ORDER BY id`, batchSending)
	if err != nil {
		return nil, fmt.Errorf("listing publish batches: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("listing publish batches: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// setBatchSent records the CID of a batch's message on the batch and its
// deals.
func (s *store) setBatchSent(ctx context.Context, b *batchRow, msg cid.Cid) error {
	err := db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE market_publish_batches SET msg_cid = ? WHERE id = ?`, msg.String(), b.id); err != nil {
			return err
		}
		for _, d := range b.deals {
			if _, err := tx.ExecContext(ctx, `UPDATE market_deals SET publish_cid = ?, updated_at = ? WHERE uuid = ? AND batch_id = ?`,
				msg.String(), time.Now().UnixNano(), d.String(), b.id); err != nil {
				return err
			}
			if err := addLog(ctx, tx, d, "publish message %s sent", msg); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording message %s of publish batch %d: %w", msg, b.id, err)
	}
	return nil
}

// landBatch applies a landed publish message: every deal of the batch
// still Published and not failed moves to PublishConfirmed with its chain
// deal ID (dealIDs, by position in the batch) or, when the market actor
// rejected it, is returned as invalid; every deal's funds tag goes.
func (s *store) landBatch(ctx context.Context, b *batchRow, final cid.Cid, dealIDs map[int]abi.DealID) (confirmed, invalid []uuid.UUID, err error) {
	err = db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := db.Serialize(ctx, tx, publishLock); err != nil {
			return err
		}
		var released tagChange
		for i, d := range b.deals {
			var cp Checkpoint
			var retry string
			if err := tx.QueryRowContext(ctx, `SELECT checkpoint, retry FROM market_deals WHERE uuid = ?`, d.String()).Scan(&cp, &retry); err != nil {
				return err
			}
			if err := releaseTagsTx(ctx, tx, d, true, false, &released); err != nil {
				return err
			}
			if cp != Published || RetryState(retry) == RetryFatal {
				continue // failed by an operator meanwhile, or already confirmed
			}
			id, ok := dealIDs[i]
			if !ok {
				invalid = append(invalid, d)
				continue
			}
			if err := advanceTx(ctx, tx, d, PublishConfirmed, "chain_deal_id", int64(id), "publish_cid", final.String()); err != nil {
				return err
			}
			confirmed = append(confirmed, d)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE market_publish_batches SET state = ?, msg_cid = ? WHERE id = ?`,
			batchLanded, final.String(), b.id); err != nil {
			return err
		}
		return released.writeTx(ctx, tx)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("recording publish result of %s: %w", final, err)
	}
	return confirmed, invalid, nil
}

// failBatch records that a batch's message failed.
func (s *store) failBatch(ctx context.Context, id int64, reason string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE market_publish_batches SET state = ?, error = ? WHERE id = ?`, batchFailed, reason, id); err != nil {
		return fmt.Errorf("recording failure of publish batch %d: %w", id, err)
	}
	return nil
}

// --- the deal-end watcher ---

// The watcher's queries, with their arguments; the indexes of migration
// 0032 serve them (a test checks the plans).

// expiredQuery lists the Complete deals not yet ended (ended_at 0) whose
// end epoch head reached.
func expiredQuery(head abi.ChainEpoch) (string, []any) {
	return `SELECT uuid, kind, chain_deal_id, allocation_id FROM market_deals
		WHERE checkpoint = ? AND ended_at = ? AND end_epoch <= ? ORDER BY end_epoch`, []any{Complete, 0, int64(head)}
}

// toCheckQuery lists up to limit Complete deals not yet ended, those
// looked up on chain longest ago first. (The deals past their end epoch
// were marked expired just before.)
func toCheckQuery(limit int) (string, []any) {
	return `SELECT uuid, kind, chain_deal_id, allocation_id FROM market_deals
		WHERE checkpoint = ? AND ended_at = ? ORDER BY end_checked_at LIMIT ?`, []any{Complete, 0, limit}
}

// unreleasedQuery lists the deals that ended, or failed after AddedPiece,
// whose piece is not yet released. Its first two terms are those of the
// partial index market_deals_unreleased, written alike so SQLite uses it.
func unreleasedQuery() (string, []any) {
	in, cps := inCheckpoints(AddedPiece.andLater())
	return `SELECT uuid FROM market_deals WHERE piece_released = ?
		AND (ended_at != ? OR retry = ?)
		AND (ended_at != ? OR checkpoint IN (` + in + `))`, append([]any{false, 0, RetryFatal, 0}, cps...)
}

// watchedDeal is a Complete deal that has not ended: a market deal's
// chain deal, or a direct deal's claim (its allocation's ID).
type watchedDeal struct {
	id     uuid.UUID
	kind   DealKind
	dealID abi.DealID
	claim  chain.ClaimID
}

// expired lists the Complete deals not yet ended whose end epoch head
// reached.
func (s *store) expired(ctx context.Context, head abi.ChainEpoch) ([]watchedDeal, error) {
	q, args := expiredQuery(head)
	return s.watched(ctx, q, args...)
}

// toCheck lists up to limit Complete deals not yet ended, those checked on
// chain longest ago first.
func (s *store) toCheck(ctx context.Context, limit int) ([]watchedDeal, error) {
	q, args := toCheckQuery(limit)
	return s.watched(ctx, q, args...)
}

func (s *store) watched(ctx context.Context, query string, args ...any) ([]watchedDeal, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing active deals: %w", err)
	}
	defer rows.Close()
	var out []watchedDeal
	for rows.Next() {
		var v, kind string
		var id, claim int64
		if err := rows.Scan(&v, &kind, &id, &claim); err != nil {
			return nil, fmt.Errorf("listing active deals: %w", err)
		}
		u, err := uuid.Parse(v)
		if err != nil {
			return nil, fmt.Errorf("deal row %q: %w", v, err)
		}
		out = append(out, watchedDeal{id: u, kind: DealKind(kind), dealID: abi.DealID(id), claim: chain.ClaimID(claim)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing active deals: %w", err)
	}
	return out, nil
}

// markEndChecked records that the deals were just looked up on chain.
func (s *store) markEndChecked(ctx context.Context, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	err := db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE market_deals SET end_checked_at = ? WHERE uuid = ?`, now, id.String()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording deal end checks: %w", err)
	}
	return nil
}

// recordEnd marks a deal ended, once; changed is false when it already was.
func (s *store) recordEnd(ctx context.Context, id uuid.UUID, reason string, epoch abi.ChainEpoch) (changed bool, err error) {
	err = db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		now := time.Now().UnixNano()
		res, err := tx.ExecContext(ctx, `UPDATE market_deals SET ended_at = ?, end_reason = ?, updated_at = ? WHERE uuid = ? AND ended_at = ?`,
			now, reason, now, id.String(), 0)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		changed = true
		return addLog(ctx, tx, id, "deal ended on chain: %s (noticed at epoch %d)", reason, epoch)
	})
	if err != nil {
		return false, fmt.Errorf("recording the end of deal %s: %w", id, err)
	}
	return changed, nil
}

// unreleased lists the deals that ended, or failed after AddedPiece, whose
// piece is not yet released.
func (s *store) unreleased(ctx context.Context) ([]uuid.UUID, error) {
	q, args := unreleasedQuery()
	ids, err := s.uuids(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing ended deals: %w", err)
	}
	return ids, nil
}

// pieceHolders counts the deals other than except that hold piece in a
// sector and have not ended or failed, and how many of them asked for an
// IPNI announcement.
func (s *store) pieceHolders(ctx context.Context, piece cid.Cid, except uuid.UUID) (holders, announcing int, err error) {
	in, args := inCheckpoints(AddedPiece.andLater())
	err = s.db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(CASE WHEN skip_ipni = ? THEN 1 ELSE 0 END), 0) FROM market_deals
		WHERE piece_cid = ? AND uuid != ? AND ended_at = ? AND retry != ? AND checkpoint IN (`+in+`)`,
		append([]any{false, piece.String(), except.String(), 0, RetryFatal}, args...)...).Scan(&holders, &announcing)
	if err != nil {
		return 0, 0, fmt.Errorf("finding other deals of piece %s: %w", piece, err)
	}
	return holders, announcing, nil
}

// markReleased records that a deal's piece was released, with logLine.
func (s *store) markReleased(ctx context.Context, id uuid.UUID, logLine string) error {
	err := db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE market_deals SET piece_released = ?, updated_at = ? WHERE uuid = ?`,
			true, time.Now().UnixNano(), id.String()); err != nil {
			return err
		}
		return addLog(ctx, tx, id, "%s", logLine)
	})
	if err != nil {
		return fmt.Errorf("recording the piece release of deal %s: %w", id, err)
	}
	return nil
}

// --- the ask ---

// ask reads the stored signed ask; nil when there is none yet.
func (s *store) ask(ctx context.Context) (*wire.SignedStorageAsk, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT ask FROM market_ask WHERE id = ?`, 1).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the stored ask: %w", err)
	}
	var a wire.SignedStorageAsk
	if err := a.UnmarshalCBOR(bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("decoding the stored ask: %w", err)
	}
	if a.Ask == nil {
		return nil, errors.New("the stored ask is empty")
	}
	return &a, nil
}

// putAsk stores the signed ask.
func (s *store) putAsk(ctx context.Context, a *wire.SignedStorageAsk) error {
	var enc bytes.Buffer
	if err := a.MarshalCBOR(&enc); err != nil {
		return fmt.Errorf("encoding signed ask: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO market_ask (id, ask) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET ask = excluded.ask`,
		1, enc.Bytes()); err != nil {
		return fmt.Errorf("storing ask: %w", err)
	}
	return nil
}

// The operator's views below (deal listings, ingest history, tag totals)
// read what the pipeline wrote; the indexes that keep them fast at a
// million deals are in migration 0039.

// list returns the deals f selects, newest first (ties by UUID,
// descending, so that a DealCursor names one place in the order).
func (s *store) list(ctx context.Context, f DealFilter) ([]*dealRow, error) {
	q, args, err := listQuery(f)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*dealRow
	for rows.Next() {
		d, err := scanDeal(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// listQuery is list's statement and its arguments.
func listQuery(f DealFilter) (string, []any, error) {
	where, args, err := dealWhere(f)
	if err != nil {
		return "", nil, err
	}
	if f.Limit < 0 || f.Offset < 0 {
		return "", nil, fmt.Errorf("negative limit %d or offset %d", f.Limit, f.Offset)
	}
	limit := int64(f.Limit)
	if limit == 0 {
		limit = math.MaxInt64 // every deal (OFFSET needs a LIMIT in SQLite)
	}
	return `SELECT ` + dealColumns + ` FROM market_deals` + where + ` ORDER BY created_at DESC, uuid DESC LIMIT ? OFFSET ?`,
		append(args, limit, f.Offset), nil
}

// dealWhere is the WHERE clause (with a leading space, or empty) and its
// arguments for f.
func dealWhere(f DealFilter) (string, []any, error) {
	var conds []string
	var args []any
	add := func(cond string, a ...any) {
		conds = append(conds, cond)
		args = append(args, a...)
	}
	switch f.State {
	case "":
	case StateActive, StateFailed, StateComplete, StateEnded:
		// The index market_deals_state_page yields each state's deals in
		// listing order.
		add(dealStateSQL()+` = ?`, f.State)
	default:
		return "", nil, fmt.Errorf("state %q is not one of %s, %s, %s, %s", f.State, StateActive, StateFailed, StateComplete, StateEnded)
	}
	if f.Checkpoint != "" {
		cp, err := ParseCheckpoint(f.Checkpoint)
		if err != nil {
			return "", nil, err
		}
		add(`checkpoint = ?`, cp)
	}
	if f.Client != "" {
		if _, err := address.NewFromString(f.Client); err == nil {
			add(`client_key = ?`, f.Client)
		} else if _, err := peer.Decode(f.Client); err == nil {
			add(`client_peer = ?`, f.Client)
		} else {
			return "", nil, fmt.Errorf("client %q is neither a wallet address nor a peer ID", f.Client)
		}
	}
	if f.PieceCID != "" {
		v1, err := pieceCIDv1(f.PieceCID)
		if err != nil {
			return "", nil, err
		}
		add(`piece_cid = ?`, v1.String())
	}
	if !f.CreatedFrom.IsZero() {
		add(`created_at >= ?`, f.CreatedFrom.UnixNano())
	}
	if !f.CreatedTo.IsZero() {
		add(`created_at < ?`, f.CreatedTo.UnixNano())
	}
	if s := strings.TrimSpace(f.Search); s != "" {
		cond, a, err := searchCond(s)
		if err != nil {
			return "", nil, err
		}
		add(cond, a...)
	}
	if f.After != nil {
		// A row value, which SQLite (and PostgreSQL) search as one range
		// of the (…, created_at, uuid) indexes; the same test spelled with
		// OR makes SQLite scan from the newest deal.
		add(`(created_at, uuid) < (?, ?)`, f.After.CreatedAt.UnixNano(), f.After.UUID)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// searchCond finds deals by what s is: a deal UUID, a chain deal ID, a
// piece CID (v1 or v2) or another CID (the payload's root).
func searchCond(s string) (string, []any, error) {
	if id, err := uuid.Parse(s); err == nil {
		return `uuid = ?`, []any{id.String()}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 63); err == nil {
		// 0 is a valid deal ID: only deals whose publish landed have one.
		in, args := inCheckpoints(PublishConfirmed.andLater())
		return `chain_deal_id = ? AND checkpoint IN (` + in + `)`, append([]any{int64(n)}, args...), nil
	}
	c, err := cid.Decode(s)
	if err != nil {
		return "", nil, fmt.Errorf("search %q is not a deal UUID, a chain deal ID or a CID", s)
	}
	if v1, err := pieceCIDv1(s); err == nil {
		return `piece_cid = ?`, []any{v1.String()}, nil
	}
	return `data_root = ?`, []any{c.String()}, nil
}

// pieceCIDv1 reads a piece CID v1 or v2 and returns it as v1, the form
// deals are stored by.
func pieceCIDv1(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("piece CID %q: %w", s, err)
	}
	if _, err := piece.ParseCID(c); err == nil {
		return c, nil
	}
	v1, _, _, err := piece.V2ToV1(c)
	if err != nil {
		return cid.Undef, fmt.Errorf("%s is not a piece CID (v1 or v2)", s)
	}
	return v1, nil
}

// IngestBucket is how many deal bytes finished their transfer (or import)
// in one period.
type IngestBucket struct {
	Start time.Time `json:"start"`
	Bytes uint64    `json:"bytes"`
	Deals int64     `json:"deals"`
}

// ingested sums the bytes of the deals whose data arrived (checkpoint
// Transferred) since since, by period of length every, oldest first;
// periods with nothing are included, so the result is a regular series.
func (s *store) ingested(ctx context.Context, since time.Time, every time.Duration) ([]IngestBucket, error) {
	if every <= 0 {
		return nil, fmt.Errorf("ingest history: period %s is not positive", every)
	}
	start := since.Truncate(every)
	n := int(time.Since(start)/every) + 1
	out := make([]IngestBucket, n)
	for i := range out {
		out[i].Start = start.Add(time.Duration(i) * every)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT (l.at - ?) / ?, coalesce(sum(d.bytes_received), 0), count(*)
		FROM market_deal_logs l JOIN market_deals d ON d.uuid = l.uuid
		WHERE l.text = ? AND l.at >= ? GROUP BY 1`, // by position: PostgreSQL sees the same expression with other parameters as another
		start.UnixNano(), int64(every), transferredLog, start.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("reading the ingest history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i, bytes, deals int64
		if err := rows.Scan(&i, &bytes, &deals); err != nil {
			return nil, fmt.Errorf("reading the ingest history: %w", err)
		}
		if i >= 0 && i < int64(n) {
			out[i].Bytes, out[i].Deals = uint64(bytes), deals
		}
	}
	return out, rows.Err()
}

// transferredLog is the log line setCheckpoint writes when a deal's data
// has arrived; the ingest history counts these lines (migration 0039
// indexes them).
var transferredLog = checkpointLog(Transferred)

// checkpointLog is the log line of a deal reaching checkpoint cp.
func checkpointLog(cp Checkpoint) string { return "checkpoint " + cp.String() }

// Reserved is what the provider's tags hold back for accepted deals.
type Reserved struct {
	// StagingCapacity is Market.StagingCapacity (0: unlimited) and
	// StagingTagged the bytes reserved in it by deals not yet in a sector
	// and by reservations for deals still being received (Market 2.0
	// uploads).
	StagingCapacity uint64 `json:"stagingCapacity"`
	StagingTagged   uint64 `json:"stagingTagged"`
	// Collateral and PublishFees are reserved for deals not yet published.
	Collateral  big.Int `json:"collateral"`
	PublishFees big.Int `json:"publishFees"`
}

// reserved reads what the staging and funds tags hold.
func (s *store) reserved(ctx context.Context) (Reserved, error) {
	var r Reserved
	err := db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		t, err := tagTotals(ctx, tx, address.Undef)
		r.StagingTagged, r.Collateral, r.PublishFees = t.space, t.collateral, t.fee
		return err
	})
	if err != nil {
		return r, fmt.Errorf("reading the reserved funds and space: %w", err)
	}
	return r, nil
}
