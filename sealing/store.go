package sealing

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	miner13 "github.com/filecoin-project/go-state-types/builtin/v13/miner"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/piece"
)

// store holds all of sealing's SQL: the sectors (sealing_sectors) and what
// occupies them (sealing_pieces). Each method is one statement or one
// transaction. The queries run unchanged on SQLite and PostgreSQL: ?
// placeholders (rebound by the db package), ON CONFLICT, flags and kinds
// passed as parameters.
type store struct {
	db   *sql.DB
	now  func() time.Time
	node string // the cluster node whose sectors these are (Config.NodeID)
}

// Piece kinds and statuses in sealing_pieces.
const (
	kindDeal   = "deal"
	kindFiller = "filler"
	// statusReserved: the placement is decided; the bytes are not (all)
	// synced yet. statusDone: the bytes are synced and in the trailer.
	statusReserved = "reserved"
	statusDone     = "done"
)

// sectorRow is a sector's persisted sealing state, as the state machine
// reads it.
type sectorRow struct {
	SectorInfo
	preCommitID uuid.UUID // uuid.Nil until the pre-commit is about to be sent
	commitID    uuid.UUID // uuid.Nil until the prove-commit is about to be sent
	proof       []byte
	retryAfter  time.Time
}

// reservation is a deal piece placed in a sector and not yet written.
type reservation struct {
	Deal   uuid.UUID
	Offset abi.PaddedPieceSize
	Size   abi.PaddedPieceSize
}

