package db

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
)

func TestOpenMigratesAndReopens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ferry.db")
	sqldb, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqldb.Exec(`INSERT INTO kv(key, value) VALUES ('a', 'b')`); err != nil {
		t.Fatal(err)
	}
	sqldb.Close()

	sqldb, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	defer sqldb.Close()
	var v string
	if err := sqldb.QueryRow(`SELECT value FROM kv WHERE key='a'`).Scan(&v); err != nil || v != "b" {
		t.Fatalf("value after reopen = %q, %v", v, err)
	}
}

func TestInTxRollsBack(t *testing.T) {
	ctx := context.Background()
	sqldb, err := Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	err = InTx(ctx, sqldb, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO kv(key, value) VALUES ('x', 'y')`); err != nil {
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

var errBoom = errors.New("boom")

// TestConcurrentOpen: several opens of a new database at once (as two
// commands started together) all succeed, each migration applied once.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.db")
	errs := make(chan error, 4)
	for i := 0; i < cap(errs); i++ {
		go func() {
			sqldb, err := Open(context.Background(), path)
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
