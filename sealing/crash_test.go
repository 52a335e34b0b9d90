package sealing

import (
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

// killingReader SIGKILLs its own process once after bytes were read and,
// when written is set, once some of them are in the file (writes are
// asynchronous with O_DIRECT), so the crash is mid-write.
type killingReader struct {
	r       io.Reader
	after   int64
	n       int64
	written func() bool
}

func (k *killingReader) Read(p []byte) (int, error) {
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

type crashPlan struct {
	Seed    int64
	Payload int
	Size    abi.PaddedPieceSize
	Deal    Deal
}

func crashConfig() Config { return Config{SectorSize: 8 << 20} }

// TestCrashChild is the child side of TestAddPieceKilled; it does nothing
// in a normal run.
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
	s := openTestSealing(t, dir, crashConfig(), &fakeNode{height: 10})
	p := makePiece(t, plan.Seed, plan.Payload, plan.Size)
	// The victim piece goes to the second half of sector 1 (the first
	// half holds the small first piece).
	written := func() bool {
		f, err := os.Open(s.unsealedPath(1))
		if err != nil {
			return false
		}
		defer f.Close()
		b := make([]byte, 1<<20)
		f.ReadAt(b, int64(plan.Size))
		return bytes.Count(b, []byte{0}) != len(b)
	}
	r := &killingReader{r: bytes.NewReader(p.data), after: int64(plan.Payload / 2), written: written}
	s.AddPieceToAny(context.Background(), p.size, r, plan.Deal)
	t.Fatal("AddPieceToAny returned although the process was killed mid-write")
}

func TestAddPieceKilled(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("child")
	}
	ctx := context.Background()
	dir := t.TempDir()
	first := makePiece(t, 1, 1000, 1024)
	{
		s := openTestSealing(t, dir, crashConfig(), &fakeNode{height: 10})
		if _, err := s.AddPieceToAny(ctx, first.size, bytes.NewReader(first.data), dealFor(first, 10000)); err != nil {
			t.Fatal(err)
		}
		s.st.db.Close()
	}
	victim := makePiece(t, 2, 3<<20, 4<<20)
	plan := crashPlan{Seed: 2, Payload: 3 << 20, Size: 4 << 20, Deal: dealFor(victim, 10000)}
	b, _ := json.Marshal(plan)
	if err := os.WriteFile(filepath.Join(dir, "plan.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}

	s := openTestSealing(t, dir, crashConfig(), &fakeNode{height: 10})
	si, err := s.Sector(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var intent *SectorPiece
	for i, p := range si.Pieces {
		if p.DealUUID != nil && *p.DealUUID == plan.Deal.UUID {
			intent = &si.Pieces[i]
		}
	}
	if intent == nil || intent.Written {
		t.Fatalf("after the crash the placement intent should be recorded and not done: %+v", si.Pieces)
	}
	if _, err := s.ReadPiece(ctx, victim.cid); !errors.Is(err, ErrNoUnsealedCopy) {
		t.Fatalf("half-written piece readable: %v", err)
	}
	// The trailer still lists only the first piece.
	f, err := os.Open(s.unsealedPath(1))
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := readAllocation(f, s.cfg.SectorSize)
	f.Close()
	if err != nil || !sameCoverage(alloc, []span{{0, 1024}}) {
		t.Fatalf("trailer after crash: %v %v", alloc, err)
	}
	// Half the piece did reach the file before the kill.
	f, err = os.Open(s.unsealedPath(1))
	if err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 1<<20)
	_, err = f.ReadAt(part, int64(intent.Offset))
	f.Close()
	if err != nil || bytes.Count(part, []byte{0}) == len(part) {
		t.Fatalf("the child was killed before it wrote anything (%v); the test proves nothing", err)
	}
	// The market retries the deal: same placement, written once.
	pl, err := s.AddPieceToAny(ctx, victim.size, bytes.NewReader(victim.data), plan.Deal)
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
