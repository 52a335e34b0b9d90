package sealing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
)

// AddPieceToAny places a deal's piece in a sector and writes it: data is the
// piece's payload, at most size bytes (the unpadded piece size; a shorter
// payload is zero-filled as the deal's CommP assumes). The piece goes into
// the open sector that needs the least filler padding, or into a new sector
// when none fits and the sector limits allow; otherwise the call waits for
// room until ctx ends. The placement is recorded before any byte is written
// and reported only after the bytes are synced and their piece commitment
// matched the deal's PieceCID.
//
// It is idempotent per deal (UUID or chain deal ID): a deal already placed
// returns the same placement without reading data; a deal whose write was
// interrupted (a crash) is written again at the same place.
func (s *Sealing) AddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, data io.Reader, d Deal) (Placement, error) {
	if err := piece.ValidateUnpadded(size); err != nil {
		return Placement{}, fmt.Errorf("adding piece of deal %s: %w", d.UUID, err)
	}
	padded := size.Padded()
	if d.Proposal.PieceSize != padded {
		return Placement{}, fmt.Errorf("adding piece of deal %s: piece size %d does not match the proposal's %d", d.UUID, padded, d.Proposal.PieceSize)
	}
	if uint64(padded) > uint64(s.cfg.SectorSize) {
		return Placement{}, fmt.Errorf("adding piece of deal %s: piece of %d bytes does not fit a %d-byte sector", d.UUID, padded, s.cfg.SectorSize)
	}
	if !d.Proposal.PieceCID.Defined() {
		return Placement{}, fmt.Errorf("adding piece of deal %s: the proposal has no piece CID", d.UUID)
	}
	if d.UUID == [16]byte{} {
		return Placement{}, errors.New("adding piece: deal UUID is not set")
	}

	release, err := s.claimDeal(ctx, d)
	if err != nil {
		return Placement{}, err
	}
	defer release()

	pl, status, found, err := s.lookupDeal(ctx, d)
	if err != nil {
		return Placement{}, err
	}
	if found && status == statusDone {
		return pl, nil
	}
	if found {
		// An earlier call recorded the placement and did not finish: write
		// again at the same place.
		s.mu.Lock()
		s.writing[pl.Sector]++
		s.mu.Unlock()
	} else {
		head, err := s.node.ChainHead(ctx)
		if err != nil {
			return Placement{}, fmt.Errorf("adding piece of deal %s: reading chain head: %w", d.UUID, err)
		}
		if d.Proposal.StartEpoch < head.Height()+s.cfg.StartEpochSealingBuffer {
			return Placement{}, fmt.Errorf("adding piece of deal %s: start epoch %d is less than the sealing buffer of %d epochs after the current epoch %d: %w",
				d.UUID, d.Proposal.StartEpoch, s.cfg.StartEpochSealingBuffer, head.Height(), ErrStartEpochTooSoon)
		}
		if pl, err = s.place(ctx, d, padded); err != nil {
			return Placement{}, err
		}
	}
	werr := s.addPiece(ctx, pl, size, data, d)
	s.finishWrite(pl.Sector, werr)
	if werr != nil {
		return Placement{}, werr
	}
	return pl, nil
}

// claimDeal makes sure only one AddPieceToAny per deal runs in this process;
// a second call waits for the first and then sees its result in the DB.
func (s *Sealing) claimDeal(ctx context.Context, d Deal) (func(), error) {
	for {
		s.mu.Lock()
		ch, busy := s.inflight[d.UUID]
		if !busy {
			ch = make(chan struct{})
			s.inflight[d.UUID] = ch
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.inflight, d.UUID)
				s.mu.Unlock()
				close(ch)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("adding piece of deal %s: waiting for an earlier call for the same deal: %w", d.UUID, ctx.Err())
		}
	}
}

