package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/oklog/ulid/v2"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
	"github.com/ferry-fil/ferry/market"
)

// clusterNode writes the config of a cluster node: the database, its
// roles, a short lease timeout, on a worker the market node's devnet as
// its Lotus node, and httpSettings (TOML lines) in its HTTP section.
func clusterNode(t *testing.T, dbURL string, roles []string, lotus, miner string, httpSettings ...string) *env {
	e := newEnv(t)
	chain := fmt.Sprintf("[Chain]\nDevnetBlockTime = \"200ms\"\nDevnetListen = \"127.0.0.1:%d\"\n", e.chainPort)
	if lotus != "" {
		chain = fmt.Sprintf("[Chain]\nMode = \"lotus\"\nLotusAPIInfo = %q\nMiner = %q\n", lotus, miner)
	}
	q := make([]string, len(roles))
	for i, r := range roles {
		q[i] = fmt.Sprintf("%q", r)
	}
	cfg := chain + fmt.Sprintf(`
[Database]
URL = %q
[Cluster]
Roles = [%s]
LeaseTimeout = "3s"
[Libp2p]
ListenAddresses = ["/ip4/127.0.0.1/tcp/%d"]
[HTTP]
Listen = "127.0.0.1:%d"
%s
[API]
Listen = "127.0.0.1:%d"
[Sealing]
WaitDealsDelay = "3s"
MinerAPIListen = "127.0.0.1:0" # several ferryds on one machine
[Market]
PublishMsgPeriod = "2s"
MaxDealsPerPublishMsg = 4
[Transfer]
AllowPrivateAddresses = true # the client serves its data on loopback
`, dbURL, strings.Join(q, ", "), freePort(t), e.retrievalPort, strings.Join(httpSettings, "\n"), e.apiPort)
	if err := os.WriteFile(filepath.Join(e.repo, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// chainForWorkers returns the miner of a node running the devnet and the
// FULLNODE_API_INFO (sign permission) of its chain, for the other nodes of
// its cluster.
func (e *env) chainForWorkers() (miner, apiInfo string) {
	e.t.Helper()
	var info struct{ Miner string }
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "info", "--json")), &info); err != nil {
		e.t.Fatal(err)
	}
	line := strings.TrimSpace(e.must(e.ferryd, "--repo", e.repo, "auth", "api-info", "--chain", "--perm", "sign"))
	apiInfo, _ = strings.CutPrefix(line, "FULLNODE_API_INFO=")
	return info.Miner, apiInfo
}

