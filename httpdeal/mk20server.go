package httpdeal

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/oklog/ulid/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/httpdeal/mk20"
)

// MK20Path is where Curio's Market 2.0 API is mounted.
const MK20Path = "/market/mk20"

// Chunk sizes of a chunked upload (Curio's defaults) and the payload limit.
const (
	DefaultMinChunkSize = 16 << 20
	DefaultMaxChunkSize = 256 << 20
	// MaxUploadSize is the largest payload: the capacity of a 64 GiB piece.
	MaxUploadSize = uint64(64<<30) / 128 * 127
	// DefaultChunkRateLimit is Curio's per-IP limit on chunk uploads.
	DefaultChunkRateLimit = 100
	// DefaultMaxParallelUploads bounds the chunk and serial uploads
	// running at once.
	DefaultMaxParallelUploads = 16
	// DefaultRetryInterval is how often failed hand-offs are retried.
	DefaultRetryInterval = time.Minute
)

// minAllocationSize is the verified registry's smallest allocation
// (MinimumVerifiedAllocationSize), 1 MiB.
const minAllocationSize = abi.PaddedPieceSize(1 << 20)

// ContentTypeJSON is the only content type of mk20's JSON bodies.
const ContentTypeJSON = "application/json"

// contentTypeBytes is the content type of uploaded chunks.
const contentTypeBytes = "application/octet-stream"

// ErrStagingFull is what Staging.Reserve returns (wrapped) when there is
// no room: the deal is answered 429 and the client may try later.
var ErrStagingFull = errors.New("staging area full")

