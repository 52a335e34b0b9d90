package sealing

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/miner"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/piece"
)

// Run drives every sector through its states until ctx ends, resuming the
// sectors persisted by an earlier run. It returns nil when ctx ends.
func (s *Sealing) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		s.step(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

// sectorRow is a sector's persisted sealing state.
type sectorRow struct {
	SectorInfo
	precommitUUID string
	commitUUID    string
	proof         []byte
	retryAfter    int64
}

// step runs one transition for each sector that is not done.
func (s *Sealing) step(ctx context.Context) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sectorCols+`, precommit_uuid, commit_uuid, proof, retry_after
		FROM sealing_sectors WHERE state NOT IN (?, ?) ORDER BY number`, StateProving, StateFailedUnrecoverable)
	if err != nil {
		return // the next tick tries again
	}
	var todo []sectorRow
	for rows.Next() {
		var r sectorRow
		var err error
		r.SectorInfo, err = scanSector(scanExtra{rows, []any{&r.precommitUUID, &r.commitUUID, &r.proof, &r.retryAfter}}, s.cfg.SectorSize)
		if err != nil {
			break
		}
		todo = append(todo, r)
	}
	rows.Close()
	for _, r := range todo {
		if ctx.Err() != nil {
			return
		}
		if err := s.fillPieces(ctx, &r.SectorInfo); err != nil {
			continue
		}
		if err := s.handle(ctx, &r); err != nil && ctx.Err() == nil {
			s.db.ExecContext(ctx, `UPDATE sealing_sectors SET last_error = ?, updated_at = ? WHERE number = ?`,
				err.Error(), s.now().UnixNano(), int64(r.Number))
		}
	}
}

// scanExtra scans a sector row followed by extra columns.
type scanExtra struct {
	rows  *sql.Rows
	extra []any
}

func (x scanExtra) Scan(dest ...any) error { return x.rows.Scan(append(dest, x.extra...)...) }

func (s *Sealing) handle(ctx context.Context, r *sectorRow) error {
	switch r.State {
	case StateWaitDeals, StateAddPiece, StateAddPieceFailed:
		return s.handleOpen(ctx, r)
	case StatePacking:
		return s.handlePacking(ctx, r)
	case StatePreCommit1:
		return s.handlePreCommit1(ctx, r)
	case StatePreCommit2:
		return s.handlePreCommit2(ctx, r)
	case StateSubmitPreCommit:
		return s.handleSubmitPreCommit(ctx, r)
	case StateWaitSeed:
		return s.handleWaitSeed(ctx, r)
	case StateCommitting:
		return s.handleCommitting(ctx, r)
	case StateSubmitCommit:
		return s.handleSubmitCommit(ctx, r)
	case StateFinalizeSector:
		return s.handleFinalize(ctx, r)
	case StateSealFailed, StatePreCommitFailed, StateCommitFailed:
		return s.handleFailed(ctx, r)
	}
	return fmt.Errorf("sector %d: unknown state %q", r.Number, r.State)
}

