// Package dbtest runs a package's tests on each database Ferry runs on.
//
// A package whose tests keep state in the database runs them through
// Twice in its TestMain and takes each test's database from Source: the
// tests run once on SQLite, then, when the environment variable
// FERRY_TEST_POSTGRES holds the URL of a PostgreSQL server the tests may
// create schemas on, once more on PostgreSQL (scripts/postgres starts a
// throwaway server; .ci/run does). Without the variable they run on SQLite
// only. On PostgreSQL a test's database is a schema of its own, named
// after the directory the test gave, created on first use and dropped when
// the test that created it ends: tests run side by side without seeing
// each other's rows, and a test (or a child process it starts) that
// reopens its directory's database finds the same rows.
package dbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// EnvPostgres names the environment variable with the PostgreSQL server's
// URL.
const EnvPostgres = "FERRY_TEST_POSTGRES"

// envPass names the variable that tells Source (in this process and in
// the children tests start) which database the tests run on.
const envPass = "FERRY_TEST_DATABASE"

// TestingM is what Twice needs of a *testing.M (and what goleak's
// VerifyTestMain takes).
type TestingM interface{ Run() int }

// Twice returns m running its tests on SQLite and then, if
// FERRY_TEST_POSTGRES is set, on PostgreSQL; Run's code is the first
// failure's.
func Twice(m TestingM) TestingM { return twice{m} }

type twice struct{ m TestingM }

func (t twice) Run() int {
	if os.Getenv(envPass) != "" {
		// A test process started by a test (a child a crash test kills,
		// say) runs only the pass of the test that started it.
		return t.m.Run()
	}
	os.Setenv(envPass, "sqlite")
	code := t.m.Run()
	if os.Getenv(EnvPostgres) == "" || code != 0 {
		return code
	}
	fmt.Println("dbtest: the same tests on PostgreSQL")
	os.Setenv(envPass, "postgres")
	defer os.Unsetenv(envPass)
	return t.m.Run()
}

// OnPostgres reports whether the tests now run on PostgreSQL.
func OnPostgres() bool { return os.Getenv(envPass) == "postgres" && os.Getenv(EnvPostgres) != "" }

// Source returns the database of the test's directory dir for db.Open:
// the SQLite file dir/ferry.db, or on the PostgreSQL pass the URL of
// dir's schema.
func Source(t testing.TB, dir string) string {
	t.Helper()
	if !OnPostgres() {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, "ferry.db")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(abs))
	return Schema(t, "ferry_test_"+hex.EncodeToString(sum[:10]))
}

// Postgres returns the URL of a new, empty schema on the server
// FERRY_TEST_POSTGRES names, dropped when t ends, whichever pass runs; it
// skips t when the variable is not set.
func Postgres(t testing.TB) string {
	t.Helper()
	if os.Getenv(EnvPostgres) == "" {
		t.Skipf("%s is not set: no PostgreSQL server to test on", EnvPostgres)
	}
	return Schema(t, "ferry_test_"+hex.EncodeToString(randomBytes(t)))
}

// Schema returns the URL of schema name on the FERRY_TEST_POSTGRES
// server, creating it if needed; the test that created it drops it when
// it ends.
func Schema(t testing.TB, name string) string {
	t.Helper()
	base := os.Getenv(EnvPostgres)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgres, err)
	}
	err = admin(base, `CREATE SCHEMA `+name)
	var pe *pgconn.PgError
	switch {
	case err == nil:
		t.Cleanup(func() {
			if err := admin(base, `DROP SCHEMA `+name+` CASCADE`); err != nil {
				t.Errorf("dropping test schema: %v", err)
			}
		})
	case errors.As(err, &pe) && pe.Code == "42P06": // duplicate_schema: reopened
	default:
		t.Fatalf("creating test schema: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// admin runs one statement on the server at base.
func admin(base, stmt string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", EnvPostgres, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

func randomBytes(t testing.TB) []byte {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