// placeholders returns "?, ?, …" for n parameters.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// stateArgs turns states into query parameters.
func stateArgs(states []SectorState) []any {
	out := make([]any, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}

// --- pieces and placements ---

// dealPlacement finds the placement recorded for a deal, by UUID or chain
// deal ID, the UUID it was recorded for and whether its bytes are written.
func (st *store) dealPlacement(ctx context.Context, d Deal) (pl Placement, owner uuid.UUID, written, found bool, err error) {
	var n, off, size int64
	var status, du, node string
	err = st.db.QueryRowContext(ctx, `SELECT p.sector, p.piece_offset, p.size, p.status, p.deal_uuid, s.node FROM sealing_pieces p
		JOIN sealing_sectors s ON s.number = p.sector
		WHERE p.kind = ? AND (p.deal_uuid = ? OR (? > 0 AND p.deal_id = ?)) LIMIT 1`,
		kindDeal, d.UUID.String(), int64(d.DealID), int64(d.DealID)).Scan(&n, &off, &size, &status, &du, &node)
	if errors.Is(err, sql.ErrNoRows) {
		return Placement{}, uuid.Nil, false, false, nil
	}
	if err == nil {
		owner, err = uuid.Parse(du)
	}
	if err != nil {
		return Placement{}, uuid.Nil, false, false, fmt.Errorf("looking up the placement of deal %s: %w", d.UUID, err)
	}
	pl = Placement{Sector: abi.SectorNumber(n), Offset: abi.PaddedPieceSize(off), Size: abi.PaddedPieceSize(size)}
	if node != st.node && status != statusDone {
		return pl, owner, false, true, fmt.Errorf("adding piece of deal %s: %w", d.UUID, &ElsewhereError{Node: node, Sector: pl.Sector})
	}
	return pl, owner, status == statusDone, true, nil
}

// placementLock serialises the transactions that lay pieces out in
// sectors.
const placementLock = "sealing.placement"

// placeFunc chooses, among the open sectors, the one a piece goes to: an
// index into open, or -1 to open a new sector. sealing counts the sectors
// not yet proven or given up, open ones included.
type placeFunc func(open []openSector, sealing int) (int, error)

// reserve records the placement of deal d's piece of padded size size,
// which claims claim, in the sector place chooses, after everything
// already placed there, with the zero fillers that align it. The offset is
// the one the chain assumes for the deal's piece when every piece before
// it is written.
func (st *store) reserve(ctx context.Context, d Deal, size abi.PaddedPieceSize, claim pieceClaim, proof abi.RegisteredSealProof, place placeFunc) (Placement, error) {
	var prop, manifest []byte // NULL for the kind the deal is not
	if d.IsDirect() {
		var buf bytes.Buffer
		if err := d.PieceActivationManifest.MarshalCBOR(&buf); err != nil {
			return Placement{}, fmt.Errorf("encoding the piece manifest of deal %s: %w", d.UUID, err)
		}
		manifest = buf.Bytes()
	} else {
		var buf bytes.Buffer
		if err := d.Proposal.MarshalCBOR(&buf); err != nil {
			return Placement{}, fmt.Errorf("encoding the proposal of deal %s: %w", d.UUID, err)
		}
		prop = buf.Bytes()
	}
	sch := d.Schedule()
	var pl Placement
	err := db.InTx(ctx, st.db, func(tx *sql.Tx) error {
		// Placements take turns, each seeing the ones before (several
		// nodes may place pieces at once on one database).
		if err := db.Serialize(ctx, tx, placementLock); err != nil {
			return err
		}
		open, err := st.openSectorsTx(ctx, tx)
		if err != nil {
			return err
		}
		var sealing int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sealing_sectors WHERE node = ? AND state NOT IN (`+placeholders(len(restingStates()))+`)`,
			append([]any{st.node}, stateArgs(restingStates())...)...).Scan(&sealing); err != nil {
			return fmt.Errorf("counting the sectors being sealed: %w", err)
		}
		i, err := place(open, sealing)
		if err != nil {
			return err
		}
		var sec openSector
		if i >= 0 {
			sec = open[i]
		} else if sec.Number, err = st.newSectorTx(ctx, tx, proof); err != nil {
			return err
		}
		offsets, fillers := layoutFrom(sec.Used, []abi.PaddedPieceSize{size})
		if err := insertFillersTx(ctx, tx, sec.Number, fillers[0], statusReserved); err != nil {
			return err
		}
		pl = Placement{Sector: sec.Number, Offset: offsets[0], Size: size}
		var dealID any // NULL: the unique index on deal_id skips it
		if d.DealID > 0 {
			dealID = int64(d.DealID)
		}
		publish := ""
		if d.PublishCid.Defined() {
			publish = d.PublishCid.String()
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sealing_pieces (sector, piece_offset, size, kind, status, piece_cid,
			deal_uuid, deal_id, publish_cid, start_epoch, end_epoch, keep_unsealed, proposal, manifest, alloc_client, alloc_id, term_max)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			int64(pl.Sector), int64(pl.Offset), int64(pl.Size), kindDeal, statusReserved, d.PieceCID().String(),
			d.UUID.String(), dealID, publish, int64(sch.StartEpoch), int64(sch.EndEpoch),
			d.KeepUnsealed, prop, manifest, int64(claim.Client), int64(claim.ID), int64(claim.TermMax)); err != nil {
			return fmt.Errorf("recording the placement of deal %s in sector %d: %w", d.UUID, pl.Sector, err)
		}
		return nil
	})
	return pl, err
}

// openSectorsTx lists the sectors taking pieces, with their used space and
// the bounds their deals set on their expiration.
func (st *store) openSectorsTx(ctx context.Context, tx *sql.Tx) ([]openSector, error) {
	open := openStates()
	rows, err := tx.QueryContext(ctx, `SELECT s.number, COALESCE(MAX(p.piece_offset + p.size), 0),
		COUNT(CASE WHEN p.kind = ? THEN 1 END),
		COALESCE(MAX(CASE WHEN p.kind = ? THEN p.end_epoch END), 0),
		COALESCE(MIN(CASE WHEN p.kind = ? AND p.term_max > 0 THEN p.term_max END), 0)
		FROM sealing_sectors s LEFT JOIN sealing_pieces p ON p.sector = s.number
		WHERE s.node = ? AND s.state IN (`+placeholders(len(open))+`) GROUP BY s.number ORDER BY s.number`,
		append([]any{kindDeal, kindDeal, kindDeal, st.node}, stateArgs(open)...)...)
	if err != nil {
		return nil, fmt.Errorf("listing open sectors: %w", err)
	}
	defer rows.Close()
	var out []openSector
	for rows.Next() {
		var n, used, minEnd, termMax int64
		var deals int
		if err := rows.Scan(&n, &used, &deals, &minEnd, &termMax); err != nil {
			return nil, fmt.Errorf("listing open sectors: %w", err)
		}
		out = append(out, openSector{Number: abi.SectorNumber(n), Used: abi.PaddedPieceSize(used), Deals: deals,
			Bounds: expiryBounds{MinEnd: abi.ChainEpoch(minEnd), TermMax: abi.ChainEpoch(termMax)}})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing open sectors: %w", err)
	}
	return out, nil
}

// newSectorTx creates the next sector, in WaitDeals.
func (st *store) newSectorTx(ctx context.Context, tx *sql.Tx, proof abi.RegisteredSealProof) (abi.SectorNumber, error) {
	var next int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(number), 0) + 1 FROM sealing_sectors`).Scan(&next); err != nil {
		return 0, fmt.Errorf("choosing a sector number: %w", err)
	}
	now := st.now().UnixNano()
	if _, err := tx.ExecContext(ctx, `INSERT INTO sealing_sectors (number, state, seal_proof, opened_at, updated_at, node)
		VALUES (?, ?, ?, ?, ?, ?)`, next, string(StateWaitDeals), int64(proof), now, now, st.node); err != nil {
		return 0, fmt.Errorf("creating sector %d: %w", next, err)
	}
	return abi.SectorNumber(next), nil
}

// insertFillersTx records zero filler pieces of sector n with status.
func insertFillersTx(ctx context.Context, tx *sql.Tx, n abi.SectorNumber, fillers []span, status string) error {
	for _, f := range fillers {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sealing_pieces (sector, piece_offset, size, kind, status, piece_cid)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sector, piece_offset) DO NOTHING`,
			int64(n), int64(f.Offset), int64(f.Size), kindFiller, status,
			piece.CIDv1(piece.ZeroCommitment(f.Size)).String()); err != nil {
			return fmt.Errorf("recording a filler piece at %d in sector %d: %w", f.Offset, n, err)
		}
	}
	return nil
}

// reservations lists sector n's deal pieces not yet written, in offset
// order.
func (st *store) reservations(ctx context.Context, n abi.SectorNumber) ([]reservation, error) {
	return reservationsQ(ctx, st.db, n)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func reservationsQ(ctx context.Context, q querier, n abi.SectorNumber) ([]reservation, error) {
	rows, err := q.QueryContext(ctx, `SELECT deal_uuid, piece_offset, size FROM sealing_pieces
		WHERE sector = ? AND kind = ? AND status = ? ORDER BY piece_offset`, int64(n), kindDeal, statusReserved)
	if err != nil {
		return nil, fmt.Errorf("listing the reservations of sector %d: %w", n, err)
	}
	defer rows.Close()
	var out []reservation
	for rows.Next() {
		var du string
		var off, size int64
		if err := rows.Scan(&du, &off, &size); err != nil {
			return nil, fmt.Errorf("listing the reservations of sector %d: %w", n, err)
		}
		u, err := uuid.Parse(du)
		if err != nil {
			return nil, fmt.Errorf("sector %d: reservation at %d has a bad deal UUID %q: %w", n, off, du, err)
		}
		out = append(out, reservation{Deal: u, Offset: abi.PaddedPieceSize(off), Size: abi.PaddedPieceSize(size)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing the reservations of sector %d: %w", n, err)
	}
	return out, nil
}

// withdraw forgets the reservations of deals in sector n and lays the
// sector's other reservations out again right after its written pieces,
// each at the next multiple of its size, with new fillers. Written pieces
// never move; reservations are not written yet, so they may.
func (st *store) withdraw(ctx context.Context, n abi.SectorNumber, deals ...uuid.UUID) error {
	return db.InTx(ctx, st.db, func(tx *sql.Tx) error {
		if err := db.Serialize(ctx, tx, placementLock); err != nil {
			return err
		}
		for _, d := range deals {
			if _, err := tx.ExecContext(ctx, `DELETE FROM sealing_pieces WHERE sector = ? AND status = ? AND deal_uuid = ?`,
				int64(n), statusReserved, d.String()); err != nil {
				return fmt.Errorf("withdrawing the reservation of deal %s in sector %d: %w", d, n, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sealing_pieces WHERE sector = ? AND status = ? AND kind = ?`,
			int64(n), statusReserved, kindFiller); err != nil {
			return fmt.Errorf("withdrawing reserved fillers in sector %d: %w", n, err)
		}
		var used int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(piece_offset + size), 0) FROM sealing_pieces
			WHERE sector = ? AND status = ?`, int64(n), statusDone).Scan(&used); err != nil {
			return fmt.Errorf("reading the written end of sector %d: %w", n, err)
		}
		rest, err := reservationsQ(ctx, tx, n)
		if err != nil {
			return err
		}
		sizes := make([]abi.PaddedPieceSize, len(rest))
		for i, r := range rest {
			sizes[i] = r.Size
		}
		offsets, fillers := layoutFrom(abi.PaddedPieceSize(used), sizes)
		// In offset order every new offset is at most the old one and past
		// the new end of the pieces before it, so no update collides.
		for i, r := range rest {
			if offsets[i] != r.Offset {
				if _, err := tx.ExecContext(ctx, `UPDATE sealing_pieces SET piece_offset = ? WHERE sector = ? AND deal_uuid = ?`,
					int64(offsets[i]), int64(n), r.Deal.String()); err != nil {
					return fmt.Errorf("moving the reservation of deal %s in sector %d: %w", r.Deal, n, err)
				}
			}
			if err := insertFillersTx(ctx, tx, n, fillers[i], statusReserved); err != nil {
				return err
			}
		}
		return nil
	})
}

// writtenSpans lists the spans of sector n's written pieces and fillers.
func (st *store) writtenSpans(ctx context.Context, n abi.SectorNumber) ([]span, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT piece_offset, size FROM sealing_pieces WHERE sector = ? AND status = ?
		ORDER BY piece_offset`, int64(n), statusDone)
	return scanSpans(rows, err, n)
}

