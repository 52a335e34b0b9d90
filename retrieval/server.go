// Package retrieval serves stored data over HTTP and fetches it back with
// verification.
//
// The server answers
//
//	GET|HEAD /piece/{pieceCid}  the piece's bytes (fr32 removed), with Range
//	GET|HEAD /ipfs/{cid}[/{path}] an IPFS trustless gateway: one block
//	                            (application/vnd.ipld.raw) or a CAR of the
//	                            DAG (application/vnd.ipld.car), with paths
//	                            through UnixFS directories (HAMT-sharded
//	                            too), dag-scope and entity-bytes
//
// from the piece directory (package index) and reads of the unsealed copies.
// FetchPiece and FetchCAR are the matching clients: they check the piece
// commitment, or every block's hash and the DAG's completeness, while the
// bytes stream.
package retrieval

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/multicodec"
	basicnode "github.com/ipld/go-ipld-prime/node/basic"
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
	old bool
}

// Option configures a Server.
type Option func(*options)

type options struct {
	libraryOnly bool
	handwritten     bool
}

// WithLibraryOnly serves every /ipfs/ request through boxo, without the
// fast paths for whole DAGs and entity-bytes ranges; for comparisons.
func WithLibraryOnly() Option { return func(o *options) { o.libraryOnly = true } }

// WithHandwrittenIPFS serves /ipfs/ with the handwritten gateway; for
// comparisons.
func WithHandwrittenIPFS() Option { return func(o *options) { o.handwritten = true } }

// New returns the retrieval handler. src opens pieces; it should wrap
// index.ErrNotFound for pieces it does not have and index.ErrNoUnsealedCopy
// for pieces it cannot read unsealed.
func New(dir Directory, src index.PieceSource, opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{dir: dir, src: src, mux: http.NewServeMux(), old: o.handwritten}
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
	s.mux.HandleFunc("GET /ipfs/{cid}", s.serveIPFS)
	s.mux.HandleFunc("GET /ipfs/{cid}/{path...}", s.serveIPFS)
	return s, nil
}

// Handler returns s as an http.Handler, for mounting at the server root.
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.old && strings.HasPrefix(r.URL.Path, "/ipfs/") {
		s.gw.ServeHTTP(w, r)
		return
	}
	// The mux would redirect a content path with "." or ".." segments or
	// doubled slashes to a cleaned one; they name nothing in UnixFS, so
	// they are refused here instead.
	if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/ipfs/"); ok {
		if _, p, ok := strings.Cut(rest, "/"); ok {
			if _, err := splitContentPath(p); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
	}
	s.mux.ServeHTTP(w, r)
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
	pc := c
	if c.Prefix().MhType == piece.MhV2 {
		if pc, _, _, err = piece.V2ToV1(c); err != nil {
			http.Error(w, fmt.Sprintf("bad piece CID %s: %v", c, err), http.StatusBadRequest)
			return
		}
	}
	if _, err := piece.ParseCID(pc); err != nil {
		http.Error(w, fmt.Sprintf("bad piece CID: %v", err), http.StatusBadRequest)
		return
	}
	sec, err := s.openPiece(r.Context(), pc)
	if err != nil {
		pieceError(w, c, err)
		return
	}
	defer sec.pr.Close()
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

func pieceError(w http.ResponseWriter, c cid.Cid, err error) {
	switch {
	case errors.Is(err, index.ErrNoUnsealedCopy):
		http.Error(w, fmt.Sprintf("piece %s has no unsealed copy to serve: %v", c, err), http.StatusGone)
	case errors.Is(err, index.ErrNotFound):
		http.Error(w, fmt.Sprintf("piece %s is not stored here", c), http.StatusNotFound)
	default:
		http.Error(w, fmt.Sprintf("reading piece %s: %v", c, err), http.StatusInternalServerError)
	}
}

// Response formats of /ipfs/.
const (
	formatRaw = "raw"
	formatCAR = "car"
)