// TestClusterOfThree runs three ferryd nodes on one PostgreSQL database —
// a market node with the devnet and two workers (transfer, sealing, index)
// — takes 30 deals from a client, SIGKILLs one worker mid-way and the other
// while it adds a piece, restarts them, and checks every deal completes:
// 30 placements, each deal published once, the IPNI chain unbroken.
func TestClusterOfThree(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	dbURL := dbtest.Postgres(t) // skips without FERRY_TEST_POSTGRES
	t.Parallel()                // most of an end-to-end test is waiting for blocks
	m := clusterNode(t, dbURL, []string{"market", "retrieval"}, "", "")
	m.start()
	miner, signInfo := m.chainForWorkers()
	w1 := clusterNode(t, dbURL, []string{"transfer", "sealing", "index"}, signInfo, miner)
	w2 := clusterNode(t, dbURL, []string{"transfer", "sealing", "index"}, signInfo, miner)
	w1.start()
	w2.start()
	var nodes []struct {
		ID    string
		Alive bool
		Roles []string
	}
	if err := json.Unmarshal([]byte(m.must(m.ferryd, "--repo", m.repo, "cluster", "list", "--json")), &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 {
		t.Fatalf("cluster list: %+v", nodes)
	}

	miner, _ = m.fundClient()
	cars := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(cars)))
	defer srv.Close()
	const deals = 30
	var uuids, pieces []string
	propose := func(i int) {
		data := t.TempDir()
		payload := make([]byte, 20_000+i*1000)
		rand.Read(payload)
		if err := os.WriteFile(filepath.Join(data, "f.bin"), payload, 0o644); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("d%d.car", i)
		m.must(m.ferry, "car", "create", data, "-o", filepath.Join(cars, name))
		var d proposedDeal
		out := m.must(m.ferry, "deal", "--provider", miner, filepath.Join(cars, name), "--http-url", srv.URL+"/"+name, "--json")
		if err := json.Unmarshal([]byte(lastJSON(out)), &d); err != nil {
			t.Fatalf("reading ferry deal --json output %q: %v", out, err)
		}
		uuids, pieces = append(uuids, d.DealUUID), append(pieces, d.PieceCID)
	}
	for i := range deals / 3 {
		propose(i)
	}
	w1.kill() // mid-way: its downloads and sectors wait for it, or go to w2
	for i := deals / 3; i < 2*deals/3; i++ {
		propose(i)
	}
	w1.start()
	for i := 2 * deals / 3; i < deals; i++ {
		propose(i)
	}
	// A worker dies while it adds a piece: it holds a deal whose next step
	// is AddPiece (whichever worker is seen first: either may take them).
	workers := map[string]*env{nodeID(t, w1): w1, nodeID(t, w2): w2}
	deadline := time.Now().Add(2 * time.Minute)
	var adder *env
	f := m.operator()
	for adder == nil {
		if time.Now().After(deadline) {
			deals, _ := m.run(m.ferryd, "--repo", m.repo, "deal", "list", "--limit", "0")
			nodes, _ := m.run(m.ferryd, "--repo", m.repo, "cluster", "list")
			t.Fatalf("no worker was seen adding a piece in 2 minutes\ndeals:\n%s\nnodes:\n%s\nmarket log:\n%s\nworker 1 log:\n%s\nworker 2 log:\n%s",
				deals, nodes, m.daemonLog, w1.daemonLog, w2.daemonLog)
		}
		if id := addingPiece(context.Background(), f); id != "" {
			adder = workers[id]
		}
		time.Sleep(5 * time.Millisecond)
	}
	adder.kill()
	adder.start()

	deadline = time.Now().Add(5 * time.Minute)
	for {
		var ds []struct{ UUID, Checkpoint, Retry, Error string }
		if err := json.Unmarshal([]byte(m.must(m.ferryd, "--repo", m.repo, "deal", "list", "--limit", "0", "--json")), &ds); err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, d := range ds {
			if d.Retry == "fatal" || d.Retry == "manual" {
				t.Fatalf("deal %s failed: %+v\nmarket log:\n%s\nworker 1 log:\n%s\nworker 2 log:\n%s", d.UUID, d, m.daemonLog, w1.daemonLog, w2.daemonLog)
			}
			if d.Checkpoint == "Complete" {
				done++
			}
		}
		if len(ds) == deals && done == deals {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deals Complete after 5 minutes: %+v\nworker 1 log:\n%s\nworker 2 log:\n%s", done, deals, ds, w1.daemonLog, w2.daemonLog)
		}
		time.Sleep(time.Second)
	}

	// 30 placements, one per deal.
	var sectors []struct {
		Pieces []struct {
			DealUUID *string
			Written  bool
		}
	}
	if err := json.Unmarshal([]byte(m.must(m.ferryd, "--repo", m.repo, "sectors", "list", "--json")), &sectors); err != nil {
		t.Fatal(err)
	}
	placed := map[string]int{}
	for _, s := range sectors {
		for _, p := range s.Pieces {
			if p.DealUUID != nil {
				placed[*p.DealUUID]++
			}
		}
	}
	for _, id := range uuids {
		if placed[id] != 1 {
			t.Fatalf("deal %s placed %d times: %v", id, placed[id], placed)
		}
	}
	// Each deal published once.
	for _, pc := range pieces {
		if n := m.chainDealsWithPiece(pc); n != 1 {
			t.Fatalf("%d deals on chain carry piece %s, want 1", n, pc)
		}
	}
	checkIPNIChain(t, dbURL, deals)
}

