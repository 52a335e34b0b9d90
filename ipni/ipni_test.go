package ipni

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	basicnode "github.com/ipld/go-ipld-prime/node/basic"
	"github.com/ipld/go-ipld-prime/storage/memstore"
	selectorparse "github.com/ipld/go-ipld-prime/traversal/selector/parse"
	"github.com/ipni/go-libipni/announce/message"
	"github.com/ipni/go-libipni/dagsync/ipnisync"
	"github.com/ipni/go-libipni/ingest/schema"
	"github.com/ipni/go-libipni/metadata"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multicodec"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
	"github.com/ferry-fil/ferry/piece"
)

// fakeIndex lists made-up multihashes per piece.
type fakeIndex map[cid.Cid][]multihash.Multihash

func (f fakeIndex) PieceBlocks(ctx context.Context, pc cid.Cid) iter.Seq2[multihash.Multihash, error] {
	return func(yield func(multihash.Multihash, error) bool) {
		mhs, ok := f[pc]
		if !ok {
			yield(nil, errors.New("piece not indexed"))
			return
		}
		for _, mh := range mhs {
			if !yield(mh, nil) {
				return
			}
		}
	}
}

func testPiece(t *testing.T, seed byte, n int) (cid.Cid, []multihash.Multihash) {
	var root [32]byte
	root[0] = seed
	var mhs []multihash.Multihash
	for i := 0; i < n; i++ {
		mh, err := multihash.Sum([]byte{seed, byte(i), byte(i >> 8)}, multihash.SHA2_256, -1)
		if err != nil {
			t.Fatal(err)
		}
		mhs = append(mhs, mh)
	}
	return piece.CIDv1(root), mhs
}

// indexer is an httptest IPNI indexer's announce endpoint.
type indexer struct {
	mu     sync.Mutex
	msgs   []message.Message
	status int
	// fails is how many announcements are answered 503 before status.
	fails int
	// got, when set, is told of each announcement taken.
	got chan message.Message
}

func (ix *indexer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if r.Method != http.MethodPut && r.Method != http.MethodPost || r.URL.Path != "/announce" {
		http.Error(w, "bad request "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
		return
	}
	if ix.status != 0 {
		http.Error(w, "indexer down", ix.status)
		return
	}
	if ix.fails > 0 {
		ix.fails--
		http.Error(w, "indexer busy", http.StatusServiceUnavailable)
		return
	}
	var m message.Message
	if err := m.UnmarshalCBOR(r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ix.msgs = append(ix.msgs, m)
	w.WriteHeader(http.StatusNoContent)
	if ix.got != nil {
		ix.got <- m
	}
}

type env struct {
	db   *sql.DB
	key  crypto.PrivKey
	srv  *httptest.Server
	ix   *indexer
	ixs  *httptest.Server
	a    *Announcer
	cfg  Config
	mhs  fakeIndex
	mux  *http.ServeMux
	path string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{ix: &indexer{}, mhs: fakeIndex{}, mux: http.NewServeMux()}
	e.path = dbtest.Source(t, t.TempDir())
	var err error
	if e.db, err = db.Open(context.Background(), e.path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	if e.key, _, err = crypto.GenerateEd25519Key(rand.Reader); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.mux)
	t.Cleanup(e.srv.Close)
	e.ixs = httptest.NewServer(e.ix)
	t.Cleanup(e.ixs.Close)
	ma, err := HTTPMultiaddr(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = Config{PrivKey: e.key, RetrievalAddrs: []multiaddr.Multiaddr{ma}, AnnounceURLs: []string{e.ixs.URL}, EntriesPerChunk: 10}
	if e.a, err = New(e.db, e.mhs, e.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.a.Close() })
	// Serve whichever announcer the test currently uses.
	e.mux.Handle("/ipni/v1/ad/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.a.Handler().ServeHTTP(w, r)
	}))
	return e
}

