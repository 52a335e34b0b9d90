package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
	"github.com/ferry-fil/ferry/internal/cliutil/clitest"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/node"
)

// fillRepoDB writes a repo database with rows in every table: a deal at
// each checkpoint (one failed, one ended), their tags and logs, a publish
// batch, the ask, sectors with pieces, an indexed piece, IPNI ads, chain
// messages. Values are shaped like the real ones where it matters to the
// copy: unix nanoseconds, NULLs, blobs that are not text.
func fillRepoDB(t *testing.T, sqldb *sql.DB) {
	t.Helper()
	ctx := context.Background()
	const now = int64(1_767_225_600_123_456_789)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := sqldb.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	blob := []byte{0, 0xff, 0xfe, 'x', 0}
	for i := market.Accepted; i <= market.Complete+2; i++ {
		cp, retry, ended := i, "", int64(0)
		switch {
		case i == market.Complete+1:
			cp, retry = market.Transferred, "fatal"
		case i == market.Complete+2:
			cp, ended = market.Complete, now+9
		}
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		var batch any // NULL until published
		if cp >= market.Published {
			batch = int64(1)
		}
		exec(`INSERT INTO market_deals (uuid, signed_proposal_cid, created_at, updated_at, client_peer, client_key, proposal,
			piece_cid, piece_size, start_epoch, end_epoch, verified, data_root, is_offline, transfer_params, keep_unsealed,
			skip_ipni, checkpoint, retry, batch_id, ended_at, provider, price)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, fmt.Sprintf("bafy-signed-%d", i), now+int64(i), now+int64(i)+1, "12D3KooWpeer", "f1client", blob,
			"baga6ea4seaq", int64(34359738368), 100000+int64(i), int64(1_600_000), i%2 == 0, "bafyroot", i == market.Accepted,
			[]byte(`{"URL":"http://127.0.0.1/x"}`), true, false, cp, retry, batch, ended, "f01000", "1000")
		exec(`INSERT INTO market_deal_logs (uuid, at, text) VALUES (?, ?, ?)`, id, now, "checkpoint "+cp.String())
		if cp < market.PublishConfirmed && retry == "" {
			exec(`INSERT INTO market_funds_tags (uuid, collateral_nano, collateral_atto, fee_nano, fee_atto, client, escrow_nano, escrow_atto)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, int64(5_000_000_000), int64(999_999_999), int64(1), int64(2), "f1client", int64(3), int64(4))
		}
		if cp < market.AddedPiece && retry == "" {
			exec(`INSERT INTO market_space_tags (uuid, bytes) VALUES (?, ?)`, id, int64(34359738368))
		}
	}
	// The tags' totals, as the market keeps them: the client's row and the
	// row of every tag.
	for _, client := range []string{"f1client", "*"} {
		exec(`INSERT INTO market_tag_totals (client, collateral_nano, collateral_atto, fee_nano, fee_atto, escrow_nano, escrow_atto, space)
			SELECT ?, sum(collateral_nano), sum(collateral_atto), sum(fee_nano), sum(fee_atto), sum(escrow_nano), sum(escrow_atto),
				CASE WHEN ? = '*' THEN (SELECT sum(bytes) FROM market_space_tags) ELSE 0 END FROM market_funds_tags`, client, client)
	}
	exec(`INSERT INTO market_publish_batches (id, created_at, msg_cid, deals, state, msg_id) VALUES (?, ?, ?, ?, ?, ?)`,
		int64(1), now, "bafy-msg", `["00000000-0000-4000-8000-000000000003"]`, "landed", "7b1f6a36-3b34-4a4c-9f0c-3a6f3c1b7b10")
	exec(`INSERT INTO market_ask (id, ask) VALUES (?, ?)`, 1, blob)
	exec(`INSERT INTO market_staging_reservations (id, bytes, created_at) VALUES (?, ?, ?)`, "01JD0000000000000000000000", int64(1<<20), now)
	exec(`INSERT INTO sealing_sectors (number, state, seal_proof, opened_at, updated_at, proof, unsealed_removed) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		int64(1), "Proving", int64(8), now, now, blob, false)
	exec(`INSERT INTO sealing_sectors (number, state, seal_proof, opened_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		int64(2), "WaitDeals", int64(8), now, now)
	exec(`INSERT INTO sealing_pieces (sector, piece_offset, size, kind, status, piece_cid, deal_uuid, deal_id, proposal)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, int64(1), int64(0), int64(34359738368), "deal", "done", "baga6ea4seaq",
		"00000000-0000-4000-8000-000000000005", int64(77), blob)
	exec(`INSERT INTO sealing_pieces (sector, piece_offset, size, kind, status, piece_cid) VALUES (?, ?, ?, ?, ?, ?)`,
		int64(2), int64(0), int64(128), "filler", "reserved", "baga6ea4seaqzero")
	exec(`INSERT INTO index_pieces (id, piece_cid, state, blocks, aggregate, indexed_at) VALUES (?, ?, ?, ?, ?, ?)`,
		int64(1), "baga6ea4seaq", "indexed", int64(2), true, now/1e9)
	for i := range 2 {
		exec(`INSERT INTO index_blocks (mh, piece_id, section_offset, size) VALUES (?, ?, ?, ?)`,
			append([]byte{0x12, 0x20}, bytes.Repeat([]byte{byte(i)}, 32)...), int64(1), int64(59+i*1000), int64(1000))
	}
	exec(`INSERT INTO index_roots (root, piece_id) VALUES (?, ?)`, blob, int64(1))
	exec(`INSERT INTO index_segments (sub_piece_cid, piece_id, segment_offset, size, blocks, error) VALUES (?, ?, ?, ?, ?, ?)`,
		"baga6ea4seaqsub", int64(1), int64(127), int64(2032), int64(2), "")
	exec(`INSERT INTO ipni_blocks (cid, data) VALUES (?, ?)`, blob, []byte(`{"x":1}`))
	for seq := int64(1); seq <= 2; seq++ {
		exec(`INSERT INTO ipni_ads (seq, ad_cid, context_id, piece_cid, is_rm, entries, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			seq, fmt.Sprintf("bafy-ad-%d", seq), blob, "baga6ea4seaq", seq == 2, int64(2), now/1e9)
	}
	exec(`INSERT INTO ipni_contexts (context_id, piece_cid, ad_cid, active) VALUES (?, ?, ?, ?)`, blob, "baga6ea4seaq", "bafy-ad-2", false)
	exec(`INSERT INTO chain_messages (id, from_addr, created_at, updated_at, message, max_fee, version, state, nonce, signed, cid, exec_cid)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, "7b1f6a36-3b34-4a4c-9f0c-3a6f3c1b7b10", "f1worker", now, now, blob, "",
		int64(0), "executed", int64(41), blob, "bafy-msg", "bafy-msg")
	exec(`INSERT INTO chain_messages (id, from_addr, created_at, updated_at, message, max_fee, version, state, cid, exec_cid)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, "8b1f6a36-3b34-4a4c-9f0c-3a6f3c1b7b10", "f1worker", now, now, blob, "1000",
		int64(1), "recorded", "", "")
	exec(`INSERT INTO chain_nonces (from_addr, next) VALUES (?, ?)`, "f1worker", int64(42))
	exec(`INSERT INTO mk20_deals (id, client, deal, source, piece_cid, piece_size, raw_size, state, handed_off, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, "01JD0000000000000000000000", "f1client", `{"x":1}`, "put", "baga6ea4seaq",
		int64(34359738368), int64(30000000000), "uploading", false, now, now)
	exec(`INSERT INTO mk20_uploads (id, chunked, chunk_size, path, finalized) VALUES (?, ?, ?, ?, ?)`,
		"01JD0000000000000000000000", true, int64(1<<20), "staging/x", false)
	exec(`INSERT INTO mk20_upload_chunks (id, chunk, size, complete) VALUES (?, ?, ?, ?)`, "01JD0000000000000000000000", 1, int64(1<<20), true)
	exec(`INSERT INTO minerapi_deals (deal_uuid, deal_id, publish_cid, piece_cid, piece_size, sector, sector_offset, attempts, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, "00000000-0000-4000-8000-000000000005", int64(77), "bafy-msg", "baga6ea4seaq",
		int64(34359738368), int64(1), nil, int64(1), now, now)
	exec(`INSERT INTO cluster_nodes (id, roles, api_url, http_url, libp2p_addrs, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		"node-1", "market,sealing", "http://127.0.0.1:1288", "http://127.0.0.1:7777", "/ip4/127.0.0.1/tcp/24001", now, now)
	exec(`INSERT INTO cluster_leases (name, holder, taken_at, expires_at) VALUES (?, ?, ?, ?)`, "market.publisher", "node-1", now, now+1)
	exec(`INSERT INTO cluster_paths (node, kind, path) VALUES (?, ?, ?)`, "node-1", "staging", "/r/staging")
	exec(`INSERT INTO kv (key, value) VALUES (?, ?)`, "miner", "f01000")
	exec(`INSERT INTO db_locks (name, taken) VALUES (?, ?)`, "market.admission", int64(12))
}

// TestDBMigrateTo copies a repo with deals at every checkpoint into
// PostgreSQL: every table arrives row for row, the market reads its deals
// there, and rows added afterwards are numbered after the copied ones.
func TestDBMigrateTo(t *testing.T) {
	target := dbtest.Postgres(t)
	ctx := context.Background()
	repo := t.TempDir()
	if _, err := node.OpenRepo(repo); err != nil {
		t.Fatal(err)
	}
	src, err := db.Open(ctx, repo+"/ferry.db")
	if err != nil {
		t.Fatal(err)
	}
	fillRepoDB(t, src)
	src.Close()

	out, err := runDaemonCLI(t, "db", "migrate-to", "--repo", repo, "--json", target)
	if err != nil {
		t.Fatalf("migrate-to: %v", err)
	}
	clitest.CheckKeys(t, "db migrate-to", []byte(out), "url", "tables", "tables[].table", "tables[].rows", "tables[].checksum", "configLine")
	var res migrated
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.ConfigLine, "[Database]") {
		t.Fatalf("config line %q", res.ConfigLine)
	}
	for _, tc := range res.Tables {
		if tc.Rows == 0 {
			t.Errorf("table %s has no row in the test repo: the fixture must cover every table", tc.Table)
		}
	}

	dst, err := db.Open(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	counts, err := db.CountBy(ctx, dst, `SELECT checkpoint, count(*) FROM market_deals GROUP BY checkpoint`)
	if err != nil {
		t.Fatal(err)
	}
	for cp := market.Accepted; cp <= market.Complete; cp++ {
		if counts[cp.String()] == 0 {
			t.Errorf("no deal at %s after the copy: %v", cp, counts)
		}
	}
	var id int64
	if err := dst.QueryRowContext(ctx, `INSERT INTO market_deal_logs (uuid, at, text) VALUES (?, ?, ?) RETURNING id`, "x", 1, "after").Scan(&id); err != nil {
		t.Fatalf("a log line after the copy: %v", err)
	}
	if id <= int64(market.Complete+2) {
		t.Fatalf("the next log line took id %d, one of the copied rows'", id)
	}

	// A second copy into the now full database is refused, changing nothing.
	if _, err := runDaemonCLI(t, "db", "migrate-to", "--repo", repo, target); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("copy into a non-empty database: %v", err)
	}
}