// nodeID reads a node's ID from its repo.
func nodeID(t *testing.T, e *env) string {
	b, err := os.ReadFile(filepath.Join(e.repo, "node.id"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// addingPiece returns the ID of a node holding the lease of a deal whose
// next step is AddPiece, or "" when none does. It asks the operator API
// directly: a step that takes milliseconds is missed by a poll that
// spawns processes.
func addingPiece(ctx context.Context, f api.Ferry) string {
	nodes, err := f.ClusterList(ctx)
	if err != nil {
		return ""
	}
	for _, n := range nodes {
		for _, l := range n.Leases {
			id, ok := strings.CutPrefix(l.Name, "deal/")
			if !ok {
				continue
			}
			u, err := uuid.Parse(id)
			if err != nil {
				continue
			}
			if d, err := f.DealShow(ctx, u); err == nil && d.Checkpoint == market.PublishConfirmed {
				return n.ID
			}
		}
	}
	return ""
}

// checkIPNIChain walks the advertisement chain from the head back: every
// ad links to the one published before it, and the chain has one ad per
// announced piece.
func checkIPNIChain(t *testing.T, dbURL string, pieces int) {
	ctx := context.Background()
	sqldb, err := db.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	rows, err := sqldb.QueryContext(ctx, `SELECT ad_cid FROM ipni_ads ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var ads []string
	for rows.Next() {
		var c string
		rows.Scan(&c)
		ads = append(ads, c)
	}
	rows.Close()
	if len(ads) != pieces {
		t.Fatalf("%d advertisements for %d pieces", len(ads), pieces)
	}
	for i, s := range ads {
		c, err := cid.Decode(s)
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		if err := sqldb.QueryRowContext(ctx, `SELECT data FROM ipni_blocks WHERE cid = ?`, c.Bytes()).Scan(&data); err != nil {
			t.Fatalf("ad %d (%s): %v", i, c, err)
		}
		nb := basicnode.Prototype.Any.NewBuilder()
		if err := dagjson.Decode(nb, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		prev, err := nb.Build().LookupByString("PreviousID")
		var link string
		if err == nil && !prev.IsNull() {
			l, err := prev.AsLink()
			if err != nil {
				t.Fatal(err)
			}
			link = l.String()
		}
		want := ""
		if i > 0 {
			want = ads[i-1]
		}
		if link != want {
			t.Fatalf("ad %d links to %q, want %q: the chain is broken", i, link, want)
		}
	}
}

// TestClusterUploadAnyNode: two market nodes behind one address (a proxy
// that sends each request to the next node in turn, as a load balancer
// may). A Market 2.0 upload is received by the node it started on; the
// chunks and the finalize that reach the other node are passed on to it,
// and the deal completes with its allocation claimed.
func TestClusterUploadAnyNode(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	dbURL := dbtest.Postgres(t) // skips without FERRY_TEST_POSTGRES
	t.Parallel()                // most of an end-to-end test is waiting for blocks
	lb := newRoundRobin(t)
	settings := []string{fmt.Sprintf("PublicURL = %q", lb.url), `MinChunkSize = "1MiB"`}
	m := clusterNode(t, dbURL, []string{"market", "retrieval", "transfer", "sealing", "index"}, "", "", settings...)
	m.start()
	miner, signInfo := m.chainForWorkers()
	m2 := clusterNode(t, dbURL, []string{"market"}, signInfo, miner, settings...)
	m2.start()
	lb.to(m.retrievalPort, m2.retrievalPort)

	dd := m.allocatedPiece(2<<20 + 300_000) // a CAR of three 1 MiB chunks
	id := ulid.Make()
	var out ddoOut
	if err := json.Unmarshal([]byte(lastJSON(m.must(m.ferry, uploadArgs(dd, id)...))), &out); err != nil {
		t.Fatal(err)
	}
	if !out.Accepted || !out.Uploaded {
		t.Fatalf("deal --ddo --upload printed %+v", out)
	}
	if chunks := lb.chunks(); chunks[0] == 0 || chunks[1] == 0 {
		t.Fatalf("chunks sent to the two nodes: %v; want some to each", chunks)
	}
	dd.uuid = m.waitHandedOff(id)
	m.checkClaimed(dd, m.waitDirect(dd.uuid, isComplete))
}

// roundRobin is a proxy in front of several ferryd HTTP listeners that
// sends each request to the next one.
type roundRobin struct {
	url     string
	mu      sync.Mutex
	targets []*httputil.ReverseProxy
	next    int
	puts    []int // chunk uploads sent to each target
}

func newRoundRobin(t *testing.T) *roundRobin {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rr := &roundRobin{url: "http://" + l.Addr().String()}
	srv := &http.Server{Handler: rr}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return rr
}

// to sets the listeners, by port, in turn.
func (rr *roundRobin) to(ports ...int) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.targets, rr.puts = nil, make([]int, len(ports))
	for _, p := range ports {
		u, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", p))
		rr.targets = append(rr.targets, httputil.NewSingleHostReverseProxy(u))
	}
}

func (rr *roundRobin) chunks() []int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return slices.Clone(rr.puts)
}

func (rr *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rr.mu.Lock()
	if len(rr.targets) == 0 {
		rr.mu.Unlock()
		http.Error(w, "no listener yet", http.StatusServiceUnavailable)
		return
	}
	i := rr.next % len(rr.targets)
	rr.next++
	if chunkPath.MatchString(r.URL.Path) && r.Method == http.MethodPut {
		rr.puts[i]++
	}
	target := rr.targets[i]
	rr.mu.Unlock()
	target.ServeHTTP(w, r)
}
