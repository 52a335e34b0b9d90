package market

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	_ "github.com/mattn/go-sqlite3"
	"github.com/pressly/goose/v3"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
	"github.com/ferry-fil/ferry/wallet"
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

// The deal list's state filter and the deal counts read the indexes of
// migration 0049, which are on dealStateSQL's very text: a change to one
// without the other would make both read every deal.
func TestDealStateSQLIsIndexed(t *testing.T) {
	if dbtest.OnPostgres() {
		t.Skip("the plans checked are SQLite's")
	}
	mig, err := os.ReadFile("../db/migrations/0049_deal_states.sql")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(mig), "(("+dealStateSQL()+"),"); n != 2 {
		t.Fatalf("migration 0049 has dealStateSQL in %d indexes, want 2:\n%s", n, dealStateSQL())
	}
	h := newHarness(t, t.TempDir(), nil)
	for _, c := range []struct {
		query string
		args  []any
		index string
	}{
		{`SELECT uuid FROM market_deals WHERE ` + dealStateSQL() + ` = ? AND (created_at, uuid) < (?, ?)
			ORDER BY created_at DESC, uuid DESC LIMIT ?`, []any{StateFailed, 1, "x", 100}, "market_deals_state_page"},
		{`SELECT uuid FROM market_deals WHERE (created_at, uuid) < (?, ?) ORDER BY created_at DESC, uuid DESC LIMIT ?`,
			[]any{1, "x", 100}, "market_deals_order"},
		{`SELECT ` + dealStateSQL() + `, checkpoint, count(*) FROM market_deals GROUP BY ` + dealStateSQL() + `, checkpoint ORDER BY 1, 2`,
			nil, "COVERING INDEX market_deals_state_count"},
	} {
		rows, err := h.deps.DB.Query("EXPLAIN QUERY PLAN "+c.query, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		joined := strings.Join(plan, "; ")
		if !strings.Contains(joined, c.index) || strings.Contains(joined, "TEMP B-TREE") {
			t.Errorf("plan of %q: %s; want %s and no sort", c.query, joined, c.index)
		}
	}
}
