package sealing

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/pressly/goose/v3"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
)

func TestStateTable(t *testing.T) {
	seen := map[SectorState]bool{}
	for _, st := range sectorStates() {
		if seen[st.state] {
			t.Fatalf("%s twice in the state table", st.state)
		}
		seen[st.state] = true
		if st.open && st.handle == nil {
			t.Fatalf("open state %s has no handler", st.state)
		}
	}
	want := func(got []SectorState, want ...SectorState) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("got %v, want %v", got, want)
			}
		}
	}
	want(openStates(), StateWaitDeals, StateAddPiece, StateAddPieceFailed)
	want(restingStates(), StateProving, StateFailedUnrecoverable)
	want(statesWhere(func(s stateStep) bool { return s.proving }), StateProving)
}

// Metrics show every state, the empty ones as zero.
func TestSectorCountsEveryState(t *testing.T) {
	ctx := context.Background()
	s := openTestDB(t, t.TempDir())
	p := makePiece(t, 1, 100, 128)
	if _, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), dealFor(p, 10000)); err != nil {
		t.Fatal(err)
	}
	counts, err := s.SectorCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sectorStates() {
		n, ok := counts[st.state]
		if !ok {
			t.Fatalf("no count for %s: %v", st.state, counts)
		}
		if want := map[bool]int64{true: 1}[st.state == StateWaitDeals]; n != want {
			t.Fatalf("%s: %d sectors, want %d", st.state, n, want)
		}
	}
}

// A repo written before Lotus' state names: a sector whose pre-commit was
// sent in state SubmitPreCommit, and a piece left 'writing'. After the
// migration the sector waits for its message (no second one is sent) and
// the piece is a reservation a retry writes.
func TestMigrationFromSubmitPreCommit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "ferry.db")
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, raw, os.DirFS("../db/migrations"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 20); err != nil {
		t.Fatal(err)
	}
	msg := "bafy2bzacedyosdfz6tcraxlc6i4rblgeavj5lpmvpoezdgyxaelqwhbwaq24o"
	pc := makePiece(t, 1, 100, 128)
	now := fmt.Sprint(time.Now().UnixNano()) // sector 2 is not due for packing
	for _, q := range []string{
		`INSERT INTO sealing_sectors (number, state, seal_proof, opened_at, updated_at, precommit_uuid, precommit_msg)
			VALUES (1, 'SubmitPreCommit', 0, 0, 0, '7b1f6a36-3b34-4a4c-9f0c-3a6f3c1b7b10', '` + msg + `')`,
		`INSERT INTO sealing_sectors (number, state, seal_proof, opened_at, updated_at) VALUES (2, 'WaitDeals', 0, ` + now + `, 0)`,
		`INSERT INTO sealing_pieces (sector, offset, size, kind, status, piece_cid, deal_uuid, start_epoch, end_epoch)
			VALUES (2, 0, 128, 'deal', 'writing', '` + pc.cid.String() + `', '0b1f6a36-3b34-4a4c-9f0c-3a6f3c1b7b10', 10000, 528400)`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	sqldb, err := db.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	mc := newMinerChain()
	cfg := fsmConfig()
	cfg.Dir = filepath.Join(dir, "sectors")
	cfg.WaitDealsDelay = time.Hour
	s, err := New(cfg, sqldb, mc, pushSender{mc}, testMiner, NewDevnetSealer())
	if err != nil {
		t.Fatal(err)
	}
	si, err := s.Sector(ctx, 1)
	if err != nil || si.State != StateSubmitPreCommitBatch {
		t.Fatalf("migrated sector: %s %v", si.State, err)
	}
	// The message executed; the sender never saw it (it was pushed before
	// chain/sender), so it is followed by its CID.
	mc.receipts[cid.MustParse(msg)] = &chain.MsgLookup{Message: cid.MustParse(msg), Height: 5}
	runCtx, stop := context.WithCancel(ctx)
	s.step(runCtx)
	if si, _ = s.Sector(ctx, 1); si.State != StatePreCommitBatchWait || si.PreCommitMsg == nil || si.PreCommitMsg.String() != msg {
		t.Fatalf("after a step: %s, message %v", si.State, si.PreCommitMsg)
	}
	s.step(runCtx) // the pre-commit is awaited, by CID
	for deadline := time.Now().Add(15 * time.Second); si.State == StatePreCommitBatchWait && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		si, _ = s.Sector(ctx, 1)
	}
	stop()
	s.waiters.Wait()
	if si.State != StateWaitSeed || si.PreCommitEpoch != 5 || si.SeedEpoch != 5+fsmConfig().PreCommitChallengeDelay {
		t.Fatalf("sector whose pre-commit executed at 5: %s, epoch %d (%s)", si.State, si.PreCommitEpoch, si.LastError)
	}
	if n := mc.pushes[builtin.MethodsMiner.PreCommitSectorBatch2]; n != 0 {
		t.Fatalf("%d pre-commits sent for a sector whose pre-commit was sent", n)
	}

	d := dealFor(pc, 10000)
	d.UUID = uuid.MustParse("0b1f6a36-3b34-4a4c-9f0c-3a6f3c1b7b10") // the migrated piece's deal
	pl, err := s.AddPieceToAny(ctx, pc.size, bytes.NewReader(pc.data), d)
	if err != nil || pl != (Placement{2, 0, 128}) {
		t.Fatalf("retry of the interrupted piece: %+v %v", pl, err)
	}
	checkPayload(t, readBack(t, s, pc.cid), pc)
}
