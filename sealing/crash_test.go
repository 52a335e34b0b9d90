package sealing

import (
	"github.com/ferry-fil/ferry/db/dbtest"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
)

// The crash test re-executes the test binary; in the child this variable
// names the directory to work in.
const crashEnv = "FERRY_SEALING_CRASH_DIR"

// killingReader SIGKILLs its own process once after bytes were read: it
// first waits until ready (when set) says the scene is set, and after the
// bytes until written (when set) says some of them are in the file (writes
// are asynchronous with O_DIRECT), so the crash is mid-write.
type killingReader struct {
	r       io.Reader
	after   int64
	n       int64
	ready   func() bool
	written func() bool
}

func (k *killingReader) Read(p []byte) (int, error) {
	for deadline := time.Now().Add(10 * time.Second); k.ready != nil && !k.ready() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if k.n >= k.after {
		for deadline := time.Now().Add(10 * time.Second); k.written != nil && !k.written() && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns: the signal is on its way
	}
	n, err := k.r.Read(p[:min(int64(len(p)), k.after-k.n)])
	k.n += int64(n)
	return n, err
}

// crashPiece is a deal the child adds.
type crashPiece struct {
	Seed    int64
	Payload int
	Size    abi.PaddedPieceSize
	Deal    Deal
}

func (c crashPiece) piece(t testing.TB) testPiece { return makePiece(t, c.Seed, c.Payload, c.Size) }

// crashPlan is what the child does: it writes Victim and is killed half way
// through; Behind, when set, is placed behind it in the same sector first,
// so two calls are in flight there.
type crashPlan struct {
	Victim crashPiece
	KillAt int64 // payload bytes read before the kill
	Behind *crashPiece
}

func newCrashPiece(t testing.TB, seed int64, payload int, size abi.PaddedPieceSize) crashPiece {
	return crashPiece{Seed: seed, Payload: payload, Size: size, Deal: dealFor(makePiece(t, seed, payload, size), 10000)}
}

func crashConfig() Config { return Config{SectorSize: 8 << 20} }

