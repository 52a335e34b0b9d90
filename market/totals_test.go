package market

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	_ "github.com/jackc/pgx/v5/stdlib" // the pgx driver, for the migration test on PostgreSQL
	"github.com/multiformats/go-multihash"
	"github.com/pressly/goose/v3"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
	"github.com/ferry-fil/ferry/wire"
)

// totalsQuery reads, in one statement (one snapshot on PostgreSQL too),
// the rows of market_tag_totals ('total') and the same sums taken from
// the tags themselves ('sum').
const totalsQuery = `SELECT 'total', client, collateral_nano, collateral_atto, fee_nano, fee_atto, escrow_nano, escrow_atto, space
	FROM market_tag_totals
	UNION ALL SELECT 'sum', client, sum(collateral_nano), sum(collateral_atto), sum(fee_nano), sum(fee_atto),
		sum(escrow_nano), sum(escrow_atto), 0 FROM market_funds_tags GROUP BY client
	UNION ALL SELECT 'sum', '*', coalesce(sum(collateral_nano), 0), coalesce(sum(collateral_atto), 0), coalesce(sum(fee_nano), 0),
		coalesce(sum(fee_atto), 0), coalesce(sum(escrow_nano), 0), coalesce(sum(escrow_atto), 0),
		(SELECT coalesce(sum(bytes), 0) FROM market_space_tags) FROM market_funds_tags`

// checkTagTotals fails t unless every row of market_tag_totals equals the
// sums of its tags (a row without tags holding zeros, tags without a row
// being an error), and returns the row of every tag.
func checkTagTotals(t testing.TB, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) [7]int64 {
	t.Helper()
	rows, err := q.QueryContext(context.Background(), totalsQuery)
	if err != nil {
		t.Fatalf("reading the tag totals: %v", err)
	}
	defer rows.Close()
	got := map[string]map[string][7]int64{"total": {}, "sum": {}}
	for rows.Next() {
		var kind, client string
		var v [7]int64
		if err := rows.Scan(&kind, &client, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]); err != nil {
			t.Fatalf("reading the tag totals: %v", err)
		}
		got[kind][client] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for client, sum := range got["sum"] {
		if total, ok := got["total"][client]; !ok && sum != ([7]int64{}) || total != sum {
			t.Errorf("tag totals of %q: %v (row kept: %t), the tags sum to %v", client, total, ok, sum)
		}
	}
	for client, total := range got["total"] {
		if _, ok := got["sum"][client]; !ok && total != ([7]int64{}) {
			t.Errorf("tag totals of %q: %v, but it has no tags", client, total)
		}
	}
	return got["total"][allClients]
}

// The totals equal the sums of the tags after every admission and release
// of a random series: market and direct deals admitted with and without
// staging, failed, published (their funds released as a batch lands),
// added to a sector (staging released), and tags found stale at start.
func TestTagTotalsEqualSums(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	tagWorkload(t, h, rand.New(rand.NewPCG(1, 2)), 0, 300, func(op string, i int) {
		checkTagTotals(t, h.deps.DB)
		if t.Failed() {
			t.Fatalf("after %s (step %d)", op, i)
		}
	})
}