// MK20Chain is what the mk20 routes read from the chain, with Lotus'
// names; chain.Node has them.
type MK20Chain interface {
	ChainHead(ctx context.Context) (*chain.TipSet, error)
	StateLookupID(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (address.Address, error)
	// StateGetAllocation returns the client's allocation id, nil when
	// there is none.
	StateGetAllocation(ctx context.Context, client address.Address, id chain.AllocationID, tsk chain.TipSetKey) (*chain.Allocation, error)
}

// Staging admits deal data into the staging area: the same budget (the
// market's staging tags) every deal draws from.
type Staging interface {
	// Reserve reserves n bytes of staging for the deal named id, failing
	// with ErrStagingFull when they do not fit. Reserving again for the
	// same id changes nothing. The market takes the reservation over when
	// it takes the deal (MK20Market.Start).
	Reserve(ctx context.Context, id string, n uint64) error
	// Release drops the deal's reservation; one that is gone is no error.
	Release(ctx context.Context, id string) error
	// Reservations lists the ids of the reservations made through Reserve
	// and still held, for Start to release those of deals that died
	// before their hand-off.
	Reservations(ctx context.Context) ([]string, error)
}

// MK20Market takes mk20 deals once their data is on its way and reports
// how far they got. An error of Check or Start that is (or wraps) an
// *mk20.Rejection refuses the deal with its code and reason; any other
// error is the provider's and the hand-off is tried again later.
type MK20Market interface {
	// Check makes the market's checks of a deal that was just proposed,
	// before its data is received, and takes nothing.
	Check(ctx context.Context, d *mk20.Deal) error
	// Start hands a deal over. For an upload, path is the staged payload,
	// its CommP checked against the deal's piece CID; the market then owns
	// the file and takes the deal's staging reservation over as its own
	// (Staging), in one step. For an http source path is "" and the
	// market downloads the data into its own staging, taking the
	// reservation over likewise; for offline deals it waits for the
	// operator. Start is called again for the same deal after a crash
	// between Start and recording it: it must do nothing the second time.
	Start(ctx context.Context, d *mk20.Deal, path string) error
	// State returns where a handed-over deal is and, when it failed, why.
	State(ctx context.Context, id ulid.ULID) (mk20.State, string, error)
}

// MK20Config configures the Market 2.0 routes.
type MK20Config struct {
	// Miner is this provider's miner actor.
	Miner address.Address
	// SectorSize bounds the pieces taken.
	SectorSize abi.SectorSize
	// SealEpochs is how long sealing takes in epochs: a start epoch must
	// be at least this far after the chain head (Curio's
	// ExpectedPoRepSealDuration).
	SealEpochs abi.ChainEpoch
	// StagingDir holds uploads until the market takes them.
	StagingDir string
	// MinChunkSize and MaxChunkSize bound a chunked upload's chunk size
	// (powers of two); 0 means DefaultMinChunkSize, DefaultMaxChunkSize.
	MinChunkSize, MaxChunkSize int64
	// MaxParallelUploads bounds the uploads running at once (429 beyond);
	// 0 means DefaultMaxParallelUploads.
	MaxParallelUploads int
	// RateLimit and ChunkRateLimit are the per-IP requests per second of
	// each route and of the chunk route; 0 means DefaultRateLimit and
	// DefaultChunkRateLimit.
	RateLimit, ChunkRateLimit int
	// NodeID names this node when several share the database (a
	// cluster): an upload is received by one node, the one it started
	// on, whose staging directory holds its file; its chunks and finalize
	// sent to another node are passed on to it (NodeURL) or, without
	// NodeURL, answered 421 Misdirected Request, and only its node hands
	// it over. "" on a single node.
	NodeID string
	// NodeURL, in a cluster, returns the HTTP base URL of another node
	// (where it serves MK20Path): a request for an upload another node
	// receives is then passed on to it rather than answered 421, so
	// clients may send every request to any node.
	NodeURL func(ctx context.Context, node string) (string, error)
	// Peers, in a cluster, is how its nodes know the requests they pass
	// on to each other; nil leaves forwarded requests counted in the rate
	// limits under the forwarding node's address.
	Peers *PeerAuth
	// Sources are the data sources taken (GET /sources lists them; a deal
	// with another gets ErrUnsupportedDataSource); nil takes every source
	// mk20.SupportedSources names.
	Sources []mk20.SourceName
	// RetryInterval is how often hand-offs that failed on the provider's
	// side are tried again and uploads that can no longer meet their
	// start epoch are failed; 0 means DefaultRetryInterval.
	RetryInterval time.Duration
	// Now is the clock of CurioAuth and the rate limits; nil is time.Now.
	Now func() time.Time
	// Logf receives operational lines; nil uses the standard logger.
	Logf func(format string, args ...any)
}

// PeerAuth is how the nodes of a cluster know the requests they pass on to
// each other: Token goes with each request this node forwards (header
// X-Ferry-Peer-Token), and Verify accepts the tokens of the cluster's
// nodes. A forwarded request whose token Verify accepts counts in this
// node's rate limits under its client's address (the last X-Forwarded-For
// entry, which the forwarding node set): the client is limited at the
// node it reached and here as itself, and a node forwarding many clients'
// requests does not use up one address's limit.
type PeerAuth struct {
	Token  string
	Verify func(token string) bool
}

// peerToken is the header of PeerAuth.Token.
const peerToken = "X-Ferry-Peer-Token"

// fromPeer reports whether r was forwarded by another node of the cluster.
func (m *MK20) fromPeer(r *http.Request) bool {
	t := r.Header.Get(peerToken)
	return m.cfg.Peers != nil && t != "" && m.cfg.Peers.Verify(t)
}

// MK20Deps are the parts the Market 2.0 routes work with.
type MK20Deps struct {
	// DB is Ferry's database with the 0060_mk20 migration applied.
	DB      *sql.DB
	Chain   MK20Chain
	Staging Staging
	Market  MK20Market
}

// MK20 serves Curio's Market 2.0 API (see NewMK20). Create it with
// NewMK20, Start it, and Close it when done.
type MK20 struct {
	cfg   MK20Config
	d     MK20Deps
	store *mk20Store
	mux   *http.ServeMux
	slots chan struct{}   // one per running upload
	peers *http.Transport // to the other nodes of a cluster (uploads they receive)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	hashers map[ulid.ULID]*prefixHasher // guarded by mu
	verify  map[ulid.ULID]bool          // deals whose CommP a goroutine computes; guarded by mu
}

// NewMK20 returns the Market 2.0 routes under MK20Path:
//
//	POST /deal  GET /status/{id}  POST /update/{id}
//	GET /products  GET /sources  GET /contracts
//	POST /uploads/{id}  GET /uploads/{id}  PUT /uploads/{id}/{n}  POST /uploads/finalize/{id}
//	PUT /upload/{id}  POST /upload/{id}
//
// Every route needs a CurioAuth header (401 without a valid one, for the
// current, previous or next minute); on the {id} routes its signer must be
// the deal's client (401 otherwise, as Curio answers). Deal answers are
// text "Reason: <why>" with Curio's codes (mk20.DealCode).
func NewMK20(cfg MK20Config, d MK20Deps) (*MK20, error) {
	switch {
	case cfg.Miner == address.Undef:
		return nil, errors.New("httpdeal: MK20Config.Miner is not set")
	case cfg.StagingDir == "":
		return nil, errors.New("httpdeal: MK20Config.StagingDir is not set")
	case d.DB == nil || d.Chain == nil || d.Staging == nil || d.Market == nil:
		return nil, errors.New("httpdeal: MK20Deps needs DB, Chain, Staging and Market")
	}
	if cfg.MinChunkSize == 0 {
		cfg.MinChunkSize = DefaultMinChunkSize
	}
	if cfg.MaxChunkSize == 0 {
		cfg.MaxChunkSize = DefaultMaxChunkSize
	}
	if cfg.MinChunkSize&(cfg.MinChunkSize-1) != 0 || cfg.MaxChunkSize&(cfg.MaxChunkSize-1) != 0 || cfg.MinChunkSize > cfg.MaxChunkSize {
		return nil, fmt.Errorf("httpdeal: chunk sizes %d…%d must be powers of two, the minimum first", cfg.MinChunkSize, cfg.MaxChunkSize)
	}
	if cfg.MaxParallelUploads <= 0 {
		cfg.MaxParallelUploads = DefaultMaxParallelUploads
	}
	if cfg.ChunkRateLimit <= 0 {
		cfg.ChunkRateLimit = DefaultChunkRateLimit
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.Sources == nil {
		cfg.Sources = mk20.SupportedSources()
	}
	for _, src := range cfg.Sources {
		if !slices.Contains(mk20.SupportedSources(), src) {
			return nil, fmt.Errorf("httpdeal: source %q is not one Ferry takes (%v)", src, mk20.SupportedSources())
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	m := &MK20{
		cfg: cfg, d: d,
		store: &mk20Store{db: d.DB, now: cfg.Now},
		slots: make(chan struct{}, cfg.MaxParallelUploads),
		// The nodes' own addresses: no proxy from the environment.
		peers:   &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: time.Minute},
		hashers: make(map[ulid.ULID]*prefixHasher),
		verify:  make(map[ulid.ULID]bool),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.mux = http.NewServeMux()
	route := func(limit int, pattern string, h func(http.ResponseWriter, *http.Request, address.Address)) {
		l := newRateLimiter(limit, cfg.Now)
		l.peer = m.fromPeer
		m.mux.Handle(pattern, l.wrap(m.auth(h)))
	}
	p := MK20Path
	route(cfg.RateLimit, "POST "+p+"/deal", m.postDeal)
	route(cfg.RateLimit, "GET "+p+"/status/{id}", m.status)
	route(cfg.RateLimit, "POST "+p+"/update/{id}", m.update)
	route(cfg.RateLimit, "GET "+p+"/products", m.products)
	route(cfg.RateLimit, "GET "+p+"/sources", m.sources)
	route(cfg.RateLimit, "GET "+p+"/contracts", m.contracts)
	route(cfg.RateLimit, "POST "+p+"/uploads/{id}", m.uploadStart)
	route(cfg.RateLimit, "GET "+p+"/uploads/{id}", m.uploadStatus)
	route(cfg.ChunkRateLimit, "PUT "+p+"/uploads/{id}/{n}", m.uploadChunk)
	route(cfg.RateLimit, "POST "+p+"/uploads/finalize/{id}", m.uploadFinalize)
	route(cfg.RateLimit, "PUT "+p+"/upload/{id}", m.serialUpload)
	route(cfg.RateLimit, "POST "+p+"/upload/{id}", m.serialFinalize)
	return m, nil
}

// ServeHTTP serves the routes.
func (m *MK20) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.mux.ServeHTTP(w, r) }

// Start resumes what a restart interrupted, before the routes serve:
// staging reservations of deals that died before their hand-off (never
// recorded, or failed) are released with their files, deals accepted but
// not yet handed to the market are handed over, and finalized uploads
// whose CommP was not yet checked are checked. Then, until Close, it tries
// failed hand-offs again every RetryInterval and fails uploads that can no
// longer be sealed by their start epoch.
func (m *MK20) Start(ctx context.Context) error {
	if err := m.sweepStaging(ctx); err != nil {
		return err
	}
	if err := m.resume(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return nil
	}
	m.wg.Add(1)
	go m.retryLoop()
	return nil
}

// resume hands the pending deals over (an upload's after its CommP check).
func (m *MK20) resume(ctx context.Context) error {
	ids, err := m.store.pending(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		d, err := m.store.deal(ctx, id)
		if err != nil {
			return err
		}
		if d.Source != mk20.SourcePut {
			if err := m.handOff(ctx, d, ""); err != nil {
				m.cfg.Logf("httpdeal: handing mk20 deal %s to the market: %v", id, err)
			}
			continue
		}
		if up, err := m.store.upload(ctx, id); err != nil || !m.here(up) {
			continue // another node's file, which that node hands over
		}
		m.verifyLater(id)
	}
	return nil
}

// retryLoop runs resume and expireUploads every RetryInterval until Close.
func (m *MK20) retryLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		if err := m.resume(m.ctx); err != nil && m.ctx.Err() == nil {
			m.cfg.Logf("httpdeal: retrying hand-offs: %v", err)
		}
		if err := m.expireUploads(m.ctx); err != nil && m.ctx.Err() == nil {
			m.cfg.Logf("httpdeal: expiring uploads: %v", err)
		}
	}
}

// expireUploads fails the deals still waiting for their upload whose start
// epoch no longer leaves SealEpochs to seal: they hold staging space
// nothing can use.
func (m *MK20) expireUploads(ctx context.Context) error {
	ids, err := m.store.uploading(ctx)
	if err != nil || len(ids) == 0 {
		return err
	}
	head, err := m.d.Chain.ChainHead(ctx)
	if err != nil {
		return fmt.Errorf("reading the chain head: %w", err)
	}
	for _, id := range ids {
		d, err := m.store.deal(ctx, id)
		if err != nil {
			return err
		}
		s := d.Deal.Products.DDOV1.StartEpoch
		if s == nil || *s >= head.Height()+m.cfg.SealEpochs {
			continue
		}
		why := fmt.Sprintf("the upload did not finish in time to seal the piece by its start epoch %d (chain head %d)", *s, head.Height())
		if rej := m.fail(ctx, id, why); rej != nil {
			return rej
		}
		m.cfg.Logf("httpdeal: mk20 deal %s failed: %s", id, why)
	}
	return nil
}

// sweepStaging releases the reservations (and removes the staging files)
// of deals that will never be handed over: never recorded (a crash between
// the reservation and the deal's row), or failed (a crash during fail).
// Those of handed-over deals, which the market did not take, go too.
func (m *MK20) sweepStaging(ctx context.Context) error {
	res, err := m.d.Staging.Reservations(ctx)
	if err != nil {
		return fmt.Errorf("httpdeal: listing staging reservations: %w", err)
	}
	for _, s := range res {
		id, err := ulid.ParseStrict(s)
		if err == nil {
			d, derr := m.store.deal(ctx, id)
			switch {
			case derr == nil && d.State != mk20.StateFailed && !d.HandedOff:
				continue // a live deal's
			case derr != nil && !errors.Is(derr, errNotFound):
				return derr
			}
		}
		if err := m.dropStaging(ctx, s); err != nil {
			return err
		}
		m.cfg.Logf("httpdeal: released the staging reservation of %s, whose deal is no longer waiting for its data", s)
	}
	return nil
}

// Close stops the CommP checks running in the background and waits for
// them; they start again at the next Start.
func (m *MK20) Close() error {
	m.mu.Lock()
	m.cancel()
	m.mu.Unlock()
	m.wg.Wait()
	m.peers.CloseIdleConnections()
	return nil
}

// auth checks the CurioAuth header and, on {id} routes, that its signer
// owns the deal, then calls h with the signer.
func (m *MK20) auth(h func(http.ResponseWriter, *http.Request, address.Address)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := r.Header.Get("Authorization")
		if hdr == "" {
			http.Error(w, "Missing Authorization header", http.StatusUnauthorized)
			return
		}
		signer, err := mk20.VerifyAuth(hdr, r.Method, r.URL.EscapedPath(), m.cfg.Now())
		if err != nil {
			m.cfg.Logf("httpdeal: %s %s from %s: %v", r.Method, r.URL.Path, r.RemoteAddr, err)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		if id := r.PathValue("id"); id != "" {
			owner, err := m.store.owner(r.Context(), canonicalID(id))
			if err != nil && !errors.Is(err, errNotFound) {
				m.cfg.Logf("httpdeal: %s %s: %v", r.Method, r.URL.Path, err)
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			if owner != signer.String() {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
		}
		h(w, r, signer)
	})
}

// canonicalID is a ULID as stored (upper case); what is not a ULID is
// returned as is and matches no deal.
func canonicalID(s string) string {
	id, err := ulid.ParseStrict(s)
	if err != nil {
		return s
	}
	return id.String()
}

// pathID parses the {id} of a route, answering 400 itself when it is not
// a ULID.
func pathID(w http.ResponseWriter, r *http.Request) (ulid.ULID, bool) {
	id, err := ulid.ParseStrict(r.PathValue("id"))
	if err != nil {
		http.Error(w, "invalid id in url", http.StatusBadRequest)
		return ulid.ULID{}, false
	}
	return id, true
}

// reason writes a deal answer: the code and "Reason: <why>".
func reason(w http.ResponseWriter, rej *mk20.Rejection) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if rej == nil {
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "Reason: ")
		return
	}
	w.WriteHeader(int(rej.Code))
	fmt.Fprint(w, "Reason: ", rej.Reason)
}

