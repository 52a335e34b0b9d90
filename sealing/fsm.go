package sealing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	miner13 "github.com/filecoin-project/go-state-types/builtin/v13/miner"
	verifreg13 "github.com/filecoin-project/go-state-types/builtin/v13/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v9/miner"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/sender"
	"github.com/ferry-fil/ferry/piece"
)

// Run drives every sector through its states until ctx ends, resuming the
// sectors persisted by an earlier run. It returns nil when ctx ends.
func (s *Sealing) Run(ctx context.Context) error {
	defer s.waiters.Wait()
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

// step runs one transition for each sector Run drives, with the handler the
// state table names for its state.
func (s *Sealing) step(ctx context.Context) {
	rows, err := s.st.activeSectors(ctx, s.cfg.SectorSize)
	if err != nil {
		return // the next tick tries again
	}
	for i := range rows {
		r := &rows[i]
		if ctx.Err() != nil {
			return
		}
		err := fmt.Errorf("sector %d: unknown state %q", r.Number, r.State)
		if st, ok := lookupState(r.State); ok && st.handle != nil {
			err = st.handle(s, ctx, r)
		}
		if err != nil && ctx.Err() == nil {
			_ = s.st.setLastError(ctx, r.Number, err.Error()) // the next tick tries again
		}
	}
}

// handleOpen settles sectors taking pieces: back to WaitDeals once no
// AddPieceToAny holds a reservation there, and on to Packing when full, when
// WaitDealsDelay has passed, or when a deal's start epoch minus the sealing
// buffer is reached.
func (s *Sealing) handleOpen(ctx context.Context, r *sectorRow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[r.Number] > 0 {
		return nil
	}
	if r.State != StateWaitDeals {
		if _, err := s.st.setState(ctx, r.Number, StateWaitDeals, r.LastError, r.State); err != nil {
			return err
		}
		s.broadcastLocked()
	}
	reason, err := s.packReason(ctx, r)
	if err != nil || reason == "" {
		return err
	}
	// Reservations left by a process that died mid-write would keep the
	// sector from packing: wait for those a call here holds again, zero
	// and withdraw the others, and decide on what is written.
	res, err := s.st.reservations(ctx, r.Number)
	if err != nil {
		return err
	}
	if len(res) > 0 {
		for _, x := range res {
			if _, live := s.inflight[x.Deal]; live {
				return nil
			}
		}
		if err := s.dropStale(ctx, r.Number, res); err != nil {
			return err
		}
		s.broadcastLocked()
		s.nudge()
		return nil
	}
	if err := s.st.startPacking(ctx, r.Number, reason); err != nil {
		return err
	}
	s.broadcastLocked()
	s.nudge()
	return nil
}

// packReason says why an open sector is to be packed now, or "".
func (s *Sealing) packReason(ctx context.Context, r *sectorRow) (string, error) {
	switch {
	case r.Used >= abi.PaddedPieceSize(s.cfg.SectorSize):
		return "filled", nil
	case r.Deals >= maxDealsPerSector(s.cfg.SectorSize):
		return "maxdeals", nil
	case s.st.now().Sub(r.OpenedAt) >= s.cfg.WaitDealsDelay:
		return "wait-timeout", nil
	}
	if r.Deals == 0 {
		return "", nil
	}
	h, err := headHeight(ctx, s.node)
	if err != nil {
		return "", err
	}
	for _, p := range r.Pieces {
		if !p.Filler && h >= p.StartEpoch-s.cfg.StartEpochSealingBuffer {
			return "deal-start", nil
		}
	}
	return "", nil
}

// handlePacking fills the rest of the sector with zero pieces: their rows,
// their (zeroed) ranges and the trailer then cover the whole sector. No
// piece is written meanwhile: the sector takes none once it is packing.
func (s *Sealing) handlePacking(ctx context.Context, r *sectorRow) error {
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
	if err := s.st.addTailFillers(ctx, r.Number, tail); err != nil {
		return err
	}
	done, err := s.st.writtenSpans(ctx, r.Number)
	if err != nil {
		return err
	}
	if err := writeTrailer(f, s.cfg.SectorSize, done); err != nil {
		return fmt.Errorf("packing sector %d: %w", r.Number, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("packing sector %d: syncing: %w", r.Number, err)
	}
	_, err = s.st.setState(ctx, r.Number, StatePreCommit1, "", StatePacking)
	return err
}

// handlePreCommit1 picks the ticket epoch.
func (s *Sealing) handlePreCommit1(ctx context.Context, r *sectorRow) error {
	h, err := headHeight(ctx, s.node)
	if err != nil {
		return err
	}
	return s.st.recordTicket(ctx, r.Number, max(h-1, 0))
}

// sectorPieces lists a packed sector's pieces, fillers included, in order.
func sectorPieces(r *sectorRow) []abi.PieceInfo {
	var out []abi.PieceInfo
	for _, p := range r.Pieces {
		out = append(out, abi.PieceInfo{Size: p.Size, PieceCID: p.PieceCID})
	}
	return out
}

func (s *Sealing) ref(r *sectorRow) SectorRef {
	return SectorRef{Miner: s.miner, Number: r.Number, ProofType: s.proof, UnsealedPath: s.unsealedPath(r.Number)}
}

// handlePreCommit2 has the sealer compute CommD and CommR, and checks CommD
// against the one the chain will compute from the deals.
func (s *Sealing) handlePreCommit2(ctx context.Context, r *sectorRow) error {
	pieces := sectorPieces(r)
	want, err := piece.CommD(abi.PaddedPieceSize(s.cfg.SectorSize), pieces)
	if err != nil {
		return s.toFailed(ctx, r, StateSealPreCommit1Failed, fmt.Errorf("computing CommD of sector %d: %w", r.Number, err))
	}
	cids, err := s.sealer.PreCommit(ctx, s.ref(r), nil, pieces)
	if err != nil {
		return s.toFailed(ctx, r, StateSealPreCommit1Failed, fmt.Errorf("pre-committing sector %d: %w", r.Number, err))
	}
	if !cids.Unsealed.Equals(want) {
		return s.toFailed(ctx, r, StateSealPreCommit1Failed, fmt.Errorf("sector %d: sealer's CommD %s differs from the pieces' %s", r.Number, cids.Unsealed, want))
	}
	return s.st.recordCommitments(ctx, r.Number, cids)
}

func (s *Sealing) worker(ctx context.Context) (address.Address, error) {
	mi, err := s.node.StateMinerInfo(ctx, s.maddr, chain.EmptyTSK)
	if err != nil {
		return address.Undef, fmt.Errorf("reading miner info of %s: %w", s.maddr, err)
	}
	return mi.Worker, nil
}

type cborMarshaler interface {
	MarshalCBOR(w io.Writer) error
}

// send sends a message to the miner actor from its worker as the message
// named id. Without an id yet, a new one is recorded with setID first, so
// that a restart sends under the same name and the sender returns the
// message it already sent.
func (s *Sealing) send(ctx context.Context, n abi.SectorNumber, id uuid.UUID, setID func(context.Context, abi.SectorNumber, uuid.UUID) error,
	method abi.MethodNum, params cborMarshaler) (cid.Cid, error) {
	var buf bytes.Buffer
	if err := params.MarshalCBOR(&buf); err != nil {
		return cid.Undef, fmt.Errorf("encoding params: %w", err)
	}
	if id == uuid.Nil {
		id = uuid.New()
		if err := setID(ctx, n, id); err != nil {
			return cid.Undef, err
		}
	}
	from, err := s.worker(ctx)
	if err != nil {
		return cid.Undef, err
	}
	return s.sender.Send(ctx, id, &chain.Message{
		To: s.maddr, From: from, Value: big.Zero(), Method: method, Params: buf.Bytes(),
		GasFeeCap: big.Zero(), GasPremium: big.Zero(),
	}, &chain.MessageSendSpec{MaxFee: big.Zero()})
}

// await has a goroutine of its own wait for the message sent as id (one
// per id, ended when ctx, Run's, ends) and then hand its receipt to done;
// a failure is recorded as the sector's last error and the next pass waits
// again. msg is the CID recorded when the message was sent: a message sent
// before the sender kept its messages is unknown to it and followed by CID.
func (s *Sealing) await(ctx context.Context, n abi.SectorNumber, id uuid.UUID, msg *cid.Cid, done func(context.Context, *chain.MsgLookup) error) {
	s.mu.Lock()
	if s.awaited[id] {
		s.mu.Unlock()
		return
	}
	s.awaited[id] = true
	s.waiters.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.waiters.Done()
		l, err := s.sender.Wait(ctx, id, s.cfg.MessageConfidence)
		if errors.Is(err, sender.ErrUnknownID) && msg != nil {
			l, err = s.search(ctx, *msg)
		}
		if err == nil {
			err = done(ctx, l)
		}
		if err != nil && ctx.Err() == nil {
			_ = s.st.setLastError(ctx, n, fmt.Sprintf("sector %d: waiting for message %s: %v", n, id, err))
		}
		s.mu.Lock()
		delete(s.awaited, id)
		s.mu.Unlock()
		s.nudge()
	}()
}

// search looks for an executed message by CID on every poll until it is
// found or ctx ends.
func (s *Sealing) search(ctx context.Context, msg cid.Cid) (*chain.MsgLookup, error) {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		l, err := s.node.StateSearchMsg(ctx, chain.EmptyTSK, msg, -1, true)
		if err != nil {
			return nil, fmt.Errorf("looking up message %s: %w", msg, err)
		}
		if l != nil {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// preCommitted returns the sector's pre-commit on chain, or nil.
func (s *Sealing) preCommitted(ctx context.Context, n abi.SectorNumber) (*chain.SectorPreCommitOnChainInfo, error) {
	pci, err := s.node.StateSectorPreCommitInfo(ctx, s.maddr, n, chain.EmptyTSK)
	if err != nil {
		return nil, fmt.Errorf("sector %d: reading pre-commit: %w", n, err)
	}
	return pci, nil
}

// proven returns the sector's on-chain info once it is proven, or nil.
func (s *Sealing) proven(ctx context.Context, n abi.SectorNumber) (*chain.SectorOnChainInfo, error) {
	si, err := s.node.StateSectorGetInfo(ctx, s.maddr, n, chain.EmptyTSK)
	if err != nil {
		return nil, fmt.Errorf("sector %d: reading sector info: %w", n, err)
	}
	return si, nil
}

// preCommitLanded moves a sector whose pre-commit executed at epoch to
// WaitSeed.
func (s *Sealing) preCommitLanded(ctx context.Context, r *sectorRow, epoch abi.ChainEpoch) error {
	return s.st.recordPreCommitLanded(ctx, r.Number, r.State, epoch, epoch+s.cfg.PreCommitChallengeDelay)
}

// handleSubmitPreCommit sends the pre-commit (a PreCommitSectorBatch2 of
// one sector), unless the chain has it or it was sent before a restart.
func (s *Sealing) handleSubmitPreCommit(ctx context.Context, r *sectorRow) error {
	pci, err := s.preCommitted(ctx, r.Number)
	if err != nil {
		return err
	}
	if pci != nil {
		return s.preCommitLanded(ctx, r, pci.PreCommitEpoch)
	}
	if r.PreCommitMsg != nil {
		_, err := s.st.setState(ctx, r.Number, StatePreCommitBatchWait, "", r.State)
		return err
	}
	h, err := headHeight(ctx, s.node)
	if err != nil {
		return err
	}
	// A sector holding a direct piece is pre-committed without deal IDs
	// and proven with the manifests of its pieces (ProveCommitSectors3);
	// the others with their deal IDs (ProveCommitSector).
	direct := holdsDirect(r)
	var dealIDs []abi.DealID
	var bounds expiryBounds
	for _, p := range r.Pieces {
		if !p.Filler {
			if !direct {
				dealIDs = append(dealIDs, p.DealID)
			}
			bounds = bounds.with(expiryBounds{MinEnd: p.EndEpoch, TermMax: p.claim.TermMax})
		}
	}
	exp, err := s.expiration(h, bounds)
	if err != nil {
		return s.toFailed(ctx, r, StatePreCommitFailed, fmt.Errorf("sector %d: choosing its expiration: %w", r.Number, err))
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
	c, err := s.send(ctx, r.Number, r.preCommitID, s.st.setPreCommitID, builtin.MethodsMiner.PreCommitSectorBatch2, params)
	if err != nil {
		return fmt.Errorf("sector %d: sending pre-commit: %w", r.Number, err)
	}
	return s.st.recordPreCommitSent(ctx, r.Number, c)
}

// handlePreCommitWait waits for the pre-commit to execute: through the
// sender, which pushes it again or under a new nonce when it has to.
func (s *Sealing) handlePreCommitWait(ctx context.Context, r *sectorRow) error {
	pci, err := s.preCommitted(ctx, r.Number)
	if err != nil {
		return err
	}
	if pci != nil {
		return s.preCommitLanded(ctx, r, pci.PreCommitEpoch)
	}
	if r.preCommitID == uuid.Nil {
		return fmt.Errorf("sector %d: waiting for a pre-commit that has no message id", r.Number)
	}
	s.await(ctx, r.Number, r.preCommitID, r.PreCommitMsg, func(ctx context.Context, l *chain.MsgLookup) error {
		if l.Receipt.ExitCode != exitcode.Ok {
			return s.toFailed(ctx, r, StatePreCommitFailed, fmt.Errorf("pre-commit message %s failed: exit code %d", l.Message, l.Receipt.ExitCode))
		}
		return s.preCommitLanded(ctx, r, l.Height)
	})
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
	_, err = s.st.setState(ctx, r.Number, StateCommitting, "", StateWaitSeed)
	return err
}

func (s *Sealing) handleCommitting(ctx context.Context, r *sectorRow) error {
	cids := SectorCids{}
	if r.CommD != nil && r.CommR != nil {
		cids = SectorCids{Unsealed: *r.CommD, Sealed: *r.CommR}
	}
	proof, err := s.sealer.Commit(ctx, s.ref(r), nil, nil, sectorPieces(r), cids)
	if err != nil {
		return s.toFailed(ctx, r, StateComputeProofFailed, fmt.Errorf("proving sector %d: %w", r.Number, err))
	}
	return s.st.recordProof(ctx, r.Number, proof)
}

// handleSubmitCommit sends the prove-commit, unless the sector is proven or
// it was sent before a restart.
func (s *Sealing) handleSubmitCommit(ctx context.Context, r *sectorRow) error {
	si, err := s.proven(ctx, r.Number)
	if err != nil {
		return err
	}
	if si != nil {
		_, err := s.st.setState(ctx, r.Number, StateFinalizeSector, "", r.State)
		return err
	}
	if r.CommitMsg != nil {
		_, err := s.st.setState(ctx, r.Number, StateCommitWait, "", r.State)
		return err
	}
	method, params := builtin.MethodsMiner.ProveCommitSector, cborMarshaler(&miner.ProveCommitSectorParams{SectorNumber: r.Number, Proof: r.proof})
	if holdsDirect(r) {
		method, params = builtin.MethodsMiner.ProveCommitSectors3, &miner13.ProveCommitSectors3Params{
			SectorActivations:          []miner13.SectorActivationManifest{{SectorNumber: r.Number, Pieces: activationManifest(r)}},
			SectorProofs:               [][]byte{r.proof},
			RequireActivationSuccess:   true,
			RequireNotificationSuccess: true,
		}
	}
	c, err := s.send(ctx, r.Number, r.commitID, s.st.setCommitID, method, params)
	if err != nil {
		return fmt.Errorf("sector %d: sending prove-commit: %w", r.Number, err)
	}
	return s.st.recordCommitSent(ctx, r.Number, c)
}

// holdsDirect reports whether a sector holds a direct piece, which makes it
// a sector of the DDO methods: PreCommitSectorBatch2 without deal IDs and
// ProveCommitSectors3. Its market deals are activated by notifications.
func holdsDirect(r *sectorRow) bool {
	for _, p := range r.Pieces {
		if p.Direct {
			return true
		}
	}
	return false
}

// activationManifest is the manifest of every piece of a sector in order,
// fillers included, whose CommD is the sector's: a direct piece's own
// manifest; a market deal's piece with a notification that has the market
// actor activate the deal (and its verified allocation's key, for the
// claim); a filler with its CID and size alone.
func activationManifest(r *sectorRow) []miner13.PieceActivationManifest {
	out := make([]miner13.PieceActivationManifest, 0, len(r.Pieces))
	for _, p := range r.Pieces {
		switch {
		case p.Manifest != nil:
			out = append(out, *p.Manifest)
		case p.Filler:
			out = append(out, miner13.PieceActivationManifest{CID: p.PieceCID, Size: p.Size})
		default:
			m := miner13.PieceActivationManifest{CID: p.PieceCID, Size: p.Size, Notify: []miner13.DataActivationNotification{{
				Address: builtin.StorageMarketActorAddr, Payload: chain.DealNotificationPayload(p.DealID),
			}}}
			if p.claim.ID != chain.NoAllocationID {
				m.VerifiedAllocationKey = &miner13.VerifiedAllocationKey{Client: p.claim.Client, ID: verifreg13.AllocationId(p.claim.ID)}
			}
			out = append(out, m)
		}
	}
	return out
}

// handleCommitWait waits for the prove-commit to execute, through the
// sender, and the sector to be proven (at the end of the epoch the message
// executed in).
func (s *Sealing) handleCommitWait(ctx context.Context, r *sectorRow) error {
	si, err := s.proven(ctx, r.Number)
	if err != nil {
		return err
	}
	if si != nil {
		_, err := s.st.setState(ctx, r.Number, StateFinalizeSector, "", r.State)
		return err
	}
	if r.commitID == uuid.Nil {
		return fmt.Errorf("sector %d: waiting for a prove-commit that has no message id", r.Number)
	}
	s.await(ctx, r.Number, r.commitID, r.CommitMsg, func(ctx context.Context, l *chain.MsgLookup) error {
		if l.Receipt.ExitCode != exitcode.Ok {
			return s.toFailed(ctx, r, StateCommitFailed, fmt.Errorf("prove-commit message %s failed: exit code %d", l.Message, l.Receipt.ExitCode))
		}
		return nil // the next pass finds the sector proven
	})
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
		if err := s.st.markUnsealedRemoved(ctx, r.Number); err != nil {
			return err
		}
		if err := os.Remove(s.unsealedPath(r.Number)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sector %d: removing unsealed copy: %w", r.Number, err)
		}
	}
	_, err := s.st.setState(ctx, r.Number, StateProving, "", StateFinalizeSector)
	return err
}

// toFailed records a failed step in its failure state, whose handler
// retries it after RetryDelay.
func (s *Sealing) toFailed(ctx context.Context, r *sectorRow, state SectorState, cause error) error {
	if err := s.st.recordFailure(ctx, r.Number, r.State, state, cause.Error(), s.st.now().Add(s.cfg.RetryDelay)); err != nil {
		return fmt.Errorf("%w (and recording the failure: %v)", cause, err)
	}
	return nil
}

// retryNow says whether a failed sector's step may be retried now; after
// MaxRetries the sector is left in FailedUnrecoverable.
func (s *Sealing) retryNow(ctx context.Context, r *sectorRow) (bool, error) {
	if s.st.now().Before(r.retryAfter) {
		return false, nil
	}
	if r.Retries > s.cfg.MaxRetries {
		_, err := s.st.setState(ctx, r.Number, StateFailedUnrecoverable, r.LastError, r.State)
		return false, err
	}
	return true, nil
}

// retryFrom returns the handler of a failed state whose step is simply done
// again: once retryNow allows it, the sector goes back to state.
func retryFrom(state SectorState) func(s *Sealing, ctx context.Context, r *sectorRow) error {
	return func(s *Sealing, ctx context.Context, r *sectorRow) error {
		if ok, err := s.retryNow(ctx, r); !ok {
			return err
		}
		_, err := s.st.setState(ctx, r.Number, state, r.LastError, r.State)
		return err
	}
}

// handlePreCommitFailed pre-commits again, unless the chain has the
// pre-commit after all.
func (s *Sealing) handlePreCommitFailed(ctx context.Context, r *sectorRow) error {
	if ok, err := s.retryNow(ctx, r); !ok {
		return err
	}
	pci, err := s.preCommitted(ctx, r.Number)
	if err != nil {
		return err
	}
	if pci != nil {
		return s.preCommitLanded(ctx, r, pci.PreCommitEpoch)
	}
	return s.st.retryPreCommit(ctx, r.Number, r.State)
}

// handleCommitFailed proves again from WaitSeed, unless the sector is
// proven after all.
func (s *Sealing) handleCommitFailed(ctx context.Context, r *sectorRow) error {
	if ok, err := s.retryNow(ctx, r); !ok {
		return err
	}
	si, err := s.proven(ctx, r.Number)
	if err != nil {
		return err
	}
	if si != nil {
		_, err := s.st.setState(ctx, r.Number, StateFinalizeSector, "", r.State)
		return err
	}
	return s.st.retryCommit(ctx, r.Number, r.State)
}