// syncChain follows the chain from the head with go-libipni's own sync
// client, checking signatures and hashes, and returns the ads newest first
// and the entries of each ad.
func syncChain(t *testing.T, e *env) ([]schema.Advertisement, [][]multihash.Multihash) {
	t.Helper()
	ctx := context.Background()
	store := &memstore.Store{}
	lsys := cidlink.DefaultLinkSystem()
	lsys.SetReadStorage(store)
	lsys.SetWriteStorage(store)
	s := ipnisync.NewSync(lsys, nil)
	defer s.Close()
	syncer, err := s.NewSyncer(peer.AddrInfo{ID: e.a.PeerID(), Addrs: e.cfg.RetrievalAddrs})
	if err != nil {
		t.Fatal(err)
	}
	head, err := syncer.GetHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := e.a.Head(ctx)
	if !head.Equals(want) {
		t.Fatalf("served head %s, want %s", head, want)
	}
	var (
		ads     []schema.Advertisement
		entries [][]multihash.Multihash
	)
	for cur := head; cur.Defined(); {
		if err := syncer.Sync(ctx, cur, selectorparse.CommonSelector_MatchPoint); err != nil {
			t.Fatalf("syncing ad %s: %v", cur, err)
		}
		n, err := lsys.Load(ipld.LinkContext{}, cidlink.Link{Cid: cur}, schema.AdvertisementPrototype)
		if err != nil {
			t.Fatal(err)
		}
		ad, err := schema.UnwrapAdvertisement(n)
		if err != nil {
			t.Fatal(err)
		}
		signer, err := ad.VerifySignature()
		if err != nil || signer != e.a.PeerID() {
			t.Fatalf("ad %s signature: %v %v", cur, signer, err)
		}
		var mhs []multihash.Multihash
		if ec := ad.Entries.(cidlink.Link).Cid; !ec.Equals(schema.NoEntries.Cid) {
			if err := syncer.Sync(ctx, ec, selectorparse.CommonSelector_ExploreAllRecursively); err != nil {
				t.Fatalf("syncing entries %s: %v", ec, err)
			}
			for c := ec; c.Defined(); {
				n, err := lsys.Load(ipld.LinkContext{}, cidlink.Link{Cid: c}, schema.EntryChunkPrototype)
				if err != nil {
					t.Fatal(err)
				}
				ch, err := schema.UnwrapEntryChunk(n)
				if err != nil {
					t.Fatal(err)
				}
				mhs = append(mhs, ch.Entries...)
				c = cid.Undef
				if ch.Next != nil {
					c = ch.Next.(cidlink.Link).Cid
				}
			}
		}
		ads = append(ads, *ad)
		entries = append(entries, mhs)
		cur = ad.PreviousCid()
	}
	return ads, entries
}

func sameSet(a, b []multihash.Multihash) bool {
	as, bs := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		as[i] = string(a[i])
	}
	for i := range b {
		bs[i] = string(b[i])
	}
	slices.Sort(as)
	slices.Sort(bs)
	return slices.Equal(as, bs)
}