// internal logs err and returns the 500 rejection, whose reason says no
// more than Curio's.
func (m *MK20) internal(what string, err error) *mk20.Rejection {
	m.cfg.Logf("httpdeal: %s: %v", what, err)
	return mk20.Reject(mk20.ErrServerInternalError, "Internal server error")
}

// serverError logs err and answers 500 with no body, for the routes that
// answer no deal Reason.
func (m *MK20) serverError(w http.ResponseWriter, what string, err error) {
	m.internal(what, err)
	w.WriteHeader(http.StatusInternalServerError)
}

// readJSON reads a JSON body of at most mk20.MaxBodySize bytes with
// exactly Content-Type application/json. optional allows an empty body,
// returned as nil.
func readJSON(w http.ResponseWriter, r *http.Request, optional bool) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, mk20.MaxBodySize))
	if err != nil {
		http.Error(w, "error reading request body: "+err.Error(), http.StatusBadRequest)
		return nil, false
	}
	if optional && len(bytes.TrimSpace(body)) == 0 {
		return nil, true
	}
	if !hasContentType(w, r, ContentTypeJSON) {
		return nil, false
	}
	return body, true
}

// hasContentType reports whether a request's Content-Type is exactly ct,
// answering 400 itself when not.
func hasContentType(w http.ResponseWriter, r *http.Request, ct string) bool {
	if r.Header.Get("Content-Type") != ct {
		http.Error(w, "invalid content type", http.StatusBadRequest)
		return false
	}
	return true
}

