package market

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/internal/iocount"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/transfer"
)

// Checkpoint is the last step of the pipeline a deal finished. Checkpoints
// are ordered: a deal only ever moves to the next one. The status protocol,
// the database, the operator API and the metrics all use the names of
// SPEC.md §1, which the table of steps (pipeline) holds.
type Checkpoint uint8

// The checkpoints, in pipeline order.
const (
	Accepted Checkpoint = iota + 1
	Transferred
	Published
	PublishConfirmed
	AddedPiece
	IndexedAndAnnounced
	Complete
)

// waitOn is the set of things the step from a checkpoint may wait for
// besides its own work.
type waitOn uint8

const (
	waitImport    waitOn = 1 << iota // an operator's import-data (offline deals)
	waitPublisher                    // the publisher: a batch, then its receipt
	waitSealing                      // the sealing subsystem
	waitChain                        // chain state (the deal's activation)
)

// outside reports whether the step waits for another goroutine to move
// the deal on (an import, the publisher) rather than polling itself.
func (w waitOn) outside() bool { return w&(waitImport|waitPublisher) != 0 }

// stage is one entry of the pipeline: a checkpoint, the step that advances
// a deal from it, and what that step may wait on.
type stage struct {
	checkpoint Checkpoint
	name       string // the checkpoint's name
	step       string // what the step from it does, for logs and errors
	waits      waitOn
	// advance does the step from checkpoint for the deal row d: idempotent
	// work, then the next checkpoint recorded. It returns errWait when the
	// deal waits for something outside its goroutine (waits says what).
	// nil at the last checkpoint.
	advance func(p *Provider, ctx context.Context, d *dealRow, rd *runningDeal) error
}

// stepAddPiece is the name of the step that adds a deal's piece to a
// sector.
const stepAddPiece = "add piece"

// pipeline is the table of steps of a storage market deal (KindMarket),
// in order, indexed by checkpoint-1: it passes every checkpoint, so it is
// also the table of the checkpoints' names. Every use of a checkpoint's
// name, step or waits reads it or directPipeline. (Functions rather than
// variables: the steps they name print checkpoints, whose names they
// hold, and a variable may not refer to itself through them.)
func pipeline() [int(Complete)]stage {
	return [...]stage{
		{Accepted, "Accepted", "transfer", waitImport, (*Provider).transfer},
		{Transferred, "Transferred", "publish", waitPublisher, (*Provider).queueForPublish},
		{Published, "Published", "publish confirmation", waitPublisher, (*Provider).awaitPublisher},
		{PublishConfirmed, "PublishConfirmed", stepAddPiece, waitSealing, (*Provider).addPiece},
		{AddedPiece, "AddedPiece", "index and announce", 0, (*Provider).index},
		{IndexedAndAnnounced, "IndexedAndAnnounced", "sealing", waitSealing | waitChain, (*Provider).awaitActive},
		{Complete, "Complete", "", 0, nil},
	}
}

// directPipeline is the table of steps of a direct deal (KindDirect): no
// publish, so from Transferred straight to the piece's sector; Complete
// once the sector is proven and the piece's claim is on chain.
func directPipeline() []stage {
	all := pipeline()
	return []stage{
		all[Accepted-1],
		{Transferred, "Transferred", stepAddPiece, waitSealing, (*Provider).addPiece},
		all[AddedPiece-1],
		{IndexedAndAnnounced, "IndexedAndAnnounced", "sealing and claim", waitSealing | waitChain, (*Provider).awaitActive},
		all[Complete-1],
	}
}

// DealKind says how a deal gets to the chain.
type DealKind string

// The kinds of deal.
const (
	// KindMarket is a Boost storage deal (the 1.2.x deal protocol),
	// published with PublishStorageDeals and activated when its sector is
	// proven.
	KindMarket DealKind = "market"
	// KindDirect is direct data onboarding (FIP-0076): no deal on chain;
	// the piece claims a verified allocation when its sector is proven
	// with ProveCommitSectors3 (ImportDirect).
	KindDirect DealKind = "direct"
)

