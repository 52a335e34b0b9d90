// Package ipni publishes Ferry's content to IPNI indexers: an advertisement
// chain signed with the provider's libp2p key, one context ID per piece (the
// piece CID's bytes), the piece's multihashes in entry chunks, metadata
// saying the content is served over HTTP as an IPFS trustless gateway.
//
// The chain lives in SQLite (tables ipni_*), so it survives restarts and can
// be served at any time. Handler serves it with go-libipni's ipni-sync HTTP
// publisher (GET /ipni/v1/ad/head and /ipni/v1/ad/{cid}); after each new ad
// an announce message goes over HTTP to the configured indexers, which then
// sync the chain from us.
//
// Start runs the announce loop: it announces the current head to every
// configured indexer when the announcer starts (so that indexers added to
// the configuration since the last run learn of the chain without waiting
// for a new ad), and it retries each indexer that failed to take an
// announcement, the one at start or one made when an ad was published,
// with growing back-off until it does or the announcer closes.
package ipni

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipni/go-libipni/announce/httpsender"
	"github.com/ipni/go-libipni/announce/message"
	"github.com/ipni/go-libipni/dagsync/ipnisync"
	"github.com/ipni/go-libipni/ingest/schema"
	"github.com/ipni/go-libipni/maurl"
	"github.com/ipni/go-libipni/metadata"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/db"
)

// DefaultEntriesPerChunk is how many multihashes go in one entry chunk.
const DefaultEntriesPerChunk = 16384

// DefaultTopic is the topic named in the signed head, the one mainnet
// indexers listen on.
const DefaultTopic = "/indexer/ingest/mainnet"

// ErrNotAnnounced is returned by RemovePiece for a piece that has no
// active advertisement.
var ErrNotAnnounced = errors.New("piece is not announced")

// Multihashes lists the multihashes of a piece; *index.Service provides it.
type Multihashes interface {
	PieceBlocks(ctx context.Context, pieceCid cid.Cid) iter.Seq2[multihash.Multihash, error]
}

// Config is what the announcer needs from the node.
type Config struct {
	// PrivKey is the provider's libp2p identity; ads and heads are signed
	// with it and its peer ID is the provider ID.
	PrivKey crypto.PrivKey
	// RetrievalAddrs are the provider addresses put in ads: where the
	// content is served (e.g. /dns/sp.example/tcp/443/https).
	RetrievalAddrs []multiaddr.Multiaddr
	// PublisherAddrs are where indexers fetch the chain from (the HTTP
	// server that mounts Handler), sent in announce messages. Empty means
	// RetrievalAddrs.
	PublisherAddrs []multiaddr.Multiaddr
	// AnnounceURLs are indexer announce endpoints (e.g.
	// https://cid.contact/announce); none means ads are only published.
	AnnounceURLs []string
	// Metadata is put in every ad; nil means IPFS trustless gateway over HTTP.
	Metadata []byte
	// EntriesPerChunk defaults to DefaultEntriesPerChunk.
	EntriesPerChunk int
	// Topic defaults to DefaultTopic.
	Topic string
	// HTTPClient sends announcements; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// RetryInterval is the first wait before an indexer that failed to take
	// an announcement is tried again; each further failure doubles it, up
	// to MaxRetryInterval. Zero means DefaultRetryInterval.
	RetryInterval time.Duration
}

// DefaultRetryInterval is the first wait before a failed announcement is
// sent again.
const DefaultRetryInterval = 10 * time.Second

// MaxRetryInterval bounds the wait between two tries of one indexer.
const MaxRetryInterval = 10 * time.Minute

// endpoint is one indexer's announce URL with its own sender, so that each
// indexer is retried on its own.
type endpoint struct {
	url    string
	sender *httpsender.Sender
}

