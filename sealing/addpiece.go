package sealing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/internal/iocount"
	"github.com/ferry-fil/ferry/piece"
)

// errNoRoom: no open sector has room and no new one may be started now.
var errNoRoom = errors.New("no open sector has room and the sector limits forbid a new one")

// AddPieceToAny places a deal's piece in a sector and writes it: data is the
// piece's payload, at most size bytes (the unpadded piece size; a shorter
// payload is zero-filled as the deal's CommP assumes). The piece goes into
// the open sector that needs the least filler padding, even one another
// piece is being written into, or into a new sector when none fits and the
// sector limits allow; otherwise the call waits for room until ctx ends.
// The placement is reserved in the database before any byte is written; the
// piece is written when its turn in the sector comes (writes into one
// sector go in offset order) and the placement is reported only after the
// bytes are synced and their piece commitment matched the deal's PieceCID.
//
// It is idempotent per deal (UUID or chain deal ID): a deal already placed
// returns the same placement without reading data; a deal whose write was
// interrupted (a crash) is written again where its reservation is.
func (s *Sealing) AddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, data io.Reader, d Deal) (Placement, error) {
	if err := d.validate(); err != nil {
		return Placement{}, fmt.Errorf("adding piece of deal %s: %w", d.UUID, err)
	}
	if err := piece.ValidateUnpadded(size); err != nil {
		return Placement{}, fmt.Errorf("adding piece of deal %s: %w", d.UUID, err)
	}
	padded := size.Padded()
	if d.PieceSize() != padded {
		return Placement{}, fmt.Errorf("adding piece of deal %s: piece size %d does not match the deal's %d", d.UUID, padded, d.PieceSize())
	}
	if uint64(padded) > uint64(s.cfg.SectorSize) {
		return Placement{}, fmt.Errorf("adding piece of deal %s: piece of %d bytes does not fit a %d-byte sector", d.UUID, padded, s.cfg.SectorSize)
	}

	release, err := s.claimDeal(ctx, d.UUID)
	if err != nil {
		return Placement{}, err
	}
	defer release()

	pl, owner, written, found, releaseOwner, err := s.resume(ctx, d)
	if err != nil {
		return Placement{}, err
	}
	if releaseOwner != nil {
		defer releaseOwner()
	}
	if written {
		return pl, nil
	}
	if found {
		d.UUID = owner // the same chain deal reserved under another UUID goes on as that one
	} else {
		h, err := headHeight(ctx, s.node)
		if err != nil {
			return Placement{}, fmt.Errorf("adding piece of deal %s: %w", d.UUID, err)
		}
		sch := d.Schedule()
		if sch.StartEpoch < h+s.cfg.StartEpochSealingBuffer {
			return Placement{}, fmt.Errorf("adding piece of deal %s: start epoch %d is less than the sealing buffer of %d epochs after the current epoch %d: %w",
				d.UUID, sch.StartEpoch, s.cfg.StartEpochSealingBuffer, h, ErrStartEpochTooSoon)
		}
		claim, err := s.allocationTerms(ctx, &d)
		if err != nil {
			return Placement{}, fmt.Errorf("adding piece of deal %s: %w", d.UUID, err)
		}
		own := expiryBounds{MinEnd: sch.EndEpoch, TermMax: claim.TermMax}
		if _, err := s.expiration(h, own); err != nil {
			return Placement{}, fmt.Errorf("adding piece of deal %s: no sector can hold it: %w: %w", d.UUID, err, ErrCannotSeal)
		}
		if pl, err = s.place(ctx, d, padded, claim, func(open openSector) bool { return s.fits(h, open.Bounds.with(own)) }); err != nil {
			return Placement{}, err
		}
	}
	pl, err = s.writeInTurn(ctx, pl, size, data, d)
	s.endCall(pl.Sector, err)
	if err != nil {
		return Placement{}, err
	}
	return pl, nil
}

// claimDeal makes sure only one AddPieceToAny per deal runs in this process;
// a second call waits for the first and then sees its result in the DB.
func (s *Sealing) claimDeal(ctx context.Context, id uuid.UUID) (func(), error) {
	for {
		s.mu.Lock()
		release, ch := s.claimLocked(id)
		s.mu.Unlock()
		if release != nil {
			return release, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("adding piece of deal %s: waiting for an earlier call for the same deal: %w", id, ctx.Err())
		}
	}
}

