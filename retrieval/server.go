// Package retrieval serves stored data over HTTP and fetches it back with
// verification.
//
// The server answers
//
//	GET|HEAD /piece/{pieceCid}      the piece's bytes (fr32 removed), with Range;
//	                                for a piece CID v2, its payload's alone
//	GET|HEAD /ipfs/{cid}[/{path}]   an IPFS trustless gateway: one block
//	                                (application/vnd.ipld.raw, bare CIDs) or a
//	                                CAR (application/vnd.ipld.car) with paths
//	                                through UnixFS directories (HAMT-sharded
//	                                too) and DAG-CBOR nodes, dag-scope,
//	                                entity-bytes, dups and filename
//
// from the piece directory (package index) and reads of the unsealed
// copies: 404 for what is not stored here, 410 for a piece with no unsealed
// copy left, 503 with Retry-After while one is being made (a lotus-miner
// unsealing it, index.ErrUnsealing). /piece/ is ours. /ipfs/ is boxo's gateway (trustless responses
// only) over Blockstore, a read-only blockstore backed by the index, with
// two fast paths of ours where they are measurably faster: a whole DAG
// streams the root's piece section by section while checking each is the
// block the depth-first walk expects next (dagCAR), and an entity-bytes
// range of a UnixFS file reads only the blocks it needs (rangeCAR). Both
// send exactly what boxo sends for the same request.
//
// FetchPiece and FetchCAR are the matching clients: they check the piece
// commitment, or every block's hash and the DAG's completeness, while the
// bytes stream; ResolvePath walks a content path over the blocks a gateway
// sends.
package retrieval

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ipfs/boxo/gateway"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/piece"
)

// Media types of the responses.
const (
	PieceContentType = "application/piece"
	RawContentType   = "application/vnd.ipld.raw"
	CARContentType   = "application/vnd.ipld.car"
)

// Directory is what the server asks the piece directory; *index.Service
// provides it.
type Directory interface {
	PiecesContaining(ctx context.Context, mh multihash.Multihash) ([]index.Location, error)
	FindSegment(ctx context.Context, subPieceCid cid.Cid) ([]index.SegmentInfo, error)
	Piece(ctx context.Context, pieceCid cid.Cid) (index.PieceInfo, error)
}

// Server is the HTTP retrieval handler.
type Server struct {
	dir Directory
	src index.PieceSource
	mux *http.ServeMux
	gw  http.Handler // /ipfs/
}

// Option configures a Server.
type Option func(*options)

type options struct {
	libraryOnly bool
}

// WithLibraryOnly serves every /ipfs/ request through boxo, without the
// fast paths for whole DAGs and entity-bytes ranges; for comparisons.
func WithLibraryOnly() Option { return func(o *options) { o.libraryOnly = true } }

// New returns the retrieval handler. src opens pieces; it should wrap
// index.ErrNotFound for pieces it does not have and index.ErrNoUnsealedCopy
// for pieces it cannot read unsealed.
func New(dir Directory, src index.PieceSource, opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{dir: dir, src: src, mux: http.NewServeMux()}
	be, err := newBackend(NewBlockstore(dir, src), !o.libraryOnly)
	if err != nil {
		return nil, err
	}
	s.gw = gateway.NewHandler(gateway.Config{
		DisableHTMLErrors: true,
		// The gateway's metrics stay with this handler, out of the
		// process-wide registry.
		MetricsRegistry: prometheus.NewRegistry(),
	}, be)
	s.mux.HandleFunc("GET /piece/{cid}", s.servePiece)
	s.mux.Handle("/ipfs/", s.gw)
	return s, nil
}

// Handler returns s as an http.Handler, for mounting at the server root.
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/ipfs/") {
		// Straight to the gateway: the mux would redirect paths it
		// thinks unclean, which the gateway judges itself.
		if r.Method == http.MethodHead {
			w = &headWriter{ResponseWriter: w}
		}
		s.gw.ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// errHeadBody stops the body of a HEAD response at its first write.
var errHeadBody = errors.New("retrieval: no body for HEAD")

// headWriter sends the headers of a HEAD response at the body's first
// write and refuses the body: the gateway writes a CAR's headers, then
// streams the CAR even for HEAD, which would read a whole DAG for
// nothing.
type headWriter struct {
	http.ResponseWriter
	status bool
}

func (h *headWriter) WriteHeader(code int) {
	h.status = true
	h.ResponseWriter.WriteHeader(code)
}

func (h *headWriter) Write([]byte) (int, error) {
	if !h.status {
		h.WriteHeader(http.StatusOK)
	}
	return 0, errHeadBody
}

// pieceSection is the part of an open piece that holds the requested piece:
// all of it, or a data segment of an aggregate.
type pieceSection struct {
	pr        index.PieceReader
	off, size int64
}

