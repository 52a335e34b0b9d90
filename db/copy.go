package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// TableCopy is what Copy did with one table: the rows copied and their
// checksum, the same on both databases.
type TableCopy struct {
	Table    string `json:"table"`
	Rows     int64  `json:"rows"`
	Checksum string `json:"checksum"` // hex; see TableSum
}

// Copy copies every row of every table of the SQLite database src (both
// migrated, as Open leaves them) into dst, which must hold no row yet, in
// one transaction, then checks each table row for row: the same count and
// the same TableSum read back from each database. progress, if not nil,
// is told each table as it starts. A failed copy leaves dst as it was.
func Copy(ctx context.Context, dst, src *sql.DB, progress func(table string)) ([]TableCopy, error) {
	if DialectOf(src) != SQLite {
		return nil, fmt.Errorf("copying a database: the source must be SQLite")
	}
	tables, err := sqliteTables(ctx, src)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		var n int64
		if err := dst.QueryRowContext(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("checking table %s of the target: %w", t, err)
		}
		if n > 0 {
			return nil, fmt.Errorf("the target database is not empty: table %s has %d rows", t, n)
		}
	}
	err = InTx(ctx, dst, func(tx *sql.Tx) error {
		for _, t := range tables {
			if progress != nil {
				progress(t)
			}
			if err := copyTable(ctx, tx, src, t); err != nil {
				return err
			}
		}
		if DialectOf(dst) == Postgres {
			return resetIdentities(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]TableCopy, 0, len(tables))
	for _, t := range tables {
		from, err := TableSum(ctx, src, t)
		if err != nil {
			return nil, err
		}
		to, err := TableSum(ctx, dst, t)
		if err != nil {
			return nil, err
		}
		if from != to {
			return nil, fmt.Errorf("table %s differs after the copy: %d rows (checksum %s) in the source, %d (%s) in the target",
				t, from.Rows, from.Checksum, to.Rows, to.Checksum)
		}
		out = append(out, from)
	}
	return out, nil
}

// sqliteTables lists Ferry's tables in src in the order they were created
// (so that a table comes after those its foreign keys name), without
// goose's own.
func sqliteTables(ctx context.Context, src *sql.DB) ([]string, error) {
	rows, err := src.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = ? AND name NOT LIKE ? AND name != ? ORDER BY rowid`,
		"table", "sqlite_%", "goose_db_version")
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("listing tables: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// copyTable inserts every row of table t of src into tx, many rows a
// statement.
func copyTable(ctx context.Context, tx *sql.Tx, src *sql.DB, t string) error {
	rows, err := src.QueryContext(ctx, `SELECT * FROM `+t)
	if err != nil {
		return fmt.Errorf("reading table %s: %w", t, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return fmt.Errorf("reading table %s: %w", t, err)
	}
	// PostgreSQL takes at most 65535 parameters a statement.
	per := max(1, min(500, 60000/len(cols)))
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	head := `INSERT INTO ` + t + ` (` + strings.Join(cols, ", ") + `) VALUES `
	args := make([]any, 0, per*len(cols))
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		n := len(args) / len(cols)
		q := head + strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("writing table %s: %w", t, err)
		}
		args = args[:0]
		return nil
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("reading table %s: %w", t, err)
		}
		args = append(args, vals...)
		if len(args) >= per*len(cols) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading table %s: %w", t, err)
	}
	return flush()
}

// resetIdentities moves each identity column of the current schema past
// the largest value copied in, so the next row numbered by the database
// does not take a copied row's number.
func resetIdentities(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND is_identity = ?`, "YES")
	if err != nil {
		return fmt.Errorf("listing identity columns: %w", err)
	}
	var ids [][2]string
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			rows.Close()
			return fmt.Errorf("listing identity columns: %w", err)
		}
		ids = append(ids, [2]string{t, c})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing identity columns: %w", err)
	}
	for _, id := range ids {
		t, c := id[0], id[1]
		if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence(?, ?), coalesce(max(`+c+`), 0) + 1, false) FROM `+t, t, c); err != nil {
			return fmt.Errorf("moving the identity of %s.%s: %w", t, c, err)
		}
	}
	return nil
}

// TableSum counts the rows of table t and sums their hashes. A row's hash
// is SHA-256 over its values in column order, each written as its kind (NULL,
// integer, float, bytes) and its value (integers in decimal, text and blobs
// as their bytes, length first); the hashes are added as four 64-bit lanes,
// so the sum does not depend on the order rows are read in, nor on which
// database holds them.
func TableSum(ctx context.Context, sqldb *sql.DB, t string) (TableCopy, error) {
	rows, err := sqldb.QueryContext(ctx, `SELECT * FROM `+t)
	if err != nil {
		return TableCopy{}, fmt.Errorf("reading table %s: %w", t, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return TableCopy{}, fmt.Errorf("reading table %s: %w", t, err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var (
		n     int64
		lanes [4]uint64
		buf   []byte
	)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return TableCopy{}, fmt.Errorf("reading table %s: %w", t, err)
		}
		buf = buf[:0]
		for _, v := range vals {
			buf = appendValue(buf, v)
		}
		h := sha256.Sum256(buf)
		for i := range lanes {
			lanes[i] += binary.BigEndian.Uint64(h[8*i:])
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return TableCopy{}, fmt.Errorf("reading table %s: %w", t, err)
	}
	var sum [32]byte
	for i, l := range lanes {
		binary.BigEndian.PutUint64(sum[8*i:], l)
	}
	return TableCopy{Table: t, Rows: n, Checksum: hex.EncodeToString(sum[:])}, nil
}

// appendValue appends the kind and value of a column value as TableSum
// hashes it.
func appendValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, 'N')
	case int64:
		return strconv.AppendInt(append(b, 'I'), v, 10)
	case float64:
		return strconv.AppendFloat(append(b, 'F'), v, 'g', -1, 64)
	case bool: // a flag read as one
		if v {
			return append(b, 'I', '1')
		}
		return append(b, 'I', '0')
	case []byte:
		return append(binary.AppendUvarint(append(b, 'B'), uint64(len(v))), v...)
	case string:
		return append(binary.AppendUvarint(append(b, 'B'), uint64(len(v))), v...)
	}
	s := fmt.Sprint(v)
	return append(binary.AppendUvarint(append(b, 'B'), uint64(len(s))), s...)
}
