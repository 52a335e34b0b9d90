package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
	"github.com/urfave/cli/v2"

	ferryauth "github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/db"
	fmarket "github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/node"
	"github.com/ferry-fil/ferry/piece"
)

// uiTarget is issue 14's bound on a Deals page render at a million deals.
const uiTarget = 100 * time.Millisecond

func uiCommand() *cli.Command {
	return &cli.Command{
		Name:  "ui",
		Usage: "the web UI's Deals page (first page, filtered pages) rendered by a devnet ferryd holding a million deals",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "deals", Value: 1_000_000, Usage: "deals in the database"},
			&cli.IntFlag{Name: "requests", Value: 200, Usage: "renders of each page measured"},
			&cli.StringFlag{Name: "repo", Usage: "ferryd repo to use, kept between runs (default: a new temporary one); its deals are generated once"},
		},
		Action: func(c *cli.Context) error {
			n, reqs := c.Int("deals"), c.Int("requests")
			if n < 1 || reqs < 1 {
				return errors.New("ui: --deals and --requests must be at least 1")
			}
			dir := c.String("repo")
			if dir == "" {
				tmp, err := os.MkdirTemp("", "ferry-bench-ui-*")
				if err != nil {
					return fmt.Errorf("ui: %w", err)
				}
				defer os.RemoveAll(tmp)
				dir = tmp
			}
			return benchUI(c.Context, c.App.Writer, dir, n, reqs)
		},
	}
}

func benchUI(ctx context.Context, out io.Writer, dir string, n, reqs int) error {
	cfg := node.DefaultConfig()
	cfg.Chain.DevnetListen = "127.0.0.1:0"
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.API.Listen = freeLoopbackAddr()
	cfg.Sealing.MinerAPIListen = "127.0.0.1:0"
	cfg.Libp2p.ListenAddresses = []string{"/ip4/127.0.0.1/tcp/0"}
	// The generated deals are on no chain: keep the deal-end watcher
	// from looking them up while the pages are measured.
	cfg.Market.DealEndCheckInterval = node.Duration(1000 * time.Hour)
	cfg.Market.EndChecksPerPass = 1
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		return fmt.Errorf("ui: encoding config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("ui: writing config: %w", err)
	}
	clients, err := uiGenerate(ctx, out, filepath.Join(dir, "ferry.db"), n)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "starting a devnet ferryd in %s\n", dir)
	d, err := node.Start(ctx, dir, node.Options{Logf: func(string, ...any) {}})
	if err != nil {
		return fmt.Errorf("ui: starting ferryd: %w", err)
	}
	defer d.Close()
	secret, err := d.Repo.Secret()
	if err != nil {
		return err
	}
	token, err := ferryauth.Mint(secret, ferryauth.All()...)
	if err != nil {
		return err
	}
	base := "http://" + cfg.API.Listen
	hc, err := uiLogin(ctx, base, token)
	if err != nil {
		return err
	}
	// A cursor deep in the listing: the first deal of a page a third of
	// the way down, as paging by keyset reaches it.
	deals, err := d.Provider.Deals(ctx, fmarket.DealFilter{Limit: 1, Offset: n / 3})
	if err != nil {
		return err
	}
	deep := deals[len(deals)-1]
	pages := []struct{ name, query string }{
		{"first page", ""},
		{"filtered: one client, Complete", "client=" + clients[3] + "&checkpoint=Complete"},
		{"filtered: failed", "state=failed"},
		{"filtered: one client, a week", "client=" + clients[5] + "&from=" + time.Now().AddDate(0, 0, -40).Format("2006-01-02") +
			"&to=" + time.Now().AddDate(0, 0, -34).Format("2006-01-02")},
		{"page a third of the way down", "after=" + fmt.Sprintf("%d_%s", deep.CreatedAt.UnixNano(), deep.UUID)},
	}
	fmt.Fprintf(out, "rendering each page %d times\n", reqs)
	worst := time.Duration(0)
	for _, p := range pages {
		lat := make([]time.Duration, 0, reqs)
		rows := 0
		for i := 0; i < reqs+5; i++ {
			t0 := time.Now()
			body, err := uiGet(ctx, hc, base+"/deals?"+p.query)
			el := time.Since(t0)
			if err != nil {
				return fmt.Errorf("ui: %s: %w", p.name, err)
			}
			if i < 5 {
				continue // warm-up
			}
			lat = append(lat, el)
			rows = bytes.Count(body, []byte("<tr data-deal="))
		}
		slices.Sort(lat)
		p99 := lat[min(len(lat)-1, len(lat)*99/100)]
		if p.name == pages[0].name || p.name == pages[1].name {
			worst = max(worst, p99)
		}
		fmt.Fprintf(out, "%-32s %3d rows  p50 %7s  p99 %7s\n", p.name+":", rows, lat[len(lat)/2].Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
	}
	fmt.Fprintf(out, "target: p99 < %s for the first and a filtered page\nratio:  %.2f (worst p99 / target)\n", uiTarget, float64(worst)/float64(uiTarget))
	return nil
}

