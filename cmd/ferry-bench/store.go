package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/jackc/pgx/v5"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/db"
	marketpkg "github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/node"
	"github.com/ferry-fil/ferry/piece"
)

// Targets of the issue for a store at scale.
const (
	storeRequestP99 = 50 * time.Millisecond
	storeScrape     = 200 * time.Millisecond
	storeStart      = 10 * time.Second
)

// storeCommand measures ferryd's database at scale: a devnet ferryd whose
// database holds a million deals, twenty thousand sectors and a hundred
// million index entries (generated with realistic shapes, in bulk), on
// SQLite and, with --postgres, on PostgreSQL.
func storeCommand() *cli.Command {
	return &cli.Command{
		Name:  "store",
		Usage: "ferryd's requests and start over a database of many deals, sectors and index entries, on SQLite and PostgreSQL",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "deals", Value: 1_000_000, Usage: "deals in the database"},
			&cli.IntFlag{Name: "sectors", Value: 20_000, Usage: "sectors in the database"},
			&cli.Int64Flag{Name: "entries", Value: 100_000_000, Usage: "index entries (blocks of the indexed pieces)"},
			&cli.IntFlag{Name: "requests", Value: 200, Usage: "requests of each kind measured"},
			&cli.IntFlag{Name: "proposals", Value: 400, Usage: "new deals proposed (admission)"},
			&cli.StringFlag{Name: "postgres", Usage: "a PostgreSQL URL whose database the bench may fill (a new schema is made in it and dropped)"},
			&cli.BoolFlag{Name: "skip-sqlite", Usage: "measure PostgreSQL only"},
			&cli.StringFlag{Name: "dir", Usage: "working directory (default: a new temporary directory, removed afterwards)"},
		},
		Action: func(c *cli.Context) error {
			dir := c.String("dir")
			if dir == "" {
				d, err := os.MkdirTemp("", "ferry-bench-store-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				dir = d
			}
			shape := storeShape{deals: c.Int("deals"), sectors: c.Int("sectors"), entries: c.Int64("entries")}
			if shape.deals < 100 || shape.sectors < 1 || shape.entries < 0 {
				return errors.New("store: --deals must be at least 100 and --sectors at least 1")
			}
			out := c.App.Writer
			var results []storeResult
			if !c.Bool("skip-sqlite") {
				r, err := benchStore(c.Context, out, filepath.Join(dir, "sqlite"), "", shape, c.Int("requests"), c.Int("proposals"))
				if err != nil {
					return err
				}
				results = append(results, r)
			}
			if u := c.String("postgres"); u != "" {
				schema := fmt.Sprintf("ferry_bench_%d", time.Now().UnixNano())
				if err := pgAdmin(c.Context, u, `CREATE SCHEMA `+schema); err != nil {
					return err
				}
				defer pgAdmin(context.Background(), u, `DROP SCHEMA `+schema+` CASCADE`)
				r, err := benchStore(c.Context, out, filepath.Join(dir, "postgres"), withSearchPath(u, schema), shape, c.Int("requests"), c.Int("proposals"))
				if err != nil {
					return err
				}
				results = append(results, r)
			}
			printStoreResults(out, shape, results)
			return nil
		},
	}
}

// storeShape is how much the generated database holds.
type storeShape struct {
	deals, sectors int
	entries        int64
}

// storeResult is what one database measured.
type storeResult struct {
	dialect                         string
	generate                        time.Duration
	start                           time.Duration
	unfinished                      int
	acceptRate                      float64
	accept, list, deep, show, block latencies
	scrape                          latencies
}

// latencies are sorted request times.
type latencies []time.Duration

func (l latencies) p(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[min(len(l)-1, int(float64(len(l))*q))]
}

func (l latencies) String() string {
	return fmt.Sprintf("p50 %s, p99 %s", l.p(0.5).Round(10*time.Microsecond), l.p(0.99).Round(10*time.Microsecond))
}

func measure(n int, f func(i int) error) (latencies, error) {
	out := make(latencies, n)
	for i := range n {
		t0 := time.Now()
		if err := f(i); err != nil {
			return nil, err
		}
		out[i] = time.Since(t0)
	}
	slices.Sort(out)
	return out, nil
}

