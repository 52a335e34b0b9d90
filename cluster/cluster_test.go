package cluster

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
)

// clock is a clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const timeout = 30 * time.Second

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	sqldb, err := db.Open(context.Background(), dbtest.Source(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	return sqldb
}

// join makes a member on the test's clock whose heartbeat never fires by
// itself: the test calls Beat.
func join(t *testing.T, sqldb *sql.DB, c *clock, id string, roles ...Role) *Member {
	t.Helper()
	m, err := Join(context.Background(), Config{DB: sqldb, NodeID: id, Roles: roles, LeaseTimeout: timeout, Heartbeat: time.Hour,
		Now: c.Now, Logf: t.Logf, Addresses: Addresses{API: "http://127.0.0.1:1", HTTP: "http://127.0.0.1:2", Libp2p: []string{"/ip4/127.0.0.1/tcp/3"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func acquire(t *testing.T, m *Member, name string) bool {
	t.Helper()
	ok, err := m.Acquire(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestLeaseHasOneHolder(t *testing.T) {
	sqldb, c := openDB(t), &clock{now: time.Unix(1_767_225_600, 0)}
	a, b := join(t, sqldb, c, "a"), join(t, sqldb, c, "b")
	if !acquire(t, a, "deal/1") {
		t.Fatal("a did not get a free lease")
	}
	if acquire(t, b, "deal/1") {
		t.Fatal("b took a lease a holds")
	}
	if !acquire(t, a, "deal/1") {
		t.Fatal("a could not renew its own lease")
	}
	if err := b.Release(context.Background(), "deal/1"); err != nil {
		t.Fatal(err)
	}
	if acquire(t, b, "deal/1") {
		t.Fatal("b's release of a lease it does not hold freed it")
	}
	if err := a.Release(context.Background(), "deal/1"); err != nil {
		t.Fatal(err)
	}
	if !acquire(t, b, "deal/1") {
		t.Fatal("b did not get the lease a gave up")
	}
}

// A node that stops renewing (it died) loses its leases after the timeout,
// not before; one that beats keeps them.
func TestLeaseExpiresWithoutHeartbeat(t *testing.T) {
	ctx := context.Background()
	sqldb, c := openDB(t), &clock{now: time.Unix(1_767_225_600, 0)}
	a, b := join(t, sqldb, c, "a"), join(t, sqldb, c, "b")
	if !acquire(t, a, "market.publisher") {
		t.Fatal("a did not get a free lease")
	}
	c.add(2 * timeout / 3)
	if err := a.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	c.add(2 * timeout / 3)
	if acquire(t, b, "market.publisher") {
		t.Fatal("b took a lease a renewed with its heartbeat")
	}
	c.add(timeout / 3) // a's last beat is now a timeout ago
	if !acquire(t, b, "market.publisher") {
		t.Fatal("b did not take the lease of a node that stopped beating")
	}
	if acquire(t, a, "market.publisher") {
		t.Fatal("a, back, took its lease back from b")
	}
	if err := b.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	ns, err := b.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || ns[0].ID != "b" || !ns[0].Alive || ns[1].Alive || len(ns[0].Leases) != 1 || len(ns[1].Leases) != 0 {
		t.Fatalf("nodes %+v", ns)
	}
}

// Many nodes racing for many leases at once: every lease has exactly one
// holder.
func TestLeaseRace(t *testing.T) {
	sqldb, c := openDB(t), &clock{now: time.Unix(1_767_225_600, 0)}
	const nodes, names = 6, 40
	var members []*Member
	for i := range nodes {
		members = append(members, join(t, sqldb, c, fmt.Sprintf("n%d", i)))
	}
	won := make([][]bool, nodes)
	var wg sync.WaitGroup
	errs := make(chan error, nodes)
	for i, m := range members {
		won[i] = make([]bool, names)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range names {
				ok, err := m.Acquire(context.Background(), fmt.Sprintf("sector/%d", j))
				if err != nil {
					errs <- err
					return
				}
				won[i][j] = ok
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for j := range names {
		holders := 0
		for i := range nodes {
			if won[i][j] {
				holders++
			}
		}
		if holders != 1 {
			t.Fatalf("lease sector/%d went to %d nodes", j, holders)
		}
	}
}

// A node that leaves gives its leases up at once; one that joins again
// after a crash drops those it held.
func TestLeaveAndRejoinFreeLeases(t *testing.T) {
	ctx := context.Background()
	sqldb, c := openDB(t), &clock{now: time.Unix(1_767_225_600, 0)}
	a, b := join(t, sqldb, c, "a", RoleMarket), join(t, sqldb, c, "b", RoleSealing, RoleIndex)
	if !acquire(t, a, "deal/1") || !acquire(t, b, "deal/2") {
		t.Fatal("free leases not taken")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !acquire(t, b, "deal/1") {
		t.Fatal("the lease of a node that left was not free")
	}
	// b "crashes" (no Close) and joins again: deal/1 and deal/2 are free.
	b2 := join(t, sqldb, c, "b", RoleSealing)
	if !acquire(t, join(t, sqldb, c, "c"), "deal/2") {
		t.Fatal("a lease held before a restart was kept")
	}
	n, err := b2.Node(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if n.Alive || !n.Heartbeat.IsZero() || n.Roles.String() != "market" {
		t.Fatalf("node a after leaving: %+v", n)
	}
	if _, err := b2.Node(ctx, "nobody"); err == nil {
		t.Fatal("an unknown node was found")
	}
}

// FreeSQL selects the rows whose lease nobody holds, expired ones
// included.
func TestFreeSQL(t *testing.T) {
	ctx := context.Background()
	sqldb, c := openDB(t), &clock{now: time.Unix(1_767_225_600, 0)}
	a, b := join(t, sqldb, c, "a"), join(t, sqldb, c, "b")
	for _, k := range []string{"1", "2", "3"} {
		if _, err := sqldb.ExecContext(ctx, `INSERT INTO kv (key, value) VALUES (?, ?)`, k, ""); err != nil {
			t.Fatal(err)
		}
	}
	acquire(t, a, "deal/1")
	c.add(timeout) // a's lease on 1 expires
	acquire(t, b, "deal/2")
	cond, args := b.FreeSQL(`'deal/' || key`)
	rows, err := sqldb.QueryContext(ctx, `SELECT key FROM kv WHERE `+cond+` ORDER BY key`, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var free []string
	for rows.Next() {
		var k string
		rows.Scan(&k)
		free = append(free, k)
	}
	if fmt.Sprint(free) != "[1 3]" {
		t.Fatalf("free rows %v, want [1 3]", free)
	}
}

func TestParseRoles(t *testing.T) {
	all, err := ParseRoles(nil)
	if err != nil || len(all) != len(AllRoles()) {
		t.Fatalf("no roles: %v %v", all, err)
	}
	rs, err := ParseRoles([]string{"sealing", " index", "sealing"})
	if err != nil || rs.String() != "sealing,index" || rs.Has(RoleMarket) || !rs.Has(RoleIndex) {
		t.Fatalf("roles %v %v", rs, err)
	}
	if _, err := ParseRoles([]string{"mining"}); err == nil {
		t.Fatal("an unknown role was accepted")
	}
}

// The first node's proposal is what every node gets.
func TestShared(t *testing.T) {
	ctx := context.Background()
	sqldb := openDB(t)
	first, err := Shared(ctx, sqldb, "secret", []byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	second, err := Shared(ctx, sqldb, "secret", []byte{9})
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != "\x01\x02\x03" || string(second) != string(first) {
		t.Fatalf("shared values %x then %x, want 010203 both", first, second)
	}
}
