// Package retrieval serves stored data over HTTP and fetches it back with
// verification.
//
// The server answers
//
//	GET|HEAD /piece/{pieceCid}  the piece's bytes (fr32 removed), with Range
//	GET|HEAD /ipfs/{cid}        an IPFS trustless gateway: one block
//	                            (application/vnd.ipld.raw) or a CAR of the
//	                            DAG (application/vnd.ipld.car)
//
// from the piece directory (package index) and reads of the unsealed copies.
// FetchPiece and FetchCAR are the matching clients: they check the piece
// commitment, or every block's hash and the DAG's completeness, while the
// bytes stream.
package retrieval

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/multicodec"
	basicnode "github.com/ipld/go-ipld-prime/node/basic"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/internal/carv1"
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
}

// New returns the retrieval handler. src opens pieces; it should wrap
// index.ErrNotFound for pieces it does not have and index.ErrNoUnsealedCopy
// for pieces it cannot read unsealed.
func New(dir Directory, src index.PieceSource) *Server {
	s := &Server{dir: dir, src: src, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /piece/{cid}", s.servePiece)
	s.mux.HandleFunc("GET /ipfs/{cid}", s.serveIPFS)
	s.mux.HandleFunc("GET /ipfs/{cid}/{path...}", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "paths under a CID are not supported by this gateway: ask for the CID itself", http.StatusNotImplemented)
	})
	return s
}

// Handler returns s as an http.Handler, for mounting at the server root.
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

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
	sr := newSectionReader(sec.pr, sec.off, sec.size)
	defer sr.Close()
	http.ServeContent(chunkWriter{w, sr}, r, "", time.Time{}, sr)
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
	format, code, err := requestFormat(r)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	scope := scopeAll
	if format == formatCAR {
		switch sc := r.URL.Query().Get("dag-scope"); sc {
		case "", scopeAll:
		case scopeEntity, scopeBlock:
			scope = sc
		default:
			http.Error(w, fmt.Sprintf("dag-scope %q is not one of all, entity, block", sc), http.StatusBadRequest)
			return
		}
		if v := r.URL.Query().Get("car-version"); v != "" && v != "1" {
			http.Error(w, fmt.Sprintf("car-version %q is not served: only 1", v), http.StatusBadRequest)
			return
		}
		if o := r.URL.Query().Get("car-order"); o != "" && o != "dfs" && o != "unk" {
			http.Error(w, fmt.Sprintf("car-order %q is not served: only dfs", o), http.StatusBadRequest)
			return
		}
		if r.URL.Query().Has("entity-bytes") {
			http.Error(w, "entity-bytes is not supported by this gateway", http.StatusNotImplemented)
			return
		}
	}
	l := newLoader(s.dir, s.src)
	defer l.close()
	data, err := l.load(r.Context(), c)
	if err != nil {
		blockError(w, c, err)
		return
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "public, max-age=29030400, immutable")
	h.Set("X-Ipfs-Path", "/ipfs/"+c.String())
	h.Add("Vary", "Accept")
	if format == formatRaw {
		h.Set("Content-Type", RawContentType)
		h.Set("ETag", `"`+c.String()+`.raw"`)
		h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", c.String()+".bin"))
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(data)))
		return
	}
	h.Set("Content-Type", CARContentType+"; version=1; order=dfs; dups=n")
	h.Set("ETag", fmt.Sprintf(`"%s.car.%s"`, c, scope))
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", c.String()+".car"))
	if r.Method == http.MethodHead {
		return
	}
	// Send the status now: a failure later shows as a cut CAR.
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	bw := bufio.NewWriterSize(w, 256<<10)
	if err := writeDAG(r.Context(), bw, l, c, data, scope); err != nil {
		// The status is sent: cutting the stream is the only way to
		// tell the client the CAR is incomplete.
		panic(http.ErrAbortHandler)
	}
	if err := bw.Flush(); err != nil {
		panic(http.ErrAbortHandler)
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

// writeDAG writes a CARv1 of the DAG under root in depth-first order, each
// block once. rootData is root's block, already loaded.
func writeDAG(ctx context.Context, w io.Writer, l *blockLoader, root cid.Cid, rootData []byte, scope string) error {
	if _, err := carv1.WriteHeader(w, []cid.Cid{root}); err != nil {
		return err
	}
	if _, err := carv1.WriteBlock(w, root, rootData); err != nil {
		return err
	}
	if scope == scopeBlock || (scope == scopeEntity && !unixfsFileLike(root, rootData)) {
		return nil
	}
	seen := map[cid.Cid]struct{}{root: {}}
	var stack []cid.Cid
	push := func(c cid.Cid, data []byte) error {
		ls, err := links(c, data)
		if err != nil {
			return err
		}
		for i := len(ls) - 1; i >= 0; i-- {
			stack = append(stack, ls[i])
		}
		return nil
	}
	if err := push(root, rootData); err != nil {
		return err
	}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := seen[c]; ok || isIdentity(c) {
			continue
		}
		seen[c] = struct{}{}
		data, err := l.load(ctx, c)
		if err != nil {
			return err
		}
		if _, err := carv1.WriteBlock(w, c, data); err != nil {
			return err
		}
		if err := push(c, data); err != nil {
			return err
		}
	}
	return nil
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
