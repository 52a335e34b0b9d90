// Package cluster lets several ferryd nodes share one database and its
// work.
//
// Each node is a member: it registers itself (its node ID, roles and
// addresses) in cluster_nodes and keeps a heartbeat there. Work is
// claimed, not assigned: a unit of work — a deal's next step, a sector, an
// indexing job, the publisher — is done by the node that holds its lease,
// a row of cluster_leases named after the work ("deal/<uuid>",
// "market.publisher", …). A node takes a lease when nobody holds it or its
// holder's has expired, in one conditional statement that SQLite and
// PostgreSQL both run atomically, so two nodes never hold one lease. The
// heartbeat renews every lease a node holds; a node that stops gives its
// leases up at once, and a node that dies stops renewing them, so after
// the lease timeout another node with the role takes the work over and
// resumes it from its checkpoint in the database. What must not happen
// twice (a publish message, an AddPiece, an announcement) is made so by
// the parts themselves, which record it before doing it; a lease only
// keeps two nodes from working on one thing at once.
//
// Expiry compares the nodes' clocks: they must agree to well within the
// lease timeout (NTP does).
//
// With one node on SQLite every lease is taken at once and never
// contended: ferryd behaves as it does without a cluster.
package cluster

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"slices"
	"strings"
	"sync"
	"time"
)

// Role is a kind of work a node does.
type Role string

// The roles. A node runs every role unless its config names fewer.
const (
	RoleMarket    Role = "market"    // the libp2p deal protocols, admission, the publisher, the deal-end watcher
	RoleTransfer  Role = "transfer"  // downloads of deal data into staging
	RoleSealing   Role = "sealing"   // AddPiece and the sector states
	RoleIndex     Role = "index"     // indexing pieces and announcing them to IPNI
	RoleRetrieval Role = "retrieval" // serving /piece and /ipfs
)

// AllRoles lists every role, in order.
func AllRoles() []Role {
	return []Role{RoleMarket, RoleTransfer, RoleSealing, RoleIndex, RoleRetrieval}
}

// Roles is a set of roles.
type Roles []Role