// claimLocked claims deal id for this call and returns how to release it,
// or, when a call holds it, a channel closed when that call ends. Call with
// s.mu.
func (s *Sealing) claimLocked(id uuid.UUID) (func(), <-chan struct{}) {
	if ch, busy := s.inflight[id]; busy {
		return nil, ch
	}
	ch := make(chan struct{})
	s.inflight[id] = ch
	return func() {
		s.mu.Lock()
		delete(s.inflight, id)
		s.broadcastLocked() // a waiting call may now find this deal's reservation stale
		s.mu.Unlock()
		close(ch)
	}, nil
}

// resume looks the deal's placement up; a reservation found is held by this
// call from then on, under the UUID it was made for (owner: a chain deal
// given again under another UUID is the same deal, and then claimed too
// until releaseOwner).
func (s *Sealing) resume(ctx context.Context, d Deal) (pl Placement, owner uuid.UUID, written, found bool, releaseOwner func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pl, owner, written, found, err = s.st.dealPlacement(ctx, d)
	if err != nil || !found || written {
		return pl, owner, written, found, nil, err
	}
	if owner != d.UUID {
		if releaseOwner, _ = s.claimLocked(owner); releaseOwner == nil {
			return pl, owner, false, false, nil, fmt.Errorf("adding piece of deal %s: chain deal %d is being added as deal %s", d.UUID, d.DealID, owner)
		}
	}
	s.held[pl.Sector]++
	return pl, owner, written, found, releaseOwner, nil
}