// TestCrashChild is the child side of the kill tests; it does nothing in a
// normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("only run as the child of TestAddPieceKilled")
	}
	b, err := os.ReadFile(filepath.Join(dir, "plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	var plan crashPlan
	if err := json.Unmarshal(b, &plan); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := openTestSealing(t, dir, crashConfig(), &fakeNode{height: 10})
	victim := plan.Victim.piece(t)
	// Some of the victim's bytes are in its range of the file.
	written := func() bool {
		pl, _, _, found, err := s.st.dealPlacement(ctx, plan.Victim.Deal)
		if err != nil || !found {
			return false
		}
		f, err := os.Open(s.unsealedPath(pl.Sector))
		if err != nil {
			return false
		}
		defer f.Close()
		b := make([]byte, 1<<20)
		f.ReadAt(b, int64(pl.Offset))
		return bytes.Count(b, []byte{0}) != len(b)
	}
	var ready func() bool
	if plan.Behind != nil {
		ready = func() bool {
			_, _, _, found, _ := s.st.dealPlacement(ctx, plan.Behind.Deal)
			return found
		}
	}
	r := &killingReader{r: bytes.NewReader(victim.data), after: plan.KillAt, ready: ready, written: written}
	done := addAsync(ctx, s, victim, r, plan.Victim.Deal)
	if plan.Behind != nil {
		waitReserved(t, s, plan.Victim.Deal)
		behind := plan.Behind.piece(t)
		addAsync(ctx, s, behind, bytes.NewReader(behind.data), plan.Behind.Deal)
	}
	<-done
	t.Fatal("AddPieceToAny returned although the process was killed mid-write")
}

// crash writes plan and runs the child, which must die by SIGKILL.
func crash(t *testing.T, dir string, plan crashPlan) {
	t.Helper()
	b, _ := json.Marshal(plan)
	if err := os.WriteFile(filepath.Join(dir, "plan.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	dbtest.Source(t, dir) // the database outlives the child, and goes with t
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}
}

// addFirst writes a small first piece into sector 1 and closes the
// database, as a process that ran before the crash.
func addFirst(t *testing.T, dir string) testPiece {
	t.Helper()
	first := makePiece(t, 1, 1000, 1024)
	s := openTestSealing(t, dir, crashConfig(), &fakeNode{height: 10})
	if _, err := s.AddPieceToAny(context.Background(), first.size, bytes.NewReader(first.data), dealFor(first, 10000)); err != nil {
		t.Fatal(err)
	}
	s.st.db.Close()
	return first
}

// reservedPiece returns the sector piece of deal d, which must be recorded
// and not written.
func reservedPiece(t *testing.T, si SectorInfo, d Deal) SectorPiece {
	t.Helper()
	for _, p := range si.Pieces {
		if p.DealUUID != nil && *p.DealUUID == d.UUID {
			if p.Written {
				t.Fatalf("after the crash deal %s is recorded as written", d.UUID)
			}
			return p
		}
	}
	t.Fatalf("after the crash deal %s has no placement recorded: %+v", d.UUID, si.Pieces)
	return SectorPiece{}
}

// checkCrashedFile checks that the trailer lists only the first piece and
// that some bytes of the victim reached the file before the kill.
func checkCrashedFile(t *testing.T, s *Sealing, victimAt abi.PaddedPieceSize) {
	t.Helper()
	f, err := os.Open(s.unsealedPath(1))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	alloc, err := readAllocation(f, s.cfg.SectorSize)
	if err != nil || !sameCoverage(alloc, []span{{0, 1024}}) {
		t.Fatalf("trailer after crash: %v %v", alloc, err)
	}
	part := make([]byte, 1<<20)
	if _, err := f.ReadAt(part, int64(victimAt)); err != nil || bytes.Count(part, []byte{0}) == len(part) {
		t.Fatalf("the child was killed before it wrote anything (%v); the test proves nothing", err)
	}
}

func TestAddPieceKilled(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("child")
	}
	ctx := context.Background()
	dir := t.TempDir()
	first := addFirst(t, dir)
	plan := crashPlan{Victim: newCrashPiece(t, 2, 3<<20, 4<<20), KillAt: 3 << 19}
	victim := plan.Victim.piece(t)
	crash(t, dir, plan)

	s := openTestSealing(t, dir, crashConfig(), &fakeNode{height: 10})
	si, err := s.Sector(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	intent := reservedPiece(t, si, plan.Victim.Deal)
	if _, err := s.ReadPiece(ctx, victim.cid); !errors.Is(err, ErrNoUnsealedCopy) {
		t.Fatalf("half-written piece readable: %v", err)
	}
	checkCrashedFile(t, s, intent.Offset)
	// The market retries the deal: same placement, written once.
	pl, err := s.AddPieceToAny(ctx, victim.size, bytes.NewReader(victim.data), plan.Victim.Deal)
	if err != nil {
		t.Fatal(err)
	}
	if pl.Sector != 1 || pl.Offset != intent.Offset || pl.Size != 4<<20 {
		t.Fatalf("retry placed at %+v, intent was at %d", pl, intent.Offset)
	}
	si, _ = s.Sector(ctx, 1)
	if si.Deals != 2 {
		t.Fatalf("sector 1 has %d deals after the retry, want 2", si.Deals)
	}
	checkPayload(t, readBack(t, s, first.cid), first)
	checkPayload(t, readBack(t, s, victim.cid), victim)
	checkSector(t, s, 1)
}

// Two calls in flight in one sector when the process is killed: the first
// mid-write, the second placed behind it waiting for its turn. Whichever
// deal the market retries first, each is written once, and the sector is
// laid out as the chain will compute its CommD.
func TestAddPieceKilledTwoInFlight(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("child")
	}
	for _, order := range []string{"retried in order", "later deal retried first", "neither back before packing"} {
		t.Run(order, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			first := addFirst(t, dir)
			b := newCrashPiece(t, 3, 1_500_000, 2<<20)
			// Killed past the first MiB, which is then in the file.
			plan := crashPlan{Victim: newCrashPiece(t, 2, 1_800_000, 2<<20), KillAt: 1_700_000, Behind: &b}
			victim, behind := plan.Victim.piece(t), plan.Behind.piece(t)
			crash(t, dir, plan)

			cfg := crashConfig()
			if order == "neither back before packing" {
				cfg.WaitDealsDelay = time.Nanosecond
			}
			s := openTestSealing(t, dir, cfg, &fakeNode{height: 10})
			si, err := s.Sector(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			vi, bi := reservedPiece(t, si, plan.Victim.Deal), reservedPiece(t, si, plan.Behind.Deal)
			if vi.Offset != 2<<20 || bi.Offset != 4<<20 {
				t.Fatalf("reservations at %d and %d, want 2 MiB and 4 MiB", vi.Offset, bi.Offset)
			}
			checkCrashedFile(t, s, vi.Offset)

			retry := func(p testPiece, d Deal) Placement {
				t.Helper()
				pl, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), d)
				if err != nil {
					t.Fatal(err)
				}
				return pl
			}
			switch order {
			case "retried in order":
				if pl := retry(victim, plan.Victim.Deal); pl != (Placement{1, 2 << 20, 2 << 20}) {
					t.Fatalf("victim written at %+v, want its reservation", pl)
				}
				if pl := retry(behind, plan.Behind.Deal); pl != (Placement{1, 4 << 20, 2 << 20}) {
					t.Fatalf("later deal written at %+v, want its reservation", pl)
				}
			case "later deal retried first":
				// The victim's call is not back: its reservation is
				// cleared and the later deal moves up into its place.
				if pl := retry(behind, plan.Behind.Deal); pl != (Placement{1, 2 << 20, 2 << 20}) {
					t.Fatalf("later deal written at %+v, want moved up to 2 MiB", pl)
				}
				if pl := retry(victim, plan.Victim.Deal); pl != (Placement{1, 4 << 20, 2 << 20}) {
					t.Fatalf("victim written at %+v, want placed anew at 4 MiB", pl)
				}
			default:
				// The sector's time is up with neither call back: both
				// reservations are cleared, then the sector packs with
				// what is written.
				packUntil(t, s, 1, StatePreCommit1)
				si, _ = s.Sector(ctx, 1)
				if si.Deals != 1 || si.PackReason != "wait-timeout" {
					t.Fatalf("packed sector: %d deals, reason %q", si.Deals, si.PackReason)
				}
				checkPayload(t, readBack(t, s, first.cid), first)
				checkSector(t, s, 1)
				return
			}
			si, _ = s.Sector(ctx, 1)
			if si.Deals != 3 {
				t.Fatalf("sector 1 has %d deals after the retries, want 3", si.Deals)
			}
			for _, p := range []testPiece{first, victim, behind} {
				checkPayload(t, readBack(t, s, p.cid), p)
			}
			checkSector(t, s, 1)
		})
	}
}

// packUntil runs the open-sector and packing handlers on sector n until it
// reaches state.
func packUntil(t *testing.T, s *Sealing, n abi.SectorNumber, state SectorState) {
	t.Helper()
	ctx := context.Background()
	for range 5 {
		rows, err := s.st.activeSectors(ctx, s.cfg.SectorSize)
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			r := &rows[i]
			if r.Number != n {
				continue
			}
			if r.State == state {
				return
			}
			st, _ := lookupState(r.State)
			if !st.open && r.State != StatePacking {
				t.Fatalf("sector %d went to %s on its way to %s", n, r.State, state)
			}
			if err := st.handle(s, ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	si, _ := s.Sector(ctx, n)
	t.Fatalf("sector %d is in %s, not %s", n, si.State, state)
}
