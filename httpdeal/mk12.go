package httpdeal

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/filecoin-project/go-address"

	"github.com/ferry-fil/ferry/wire"
)

// Routes of Curio's mk12 over HTTP, under MK12Path.
const (
	MK12Path       = "/market/mk12"
	MK12StorePath  = MK12Path + "/store"
	MK12StatusPath = MK12Path + "/status"
	MK12AskPath    = MK12Path + "/ask"
)

// Limits of the mk12 routes, Curio's: a deal proposal may be 4 MiB (the
// libp2p protocol's own limit, wire.MaxMessageSize), a status or ask request
// 1 MiB.
const (
	MK12MaxProposal = wire.MaxMessageSize
	MK12MaxRequest  = 1 << 20
)

// ContentTypeCBOR is the only request content type the mk12 routes take, and
// the type of their answers.
const ContentTypeCBOR = "application/cbor"

// requestTimeout bounds the work behind one request, as Curio's
// http.TimeoutHandler does.
const requestTimeout = 10 * time.Second

// MK12Provider is the deal market behind the mk12 routes: the same calls
// the libp2p protocol handlers make. market.Provider satisfies it.
type MK12Provider interface {
	// Propose validates and admits a deal proposal. clientPeer names the
	// proposer; over HTTP there is no peer and it is empty.
	Propose(ctx context.Context, params *wire.DealParams, clientPeer string) wire.DealResponse
	// Status answers a deal status request, checking its signature.
	Status(ctx context.Context, req *wire.DealStatusRequest) wire.DealStatusResponse
	// Ask returns the provider's current signed storage ask.
	Ask(ctx context.Context) (*wire.SignedStorageAsk, error)
}

// MK12Config configures the mk12 routes.
type MK12Config struct {
	// Miner is the provider's miner actor: an ask request for another miner
	// gets an empty answer, as over libp2p.
	Miner address.Address
	// RateLimit is the requests per second one IP address may make to each
	// route; 0 means DefaultRateLimit.
	RateLimit int
	// Logf receives a line for each request that fails; nil uses the
	// standard logger.
	Logf func(format string, args ...any)
	// Now is the clock of the rate limiter; nil is time.Now.
	Now func() time.Time
}

// NewMK12 returns the handler of Curio's mk12 routes (MK12StorePath,
// MK12StatusPath, MK12AskPath). Requests and answers are the CBOR messages
// of the libp2p deal protocols, byte for byte; the status and ask requests
// are GETs with a body, as Curio's client sends them. A request whose
// Content-Type is not exactly application/cbor, or whose body does not
// decode, gets 400 with an empty body; one beyond the rate limit 429. The
// status request's signature is checked (by the provider's Status), which
// Curio does not do.
func NewMK12(cfg MK12Config, p MK12Provider) http.Handler {
	logf := cfg.Logf
	if logf == nil {
		logf = log.Printf
	}
	h := &mk12{cfg: cfg, p: p, logf: logf}
	mux := http.NewServeMux()
	route := func(pattern string, f http.HandlerFunc) {
		// Each route has its own limiter, as in Curio.
		mux.Handle(pattern, newRateLimiter(cfg.RateLimit, cfg.Now).wrap(f))
	}
	route("POST "+MK12StorePath, h.store)
	route("GET "+MK12StatusPath, h.status)
	route("GET "+MK12AskPath, h.ask)
	return mux
}

type mk12 struct {
	cfg  MK12Config
	p    MK12Provider
	logf func(format string, args ...any)
}

// read decodes the CBOR body of r into m, answering 400 itself when it
// cannot.
func (h *mk12) read(w http.ResponseWriter, r *http.Request, m wire.Message, limit int64) bool {
	if ct := r.Header.Get("Content-Type"); ct != ContentTypeCBOR {
		h.logf("httpdeal: %s %s from %s: content type %q, want %s", r.Method, r.URL.Path, r.RemoteAddr, ct, ContentTypeCBOR)
		w.WriteHeader(http.StatusBadRequest)
		return false
	}
	if err := wire.Read(http.MaxBytesReader(w, r.Body, limit), m, limit); err != nil {
		h.logf("httpdeal: %s %s from %s: %v", r.Method, r.URL.Path, r.RemoteAddr, err)
		w.WriteHeader(http.StatusBadRequest)
		return false
	}
	return true
}

// write answers 200 with the CBOR of m.
func (h *mk12) write(w http.ResponseWriter, r *http.Request, m wire.Message) {
	var buf bytes.Buffer
	if err := wire.Write(&buf, m); err != nil {
		h.logf("httpdeal: %s %s: %v", r.Method, r.URL.Path, err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ContentTypeCBOR)
	w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(buf.Bytes()); err != nil {
		h.logf("httpdeal: answering %s %s to %s: %v", r.Method, r.URL.Path, r.RemoteAddr, err)
	}
}

func (h *mk12) store(w http.ResponseWriter, r *http.Request) {
	var params wire.DealParams
	if !h.read(w, r, &params, MK12MaxProposal) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	resp := h.p.Propose(ctx, &params, "")
	h.write(w, r, &resp)
}

func (h *mk12) status(w http.ResponseWriter, r *http.Request) {
	var req wire.DealStatusRequest
	if !h.read(w, r, &req, MK12MaxRequest) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	resp := h.p.Status(ctx, &req)
	h.write(w, r, &resp)
}

func (h *mk12) ask(w http.ResponseWriter, r *http.Request) {
	var req wire.AskRequest
	if !h.read(w, r, &req, MK12MaxRequest) {
		return
	}
	// As over libp2p, another miner's ask, or none yet, is an empty answer.
	var resp wire.AskResponse
	if req.Miner == h.cfg.Miner {
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		ask, err := h.p.Ask(ctx)
		if err != nil {
			h.logf("httpdeal: reading the ask for %s: %v", r.RemoteAddr, err)
		}
		resp.Ask = ask
	}
	h.write(w, r, &resp)
}
