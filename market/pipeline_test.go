package market

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/google/uuid"
)

// The table of steps is in checkpoint order, names every checkpoint as
// SPEC.md §1 does, and only the last one has no step.
func TestPipelineTable(t *testing.T) {
	want := []string{"Accepted", "Transferred", "Published", "PublishConfirmed", "AddedPiece", "IndexedAndAnnounced", "Complete"}
	steps := pipeline()
	if len(steps) != len(want) {
		t.Fatalf("%d stages, want %d", len(steps), len(want))
	}
	for i, st := range steps {
		cp := Checkpoint(i + 1)
		if st.checkpoint != cp || st.name != want[i] || cp.String() != want[i] {
			t.Errorf("stage %d: %+v (String %q), want checkpoint %d named %s", i, st, cp, i+1, want[i])
		}
		if last := cp == Complete; (st.advance == nil) != last || (st.step == "") != last {
			t.Errorf("stage %s: step %q, advance set %t", st.name, st.step, st.advance != nil)
		}
		got, err := ParseCheckpoint(want[i])
		if err != nil || got != cp {
			t.Errorf("ParseCheckpoint(%q) = %v, %v", want[i], got, err)
		}
		var v Checkpoint
		if err := v.Scan(want[i]); err != nil || v != cp {
			t.Errorf("Scan(%q) = %v, %v", want[i], v, err)
		}
		if dv, err := cp.Value(); err != nil || dv != want[i] {
			t.Errorf("Value of %s = %v, %v", want[i], dv, err)
		}
	}
	if _, err := ParseCheckpoint("Sealed"); err == nil {
		t.Error("an unknown checkpoint name parsed")
	}
	var v Checkpoint
	if err := v.Scan("Sealed"); err == nil {
		t.Error("an unknown checkpoint name scanned")
	}
	if _, err := Checkpoint(0).Value(); err == nil {
		t.Error("the zero checkpoint was stored")
	}
	if got := AddedPiece.andLater(); len(got) != 3 || got[0] != AddedPiece || got[2] != Complete {
		t.Errorf("AddedPiece.andLater() = %v", got)
	}
}

// DealInfo carries checkpoints as their names in JSON, both ways.
func TestCheckpointJSON(t *testing.T) {
	b, err := json.Marshal(DealInfo{Checkpoint: PublishConfirmed, Retry: RetryAuto})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["checkpoint"] != "PublishConfirmed" || m["retry"] != "auto" {
		t.Fatalf("JSON %s", b)
	}
	var back DealInfo
	if err := json.Unmarshal(b, &back); err != nil || back.Checkpoint != PublishConfirmed || back.Retry != RetryAuto {
		t.Fatalf("decoded %+v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"checkpoint":"Sealed"}`), &back); err == nil {
		t.Fatal("an unknown checkpoint decoded")
	}
}

// FuzzCheckpointText: a checkpoint name read from outside (the operator
// API's JSON, a database row) parses only to a checkpoint that prints as
// the same name, and anything else is an error, never a panic.
func FuzzCheckpointText(f *testing.F) {
	for _, st := range pipeline() {
		f.Add(st.name)
	}
	f.Add("")
	f.Add("Checkpoint(9)")
	f.Fuzz(func(t *testing.T, name string) {
		var c Checkpoint
		err := c.UnmarshalText([]byte(name))
		if err != nil {
			if c != 0 {
				t.Fatalf("%q: error %v, yet checkpoint %d", name, err, c)
			}
			return
		}
		b, err := c.MarshalText()
		if err != nil || string(b) != name {
			t.Fatalf("%q parsed to %d, which prints as %q (%v)", name, c, b, err)
		}
	})
}

// A deal's goroutine that read the deal Published and then finds its
// batch landed does not fail it when the landing confirmed it in between
// (TestLegacyBatchFollowedByCID met this under -race).
func TestAwaitPublisherAfterLanding(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	s, ctx := &store{db: h.deps.DB}, context.Background()
	p := &Provider{store: s}
	nd := &newDeal{params: h.deal("l.car", 100, 1, nil), clientKey: mustID(2001), collateral: big.Zero(), fee: big.Zero(), escrow: big.Zero()}
	nd.signedCID = testCID("landing")
	if err := s.admit(ctx, nd, func(tagged) error { return nil }); err != nil {
		t.Fatal(err)
	}
	id := nd.params.DealUUID
	if err := s.advance(ctx, id, Transferred); err != nil {
		t.Fatal(err)
	}
	if err := s.queueForPublish(ctx, id); err != nil {
		t.Fatal(err)
	}
	bid, err := s.recordBatch(ctx, uuid.New(), []uuid.UUID{id})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := s.deal(ctx, id) // Published, as the goroutine read it
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.batch(ctx, bid)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.landBatch(ctx, b, testCID("landed"), map[int]abi.DealID{0: 7}); err != nil {
		t.Fatal(err)
	}
	if stale.Checkpoint != Published {
		t.Fatalf("deal read at %s before the landing", stale.Checkpoint)
	}
	if err := p.awaitPublisher(ctx, stale, nil); err != nil {
		t.Fatalf("a deal confirmed by the landing: %v", err)
	}
}