func TestAnnounceSyncRemove(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	p1, mh1 := testPiece(t, 1, 25) // three chunks of 10
	p2, mh2 := testPiece(t, 2, 3)
	e.mhs[p1], e.mhs[p2] = mh1, mh2

	if h, _ := e.a.Head(ctx); h.Defined() {
		t.Fatal("head before any ad")
	}
	resp, err := http.Get(e.srv.URL + "/ipni/v1/ad/head")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("empty head status %d", resp.StatusCode)
	}

	ad1, err := e.a.AnnouncePiece(ctx, p1)
	if err != nil {
		t.Fatal(err)
	}
	ad2, err := e.a.AnnouncePiece(ctx, p2)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.a.AnnouncePiece(ctx, p1)
	if err != nil || !again.Equals(ad1) {
		t.Fatalf("re-announce gave %s %v, want %s", again, err, ad1)
	}
	if ok, _ := e.a.IsAnnounced(ctx, p1); !ok {
		t.Fatal("p1 not announced")
	}

	ads, entries := syncChain(t, e)
	if len(ads) != 2 {
		t.Fatalf("%d ads in the chain", len(ads))
	}
	if !sameSet(entries[0], mh2) || !sameSet(entries[1], mh1) {
		t.Fatal("entries differ from the pieces' multihashes")
	}
	for i, pc := range []cid.Cid{p2, p1} {
		ad := ads[i]
		if ad.IsRm || string(ad.ContextID) != string(pc.Bytes()) || ad.Provider != e.a.PeerID().String() ||
			len(ad.Addresses) != 1 || ad.Addresses[0] != e.cfg.RetrievalAddrs[0].String() {
			t.Fatalf("ad %d: %+v", i, ad)
		}
		md := metadata.Default.New()
		if err := md.UnmarshalBinary(ad.Metadata); err != nil {
			t.Fatal(err)
		}
		if md.Get(multicodec.TransportIpfsGatewayHttp) == nil {
			t.Fatalf("metadata %v lacks the trustless gateway", md.Protocols())
		}
	}

	rm, err := e.a.RemovePiece(ctx, p1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.RemovePiece(ctx, p1); !errors.Is(err, ErrNotAnnounced) {
		t.Fatalf("second removal: %v", err)
	}
	ads, _ = syncChain(t, e)
	if len(ads) != 3 || !ads[0].IsRm || string(ads[0].ContextID) != string(p1.Bytes()) {
		t.Fatalf("removal ad: %+v", ads[0])
	}
	// Announce again after removal: a fresh ad.
	ad3, err := e.a.AnnouncePiece(ctx, p1)
	if err != nil || ad3.Equals(ad1) {
		t.Fatalf("re-announce after removal: %s %v", ad3, err)
	}

	// The indexer heard of every head, with our peer ID in the addresses.
	e.ix.mu.Lock()
	var heard []cid.Cid
	for _, m := range e.ix.msgs {
		heard = append(heard, m.Cid)
		addrs, err := m.GetAddrs()
		if err != nil || len(addrs) != 1 {
			t.Fatalf("announce addrs %v %v", addrs, err)
		}
		if _, id := peer.SplitAddr(addrs[0]); id != e.a.PeerID() {
			t.Fatalf("announce address %s lacks our peer ID", addrs[0])
		}
	}
	e.ix.mu.Unlock()
	for _, c := range []cid.Cid{ad1, ad2, rm, ad3} {
		if !slices.ContainsFunc(heard, c.Equals) {
			t.Fatalf("indexer never heard of %s", c)
		}
	}

	list, err := e.a.Ads(ctx)
	if err != nil || len(list) != 4 || !list[2].IsRm || list[0].Entries != 25 || !list[3].AdCID.Equals(ad3) {
		t.Fatalf("Ads = %+v %v", list, err)
	}

	// A restart serves the same chain.
	a2, err := New(e.db, e.mhs, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	e.a = a2
	ads, _ = syncChain(t, e)
	if len(ads) != 4 {
		t.Fatalf("after restart: %d ads", len(ads))
	}
}

func TestAnnounceFailureKeepsAd(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	p, mhs := testPiece(t, 3, 4)
	e.mhs[p] = mhs
	e.ix.status = http.StatusServiceUnavailable
	ad, err := e.a.AnnouncePiece(ctx, p)
	if err == nil {
		t.Fatal("announce to a failing indexer succeeded")
	}
	if !ad.Defined() {
		t.Fatal("ad not returned with the announce error")
	}
	e.ix.status = 0
	again, err := e.a.AnnouncePiece(ctx, p)
	if err != nil || !again.Equals(ad) {
		t.Fatalf("retry: %s %v", again, err)
	}
	if list, _ := e.a.Ads(ctx); len(list) != 1 {
		t.Fatalf("%d ads after a retried announce", len(list))
	}
	if len(e.ix.msgs) != 1 || !e.ix.msgs[0].Cid.Equals(ad) {
		t.Fatalf("indexer messages %v", e.ix.msgs)
	}
}

func TestAnnounceErrors(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	unknown, _ := testPiece(t, 9, 1)
	if _, err := e.a.AnnouncePiece(ctx, unknown); err == nil {
		t.Fatal("announced a piece the index does not know")
	}
	empty, _ := testPiece(t, 8, 0)
	e.mhs[empty] = nil
	if _, err := e.a.AnnouncePiece(ctx, empty); err == nil {
		t.Fatal("announced a piece without blocks")
	}
	if h, _ := e.a.Head(ctx); h.Defined() {
		t.Fatal("failed announces left an ad")
	}
	if _, err := New(e.db, e.mhs, Config{}); err == nil {
		t.Fatal("New without a key")
	}
	if _, err := New(e.db, e.mhs, Config{PrivKey: e.key}); err == nil {
		t.Fatal("New without addresses")
	}
	resp, err := http.Get(e.srv.URL + "/ipni/v1/ad/notacid")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad CID status %d", resp.StatusCode)
	}
	missing, _ := blockPrefix.Sum([]byte(`{"x":1}`))
	resp, err = http.Get(e.srv.URL + "/ipni/v1/ad/" + missing.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown CID status %d", resp.StatusCode)
	}
}

