package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
)

// openPostgres opens the PostgreSQL database at url through pgx, with
// connections that take the stores' queries as they are written (see the
// package doc), and migrates it.
func openPostgres(ctx context.Context, url string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing database URL %s: %w", RedactURL(url), err)
	}
	sqldb := sql.OpenDB(pgConnector{stdlib.GetConnector(*cfg, stdlib.OptionAfterConnect(registerFlags))})
	sqldb.SetMaxOpenConns(32)
	sqldb.SetMaxIdleConns(16)
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("connecting to database %s: %w", RedactURL(url), err)
	}
	if err := migrateLocked(ctx, sqldb); err != nil {
		sqldb.Close()
		return nil, err
	}
	return sqldb, nil
}

// migrationLock is the first key of the advisory lock under which a
// process migrates a PostgreSQL schema (the second is a hash of the
// schema's name, so tests in schemas of their own do not wait on each
// other).
const migrationLock = 0x66657272 // "ferr"

// migrateLocked migrates sqldb holding the schema's migration lock on a
// connection of its own, so processes opening one database at once migrate
// it one after the other.
func migrateLocked(ctx context.Context, sqldb *sql.DB) error {
	conn, err := sqldb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connecting to migrate: %w", err)
	}
	defer conn.Close()
	const key = `?, hashtext(current_schema())`
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+key+`)`, migrationLock); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+key+`)`, migrationLock)
	return Migrate(ctx, sqldb)
}

// RedactURL returns a database URL without its password, for messages.
func RedactURL(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil || cfg.Password == "" {
		return url
	}
	return strings.Replace(url, ":"+cfg.Password+"@", ":…@", 1)
}

// pgConnector opens pgx connections that rebind placeholders.
type pgConnector struct{ driver.Connector }

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &pgConn{conn.(*stdlib.Conn)}, nil
}

func (c pgConnector) Driver() driver.Driver { return pgDriver{c.Connector.Driver()} }

// pgDriver is the driver of a database openPostgres opened; DialectOf
// recognises it.
type pgDriver struct{ driver.Driver }

func (d pgDriver) Open(name string) (driver.Conn, error) {
	conn, err := d.Driver.Open(name)
	if err != nil {
		return nil, err
	}
	return &pgConn{conn.(*stdlib.Conn)}, nil
}

// pgConn is a pgx connection that takes queries with `?` placeholders.
type pgConn struct{ *stdlib.Conn }

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.Prepare(Rebind(query))
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, Rebind(query))
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, Rebind(query), args)
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, Rebind(query), args)
}

// flagCodec encodes bigint parameters as pgx does, and a Go bool (a flag:
// see the package doc) as 0 or 1. Parameters of other types, booleans
// among them, are untouched.
type flagCodec struct{ pgtype.Int8Codec }

func (c flagCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(bool); ok {
		return flagPlan{c.Int8Codec.PlanEncode(m, oid, format, int64(0))}
	}
	return c.Int8Codec.PlanEncode(m, oid, format, value)
}

type flagPlan struct{ int64Plan pgtype.EncodePlan }

func (p flagPlan) Encode(value any, buf []byte) ([]byte, error) {
	var n int64
	if value.(bool) {
		n = 1
	}
	return p.int64Plan.Encode(n, buf)
}

// registerFlags makes conn send Go bools given for bigint parameters as
// 0 or 1.
func registerFlags(_ context.Context, conn *pgx.Conn) error {
	conn.TypeMap().RegisterType(&pgtype.Type{Name: "int8", OID: pgtype.Int8OID, Codec: flagCodec{}})
	return nil
}

// Rebind rewrites the `?` placeholders of query as PostgreSQL's `$1, $2,
// …`, leaving alone what is inside string literals, quoted names and
// comments.
func Rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(query) && query[j] != c {
				j++
			}
			// A doubled quote inside is an escaped one: the loop comes
			// back here for the rest.
			end := min(j+1, len(query))
			b.WriteString(query[i:end])
			i = end - 1
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j - 1
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			j := strings.Index(query[i+2:], "*/")
			end := len(query)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			b.WriteString(query[i:end])
			i = end - 1
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
