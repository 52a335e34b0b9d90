package market

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	_ "github.com/mattn/go-sqlite3"
	"github.com/pressly/goose/v3"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

// A publish batch signed before migration 0033 that had not landed is
// followed on chain by its message CID: it has no message id, and the
// publisher waits for the CID it recorded.
func TestMigrationKeepsSignedBatches(t *testing.T) {
	ctx := context.Background()
	sqldb, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "ferry.db")+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	gp, err := goose.NewProvider(goose.DialectSQLite3, sqldb, os.DirFS("../db/migrations"), goose.WithAllowOutofOrder(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gp.UpTo(ctx, 32); err != nil {
		t.Fatal(err)
	}

	ki := testKey(t, 3)
	from, _ := ki.Address()
	sm, err := chain.SignMessage(&chain.Message{From: from, To: builtin.StorageMarketActorAddr, Value: big.Zero(),
		Method: builtin.MethodsMarket.PublishStorageDeals, Nonce: 7, GasLimit: 1, GasFeeCap: big.NewInt(1), GasPremium: big.NewInt(1)},
		func(b []byte) (*crypto.Signature, error) { return wallet.Sign(ki, b) })
	if err != nil {
		t.Fatal(err)
	}
	c, _ := sm.Cid()
	var enc bytes.Buffer
	if err := sm.MarshalCBOR(&enc); err != nil {
		t.Fatal(err)
	}
	for i, state := range []string{"pushed", "landed"} {
		if _, err := sqldb.Exec(`INSERT INTO market_publish_batches (id, created_at, msg_cid, signed_msg, deals, state) VALUES (?, ?, ?, ?, ?, ?)`,
			41+i, 1, c.String(), enc.Bytes(), `[]`, state); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Migrate(ctx, sqldb); err != nil {
		t.Fatal(err)
	}

	s := &store{db: sqldb}
	open, err := s.sendingBatches(ctx)
	if err != nil || len(open) != 1 || open[0] != 41 {
		t.Fatalf("batches to send after the migration: %v, %v", open, err)
	}
	b, err := s.batch(ctx, 41)
	if err != nil {
		t.Fatal(err)
	}
	if b.msgID != uuid.Nil || !b.msgCid.Equals(c) {
		t.Fatalf("migrated batch: %+v", b)
	}
	if landed, err := s.batch(ctx, 42); err != nil || landed.state != batchLanded {
		t.Fatalf("landed batch after the migration: %+v, %v", landed, err)
	}
}

// The deal list (filtered by state, and a page in the middle), the deal
// counts and the list of deals a start resumes read indexes, in listing
// order where there is one (no sort of what they read), on SQLite and on
// PostgreSQL, over 20,000 deals in the shapes of ferry-bench store's
// (2% waiting offline, 6% failed, 20% ended, the rest complete) with
// their statistics taken, as the planners see a provider's database. The
// state indexes of migration 0049 are on dealStateSQL's very text: a
// change to one without the other would make both read every deal.
func TestDealQueriesUseIndexes(t *testing.T) {
	mig, err := os.ReadFile("../db/migrations/0049_deal_states.sql")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(mig), "(("+dealStateSQL()+"),"); n != 2 {
		t.Fatalf("migration 0049 has dealStateSQL in %d indexes, want 2:\n%s", n, dealStateSQL())
	}
	h := newHarness(t, t.TempDir(), nil)
	const deals = 20_000
	ctx := context.Background()
	if _, err := h.deps.DB.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO market_deals (uuid, signed_proposal_cid, created_at, updated_at, client_peer, client_key, proposal, piece_cid,
			piece_size, start_epoch, end_epoch, verified, data_root, is_offline, keep_unsealed, skip_ipni, checkpoint, retry, ended_at)
		SELECT 'deal-' || i, 'signed-' || i, i * 1000000000, i * 1000000000, 'peer', 'f01001', ?, 'piece-' || i, 128, 1, 2, ?, '',
			?, ?, ?,
			CASE WHEN i % 100 < 2 THEN 'Accepted' WHEN i % 100 < 8 THEN 'Transferred' ELSE 'Complete' END,
			CASE WHEN i % 100 >= 2 AND i % 100 < 8 THEN 'fatal' ELSE '' END,
			CASE WHEN i % 100 >= 8 AND i % 100 < 28 THEN i ELSE 0 END
		FROM n`, deals, []byte{1}, false, false, true, false); err != nil {
		t.Fatal(err)
	}
	if _, err := h.deps.DB.ExecContext(ctx, `UPDATE market_deals SET is_offline = ? WHERE checkpoint = ?`, true, Accepted); err != nil {
		t.Fatal(err)
	}
	if _, err := h.deps.DB.ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	postgres := db.DialectOf(h.deps.DB) == db.Postgres
	query := func(f DealFilter) func() (string, []any) {
		return func() (string, []any) {
			q, args, err := listQuery(f)
			if err != nil {
				t.Fatal(err)
			}
			return q, args
		}
	}
	middle := &DealCursor{CreatedAt: time.Unix(deals/2, 0), UUID: fmt.Sprint("deal-", deals/2)}
	for _, c := range []struct {
		query  func() (string, []any)
		index  string
		sorted bool // the index yields the rows in the order asked
		all    bool // reads every deal's entry of the index (the counts)
	}{
		{query(DealFilter{State: StateFailed, Limit: 100}), "market_deals_state_page", true, false},
		{query(DealFilter{State: StateActive, Limit: 100}), "market_deals_state_page", true, false},
		// A page in the middle of a rare state's deals (PostgreSQL reads
		// those of a common one, ended, from market_deals_order, keeping
		// one in five: fewer pages than the state's index and the table).
		{query(DealFilter{State: StateFailed, Limit: 100, After: middle}), "market_deals_state_page", true, false},
		{query(DealFilter{Limit: 100, After: middle}), "market_deals_order", true, false},
		{unfinishedQuery, "", false, false},
		{func() (string, []any) { return countsQuery(), nil }, "COVERING INDEX market_deals_state_count", false, true},
	} {
		q, args := c.query()
		if postgres && c.all {
			continue // PostgreSQL counts by a scan or an index-only scan as its statistics say; off the request path (every 10 s)
		}
		plan := queryPlan(t, h.deps.DB, true, q, args...)
		var scans, sorts bool
		if postgres {
			scans, sorts = strings.Contains(plan, "Seq Scan"), strings.Contains(plan, "Sort")
		} else {
			scans = strings.Contains(plan, "SCAN market_deals") && !c.all
			sorts = strings.Contains(plan, "TEMP B-TREE")
		}
		if !strings.Contains(plan, c.index) || scans || c.sorted && sorts {
			t.Errorf("plan of %q: %s; want %s, no scan of every deal (and no sort: %t)", q, plan, c.index, c.sorted)
		}
	}
}

// queryPlan is the plan the database makes for q, one line per step.
// With seqScans false, PostgreSQL plans it with sequential scans turned
// off, for tests whose tables are too small for any index to cost less
// than a scan and that check that an index can serve the query.
func queryPlan(t *testing.T, sqldb *sql.DB, seqScans bool, q string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	var plan []string
	err := db.InTx(ctx, sqldb, func(tx *sql.Tx) error {
		explain := "EXPLAIN QUERY PLAN "
		if db.DialectOf(sqldb) == db.Postgres {
			explain = "EXPLAIN "
			if !seqScans {
				if _, err := tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
					return err
				}
			}
		}
		rows, err := tx.QueryContext(ctx, explain+q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			return err
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			plan = append(plan, fmt.Sprint(vals[len(vals)-1])) // SQLite's detail, PostgreSQL's one column
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatalf("planning %q: %v", q, err)
	}
	return strings.Join(plan, "; ")
}

// A start resumes the deals with a step to take, not those waiting for
// their data or for a publish batch (nothing but an import or the
// publisher moves them on).
func TestUnfinishedLeavesIdleDeals(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	s := &store{db: h.deps.DB}
	ctx := context.Background()
	admit := func(i int, offline bool) uuid.UUID {
		nd := &newDeal{
			params: h.deal("u.car", 100, int64(i), func(p *market.DealProposal, params *wire.DealParams) {
				p.StartEpoch += abi.ChainEpoch(i)
				params.IsOffline = offline
			}),
			clientKey: mustID(2001), collateral: big.Zero(), fee: big.Zero(), escrow: big.Zero(),
		}
		nd.signedCID = testCID(fmt.Sprint("u", i))
		if err := s.admit(ctx, nd, func(tagged) error { return nil }); err != nil {
			t.Fatal(err)
		}
		return nd.params.DealUUID
	}
	admit(1, true) // waits for its data
	online := admit(2, false)
	queued := admit(3, false)
	transferred := admit(4, false)
	for _, id := range []uuid.UUID{queued, transferred} {
		if err := s.advance(ctx, id, Transferred); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.queueForPublish(ctx, queued); err != nil {
		t.Fatal(err)
	}
	failed := admit(5, false)
	if _, _, _, err := s.fail(ctx, failed, "test"); err != nil {
		t.Fatal(err)
	}
	got, err := s.unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	want := []uuid.UUID{online, transferred}
	slices.SortFunc(want, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	if !slices.Equal(got, want) {
		t.Fatalf("deals resumed: %v, want %v (online, transferred)", got, want)
	}
}
