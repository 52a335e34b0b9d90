// Package dbtest gives tests a fresh database of each kind Ferry runs on.
//
// A store's tests run on SQLite always and on PostgreSQL too when the
// environment variable FERRY_TEST_POSTGRES holds the URL of a server the
// tests may create schemas on (scripts/postgres starts a throwaway one;
// .ci/run does). Each PostgreSQL test gets a schema of its own, dropped
// when it ends, so tests run side by side without seeing each other's
// rows.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
)

// EnvPostgres names the environment variable with the PostgreSQL server's
// URL.
const EnvPostgres = "FERRY_TEST_POSTGRES"

// Each runs fn as a subtest per database: "sqlite" with the path of a new
// SQLite file, and "postgres" with the URL of a new schema when
// FERRY_TEST_POSTGRES is set. fn opens the source with db.Open (as often
// as it likes: a reopened source is the same database).
func Each(t *testing.T, fn func(t *testing.T, source string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	if os.Getenv(EnvPostgres) != "" {
		t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
	}
}

// SQLite returns the path of a new SQLite database file in t's temporary
// directory.
func SQLite(t testing.TB) string {
	return filepath.Join(t.TempDir(), "ferry.db")
}

// Postgres returns the URL of a new, empty schema on the server
// FERRY_TEST_POSTGRES names, dropped when t ends; it skips t when the
// variable is not set.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgres)
	if base == "" {
		t.Skipf("%s is not set: no PostgreSQL server to test on", EnvPostgres)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgres, err)
	}
	var b [8]byte
	rand.Read(b[:])
	schema := "ferry_test_" + hex.EncodeToString(b[:])
	admin(t, base, `CREATE SCHEMA `+schema)
	t.Cleanup(func() { admin(t, base, `DROP SCHEMA `+schema+` CASCADE`) })
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// admin runs one statement on the server at base.
func admin(t testing.TB, base, stmt string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to %s: %v", EnvPostgres, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}
