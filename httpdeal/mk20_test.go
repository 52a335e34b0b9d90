package httpdeal

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v9/verifreg"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/oklog/ulid/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
	"github.com/ferry-fil/ferry/httpdeal/mk20"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/wallet"
)

type fakeChain struct {
	mu     sync.Mutex
	head   abi.ChainEpoch
	allocs map[chain.AllocationID]*chain.Allocation
}

func (c *fakeChain) setHead(h abi.ChainEpoch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.head = h
}

func (c *fakeChain) ChainHead(context.Context) (*chain.TipSet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	mh, _ := multihash.Sum([]byte("block"), multihash.BLAKE2B_MIN+31, -1)
	return chain.NewTipSet([]*chain.BlockHeader{{Height: c.head}}, []cid.Cid{cid.NewCidV1(cid.DagCBOR, mh)})
}

func (c *fakeChain) StateLookupID(_ context.Context, a address.Address, _ chain.TipSetKey) (address.Address, error) {
	if a.Protocol() == address.ID {
		return a, nil
	}
	return address.Undef, errors.New("actor not found")
}

func (c *fakeChain) StateGetAllocation(_ context.Context, _ address.Address, id chain.AllocationID, _ chain.TipSetKey) (*chain.Allocation, error) {
	return c.allocs[id], nil
}

type fakeStaging struct {
	mu       sync.Mutex
	capacity uint64
	tags     map[string]uint64
}

func (s *fakeStaging) Reserve(_ context.Context, id string, n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tags[id]; ok {
		return nil
	}
	var used uint64
	for _, v := range s.tags {
		used += v
	}
	if used+n > s.capacity {
		return ErrStagingFull
	}
	s.tags[id] = n
	return nil
}

func (s *fakeStaging) Release(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tags, id)
	return nil
}

func (s *fakeStaging) Reservations(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.tags {
		out = append(out, id)
	}
	return out, nil
}

func (s *fakeStaging) has(id ulid.ULID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.tags[id.String()]
	return ok
}

type started struct {
	deal *mk20.Deal
	path string
	data []byte
}

type fakeMarket struct {
	mu      sync.Mutex
	started map[ulid.ULID]started
	ch      chan ulid.ULID
	// check and start, when set, are the answers of Check and Start.
	check, start error
}

func (m *fakeMarket) answer(check bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if check {
		return m.check
	}
	return m.start
}

func (m *fakeMarket) set(check, start error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.check, m.start = check, start
}

func (m *fakeMarket) Check(context.Context, *mk20.Deal) error { return m.answer(true) }

func (m *fakeMarket) Start(_ context.Context, d *mk20.Deal, path string) error {
	if err := m.answer(false); err != nil {
		return err
	}
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return err
		}
	}
	m.mu.Lock()
	_, again := m.started[d.Identifier]
	m.started[d.Identifier] = started{deal: d, path: path, data: data}
	m.mu.Unlock()
	if !again {
		m.ch <- d.Identifier
	}
	return nil
}

func (m *fakeMarket) State(_ context.Context, id ulid.ULID) (mk20.State, string, error) {
	return mk20.StateSealing, "", nil
}

func (m *fakeMarket) get(id ulid.ULID) (started, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.started[id]
	return s, ok
}

type env struct {
	t       *testing.T
	dir     string
	db      interface{ Close() error }
	cfg     MK20Config
	deps    MK20Deps
	srv     *MK20
	http    *httptest.Server
	chain   *fakeChain
	staging *fakeStaging
	market  *fakeMarket
	now     time.Time
	mu      sync.Mutex
}

var miner, _ = address.NewIDAddress(1001)