// Announcer builds, stores, serves and announces the advertisement chain.
type Announcer struct {
	db       *sql.DB
	mhs      Multihashes
	cfg      Config
	peerID   peer.ID
	lsys     ipld.LinkSystem
	pub      *ipnisync.Publisher
	indexers []endpoint
	mu       sync.Mutex // one chain append at a time

	// The announce loop (Start): retry holds the indexers (by position in
	// indexers) that have not taken the current head, each with the count
	// of failures handed over (so that one handed over again while the
	// loop sends is kept); wake tells the loop that one was added.
	retryMu sync.Mutex
	running bool
	retry   map[int]int
	wake    chan struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

// AdInfo describes one advertisement of the chain.
type AdInfo struct {
	Seq       int64
	AdCID     cid.Cid
	ContextID []byte
	PieceCID  cid.Cid
	IsRm      bool
	Entries   int64
	CreatedAt time.Time
}

// HTTPMultiaddr converts an http(s) URL such as https://sp.example:443 to
// the multiaddr form ads and announcements carry.
func HTTPMultiaddr(u string) (multiaddr.Multiaddr, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("parsing URL %q: %w", u, err)
	}
	ma, err := maurl.FromURL(pu)
	if err != nil {
		return nil, fmt.Errorf("converting URL %q to a multiaddr: %w", u, err)
	}
	return ma, nil
}

// New returns an announcer over the chain stored in sqldb; mhs lists the
// multihashes of a piece when it is announced.
func New(sqldb *sql.DB, mhs Multihashes, cfg Config) (*Announcer, error) {
	if cfg.PrivKey == nil {
		return nil, errors.New("ipni: the provider's private key is required")
	}
	if len(cfg.RetrievalAddrs) == 0 {
		return nil, errors.New("ipni: at least one retrieval address is required")
	}
	id, err := peer.IDFromPrivateKey(cfg.PrivKey)
	if err != nil {
		return nil, fmt.Errorf("ipni: peer ID of the provider key: %w", err)
	}
	if cfg.EntriesPerChunk <= 0 {
		cfg.EntriesPerChunk = DefaultEntriesPerChunk
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.Metadata == nil {
		md := metadata.Default.New(metadata.IpfsGatewayHttp{})
		if cfg.Metadata, err = md.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("ipni: encoding metadata: %w", err)
		}
	}
	if len(cfg.Metadata) > schema.MaxMetadataLen {
		return nil, fmt.Errorf("ipni: metadata of %d bytes exceeds %d", len(cfg.Metadata), schema.MaxMetadataLen)
	}
	if len(cfg.PublisherAddrs) == 0 {
		cfg.PublisherAddrs = cfg.RetrievalAddrs
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	a := &Announcer{db: sqldb, mhs: mhs, cfg: cfg, peerID: id, retry: map[int]int{}, wake: make(chan struct{}, 1)}
	for _, s := range cfg.AnnounceURLs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("ipni: announce URL %q: %w", s, err)
		}
		snd, err := httpsender.New([]*url.URL{u}, id, httpsender.WithClient(cfg.HTTPClient))
		if err != nil {
			return nil, fmt.Errorf("ipni: creating the announce sender for %s: %w", s, err)
		}
		a.indexers = append(a.indexers, endpoint{url: s, sender: snd})
	}
	a.lsys = cidlink.DefaultLinkSystem()
	a.lsys.StorageReadOpener = a.open
	a.pub, err = ipnisync.NewPublisher(a.lsys, cfg.PrivKey, ipnisync.WithStartServer(false), ipnisync.WithHeadTopic(cfg.Topic))
	if err != nil {
		return nil, fmt.Errorf("ipni: creating the publisher: %w", err)
	}
	head, err := a.Head(context.Background())
	if err != nil {
		return nil, err
	}
	if head.Defined() {
		a.pub.SetRoot(head)
	}
	return a, nil
}

// PeerID returns the provider's peer ID.
func (a *Announcer) PeerID() peer.ID { return a.peerID }

// Handler serves the chain under /ipni/v1/ad/ (head and blocks); mount it
// at that prefix.
func (a *Announcer) Handler() http.Handler { return a.pub }