// uiGenerate writes n deals of realistic shape into the database at path
// (unless it holds that many already) and returns the client addresses.
// Deals are spread over 90 days from 100 clients: most Complete, some
// failed, ended or still waiting for their data (offline, so that the
// daemon has nothing to do for them); pieces of ended and failed deals are
// released already, as they would be by then.
func uiGenerate(ctx context.Context, out io.Writer, path string, n int) ([]string, error) {
	r := rand.New(rand.NewPCG(14, 1))
	var clients []string
	var peers []string
	for i := 0; i < 100; i++ {
		var k [20]byte
		for j := range k {
			k[j] = byte(r.Uint32())
		}
		a, err := address.NewSecp256k1Address(k[:])
		if err != nil {
			return nil, err
		}
		clients = append(clients, a.String())
		mh, _ := multihash.Sum(k[:], multihash.IDENTITY, -1)
		peers = append(peers, peer.ID(mh).String())
	}
	sqldb, err := db.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer sqldb.Close()
	var have int
	if err := sqldb.QueryRowContext(ctx, `SELECT count(*) FROM market_deals`).Scan(&have); err != nil {
		return nil, fmt.Errorf("ui: counting deals: %w", err)
	}
	if have >= n {
		fmt.Fprintf(out, "the database holds %d deals already\n", have)
		return clients, nil
	}
	fmt.Fprintf(out, "generating %d deals\n", n-have)
	started := time.Now()
	provider, _ := address.NewIDAddress(1001)
	end := time.Now()
	span := 90 * 24 * time.Hour
	const batch = 10_000
	for done := have; done < n; {
		tx, err := sqldb.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO market_deals (uuid, signed_proposal_cid, created_at, updated_at, client_peer,
			client_key, proposal, piece_cid, piece_size, start_epoch, end_epoch, verified, data_root, is_offline, transfer_type,
			transfer_size, bytes_received, keep_unsealed, skip_ipni, checkpoint, retry, error, publish_cid, chain_deal_id, sector,
			sector_offset, sealing_state, ended_at, end_reason, piece_released)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			tx.Rollback()
			return nil, err
		}
		for i := 0; i < batch && done < n; i, done = i+1, done+1 {
			if err := uiInsert(ctx, stmt, r, end.Add(-time.Duration(float64(span)*float64(n-done)/float64(n))), clients, peers, provider); err != nil {
				tx.Rollback()
				return nil, fmt.Errorf("ui: generating deal %d: %w", done, err)
			}
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			return nil, err
		}
		if done%100_000 == 0 {
			fmt.Fprintf(out, "  %d deals (%s)\n", done, time.Since(started).Round(time.Second))
		}
	}
	if _, err := sqldb.ExecContext(ctx, `ANALYZE`); err != nil {
		return nil, fmt.Errorf("ui: analyzing the database: %w", err)
	}
	fmt.Fprintf(out, "generated in %s\n", time.Since(started).Round(time.Second))
	return clients, nil
}

