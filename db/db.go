// Package db opens Ferry's database and keeps its schema current.
//
// A database is named by a source: a file path opens the embedded SQLite
// database (mattn/go-sqlite3; WAL journal, foreign keys on, every
// transaction taking the write lock at BEGIN), the default for one
// machine; a postgres:// or postgresql:// URL opens PostgreSQL through pgx
// (and so YugabyteDB's YSQL), for several ferryd nodes sharing one
// database. Every part of Ferry that keeps state has its own tables and
// one store type holding all of its SQL; HACKING.md numbers the migration
// files per owner.
//
// The stores write one text per query for both databases:
//
//   - Placeholders are `?`. On PostgreSQL the connection rewrites them to
//     `$1, $2, …` (outside string literals and quoted names) before pgx sees
//     the query, so no store holds two copies of a query.
//   - Flags are integer columns holding 0 or 1 on both databases. A Go bool
//     given for an integer parameter is sent to PostgreSQL as 0 or 1, and
//     such a column scans into a Go bool on both, so flags are compared
//     with Go values, never with literals.
//   - Integers are 64-bit on both (unix nanoseconds, sizes, epochs): the
//     migrations' INTEGER becomes BIGINT on PostgreSQL.
//   - Ids come back with RETURNING, upserts are `ON CONFLICT … DO NOTHING`
//     or `DO UPDATE`, LIMIT always has a value, and no name is a reserved
//     word of either (OFFSET is one in PostgreSQL).
//   - A transaction that reads and then writes on what it read (admission,
//     the choice of a sector) calls Serialize first: SQLite's immediate
//     transactions are serial already, PostgreSQL's read-committed ones
//     are made so by a row lock.
//
// The same goose migrations (migrations/*.sql, embedded) run on both, at
// open. Their text is SQLite's; for PostgreSQL it goes through
// PostgresSchema, a short list of type rewrites, so there is one schema.
// Processes opening one database at once migrate it one after the other.
package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver
	"github.com/pressly/goose/v3"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is the kind of database behind a *sql.DB.
type Dialect int

// The dialects.
const (
	SQLite Dialect = iota + 1
	Postgres
)

// String names the dialect.
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// IsURL reports whether source names a PostgreSQL server (a postgres:// or
// postgresql:// URL) rather than a SQLite file.
func IsURL(source string) bool {
	return strings.HasPrefix(source, "postgres://") || strings.HasPrefix(source, "postgresql://")
}

// DialectOf returns the dialect of a database Open opened.
func DialectOf(sqldb *sql.DB) Dialect {
	if _, ok := sqldb.Driver().(pgDriver); ok {
		return Postgres
	}
	return SQLite
}

// Open opens the database source names (a SQLite file path, created if
// needed, or a PostgreSQL URL) and applies the migrations it has not seen.
func Open(ctx context.Context, source string) (*sql.DB, error) {
	if IsURL(source) {
		return openPostgres(ctx, source)
	}
	return openSQLite(ctx, source)
}

func openSQLite(ctx context.Context, path string) (*sql.DB, error) {
	// _txlock=immediate makes every transaction take the write lock at BEGIN,
	// so read-then-write transactions (admission) serialise instead of
	// failing with SQLITE_BUSY half way.
	dsn := fmt.Sprintf("file:%s?_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on&_synchronous=NORMAL&_txlock=immediate", path)
	sqldb, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	// A bounded pool, as on PostgreSQL: many goroutines reading at once (a
	// start resuming thousands of deals) share connections instead of
	// opening one file descriptor each.
	sqldb.SetMaxOpenConns(32)
	sqldb.SetMaxIdleConns(16)
	// The lock is taken before the first connection too: that connection
	// turns a new file to WAL, which another opening at once can see fail
	// with "database is locked" (it did, in TestConcurrentOpen).
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		sqldb.Close()
		return nil, err
	}
	defer unlock()
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	if err := Migrate(ctx, sqldb); err != nil {
		sqldb.Close()
		return nil, err
	}
	return sqldb, nil
}

// Migrate applies the migrations sqldb has not seen yet. The caller keeps
// other processes from migrating the same database at once (Open does).
func Migrate(ctx context.Context, sqldb *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("reading embedded migrations: %w", err)
	}
	dialect := goose.DialectSQLite3
	if DialectOf(sqldb) == Postgres {
		dialect, sub = goose.DialectPostgres, rewriteFS{sub, PostgresSchema}
	}
	// Migration numbers are ranges per package (see HACKING.md), so a
	// package's new migration may sort before another's applied one.
	p, err := goose.NewProvider(dialect, sqldb, sub, goose.WithAllowOutofOrder(true))
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

// Serialize makes tx the only transaction under name until it ends: a
// second one calling Serialize with the same name waits for the first to
// commit or roll back, and then reads what it wrote. Call it first in a
// transaction that reads and then writes on what it read. It takes a row
// lock (the row of name in db_locks), which SQLite, PostgreSQL and
// YugabyteDB all hold until the transaction ends.
func Serialize(ctx context.Context, tx *sql.Tx, name string) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO db_locks (name, taken) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET taken = db_locks.taken + 1`, name, 1); err != nil {
		return fmt.Errorf("taking lock %s: %w", name, err)
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