// benchStore runs a devnet ferryd in dir on the database dbURL ("" for the
// repo's SQLite file), fills the database, restarts ferryd and measures
// its requests.
func benchStore(ctx context.Context, out io.Writer, dir, dbURL string, shape storeShape, requests, proposals int) (storeResult, error) {
	var err error
	res := storeResult{dialect: "sqlite"}
	if dbURL != "" {
		res.dialect = "postgres"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	cfg := node.DefaultConfig()
	cfg.Database.URL = dbURL
	cfg.Chain.DevnetListen = "127.0.0.1:0"
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.API.Listen = freeLoopbackAddr()
	cfg.Libp2p.ListenAddresses = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Market.MaxPublishDealsFee = "0.000001"
	cfg.Market.StagingCapacity = "1000000TiB"
	cfg.IPNI.Enable = false
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		return res, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), buf.Bytes(), 0o600); err != nil {
		return res, err
	}
	quiet := node.Options{Logf: func(string, ...any) {}}

	// A first start makes the schema, the devnet and its miner.
	fmt.Fprintf(out, "[%s] first start of a devnet ferryd in %s\n", res.dialect, dir)
	d, err := node.Start(ctx, dir, quiet)
	if err != nil {
		return res, fmt.Errorf("store: starting ferryd: %w", err)
	}
	// The miner exists; the restart below is the one measured.
	miner := d.Miner
	source := d.Config.DatabaseSource(d.Repo)
	d.Close()

	t0 := time.Now()
	gen, err := generateStore(ctx, out, source, miner, shape)
	if err != nil {
		return res, err
	}
	res.generate, res.unfinished = time.Since(t0), gen.unfinished
	fmt.Fprintf(out, "[%s] generated in %s\n", res.dialect, res.generate.Round(time.Second))

	t0 = time.Now()
	d, err = node.Start(ctx, dir, quiet)
	if err != nil {
		return res, fmt.Errorf("store: restarting ferryd: %w", err)
	}
	defer d.Close()
	res.start = time.Since(t0)
	fmt.Fprintf(out, "[%s] ferryd started in %s, resuming %d unfinished deals\n", res.dialect, res.start.Round(time.Millisecond), gen.unfinished)

	f, closer, err := api.Dial(ctx, dir)
	if err != nil {
		return res, err
	}
	defer closer()
	rng := rand.New(rand.NewPCG(7, 8))
	states := []string{marketpkg.StateActive, marketpkg.StateFailed, marketpkg.StateComplete, marketpkg.StateEnded}
	if res.list, err = measure(requests, func(i int) error {
		ds, err := f.DealList(ctx, marketpkg.DealFilter{State: states[i%len(states)], Limit: 100})
		if err == nil && len(ds) == 0 {
			err = fmt.Errorf("no %s deals listed", states[i%len(states)])
		}
		return err
	}); err != nil {
		return res, fmt.Errorf("store: deal list: %w", err)
	}
	if res.deep, err = measure(requests, func(i int) error {
		// The page after deal number deals/2 (newest first): keyset paging.
		mid := shape.deals/2 + i
		_, err := f.DealList(ctx, marketpkg.DealFilter{Limit: 100, After: &marketpkg.DealCursor{CreatedAt: gen.createdAt(mid), UUID: gen.uuid(mid).String()}})
		return err
	}); err != nil {
		return res, fmt.Errorf("store: deep deal list: %w", err)
	}
	if res.show, err = measure(requests, func(int) error {
		_, err := f.DealShow(ctx, gen.uuid(rng.IntN(shape.deals)))
		return err
	}); err != nil {
		return res, fmt.Errorf("store: deal show: %w", err)
	}
	if gen.entries > 0 {
		if res.block, err = measure(requests, func(int) error {
			locs, err := d.Index.PiecesContaining(ctx, gen.multihash(rng.Int64N(gen.entries)))
			if err == nil && len(locs) != 1 {
				err = fmt.Errorf("a block found in %d pieces", len(locs))
			}
			return err
		}); err != nil {
			return res, fmt.Errorf("store: block lookup: %w", err)
		}
	}
	metricsURL := "http://" + d.Config.API.Listen + "/metrics"
	if res.scrape, err = measure(max(requests/10, 5), func(int) error {
		resp, err := http.Get(metricsURL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && !bytes.Contains(b, []byte("ferry_deals{")) {
			err = errors.New("no ferry_deals in the scrape")
		}
		return err
	}); err != nil {
		return res, fmt.Errorf("store: /metrics: %w", err)
	}

	// Admission of new deals, proposed over libp2p as clients do.
	client, clientID, err := acceptFundClient(ctx, d)
	if err != nil {
		return res, err
	}
	deals, err := acceptProposals(ctx, d, client, clientID, proposals)
	if err != nil {
		return res, err
	}
	h, err := newClientHost(ctx, d)
	if err != nil {
		return res, err
	}
	defer h.Close()
	t0 = time.Now()
	if res.accept, err = measure(len(deals), func(i int) error {
		r, err := acceptPropose(ctx, h, d.Host.ID(), deals[i])
		if err == nil && !r.Accepted {
			err = fmt.Errorf("proposal rejected: %s", r.Message)
		}
		return err
	}); err != nil {
		return res, fmt.Errorf("store: admission: %w", err)
	}
	res.acceptRate = float64(len(deals)) / time.Since(t0).Seconds()
	return res, nil
}