// place records the placement intent, waiting for room when every open
// sector is full and no new one may be started.
func (s *Sealing) place(ctx context.Context, d Deal, size abi.PaddedPieceSize) (Placement, error) {
	for {
		s.mu.Lock()
		pl, err := s.tryPlace(ctx, d, size)
		if err == nil {
			s.writing[pl.Sector]++
			s.mu.Unlock()
			s.nudge()
			return pl, nil
		}
		changed := s.changed
		s.mu.Unlock()
		if !errors.Is(err, errNoRoom) {
			return Placement{}, fmt.Errorf("placing piece of deal %s: %w", d.UUID, err)
		}
		s.nudge() // let Run pack sectors whose time has come
		select {
		case <-changed:
		case <-ctx.Done():
			return Placement{}, fmt.Errorf("placing piece of deal %s: waiting for room in a sector: %w", d.UUID, ctx.Err())
		}
	}
}

// finishWrite ends the bookkeeping of one write into sector n: when the last
// write ends the sector goes back to WaitDeals (or AddPieceFailed).
func (s *Sealing) finishWrite(n abi.SectorNumber, werr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writing[n]--
	if werr != nil {
		s.failed[n] = werr
	}
	if s.writing[n] <= 0 {
		delete(s.writing, n)
		to, msg := StateWaitDeals, ""
		if e := s.failed[n]; e != nil {
			to, msg = StateAddPieceFailed, e.Error()
			delete(s.failed, n)
		}
		// Without a context of its own this bookkeeping must not be
		// skipped; it is one short UPDATE.
		_, _ = s.setState(context.Background(), n, to, msg, StateAddPiece)
	}
	s.broadcastLocked()
	s.nudge()
}

// addPiece does the AddPiece work for a recorded placement: zero the fillers
// before the piece, write the piece fr32-padded at its offset while
// computing its commitment, check it against the deal, sync, update the
// allocation trailer and record the piece done. On failure the piece's range
// is zeroed and forgotten, so the sector stays consistent for the next piece.
func (s *Sealing) addPiece(ctx context.Context, pl Placement, size abi.UnpaddedPieceSize, data io.Reader, d Deal) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return s.fail(pl, fmt.Errorf("adding piece of deal %s: waiting for a writer: %w", d.UUID, ctx.Err()))
	}
	defer func() { <-s.sem }()
	lk := s.sectorLock(pl.Sector)
	lk.Lock()
	defer lk.Unlock()

	if _, err := s.setState(ctx, pl.Sector, StateAddPiece, "", StateWaitDeals, StateAddPieceFailed); err != nil {
		return s.fail(pl, err)
	}
	f, err := s.openUnsealed(pl.Sector)
	if err != nil {
		return s.fail(pl, fmt.Errorf("adding piece of deal %s: %w", d.UUID, err))
	}
	defer f.Close()

	fillers, err := s.pendingFillers(ctx, pl)
	if err != nil {
		return s.failFile(f, pl, err)
	}
	for _, fl := range fillers {
		if err := zeroRange(f, int64(fl.Offset), int64(fl.Size)); err != nil {
			return s.failFile(f, pl, fmt.Errorf("adding piece of deal %s: zeroing filler in sector %d: %w", d.UUID, pl.Sector, err))
		}
	}
	comm, err := writePadded(ctx, f, pl, size, data)
	if err != nil {
		return s.failFile(f, pl, fmt.Errorf("adding piece of deal %s to sector %d at %d: %w", d.UUID, pl.Sector, pl.Offset, err))
	}
	if got := comm.CID(); !got.Equals(d.Proposal.PieceCID) {
		return s.failFile(f, pl, fmt.Errorf("adding piece of deal %s: data has piece CID %s, the deal says %s: %w", d.UUID, got, d.Proposal.PieceCID, ErrCommPMismatch))
	}
	if err := f.Sync(); err != nil {
		return s.failFile(f, pl, fmt.Errorf("adding piece of deal %s: syncing sector %d: %w", d.UUID, pl.Sector, err))
	}
	done, err := s.pieceSpans(ctx, pl.Sector, "", statusDone)
	if err != nil {
		return s.failFile(f, pl, err)
	}
	alloc := append(append(done, fillers...), span{Offset: pl.Offset, Size: pl.Size})
	if err := writeTrailer(f, s.cfg.SectorSize, alloc); err != nil {
		return s.failFile(f, pl, fmt.Errorf("adding piece of deal %s: sector %d: %w", d.UUID, pl.Sector, err))
	}
	if err := f.Sync(); err != nil {
		return s.failFile(f, pl, fmt.Errorf("adding piece of deal %s: syncing sector %d trailer: %w", d.UUID, pl.Sector, err))
	}
	if err := s.markDone(ctx, pl); err != nil {
		// The bytes are in place; the intent stays and a retry of this
		// deal writes them again.
		return err
	}
	return nil
}