// place reserves the piece's placement in an open sector whose expiration
// bounds still meet with the piece's (compatible), waiting for room when
// every such sector is full and no new one may be started. The reservation
// is held by this call from then on.
func (s *Sealing) place(ctx context.Context, d Deal, size abi.PaddedPieceSize, claim pieceClaim, compatible func(openSector) bool) (Placement, error) {
	choose := func(open []openSector, sealing int) (int, error) {
		var fit []openSector
		var at []int
		for i, o := range open {
			if compatible(o) {
				fit, at = append(fit, o), append(at, i)
			}
		}
		if i := choosePlacement(fit, s.cfg.SectorSize, size); i >= 0 {
			return at[i], nil
		}
		if len(open) >= s.cfg.MaxWaitDealsSectors ||
			(s.cfg.MaxSealingSectorsForDeals > 0 && sealing >= s.cfg.MaxSealingSectorsForDeals) {
			return 0, errNoRoom
		}
		return -1, nil
	}
	for {
		s.mu.Lock()
		pl, err := s.st.reserve(ctx, d, size, claim, s.proof, choose)
		if err == nil {
			s.held[pl.Sector]++
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

// writeInTurn waits for the reservation's turn in its sector, then writes
// the piece. Whatever fails, the reservation is withdrawn (its range zeroed
// if it may have been written) so that the pieces behind it move up and the
// sector stays laid out as the chain will compute it.
func (s *Sealing) writeInTurn(ctx context.Context, pl Placement, size abi.UnpaddedPieceSize, data io.Reader, d Deal) (Placement, error) {
	pl, err := s.takeTurn(ctx, d.UUID, pl)
	if err != nil {
		return pl, s.withdraw(pl, d.UUID, false, err)
	}
	defer s.endTurn(pl.Sector)
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return pl, s.withdraw(pl, d.UUID, false, fmt.Errorf("adding piece of deal %s: waiting for a writer: %w", d.UUID, ctx.Err()))
	}
	defer func() { <-s.sem }()
	if _, err := s.st.setState(ctx, pl.Sector, StateAddPiece, "", StateWaitDeals, StateAddPieceFailed); err != nil {
		return pl, s.withdraw(pl, d.UUID, false, err)
	}
	if err := s.addPiece(ctx, pl, size, data, d); err != nil {
		return pl, s.withdraw(pl, d.UUID, true, err)
	}
	return pl, nil
}

// takeTurn waits until the deal's reservation in sector pl.Sector is the
// first one there not written and no other write runs in the sector; then
// the turn is the caller's until endTurn. Reservations before it that no
// call in this process holds (left by a crash, their deals gone or not back
// yet) are zeroed and withdrawn on the way: their deals get a new place when
// they come back. It returns the reservation's placement, which moves to
// lower offsets when reservations before it are withdrawn.
func (s *Sealing) takeTurn(ctx context.Context, deal uuid.UUID, pl Placement) (Placement, error) {
	n := pl.Sector
	for {
		s.mu.Lock()
		if _, busy := s.writer[n]; !busy {
			res, err := s.st.reservations(ctx, n)
			if err != nil {
				s.mu.Unlock()
				return pl, err
			}
			var stale []reservation
			mine := -1
			for i, r := range res {
				if r.Deal == deal {
					mine = i
					break
				}
				if _, live := s.inflight[r.Deal]; live {
					break // its call writes first
				}
				stale = append(stale, r)
			}
			if mine < 0 && len(stale) == len(res) {
				s.mu.Unlock()
				return pl, fmt.Errorf("deal %s: its reservation in sector %d is gone", deal, n)
			}
			if mine >= 0 {
				// Dropped under s.mu: a deal coming back now either
				// still finds its reservation (and holds it) or finds
				// none and is placed anew.
				if len(stale) > 0 {
					if err := s.dropStale(ctx, n, stale); err != nil {
						s.mu.Unlock()
						return pl, err
					}
				}
				s.writer[n] = deal
				s.mu.Unlock()
				return s.currentPlacement(ctx, deal, pl)
			}
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return pl, fmt.Errorf("deal %s: waiting for its turn to write into sector %d: %w", deal, n, ctx.Err())
		}
	}
}

// currentPlacement re-reads the deal's reservation.
func (s *Sealing) currentPlacement(ctx context.Context, deal uuid.UUID, pl Placement) (Placement, error) {
	cur, _, _, found, err := s.st.dealPlacement(ctx, Deal{UUID: deal})
	if err == nil && !found {
		err = fmt.Errorf("deal %s: its reservation in sector %d is gone", deal, pl.Sector)
	}
	if err != nil {
		s.endTurn(pl.Sector)
		return pl, err
	}
	return cur, nil
}

// endTurn gives up the write turn in sector n.
func (s *Sealing) endTurn(n abi.SectorNumber) {
	s.mu.Lock()
	delete(s.writer, n)
	s.broadcastLocked()
	s.mu.Unlock()
}

// dropStale zeroes the ranges of reservations whose writes may have been
// cut short and withdraws them. Call with s.mu, when no write runs in
// sector n.
func (s *Sealing) dropStale(ctx context.Context, n abi.SectorNumber, stale []reservation) error {
	f, err := s.openUnsealed(n)
	if err != nil {
		return err
	}
	defer f.Close()
	deals := make([]uuid.UUID, len(stale))
	for i, r := range stale {
		if err := zeroRange(f, int64(r.Offset), int64(r.Size)); err != nil {
			return fmt.Errorf("sector %d: clearing the interrupted piece of deal %s: %w", n, r.Deal, err)
		}
		deals[i] = r.Deal
	}
	return s.st.withdraw(ctx, n, deals...)
}

// withdraw handles a failed AddPiece: the deal's reservation is zeroed (when
// written says bytes may have reached the file) and withdrawn, and the
// trailer rewritten from what is written, so the sector is ready for the
// next piece. It returns cause, with what went wrong on the way.
func (s *Sealing) withdraw(pl Placement, deal uuid.UUID, written bool, cause error) error {
	ctx := context.Background() // the bookkeeping must not be skipped; it is short
	if written {
		f, err := s.openUnsealed(pl.Sector)
		if err != nil {
			return fmt.Errorf("%w (and reopening the sector to clear the piece failed: %v)", cause, err)
		}
		defer f.Close()
		if err := zeroRange(f, int64(pl.Offset), int64(pl.Size)); err != nil {
			// Keep the reservation: the range may hold garbage, and the
			// next try of this deal, the next piece's turn or packing
			// zeroes it.
			return fmt.Errorf("%w (and zeroing its range failed: %v)", cause, err)
		}
		done, err := s.st.writtenSpans(ctx, pl.Sector)
		if err == nil {
			err = writeTrailer(f, s.cfg.SectorSize, done)
		}
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			return fmt.Errorf("%w (and rewriting the sector %d trailer failed: %v)", cause, pl.Sector, err)
		}
	}
	if err := s.st.withdraw(ctx, pl.Sector, deal); err != nil {
		return fmt.Errorf("%w (and withdrawing the reservation failed: %v)", cause, err)
	}
	return cause
}

// endCall ends a call's hold on its reservation in sector n: when the last
// call holding one there ends, the sector goes back to WaitDeals (or to
// AddPieceFailed when one of them failed).
func (s *Sealing) endCall(n abi.SectorNumber, werr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[n]--
	if werr != nil {
		s.failed[n] = werr
	}
	if s.held[n] <= 0 {
		delete(s.held, n)
		to, msg := StateWaitDeals, ""
		if e := s.failed[n]; e != nil {
			to, msg = StateAddPieceFailed, e.Error()
			delete(s.failed, n)
		}
		// Without a context of its own this bookkeeping must not be
		// skipped; it is one short UPDATE.
		_, _ = s.st.setState(context.Background(), n, to, msg, StateAddPiece)
	}
	s.broadcastLocked()
	s.nudge()
}

// addPiece does the AddPiece work for the placement whose turn it is: zero
// the fillers before the piece, write the piece fr32-padded at its offset
// while computing its commitment, check it against the deal, sync, update
// the allocation trailer and record the piece written.
func (s *Sealing) addPiece(ctx context.Context, pl Placement, size abi.UnpaddedPieceSize, data io.Reader, d Deal) error {
	f, err := s.openUnsealed(pl.Sector)
	if err != nil {
		return fmt.Errorf("adding piece of deal %s: %w", d.UUID, err)
	}
	defer f.Close()

	fillers, err := s.st.reservedFillers(ctx, pl)
	if err != nil {
		return err
	}
	for _, fl := range fillers {
		if err := zeroRange(f, int64(fl.Offset), int64(fl.Size)); err != nil {
			return fmt.Errorf("adding piece of deal %s: zeroing filler in sector %d: %w", d.UUID, pl.Sector, err)
		}
	}
	if err := writeChecked(ctx, &s.bufs, f, pl, size, data, d); err != nil {
		return fmt.Errorf("adding piece of deal %s to sector %d at %d: %w", d.UUID, pl.Sector, pl.Offset, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("adding piece of deal %s: syncing sector %d: %w", d.UUID, pl.Sector, err)
	}
	done, err := s.st.writtenSpans(ctx, pl.Sector)
	if err != nil {
		return err
	}
	alloc := append(append(done, fillers...), span{Offset: pl.Offset, Size: pl.Size})
	if err := writeTrailer(f, s.cfg.SectorSize, alloc); err != nil {
		return fmt.Errorf("adding piece of deal %s: sector %d: %w", d.UUID, pl.Sector, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("adding piece of deal %s: syncing sector %d trailer: %w", d.UUID, pl.Sector, err)
	}
	return s.st.markWritten(ctx, pl)
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

// PieceWriter does the AddPiece work on its own, piece after piece
// (WritePadded), as a Sealing does it: the aligned buffers of one piece's
// direct writes serve the next. The zero value is ready; it is safe for
// concurrent use.
type PieceWriter struct{ bufs bufferPool }

// WritePadded streams at most size.Unpadded() payload bytes from data
// through a commitment calculator whose sink is w at padded offset offset,
// so one pass fr32-pads, writes (zero-filling to the piece size) and hashes.
// It returns the commitment of the payload zero-filled to the padded piece
// size. It does not sync.
func (pw *PieceWriter) WritePadded(ctx context.Context, w io.WriterAt, offset, size abi.PaddedPieceSize, data io.Reader) (piece.Commitment, error) {
	if err := piece.ValidatePadded(size); err != nil {
		return piece.Commitment{}, err
	}
	return writePadded(ctx, &pw.bufs, w, Placement{Offset: offset, Size: size}, size.Unpadded(), data)
}

// writeChecked writes the deal's piece at its placement and checks the
// bytes: when the market checked them against the piece CID already and
// gives their CRC-32C (d.DataCRC32C), against that checksum while they are
// padded straight into the direct writer's buffers, hashing nothing;
// otherwise (no checksum, or a file or piece that cannot take direct
// writes) by computing their commitment as they are written.
func writeChecked(ctx context.Context, bufs *bufferPool, f io.WriterAt, pl Placement, size abi.UnpaddedPieceSize, data io.Reader, d Deal) error {
	direct, err := openDirectPiece(bufs, f, pl)
	if err != nil {
		return err
	}
	if d.DataCRC32C != nil && direct != nil {
		return writeCRC(ctx, direct, pl, size, data, *d.DataCRC32C)
	}
	comm, err := writeHashed(ctx, direct, f, pl, size, data)
	if err != nil {
		return err
	}
	if got := comm.CID(); !got.Equals(d.PieceCID()) {
		return fmt.Errorf("data has piece CID %s, the deal says %s: %w", got, d.PieceCID(), ErrCommPMismatch)
	}
	return nil
}

// writeCRC pads the payload into direct's buffers, zero-fills the piece
// and closes direct, and checks the payload's CRC-32C against want.
func writeCRC(ctx context.Context, direct *directWriter, pl Placement, size abi.UnpaddedPieceSize, data io.Reader, want uint32) error {
	sum := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	pad := piece.NewPadder(direct)
	src := iocount.ContextReader{Ctx: ctx, R: io.TeeReader(io.LimitReader(data, int64(size)+1), sum)}
	n, err := io.CopyBuffer(pad, src, make([]byte, 1<<20))
	if err == nil && n > int64(size) {
		err = fmt.Errorf("piece data is longer than the %d-byte unpadded piece size", size)
	}
	if cerr := pad.Close(pl.Size); err == nil {
		err = cerr
	}
	if cerr := direct.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing piece data: %w", err)
	}
	if got := sum.Sum32(); got != want {
		return fmt.Errorf("data has CRC-32C %08x, not the %08x of the bytes checked against the piece CID: %w", got, want, ErrCommPMismatch)
	}
	return nil
}

// openDirectPiece clears the piece's range of a sector file and opens it
// for direct writes; it returns nil when f is not a sector file or the
// piece is not aligned for direct I/O, and when the file cannot be opened
// that way (the buffered path reports real errors itself).
func openDirectPiece(bufs *bufferPool, f io.WriterAt, pl Placement) (*directWriter, error) {
	sf, ok := f.(sectorFile)
	if !ok {
		return nil, nil
	}
	if err := zeroRange(sf, int64(pl.Offset), int64(pl.Size)); err != nil {
		return nil, fmt.Errorf("clearing the piece range: %w", err)
	}
	named, ok := f.(interface{ Name() string })
	if !ok || int64(pl.Size)%directAlign != 0 {
		return nil, nil
	}
	dw, err := newDirectWriter(bufs, named.Name(), int64(pl.Offset), int64(pl.Size))
	if err != nil {
		return nil, nil
	}
	return dw, nil
}

// writePadded streams the payload through a commitment calculator whose
// sink is the sector file at the piece's offset: one pass pads, writes and
// hashes. It returns the commitment of the payload zero-filled to the piece.
// With O_DIRECT the calculator pads straight into the direct writer's
// aligned buffers (no copy), which come from bufs; otherwise it hands its
// sink 1 MiB batches.
//
// Batches that are all zeros (the fill after a short payload, zero runs in
// the payload) are skipped when w is a sector file: its piece range is made
// a hole first, so they read as zeros and the file stays sparse.
func writePadded(ctx context.Context, bufs *bufferPool, f io.WriterAt, pl Placement, size abi.UnpaddedPieceSize, data io.Reader) (piece.Commitment, error) {
	// Large pieces of a real file go around the page cache.
	direct, err := openDirectPiece(bufs, f, pl)
	if err != nil {
		return piece.Commitment{}, err
	}
	return writeHashed(ctx, direct, f, pl, size, data)
}

// writeHashed is writePadded once the piece's range is cleared: into
// direct when it is not nil (and closing it), otherwise into f.
func writeHashed(ctx context.Context, direct *directWriter, f io.WriterAt, pl Placement, size abi.UnpaddedPieceSize, data io.Reader) (piece.Commitment, error) {
	hole := &holeWriter{w: f, off: int64(pl.Offset)}
	if _, ok := f.(sectorFile); ok && direct == nil {
		hole.zeros = make([]byte, 1<<20)
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
	n, err := io.CopyBuffer(calc, iocount.ContextReader{Ctx: ctx, R: io.LimitReader(data, int64(size)+1)}, buf)
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

// headHeight returns the chain head's height.
func headHeight(ctx context.Context, node Chain) (abi.ChainEpoch, error) {
	ts, err := node.ChainHead(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading chain head: %w", err)
	}
	return ts.Height(), nil
}