var _ = basicnode.Prototype.Any

// waitAnnounce waits for the next announcement ix takes.
func waitAnnounce(t *testing.T, ix *indexer, what string) message.Message {
	t.Helper()
	select {
	case m := <-ix.got:
		return m
	case <-time.After(time.Minute):
		t.Fatalf("%s: no announcement arrived", what)
		return message.Message{}
	}
}

// TestAnnounceAtStart restarts the announcer with two more indexers, one
// failing at first: at start each is told of the current head, without a
// new ad, and the failing one is retried until it takes it.
func TestAnnounceAtStart(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	p, mhs := testPiece(t, 5, 4)
	e.mhs[p] = mhs
	ad, err := e.a.AnnouncePiece(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}

	e.ix.got = make(chan message.Message, 10)
	fresh := &indexer{got: make(chan message.Message, 10)}
	flaky := &indexer{got: make(chan message.Message, 10), fails: 2}
	var urls []string
	for _, ix := range []*indexer{fresh, flaky} {
		s := httptest.NewServer(ix)
		t.Cleanup(s.Close)
		urls = append(urls, s.URL)
	}
	cfg := e.cfg
	cfg.AnnounceURLs = append([]string{e.ixs.URL}, urls...)
	cfg.RetryInterval = time.Millisecond
	if e.a, err = New(e.db, e.mhs, cfg); err != nil {
		t.Fatal(err)
	}
	e.a.Start(ctx)
	for name, ix := range map[string]*indexer{"the old indexer": e.ix, "a new indexer": fresh, "an indexer failing at first": flaky} {
		m := waitAnnounce(t, ix, name)
		if !m.Cid.Equals(ad) {
			t.Errorf("%s was told of %s, want the head %s", name, m.Cid, ad)
		}
		addrs, err := m.GetAddrs()
		if err != nil || len(addrs) != 1 || !strings.HasPrefix(addrs[0].String(), e.cfg.RetrievalAddrs[0].String()) {
			t.Errorf("%s got publisher addresses %v (%v)", name, addrs, err)
		}
	}
	if list, _ := e.a.Ads(ctx); len(list) != 1 {
		t.Fatalf("%d ads after a restart, want the one", len(list))
	}

	// A later ad that an indexer refuses is retried by the loop too.
	flaky.mu.Lock()
	flaky.fails = 1
	flaky.mu.Unlock()
	p2, mhs2 := testPiece(t, 6, 3)
	e.mhs[p2] = mhs2
	ad2, err := e.a.AnnouncePiece(ctx, p2)
	if err == nil || !strings.Contains(err.Error(), urls[1]) {
		t.Fatalf("announce with a refusing indexer: %v, want its error", err)
	}
	if m := waitAnnounce(t, fresh, "a new ad"); !m.Cid.Equals(ad2) {
		t.Fatalf("new ad announced as %s, want %s", m.Cid, ad2)
	}
	if m := waitAnnounce(t, flaky, "a refused new ad, retried"); !m.Cid.Equals(ad2) {
		t.Fatalf("retried announce of %s, want %s", m.Cid, ad2)
	}
}

// Indexers tells which indexers still have to take the head: one that
// refused it is pending until the announce loop got it through.
func TestIndexerStates(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.RetryInterval = time.Millisecond
	var err error
	if e.a, err = New(e.db, e.mhs, cfg); err != nil {
		t.Fatal(err)
	}
	e.a.Start(ctx)
	p, mhs := testPiece(t, 7, 3)
	e.mhs[p] = mhs
	e.ix.mu.Lock()
	e.ix.status = http.StatusServiceUnavailable
	e.ix.got = make(chan message.Message, 10)
	e.ix.mu.Unlock()
	if _, err := e.a.AnnouncePiece(ctx, p); err == nil {
		t.Fatal("an indexer refused the announcement, yet no error")
	}
	st := e.a.Indexers()
	if len(st) != 1 || st[0].URL != e.ixs.URL || !st[0].Pending {
		t.Fatalf("indexers %+v after a refusal, want the one pending", st)
	}
	e.ix.mu.Lock()
	e.ix.status = 0
	e.ix.mu.Unlock()
	waitAnnounce(t, e.ix, "the retried head")
	for deadline := time.Now().Add(time.Minute); e.a.Indexers()[0].Pending; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the indexer stays pending after it took the head: %+v", e.a.Indexers())
		}
	}
}