// fail handles a write that failed before the file was opened: the
// placement is forgotten so that nothing refers to it.
func (s *Sealing) fail(pl Placement, cause error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.abandonPiece(context.Background(), pl); err != nil {
		return fmt.Errorf("%w (and forgetting the placement failed: %v)", cause, err)
	}
	return cause
}

// failFile zeroes the failed piece's range, forgets it and rewrites the
// trailer from what is done, so the sector is ready for the next piece.
func (s *Sealing) failFile(f sectorFile, pl Placement, cause error) error {
	if err := zeroRange(f, int64(pl.Offset), int64(pl.Size)); err != nil {
		// Keep the intent: the range may hold garbage, and the next try
		// of this deal (or packing) zeroes it.
		return fmt.Errorf("%w (and zeroing its range failed: %v)", cause, err)
	}
	if err := s.fail(pl, cause); err != nil && err != cause {
		return err
	}
	ctx := context.Background()
	done, err := s.pieceSpans(ctx, pl.Sector, "", statusDone)
	if err == nil {
		err = writeTrailer(f, s.cfg.SectorSize, done)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("%w (and rewriting the sector %d trailer failed: %v)", cause, pl.Sector, err)
	}
	return cause
}

// pendingFillers lists the fillers before pl not yet written.
func (s *Sealing) pendingFillers(ctx context.Context, pl Placement) ([]span, error) {
	all, err := s.pieceSpans(ctx, pl.Sector, kindFiller, statusWriting)
	if err != nil {
		return nil, err
	}
	var out []span
	for _, f := range all {
		if f.Offset < pl.Offset {
			out = append(out, f)
		}
	}
	return out, nil
}

// openUnsealed opens sector n's unsealed file, creating it sparse with an
// empty trailer if it is new or was cut short.
func (s *Sealing) openUnsealed(n abi.SectorNumber) (sectorFile, error) {
	f, err := s.openFile(s.unsealedPath(n), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening unsealed file of sector %d: %w", n, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat unsealed file of sector %d: %w", n, err)
	}
	if st.Size() < int64(s.cfg.SectorSize)+4 {
		if err := f.Truncate(int64(s.cfg.SectorSize)); err != nil {
			f.Close()
			return nil, fmt.Errorf("sizing unsealed file of sector %d: %w", n, err)
		}
		if err := writeTrailer(f, s.cfg.SectorSize, nil); err != nil {
			f.Close()
			return nil, fmt.Errorf("new unsealed file of sector %d: %w", n, err)
		}
	}
	return f, nil
}

// WritePadded is the AddPiece work on its own: it streams at most
// size.Unpadded() payload bytes from data through a commitment calculator
// whose sink is w at padded offset offset, so one pass fr32-pads, writes
// (zero-filling to the piece size) and hashes. It returns the commitment of
// the payload zero-filled to the padded piece size. It does not sync.
func WritePadded(ctx context.Context, w io.WriterAt, offset, size abi.PaddedPieceSize, data io.Reader) (piece.Commitment, error) {
	if err := piece.ValidatePadded(size); err != nil {
		return piece.Commitment{}, err
	}
	return writePadded(ctx, w, Placement{Offset: offset, Size: size}, size.Unpadded(), data)
}