func printStoreResults(out io.Writer, shape storeShape, rs []storeResult) {
	fmt.Fprintf(out, "\n%d deals, %d sectors, %d index entries\n", shape.deals, shape.sectors, shape.entries)
	fmt.Fprintf(out, "%-30s %-28s %-28s %s\n", "", "sqlite", "postgres", "target")
	row := func(name string, target string, f func(storeResult) string) {
		cols := map[string]string{}
		for _, r := range rs {
			cols[r.dialect] = f(r)
		}
		fmt.Fprintf(out, "%-30s %-28s %-28s %s\n", name, cols["sqlite"], cols["postgres"], target)
	}
	p99 := "p99 < " + storeRequestP99.String()
	row("generate", "", func(r storeResult) string { return r.generate.Round(time.Second).String() })
	row("start (resume unfinished)", "< "+storeStart.String(), func(r storeResult) string {
		return fmt.Sprintf("%s (%d deals)", r.start.Round(time.Millisecond), r.unfinished)
	})
	row("admission (libp2p proposal)", p99, func(r storeResult) string { return r.accept.String() })
	row("accepts/s, one client", "postgres >= 50% of sqlite", func(r storeResult) string { return fmt.Sprintf("%.0f", r.acceptRate) })
	row("deal list --state (page)", p99, func(r storeResult) string { return r.list.String() })
	row("deal list, page at the middle", p99, func(r storeResult) string { return r.deep.String() })
	row("deal show", p99, func(r storeResult) string { return r.show.String() })
	row("multihash lookup", p99, func(r storeResult) string { return r.block.String() })
	row("/metrics scrape", "< "+storeScrape.String(), func(r storeResult) string { return r.scrape.String() })
	if len(rs) == 2 && rs[0].acceptRate > 0 {
		fmt.Fprintf(out, "accepts/s postgres/sqlite: %.2f\n", rs[1].acceptRate/rs[0].acceptRate)
	}
}

// generated is what generateStore wrote, to pick request arguments from.
type generated struct {
	start      time.Time // deal i was created start + i seconds
	seed       uint64
	unfinished int
	entries    int64
}

// createdAt is when deal i was created.
func (g generated) createdAt(i int) time.Time { return g.start.Add(time.Duration(i) * time.Second) }

// uuid is deal i's UUID (deal 0 is the oldest).
func (g generated) uuid(i int) uuid.UUID {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], g.seed)
	binary.BigEndian.PutUint64(b[8:], uint64(i))
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return uuid.UUID(b)
}

// pieceCID is deal i's piece CID.
func (g generated) pieceCID(i int) cid.Cid {
	var c [32]byte
	binary.BigEndian.PutUint64(c[:], g.seed)
	binary.BigEndian.PutUint64(c[8:], uint64(i))
	return piece.CIDv1(sha256.Sum256(c[:16]))
}

// signedCID is the CID of deal i's signed proposal.
func (g generated) signedCID(i int) cid.Cid {
	mh, _ := multihash.Sum([]byte(g.uuid(i).String()), multihash.SHA2_256, -1)
	return cid.NewCidV1(cid.DagCBOR, mh)
}