// ParseRoles reads role names; none means every role.
func ParseRoles(names []string) (Roles, error) {
	if len(names) == 0 {
		return AllRoles(), nil
	}
	var out Roles
	for _, n := range names {
		r := Role(strings.TrimSpace(n))
		if !slices.Contains(AllRoles(), r) {
			return nil, fmt.Errorf("unknown role %q (roles: %s)", n, Roles(AllRoles()))
		}
		if !out.Has(r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Has reports whether r is in the set.
func (rs Roles) Has(r Role) bool { return slices.Contains(rs, r) }

// String joins the roles with commas, as cluster_nodes holds them.
func (rs Roles) String() string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

// NewNodeID returns a new random node ID.
func NewNodeID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "node-" + hex.EncodeToString(b)
}

// Addresses are where a node can be reached.
type Addresses struct {
	API    string   // the operator API, as http://host:port
	HTTP   string   // retrievals and the files other nodes read, as http://host:port
	Libp2p []string // libp2p multiaddrs (market nodes)
}

// Config configures a Member.
type Config struct {
	DB        *sql.DB
	NodeID    string
	Roles     Roles // nil: every role
	Addresses Addresses
	// LeaseTimeout is how long a lease outlives its holder's last
	// heartbeat (default 30 s): how long a dead node's work waits before
	// another node takes it.
	LeaseTimeout time.Duration
	// Heartbeat is how often the node renews its row and leases (default a
	// third of LeaseTimeout).
	Heartbeat time.Duration
	// Logf receives the member's log lines; nil is the standard logger.
	Logf func(format string, args ...any)
	// Now is the clock (tests move it); nil is time.Now.
	Now func() time.Time
}

// Member is this node's membership of the cluster.
type Member struct {
	cfg   Config
	store store

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Join registers the node (again, after a restart: its row is updated and
// the leases it held before are given up, since the work they named was
// cut off) and starts its heartbeat. Close leaves.
func Join(ctx context.Context, cfg Config) (*Member, error) {
	if cfg.DB == nil || cfg.NodeID == "" {
		return nil, errors.New("cluster: no database or node ID")
	}
	if cfg.Roles == nil {
		cfg.Roles = AllRoles()
	}
	if cfg.LeaseTimeout <= 0 {
		cfg.LeaseTimeout = 30 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = cfg.LeaseTimeout / 3
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Member{cfg: cfg, store: store{db: cfg.DB}}
	if err := m.store.register(ctx, cfg, cfg.Now()); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	m.wg.Add(1)
	go m.heartbeat(hctx)
	return m, nil
}

// NodeID returns the node's ID.
func (m *Member) NodeID() string { return m.cfg.NodeID }

// Roles returns the node's roles.
func (m *Member) Roles() Roles { return m.cfg.Roles }

// Has reports whether the node runs role r.
func (m *Member) Has(r Role) bool { return m.cfg.Roles.Has(r) }

func (m *Member) heartbeat(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.Beat(ctx); err != nil && ctx.Err() == nil {
			m.cfg.Logf("cluster: heartbeat: %v", err)
		}
	}
}

// Beat renews the node's heartbeat and every lease it holds now (the
// heartbeat goroutine calls it every Config.Heartbeat).
func (m *Member) Beat(ctx context.Context) error {
	return m.store.beat(ctx, m.cfg.NodeID, m.cfg.Now(), m.cfg.LeaseTimeout)
}

// Acquire takes the lease of name for this node, or renews it when the
// node holds it already; it reports false when another node holds it and
// its lease has not expired.
func (m *Member) Acquire(ctx context.Context, name string) (bool, error) {
	ok, err := m.store.acquire(ctx, name, m.cfg.NodeID, m.cfg.Now(), m.cfg.LeaseTimeout)
	if err != nil {
		return false, fmt.Errorf("cluster: taking lease %s: %w", name, err)
	}
	return ok, nil
}

// Release gives up the lease of name if this node holds it.
func (m *Member) Release(ctx context.Context, name string) error {
	if err := m.store.release(ctx, name, m.cfg.NodeID); err != nil {
		return fmt.Errorf("cluster: giving up lease %s: %w", name, err)
	}
	return nil
}

// FreeSQL returns a condition, and its arguments, that holds for the rows
// whose lease — named by the SQL expression nameExpr over the row, for
// example `'deal/' || uuid` — no live node holds: for a part's store to
// find the work nobody does.
func (m *Member) FreeSQL(nameExpr string) (string, []any) {
	return `NOT EXISTS (SELECT 1 FROM cluster_leases l WHERE l.name = ` + nameExpr + ` AND l.expires_at > ?)`,
		[]any{m.cfg.Now().UnixNano()}
}

// AddPath records a storage path of this node (kind "staging" or
// "sectors"), where the files other nodes read from it live.
func (m *Member) AddPath(ctx context.Context, kind, path string) error {
	if err := m.store.addPath(ctx, m.cfg.NodeID, kind, path); err != nil {
		return fmt.Errorf("cluster: recording %s path %s: %w", kind, path, err)
	}
	return nil
}

// Node returns what the cluster knows of node id.
func (m *Member) Node(ctx context.Context, id string) (NodeInfo, error) {
	ns, err := m.store.nodes(ctx, m.cfg.Now(), m.cfg.LeaseTimeout, id)
	if err != nil {
		return NodeInfo{}, fmt.Errorf("cluster: reading node %s: %w", id, err)
	}
	if len(ns) == 0 {
		return NodeInfo{}, fmt.Errorf("cluster: node %s: %w", id, ErrUnknownNode)
	}
	return ns[0], nil
}

// ErrUnknownNode is returned for a node ID never registered.
var ErrUnknownNode = errors.New("unknown node")

// Nodes lists every node registered, this one first, then by node ID,
// with the leases each holds.
func (m *Member) Nodes(ctx context.Context) ([]NodeInfo, error) {
	ns, err := m.store.nodes(ctx, m.cfg.Now(), m.cfg.LeaseTimeout, "")
	if err != nil {
		return nil, fmt.Errorf("cluster: listing nodes: %w", err)
	}
	slices.SortStableFunc(ns, func(a, b NodeInfo) int {
		switch {
		case a.ID == m.cfg.NodeID:
			return -1
		case b.ID == m.cfg.NodeID:
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ns, nil
}

// Close stops the heartbeat and leaves the cluster: the node's leases are
// given up, so other nodes take its work over at once, and its row is
// marked stopped.
func (m *Member) Close() error {
	var err error
	m.once.Do(func() {
		m.cancel()
		m.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if e := m.store.leave(ctx, m.cfg.NodeID); e != nil {
			err = fmt.Errorf("cluster: leaving: %w", e)
		}
	})
	return err
}

// Shared returns what the cluster shares under name (kept in the
// database), storing proposed when it has nothing yet: so the first node
// decides, and every node gets the same. ferryd shares the libp2p identity
// its market nodes serve and the secret its nodes sign their requests to
// each other with.
func Shared(ctx context.Context, sqldb *sql.DB, name string, proposed []byte) ([]byte, error) {
	v, err := store{db: sqldb}.shared(ctx, "cluster."+name, hex.EncodeToString(proposed))
	if err != nil {
		return nil, fmt.Errorf("cluster: reading the shared %s: %w", name, err)
	}
	b, err := hex.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("cluster: the shared %s is not hex: %w", name, err)
	}
	return b, nil
}

// NodeInfo is a node as `ferryd cluster list` shows it.
type NodeInfo struct {
	ID        string    `json:"id"`
	Roles     Roles     `json:"roles"`
	APIURL    string    `json:"apiUrl"`
	HTTPURL   string    `json:"httpUrl"`
	Libp2p    []string  `json:"libp2p"`
	StartedAt time.Time `json:"startedAt"`
	// Heartbeat is the node's last heartbeat; zero once it stopped.
	Heartbeat time.Time `json:"heartbeat"`
	// Alive: the heartbeat is younger than the lease timeout.
	Alive  bool        `json:"alive"`
	Paths  []PathInfo  `json:"paths"`
	Leases []LeaseInfo `json:"leases"`
}

// PathInfo is a storage path of a node.
type PathInfo struct {
	Kind string `json:"kind"`
	Path string `json:"path"`
}

// LeaseInfo is a lease a node holds.
type LeaseInfo struct {
	Name    string    `json:"name"`
	TakenAt time.Time `json:"takenAt"`
	Expires time.Time `json:"expires"`
}
