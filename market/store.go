package market

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/transfer"
)

// ErrUnknownDeal is returned for a deal UUID the provider does not know.
var ErrUnknownDeal = errors.New("unknown deal")

// dealRow is a market_deals row.
type dealRow struct {
	UUID           uuid.UUID
	SignedCID      cid.Cid
	CreatedAt      time.Time
	UpdatedAt      time.Time
	ClientPeer     string
	ClientKey      address.Address
	Proposal       market.ClientDealProposal
	DataRoot       cid.Cid
	IsOffline      bool
	TransferType   string
	TransferParams []byte
	TransferSize   uint64
	BytesReceived  uint64
	StagingPath    string
	StagingOwned   bool
	KeepUnsealed   bool
	SkipIPNI       bool
	Checkpoint     string
	Retry          string
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

const dealColumns = `uuid, signed_proposal_cid, created_at, updated_at, client_peer, client_key, proposal,
	data_root, is_offline, transfer_type, transfer_params, transfer_size, bytes_received, staging_path,
	staging_owned, keep_unsealed, skip_ipni, checkpoint, retry, retries, retry_after, error, publish_queued,
	batch_id, publish_cid, chain_deal_id, sector, sector_offset, sealing_state, ended_at, end_reason, piece_released`

type scanner interface{ Scan(dest ...any) error }

func scanDeal(s scanner) (*dealRow, error) {
	var (
		d                              dealRow
		id, spc, ckey, root, pub       string
		created, updated, retryAfter   int64
		endedAt                        int64
		prop                           []byte
		offline, owned, keep, skip     bool
		tsize, recv, dealID, sectorOff int64
	)
	err := s.Scan(&id, &spc, &created, &updated, &d.ClientPeer, &ckey, &prop, &root, &offline, &d.TransferType,
		&d.TransferParams, &tsize, &recv, &d.StagingPath, &owned, &keep, &skip, &d.Checkpoint, &d.Retry, &d.Retries,
		&retryAfter, &d.Error, &d.PublishQueued, &d.BatchID, &pub, &dealID, &d.Sector, &sectorOff, &d.SealingState,
		&endedAt, &d.EndReason, &d.PieceReleased)
	if err != nil {
		return nil, err
	}
	if d.UUID, err = uuid.Parse(id); err != nil {
		return nil, fmt.Errorf("deal row %q: %w", id, err)
	}
	if d.SignedCID, err = cid.Decode(spc); err != nil {
		return nil, fmt.Errorf("deal %s signed proposal CID: %w", id, err)
	}
	if d.ClientKey, err = address.NewFromString(ckey); err != nil {
		return nil, fmt.Errorf("deal %s client key: %w", id, err)
	}
	if err := d.Proposal.UnmarshalCBOR(bytes.NewReader(prop)); err != nil {
		return nil, fmt.Errorf("deal %s proposal: %w", id, err)
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
	d.IsOffline, d.StagingOwned, d.KeepUnsealed, d.SkipIPNI = offline, owned, keep, skip
	d.TransferSize, d.BytesReceived, d.ChainDealID, d.SectorOffset = uint64(tsize), uint64(recv), abi.DealID(dealID), uint64(sectorOff)
	return &d, nil
}

func (p *Provider) loadDeal(ctx context.Context, id uuid.UUID) (*dealRow, error) {
	d, err := scanDeal(p.d.DB.QueryRowContext(ctx, `SELECT `+dealColumns+` FROM market_deals WHERE uuid = ?`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("deal %s: %w", id, ErrUnknownDeal)
	}
	if err != nil {
		return nil, fmt.Errorf("reading deal %s: %w", id, err)
	}
	return d, nil
}

// addLog appends a line to a deal's log, inside tx when given.
func addLog(ctx context.Context, q interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, id uuid.UUID, format string, args ...any) error {
	_, err := q.ExecContext(ctx, `INSERT INTO market_deal_logs (uuid, at, text) VALUES (?, ?, ?)`,
		id.String(), time.Now().UnixNano(), fmt.Sprintf(format, args...))
	if err != nil {
		return fmt.Errorf("writing log of deal %s: %w", id, err)
	}
	return nil
}

// setCheckpoint moves a deal to its next checkpoint, with more column
// updates in the same statement, logs it and calls the OnCheckpoint hook.
func (p *Provider) setCheckpoint(ctx context.Context, id uuid.UUID, cp string, extra string, args ...any) error {
	err := db.InTx(ctx, p.d.DB, func(tx *sql.Tx) error {
		return p.setCheckpointTx(ctx, tx, id, cp, extra, args...)
	})
	if err != nil {
		return err
	}
	p.hook(id, cp)
	return nil
}

func (p *Provider) setCheckpointTx(ctx context.Context, tx *sql.Tx, id uuid.UUID, cp string, extra string, args ...any) error {
	q := `UPDATE market_deals SET checkpoint = ?, updated_at = ?, retry = '', retries = 0, error = ''`
	if extra != "" {
		q += ", " + extra
	}
	q += ` WHERE uuid = ?`
	all := append([]any{cp, time.Now().UnixNano()}, args...)
	all = append(all, id.String())
	if _, err := tx.ExecContext(ctx, q, all...); err != nil {
		return fmt.Errorf("recording checkpoint %s of deal %s: %w", cp, id, err)
	}
	return addLog(ctx, tx, id, "%s", checkpointLog(cp))
}

func (p *Provider) hook(id uuid.UUID, cp string) {
	if p.d.OnCheckpoint != nil {
		p.d.OnCheckpoint(id, cp)
	}
}

// releaseTags drops a deal's funds and staging tags.
func releaseTagsTx(ctx context.Context, tx *sql.Tx, id uuid.UUID, funds, space bool) error {
	if funds {
		if _, err := tx.ExecContext(ctx, `DELETE FROM market_funds_tags WHERE uuid = ?`, id.String()); err != nil {
			return fmt.Errorf("releasing funds tag of deal %s: %w", id, err)
		}
	}
	if space {
		if _, err := tx.ExecContext(ctx, `DELETE FROM market_space_tags WHERE uuid = ?`, id.String()); err != nil {
			return fmt.Errorf("releasing staging tag of deal %s: %w", id, err)
		}
	}
	return nil
}

// releaseStaleTags drops the tags of deals that no longer need them: funds
// once published on chain or failed, staging once the piece is in a sector
// or the deal failed.
func (p *Provider) releaseStaleTags(ctx context.Context) error {
	_, err := p.d.DB.ExecContext(ctx, `DELETE FROM market_funds_tags WHERE uuid IN (SELECT uuid FROM market_deals
		WHERE retry = 'fatal' OR checkpoint IN ('PublishConfirmed','AddedPiece','IndexedAndAnnounced','Complete'))`)
	if err != nil {
		return fmt.Errorf("market: releasing funds tags: %w", err)
	}
	_, err = p.d.DB.ExecContext(ctx, `DELETE FROM market_space_tags WHERE uuid IN (SELECT uuid FROM market_deals
		WHERE retry = 'fatal' OR checkpoint IN ('AddedPiece','IndexedAndAnnounced','Complete'))`)
	if err != nil {
		return fmt.Errorf("market: releasing staging tags: %w", err)
	}
	return nil
}

// checkDuplicate rejects a proposal seen before or a UUID in use.
func (p *Provider) checkDuplicate(ctx context.Context, info *proposalInfo) string {
	var other string
	err := p.d.DB.QueryRowContext(ctx, `SELECT uuid FROM market_deals WHERE signed_proposal_cid = ?`, info.signedCID.String()).Scan(&other)
	if err == nil {
		return fmt.Sprintf("deal rejected: the proposal is identical to that of deal %s", other)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Sprintf("deal rejected: the provider cannot read its deals: %v", err)
	}
	err = p.d.DB.QueryRowContext(ctx, `SELECT uuid FROM market_deals WHERE uuid = ?`, info.params.DealUUID.String()).Scan(&other)
	if err == nil {
		return fmt.Sprintf("deal rejected: the deal UUID %s is already in use", other)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Sprintf("deal rejected: the provider cannot read its deals: %v", err)
	}
	return ""
}

// admit records the deal with its funds and staging tags in one
// transaction, after checking uniqueness, the provider's funds and the
// staging space within it.
func (p *Provider) admit(ctx context.Context, info *proposalInfo, clientPeer string) string {
	params := info.params
	prop := &params.ClientDealProposal.Proposal

	// Chain reads happen before the transaction; the transaction compares
	// them with everything already tagged.
	mbal, err := p.d.Node.StateMarketBalance(ctx, p.cfg.Miner, chain.TipSetKey{})
	if err != nil {
		return fmt.Sprintf("deal rejected: the provider cannot read its market balance: %v", err)
	}
	escrowAvail := big.Sub(mbal.Escrow, mbal.Locked)
	wbal, err := p.d.Node.WalletBalance(ctx, p.worker)
	if err != nil {
		return fmt.Sprintf("deal rejected: the provider cannot read its worker balance: %v", err)
	}
	fee := p.cfg.MaxPublishDealsFee
	var space uint64
	if !params.IsOffline {
		space = params.Transfer.Size
	}

	var cbor bytes.Buffer
	if err := params.ClientDealProposal.MarshalCBOR(&cbor); err != nil {
		return fmt.Sprintf("deal rejected: the proposal cannot be encoded: %v", err)
	}
	id := params.DealUUID
	staging := ""
	if !params.IsOffline {
		staging = filepath.Join(p.cfg.StagingDir, id.String()+".car")
	}
	var reason string
	// The transaction is what makes admission atomic (also against other
	// processes); the mutex only spares this process' admissions SQLite's
	// busy-wait sleeps when they queue for the write lock.
	p.admitMu.Lock()
	defer p.admitMu.Unlock()
	err = db.InTx(ctx, p.d.DB, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM market_deals WHERE signed_proposal_cid = ?`, info.signedCID.String()).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			reason = "deal rejected: the proposal is identical to that of an earlier deal"
			return nil
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM market_deals WHERE uuid = ?`, id.String()).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			reason = fmt.Sprintf("deal rejected: the deal UUID %s is already in use", id)
			return nil
		}

		collTagged, feeTagged, err := fundsTagged(ctx, tx)
		if err != nil {
			return err
		}
		if needColl := big.Add(collTagged, prop.ProviderCollateral); needColl.GreaterThan(escrowAvail) {
			reason = fmt.Sprintf("deal rejected: the provider's available market escrow %s cannot cover this deal's collateral %s on top of the %s reserved for other deals",
				escrowAvail, prop.ProviderCollateral, collTagged)
			return nil
		}
		if needFee := big.Add(feeTagged, fee); needFee.GreaterThan(wbal) {
			reason = fmt.Sprintf("deal rejected: the provider's worker balance %s cannot cover the publish fee %s on top of the %s reserved for other deals",
				wbal, fee, feeTagged)
			return nil
		}
		if p.cfg.StagingCapacity > 0 {
			var used int64
			if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(bytes), 0) FROM market_space_tags`).Scan(&used); err != nil {
				return err
			}
			if uint64(used)+space > p.cfg.StagingCapacity {
				reason = fmt.Sprintf("deal rejected: not enough staging space: %d bytes needed, %d of %d in use", space, used, p.cfg.StagingCapacity)
				return nil
			}
		}

		now := time.Now().UnixNano()
		_, err = tx.ExecContext(ctx, `INSERT INTO market_deals (uuid, signed_proposal_cid, created_at, updated_at, client_peer,
			client_key, proposal, piece_cid, piece_size, start_epoch, end_epoch, verified, data_root, is_offline,
			transfer_type, transfer_params, transfer_size, staging_path, keep_unsealed, skip_ipni, checkpoint)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id.String(), info.signedCID.String(), now, now, clientPeer, info.clientKey.String(), cbor.Bytes(),
			prop.PieceCID.String(), int64(prop.PieceSize), int64(prop.StartEpoch), int64(prop.EndEpoch), prop.VerifiedDeal,
			cidString(params.DealDataRoot), params.IsOffline, params.Transfer.Type, params.Transfer.Params,
			int64(params.Transfer.Size), staging, !params.RemoveUnsealedCopy, params.SkipIPNIAnnounce, Accepted)
		if err != nil {
			return fmt.Errorf("recording deal: %w", err)
		}
		cn, ca, err1 := splitAtto(prop.ProviderCollateral)
		fn, fa, err2 := splitAtto(fee)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO market_funds_tags (uuid, collateral_nano, collateral_atto, fee_nano, fee_atto) VALUES (?, ?, ?, ?, ?)`,
			id.String(), cn, ca, fn, fa); err != nil {
			return fmt.Errorf("tagging funds: %w", err)
		}
		if space > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO market_space_tags (uuid, bytes) VALUES (?, ?)`, id.String(), int64(space)); err != nil {
				return fmt.Errorf("tagging staging space: %w", err)
			}
		}
		return addLog(ctx, tx, id, "accepted from peer %s (offline %t, piece %s, %d bytes)", clientPeer, params.IsOffline, prop.PieceCID, prop.PieceSize)
	})
	if err != nil {
		return fmt.Sprintf("deal rejected: the provider could not record the deal: %v", err)
	}
	if reason == "" {
		p.hook(id, Accepted)
	}
	return reason
}