// multihash is the multihash of index entry i: sha2-256 digests in
// increasing order, so the bulk load appends to the B-trees (the lookups
// then read trees of the shape random inserts leave, only fuller).
func (g generated) multihash(i int64) multihash.Multihash {
	var d [32]byte
	binary.BigEndian.PutUint64(d[:], uint64(i)*0x9e3779b9)
	h := sha256.Sum256(d[:8])
	copy(d[8:], h[:24])
	mh, _ := multihash.Encode(d[:], multihash.SHA2_256)
	return mh
}

// The deals' mix: most are complete or ended, some failed, a few still in
// the pipeline (offline deals waiting for their data, which ferryd resumes
// at start).
func dealKind(i int) (cp marketpkg.Checkpoint, retry marketpkg.RetryState, ended bool) {
	switch r := i % 100; {
	case r < 2:
		return marketpkg.Accepted, marketpkg.RetryNone, false
	case r < 8:
		return marketpkg.Checkpoint(1 + i%5), marketpkg.RetryFatal, false
	case r < 28:
		return marketpkg.Complete, marketpkg.RetryNone, true
	}
	return marketpkg.Complete, marketpkg.RetryNone, false
}

// generateStore fills the database at source with shape's deals (with
// their logs and, while in the pipeline, their tags), sectors holding
// their pieces, and the index of those pieces.
func generateStore(ctx context.Context, out io.Writer, source string, miner address.Address, shape storeShape) (generated, error) {
	g := generated{seed: 0xfe77, entries: shape.entries}
	client, _ := address.NewIDAddress(1001)
	// Fifty 512 MiB pieces fill a 32 GiB sector.
	const pieceSize = abi.PaddedPieceSize(512 << 20)
	root := "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
	prop := market.ClientDealProposal{
		Proposal: market.DealProposal{
			PieceCID: g.pieceCID(0), PieceSize: pieceSize, Client: client, Provider: miner,
			StartEpoch: 100000, EndEpoch: 100000 + 540*2880, StoragePricePerEpoch: big.NewInt(1),
			ProviderCollateral: big.NewInt(1_000_000), ClientCollateral: big.Zero(),
		},
		ClientSignature: crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: bytes.Repeat([]byte{7}, 65)},
	}
	label, _ := market.NewLabelFromString(root)
	prop.Proposal.Label = label
	var pbuf bytes.Buffer
	if err := prop.MarshalCBOR(&pbuf); err != nil {
		return g, err
	}
	w, err := openBulk(ctx, source)
	if err != nil {
		return g, err
	}
	defer w.close()

	g.start = time.Now().Add(-time.Duration(shape.deals) * time.Second).Truncate(time.Second)
	now := g.start.UnixNano()
	perSector := (shape.deals + shape.sectors - 1) / shape.sectors
	fmt.Fprintf(out, "generating %d deals (with 4 log lines each) in %d sectors\n", shape.deals, shape.sectors)
	sectors := w.table("sealing_sectors", "number", "state", "seal_proof", "opened_at", "updated_at", "node")
	var nodeID string
	if err := w.db.QueryRowContext(ctx, `SELECT id FROM cluster_nodes ORDER BY started_at DESC LIMIT 1`).Scan(&nodeID); err != nil {
		return g, fmt.Errorf("reading the node ID: %w", err)
	}
	// Sectors first: their pieces refer to them.
	for s := 1; s <= shape.sectors; s++ {
		if err := sectors.add(int64(s), "Proving", int64(abi.RegisteredSealProof_StackedDrg32GiBV1_1), now, now, nodeID); err != nil {
			return g, err
		}
	}
	if err := sectors.flush(); err != nil {
		return g, err
	}
	deals := w.table("market_deals", "uuid", "signed_proposal_cid", "created_at", "updated_at", "client_peer", "client_key", "proposal",
		"piece_cid", "piece_size", "start_epoch", "end_epoch", "verified", "data_root", "is_offline", "transfer_type", "staging_path",
		"keep_unsealed", "skip_ipni", "checkpoint", "retry", "error", "chain_deal_id", "sector", "sector_offset", "sealing_state",
		"ended_at", "end_reason", "piece_released", "provider", "price")
	logs := w.table("market_deal_logs", "uuid", "at", "text")
	tags := w.table("market_funds_tags", "uuid", "collateral_nano", "collateral_atto", "fee_nano", "fee_atto", "client", "escrow_nano", "escrow_atto")
	pieces := w.table("sealing_pieces", "sector", "piece_offset", "size", "kind", "status", "piece_cid", "deal_uuid", "deal_id",
		"start_epoch", "end_epoch", "keep_unsealed")
	indexed := w.table("index_pieces", "id", "piece_cid", "state", "blocks", "aggregate", "indexed_at")
	var nIndexed int64
	for i := range shape.deals {
		cp, retry, ended := dealKind(i)
		id := g.uuid(i).String()
		pc := g.pieceCID(i).String()
		at := now + int64(i)*int64(time.Second)
		var endedAt int64
		reason := ""
		if ended {
			endedAt, reason = at+int64(time.Hour), marketpkg.EndExpired
		}
		sector, off := int64(-1), int64(0)
		if cp >= marketpkg.AddedPiece && retry != marketpkg.RetryFatal {
			sector, off = int64(1+i/perSector), int64(i%perSector)
		}
		if err := deals.add(id, g.signedCID(i).String(), at, at, "12D3KooWClient", client.String(), pbuf.Bytes(), pc, int64(pieceSize),
			int64(100000), int64(100000+540*2880), false, root, cp == marketpkg.Accepted, "", "staging/"+id+".car",
			true, false, cp.String(), string(retry), "", int64(i+1), sector, off*int64(pieceSize), "Proving", endedAt, reason, ended,
			miner.String(), "1"); err != nil {
			return g, err
		}
		for _, line := range []string{"accepted from peer 12D3KooWClient", "checkpoint Transferred", "checkpoint Published", "checkpoint " + cp.String()} {
			if err := logs.add(id, at, line); err != nil {
				return g, err
			}
		}
		if cp < marketpkg.PublishConfirmed && retry != marketpkg.RetryFatal {
			g.unfinished++
			if err := tags.add(id, int64(0), int64(1_000_000), int64(0), int64(10), client.String(), int64(1000), int64(0)); err != nil {
				return g, err
			}
		}
		if sector > 0 {
			if err := pieces.add(sector, off*int64(pieceSize), int64(pieceSize), "deal", "done", pc, id, int64(i+1), int64(100000), int64(100000+540*2880), true); err != nil {
				return g, err
			}
			nIndexed++
			if err := indexed.add(nIndexed, pc, "indexed", shape.entries/int64(shape.deals), false, at/1e9); err != nil {
				return g, err
			}
		}
	}
	for _, t := range []*bulkTable{deals, logs, tags, pieces, indexed} {
		if err := t.flush(); err != nil {
			return g, err
		}
	}
	if nIndexed > 0 && shape.entries > 0 {
		fmt.Fprintf(out, "generating %d index entries over %d pieces\n", shape.entries, nIndexed)
		if err := w.dropIndex("index_blocks_piece"); err != nil {
			return g, err
		}
		blocks := w.table("index_blocks", "mh", "piece_id", "section_offset", "size")
		for e := range shape.entries {
			if err := blocks.add([]byte(g.multihash(e)), 1+e%nIndexed, (e/nIndexed)*4096+59, int64(4000)); err != nil {
				return g, err
			}
			if e%10_000_000 == 9_999_999 {
				fmt.Fprintf(out, "  %d entries\n", e+1)
				if err := w.commit(); err != nil { // keeps SQLite's journal small
					return g, err
				}
			}
		}
		if err := blocks.flush(); err != nil {
			return g, err
		}
		if err := w.exec(`CREATE INDEX index_blocks_piece ON index_blocks (piece_id)`); err != nil {
			return g, err
		}
	}
	return g, w.finish()
}