// tagWorkload runs steps random admissions and releases through the
// store, numbering its deals from first, calling after (if not nil)
// after each, and returns the deals still holding tags.
func tagWorkload(t testing.TB, h *harness, rng *rand.Rand, first, steps int, after func(op string, i int)) []uuid.UUID {
	t.Helper()
	s := &store{db: h.deps.DB}
	ctx := context.Background()
	clients := []address.Address{mustID(2001), mustID(2002), mustID(2003)}
	var live []uuid.UUID // admitted, not yet failed or added
	for i := first; i < first+steps; i++ {
		var op string
		switch r := rng.IntN(10); {
		case r < 4 || len(live) == 0:
			op = "admit"
			nd := &newDeal{
				params: h.deal("t.car", 100, int64(i), func(p *market.DealProposal, _ *wire.DealParams) {
					p.StartEpoch += abi.ChainEpoch(i) // distinct proposals
				}),
				clientKey:  clients[rng.IntN(len(clients))],
				collateral: big.NewInt(rng.Int64N(3_000_000_000)),
				fee:        big.NewInt(rng.Int64N(2_000_000_000)),
				escrow:     big.Mul(big.NewInt(rng.Int64N(5_000_000_000)), big.NewInt(1_000_000_007)),
			}
			nd.signedCID = testCID(fmt.Sprint("signed", i))
			if rng.IntN(2) == 0 {
				nd.space = uint64(1 + rng.IntN(1<<20))
			}
			if err := s.admit(ctx, nd, func(tagged) error { return nil }); err != nil {
				t.Fatal(err)
			}
			live = append(live, nd.params.DealUUID)
		case r < 5:
			op = "admit direct"
			nd := &newDirectDeal{id: uuid.New(), clientKey: clients[0], allocationID: chain.AllocationID(i), source: "test",
				transferType: transferFile, space: uint64(rng.IntN(2) * (1 + rng.IntN(1<<20)))}
			nd.manifest.CID, nd.manifest.Size = testCID(fmt.Sprint("piece", i)), 128
			if err := s.admitDirect(ctx, nd, func(uint64) error { return nil }); err != nil {
				t.Fatal(err)
			}
			live = append(live, nd.id)
		case r < 6:
			op = "fail"
			k := rng.IntN(len(live))
			if _, _, _, err := s.fail(ctx, live[k], "test"); err != nil {
				t.Fatal(err)
			}
			live = append(live[:k], live[k+1:]...)
		case r < 7:
			op = "add and index a piece"
			k := rng.IntN(len(live))
			if err := s.setAddedPiece(ctx, live[k], 1, 0); err != nil {
				t.Fatal(err)
			}
			if err := s.setIndexed(ctx, live[k]); err != nil {
				t.Fatal(err)
			}
			live = append(live[:k], live[k+1:]...)
		case r < 9:
			op = "land a batch"
			var batch []uuid.UUID
			for _, id := range live[:min(len(live), 1+rng.IntN(4))] {
				if err := s.advance(ctx, id, Transferred); err != nil {
					t.Fatal(err)
				}
				if err := s.queueForPublish(ctx, id); err != nil {
					t.Fatal(err)
				}
				batch = append(batch, id)
			}
			bid, err := s.recordBatch(ctx, uuid.New(), batch)
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.batch(ctx, bid)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.landBatch(ctx, b, testCID(fmt.Sprint("msg", i)), map[int]abi.DealID{0: abi.DealID(i)}); err != nil {
				t.Fatal(err)
			}
		default:
			op = "release stale tags"
			// A deal moved on without its release, as a database written
			// before releases went with their checkpoints can hold.
			if err := s.advance(ctx, live[0], IndexedAndAnnounced); err != nil {
				t.Fatal(err)
			}
			live = live[1:]
			if err := s.releaseStaleTags(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if after != nil {
			after(op, i)
		}
	}
	return live
}

// TestTagTotalsCrashChild is the process TestTagTotalsCrash kills: it runs
// the workload, then SIGKILLs itself inside a transaction, at the point
// the environment names: an admission that has read the totals, a
// release that has dropped a deal's tags but not yet their totals, or one
// that has written both but not committed. The deal it kills on is
// written to victim.txt first.
func TestTagTotalsCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestTagTotalsCrash")
	}
	at := os.Getenv(crashAtEnv)
	h := newHarness(t, dir, nil)
	s := &store{db: h.deps.DB}
	ctx := context.Background()
	tagWorkload(t, h, rand.New(rand.NewPCG(3, 4)), 0, 60, nil)
	kill := func() {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal arrives
	}
	if at == "admit" {
		nd := &newDeal{params: h.deal("t.car", 100, 999, nil), clientKey: mustID(2001), collateral: big.NewInt(1), fee: big.NewInt(1),
			escrow: big.NewInt(1), space: 1}
		nd.signedCID = testCID("signed victim")
		if err := os.WriteFile(filepath.Join(dir, "victim.txt"), []byte(nd.params.DealUUID.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = s.admit(ctx, nd, func(tagged) error { kill(); return nil })
	}
	var victim uuid.UUID // a deal holding a funds tag
	if err := h.deps.DB.QueryRow(`SELECT uuid FROM market_funds_tags ORDER BY uuid LIMIT 1`).Scan(&victim); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "victim.txt"), []byte(victim.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		var c tagChange
		if err := releaseTagsTx(ctx, tx, victim, true, true, &c); err != nil {
			t.Fatal(err)
		}
		if at == "totals" {
			if err := c.writeTx(ctx, tx); err != nil {
				t.Fatal(err)
			}
		}
		kill()
		return nil
	})
}

// A process killed in the middle of a transaction that writes tags leaves
// totals equal to the sums of the tags (the transaction's tags and totals
// are both rolled back), and the provider's start after it (which
// releases stale tags) keeps them so.
func TestTagTotalsCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for _, at := range []string{"admit", "release", "totals"} {
		t.Run(at, func(t *testing.T) {
			dir := t.TempDir()
			err := runChild(t, dir, "TestTagTotalsCrashChild", at)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child was not killed in its transaction: %v", err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "victim.txt"))
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, dir, nil)
			all := checkTagTotals(t, h.deps.DB)
			var deals, funds int
			if err := h.deps.DB.QueryRow(`SELECT count(*) FROM market_deals WHERE uuid = ?`, string(b)).Scan(&deals); err != nil {
				t.Fatal(err)
			}
			if err := h.deps.DB.QueryRow(`SELECT count(*) FROM market_funds_tags WHERE uuid = ?`, string(b)).Scan(&funds); err != nil {
				t.Fatal(err)
			}
			if want := map[string]int{"admit": 0, "release": 1, "totals": 1}[at]; deals != want || funds != want {
				t.Fatalf("deal %s: %d rows, %d funds tags after the crash, want %d (rolled back)", b, deals, funds, want)
			}
			if all == ([7]int64{}) {
				t.Fatal("the workload left no tags to check")
			}
			if err := (&store{db: h.deps.DB}).releaseStaleTags(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkTagTotals(t, h.deps.DB)
		})
	}
}