// steps is the table of steps of deals of kind k.
func (k DealKind) steps() []stage {
	if k == KindDirect {
		return directPipeline()
	}
	all := pipeline()
	return all[:]
}

// stage returns the entry of the deal's pipeline at its checkpoint; ok is
// false for a checkpoint its kind does not pass.
func (d *dealRow) stage() (stage, bool) {
	for _, st := range d.Kind.steps() {
		if st.checkpoint == d.Checkpoint {
			return st, true
		}
	}
	return stage{}, false
}

// stage returns c's entry of the pipeline; ok is false for a value that is
// not a checkpoint.
func (c Checkpoint) stage() (st stage, ok bool) {
	if c < Accepted || c > Complete {
		return stage{}, false
	}
	return pipeline()[c-1], true
}

// String returns the checkpoint's name, as the status protocol sends it.
func (c Checkpoint) String() string {
	if st, ok := c.stage(); ok {
		return st.name
	}
	return fmt.Sprintf("Checkpoint(%d)", uint8(c))
}

// ParseCheckpoint returns the checkpoint with the given name.
func ParseCheckpoint(name string) (Checkpoint, error) {
	for _, st := range pipeline() {
		if st.name == name {
			return st.checkpoint, nil
		}
	}
	return 0, fmt.Errorf("unknown checkpoint %q", name)
}

// andLater returns the checkpoints from c on, in order.
func (c Checkpoint) andLater() []Checkpoint {
	var out []Checkpoint
	for _, st := range pipeline() {
		if st.checkpoint >= c {
			out = append(out, st.checkpoint)
		}
	}
	return out
}

