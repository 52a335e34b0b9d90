package db_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Twice(m).Run()) }

func open(t *testing.T, source string) *sql.DB {
	t.Helper()
	sqldb, err := db.Open(context.Background(), source)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	return sqldb
}

func TestOpenMigratesAndReopens(t *testing.T) {
	{
		source := dbtest.Source(t, t.TempDir())
		ctx := context.Background()
		sqldb, err := db.Open(ctx, source)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sqldb.Exec(`INSERT INTO kv(key, value) VALUES (?, ?)`, "a", "b"); err != nil {
			t.Fatal(err)
		}
		sqldb.Close()

		sqldb = open(t, source)
		var v string
		if err := sqldb.QueryRow(`SELECT value FROM kv WHERE key = ?`, "a").Scan(&v); err != nil || v != "b" {
			t.Fatalf("value after reopen = %q, %v", v, err)
		}
	}
}

func TestDialectOf(t *testing.T) {
	{
		source := dbtest.Source(t, t.TempDir())
		want := db.SQLite
		if db.IsURL(source) {
			want = db.Postgres
		}
		if got := db.DialectOf(open(t, source)); got != want {
			t.Fatalf("DialectOf = %v, want %v", got, want)
		}
	}
}

func TestInTxRollsBack(t *testing.T) {
	{
		source := dbtest.Source(t, t.TempDir())
		ctx := context.Background()
		sqldb := open(t, source)
		err := db.InTx(ctx, sqldb, func(tx *sql.Tx) error {
			if _, err := tx.Exec(`INSERT INTO kv(key, value) VALUES (?, ?)`, "x", "y"); err != nil {
				return err
			}
			return errBoom
		})
		if err != errBoom {
			t.Fatalf("InTx error = %v, want errBoom", err)
		}
		var n int
		sqldb.QueryRow(`SELECT count(*) FROM kv`).Scan(&n)
		if n != 0 {
			t.Fatalf("rolled-back row is present")
		}
	}
}

var errBoom = errors.New("boom")

// TestConcurrentOpen: several opens of a new database at once (as two
// commands started together) all succeed, each migration applied once.
func TestConcurrentOpen(t *testing.T) {
	{
		source := dbtest.Source(t, t.TempDir())
		errs := make(chan error, 4)
		for i := 0; i < cap(errs); i++ {
			go func() {
				sqldb, err := db.Open(context.Background(), source)
				if err == nil {
					err = sqldb.Close()
				}
				errs <- err
			}()
		}
		for i := 0; i < cap(errs); i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestPortableValues: what the stores rely on of both databases — bools
// stored as 0 and 1 and read back as bools, 64-bit integers, blobs, NULL,
// RETURNING of a numbered key, upserts, and `?` inside a string literal
// left alone.
func TestPortableValues(t *testing.T) {
	{
		source := dbtest.Source(t, t.TempDir())
		ctx := context.Background()
		sqldb := open(t, source)
		create := `CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, flag INTEGER NOT NULL, big INTEGER NOT NULL, data BLOB, name TEXT NOT NULL UNIQUE)`
		if db.DialectOf(sqldb) == db.Postgres {
			create = db.PostgresSchema(create)
		}
		if _, err := sqldb.ExecContext(ctx, create); err != nil {
			t.Fatal(err)
		}
		const nanos = int64(1_767_225_600_000_000_000) // 2026 in unix nanoseconds: needs 64 bits
		var id1, id2 int64
		if err := sqldb.QueryRowContext(ctx, `INSERT INTO t (flag, big, data, name) VALUES (?, ?, ?, ?) RETURNING id`,
			true, nanos, []byte{0, 1, 2}, "a?").Scan(&id1); err != nil {
			t.Fatal(err)
		}
		if err := sqldb.QueryRowContext(ctx, `INSERT INTO t (flag, big, data, name) VALUES (?, ?, ?, ?) RETURNING id`,
			false, int64(-1), nil, "b").Scan(&id2); err != nil {
			t.Fatal(err)
		}
		if id2 <= id1 {
			t.Fatalf("ids %d then %d", id1, id2)
		}
		if _, err := sqldb.ExecContext(ctx, `INSERT INTO t (flag, big, name) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET big = excluded.big, flag = excluded.flag`, true, int64(7), "b"); err != nil {
			t.Fatal(err)
		}
		var (
			flag bool
			big  int64
			data []byte
			n    int
		)
		if err := sqldb.QueryRowContext(ctx, `SELECT flag, big, data FROM t WHERE name = 'a?' AND flag = ?`, true).Scan(&flag, &big, &data); err != nil {
			t.Fatal(err)
		}
		if !flag || big != nanos || string(data) != "\x00\x01\x02" {
			t.Fatalf("read back flag %v, big %d, data %x", flag, big, data)
		}
		if err := sqldb.QueryRowContext(ctx, `SELECT flag, big, data FROM t WHERE name = ?`, "b").Scan(&flag, &big, &data); err != nil {
			t.Fatal(err)
		}
		if !flag || big != 7 || data != nil {
			t.Fatalf("read back flag %v, big %d, data %x", flag, big, data)
		}
		if err := sqldb.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE flag = ?`, false).Scan(&n); err != nil || n != 0 {
			t.Fatalf("count of false flags = %d, %v; want 0 after the upsert", n, err)
		}
	}
}

// TestSerialize: transactions that read a total and write on it, taking
// turns through Serialize, never both see the same total.
func TestSerialize(t *testing.T) {
	{
		source := dbtest.Source(t, t.TempDir())
		ctx := context.Background()
		sqldb := open(t, source)
		if _, err := sqldb.ExecContext(ctx, `INSERT INTO kv (key, value) VALUES (?, ?)`, "n", "0"); err != nil {
			t.Fatal(err)
		}
		const workers, each = 4, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					err := db.InTx(ctx, sqldb, func(tx *sql.Tx) error {
						if err := db.Serialize(ctx, tx, "test"); err != nil {
							return err
						}
						var n int
						if err := tx.QueryRowContext(ctx, `SELECT CAST(value AS INTEGER) FROM kv WHERE key = ?`, "n").Scan(&n); err != nil {
							return err
						}
						_, err := tx.ExecContext(ctx, `UPDATE kv SET value = ? WHERE key = ?`, itoa(n+1), "n")
						return err
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var v string
		if err := sqldb.QueryRowContext(ctx, `SELECT value FROM kv WHERE key = ?`, "n").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != itoa(workers*each) {
			t.Fatalf("counter = %s after %d increments: two transactions read the same value", v, workers*each)
		}
	}
}

func itoa(n int) string {
	const digits = "0123456789"
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{digits[n%10]}, b...)
	}
	return string(b)
}