// handleOpen settles sectors taking pieces: back to WaitDeals once no write
// runs, and on to Packing when full, when WaitDealsDelay has passed, or when
// a deal's start epoch minus the sealing buffer is reached.
func (s *Sealing) handleOpen(ctx context.Context, r *sectorRow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writing[r.Number] > 0 {
		return nil
	}
	if r.State != StateWaitDeals {
		if _, err := s.setState(ctx, r.Number, StateWaitDeals, r.LastError, r.State); err != nil {
			return err
		}
		s.broadcastLocked()
	}
	reason := ""
	switch {
	case r.Used >= abi.PaddedPieceSize(s.cfg.SectorSize):
		reason = "filled"
	case r.Deals >= maxDealsPerSector(s.cfg.SectorSize):
		reason = "maxdeals"
	case s.now().Sub(r.OpenedAt) >= s.cfg.WaitDealsDelay:
		reason = "wait-timeout"
	}
	if reason == "" && r.Deals > 0 {
		h, err := headHeight(ctx, s.node)
		if err != nil {
			return err
		}
		for _, p := range r.Pieces {
			if !p.Filler && h >= p.StartEpoch-s.cfg.StartEpochSealingBuffer {
				reason = "deal-start"
			}
		}
	}
	if reason == "" {
		return nil
	}
	// Intents left by a process that died mid-write and never retried
	// would block the sector; zero and forget them.
	for _, p := range r.Pieces {
		if !p.Written && !p.Filler {
			if err := s.dropIntent(ctx, Placement{Sector: r.Number, Offset: p.Offset, Size: p.Size}); err != nil {
				return err
			}
		}
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE sealing_sectors SET state = ?, pack_reason = ?, updated_at = ?
		WHERE number = ? AND state = ?`, StatePacking, reason, s.now().UnixNano(), int64(r.Number), StateWaitDeals); err != nil {
		return fmt.Errorf("packing sector %d: %w", r.Number, err)
	}
	s.broadcastLocked()
	s.nudge()
	return nil
}

// dropIntent zeroes and forgets an interrupted placement.
func (s *Sealing) dropIntent(ctx context.Context, pl Placement) error {
	f, err := s.openUnsealed(pl.Sector)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := zeroRange(f, int64(pl.Offset), int64(pl.Size)); err != nil {
		return fmt.Errorf("dropping interrupted piece in sector %d: %w", pl.Sector, err)
	}
	return s.abandonPiece(ctx, pl)
}

// handlePacking fills the rest of the sector with zero pieces: their rows,
// their (zeroed) ranges and the trailer then cover the whole sector.
func (s *Sealing) handlePacking(ctx context.Context, r *sectorRow) error {
	lk := s.sectorLock(r.Number)
	lk.Lock()
	defer lk.Unlock()
	f, err := s.openUnsealed(r.Number)
	if err != nil {
		return err
	}
	defer f.Close()
	tail := tailFillers(r.Used, s.cfg.SectorSize)
	for _, t := range tail {
		if err := zeroRange(f, int64(t.Offset), int64(t.Size)); err != nil {
			return fmt.Errorf("packing sector %d: %w", r.Number, err)
		}
	}
	err = db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		for _, t := range tail {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO sealing_pieces (sector, offset, size, kind, status, piece_cid)
				VALUES (?, ?, ?, 'filler', 'done', ?)`, int64(r.Number), int64(t.Offset), int64(t.Size),
				piece.CIDv1(piece.ZeroCommitment(t.Size)).String()); err != nil {
				return fmt.Errorf("packing sector %d: %w", r.Number, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	done, err := s.pieceSpans(ctx, r.Number, "", statusDone)
	if err != nil {
		return err
	}
	if err := writeTrailer(f, s.cfg.SectorSize, done); err != nil {
		return fmt.Errorf("packing sector %d: %w", r.Number, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("packing sector %d: syncing: %w", r.Number, err)
	}
	_, err = s.setState(ctx, r.Number, StatePreCommit1, "", StatePacking)
	return err
}

// handlePreCommit1 picks the ticket epoch.
func (s *Sealing) handlePreCommit1(ctx context.Context, r *sectorRow) error {
	h, err := headHeight(ctx, s.node)
	if err != nil {
		return err
	}
	ticket := max(h-1, 0)
	_, err = s.db.ExecContext(ctx, `UPDATE sealing_sectors SET ticket_epoch = ?, state = ?, last_error = '', updated_at = ?
		WHERE number = ? AND state = ?`, int64(ticket), StatePreCommit2, s.now().UnixNano(), int64(r.Number), StatePreCommit1)
	if err != nil {
		return fmt.Errorf("sector %d: recording ticket: %w", r.Number, err)
	}
	return nil
}

// sectorPieces lists a packed sector's pieces, fillers included, in order.
func sectorPieces(r *sectorRow) []abi.PieceInfo {
	var out []abi.PieceInfo
	for _, p := range r.Pieces {
		out = append(out, abi.PieceInfo{Size: p.Size, PieceCID: p.PieceCID})
	}
	return out
}

func (s *Sealing) ref(r *sectorRow) (SectorRef, error) {
	id, err := address.IDFromAddress(s.maddr)
	if err != nil {
		return SectorRef{}, fmt.Errorf("miner address %s: %w", s.maddr, err)
	}
	return SectorRef{Miner: abi.ActorID(id), Number: r.Number, ProofType: s.proof, UnsealedPath: s.unsealedPath(r.Number)}, nil
}

// handlePreCommit2 has the sealer compute CommD and CommR, and checks CommD
// against the one the chain will compute from the deals.
func (s *Sealing) handlePreCommit2(ctx context.Context, r *sectorRow) error {
	ref, err := s.ref(r)
	if err != nil {
		return err
	}
	pieces := sectorPieces(r)
	want, err := piece.CommD(abi.PaddedPieceSize(s.cfg.SectorSize), pieces)
	if err != nil {
		return s.toFailed(ctx, r, StateSealFailed, fmt.Errorf("computing CommD of sector %d: %w", r.Number, err))
	}
	cids, err := s.sealer.PreCommit(ctx, ref, nil, pieces)
	if err != nil {
		return s.toFailed(ctx, r, StateSealFailed, fmt.Errorf("pre-committing sector %d: %w", r.Number, err))
	}
	if !cids.Unsealed.Equals(want) {
		return s.toFailed(ctx, r, StateSealFailed, fmt.Errorf("sector %d: sealer's CommD %s differs from the pieces' %s", r.Number, cids.Unsealed, want))
	}
	_, err = s.db.ExecContext(ctx, `UPDATE sealing_sectors SET comm_d = ?, comm_r = ?, state = ?, last_error = '', updated_at = ?
		WHERE number = ? AND state = ?`, cids.Unsealed.String(), cids.Sealed.String(), StateSubmitPreCommit,
		s.now().UnixNano(), int64(r.Number), StatePreCommit2)
	if err != nil {
		return fmt.Errorf("sector %d: recording commitments: %w", r.Number, err)
	}
	return nil
}

func (s *Sealing) worker(ctx context.Context) (address.Address, error) {
	mi, err := s.node.StateMinerInfo(ctx, s.maddr, chain.EmptyTSK)
	if err != nil {
		return address.Undef, fmt.Errorf("reading miner info of %s: %w", s.maddr, err)
	}
	return mi.Worker, nil
}

// push sends a message to the miner actor from its worker, idempotently:
// the MsgUuid is recorded (uuidCol) before pushing and the CID (msgCol)
// after, so a restart finds the message instead of sending another.
func (s *Sealing) push(ctx context.Context, r *sectorRow, method abi.MethodNum, params cborMarshaler, uuidCol, msgCol, have string) (cid.Cid, error) {
	var buf bytes.Buffer
	if err := params.MarshalCBOR(&buf); err != nil {
		return cid.Undef, fmt.Errorf("encoding params: %w", err)
	}
	id := have
	if id == "" {
		id = uuid.NewString()
		if _, err := s.db.ExecContext(ctx, `UPDATE sealing_sectors SET `+uuidCol+` = ? WHERE number = ?`, id, int64(r.Number)); err != nil {
			return cid.Undef, fmt.Errorf("recording message id: %w", err)
		}
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return cid.Undef, fmt.Errorf("recorded message id %q: %w", id, err)
	}
	from, err := s.worker(ctx)
	if err != nil {
		return cid.Undef, err
	}
	sm, err := s.node.MpoolPushMessage(ctx, &chain.Message{
		To: s.maddr, From: from, Value: big.Zero(), Method: method, Params: buf.Bytes(),
		GasFeeCap: big.Zero(), GasPremium: big.Zero(),
	}, &chain.MessageSendSpec{MaxFee: big.Zero(), MsgUuid: u})
	if err != nil {
		return cid.Undef, fmt.Errorf("pushing message: %w", err)
	}
	c, err := sm.Cid()
	if err != nil {
		return cid.Undef, fmt.Errorf("message CID: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE sealing_sectors SET `+msgCol+` = ? WHERE number = ?`, c.String(), int64(r.Number)); err != nil {
		return cid.Undef, fmt.Errorf("recording message CID: %w", err)
	}
	return c, nil
}

type cborMarshaler interface {
	MarshalCBOR(w io.Writer) error
}

// lookup returns the executed message's receipt, or nil while it is pending.
func (s *Sealing) lookup(ctx context.Context, msg *cid.Cid) (*chain.MsgLookup, error) {
	l, err := s.node.StateSearchMsg(ctx, chain.EmptyTSK, *msg, -1, true)
	if err != nil {
		return nil, fmt.Errorf("looking up message %s: %w", msg, err)
	}
	return l, nil
}

func (s *Sealing) handleSubmitPreCommit(ctx context.Context, r *sectorRow) error {
	pci, err := s.node.StateSectorPreCommitInfo(ctx, s.maddr, r.Number, chain.EmptyTSK)
	if err != nil {
		return fmt.Errorf("sector %d: reading pre-commit: %w", r.Number, err)
	}
	if pci != nil {
		return s.preCommitLanded(ctx, r, pci.PreCommitEpoch)
	}
	if r.PreCommitMsg != nil {
		l, err := s.lookup(ctx, r.PreCommitMsg)
		if err != nil || l == nil {
			return err
		}
		if l.Receipt.ExitCode != exitcode.Ok {
			return s.toFailed(ctx, r, StatePreCommitFailed, fmt.Errorf("pre-commit message %s failed: exit code %d", r.PreCommitMsg, l.Receipt.ExitCode))
		}
		return s.preCommitLanded(ctx, r, l.Height)
	}
	h, err := headHeight(ctx, s.node)
	if err != nil {
		return err
	}
	var dealIDs []abi.DealID
	// The miner actor wants the sector to live at least MinSectorExpiration
	// past the latest possible activation (now + MaxProveCommitDuration); a
	// day of margin covers the time the message waits to be included.
	exp := h + s.cfg.MaxProveCommitDuration + s.cfg.MinSectorExpiration + 2880
	for _, p := range r.Pieces {
		if !p.Filler {
			dealIDs = append(dealIDs, p.DealID)
			exp = max(exp, p.EndEpoch)
		}
	}
	params := &miner.PreCommitSectorBatchParams2{Sectors: []miner.SectorPreCommitInfo{{
		SealProof:     s.proof,
		SectorNumber:  r.Number,
		SealedCID:     *r.CommR,
		SealRandEpoch: r.TicketEpoch,
		DealIDs:       dealIDs,
		Expiration:    exp,
		UnsealedCid:   r.CommD,
	}}}
	_, err = s.push(ctx, r, builtin.MethodsMiner.PreCommitSectorBatch2, params, "precommit_uuid", "precommit_msg", r.precommitUUID)
	if err != nil {
		return fmt.Errorf("sector %d: sending pre-commit: %w", r.Number, err)
	}
	return nil
}

func (s *Sealing) preCommitLanded(ctx context.Context, r *sectorRow, epoch abi.ChainEpoch) error {
	_, err := s.db.ExecContext(ctx, `UPDATE sealing_sectors SET precommit_epoch = ?, seed_epoch = ?, state = ?, last_error = '', updated_at = ?
		WHERE number = ?`, int64(epoch), int64(epoch+s.cfg.PreCommitChallengeDelay), StateWaitSeed, s.now().UnixNano(), int64(r.Number))
	if err != nil {
		return fmt.Errorf("sector %d: recording pre-commit epoch: %w", r.Number, err)
	}
	return nil
}

func (s *Sealing) handleWaitSeed(ctx context.Context, r *sectorRow) error {
	h, err := headHeight(ctx, s.node)
	if err != nil {
		return err
	}
	if h <= r.SeedEpoch {
		return nil
	}
	_, err = s.setState(ctx, r.Number, StateCommitting, "", StateWaitSeed)
	return err
}

func (s *Sealing) handleCommitting(ctx context.Context, r *sectorRow) error {
	ref, err := s.ref(r)
	if err != nil {
		return err
	}
	cids := SectorCids{}
	if r.CommD != nil && r.CommR != nil {
		cids = SectorCids{Unsealed: *r.CommD, Sealed: *r.CommR}
	}
	proof, err := s.sealer.Commit(ctx, ref, nil, nil, sectorPieces(r), cids)
	if err != nil {
		return s.toFailed(ctx, r, StateCommitFailed, fmt.Errorf("proving sector %d: %w", r.Number, err))
	}
	_, err = s.db.ExecContext(ctx, `UPDATE sealing_sectors SET proof = ?, state = ?, last_error = '', updated_at = ?
		WHERE number = ? AND state = ?`, proof, StateSubmitCommit, s.now().UnixNano(), int64(r.Number), StateCommitting)
	if err != nil {
		return fmt.Errorf("sector %d: recording proof: %w", r.Number, err)
	}
	return nil
}

func (s *Sealing) handleSubmitCommit(ctx context.Context, r *sectorRow) error {
	si, err := s.node.StateSectorGetInfo(ctx, s.maddr, r.Number, chain.EmptyTSK)
	if err != nil {
		return fmt.Errorf("sector %d: reading sector info: %w", r.Number, err)
	}
	if si != nil {
		_, err := s.setState(ctx, r.Number, StateFinalizeSector, "", StateSubmitCommit)
		return err
	}
	if r.CommitMsg != nil {
		l, err := s.lookup(ctx, r.CommitMsg)
		if err != nil || l == nil {
			return err
		}
		if l.Receipt.ExitCode != exitcode.Ok {
			return s.toFailed(ctx, r, StateCommitFailed, fmt.Errorf("prove-commit message %s failed: exit code %d", r.CommitMsg, l.Receipt.ExitCode))
		}
		return nil // executed; the sector activates at the end of the epoch
	}
	params := &miner.ProveCommitSectorParams{SectorNumber: r.Number, Proof: r.proof}
	if _, err := s.push(ctx, r, builtin.MethodsMiner.ProveCommitSector, params, "commit_uuid", "commit_msg", r.commitUUID); err != nil {
		return fmt.Errorf("sector %d: sending prove-commit: %w", r.Number, err)
	}
	return nil
}

// handleFinalize removes the unsealed copy when no deal asked to keep it.
func (s *Sealing) handleFinalize(ctx context.Context, r *sectorRow) error {
	keep := false
	for _, p := range r.Pieces {
		if !p.Filler && p.KeepUnsealed {
			keep = true
		}
	}
	if !keep {
		if _, err := s.db.ExecContext(ctx, `UPDATE sealing_sectors SET unsealed_removed = 1 WHERE number = ?`, int64(r.Number)); err != nil {
			return fmt.Errorf("sector %d: recording unsealed copy removal: %w", r.Number, err)
		}
		if err := os.Remove(s.unsealedPath(r.Number)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sector %d: removing unsealed copy: %w", r.Number, err)
		}
	}
	_, err := s.setState(ctx, r.Number, StateProving, "", StateFinalizeSector)
	return err
}

// toFailed records a failed step; handleFailed retries it after RetryDelay.
func (s *Sealing) toFailed(ctx context.Context, r *sectorRow, state string, cause error) error {
	_, err := s.db.ExecContext(ctx, `UPDATE sealing_sectors SET state = ?, last_error = ?, retries = retries + 1,
		retry_after = ?, updated_at = ? WHERE number = ?`, state, cause.Error(),
		s.now().Add(s.cfg.RetryDelay).UnixNano(), s.now().UnixNano(), int64(r.Number))
	if err != nil {
		return fmt.Errorf("%w (and recording the failure: %v)", cause, err)
	}
	return nil
}

// handleFailed retries a failed step once RetryDelay has passed, first
// checking whether the chain has what the step was to achieve.
func (s *Sealing) handleFailed(ctx context.Context, r *sectorRow) error {
	if s.now().UnixNano() < r.retryAfter {
		return nil
	}
	if r.Retries > s.cfg.MaxRetries {
		_, err := s.setState(ctx, r.Number, StateFailedUnrecoverable, r.LastError, r.State)
		return err
	}
	switch r.State {
	case StateSealFailed:
		_, err := s.setState(ctx, r.Number, StatePreCommit1, r.LastError, r.State)
		return err
	case StatePreCommitFailed:
		pci, err := s.node.StateSectorPreCommitInfo(ctx, s.maddr, r.Number, chain.EmptyTSK)
		if err != nil {
			return err
		}
		if pci != nil {
			return s.preCommitLanded(ctx, r, pci.PreCommitEpoch)
		}
		_, err = s.db.ExecContext(ctx, `UPDATE sealing_sectors SET precommit_uuid = '', precommit_msg = '', state = ?, updated_at = ?
			WHERE number = ? AND state = ?`, StatePreCommit1, s.now().UnixNano(), int64(r.Number), r.State)
		return err
	default: // CommitFailed
		si, err := s.node.StateSectorGetInfo(ctx, s.maddr, r.Number, chain.EmptyTSK)
		if err != nil {
			return err
		}
		if si != nil {
			_, err := s.setState(ctx, r.Number, StateFinalizeSector, "", r.State)
			return err
		}
		_, err = s.db.ExecContext(ctx, `UPDATE sealing_sectors SET commit_uuid = '', commit_msg = '', state = ?, updated_at = ?
			WHERE number = ? AND state = ?`, StateWaitSeed, s.now().UnixNano(), int64(r.Number), r.State)
		return err
	}
}