// writeJSON answers 200 with v.
func (m *MK20) writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		m.serverError(w, "encoding an answer", err)
		return
	}
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (m *MK20) postDeal(w http.ResponseWriter, r *http.Request, signer address.Address) {
	body, ok := readJSON(w, r, false)
	if !ok {
		return
	}
	d, err := mk20.DecodeDeal(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	reason(w, m.accept(ctx, d, signer, body))
}

// accept validates a new deal, admits its data into staging, records it
// and hands it to the market when its data is not an upload.
func (m *MK20) accept(ctx context.Context, d *mk20.Deal, signer address.Address, body []byte) *mk20.Rejection {
	if rej := d.Validate(signer); rej != nil {
		return rej
	}
	pi, rej := m.checkDDO(ctx, d)
	if rej != nil {
		return rej
	}
	if src := d.Data.Source(); !slices.Contains(m.cfg.Sources, src) {
		return mk20.Reject(mk20.ErrUnsupportedDataSource, "data source %s is not enabled on this provider", src)
	}
	row := &dealRow{ID: d.Identifier, Client: d.Client, Deal: d, Source: d.Data.Source(), Piece: pi, State: mk20.StateAccepted}
	if row.Source == mk20.SourcePut {
		row.State = mk20.StateUploading
	}
	if prev, err := m.store.deal(ctx, d.Identifier); err == nil {
		// The same deal sent again (an answer lost, say) is accepted
		// again, unless it failed since; anything else under a taken
		// identifier is refused.
		same, _ := json.Marshal(prev.Deal)
		again, _ := json.Marshal(d)
		switch {
		case prev.Client != d.Client || !bytes.Equal(same, again):
			return mk20.Reject(mk20.ErrBadProposal, "deal identifier %s is already used", d.Identifier)
		case prev.State == mk20.StateFailed:
			return mk20.Reject(mk20.ErrBadProposal, "deal %s failed: %s", d.Identifier, prev.Error)
		}
		return nil
	} else if !errors.Is(err, errNotFound) {
		return m.internal("reading deal", err)
	}
	if err := m.d.Market.Check(ctx, d); err != nil {
		return m.rejection("checking the deal with the market", err)
	}
	if row.Source != mk20.SourceOffline {
		if err := m.d.Staging.Reserve(ctx, d.Identifier.String(), pi.RawSize); err != nil {
			if errors.Is(err, ErrStagingFull) {
				return mk20.Reject(mk20.ErrServiceOverloaded, "MK20 ingestion backpressure is active. Please try again later.")
			}
			return m.internal("reserving staging", err)
		}
	}
	inserted, err := m.store.insertDeal(ctx, row)
	if err != nil || !inserted {
		if row.Source != mk20.SourceOffline {
			if rerr := m.d.Staging.Release(ctx, d.Identifier.String()); rerr != nil {
				m.cfg.Logf("httpdeal: releasing staging of deal %s: %v", d.Identifier, rerr)
			}
		}
		if err != nil {
			return m.internal("storing deal", err)
		}
		return mk20.Reject(mk20.ErrBadProposal, "deal identifier %s is already used", d.Identifier)
	}
	if row.Source != mk20.SourcePut {
		if err := m.handOff(ctx, row, ""); err != nil {
			var rej *mk20.Rejection
			if errors.As(err, &rej) {
				return rej // the deal failed
			}
			// Tried again later; the deal stands.
			m.cfg.Logf("httpdeal: handing mk20 deal %s to the market (tried again later): %v", d.Identifier, err)
		}
	}
	return nil
}

// rejection is the answer for an error of the market: its rejection, or
// the internal error.
func (m *MK20) rejection(what string, err error) *mk20.Rejection {
	var rej *mk20.Rejection
	if errors.As(err, &rej) {
		return rej
	}
	return m.internal(what, err)
}

// handOff gives the deal to the market and records it. A deal the market
// refuses fails, and its rejection is returned.
func (m *MK20) handOff(ctx context.Context, d *dealRow, path string) error {
	err := m.d.Market.Start(ctx, d.Deal, path)
	var rej *mk20.Rejection
	if errors.As(err, &rej) {
		if frej := m.fail(ctx, d.ID, rej.Reason); frej != nil {
			return fmt.Errorf("failing deal %s the market refused (%s): %s", d.ID, rej.Reason, frej.Reason)
		}
		return rej
	}
	if err != nil {
		return err
	}
	return m.store.setHandedOff(ctx, d.ID)
}

// checkDDO makes the checks of a ddo_v1 deal that need the chain or the
// provider's settings, with Curio's codes and reasons.
func (m *MK20) checkDDO(ctx context.Context, d *mk20.Deal) (mk20.PieceInfo, *mk20.Rejection) {
	ddo := d.Products.DDOV1
	if ddo.Provider != m.cfg.Miner {
		return mk20.PieceInfo{}, mk20.Reject(mk20.ErrBadProposal, "Provider %s is not this provider (%s)", ddo.Provider, m.cfg.Miner)
	}
	if d.Data == nil {
		return mk20.PieceInfo{}, mk20.Reject(mk20.ErrBadProposal, "Data Source must be defined for a DDO deal")
	}
	pi, err := mk20.ParsePieceCID(d.Data.PieceCID)
	if err != nil {
		return pi, mk20.Reject(mk20.ErrBadProposal, "Error getting deal size from PieceCID")
	}
	if m.cfg.SectorSize != 0 && uint64(pi.Size) > uint64(m.cfg.SectorSize) {
		return pi, mk20.Reject(mk20.ErrBadProposal, "Deal size is larger than the miner's sector size")
	}
	if d.Data.Format.Raw != nil && d.Products.RetrievalV1.Indexing {
		return pi, mk20.Reject(mk20.ErrBadProposal, "Raw bytes deal cannot be indexed")
	}
	if ddo.MarketAddress != "" {
		return pi, mk20.Reject(mk20.ErrBadProposal, "provider does not work with this market")
	}
	if na := ddo.NotificationAddress; na != address.Undef && !na.Empty() {
		if _, err := m.d.Chain.StateLookupID(ctx, na, chain.EmptyTSK); err != nil {
			return pi, mk20.Reject(mk20.ErrBadProposal, "Notification address is not valid")
		}
	}
	head, err := m.d.Chain.ChainHead(ctx)
	if err != nil {
		return pi, m.internal("reading the chain head", err)
	}
	if s := ddo.StartEpoch; s != nil {
		if *s < head.Height() {
			return pi, mk20.Reject(mk20.ErrBadProposal, "Start epoch is less than the current chain height")
		}
		if *s < head.Height()+m.cfg.SealEpochs {
			return pi, mk20.Reject(mk20.ErrBadProposal, "Start epoch is less than the current chain height plus the expected PoRep seal duration")
		}
	}
	if ddo.AllocationID == nil {
		return pi, nil
	}
	if pi.Size < minAllocationSize {
		return pi, mk20.Reject(mk20.ErrBadProposal, "Verified piece size must be at least 1MB")
	}
	client, err := address.NewFromString(d.Client)
	if err != nil {
		return pi, mk20.Reject(mk20.ErrBadProposal, "Client address is not valid")
	}
	alloc, err := m.d.Chain.StateGetAllocation(ctx, client, chain.AllocationID(*ddo.AllocationID), chain.EmptyTSK)
	if err != nil {
		return pi, m.internal("reading allocation", err)
	}
	if alloc == nil {
		return pi, mk20.Reject(mk20.ErrBadProposal, "Verified piece must have a valid allocation ID")
	}
	if prov, err := address.NewIDAddress(uint64(alloc.Provider)); err != nil || prov != m.cfg.Miner {
		return pi, mk20.Reject(mk20.ErrBadProposal, "Allocation provider does not belong to the list of miners in Curio cluster")
	}
	switch {
	case !pi.PieceCID.Equals(alloc.Data):
		return pi, mk20.Reject(mk20.ErrBadProposal, "Allocation data CID does not match the piece CID")
	case pi.Size != alloc.Size:
		return pi, mk20.Reject(mk20.ErrBadProposal, "Allocation size does not match the piece size")
	case alloc.TermMin > ddo.Duration:
		return pi, mk20.Reject(mk20.ErrBadProposal, "Allocation term min is greater than deal duration")
	case alloc.TermMax < ddo.Duration:
		return pi, mk20.Reject(mk20.ErrBadProposal, "Allocation term max is less than deal duration")
	case ddo.StartEpoch != nil && alloc.Expiration < *ddo.StartEpoch:
		return pi, mk20.Reject(mk20.ErrBadProposal, "Allocation expiration is less than deal start epoch")
	}
	return pi, nil
}

func (m *MK20) status(w http.ResponseWriter, r *http.Request, _ address.Address) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	d, err := m.store.deal(ctx, id)
	if errors.Is(err, errNotFound) {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if err != nil {
		m.serverError(w, "reading deal status", err)
		return
	}
	st := &mk20.StatusResponse{State: d.State, ErrorMsg: d.Error}
	if d.HandedOff {
		if st.State, st.ErrorMsg, err = m.d.Market.State(ctx, id); err != nil {
			m.serverError(w, "reading the market's deal state", err)
			return
		}
	}
	m.writeJSON(w, mk20.ProductStatus{DDOV1: st})
}

func (m *MK20) products(w http.ResponseWriter, _ *http.Request, _ address.Address) {
	m.writeJSON(w, mk20.ProductList{Products: mk20.SupportedProducts()})
}

func (m *MK20) sources(w http.ResponseWriter, _ *http.Request, _ address.Address) {
	m.writeJSON(w, mk20.SourceList{Sources: m.cfg.Sources})
}

func (m *MK20) contracts(w http.ResponseWriter, _ *http.Request, _ address.Address) {
	m.writeJSON(w, mk20.ContractList{Contracts: []string{}})
}

// merge fills what the stored deal lacks from an update, as Curio does:
// data and products already set are kept. The identifier must match.
func merge(stored, upd *mk20.Deal, id ulid.ULID) (*mk20.Deal, *mk20.Rejection) {
	if upd.Identifier != id {
		return nil, mk20.Reject(mk20.ErrBadProposal, "deal ID and proposal ID do not match")
	}
	out := *stored
	if out.Data == nil {
		out.Data = upd.Data
	}
	if out.Products.DDOV1 == nil {
		out.Products.DDOV1 = upd.Products.DDOV1
	}
	if out.Products.RetrievalV1 == nil {
		out.Products.RetrievalV1 = upd.Products.RetrievalV1
	}
	if out.Products.PDPV1 == nil {
		out.Products.PDPV1 = upd.Products.PDPV1
	}
	return &out, nil
}

// updated decodes an update body, validates it and the deal it makes.
func (m *MK20) updated(body []byte, stored *dealRow, signer address.Address) (*mk20.Deal, *mk20.Rejection) {
	upd, err := mk20.DecodeDeal(body)
	if err != nil {
		return nil, mk20.Reject(mk20.ErrBadProposal, "%v", err)
	}
	if rej := upd.Validate(signer); rej != nil {
		return nil, rej
	}
	nd, rej := merge(stored.Deal, upd, stored.ID)
	if rej != nil {
		return nil, rej
	}
	if rej := nd.Validate(signer); rej != nil {
		return nil, rej
	}
	return nd, nil
}

func (m *MK20) update(w http.ResponseWriter, r *http.Request, signer address.Address) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	body, ok := readJSON(w, r, false)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	stored, err := m.store.deal(ctx, id)
	if errors.Is(err, errNotFound) {
		reason(w, mk20.Reject(mk20.ErrDealNotFound, ""))
		return
	}
	if err != nil {
		reason(w, m.internal("reading deal", err))
		return
	}
	nd, rej := m.updated(body, stored, signer)
	if rej == nil {
		if err := m.store.updateDeal(ctx, id, nd); err != nil {
			rej = m.internal("updating deal", err)
		}
	}
	reason(w, rej)
}

// uploadDeal reads the deal of an upload route, answering itself
// when there is none or it is no upload.
func (m *MK20) uploadDeal(ctx context.Context, w http.ResponseWriter, id ulid.ULID) (*dealRow, bool) {
	d, err := m.store.deal(ctx, id)
	if errors.Is(err, errNotFound) || (err == nil && d.Source != mk20.SourcePut) {
		http.Error(w, "deal not found", http.StatusNotFound)
		return nil, false
	}
	if err != nil {
		m.serverError(w, "reading deal", err)
		return nil, false
	}
	return d, true
}

// stagingPath is where an upload's bytes go: named by the deal's UUID
// (DealUUID), as the market names the staging files of its deals, so
// that once the market has the deal the file is one of them.
func (m *MK20) stagingPath(id ulid.ULID) string {
	return filepath.Join(m.cfg.StagingDir, DealUUID(id).String()+".upload")
}

// DealUUID is the UUID of an mk20 deal: its ULID's 16 bytes. The market
// knows the deal by it once the deal is handed over.
func DealUUID(id ulid.ULID) uuid.UUID { return uuid.UUID(id) }