// Admissions and releases running at once from several goroutines (on
// PostgreSQL, several connections) leave totals equal to the sums, and
// the capacity check reading them admits exactly what fits.
func TestTagTotalsConcurrent(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	s := &store{db: h.deps.DB}
	ctx := context.Background()
	const workers, each, room = 6, 20, 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				nd := &newDeal{
					params: h.deal("c.car", 100, int64(w*each+i), func(p *market.DealProposal, _ *wire.DealParams) {
						p.StartEpoch += abi.ChainEpoch(w*each + i)
					}),
					clientKey: mustID(2001), collateral: big.NewInt(7), fee: big.NewInt(11), escrow: big.NewInt(13), space: 1,
				}
				nd.signedCID = testCID(fmt.Sprint("c", w, i))
				err := s.admit(ctx, nd, func(t tagged) error {
					if t.space+nd.space > room {
						return errFull
					}
					return nil
				})
				if err == errFull {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				admitted++
				mu.Unlock()
				if i%2 == 0 { // half of them give their room back at once
					if _, _, _, err := s.fail(ctx, nd.params.DealUUID, "test"); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := checkTagTotals(t, h.deps.DB)
	if all[6] > room {
		t.Fatalf("%d bytes tagged, room for %d", all[6], room)
	}
	if _, space := tagCounts(t, h); int64(space) != all[6] {
		t.Fatalf("%d space tags of a byte each, totals say %d", space, all[6])
	}
	t.Logf("%d admitted, %d holding tags", admitted, all[6])
}

var errFull = fmt.Errorf("full")

// Migration 0040 fills the totals from the tags a database already holds:
// several clients' funds tags (one from before 0034, with no client) and
// staging tags, one of them a direct deal's without funds.
func TestTagTotalsMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	source := dbtest.Source(t, dir)
	driver, rewrite, dialect := "sqlite3", func(s string) string { return s }, goose.DialectSQLite3
	if dbtest.OnPostgres() {
		driver, rewrite, dialect = "pgx", db.PostgresSchema, goose.DialectPostgres
	} else {
		source = "file:" + source + "?_foreign_keys=on"
	}
	sqldb, err := sql.Open(driver, source)
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	migrations := fstest.MapFS{}
	entries, err := os.ReadDir("../db/migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile("../db/migrations/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		migrations[e.Name()] = &fstest.MapFile{Data: []byte(rewrite(string(b)))}
	}
	gp, err := goose.NewProvider(dialect, sqldb, migrations, goose.WithAllowOutofOrder(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gp.UpTo(ctx, 39); err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if driver == "pgx" {
			q = db.Rebind(q)
		}
		if _, err := sqldb.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i, c := range []string{"f1aaaa", "f1aaaa", "f1bbbb", "", "-"} {
		id := uuid.NewString()
		exec(`INSERT INTO market_deals (uuid, signed_proposal_cid, created_at, updated_at, client_peer, client_key, proposal, piece_cid,
			piece_size, start_epoch, end_epoch, verified, data_root, is_offline, keep_unsealed, skip_ipni, checkpoint)
			VALUES (?, ?, 1, 1, 'p', 'f1aaaa', ?, 'baga', 128, 1, 2, 0, '', 0, 1, 0, 'Accepted')`, id, id, []byte{1})
		if c != "-" {
			exec(`INSERT INTO market_funds_tags (uuid, collateral_nano, collateral_atto, fee_nano, fee_atto, client, escrow_nano, escrow_atto)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, int64(i+1), int64(999_999_999), int64(2*i), int64(5), c, int64(3*i), int64(7))
		}
		exec(`INSERT INTO market_space_tags (uuid, bytes) VALUES (?, ?)`, id, int64(1000+i))
	}
	if _, err := gp.Up(ctx); err != nil {
		t.Fatal(err)
	}
	all := checkTagTotals(t, sqldb)
	if all != [7]int64{10, 4 * 999_999_999, 12, 20, 18, 28, 5010} {
		t.Fatalf("totals of every tag after the migration: %v", all)
	}
}

// On an empty database the migration writes no row, so that migrate-to's
// target stays empty.
func TestTagTotalsEmpty(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	var n int
	if err := h.deps.DB.QueryRow(`SELECT count(*) FROM market_tag_totals`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows of totals in a new database: %v", n, err)
	}
}

// testCID is a CID made from s.
func testCID(s string) cid.Cid {
	mh, err := multihash.Sum([]byte(s), multihash.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.DagCBOR, mh)
}
