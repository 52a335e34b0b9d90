package market

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/wire"
)

// The operator's listings: every filter, the searches, keyset paging, the
// ingest history, the reserved totals and the checkpoint timeline, over
// deals of a real pipeline.
func TestDealSearch(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.start()
	ctx := context.Background()
	before := time.Now()
	done, doneInfo, waiting := h.doneAndWaiting(ctx)
	mid := time.Now()
	all, err := h.p.Deals(ctx, DealFilter{})
	if err != nil {
		t.Fatal(err)
	}
	key, err := h.clientKI.Address()
	if err != nil {
		t.Fatal(err)
	}
	v2, err := piece.V1ToV2(done.ClientDealProposal.Proposal.PieceCID, 1500, done.ClientDealProposal.Proposal.PieceSize)
	if err != nil {
		t.Fatal(err)
	}
	uuids := func(ps ...*wire.DealParams) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.DealUUID.String())
		}
		return out
	}
	for _, c := range []struct {
		f    DealFilter
		want []string
	}{
		{DealFilter{Checkpoint: Accepted.String()}, uuids(waiting[2], waiting[1], waiting[0])},
		{DealFilter{Checkpoint: Complete.String()}, uuids(done)},
		{DealFilter{Client: key.String()}, uuids(waiting[2], waiting[1], waiting[0], done)},
		{DealFilter{Client: "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"}, nil},
		{DealFilter{PieceCID: done.ClientDealProposal.Proposal.PieceCID.String()}, uuids(done)},
		{DealFilter{PieceCID: v2.String()}, uuids(done)},
		{DealFilter{CreatedFrom: before, CreatedTo: waiting0Created(t, h, waiting[0])}, uuids(done)},
		{DealFilter{CreatedFrom: mid}, nil},
		{DealFilter{Search: waiting[1].DealUUID.String()}, uuids(waiting[1])},
		{DealFilter{Search: v2.String()}, uuids(done)},
		{DealFilter{Search: testRoot.String(), State: StateComplete}, uuids(done)},
		{DealFilter{Search: fmt.Sprint(doneInfo.ChainDealID)}, uuids(done)},
		{DealFilter{After: ptr(all[0].Cursor()), Limit: 2}, uuids(waiting[1], waiting[0])},
		{DealFilter{After: ptr(all[2].Cursor()), Limit: 2}, uuids(done)},
		{DealFilter{After: ptr(all[3].Cursor())}, nil},
		{DealFilter{Checkpoint: Accepted.String(), After: ptr(all[1].Cursor())}, uuids(waiting[0])},
	} {
		got, err := h.p.Deals(ctx, c.f)
		if err != nil {
			t.Fatalf("%+v: %v", c.f, err)
		}
		var ids []string
		for _, d := range got {
			ids = append(ids, d.UUID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(c.want) {
			t.Errorf("%+v: %v, want %v", c.f, ids, c.want)
		}
	}
	// Only a published deal has a chain deal ID: 0 finds no deal waiting
	// for its transfer (the done deal's ID is not 0 here).
	if got, err := h.p.Deals(ctx, DealFilter{Search: "0"}); err != nil || len(got) != 0 {
		t.Errorf("search 0: %v %v", got, err)
	}
	for _, f := range []DealFilter{{Checkpoint: "Sealed"}, {Client: "nobody"}, {PieceCID: testRoot.String()}, {Search: "not a thing"}} {
		if _, err := h.p.Deals(ctx, f); err == nil {
			t.Errorf("%+v accepted", f)
		}
	}

	hist, err := h.p.Ingested(ctx, time.Now().Add(-2*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var bytes uint64
	var deals int64
	for _, b := range hist {
		bytes, deals = bytes+b.Bytes, deals+b.Deals
	}
	if len(hist) != 3 || bytes != 1500 || deals != 1 {
		t.Errorf("ingest history %+v", hist)
	}

	r, err := h.p.Reserved(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.StagingTagged == 0 || r.Collateral.Sign() <= 0 {
		t.Errorf("reserved %+v with three deals transferring", r)
	}

	dd, err := h.p.Deal(ctx, done.DealUUID)
	if err != nil {
		t.Fatal(err)
	}
	var steps []Checkpoint
	for _, s := range dd.Timeline() {
		steps = append(steps, s.Checkpoint)
	}
	if fmt.Sprint(steps) != fmt.Sprint(Accepted.andLater()) {
		t.Errorf("timeline %v", steps)
	}
	if dd.Sector == nil || dd.SectorOffset == nil {
		t.Errorf("complete deal without sector and offset: %+v", dd.DealInfo)
	}
}

func ptr[T any](v T) *T { return &v }

func waiting0Created(t *testing.T, h *harness, p *wire.DealParams) time.Time {
	t.Helper()
	d, err := h.p.Deal(context.Background(), p.DealUUID)
	if err != nil {
		t.Fatal(err)
	}
	return d.CreatedAt
}