// requestFormat picks raw or car from ?format= or the Accept header.
func requestFormat(r *http.Request) (string, int, error) {
	switch f := r.URL.Query().Get("format"); f {
	case formatRaw, formatCAR:
		return f, 0, nil
	case "":
	default:
		return "", http.StatusBadRequest, fmt.Errorf("format %q is not served: use raw or car", f)
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case RawContentType:
			return formatRaw, 0, nil
		case CARContentType:
			if v, ok := params["version"]; ok && v != "1" {
				continue
			}
			if o, ok := params["order"]; ok && o != "dfs" && o != "unk" {
				continue
			}
			return formatCAR, 0, nil
		}
	}
	return "", http.StatusNotAcceptable, fmt.Errorf("this is a trustless gateway: ask for %s or %s (Accept header or ?format=raw|car)", RawContentType, CARContentType)
}

// DAG scopes of CAR responses.
const (
	scopeAll    = "all"
	scopeEntity = "entity"
	scopeBlock  = "block"
)

func (s *Server) serveIPFS(w http.ResponseWriter, r *http.Request) {
	c, err := cid.Decode(r.PathValue("cid"))
	if err != nil {
		http.Error(w, fmt.Sprintf("bad CID %q: %v", r.PathValue("cid"), err), http.StatusBadRequest)
		return
	}
	var segs []string
	if _, p, ok := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/ipfs/"), "/"); ok {
		if segs, err = splitContentPath(p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	format, code, err := requestFormat(r)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	q := r.URL.Query()
	scope := scopeAll
	var eb *entityBytes
	if format == formatCAR {
		switch sc := q.Get("dag-scope"); sc {
		case "", scopeAll:
		case scopeEntity, scopeBlock:
			scope = sc
		default:
			http.Error(w, fmt.Sprintf("dag-scope %q is not one of all, entity, block", sc), http.StatusBadRequest)
			return
		}
		if v := q.Get("car-version"); v != "" && v != "1" {
			http.Error(w, fmt.Sprintf("car-version %q is not served: only 1", v), http.StatusBadRequest)
			return
		}
		if o := q.Get("car-order"); o != "" && o != "dfs" && o != "unk" {
			http.Error(w, fmt.Sprintf("car-order %q is not served: only dfs", o), http.StatusBadRequest)
			return
		}
		if q.Has("entity-bytes") {
			v, err := parseEntityBytes(q.Get("entity-bytes"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			// entity-bytes implies dag-scope=entity.
			if sc := q.Get("dag-scope"); sc != "" && sc != scopeEntity {
				http.Error(w, fmt.Sprintf("entity-bytes implies dag-scope=entity, not %s", sc), http.StatusBadRequest)
				return
			}
			scope, eb = scopeEntity, &v
		}
	} else if q.Has("entity-bytes") {
		http.Error(w, "entity-bytes is only served with CAR responses (format=car)", http.StatusBadRequest)
		return
	}
	l := newLoader(s.dir, s.src)
	defer l.close()
	data, err := l.load(r.Context(), c)
	if err != nil {
		blockError(w, c, err)
		return
	}
	res, err := resolvePath(r.Context(), l, c, data, segs)
	if err != nil {
		pathError(w, c, err)
		return
	}
	t := res.terminal
	plan := carPlan{root: c, visited: res.visited, terminal: t, scope: scope}
	if eb != nil && unixfsFileLike(t.c, t.data) {
		size, err := fileSize(t.c, t.data)
		if err != nil {
			http.Error(w, fmt.Sprintf("reading %s: %v", t.c, err), http.StatusInternalServerError)
			return
		}
		start, end, empty, outside := eb.resolve(size)
		switch {
		case outside && size > 0:
			http.Error(w, fmt.Sprintf("entity-bytes %s starts at or past the end of %s (%d bytes)", eb, t.c, size), http.StatusBadRequest)
			return
		case empty:
			// No byte of the file in range: the root block alone, from
			// which the client can learn the file's size.
			plan.scope = scopeBlock
		default:
			plan.rng = &byteRange{start, end}
		}
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "public, max-age=29030400, immutable")
	ipfsPath := "/ipfs/" + c.String()
	if len(segs) > 0 {
		ipfsPath += "/" + escapePath(segs)
		roots := make([]string, len(res.roots))
		for i, rc := range res.roots {
			roots[i] = rc.String()
		}
		h.Set("X-Ipfs-Roots", strings.Join(roots, ","))
	}
	h.Set("X-Ipfs-Path", ipfsPath)
	h.Add("Vary", "Accept")
	if format == formatRaw {
		h.Set("Content-Type", RawContentType)
		h.Set("ETag", `"`+t.c.String()+`.raw"`)
		h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", t.c.String()+".bin"))
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(t.data))
		return
	}
	h.Set("Content-Type", CARContentType+"; version=1; order=dfs; dups=n")
	h.Set("ETag", carETag(c, segs, scope, eb))
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", c.String()+".car"))
	if r.Method == http.MethodHead {
		return
	}
	// Send the status now: a failure later shows as a cut CAR.
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	bw := bufio.NewWriterSize(w, 256<<10)
	if err := writeCAR(r.Context(), bw, l, plan); err != nil {
		// The status is sent: cutting the stream is the only way to
		// tell the client the CAR is incomplete.
		panic(http.ErrAbortHandler)
	}
	if err := bw.Flush(); err != nil {
		panic(http.ErrAbortHandler)
	}
}

// carETag names a CAR response: the root, the scope, a hash of the path
// and the requested entity bytes, so that different requests never share
// one.
func carETag(root cid.Cid, segs []string, scope string, eb *entityBytes) string {
	tag := fmt.Sprintf("%s.car.%s", root, scope)
	if len(segs) > 0 {
		sum := sha256.Sum256([]byte(escapePath(segs)))
		tag += ".path-" + hex.EncodeToString(sum[:8])
	}
	if eb != nil {
		tag += ".bytes-" + eb.String()
	}
	return `"` + tag + `"`
}

// pathError answers a failure to resolve a content path.
func pathError(w http.ResponseWriter, root cid.Cid, err error) {
	switch {
	case errors.Is(err, errNoSuchName):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, errNotDirectory), errors.Is(err, errBadPath):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, ErrBlockNotFound):
		http.Error(w, fmt.Sprintf("a block on the path under %s is not stored here: %v", root, err), http.StatusNotFound)
	case errors.Is(err, index.ErrNoUnsealedCopy):
		http.Error(w, fmt.Sprintf("a block on the path under %s has no unsealed copy to serve: %v", root, err), http.StatusGone)
	case errors.Is(err, index.ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	default:
		http.Error(w, fmt.Sprintf("resolving a path under %s: %v", root, err), http.StatusInternalServerError)
	}
}

func blockError(w http.ResponseWriter, c cid.Cid, err error) {
	switch {
	case errors.Is(err, ErrBlockNotFound):
		http.Error(w, fmt.Sprintf("%s is not stored here", c), http.StatusNotFound)
	case errors.Is(err, index.ErrNoUnsealedCopy):
		http.Error(w, fmt.Sprintf("%s is stored here but has no unsealed copy to serve: %v", c, err), http.StatusGone)
	case errors.Is(err, index.ErrNotFound):
		http.Error(w, fmt.Sprintf("%s: %v", c, err), http.StatusNotFound)
	default:
		http.Error(w, fmt.Sprintf("reading %s: %v", c, err), http.StatusInternalServerError)
	}
}

// unixfsFileLike reports whether the entity of a block is its whole DAG: a
// raw block or a UnixFS file. Directories (and everything else) stop at the
// block itself.
func unixfsFileLike(c cid.Cid, data []byte) bool {
	switch c.Type() {
	case cid.Raw:
		return true
	case cid.DagProtobuf:
	default:
		return false
	}
	dec, err := multicodec.LookupDecoder(cid.DagProtobuf)
	if err != nil {
		return false
	}
	nb := basicnode.Prototype.Any.NewBuilder()
	if err := dec(nb, strings.NewReader(string(data))); err != nil {
		return false
	}
	dn, err := nb.Build().LookupByString("Data")
	if err != nil || dn.Kind() != datamodel.Kind_Bytes {
		return false
	}
	b, _ := dn.AsBytes()
	fsn, err := unixfs.FSNodeFromBytes(b)
	if err != nil {
		return false
	}
	switch fsn.Type() {
	case unixfs.TFile, unixfs.TRaw:
		return true
	}
	return false
}