// MarshalText writes the checkpoint's name (the zero Checkpoint is "").
func (c Checkpoint) MarshalText() ([]byte, error) {
	if c == 0 {
		return nil, nil
	}
	if _, ok := c.stage(); !ok {
		return nil, fmt.Errorf("invalid checkpoint %d", uint8(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText reads a checkpoint's name.
func (c *Checkpoint) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*c = 0
		return nil
	}
	v, err := ParseCheckpoint(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Value stores the checkpoint as its name.
func (c Checkpoint) Value() (driver.Value, error) {
	if _, ok := c.stage(); !ok {
		return nil, fmt.Errorf("invalid checkpoint %d", uint8(c))
	}
	return c.String(), nil
}

// Scan reads a checkpoint stored by Value.
func (c *Checkpoint) Scan(src any) error {
	var name string
	switch v := src.(type) {
	case string:
		name = v
	case []byte:
		name = string(v)
	default:
		return fmt.Errorf("checkpoint stored as %T", src)
	}
	cp, err := ParseCheckpoint(name)
	if err != nil {
		return err
	}
	*c = cp
	return nil
}

// RetryState says what happens to a deal after an error.
type RetryState string

// The retry states.
const (
	RetryNone   RetryState = ""       // running (or complete)
	RetryAuto   RetryState = "auto"   // retried automatically after a back-off
	RetryManual RetryState = "manual" // waits for an operator's Retry or Fail
	RetryFatal  RetryState = "fatal"  // failed for good; tags released
)

// String returns the state's name ("" while the deal runs).
func (r RetryState) String() string { return string(r) }

// fatalError marks a failure that no retry can fix.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

func fatalf(format string, args ...any) error { return fatalError{fmt.Errorf(format, args...)} }

// errWait means the deal waits for something outside its goroutine (an
// import, the publisher); the goroutine ends without error.
var errWait = errors.New("waiting")

// errElsewhere means another node of the cluster must do the step (the
// deal's piece is placed in one of its sectors).
var errElsewhere = errors.New("done by another node")

// errComplete means the deal has no step left.
var errComplete = errors.New("complete")

// advance does the step from the checkpoint of deal d, d being its row as
// just read: the pipeline's unit of work, which needs nothing else of the
// process that runs it but the deal's in-memory progress (rd). It returns
// errWait when the deal now waits for another goroutine and errComplete at
// the last checkpoint.
func (p *Provider) advance(ctx context.Context, d *dealRow, rd *runningDeal) error {
	st, ok := d.stage()
	if !ok {
		return fatalf("deal %s of kind %s has no checkpoint %s", d.UUID, d.Kind, d.Checkpoint)
	}
	if st.advance == nil {
		return errComplete
	}
	err := st.advance(p, ctx, d, rd)
	if errors.Is(err, errWait) && !st.waits.outside() {
		return fmt.Errorf("%s: waits for nothing it may wait on", st.step)
	}
	return err
}

// resume starts the goroutines of the deals the pipeline runs
// (store.unfinished: idle deals wait for what moves them on).
func (p *Provider) resume(ctx context.Context) error {
	ids, err := p.store.unfinished(ctx)
	if err != nil {
		return fmt.Errorf("market: %w", err)
	}
	for _, id := range ids {
		p.kick(id)
	}
	p.pub.wakeUp()
	return nil
}

// kick runs a deal's pipeline goroutine unless one runs already.
func (p *Provider) kick(id uuid.UUID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil || p.ctx.Err() != nil {
		return
	}
	if rd, ok := p.running[id]; ok {
		// The goroutine may be past its last look at the deal (returning
		// errWait, say); it runs once more rather than miss the change.
		rd.again = true
		return
	}
	ctx, cancel := context.WithCancel(p.ctx)
	rd := &runningDeal{cancel: cancel}
	p.running[id] = rd
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer cancel()
		for {
			// run gives the deal's lease up before the goroutine leaves
			// p.running, so a kick meanwhile runs this loop again rather
			// than start a second goroutine that would hold it.
			p.run(ctx, id, rd)
			p.mu.Lock()
			if rd.again && ctx.Err() == nil {
				rd.again = false
				p.mu.Unlock()
				continue
			}
			delete(p.running, id)
			p.mu.Unlock()
			return
		}
	}()
}

// run advances one deal until it completes, fails, or waits. It takes the
// deal's lease before the first step it does (none for a deal that only
// waits, as most do when ferryd starts) and gives it up when it returns.
func (p *Provider) run(ctx context.Context, id uuid.UUID, rd *runningDeal) {
	held := false
	defer func() {
		if held {
			p.letGoDeal(id)
		}
	}()
	for ctx.Err() == nil {
		d, err := p.store.deal(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				p.d.Logf("market: %v", err)
			}
			return
		}
		switch d.Retry {
		case RetryFatal, RetryManual:
			return
		case RetryAuto:
			if wait := time.Until(d.RetryAfter); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
		}
		if !p.does(d.Checkpoint) {
			return // a node that does this step takes the deal
		}
		if d.idle() {
			p.hook(id, "Waiting")
			return
		}
		if !held {
			if held = p.holdDeal(ctx, id); !held {
				return // another node works on it
			}
			continue // read it again, now this node holds it
		}
		err = p.advance(ctx, d, rd)
		if errors.Is(err, errComplete) {
			return
		}
		if errors.Is(err, errWait) {
			p.hook(id, "Waiting")
			return
		}
		if errors.Is(err, errElsewhere) {
			return // a node that can do the step takes the deal
		}
		if err != nil {
			if ctx.Err() != nil {
				return // shutting down or cancelled: the checkpoint stands
			}
			if herr := p.stepFailed(context.WithoutCancel(ctx), d, err); herr != nil {
				p.d.Logf("market: deal %s: %v (recording the failure: %v)", id, err, herr)
				return
			}
		}
	}
}

// stepFailed records an error: fatal errors fail the deal and release what
// it holds; a sealer that cannot be reached is waited for; others are
// retried with back-off, then left to an operator.
func (p *Provider) stepFailed(ctx context.Context, d *dealRow, cause error) error {
	var fe fatalError
	if errors.As(cause, &fe) {
		return p.failDeal(ctx, d.UUID, cause.Error())
	}
	if errors.Is(cause, ErrSealerUnavailable) {
		// Not the deal's failure: wait for the sealer to come back.
		line := fmt.Sprintf("%s waits for the sealer (next try in %s): %v", d.nextStep(), p.cfg.RetryBackoff, cause)
		if err := p.store.retryLater(ctx, d.UUID, RetryAuto, d.Retries, time.Now().Add(p.cfg.RetryBackoff), cause.Error(), line); err != nil {
			return err
		}
		p.d.Logf("market: deal %s: %s", d.UUID, line)
		return nil
	}
	retries := d.Retries + 1
	state, after := RetryAuto, time.Now().Add(p.cfg.RetryBackoff<<min(retries-1, 10))
	if retries > p.cfg.MaxAutoRetries {
		state = RetryManual
	}
	line := fmt.Sprintf("%s failed (attempt %d, next: %s): %v", d.nextStep(), retries, state, cause)
	if err := p.store.retryLater(ctx, d.UUID, state, retries, after, cause.Error(), line); err != nil {
		return err
	}
	p.d.Logf("market: deal %s: %s failed (attempt %d): %v", d.UUID, d.nextStep(), retries, cause)
	return nil
}

// failDeal fails a deal for good and releases its tags and staging file.
func (p *Provider) failDeal(ctx context.Context, id uuid.UUID, reason string) error {
	staging, node, owned, err := p.store.fail(ctx, id, reason)
	if err != nil {
		return err
	}
	p.removeData(&dealRow{UUID: id, StagingPath: staging, StagingNode: node, StagingOwned: owned})
	p.d.Logf("market: deal %s failed: %s", id, reason)
	return nil
}

// advanceTo records checkpoint cp of a deal and calls the hook.
func (p *Provider) advanceTo(ctx context.Context, id uuid.UUID, cp Checkpoint) error {
	if err := p.store.advance(ctx, id, cp); err != nil {
		return err
	}
	p.hook(id, cp.String())
	return nil
}

// hook calls Deps.OnCheckpoint, if set.
func (p *Provider) hook(id uuid.UUID, point string) {
	if p.d.OnCheckpoint != nil {
		p.d.OnCheckpoint(id, point)
	}
}

// idle reports whether the deal waits for something else to move it on —
// an offline deal for its data (a direct deal given a file reads it
// itself), a queued deal for a publish batch — with nothing to do
// meanwhile. store.idleSQL is the same test in SQL.
func (d *dealRow) idle() bool {
	return d.Checkpoint == Accepted && d.IsOffline && d.TransferType != transferFile ||
		d.Checkpoint == Transferred && d.PublishQueued > 0
}

// transferRequest rebuilds the download request of a deal. Its client,
// for the downloader's fair share of slots, is the client's wallet.
func (d *dealRow) transferRequest() (transfer.Request, error) {
	req, err := transfer.ParseHTTPParams(d.TransferParams)
	if err != nil {
		return transfer.Request{}, err
	}
	req.Size, req.Client = d.TransferSize, d.ClientKey.String()
	return req, nil
}

func sectorNum(n int64) abi.SectorNumber      { return abi.SectorNumber(max(n, 0)) }
func paddedSize(n uint64) abi.PaddedPieceSize { return abi.PaddedPieceSize(n) }

// indexRequest is what the indexer is told about a deal in a sector.
func (d *dealRow) indexRequest() IndexRequest {
	return IndexRequest{
		DealUUID: d.UUID, PieceCID: d.PieceCID, PieceSize: d.PieceSize, PayloadSize: d.TransferSize, ChainDealID: d.ChainDealID,
		DataRoot: d.DataRoot, Sector: sectorNum(d.Sector), Offset: paddedSize(d.SectorOffset),
		SkipIPNIAnnounce: d.SkipIPNI, KeepUnsealed: d.KeepUnsealed,
	}
}

// nextStep names the step from the deal's checkpoint, for logs and errors.
func (d *dealRow) nextStep() string {
	if st, ok := d.stage(); ok && st.step != "" {
		return st.step
	}
	return d.Checkpoint.String()
}

// addsPiece reports whether the deal's next step adds its piece to a
// sector.
func (d *dealRow) addsPiece() bool {
	st, ok := d.stage()
	return ok && st.step == stepAddPiece
}

// transfer downloads the data while computing its piece commitment, and
// checks it against the deal's piece; a direct deal's file is read where
// it is and checked the same way.
func (p *Provider) transfer(ctx context.Context, d *dealRow, rd *runningDeal) error {
	switch {
	case d.TransferType == transferFile:
		return p.importData(ctx, d, d.StagingPath)
	case d.TransferType == transferStaged:
		return p.takeStaged(ctx, d)
	case d.IsOffline:
		return errWait // ImportData continues it
	}
	req, err := d.transferRequest()
	if err != nil {
		return fatalf("transfer parameters: %v", err)
	}
	if err := os.MkdirAll(p.cfg.StagingDir, 0o755); err != nil {
		return fmt.Errorf("creating staging directory: %w", err)
	}
	check := newDataCheck()
	var lastSave time.Time
	progress := func(n uint64) {
		rd.received.Store(n)
		if time.Since(lastSave) > 2*time.Second {
			lastSave = time.Now()
			_ = p.store.saveProgress(ctx, d.UUID, n) // only for display: the file is what counts
		}
	}
	// The data goes to this node's staging directory, whichever node
	// admitted the deal.
	path := filepath.Join(p.cfg.StagingDir, filepath.Base(d.StagingPath))
	if err := p.d.Downloader.Download(ctx, req, path, check, progress); err != nil {
		err = fmt.Errorf("downloading %s: %w", transfer.Redact(req.URL), err)
		permanent := transfer.IsPermanent(err)
		// A URL that failed for good, or for the last time, gives way to
		// the next of the deal's URLs, if it has more.
		if next, ok := req.Next(); ok && ctx.Err() == nil && (permanent || d.Retries+1 > p.cfg.MaxAutoRetries) {
			return p.nextSource(ctx, d, next, path, err)
		}
		if permanent {
			// A 404, a body longer than declared, a private address: the
			// deal fails now, and its tags and staging file go.
			return fatalError{err}
		}
		return err // retried with back-off; transfer bounds each attempt
	}
	return p.finishData(ctx, d, check, path, true)
}

// nextSource moves a download that failed with cause on to next, the
// deal's following URL: the bytes of the last one go (the download starts
// afresh), then the deal's params name next first, with its retries
// counted from none. The transfer step then runs again.
func (p *Provider) nextSource(ctx context.Context, d *dealRow, next transfer.Request, path string, cause error) error {
	params, err := transfer.EncodeHTTPParams(next)
	if err != nil {
		return fatalf("the next URL: %v", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the partial download: %w", err)
	}
	line := fmt.Sprintf("transfer: %v; going on to %s (%d more after it)", cause, transfer.Redact(next.URL), len(next.Fallbacks))
	if err := p.store.switchSource(ctx, d.UUID, params, line); err != nil {
		return err
	}
	p.d.Logf("market: deal %s: %s", d.UUID, line)
	return nil
}

// takeStaged records Transferred for a direct deal whose data a front end
// received into staging and checked: the file must still be there, of the
// size recorded. Its commitment is not computed again here; sealing
// computes it while writing the piece and refuses a mismatch.
func (p *Provider) takeStaged(ctx context.Context, d *dealRow) error {
	// On another node of the cluster, the file is that node's to keep:
	// AddPiece reads it from there.
	if p.localStaging(d) {
		st, err := os.Stat(d.StagingPath)
		if errors.Is(err, os.ErrNotExist) {
			return fatalf("the staged data is gone: %v", err)
		}
		if err != nil {
			return fmt.Errorf("reading the staged data: %w", err)
		}
		if uint64(st.Size()) != d.TransferSize {
			return fatalf("the staged data %s is %d bytes, not the %d received", d.StagingPath, st.Size(), d.TransferSize)
		}
	}
	if err := p.store.setTransferred(ctx, d.UUID, d.TransferSize, d.StagingPath, d.StagingNode, true, nil); err != nil {
		return err
	}
	p.hook(d.UUID, Transferred.String())
	return nil
}

// dataCheck computes, over a deal's data as it arrives, its piece
// commitment, checked against the deal's piece CID, and its CRC-32C, which
// sealing is given with the deal: it checks the bytes it writes against
// that checksum instead of computing their commitment a second time, for a
// fortieth of the CPU.
type dataCheck struct {
	calc *piece.Calc
	crc  hash.Hash32
}

func newDataCheck() *dataCheck {
	return &dataCheck{calc: piece.NewCalc(), crc: crc32.New(crc32.MakeTable(crc32.Castagnoli))}
}

func (c *dataCheck) Write(b []byte) (int, error) {
	n, err := c.calc.Write(b)
	c.crc.Write(b[:n])
	return n, err
}

// finishData checks the commitment of the deal's data and records
// Transferred.
func (p *Provider) finishData(ctx context.Context, d *dealRow, check *dataCheck, path string, owned bool) error {
	received := check.calc.Written()
	comm, err := check.calc.SumAs(d.PieceSize)
	if err != nil {
		return fatalf("computing the piece commitment of %d bytes for a %d-byte piece: %v", received, d.PieceSize, err)
	}
	if !comm.CID().Equals(d.PieceCID) {
		return fatalf("the data's piece CID %s does not match the deal's %s", comm.CID(), d.PieceCID)
	}
	crc := check.crc.Sum32()
	if err := p.store.setTransferred(ctx, d.UUID, received, path, p.cfg.NodeID, owned, &crc); err != nil {
		return err
	}
	p.hook(d.UUID, Transferred.String())
	return nil
}

// sealingDeal is what sealing is told of the deal: a market deal's
// published proposal, or a direct deal's piece manifest and schedule; and
// the CRC-32C of its data, when the market checked the data.
func (d *dealRow) sealingDeal() sealing.Deal {
	if d.Kind == KindDirect {
		return sealing.Deal{
			UUID: d.UUID, PieceActivationManifest: d.Manifest, KeepUnsealed: d.KeepUnsealed,
			DealSchedule: sealing.DealSchedule{StartEpoch: d.StartEpoch, EndEpoch: d.EndEpoch},
			DataCRC32C:   d.DataCRC32C,
		}
	}
	return sealing.Deal{
		UUID: d.UUID, DealID: d.ChainDealID, PublishCid: d.PublishCid, Proposal: &d.Proposal.Proposal, KeepUnsealed: d.KeepUnsealed,
		DataCRC32C: d.DataCRC32C,
	}
}

// localStaging reports whether the deal's staging file is on this node.
func (p *Provider) localStaging(d *dealRow) bool {
	return d.StagingNode == "" || d.StagingNode == p.cfg.NodeID
}

// openStaging opens the deal's staging file: here, or on the node of the
// cluster that holds it.
func (p *Provider) openStaging(ctx context.Context, d *dealRow) (io.ReadCloser, error) {
	if p.localStaging(d) || p.d.Files == nil {
		f, err := os.Open(d.StagingPath)
		if err != nil {
			return nil, fmt.Errorf("opening staged data: %w", err)
		}
		return f, nil
	}
	rc, err := p.d.Files.OpenStaging(ctx, d.StagingNode, d.StagingPath)
	if err != nil {
		return nil, fmt.Errorf("opening staged data on node %s: %w", d.StagingNode, err)
	}
	return rc, nil
}

// addPiece hands the piece to sealing, then frees the staging file.
func (p *Provider) addPiece(ctx context.Context, d *dealRow, rd *runningDeal) error {
	head, err := p.d.Node.ChainHead(ctx)
	if err != nil {
		return fmt.Errorf("reading chain head: %w", err)
	}
	if head.Height() >= d.StartEpoch {
		return fatalf("the deal's start epoch %d passed (current epoch %d) before its piece was added to a sector", d.StartEpoch, head.Height())
	}
	f, err := p.openStaging(ctx, d)
	if errors.Is(err, ErrNodeDown) {
		return errElsewhere // once it is back, its file is read, or it adds the piece
	}
	if err != nil {
		return err
	}
	defer f.Close()
	rd.added.Store(0)
	data := iocount.Reader{R: f, N: &rd.added}
	pl, err := p.d.Sealer.AddPieceToAny(ctx, d.PieceSize.Unpadded(), data, d.sealingDeal())
	var elsewhere *sealing.ElsewhereError
	if errors.As(err, &elsewhere) {
		return errElsewhere // the node whose sector it is adds it
	}
	if errors.Is(err, sealing.ErrCannotSeal) || errors.Is(err, sealing.ErrCommPMismatch) {
		// No retry places it: no sector fits, or the data is not the
		// piece (a staged file that changed on disk, say).
		return fatalf("adding piece to a sector: %v", err)
	}
	if err != nil {
		return fmt.Errorf("adding piece to a sector: %w", err)
	}
	if err := p.store.setAddedPiece(ctx, d.UUID, pl.Sector, pl.Offset); err != nil {
		return err
	}
	p.hook(d.UUID, AddedPiece.String())
	return nil
}

// removeData removes the deal's data file once its piece is in a sector
// and indexed, when the market created it (a download, an upload) or was
// asked to (import-direct --delete-after-import).
func (p *Provider) removeData(d *dealRow) {
	if (!d.StagingOwned && !d.DeleteAfterAdd) || d.StagingPath == "" || !p.localStaging(d) {
		return // on another node, that node removes it (sweepStaging)
	}
	if err := os.Remove(d.StagingPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		p.d.Logf("market: removing the data file of deal %s: %v", d.UUID, err)
	}
}

// index indexes and announces the piece, then removes the deal's data
// file. The index is read from that file while it is here: the same bytes
// as the piece in its sector (AddPiece checked them against the piece CID
// a moment ago), still in the page cache, where reading the piece back
// from sealing means the disk, or lotus-miner's /remote. Without the file
// (on another node of a cluster, or removed before a crash), the indexer
// reads the sector.
//
// A failed step frees the file and its staging space all the same (unless
// ferryd is stopping): what failed may stay down for long (an IPNI indexer,
// say), and a deal must not hold staging space meanwhile; the retry reads
// the piece from its sector.
func (p *Provider) index(ctx context.Context, d *dealRow, _ *runningDeal) error {
	if p.d.Indexer != nil {
		req := d.indexRequest()
		var staged *stagedPiece
		if d.StagingPath != "" && p.localStaging(d) {
			if sp, err := openStagedPiece(d.StagingPath, int64(d.PieceSize.Unpadded())); err == nil {
				staged, req.Data = sp, sp
			}
		}
		err := p.d.Indexer.IndexAndAnnounce(ctx, req)
		if staged != nil {
			staged.Close()
		}
		if err != nil {
			if ctx.Err() == nil {
				p.removeData(d)
				if rerr := p.store.releaseStagingTag(ctx, d.UUID); rerr != nil {
					return errors.Join(fmt.Errorf("indexing and announcing: %w", err), rerr)
				}
			}
			return fmt.Errorf("indexing and announcing: %w", err)
		}
	}
	p.removeData(d)
	if err := p.store.setIndexed(ctx, d.UUID); err != nil {
		return err
	}
	p.hook(d.UUID, IndexedAndAnnounced.String())
	return nil
}

// awaitActive follows sealing until the sector is proven and the deal is
// active on chain: a market deal's chain deal activated, a direct deal's
// allocation claimed in the deal's sector.
func (p *Provider) awaitActive(ctx context.Context, d *dealRow, _ *runningDeal) error {
	t := time.NewTicker(p.pollEvery)
	defer t.Stop()
	for {
		st, err := p.d.Sealer.SectorStatus(ctx, d.UUID)
		if err != nil {
			return fmt.Errorf("reading sector state: %w", err)
		}
		if state := string(st.State); state != d.SealingState {
			if err := p.store.setSealingState(ctx, d.UUID, state); err != nil {
				return err
			}
			d.SealingState = state
		}
		if st.Proven {
			active, err := p.activeOnChain(ctx, d, st.Sector)
			if err != nil {
				return err
			}
			if active {
				return p.advanceTo(ctx, d.UUID, Complete)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// activeOnChain reports whether the chain shows the deal active: a market
// deal's chain deal with a sector start epoch, or a direct deal's claim,
// in sector n.
func (p *Provider) activeOnChain(ctx context.Context, d *dealRow, n abi.SectorNumber) (bool, error) {
	if d.Kind != KindDirect {
		md, err := p.d.Node.StateMarketStorageDeal(ctx, d.ChainDealID, chain.TipSetKey{})
		if err != nil {
			return false, fmt.Errorf("reading chain deal %d: %w", d.ChainDealID, err)
		}
		return md.State.SectorStartEpoch > 0, nil
	}
	cl, err := p.d.Node.StateGetClaim(ctx, p.cfg.Miner, chain.ClaimID(d.AllocationID), chain.TipSetKey{})
	if err != nil {
		return false, fmt.Errorf("reading claim %d: %w", d.AllocationID, err)
	}
	if cl == nil {
		return false, nil
	}
	if cl.Sector != n || !cl.Data.Equals(d.PieceCID) {
		return false, fatalf("claim %d on chain is piece %s in sector %d, not this deal's %s in sector %d", d.AllocationID, cl.Data, cl.Sector, d.PieceCID, n)
	}
	return true, nil
}

// importData reads a deal's data file (an offline deal's import, a direct
// deal's file), checks its commitment and records Transferred. The file is
// the deal's to remove only when it is the staging file the market owns
// (an upload).
func (p *Provider) importData(ctx context.Context, d *dealRow, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if max := uint64(d.PieceSize.Unpadded()); uint64(st.Size()) > max {
		return fatalf("%s is %d bytes, more than the deal's piece holds (%d)", path, st.Size(), max)
	}
	// The bytes hashed so far are the deal's NBytesReceived while the
	// import runs, so the status APIs (and ferryd import-data) show it.
	var hashed atomic.Int64
	p.mu.Lock()
	if p.imports[d.UUID] != nil {
		p.mu.Unlock()
		return fmt.Errorf("an import of deal %s is already running", d.UUID)
	}
	p.imports[d.UUID] = &hashed
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.imports, d.UUID)
		p.mu.Unlock()
	}()
	check := newDataCheck()
	if _, err := io.Copy(check, iocount.Reader{R: iocount.ContextReader{Ctx: ctx, R: f}, N: &hashed}); err != nil {
		check.calc.Sum() // releases the calculator's goroutines
		return fmt.Errorf("reading %s: %w", path, err)
	}
	comm, err := check.calc.SumAs(d.PieceSize)
	if err != nil {
		return fatalf("computing the piece commitment of %s: %v", path, err)
	}
	if !comm.CID().Equals(d.PieceCID) {
		return fatalf("the piece CID of %s is %s, the deal's is %s", path, comm.CID(), d.PieceCID)
	}
	owned := d.StagingOwned && path == d.StagingPath
	crc := check.crc.Sum32()
	if err := p.store.setTransferred(ctx, d.UUID, uint64(hashed.Load()), path, p.cfg.NodeID, owned, &crc); err != nil {
		return err
	}
	p.hook(d.UUID, Transferred.String())
	return nil
}