// uiInsert writes one deal created at created.
func uiInsert(ctx context.Context, stmt *sql.Stmt, r *rand.Rand, created time.Time, clients, peers []string, provider address.Address) error {
	var root [32]byte
	for j := range root {
		root[j] = byte(r.Uint32())
	}
	pc := piece.CIDv1(root)
	sum := sha256.Sum256(root[:])
	mh, _ := multihash.Encode(sum[:], multihash.SHA2_256)
	dataRoot := cid.NewCidV1(cid.Raw, mh)
	id := uuid.New()
	spcHash := sha256.Sum256(id[:])
	smh, _ := multihash.Encode(spcHash[:], multihash.SHA2_256)
	spc := cid.NewCidV1(cid.DagCBOR, smh)
	ci := r.IntN(len(clients))
	client, _ := address.NewFromString(clients[ci])
	size := abi.PaddedPieceSize(1) << (20 + r.IntN(16)) // 1 MiB … 32 GiB
	start := abi.ChainEpoch(100_000 + r.IntN(100_000))
	label, _ := market.NewLabelFromString(dataRoot.String())
	prop := market.ClientDealProposal{
		Proposal: market.DealProposal{PieceCID: pc, PieceSize: size, Client: client, Provider: provider, Label: label,
			StartEpoch: start, EndEpoch: start + 518_400, StoragePricePerEpoch: big.NewInt(int64(r.IntN(1000))),
			ProviderCollateral: big.NewInt(1_000_000), ClientCollateral: big.Zero(), VerifiedDeal: r.IntN(4) == 0},
		ClientSignature: crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: make([]byte, 65)},
	}
	var buf bytes.Buffer
	if err := prop.MarshalCBOR(&buf); err != nil {
		return err
	}
	// 90% complete, 4% ended, 6% failed, 0.1% waiting for their data.
	cp, retry, errText, endedAt, endReason := fmarket.Complete, fmarket.RetryNone, "", int64(0), ""
	offline, sector, dealID, pubCid := false, int64(r.IntN(40_000)), int64(r.IntN(10_000_000)), spc.String()
	switch k := r.IntN(100); {
	case k < 4:
		endedAt, endReason = created.Add(200*24*time.Hour).UnixNano(), fmarket.EndExpired
	case k < 10 && r.IntN(60) == 0:
		cp, offline, sector, dealID, pubCid = fmarket.Accepted, true, -1, 0, ""
	case k < 10:
		cp, retry, errText = fmarket.Transferred, fmarket.RetryFatal, "transfer: HTTP status 404 Not Found"
		sector, dealID, pubCid = -1, 0, ""
	}
	tsize := uint64(size) / 128 * 127
	_, err := stmt.ExecContext(ctx, id.String(), spc.String(), created.UnixNano(), created.Add(time.Hour).UnixNano(), peers[ci],
		client.String(), buf.Bytes(), pc.String(), int64(size), int64(start), int64(start+518_400), prop.Proposal.VerifiedDeal,
		dataRoot.String(), offline, "http", int64(tsize), int64(tsize), true, false, cp, retry, errText, pubCid, dealID, sector,
		int64(0), "Proving", endedAt, endReason, true)
	return err
}

// freeLoopbackAddr picks a free port on loopback for the operator API
// (the bench needs to know it before the daemon starts).
func freeLoopbackAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:1288"
	}
	defer l.Close()
	return l.Addr().String()
}

var uiNonce = regexp.MustCompile(`name="nonce" value="([^"]+)"`)

// uiLogin logs in to the UI at base with token and returns a client that
// holds the session.
func uiLogin(ctx context.Context, base, token string) (*http.Client, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Jar: jar, Timeout: time.Minute}
	page, err := uiGet(ctx, hc, base+"/login")
	if err != nil {
		return nil, fmt.Errorf("ui: login page: %w", err)
	}
	m := uiNonce.FindSubmatch(page)
	if m == nil {
		return nil, errors.New("ui: the login page has no form nonce")
	}
	resp, err := hc.PostForm(base+"/login", url.Values{"token": {token}, "nonce": {string(m[1])}})
	if err != nil {
		return nil, fmt.Errorf("ui: logging in: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		return nil, fmt.Errorf("ui: logging in: %s at %s", resp.Status, resp.Request.URL)
	}
	return hc, nil
}

func uiGet(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return b, nil
}