// writePadded streams the payload through a commitment calculator whose
// sink is the sector file at the piece's offset: one pass pads, writes and
// hashes. It returns the commitment of the payload zero-filled to the piece.
// With O_DIRECT the calculator pads straight into the direct writer's
// aligned buffers (no copy); otherwise it hands its sink 1 MiB batches.
//
// Batches that are all zeros (the fill after a short payload, zero runs in
// the payload) are skipped when w is a sector file: its piece range is made
// a hole first, so they read as zeros and the file stays sparse.
func writePadded(ctx context.Context, f io.WriterAt, pl Placement, size abi.UnpaddedPieceSize, data io.Reader) (piece.Commitment, error) {
	hole := &holeWriter{w: f, off: int64(pl.Offset)}
	var direct *directWriter
	if sf, ok := f.(sectorFile); ok {
		if err := zeroRange(sf, int64(pl.Offset), int64(pl.Size)); err != nil {
			return piece.Commitment{}, fmt.Errorf("clearing the piece range: %w", err)
		}
		hole.zeros = make([]byte, 1<<20)
		// Large pieces of a real file go around the page cache; any
		// trouble opening the file that way leaves the buffered path,
		// which reports real errors itself.
		if named, ok := f.(interface{ Name() string }); ok && int64(pl.Size)%directAlign == 0 {
			if dw, err := newDirectWriter(named.Name(), int64(pl.Offset), int64(pl.Size)); err == nil {
				direct = dw
			}
		}
	}
	var calc *piece.Calc
	if direct != nil {
		calc = piece.NewCalcWithChunkSink(direct)
	} else {
		calc = piece.NewCalcWithSink(hole)
	}
	comm, err := hashInto(ctx, calc, pl, size, data)
	if direct != nil {
		if cerr := direct.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("writing piece data: %w", cerr)
		}
	}
	if err != nil {
		return piece.Commitment{}, err
	}
	return comm, nil
}

// hashInto streams the payload through calc, whose sink writes the padded
// bytes.
func hashInto(ctx context.Context, calc *piece.Calc, pl Placement, size abi.UnpaddedPieceSize, data io.Reader) (piece.Commitment, error) {
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(calc, &ctxReader{ctx: ctx, r: io.LimitReader(data, int64(size)+1)}, buf)
	if err != nil {
		calc.Sum() // releases the calculator's goroutines; the error is err
		return piece.Commitment{}, fmt.Errorf("writing piece data: %w", err)
	}
	if n > int64(size) {
		calc.Sum()
		return piece.Commitment{}, fmt.Errorf("piece data is longer than the %d-byte unpadded piece size", size)
	}
	comm, err := calc.SumAs(pl.Size)
	if err != nil {
		return piece.Commitment{}, fmt.Errorf("computing piece commitment: %w", err)
	}
	return comm, nil
}

// holeWriter writes sequentially at off; with zeros set it skips batches
// that are all zeros, leaving the (already zeroed) range as it is.
type holeWriter struct {
	w     io.WriterAt
	off   int64
	zeros []byte
}

func (h *holeWriter) Write(p []byte) (int, error) {
	if len(p) <= len(h.zeros) && bytes.Equal(p, h.zeros[:len(p)]) {
		h.off += int64(len(p))
		return len(p), nil
	}
	n, err := h.w.WriteAt(p, h.off)
	h.off += int64(n)
	return n, err
}

// ctxReader stops reading once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// headHeight returns the chain head's height.
func headHeight(ctx context.Context, node chain.Node) (abi.ChainEpoch, error) {
	ts, err := node.ChainHead(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading chain head: %w", err)
	}
	return ts.Height(), nil
}