// reservedFillers lists the fillers reserved before pl, which are written
// (as zeros) with it.
func (st *store) reservedFillers(ctx context.Context, pl Placement) ([]span, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT piece_offset, size FROM sealing_pieces
		WHERE sector = ? AND status = ? AND kind = ? AND piece_offset < ? ORDER BY piece_offset`,
		int64(pl.Sector), statusReserved, kindFiller, int64(pl.Offset))
	return scanSpans(rows, err, pl.Sector)
}

// scanSpans reads (offset, size) rows of sector n.
func scanSpans(rows *sql.Rows, err error, n abi.SectorNumber) ([]span, error) {
	if err != nil {
		return nil, fmt.Errorf("listing the pieces of sector %d: %w", n, err)
	}
	defer rows.Close()
	var out []span
	for rows.Next() {
		var off, size int64
		if err := rows.Scan(&off, &size); err != nil {
			return nil, fmt.Errorf("listing the pieces of sector %d: %w", n, err)
		}
		out = append(out, span{Offset: abi.PaddedPieceSize(off), Size: abi.PaddedPieceSize(size)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing the pieces of sector %d: %w", n, err)
	}
	return out, nil
}

// markWritten records a written piece, and the fillers before it, as done.
func (st *store) markWritten(ctx context.Context, pl Placement) error {
	_, err := st.db.ExecContext(ctx, `UPDATE sealing_pieces SET status = ?, error = ''
		WHERE sector = ? AND status = ? AND (piece_offset = ? OR (kind = ? AND piece_offset < ?))`,
		statusDone, int64(pl.Sector), statusReserved, int64(pl.Offset), kindFiller, int64(pl.Offset))
	if err != nil {
		return fmt.Errorf("recording the piece at sector %d offset %d as written: %w", pl.Sector, pl.Offset, err)
	}
	return nil
}

// addTailFillers records the zero pieces that fill sector n to its end.
func (st *store) addTailFillers(ctx context.Context, n abi.SectorNumber, tail []span) error {
	return db.InTx(ctx, st.db, func(tx *sql.Tx) error {
		return insertFillersTx(ctx, tx, n, tail, statusDone)
	})
}

// unsealedCopies lists the written placements of a piece in sectors whose
// unsealed copy is kept.
func (st *store) unsealedCopies(ctx context.Context, pieceCid cid.Cid) ([]Placement, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT p.sector, p.piece_offset, p.size FROM sealing_pieces p
		JOIN sealing_sectors s ON s.number = p.sector
		WHERE p.piece_cid = ? AND p.kind = ? AND p.status = ? AND s.unsealed_removed = ? AND s.node = ?
		ORDER BY p.sector, p.piece_offset`, pieceCid.String(), kindDeal, statusDone, false, st.node)
	if err != nil {
		return nil, fmt.Errorf("looking up piece %s: %w", pieceCid, err)
	}
	defer rows.Close()
	var out []Placement
	for rows.Next() {
		var n, off, size int64
		if err := rows.Scan(&n, &off, &size); err != nil {
			return nil, fmt.Errorf("looking up piece %s: %w", pieceCid, err)
		}
		out = append(out, Placement{Sector: abi.SectorNumber(n), Offset: abi.PaddedPieceSize(off), Size: abi.PaddedPieceSize(size)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up piece %s: %w", pieceCid, err)
	}
	return out, nil
}

// unsealedNodes lists the other nodes holding an unsealed copy of
// pieceCid.
func (st *store) unsealedNodes(ctx context.Context, pieceCid cid.Cid) ([]string, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT DISTINCT s.node FROM sealing_pieces p
		JOIN sealing_sectors s ON s.number = p.sector
		WHERE p.piece_cid = ? AND p.kind = ? AND p.status = ? AND s.unsealed_removed = ? AND s.node != ?
		ORDER BY s.node`, pieceCid.String(), kindDeal, statusDone, false, st.node)
	if err != nil {
		return nil, fmt.Errorf("looking up the nodes holding piece %s: %w", pieceCid, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("looking up the nodes holding piece %s: %w", pieceCid, err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// adopt makes the sectors of no node (made before clusters) this node's.
func (st *store) adopt(ctx context.Context) error {
	if st.node == "" {
		return nil
	}
	if _, err := st.db.ExecContext(ctx, `UPDATE sealing_sectors SET node = ? WHERE node = ?`, st.node, ""); err != nil {
		return fmt.Errorf("adopting the sectors made before clusters: %w", err)
	}
	return nil
}

// dealSector returns the sector a deal's piece is placed in and its state.
func (st *store) dealSector(ctx context.Context, dealUUID uuid.UUID) (abi.SectorNumber, SectorState, error) {
	var n int64
	var state string
	err := st.db.QueryRowContext(ctx, `SELECT s.number, s.state FROM sealing_pieces p
		JOIN sealing_sectors s ON s.number = p.sector WHERE p.deal_uuid = ?`, dealUUID.String()).Scan(&n, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", fmt.Errorf("deal %s: %w", dealUUID, ErrUnknownDeal)
	}
	if err != nil {
		return 0, "", fmt.Errorf("reading the sector of deal %s: %w", dealUUID, err)
	}
	return abi.SectorNumber(n), SectorState(state), nil
}

// --- sectors ---

const sectorCols = `number, state, seal_proof, opened_at, updated_at, pack_reason, ticket_epoch, seed_epoch,
	comm_d, comm_r, precommit_msg, precommit_epoch, commit_msg, retries, last_error, unsealed_removed`

// scanSector scans sectorCols, then extra.
func scanSector(sc interface{ Scan(...any) error }, ss abi.SectorSize, extra ...any) (SectorInfo, error) {
	var si SectorInfo
	var n, proof, opened, updated, ticket, seed, pcEpoch int64
	var state, commD, commR, pcMsg, cMsg string
	var removed bool
	dest := append([]any{&n, &state, &proof, &opened, &updated, &si.PackReason, &ticket, &seed,
		&commD, &commR, &pcMsg, &pcEpoch, &cMsg, &si.Retries, &si.LastError, &removed}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return si, err
	}
	si.Number = abi.SectorNumber(n)
	si.State = SectorState(state)
	si.SealProof = abi.RegisteredSealProof(proof)
	si.SectorSize = ss
	si.OpenedAt = time.Unix(0, opened)
	si.UpdatedAt = time.Unix(0, updated)
	si.TicketEpoch = abi.ChainEpoch(ticket)
	si.SeedEpoch = abi.ChainEpoch(seed)
	si.PreCommitEpoch = abi.ChainEpoch(pcEpoch)
	si.CommD = optCid(commD)
	si.CommR = optCid(commR)
	si.PreCommitMsg = optCid(pcMsg)
	si.CommitMsg = optCid(cMsg)
	si.Unsealed = !removed
	return si, nil
}

func optCid(s string) *cid.Cid {
	if s == "" {
		return nil
	}
	c, err := cid.Decode(s)
	if err != nil {
		return nil
	}
	return &c
}

func optUUID(s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.Nil, nil
	}
	return uuid.Parse(s)
}

// activeSectors lists, with their pieces, the sectors Run still drives.
func (st *store) activeSectors(ctx context.Context, ss abi.SectorSize) ([]sectorRow, error) {
	resting := restingStates()
	rows, err := st.db.QueryContext(ctx, `SELECT `+sectorCols+`, precommit_uuid, commit_uuid, proof, retry_after
		FROM sealing_sectors WHERE node = ? AND state NOT IN (`+placeholders(len(resting))+`) ORDER BY number`,
		append([]any{st.node}, stateArgs(resting)...)...)
	if err != nil {
		return nil, fmt.Errorf("listing sectors to seal: %w", err)
	}
	var out []sectorRow
	for rows.Next() {
		var r sectorRow
		var pcID, cID string
		var retryAfter int64
		r.SectorInfo, err = scanSector(rows, ss, &pcID, &cID, &r.proof, &retryAfter)
		if err == nil {
			r.preCommitID, err = optUUID(pcID)
		}
		if err == nil {
			r.commitID, err = optUUID(cID)
		}
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("listing sectors to seal: %w", err)
		}
		r.retryAfter = time.Unix(0, retryAfter)
		out = append(out, r)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("listing sectors to seal: %w", err)
	}
	for i := range out {
		if err := st.fillPieces(ctx, &out[i].SectorInfo); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sectors lists every sector with its pieces, in number order.
func (st *store) sectors(ctx context.Context, ss abi.SectorSize) ([]SectorInfo, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT `+sectorCols+` FROM sealing_sectors ORDER BY number`)
	if err != nil {
		return nil, fmt.Errorf("listing sectors: %w", err)
	}
	var out []SectorInfo
	for rows.Next() {
		si, err := scanSector(rows, ss)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("listing sectors: %w", err)
		}
		out = append(out, si)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("listing sectors: %w", err)
	}
	for i := range out {
		if err := st.fillPieces(ctx, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sector returns sector n with its pieces, or ErrUnknownSector.
func (st *store) sector(ctx context.Context, n abi.SectorNumber, ss abi.SectorSize) (SectorInfo, error) {
	si, err := scanSector(st.db.QueryRowContext(ctx, `SELECT `+sectorCols+` FROM sealing_sectors WHERE number = ?`, int64(n)), ss)
	if errors.Is(err, sql.ErrNoRows) {
		return SectorInfo{}, fmt.Errorf("sector %d: %w", n, ErrUnknownSector)
	}
	if err != nil {
		return SectorInfo{}, fmt.Errorf("reading sector %d: %w", n, err)
	}
	if err := st.fillPieces(ctx, &si); err != nil {
		return SectorInfo{}, err
	}
	return si, nil
}

// fillPieces reads a sector's pieces into si, with its used space and deal
// count.
func (st *store) fillPieces(ctx context.Context, si *SectorInfo) error {
	rows, err := st.db.QueryContext(ctx, `SELECT piece_offset, size, kind, status, piece_cid, deal_uuid, COALESCE(deal_id, 0),
		start_epoch, end_epoch, keep_unsealed, error, proposal, manifest, alloc_client, alloc_id, term_max
		FROM sealing_pieces WHERE sector = ? ORDER BY piece_offset`, int64(si.Number))
	if err != nil {
		return fmt.Errorf("listing the pieces of sector %d: %w", si.Number, err)
	}
	defer rows.Close()
	si.Pieces, si.Used, si.Deals = si.Pieces[:0], 0, 0
	for rows.Next() {
		var p SectorPiece
		var off, size, dealID, start, end, allocClient, allocID, termMax int64
		var kind, status, pc string
		var du sql.NullString
		var prop, manifest []byte
		if err := rows.Scan(&off, &size, &kind, &status, &pc, &du, &dealID, &start, &end, &p.KeepUnsealed, &p.Error,
			&prop, &manifest, &allocClient, &allocID, &termMax); err != nil {
			return fmt.Errorf("listing the pieces of sector %d: %w", si.Number, err)
		}
		if manifest != nil {
			p.Manifest = new(miner13.PieceActivationManifest)
			if err := p.Manifest.UnmarshalCBOR(bytes.NewReader(manifest)); err != nil {
				return fmt.Errorf("sector %d: the manifest of the piece at %d: %w", si.Number, off, err)
			}
			p.Direct = true
		}
		if prop != nil {
			p.proposal = new(market.DealProposal)
			if err := p.proposal.UnmarshalCBOR(bytes.NewReader(prop)); err != nil {
				return fmt.Errorf("sector %d: the proposal of the piece at %d: %w", si.Number, off, err)
			}
		}
		p.AllocationID = chain.AllocationID(allocID)
		p.claim = pieceClaim{Client: abi.ActorID(allocClient), ID: chain.AllocationID(allocID), TermMax: abi.ChainEpoch(termMax)}
		p.Offset, p.Size = abi.PaddedPieceSize(off), abi.PaddedPieceSize(size)
		p.Filler = kind == kindFiller
		p.Written = status == statusDone
		if c, err := cid.Decode(pc); err == nil {
			p.PieceCID = c
		}
		if du.Valid {
			if u, err := uuid.Parse(du.String); err == nil {
				p.DealUUID = &u
			}
		}
		p.DealID = abi.DealID(dealID)
		p.StartEpoch, p.EndEpoch = abi.ChainEpoch(start), abi.ChainEpoch(end)
		if !p.Filler {
			si.Deals++
		}
		si.Used = max(si.Used, p.Offset+p.Size)
		si.Pieces = append(si.Pieces, p)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing the pieces of sector %d: %w", si.Number, err)
	}
	return nil
}

// countByState counts the sectors in each state.
func (st *store) countByState(ctx context.Context) (map[SectorState]int64, error) {
	counts, err := db.CountBy(ctx, st.db, `SELECT state, COUNT(*) FROM sealing_sectors GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("counting sectors: %w", err)
	}
	out := make(map[SectorState]int64, len(counts))
	for k, v := range counts {
		out[SectorState(k)] = v
	}
	return out, nil
}

// --- sector state changes ---

// exec runs one UPDATE of a sector and reports whether it changed a row.
func (st *store) exec(ctx context.Context, what string, n abi.SectorNumber, q string, args ...any) (bool, error) {
	res, err := st.db.ExecContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("sector %d: %s: %w", n, what, err)
	}
	c, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sector %d: %s: %w", n, what, err)
	}
	return c > 0, nil
}

// setState moves sector n to state to if it is in one of from (any state
// when from is empty), recording errMsg as its last error. It reports
// whether the sector moved.
func (st *store) setState(ctx context.Context, n abi.SectorNumber, to SectorState, errMsg string, from ...SectorState) (bool, error) {
	q := `UPDATE sealing_sectors SET state = ?, last_error = ?, updated_at = ? WHERE number = ?`
	args := []any{string(to), errMsg, st.now().UnixNano(), int64(n)}
	if len(from) > 0 {
		q += ` AND state IN (` + placeholders(len(from)) + `)`
		args = append(args, stateArgs(from)...)
	}
	return st.exec(ctx, "moving to "+string(to), n, q, args...)
}

// setLastError records the error of a step that will be tried again.
func (st *store) setLastError(ctx context.Context, n abi.SectorNumber, msg string) error {
	_, err := st.exec(ctx, "recording the last error", n,
		`UPDATE sealing_sectors SET last_error = ?, updated_at = ? WHERE number = ?`, msg, st.now().UnixNano(), int64(n))
	return err
}

// startPacking moves a sector from WaitDeals to Packing for reason.
func (st *store) startPacking(ctx context.Context, n abi.SectorNumber, reason string) error {
	_, err := st.exec(ctx, "starting to pack", n, `UPDATE sealing_sectors SET state = ?, pack_reason = ?, updated_at = ?
		WHERE number = ? AND state = ?`, string(StatePacking), reason, st.now().UnixNano(), int64(n), string(StateWaitDeals))
	return err
}

// recordTicket records the ticket epoch: PreCommit1 → PreCommit2.
func (st *store) recordTicket(ctx context.Context, n abi.SectorNumber, epoch abi.ChainEpoch) error {
	_, err := st.exec(ctx, "recording the ticket", n, `UPDATE sealing_sectors SET ticket_epoch = ?, state = ?, last_error = '', updated_at = ?
		WHERE number = ? AND state = ?`, int64(epoch), string(StatePreCommit2), st.now().UnixNano(), int64(n), string(StatePreCommit1))
	return err
}

// recordCommitments records CommD and CommR: PreCommit2 →
// SubmitPreCommitBatch.
func (st *store) recordCommitments(ctx context.Context, n abi.SectorNumber, cids SectorCids) error {
	_, err := st.exec(ctx, "recording the commitments", n, `UPDATE sealing_sectors SET comm_d = ?, comm_r = ?, state = ?, last_error = '', updated_at = ?
		WHERE number = ? AND state = ?`, cids.Unsealed.String(), cids.Sealed.String(), string(StateSubmitPreCommitBatch),
		st.now().UnixNano(), int64(n), string(StatePreCommit2))
	return err
}

// setPreCommitID records the id the pre-commit is sent as, before it is
// sent.
func (st *store) setPreCommitID(ctx context.Context, n abi.SectorNumber, id uuid.UUID) error {
	_, err := st.exec(ctx, "recording the pre-commit message id", n,
		`UPDATE sealing_sectors SET precommit_uuid = ? WHERE number = ?`, id.String(), int64(n))
	return err
}

// recordPreCommitSent records the pre-commit's CID: SubmitPreCommitBatch →
// PreCommitBatchWait.
func (st *store) recordPreCommitSent(ctx context.Context, n abi.SectorNumber, msg cid.Cid) error {
	_, err := st.exec(ctx, "recording the pre-commit message", n, `UPDATE sealing_sectors SET precommit_msg = ?, state = ?, last_error = '', updated_at = ?
		WHERE number = ? AND state = ?`, msg.String(), string(StatePreCommitBatchWait), st.now().UnixNano(), int64(n), string(StateSubmitPreCommitBatch))
	return err
}

// recordPreCommitLanded records the pre-commit's epoch and the seed epoch
// after it: from → WaitSeed.
func (st *store) recordPreCommitLanded(ctx context.Context, n abi.SectorNumber, from SectorState, epoch, seed abi.ChainEpoch) error {
	_, err := st.exec(ctx, "recording the pre-commit epoch", n, `UPDATE sealing_sectors SET precommit_epoch = ?, seed_epoch = ?, state = ?, last_error = '', updated_at = ?
		WHERE number = ? AND state = ?`, int64(epoch), int64(seed), string(StateWaitSeed), st.now().UnixNano(), int64(n), string(from))
	return err
}

// recordProof records the proof: Committing → SubmitCommit.
func (st *store) recordProof(ctx context.Context, n abi.SectorNumber, proof []byte) error {
	_, err := st.exec(ctx, "recording the proof", n, `UPDATE sealing_sectors SET proof = ?, state = ?, last_error = '', updated_at = ?
		WHERE number = ? AND state = ?`, proof, string(StateSubmitCommit), st.now().UnixNano(), int64(n), string(StateCommitting))
	return err
}

// setCommitID records the id the prove-commit is sent as, before it is
// sent.
func (st *store) setCommitID(ctx context.Context, n abi.SectorNumber, id uuid.UUID) error {
	_, err := st.exec(ctx, "recording the prove-commit message id", n,
		`UPDATE sealing_sectors SET commit_uuid = ? WHERE number = ?`, id.String(), int64(n))
	return err
}

// recordCommitSent records the prove-commit's CID: SubmitCommit →
// CommitWait.
func (st *store) recordCommitSent(ctx context.Context, n abi.SectorNumber, msg cid.Cid) error {
	_, err := st.exec(ctx, "recording the prove-commit message", n, `UPDATE sealing_sectors SET commit_msg = ?, state = ?, last_error = '', updated_at = ?
		WHERE number = ? AND state = ?`, msg.String(), string(StateCommitWait), st.now().UnixNano(), int64(n), string(StateSubmitCommit))
	return err
}

// recordFailure moves a sector from the state of a step to its failure
// state, counting the retry and when it may be made.
func (st *store) recordFailure(ctx context.Context, n abi.SectorNumber, from, state SectorState, cause string, retryAfter time.Time) error {
	_, err := st.exec(ctx, "recording a failure", n, `UPDATE sealing_sectors SET state = ?, last_error = ?, retries = retries + 1,
		retry_after = ?, updated_at = ? WHERE number = ? AND state = ?`,
		string(state), cause, retryAfter.UnixNano(), st.now().UnixNano(), int64(n), string(from))
	return err
}

// retryPreCommit forgets a failed pre-commit message: from → PreCommit1.
func (st *store) retryPreCommit(ctx context.Context, n abi.SectorNumber, from SectorState) error {
	_, err := st.exec(ctx, "retrying the pre-commit", n, `UPDATE sealing_sectors SET precommit_uuid = '', precommit_msg = '', state = ?, updated_at = ?
		WHERE number = ? AND state = ?`, string(StatePreCommit1), st.now().UnixNano(), int64(n), string(from))
	return err
}

// retryCommit forgets a failed prove-commit message: from → WaitSeed.
func (st *store) retryCommit(ctx context.Context, n abi.SectorNumber, from SectorState) error {
	_, err := st.exec(ctx, "retrying the prove-commit", n, `UPDATE sealing_sectors SET commit_uuid = '', commit_msg = '', state = ?, updated_at = ?
		WHERE number = ? AND state = ?`, string(StateWaitSeed), st.now().UnixNano(), int64(n), string(from))
	return err
}

// markUnsealedRemoved records that sector n keeps no unsealed copy.
func (st *store) markUnsealedRemoved(ctx context.Context, n abi.SectorNumber) error {
	_, err := st.exec(ctx, "recording the unsealed copy's removal", n,
		`UPDATE sealing_sectors SET unsealed_removed = ? WHERE number = ?`, true, int64(n))
	return err
}
