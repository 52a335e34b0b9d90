package cluster

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-fil/ferry/db"
)

// store holds every SQL statement of the cluster: the node rows, the
// leases and the storage paths. Times are unix nanoseconds.
type store struct{ db *sql.DB }

// register writes the node's row and drops the leases it held before (its
// work was cut off when it stopped; it takes again what it resumes).
func (s store) register(ctx context.Context, cfg Config, now time.Time) error {
	return db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO cluster_nodes (id, roles, api_url, http_url, libp2p_addrs, started_at, heartbeat_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET roles = excluded.roles, api_url = excluded.api_url, http_url = excluded.http_url,
			libp2p_addrs = excluded.libp2p_addrs, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`,
			cfg.NodeID, cfg.Roles.String(), cfg.Addresses.API, cfg.Addresses.HTTP, strings.Join(cfg.Addresses.Libp2p, " "),
			now.UnixNano(), now.UnixNano())
		if err != nil {
			return fmt.Errorf("registering node %s: %w", cfg.NodeID, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM cluster_leases WHERE holder = ?`, cfg.NodeID); err != nil {
			return fmt.Errorf("dropping the leases node %s held before: %w", cfg.NodeID, err)
		}
		return nil
	})
}

// beat renews the node's heartbeat and the leases it holds.
func (s store) beat(ctx context.Context, node string, now time.Time, timeout time.Duration) error {
	return db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE cluster_nodes SET heartbeat_at = ? WHERE id = ?`, now.UnixNano(), node); err != nil {
			return fmt.Errorf("renewing the heartbeat of %s: %w", node, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE cluster_leases SET expires_at = ? WHERE holder = ?`, now.Add(timeout).UnixNano(), node); err != nil {
			return fmt.Errorf("renewing the leases of %s: %w", node, err)
		}
		return nil
	})
}

// acquire takes or renews the lease name for node, unless another node
// holds it unexpired: one statement, which inserts the row, or updates it
// only when its holder is node or its lease expired.
func (s store) acquire(ctx context.Context, name, node string, now time.Time, timeout time.Duration) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO cluster_leases (name, holder, taken_at, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
			taken_at = CASE WHEN cluster_leases.holder = excluded.holder THEN cluster_leases.taken_at ELSE excluded.taken_at END
		WHERE cluster_leases.holder = excluded.holder OR cluster_leases.expires_at <= ?`,
		name, node, now.UnixNano(), now.Add(timeout).UnixNano(), now.UnixNano())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// release drops the lease name if node holds it.
func (s store) release(ctx context.Context, name, node string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM cluster_leases WHERE name = ? AND holder = ?`, name, node)
	return err
}

// leave drops the node's leases and marks it stopped.
func (s store) leave(ctx context.Context, node string) error {
	return db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM cluster_leases WHERE holder = ?`, node); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE cluster_nodes SET heartbeat_at = ? WHERE id = ?`, 0, node)
		return err
	})
}

// shared returns the kv value of key, setting it to proposed first if it
// has none.
func (s store) shared(ctx context.Context, key, proposed string) (string, error) {
	var v string
	err := db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, proposed); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM kv WHERE key = ?`, key).Scan(&v)
	})
	return v, err
}

// addPath records a storage path of node.
func (s store) addPath(ctx context.Context, node, kind, path string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO cluster_paths (node, kind, path) VALUES (?, ?, ?)
		ON CONFLICT (node, kind) DO UPDATE SET path = excluded.path`, node, kind, path)
	return err
}

// nodes reads the nodes (only) with their unexpired leases and paths.
func (s store) nodes(ctx context.Context, now time.Time, timeout time.Duration, only string) ([]NodeInfo, error) {
	where, args := "", []any{}
	if only != "" {
		where, args = ` WHERE id = ?`, []any{only}
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, roles, api_url, http_url, libp2p_addrs, started_at, heartbeat_at
		FROM cluster_nodes`+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	var out []NodeInfo
	byID := map[string]*NodeInfo{}
	for rows.Next() {
		var (
			n            NodeInfo
			roles, addrs string
			started, hb  int64
		)
		if err := rows.Scan(&n.ID, &roles, &n.APIURL, &n.HTTPURL, &addrs, &started, &hb); err != nil {
			rows.Close()
			return nil, err
		}
		for _, r := range strings.Split(roles, ",") {
			if r != "" {
				n.Roles = append(n.Roles, Role(r))
			}
		}
		n.Libp2p = strings.Fields(addrs)
		n.StartedAt = time.Unix(0, started)
		if hb != 0 {
			n.Heartbeat = time.Unix(0, hb)
			n.Alive = now.Sub(n.Heartbeat) < timeout
		}
		n.Paths, n.Leases = []PathInfo{}, []LeaseInfo{}
		out = append(out, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		byID[out[i].ID] = &out[i]
	}
	lrows, err := s.db.QueryContext(ctx, `SELECT name, holder, taken_at, expires_at FROM cluster_leases WHERE expires_at > ? ORDER BY name`, now.UnixNano())
	if err != nil {
		return nil, err
	}
	for lrows.Next() {
		var (
			l              LeaseInfo
			holder         string
			taken, expires int64
		)
		if err := lrows.Scan(&l.Name, &holder, &taken, &expires); err != nil {
			lrows.Close()
			return nil, err
		}
		l.TakenAt, l.Expires = time.Unix(0, taken), time.Unix(0, expires)
		if n := byID[holder]; n != nil {
			n.Leases = append(n.Leases, l)
		}
	}
	lrows.Close()
	if err := lrows.Err(); err != nil {
		return nil, err
	}
	prows, err := s.db.QueryContext(ctx, `SELECT node, kind, path FROM cluster_paths ORDER BY node, kind`)
	if err != nil {
		return nil, err
	}
	defer prows.Close()
	for prows.Next() {
		var node string
		var p PathInfo
		if err := prows.Scan(&node, &p.Kind, &p.Path); err != nil {
			return nil, err
		}
		if n := byID[node]; n != nil {
			n.Paths = append(n.Paths, p)
		}
	}
	return out, prows.Err()
}
