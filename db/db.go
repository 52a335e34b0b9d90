// Package db opens Ferry's database and keeps its schema current.
//
// SQLite (through mattn/go-sqlite3) is the default: one file in the repo
// directory, WAL journal, foreign keys on. The schema is plain SQL in
// migrations/, applied with goose at open, so the same files can later serve
// PostgreSQL. Every part of Ferry that keeps state has its own tables; see
// HACKING.md for the numbering of migration files.
package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver
	"github.com/pressly/goose/v3"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open opens (creating if needed) the SQLite database at path and applies
// any migrations it has not seen yet.
func Open(ctx context.Context, path string) (*sql.DB, error) {
	// _txlock=immediate makes every transaction take the write lock at BEGIN,
	// so read-then-write transactions (admission) serialise instead of
	// failing with SQLITE_BUSY half way.
	dsn := fmt.Sprintf("file:%s?_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on&_synchronous=NORMAL&_txlock=immediate", path)
	sqldb, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	// Processes opening one database at once migrate it one after the
	// other, so none applies a migration another is applying.
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		sqldb.Close()
		return nil, err
	}
	defer unlock()
	if err := Migrate(ctx, sqldb); err != nil {
		sqldb.Close()
		return nil, err
	}
	return sqldb, nil
}

// Migrate applies the migrations sqldb has not seen yet.
func Migrate(ctx context.Context, sqldb *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("reading embedded migrations: %w", err)
	}
	// Migration numbers are ranges per package (see HACKING.md), so a
	// package's new migration may sort before another's applied one.
	p, err := goose.NewProvider(goose.DialectSQLite3, sqldb, sub, goose.WithAllowOutofOrder(true))
	if err != nil {
		return fmt.Errorf("preparing migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil && !errors.Is(err, goose.ErrNoNextVersion) {
		return fmt.Errorf("migrating database: %w", err)
	}
	return nil
}

// InTx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise.
func InTx(ctx context.Context, sqldb *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := sqldb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}

// CountBy runs query, which must select a text key and a count (for
// example `SELECT state, count(*) FROM t GROUP BY state`), and returns the
// counts by key.
func CountBy(ctx context.Context, sqldb *sql.DB, query string, args ...any) (map[string]int64, error) {
	rows, err := sqldb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var key string
		var n int64
		if err := rows.Scan(&key, &n); err != nil {
			return nil, err
		}
		out[key] = n
	}
	return out, rows.Err()
}
