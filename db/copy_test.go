package db_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
)

// TestCopy copies a SQLite database into an empty one (SQLite, then
// PostgreSQL on its pass): the tables match, a changed value changes the
// table's sum, and a target with rows is refused.
func TestCopy(t *testing.T) {
	ctx := context.Background()
	src := open(t, filepath.Join(t.TempDir(), "src.db"))
	for i, v := range []string{"a", "b", "c"} {
		if _, err := src.ExecContext(ctx, `INSERT INTO kv (key, value) VALUES (?, ?)`, v, strings.Repeat(v, i+1)); err != nil {
			t.Fatal(err)
		}
		if _, err := src.ExecContext(ctx, `INSERT INTO market_deal_logs (uuid, at, text) VALUES (?, ?, ?)`, v, int64(1)<<62, v); err != nil {
			t.Fatal(err)
		}
	}
	dst := open(t, dbtest.Source(t, t.TempDir()))
	var seen []string
	tables, err := db.Copy(ctx, dst, src, func(t string) { seen = append(seen, t) })
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(tables) || len(tables) < 10 {
		t.Fatalf("copied %d tables, told of %v", len(tables), seen)
	}
	for _, tc := range tables {
		if tc.Table == "kv" && tc.Rows != 3 || tc.Table == "market_deal_logs" && tc.Rows != 3 {
			t.Fatalf("copied %+v", tc)
		}
	}
	before, err := db.TableSum(ctx, dst, "kv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.ExecContext(ctx, `UPDATE kv SET value = ? WHERE key = ?`, "bb!", "b"); err != nil {
		t.Fatal(err)
	}
	after, err := db.TableSum(ctx, dst, "kv")
	if err != nil {
		t.Fatal(err)
	}
	if after.Rows != before.Rows || after.Checksum == before.Checksum {
		t.Fatalf("sum before a change %+v, after %+v", before, after)
	}
	if _, err := db.Copy(ctx, dst, src, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("copy into a database with rows: %v", err)
	}
}