// openPiece opens pieceCid directly or as a verified data segment of an
// aggregate. A piece neither the source nor the directory knows gives
// index.ErrNotFound; one the directory knows but the source cannot read
// gives the source's error (index.ErrNoUnsealedCopy, normally).
func (s *Server) openPiece(ctx context.Context, pc cid.Cid) (pieceSection, error) {
	pr, err := s.src.ReadPiece(ctx, pc)
	if err == nil {
		return pieceSection{pr, 0, pr.Size()}, nil
	}
	if !errors.Is(err, index.ErrNotFound) && !errors.Is(err, index.ErrNoUnsealedCopy) {
		return pieceSection{}, err
	}
	segs, serr := s.dir.FindSegment(ctx, pc)
	if serr != nil {
		return pieceSection{}, fmt.Errorf("%w (and looking it up in aggregates: %v)", err, serr)
	}
	for _, sg := range segs {
		apr, aerr := s.src.ReadPiece(ctx, sg.PieceCID)
		if aerr != nil {
			err = fmt.Errorf("aggregate %s holding it: %w", sg.PieceCID, aerr)
			continue
		}
		return pieceSection{apr, int64(sg.Offset), int64(sg.Size)}, nil
	}
	if len(segs) == 0 && errors.Is(err, index.ErrNoUnsealedCopy) {
		// The source says "no copy" for pieces it never had too: only a
		// piece the directory knows is called gone.
		if _, perr := s.dir.Piece(ctx, pc); errors.Is(perr, index.ErrNotFound) {
			return pieceSection{}, fmt.Errorf("piece %s: %w", pc, index.ErrNotFound)
		}
	}
	return pieceSection{}, err
}

func (s *Server) servePiece(w http.ResponseWriter, r *http.Request) {
	c, err := cid.Decode(r.PathValue("cid"))
	if err != nil {
		http.Error(w, fmt.Sprintf("bad piece CID %q: %v", r.PathValue("cid"), err), http.StatusBadRequest)
		return
	}
	pc, v2size, payload, err := piece.ParseAnyCID(c)
	if err != nil {
		http.Error(w, fmt.Sprintf("bad piece CID: %v", err), http.StatusBadRequest)
		return
	}
	sec, err := s.openPiece(r.Context(), pc)
	if err != nil {
		pieceError(w, c, err)
		return
	}
	defer sec.pr.Close()
	// A piece CID v2 names the payload: its bytes, without the zeros that
	// fill the piece after it.
	if v2size != 0 {
		if payload > uint64(sec.size) {
			http.Error(w, fmt.Sprintf("piece %s is not stored here (its payload is larger than the piece %s stored)", c, pc), http.StatusNotFound)
			return
		}
		sec.size = int64(payload)
	}
	h := w.Header()
	h.Set("Content-Type", PieceContentType)
	h.Set("ETag", `"`+c.String()+`"`)
	h.Set("Cache-Control", "public, max-age=29030400, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	if rh := r.Header.Get("Range"); rh != "" {
		r.Header.Set("Range", dropEmptySuffixRanges(rh, sec.size))
	}
	sr := newSectionReader(sec.pr, sec.off, sec.size)
	defer sr.Close()
	http.ServeContent(chunkWriter{w, sr}, r, "", time.Time{}, sr)
}

// dropEmptySuffixRanges removes the suffix ranges of length zero
// ("bytes=-0") from a Range header, which RFC 9110 calls unsatisfiable but
// http.ServeContent answers with an empty 206 and an inverted
// Content-Range. When nothing satisfiable is left it returns a range that
// starts at size, so that ServeContent answers 416 (after its If-Range
// check, which may still turn the request into a plain 200). Headers that
// are not byte ranges are returned as they are, for ServeContent to judge.
func dropEmptySuffixRanges(h string, size int64) string {
	specs, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return h
	}
	var kept []string
	dropped := false
	for _, spec := range strings.Split(specs, ",") {
		t := strings.TrimSpace(spec)
		if rest, ok := strings.CutPrefix(t, "-"); ok && rest != "" && strings.Trim(rest, "0") == "" {
			dropped = true
			continue
		}
		kept = append(kept, spec)
	}
	switch {
	case !dropped:
		return h
	case strings.TrimSpace(strings.Join(kept, "")) == "":
		return fmt.Sprintf("bytes=%d-", size)
	}
	return "bytes=" + strings.Join(kept, ",")
}

// retryUnsealing is the Retry-After of a piece being unsealed.
const retryUnsealing = time.Minute

func pieceError(w http.ResponseWriter, c cid.Cid, err error) {
	switch {
	case errors.Is(err, index.ErrNoUnsealedCopy):
		http.Error(w, fmt.Sprintf("piece %s has no unsealed copy to serve: %v", c, err), http.StatusGone)
	case errors.Is(err, index.ErrUnsealing):
		w.Header().Set("Retry-After", strconv.Itoa(int(retryUnsealing.Seconds())))
		http.Error(w, fmt.Sprintf("piece %s is being unsealed, try again later: %v", c, err), http.StatusServiceUnavailable)
	case errors.Is(err, index.ErrNotFound):
		http.Error(w, fmt.Sprintf("piece %s is not stored here", c), http.StatusNotFound)
	default:
		http.Error(w, fmt.Sprintf("reading piece %s: %v", c, err), http.StatusInternalServerError)
	}
}