// Start runs the announce loop until Close: the current head (if there is
// one) goes to every configured indexer now, and any indexer that fails to
// take an announcement is tried again later. Call it once, when the
// handler is being served, so that indexers can sync what they are told of.
func (a *Announcer) Start(ctx context.Context) {
	if len(a.indexers) == 0 {
		return
	}
	a.retryMu.Lock()
	defer a.retryMu.Unlock()
	if a.running {
		return
	}
	ctx, a.stop = context.WithCancel(ctx)
	a.done = make(chan struct{})
	a.running = true
	for i := range a.indexers {
		a.retry[i]++
	}
	go a.loop(ctx)
}

// loop announces the head to the indexers in a.retry until each took it,
// waiting longer after each round that left some behind.
func (a *Announcer) loop(ctx context.Context) {
	defer close(a.done)
	wait := a.cfg.RetryInterval
	for {
		a.retryMu.Lock()
		todo := maps.Clone(a.retry)
		a.retryMu.Unlock()
		failed := false
		if len(todo) > 0 {
			h, err := a.Head(ctx)
			if err != nil {
				failed = true
			}
			for i, gen := range todo {
				if err != nil || !h.Defined() {
					break
				}
				if a.sendTo(ctx, a.indexers[i], h) != nil {
					failed = true
					continue
				}
				a.retryMu.Lock()
				if a.retry[i] == gen {
					delete(a.retry, i)
				}
				a.retryMu.Unlock()
			}
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if failed {
			timer = time.NewTimer(wait)
			fire = timer.C
			wait = min(2*wait, MaxRetryInterval)
		} else {
			wait = a.cfg.RetryInterval
		}
		select {
		case <-ctx.Done():
		case <-a.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// IndexerState is whether one configured indexer has taken the current
// head of the advertisement chain.
type IndexerState struct {
	URL string `json:"url"`
	// Pending is set while the announce loop still retries the head with
	// it, after Failures failed attempts.
	Pending  bool `json:"pending"`
	Failures int  `json:"failures,omitempty"`
}

// Indexers says, for each configured indexer, whether it has taken the
// current head (as far as this process knows: an indexer is not pending
// until an announcement to it failed).
func (a *Announcer) Indexers() []IndexerState {
	a.retryMu.Lock()
	defer a.retryMu.Unlock()
	out := make([]IndexerState, len(a.indexers))
	for i, ix := range a.indexers {
		n, pending := a.retry[i]
		out[i] = IndexerState{URL: ix.url, Pending: pending, Failures: n}
	}
	return out
}

// retryLater hands indexer i to the announce loop, if it runs.
func (a *Announcer) retryLater(i int) {
	a.retryMu.Lock()
	if !a.running {
		a.retryMu.Unlock()
		return
	}
	a.retry[i]++
	a.retryMu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Close stops the announce loop and releases idle announce connections.
func (a *Announcer) Close() error {
	a.retryMu.Lock()
	running := a.running
	a.running = false
	a.retryMu.Unlock()
	if running {
		a.stop()
		<-a.done
	}
	for _, ix := range a.indexers {
		ix.sender.Close()
	}
	return a.pub.Close()
}

// open is the link system's read side: blocks come from ipni_blocks.
func (a *Announcer) open(lctx ipld.LinkContext, lnk ipld.Link) (io.Reader, error) {
	cl, ok := lnk.(cidlink.Link)
	if !ok {
		return nil, fmt.Errorf("unsupported link type %T", lnk)
	}
	ctx := lctx.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	var data []byte
	err := a.db.QueryRowContext(ctx, `SELECT data FROM ipni_blocks WHERE cid = ?`, cl.Cid.Bytes()).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ipld.ErrNotExists{}
	}
	if err != nil {
		return nil, fmt.Errorf("loading IPNI block %s: %w", cl.Cid, err)
	}
	return bytes.NewReader(data), nil
}

var blockPrefix = cid.Prefix{Version: 1, Codec: cid.DagJSON, MhType: multihash.SHA2_256, MhLength: -1}

// storeNode encodes n as dag-json and stores it, returning its CID.
func storeNode(ctx context.Context, ex execer, n ipld.Node) (cid.Cid, error) {
	data, err := ipld.Encode(n, dagjson.Encode)
	if err != nil {
		return cid.Undef, fmt.Errorf("encoding dag-json: %w", err)
	}
	c, err := blockPrefix.Sum(data)
	if err != nil {
		return cid.Undef, err
	}
	if _, err := ex.ExecContext(ctx, `INSERT INTO ipni_blocks (cid, data) VALUES (?, ?) ON CONFLICT (cid) DO NOTHING`, c.Bytes(), data); err != nil {
		return cid.Undef, fmt.Errorf("storing IPNI block %s: %w", c, err)
	}
	return c, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Head returns the CID of the latest advertisement, or cid.Undef when none
// was published yet.
func (a *Announcer) Head(ctx context.Context) (cid.Cid, error) {
	return head(ctx, a.db)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func head(ctx context.Context, q querier) (cid.Cid, error) {
	var s string
	err := q.QueryRowContext(ctx, `SELECT ad_cid FROM ipni_ads ORDER BY seq DESC LIMIT 1`).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return cid.Undef, nil
	}
	if err != nil {
		return cid.Undef, fmt.Errorf("reading the IPNI head: %w", err)
	}
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("stored IPNI head %q: %w", s, err)
	}
	return c, nil
}

// ContextID returns the context ID under which a piece is advertised: the
// bytes of its piece CID.
func ContextID(pieceCid cid.Cid) []byte { return pieceCid.Bytes() }

// AnnouncePiece advertises the blocks of pieceCid (as listed by the
// Multihashes source) under ContextID(pieceCid) and announces the new head
// to the indexers. If the piece is already advertised, no new ad is made:
// the current head is announced again and the piece's ad returned, so
// calling it twice is safe. An announce failure is returned after the ad is
// stored; the ad stays in the chain either way.
func (a *Announcer) AnnouncePiece(ctx context.Context, pieceCid cid.Cid) (cid.Cid, error) {
	ctxID := ContextID(pieceCid)
	a.mu.Lock()
	adCid, active, err := a.contextState(ctx, ctxID)
	if err != nil {
		a.mu.Unlock()
		return cid.Undef, err
	}
	if !active {
		adCid, err = a.publishAdd(ctx, ctxID, pieceCid)
	}
	a.mu.Unlock()
	if err != nil {
		return cid.Undef, err
	}
	return adCid, a.Announce(ctx)
}

// RemovePiece publishes a removal ad (IsRm) for pieceCid's context ID, as
// when its deal ends, and announces it. A piece that is not advertised
// gives ErrNotAnnounced.
func (a *Announcer) RemovePiece(ctx context.Context, pieceCid cid.Cid) (cid.Cid, error) {
	ctxID := ContextID(pieceCid)
	a.mu.Lock()
	_, active, err := a.contextState(ctx, ctxID)
	if err == nil && !active {
		err = fmt.Errorf("removing piece %s from IPNI: %w", pieceCid, ErrNotAnnounced)
	}
	var adCid cid.Cid
	if err == nil {
		adCid, err = a.publish(ctx, ctxID, pieceCid, schema.Advertisement{
			Entries: schema.NoEntries,
			IsRm:    true,
		}, 0)
	}
	a.mu.Unlock()
	if err != nil {
		return cid.Undef, err
	}
	return adCid, a.Announce(ctx)
}

func (a *Announcer) contextState(ctx context.Context, ctxID []byte) (cid.Cid, bool, error) {
	var (
		s      string
		active bool
	)
	err := a.db.QueryRowContext(ctx, `SELECT ad_cid, active FROM ipni_contexts WHERE context_id = ?`, ctxID).Scan(&s, &active)
	if errors.Is(err, sql.ErrNoRows) {
		return cid.Undef, false, nil
	}
	if err != nil {
		return cid.Undef, false, fmt.Errorf("reading IPNI context: %w", err)
	}
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, false, fmt.Errorf("stored ad CID %q: %w", s, err)
	}
	return c, active, nil
}

// publishAdd writes the entry chunks of pieceCid, then the ad.
func (a *Announcer) publishAdd(ctx context.Context, ctxID []byte, pieceCid cid.Cid) (cid.Cid, error) {
	if a.mhs == nil {
		return cid.Undef, errors.New("announcing: no multihash source configured")
	}
	// Chunks are chained back to front: each new chunk links to the one
	// written before it, and the ad links to the last one. Order within
	// the entries does not matter to indexers.
	var (
		next    ipld.Link
		chunk   = make([]multihash.Multihash, 0, a.cfg.EntriesPerChunk)
		total   int64
		storeCk = func() error {
			n, err := schema.EntryChunk{Entries: chunk, Next: next}.ToNode()
			if err != nil {
				return fmt.Errorf("building an entry chunk: %w", err)
			}
			c, err := storeNode(ctx, a.db, n)
			if err != nil {
				return err
			}
			next = cidlink.Link{Cid: c}
			chunk = chunk[:0]
			return nil
		}
	)
	for mh, err := range a.mhs.PieceBlocks(ctx, pieceCid) {
		if err != nil {
			return cid.Undef, fmt.Errorf("announcing piece %s: listing its blocks: %w", pieceCid, err)
		}
		chunk = append(chunk, mh)
		total++
		if len(chunk) == a.cfg.EntriesPerChunk {
			if err := storeCk(); err != nil {
				return cid.Undef, fmt.Errorf("announcing piece %s: %w", pieceCid, err)
			}
		}
	}
	if len(chunk) > 0 {
		if err := storeCk(); err != nil {
			return cid.Undef, fmt.Errorf("announcing piece %s: %w", pieceCid, err)
		}
	}
	if next == nil {
		return cid.Undef, fmt.Errorf("announcing piece %s: it has no blocks to advertise", pieceCid)
	}
	return a.publish(ctx, ctxID, pieceCid, schema.Advertisement{Entries: next, Metadata: a.cfg.Metadata}, total)
}

// publish signs ad on top of the current head and stores it as the new head.
func (a *Announcer) publish(ctx context.Context, ctxID []byte, pieceCid cid.Cid, ad schema.Advertisement, entries int64) (cid.Cid, error) {
	ad.Provider = a.peerID.String()
	ad.ContextID = ctxID
	for _, m := range a.cfg.RetrievalAddrs {
		ad.Addresses = append(ad.Addresses, m.String())
	}
	if err := ad.Validate(); err != nil {
		return cid.Undef, fmt.Errorf("building the ad for %s: %w", pieceCid, err)
	}
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return cid.Undef, fmt.Errorf("publishing the ad for %s: %w", pieceCid, err)
	}
	defer tx.Rollback()
	// One chain: ads published at once (by several nodes on one database)
	// take turns, each on top of the one before.
	if err := db.Serialize(ctx, tx, "ipni.chain"); err != nil {
		return cid.Undef, fmt.Errorf("publishing the ad for %s: %w", pieceCid, err)
	}
	prev, err := head(ctx, tx)
	if err != nil {
		return cid.Undef, err
	}
	if prev.Defined() {
		ad.PreviousID = cidlink.Link{Cid: prev}
	}
	if err := ad.Sign(a.cfg.PrivKey); err != nil {
		return cid.Undef, fmt.Errorf("signing the ad for %s: %w", pieceCid, err)
	}
	n, err := ad.ToNode()
	if err != nil {
		return cid.Undef, fmt.Errorf("building the ad for %s: %w", pieceCid, err)
	}
	adCid, err := storeNode(ctx, tx, n)
	if err != nil {
		return cid.Undef, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO ipni_ads (ad_cid, context_id, piece_cid, is_rm, entries, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		adCid.String(), ctxID, pieceCid.String(), ad.IsRm, entries, time.Now().Unix()); err != nil {
		return cid.Undef, fmt.Errorf("recording the ad for %s: %w", pieceCid, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO ipni_contexts (context_id, piece_cid, ad_cid, active) VALUES (?, ?, ?, ?)
		ON CONFLICT (context_id) DO UPDATE SET ad_cid = excluded.ad_cid, active = excluded.active`,
		ctxID, pieceCid.String(), adCid.String(), !ad.IsRm); err != nil {
		return cid.Undef, fmt.Errorf("recording the ad for %s: %w", pieceCid, err)
	}
	if err := tx.Commit(); err != nil {
		return cid.Undef, fmt.Errorf("recording the ad for %s: %w", pieceCid, err)
	}
	a.pub.SetRoot(adCid)
	return adCid, nil
}

// Announce sends the current head to every configured indexer over HTTP
// and returns the failures, one per indexer; with the announce loop
// running (Start), those indexers are tried again later. With no indexers
// configured, or no ads yet, it does nothing.
func (a *Announcer) Announce(ctx context.Context) error {
	if len(a.indexers) == 0 {
		return nil
	}
	h, err := a.Head(ctx)
	if err != nil || !h.Defined() {
		return err
	}
	var errs []error
	for i, ix := range a.indexers {
		if err := a.sendTo(ctx, ix, h); err != nil {
			errs = append(errs, err)
			a.retryLater(i)
		}
	}
	return errors.Join(errs...)
}

// sendTo announces head h to one indexer.
func (a *Announcer) sendTo(ctx context.Context, ix endpoint, h cid.Cid) error {
	msg := message.Message{Cid: h}
	msg.SetAddrs(a.cfg.PublisherAddrs)
	if err := ix.sender.Send(ctx, msg); err != nil {
		return fmt.Errorf("announcing IPNI head %s to %s: %w", h, ix.url, err)
	}
	return nil
}

// Ads lists the advertisement chain, oldest first.
func (a *Announcer) Ads(ctx context.Context) ([]AdInfo, error) {
	rows, err := a.db.QueryContext(ctx, `SELECT seq, ad_cid, context_id, piece_cid, is_rm, entries, created_at FROM ipni_ads ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("listing IPNI ads: %w", err)
	}
	defer rows.Close()
	var out []AdInfo
	for rows.Next() {
		var (
			ai      AdInfo
			ac, pc  string
			created int64
		)
		if err := rows.Scan(&ai.Seq, &ac, &ai.ContextID, &pc, &ai.IsRm, &ai.Entries, &created); err != nil {
			return nil, fmt.Errorf("listing IPNI ads: %w", err)
		}
		if ai.AdCID, err = cid.Decode(ac); err != nil {
			return nil, fmt.Errorf("stored ad CID %q: %w", ac, err)
		}
		if ai.PieceCID, err = cid.Decode(pc); err != nil {
			return nil, fmt.Errorf("stored piece CID %q: %w", pc, err)
		}
		ai.CreatedAt = time.Unix(created, 0)
		out = append(out, ai)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing IPNI ads: %w", err)
	}
	return out, nil
}

// PieceAd returns the latest advertisement of pieceCid (an ad or its
// removal) and whether the piece is advertised now; found is false for a
// piece never advertised.
func (a *Announcer) PieceAd(ctx context.Context, pieceCid cid.Cid) (ad AdInfo, active, found bool, err error) {
	adCid, active, err := a.contextState(ctx, ContextID(pieceCid))
	if err != nil || !adCid.Defined() {
		return ad, false, false, err
	}
	var created int64
	err = a.db.QueryRowContext(ctx, `SELECT seq, context_id, is_rm, entries, created_at FROM ipni_ads WHERE ad_cid = ?`, adCid.String()).
		Scan(&ad.Seq, &ad.ContextID, &ad.IsRm, &ad.Entries, &created)
	if err != nil {
		return ad, false, false, fmt.Errorf("reading IPNI ad %s of piece %s: %w", adCid, pieceCid, err)
	}
	ad.AdCID, ad.PieceCID, ad.CreatedAt = adCid, pieceCid, time.Unix(created, 0)
	return ad, active, true, nil
}

// IsAnnounced reports whether pieceCid is currently advertised.
func (a *Announcer) IsAnnounced(ctx context.Context, pieceCid cid.Cid) (bool, error) {
	_, active, err := a.contextState(ctx, ContextID(pieceCid))
	return active, err
}