// bulk loads rows fast: on SQLite in one transaction of multi-row
// INSERTs, on PostgreSQL with COPY.
type bulk struct {
	ctx context.Context
	db  *sql.DB
	tx  *sql.Tx
	pg  *pgx.Conn
}

func openBulk(ctx context.Context, source string) (*bulk, error) {
	sqldb, err := db.Open(ctx, source)
	if err != nil {
		return nil, err
	}
	b := &bulk{ctx: ctx, db: sqldb}
	if db.IsURL(source) {
		if b.pg, err = pgx.Connect(ctx, source); err != nil {
			sqldb.Close()
			return nil, fmt.Errorf("store: connecting for COPY: %w", err)
		}
		return b, nil
	}
	if b.tx, err = sqldb.BeginTx(ctx, nil); err != nil {
		sqldb.Close()
		return nil, err
	}
	return b, nil
}

func (b *bulk) exec(q string) error {
	var err error
	if b.tx != nil {
		_, err = b.tx.ExecContext(b.ctx, q)
	} else {
		_, err = b.pg.Exec(b.ctx, q)
	}
	if err != nil {
		return fmt.Errorf("store: %s: %w", q, err)
	}
	return nil
}

func (b *bulk) dropIndex(name string) error { return b.exec(`DROP INDEX ` + name) }