func newEnv(t *testing.T) *env {
	dir := t.TempDir()
	sqldb, err := db.Open(context.Background(), dbtest.Source(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	e := &env{t: t, dir: dir, db: sqldb, now: time.Date(2025, 7, 15, 17, 0, 0, 0, time.UTC),
		chain:   &fakeChain{head: 100, allocs: map[chain.AllocationID]*chain.Allocation{}},
		staging: &fakeStaging{capacity: 1 << 30, tags: map[string]uint64{}},
		market:  &fakeMarket{started: map[ulid.ULID]started{}, ch: make(chan ulid.ULID, 100)},
	}
	e.cfg = MK20Config{Miner: miner, SectorSize: 8 << 20, SealEpochs: 10, StagingDir: filepath.Join(dir, "staging"),
		MinChunkSize: 1024, MaxChunkSize: 1 << 20, Now: e.clock, Logf: t.Logf}
	e.deps = MK20Deps{DB: sqldb, Chain: e.chain, Staging: e.staging, Market: e.market}
	e.restart()
	t.Cleanup(func() { e.http.Close(); e.srv.Close() })
	return e
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

// restart replaces the server with a new one on the same database, as a
// restart of ferryd does.
func (e *env) restart() {
	if e.srv != nil {
		e.http.Close()
		e.srv.Close()
	}
	srv, err := NewMK20(e.cfg, e.deps)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.srv = srv
	e.http = httptest.NewServer(srv)
}

// client returns an mk20 client with a new key.
func (e *env) client() *client.MK20Client {
	ki, err := wallet.Generate(wallet.TypeSecp256k1)
	if err != nil {
		e.t.Fatal(err)
	}
	a, _ := ki.Address()
	return &client.MK20Client{BaseURL: e.http.URL, Client: a, Now: e.clock,
		Sign: func(b []byte) (*crypto.Signature, error) { return wallet.Sign(ki, b) }}
}

// signedRequest sends method to the Market 2.0 route path with body and
// the Content-Type ct (none when ""), signed by c, and returns the status.
func (e *env) signedRequest(t *testing.T, c *client.MK20Client, method, path string, body []byte, ct string) int {
	t.Helper()
	return e.signedRequestTo(t, e.http.URL, c, method, path, body, ct)
}

// signedRequestTo is signedRequest to the server at base, with the
// header pairs hdr (name, value, …) besides.
func (e *env) signedRequestTo(t *testing.T, base string, c *client.MK20Client, method, path string, body []byte, ct string, hdr ...string) int {
	t.Helper()
	req, err := http.NewRequest(method, base+MK20Path+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	auth, err := mk20.SignAuth(c.Sign, c.Client, method, req.URL.EscapedPath(), e.clock())
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *env) waitStarted(id ulid.ULID) started {
	e.t.Helper()
	select {
	case got := <-e.market.ch:
		if got != id {
			e.t.Fatalf("market got deal %s, want %s", got, id)
		}
	case <-time.After(30 * time.Second):
		e.t.Fatalf("deal %s never reached the market", id)
	}
	s, _ := e.market.get(id)
	return s
}

func codeOf(err error) int {
	var me *client.MK20Error
	if errors.As(err, &me) {
		return me.Code
	}
	return 0
}

func payload(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func pieceCIDv2(t *testing.T, b []byte) cid.Cid {
	cm, err := piece.FromReader(context.Background(), bytes.NewReader(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cm.CIDv2()
}

func ddo(c *client.MK20Client, pc cid.Cid, url string) *mk20.Deal {
	r := client.DDORequest{Client: c.Client, Provider: miner, PieceCID: pc, URL: url, StartEpoch: 1000}
	return r.Deal()
}

// makeDDO makes, through c, the ddo deal of data from url ("" for an
// upload) and returns it.
func makeDDO(t *testing.T, c *client.MK20Client, data []byte, url string) *mk20.Deal {
	t.Helper()
	d := ddo(c, pieceCIDv2(t, data), url)
	if err := c.MakeDeal(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestMK20HTTPSourceDeal(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	data := payload(3000, 1)
	d := makeDDO(t, c, data, "http://127.0.0.1:9/data.car")
	if s := e.waitStarted(d.Identifier); s.path != "" || s.deal.Data.SourceHTTP.URLs[0].URL != "http://127.0.0.1:9/data.car" {
		t.Fatalf("market got %+v", s)
	}
	if !e.staging.has(d.Identifier) {
		t.Fatal("no staging tag for the download")
	}
	if err := c.MakeDeal(ctx, d); err != nil {
		t.Fatalf("the same deal again: %v", err)
	}
	st, err := c.Status(ctx, d.Identifier)
	if err != nil || st.DDOV1 == nil || st.DDOV1.State != mk20.StateSealing {
		t.Fatalf("status %+v %v", st, err)
	}
	// The identifier of that deal with other content is refused.
	d2 := ddo(c, pieceCIDv2(t, data), "http://127.0.0.1:9/other.car")
	d2.Identifier = d.Identifier
	if err := c.MakeDeal(ctx, d2); codeOf(err) != 400 {
		t.Fatalf("reused identifier: %v", err)
	}
	products, err := c.Products(ctx)
	if err != nil || len(products) != 2 {
		t.Fatalf("products %v %v", products, err)
	}
}

func TestMK20ChunkedUpload(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	data := payload(5*1024+100, 2) // 6 chunks of 1 KiB, the last 100 bytes
	d := makeDDO(t, c, data, "")
	id := d.Identifier
	if st, err := c.Status(ctx, id); err != nil || st.DDOV1.State != mk20.StateUploading {
		t.Fatalf("status %+v %v", st, err)
	}
	if _, err := c.UploadStatus(ctx, id); codeOf(err) != http.StatusTooEarly {
		t.Fatalf("upload status before start: %v", err)
	}
	for _, bad := range []struct {
		raw   uint64
		chunk int64
	}{{uint64(len(data)) + 1, 1024}, {uint64(len(data)), 1000}, {uint64(len(data)), 512}, {uint64(len(data)), 2 << 20}, {0, 1024}} {
		if err := c.StartUpload(ctx, id, bad.raw, bad.chunk); codeOf(err) != 400 {
			t.Errorf("start %+v: %v", bad, err)
		}
	}
	if err := c.StartUpload(ctx, id, uint64(len(data)), 1024); err != nil {
		t.Fatal(err)
	}
	if err := c.StartUpload(ctx, id, uint64(len(data)), 1024); codeOf(err) != http.StatusConflict {
		t.Fatalf("second start: %v", err)
	}
	chunk := func(n int) []byte { return data[(n-1)*1024 : min(n*1024, len(data))] }
	put := func(n int, b []byte) error { return c.PutChunk(ctx, id, n, bytes.NewReader(b), int64(len(b))) }
	if err := put(0, chunk(1)); codeOf(err) != 400 {
		t.Fatalf("chunk 0: %v", err)
	}
	if err := put(7, chunk(1)); codeOf(err) != 404 {
		t.Fatalf("chunk 7: %v", err)
	}
	if err := put(2, chunk(2)[:1000]); codeOf(err) != 400 {
		t.Fatalf("short chunk: %v", err)
	}
	if err := put(6, append(chunk(6), 1)); codeOf(err) != 400 {
		t.Fatalf("long last chunk: %v", err)
	}
	if err := put(1, chunk(1)); err != nil {
		t.Fatal(err)
	}
	if err := put(1, chunk(1)); codeOf(err) != http.StatusConflict {
		t.Fatalf("chunk 1 again: %v", err)
	}
	if err := put(3, chunk(3)); err != nil {
		t.Fatal(err)
	}
	if err := c.Finalize(ctx, id); codeOf(err) != 400 {
		t.Fatalf("finalize with chunks missing: %v", err)
	}
	us, err := c.UploadStatus(ctx, id)
	if err != nil || us.TotalChunks != 6 || us.Uploaded != 2 || len(us.MissingChunks) != 4 || us.MissingChunks[0] != 2 {
		t.Fatalf("upload status %+v %v", us, err)
	}

	// A restart loses the in-memory hash; the upload resumes with what is
	// missing and the commitment is computed over the chunks on disk.
	e.restart()
	c.BaseURL = e.http.URL
	path := filepath.Join(e.dir, "payload")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var last uint64
	if err := c.Upload(ctx, id, path, 1024, func(done, total uint64) { last = done }); err != nil {
		t.Fatal(err)
	}
	if last != uint64(len(data)) {
		t.Fatalf("progress ended at %d of %d", last, len(data))
	}
	s := e.waitStarted(id)
	if !bytes.Equal(s.data, data) || s.path == "" {
		t.Fatalf("the market got %d bytes at %q", len(s.data), s.path)
	}
	if err := put(4, chunk(4)); codeOf(err) != 404 {
		t.Fatalf("a chunk after finalize: %v", err)
	}
	if err := c.Finalize(ctx, id); err != nil {
		t.Fatalf("finalize again (an answer lost): %v", err)
	}
}

// An upload whose bytes are not the deal's piece fails at finalize.
func TestMK20UploadMismatch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	data := payload(2500, 3)
	d := makeDDO(t, c, data, "")
	other := payload(2500, 4)
	path := filepath.Join(e.dir, "other")
	if err := os.WriteFile(path, other, 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.Upload(ctx, d.Identifier, path, 1024, nil)
	if codeOf(err) != 400 || !strings.Contains(err.Error(), "piece CID") {
		t.Fatalf("mismatched upload: %v", err)
	}
	st, err := c.Status(ctx, d.Identifier)
	if err != nil || st.DDOV1.State != mk20.StateFailed || st.DDOV1.ErrorMsg == "" {
		t.Fatalf("status %+v %v", st, err)
	}
	if e.staging.has(d.Identifier) {
		t.Fatal("the failed deal keeps its staging tag")
	}
	if _, ok := e.market.get(d.Identifier); ok {
		t.Fatal("the market got a failed deal")
	}
}

// When the commitment is not known at finalize (the chunks came while the
// hasher was busy, or before a restart), finalize answers 200 and the
// check runs from the staging file.
func TestMK20FinalizeChecksInBackground(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	data := payload(3*1024, 5)
	d := makeDDO(t, c, data, "")
	id := d.Identifier
	if err := c.StartUpload(ctx, id, uint64(len(data)), 1024); err != nil {
		t.Fatal(err)
	}
	// Hold the hasher so that no chunk is hashed while it arrives.
	h := e.srv.hasher(id)
	h.mu.Lock()
	for n := 3; n >= 1; n-- {
		b := data[(n-1)*1024 : n*1024]
		if err := c.PutChunk(ctx, id, n, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	h.mu.Unlock()
	if up, err := e.srv.store.upload(ctx, id); err != nil || up.CommP != "" {
		t.Fatalf("commitment known too early: %+v %v", up, err)
	}
	if err := c.Finalize(ctx, id); err != nil {
		t.Fatal(err)
	}
	if s := e.waitStarted(id); !bytes.Equal(s.data, data) {
		t.Fatal("the market got other bytes")
	}
}

func TestMK20Serial(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	data := payload(4000, 6)
	d := makeDDO(t, c, data, "")
	send := func(method string, body []byte, ct string) int {
		return e.signedRequest(t, c, method, "/upload/"+d.Identifier.String(), body, ct)
	}
	if code := send("POST", nil, ""); code != 404 {
		t.Fatalf("finalize before the upload: %d", code)
	}
	if code := send("PUT", data[:100], "application/octet-stream"); code != 400 {
		t.Fatalf("short serial upload: %d", code)
	}
	if code := send("PUT", data, "application/octet-stream"); code != 200 {
		t.Fatalf("serial upload: %d", code)
	}
	if code := send("POST", nil, ""); code != 200 {
		t.Fatalf("serial finalize: %d", code)
	}
	if s := e.waitStarted(d.Identifier); !bytes.Equal(s.data, data) {
		t.Fatal("the market got other bytes")
	}
}

func TestMK20Auth(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice, bob := e.client(), e.client()
	data := payload(2000, 7)
	d := makeDDO(t, alice, data, "")
	// Bob may not touch Alice's deal, nor make a deal in her name.
	if _, err := bob.Status(ctx, d.Identifier); codeOf(err) != 401 {
		t.Fatalf("another client's status: %v", err)
	}
	if err := bob.StartUpload(ctx, d.Identifier, 2000, 1024); codeOf(err) != 401 {
		t.Fatalf("another client's upload: %v", err)
	}
	if err := bob.PutChunk(ctx, d.Identifier, 1, bytes.NewReader(data[:1024]), 1024); codeOf(err) != 401 {
		t.Fatalf("another client's chunk: %v", err)
	}
	if err := bob.MakeDeal(ctx, ddo(alice, pieceCIDv2(t, data), "")); codeOf(err) != 400 {
		t.Fatalf("a deal naming another client: %v", err)
	}
	// A signature by another key for Alice's address.
	forger := *alice
	forger.Sign = bob.Sign
	if _, err := forger.Products(ctx); codeOf(err) != 401 {
		t.Fatalf("forged signature: %v", err)
	}
	// A signature two minutes old, and one from a minute ago.
	stale := *alice
	stale.Now = func() time.Time { return e.clock().Add(-2 * time.Minute) }
	if _, err := stale.Status(ctx, d.Identifier); codeOf(err) != 401 {
		t.Fatalf("stale signature: %v", err)
	}
	recent := *alice
	recent.Now = func() time.Time { return e.clock().Add(-time.Minute) }
	if _, err := recent.Status(ctx, d.Identifier); err != nil {
		t.Fatalf("signature of the previous minute: %v", err)
	}
	// No header, and a header for another path.
	resp, err := http.Get(e.http.URL + MK20Path + "/products")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("no header: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", e.http.URL+MK20Path+"/sources", nil)
	auth, _ := mk20.SignAuth(alice.Sign, alice.Client, "GET", MK20Path+"/products", e.clock())
	req.Header.Set("Authorization", auth)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("header signed for another path: %d", resp.StatusCode)
	}
}

func TestMK20Refusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	data := payload(2000, 8)
	pc := pieceCIDv2(t, data)
	big := payload(1<<20, 9)
	bigPC := pieceCIDv2(t, big)
	alloc := verifreg.AllocationId(5)
	cid1, _, _, _ := piece.V2ToV1(bigPC)
	e.chain.allocs[chain.AllocationID(alloc)] = &chain.Allocation{Provider: 1001, Data: cid1, Size: 2 << 20, TermMin: 518400, TermMax: 600000, Expiration: 5000}
	e.chain.allocs[6] = &chain.Allocation{Provider: 2000, Data: cid1, Size: 2 << 20, TermMin: 518400, TermMax: 600000, Expiration: 5000}
	for _, tc := range []struct {
		name string
		mod  func(*mk20.Deal)
		code int
	}{
		{"pdp", func(d *mk20.Deal) { d.Products.DDOV1 = nil; d.Products.PDPV1 = &mk20.PDPV1{AddPiece: true} }, 423},
		{"aggregate", func(d *mk20.Deal) {
			d.Data.SourceHTTPPut = nil
			d.Data.SourceAggregate = &mk20.DataSourceAggregate{}
		}, 422},
		{"short", func(d *mk20.Deal) { d.Products.DDOV1.Duration = 1000 }, 441},
		{"other provider", func(d *mk20.Deal) { d.Products.DDOV1.Provider, _ = address.NewIDAddress(7) }, 400},
		{"start too soon", func(d *mk20.Deal) { s := abi.ChainEpoch(105); d.Products.DDOV1.StartEpoch = &s }, 400},
		{"unknown allocation", func(d *mk20.Deal) { a := verifreg.AllocationId(9); d.Products.DDOV1.AllocationID = &a }, 400},
		{"allocation too small", func(d *mk20.Deal) { d.Products.DDOV1.AllocationID = &alloc }, 400},
		{"allocation of another provider", func(d *mk20.Deal) {
			a := verifreg.AllocationId(6)
			d.Data.PieceCID = bigPC
			d.Products.DDOV1.AllocationID = &a
		}, 400},
		{"allocation term", func(d *mk20.Deal) {
			d.Data.PieceCID = bigPC
			d.Products.DDOV1.AllocationID = &alloc
			d.Products.DDOV1.Duration = 700000
		}, 400},
		{"allocation expires", func(d *mk20.Deal) {
			d.Data.PieceCID = bigPC
			d.Products.DDOV1.AllocationID = &alloc
			s := abi.ChainEpoch(6000)
			d.Products.DDOV1.StartEpoch = &s
		}, 400},
		{"raw indexed", func(d *mk20.Deal) { d.Data.Format = mk20.PieceDataFormat{Raw: &mk20.FormatBytes{}} }, 400},
		{"v1 piece cid", func(d *mk20.Deal) { d.Data.PieceCID, _, _, _ = piece.V2ToV1(pc) }, 400},
	} {
		d := ddo(c, pc, "")
		tc.mod(d)
		if err := c.MakeDeal(ctx, d); codeOf(err) != tc.code {
			t.Errorf("%s: %v, want %d", tc.name, err, tc.code)
		}
	}
	d := ddo(c, bigPC, "")
	d.Products.DDOV1.AllocationID = &alloc
	if err := c.MakeDeal(ctx, d); err != nil {
		t.Fatalf("deal with its allocation: %v", err)
	}
	e.staging.capacity = 0
	if err := c.MakeDeal(ctx, ddo(c, pc, "")); codeOf(err) != 429 {
		t.Fatalf("staging full: %v", err)
	}
	// Bodies: a wrong content type, not JSON, too large.
	post := func(body []byte, ct string) int {
		return e.signedRequest(t, c, "POST", "/deal", body, ct)
	}
	if code := post([]byte("{}"), "text/plain"); code != 400 {
		t.Errorf("text/plain: %d", code)
	}
	if code := post([]byte("{"), ContentTypeJSON); code != 400 {
		t.Errorf("bad JSON: %d", code)
	}
	if code := post(bytes.Repeat([]byte(" "), mk20.MaxBodySize+1), ContentTypeJSON); code != 400 {
		t.Errorf("oversized: %d", code)
	}
	if _, err := c.Status(ctx, ulid.Make()); codeOf(err) != 401 {
		t.Errorf("status of an unknown deal: %v", err)
	}
}