func cidString(c cid.Cid) string {
	if !c.Defined() {
		return ""
	}
	return c.String()
}

// transferRequest rebuilds the download request of a deal.
func (d *dealRow) transferRequest() (TransferRequest, error) {
	req, err := transfer.ParseHTTPParams(d.TransferParams)
	if err != nil {
		return TransferRequest{}, err
	}
	return TransferRequest{URL: req.URL, Headers: req.Headers, Size: d.TransferSize}, nil
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

// fundsTagged sums the collateral and publish fees reserved by tags.
func fundsTagged(ctx context.Context, tx *sql.Tx) (coll, fee big.Int, err error) {
	var cn, ca, fn, fa int64
	err = tx.QueryRowContext(ctx, `SELECT coalesce(sum(collateral_nano), 0), coalesce(sum(collateral_atto), 0),
		coalesce(sum(fee_nano), 0), coalesce(sum(fee_atto), 0) FROM market_funds_tags`).Scan(&cn, &ca, &fn, &fa)
	if err != nil {
		return big.Zero(), big.Zero(), fmt.Errorf("summing funds tags: %w", err)
	}
	join := func(n, a int64) big.Int { return big.Add(big.Mul(big.NewInt(n), nano), big.NewInt(a)) }
	return join(cn, ca), join(fn, fa), nil
}

// The operator's views below (deal listings, ingest history, tag totals)
// read what the pipeline wrote; the indexes that keep them fast at a
// million deals are in migration 0039.

// listDeals returns the deals f selects, newest first (ties by UUID,
// descending, so that a DealCursor names one place in the order).
func listDeals(ctx context.Context, q *sql.DB, f DealFilter) ([]*dealRow, error) {
	where, args, err := dealWhere(f)
	if err != nil {
		return nil, err
	}
	if f.Limit < 0 || f.Offset < 0 {
		return nil, fmt.Errorf("negative limit %d or offset %d", f.Limit, f.Offset)
	}
	limit := int64(f.Limit)
	if limit == 0 {
		limit = math.MaxInt64 // every deal (OFFSET needs a LIMIT in SQLite)
	}
	rows, err := q.QueryContext(ctx, `SELECT `+dealColumns+` FROM market_deals`+where+
		` ORDER BY created_at DESC, uuid DESC LIMIT ? OFFSET ?`, append(args, limit, f.Offset)...)
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
	case StateActive:
		add(`retry != ? AND checkpoint != ?`, RetryFatal, Complete)
	case StateFailed:
		add(`retry = ?`, RetryFatal)
	case StateComplete:
		add(`checkpoint = ? AND ended_at = ?`, Complete, 0)
	case StateEnded:
		add(`ended_at != ?`, 0)
	default:
		return "", nil, fmt.Errorf("state %q is not one of %s, %s, %s, %s", f.State, StateActive, StateFailed, StateComplete, StateEnded)
	}
	if f.Checkpoint != "" {
		if !slices.Contains(checkpoints, f.Checkpoint) {
			return "", nil, fmt.Errorf("checkpoint %q is not one of %s", f.Checkpoint, strings.Join(checkpoints, ", "))
		}
		add(`checkpoint = ?`, f.Checkpoint)
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
		add(`(created_at < ? OR (created_at = ? AND uuid < ?))`, f.After.CreatedAt.UnixNano(), f.After.CreatedAt.UnixNano(), f.After.UUID)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// checkpoints are the pipeline's steps in order.
var checkpoints = []string{Accepted, Transferred, Published, PublishConfirmed, AddedPiece, IndexedAndAnnounced, Complete}

// searchCond finds deals by what s is: a deal UUID, a chain deal ID, a
// piece CID (v1 or v2) or another CID (the payload's root).
func searchCond(s string) (string, []any, error) {
	if id, err := uuid.Parse(s); err == nil {
		return `uuid = ?`, []any{id.String()}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 63); err == nil {
		// 0 is a valid deal ID: only deals whose publish landed have one.
		return `chain_deal_id = ? AND checkpoint IN (?, ?, ?, ?)`, []any{int64(n), PublishConfirmed, AddedPiece, IndexedAndAnnounced, Complete}, nil
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

// Ingested sums the bytes of the deals whose data arrived (checkpoint
// Transferred) since since, by period of length every, oldest first;
// periods with nothing are included, so the result is a regular series.
func (p *Provider) Ingested(ctx context.Context, since time.Time, every time.Duration) ([]IngestBucket, error) {
	if every <= 0 {
		return nil, fmt.Errorf("ingest history: period %s is not positive", every)
	}
	start := since.Truncate(every)
	n := int(time.Since(start)/every) + 1
	out := make([]IngestBucket, n)
	for i := range out {
		out[i].Start = start.Add(time.Duration(i) * every)
	}
	rows, err := p.d.DB.QueryContext(ctx, `SELECT (l.at - ?) / ?, coalesce(sum(d.bytes_received), 0), count(*)
		FROM market_deal_logs l JOIN market_deals d ON d.uuid = l.uuid
		WHERE l.text = ? AND l.at >= ? GROUP BY (l.at - ?) / ?`,
		start.UnixNano(), int64(every), transferredLog, start.UnixNano(), start.UnixNano(), int64(every))
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
func checkpointLog(cp string) string { return "checkpoint " + cp }

// Reserved is what the provider's tags hold back for accepted deals.
type Reserved struct {
	// StagingCapacity is Market.StagingCapacity (0: unlimited) and
	// StagingTagged the bytes reserved in it by deals not yet in a sector.
	StagingCapacity uint64 `json:"stagingCapacity"`
	StagingTagged   uint64 `json:"stagingTagged"`
	// Collateral and PublishFees are reserved for deals not yet published.
	Collateral  big.Int `json:"collateral"`
	PublishFees big.Int `json:"publishFees"`
}

// Reserved sums the staging and funds tags.
func (p *Provider) Reserved(ctx context.Context) (Reserved, error) {
	r := Reserved{StagingCapacity: p.cfg.StagingCapacity}
	err := db.InTx(ctx, p.d.DB, func(tx *sql.Tx) error {
		var space int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(bytes), 0) FROM market_space_tags`).Scan(&space); err != nil {
			return fmt.Errorf("summing staging tags: %w", err)
		}
		r.StagingTagged = uint64(space)
		var err error
		r.Collateral, r.PublishFees, err = fundsTagged(ctx, tx)
		return err
	})
	if err != nil {
		return r, fmt.Errorf("reading the reserved funds and space: %w", err)
	}
	return r, nil
}