// commit ends SQLite's transaction and begins the next.
func (b *bulk) commit() error {
	if b.tx == nil {
		return nil
	}
	if err := b.tx.Commit(); err != nil {
		return err
	}
	var err error
	b.tx, err = b.db.BeginTx(b.ctx, nil)
	return err
}

// finish commits and refreshes the planner's statistics, as a database
// that grew in service has them.
func (b *bulk) finish() error {
	if b.tx != nil {
		if err := b.tx.Commit(); err != nil {
			return err
		}
		b.tx = nil
		_, err := b.db.ExecContext(b.ctx, `ANALYZE`)
		return err
	}
	_, err := b.pg.Exec(b.ctx, `ANALYZE`)
	return err
}

func (b *bulk) close() {
	if b.tx != nil {
		b.tx.Rollback()
	}
	if b.pg != nil {
		b.pg.Close(context.Background())
	}
	b.db.Close()
}

// bulkTable buffers the rows of one table.
type bulkTable struct {
	b    *bulk
	name string
	cols []string
	rows [][]any
}

func (b *bulk) table(name string, cols ...string) *bulkTable {
	return &bulkTable{b: b, name: name, cols: cols}
}

func (t *bulkTable) add(vals ...any) error {
	if len(vals) != len(t.cols) {
		return fmt.Errorf("store: %d values for the %d columns of %s", len(vals), len(t.cols), t.name)
	}
	for i, v := range vals {
		if f, ok := v.(bool); ok { // flags are integers on both databases
			vals[i] = int64(0)
			if f {
				vals[i] = int64(1)
			}
		}
	}
	t.rows = append(t.rows, vals)
	if len(t.rows) >= 50_000 {
		return t.flush()
	}
	return nil
}

func (t *bulkTable) flush() error {
	if len(t.rows) == 0 {
		return nil
	}
	defer func() { t.rows = t.rows[:0] }()
	if t.b.pg != nil {
		if _, err := t.b.pg.CopyFrom(t.b.ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromRows(t.rows)); err != nil {
			return fmt.Errorf("store: copying into %s: %w", t.name, err)
		}
		return nil
	}
	per := max(1, 30_000/len(t.cols))
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", len(t.cols)), ",") + ")"
	for start := 0; start < len(t.rows); start += per {
		chunk := t.rows[start:min(start+per, len(t.rows))]
		args := make([]any, 0, len(chunk)*len(t.cols))
		for _, r := range chunk {
			args = append(args, r...)
		}
		q := `INSERT INTO ` + t.name + ` (` + strings.Join(t.cols, ",") + `) VALUES ` + strings.TrimSuffix(strings.Repeat(one+",", len(chunk)), ",")
		if _, err := t.b.tx.ExecContext(t.b.ctx, q, args...); err != nil {
			return fmt.Errorf("store: writing %s: %w", t.name, err)
		}
	}
	return nil
}

// pgAdmin runs one statement on the server at url.
func pgAdmin(ctx context.Context, url, stmt string) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("store: connecting to PostgreSQL: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("store: %s: %w", stmt, err)
	}
	return nil
}

// withSearchPath returns url with schema as its search path.
func withSearchPath(url, schema string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema
}

// newClientHost is a libp2p client connected to d.
func newClientHost(ctx context.Context, d *node.Node) (host.Host, error) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		return nil, fmt.Errorf("store: client host: %w", err)
	}
	if err := h.Connect(ctx, peer.AddrInfo{ID: d.Host.ID(), Addrs: d.Host.Addrs()}); err != nil {
		h.Close()
		return nil, fmt.Errorf("store: connecting to ferryd: %w", err)
	}
	return h, nil
}
