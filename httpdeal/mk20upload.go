package httpdeal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/filecoin-project/go-address"
	"github.com/ipfs/go-cid"
	"github.com/oklog/ulid/v2"

	"github.com/ferry-fil/ferry/httpdeal/mk20"
	"github.com/ferry-fil/ferry/piece"
)

// Uploads. The bytes of an upload go straight to one staging file: chunk n
// of a chunked upload at (n−1)×chunk_size, so chunks may come in any order,
// in parallel, and again after a failure; a chunk is recorded complete
// once its bytes are synced, so a restart loses none.
//
// CommP is computed while the bytes arrive when they arrive in order, which
// is how Ferry's client and any sequential client upload: a prefixHasher
// per upload holds a piece.Calc over the chunks 1…k already hashed, and the
// request of chunk k+1 writes its body to the file and to the Calc at once.
// A chunk that arrives out of order is written only; whoever next holds the
// hasher reads the completed chunks after k back from the file. When the
// last chunk is hashed the commitment is recorded, and finalize compares
// it with the deal's piece CID at once. Otherwise (parallel chunks, a
// failed chunk, which resets the Calc, or a restart, which loses it)
// finalize answers 200 with the deal processing and a background goroutine
// hashes what is left from the file. Hashing the assembled file at
// finalize instead would read every byte twice for every client, and
// finalize would have to wait minutes for a large piece.

// prefixHasher is the CommP of an upload's first chunks. Its lock is held
// by whoever feeds it.
type prefixHasher struct {
	mu   sync.Mutex
	calc *piece.Calc
	next int // the next chunk to feed, from 1
}

func (p *prefixHasher) reset() { p.calc, p.next = piece.NewCalc(), 1 }

// hasher returns the prefix hasher of an upload.
func (m *MK20) hasher(id ulid.ULID) *prefixHasher {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hashers[id]
	if h == nil {
		h = &prefixHasher{}
		h.reset()
		m.hashers[id] = h
	}
	return h
}

func (m *MK20) dropHasher(id ulid.ULID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.hashers, id)
}

// here reports whether an upload is this node's: its file is in this
// node's staging directory.
func (m *MK20) here(up *uploadRow) bool { return up.Node == "" || up.Node == m.cfg.NodeID }

// forwardedBy names the node that forwarded a request to the node of its
// upload; a forwarded request is never forwarded again.
const forwardedBy = "X-Ferry-Forwarded-By"

// misdirected passes a request for an upload another node of the cluster
// receives on to that node (MK20Config.NodeURL), unless r came from a node
// already, and answers with what that node answers. r's body is unread, or
// set again by the caller. Without NodeURL, or for a forwarded request, it
// answers 421 Misdirected Request naming the node; when the node cannot be
// reached, 503.
func (m *MK20) misdirected(w http.ResponseWriter, r *http.Request, up *uploadRow) {
	if m.cfg.NodeURL == nil || r.Header.Get(forwardedBy) != "" {
		http.Error(w, fmt.Sprintf("this upload is received by node %s of the provider: send it there", up.Node), http.StatusMisdirectedRequest)
		return
	}
	base, err := m.cfg.NodeURL(r.Context(), up.Node)
	var target *url.URL
	if err == nil {
		target, err = url.Parse(base)
	}
	if err != nil {
		m.cfg.Logf("httpdeal: mk20 upload of node %s: %v", up.Node, err)
		http.Error(w, fmt.Sprintf("this upload is received by node %s of the provider, which cannot be reached now; try again later", up.Node), http.StatusServiceUnavailable)
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Header.Set(forwardedBy, m.cfg.NodeID)
			pr.Out.Header.Del(peerToken)
			if m.cfg.Peers != nil {
				pr.Out.Header.Set(peerToken, m.cfg.Peers.Token)
			}
		},
		Transport: m.peers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			m.cfg.Logf("httpdeal: forwarding %s %s to node %s: %v", r.Method, r.URL.Path, up.Node, err)
			http.Error(w, fmt.Sprintf("this upload is received by node %s of the provider, which did not answer; try again later", up.Node), http.StatusBadGateway)
		},
	}
	proxy.ServeHTTP(w, r)
}

// slot takes an upload slot, answering 429 itself when there is none.
func (m *MK20) slot(w http.ResponseWriter) (release func(), ok bool) {
	select {
	case m.slots <- struct{}{}:
		return func() { <-m.slots }, true
	default:
		http.Error(w, "too many parallel uploads for provider", http.StatusTooManyRequests)
		return nil, false
	}
}

func (m *MK20) uploadStart(w http.ResponseWriter, r *http.Request, _ address.Address) {
	if !hasContentType(w, r, ContentTypeJSON) {
		return
	}
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	body, ok := readJSON(w, r, false)
	if !ok {
		return
	}
	var su mk20.StartUpload
	if err := json.Unmarshal(body, &su); err != nil {
		http.Error(w, "failed to unmarshal request body", http.StatusBadRequest)
		return
	}
	cs := su.ChunkSize
	switch {
	case su.RawSize == 0:
		http.Error(w, "raw size must be greater than 0", http.StatusBadRequest)
		return
	case cs <= 0:
		http.Error(w, "chunk size must be greater than 0", http.StatusBadRequest)
		return
	case su.RawSize > MaxUploadSize:
		http.Error(w, fmt.Sprintf("raw size larger than supported %d limit", MaxUploadSize), http.StatusBadRequest)
		return
	case cs&(cs-1) != 0:
		http.Error(w, "chunk size must be a power of 2", http.StatusBadRequest)
		return
	case cs < m.cfg.MinChunkSize:
		http.Error(w, fmt.Sprintf("chunk size too small: at least %d", m.cfg.MinChunkSize), http.StatusBadRequest)
		return
	case cs > m.cfg.MaxChunkSize:
		http.Error(w, fmt.Sprintf("chunk size too large: at most %d", m.cfg.MaxChunkSize), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	d, ok := m.uploadDeal(ctx, w, id)
	if !ok {
		return
	}
	if d.State != mk20.StateUploading {
		http.Error(w, "deal upload has already started", http.StatusConflict)
		return
	}
	if su.RawSize != d.Piece.RawSize {
		http.Error(w, fmt.Sprintf("raw size %d is not the deal's %d", su.RawSize, d.Piece.RawSize), http.StatusBadRequest)
		return
	}
	up := &uploadRow{Chunked: true, ChunkSize: cs, Path: m.stagingPath(id), Node: m.cfg.NodeID}
	if err := createStaging(up.Path); err != nil {
		m.serverError(w, "creating the staging file", err)
		return
	}
	started, err := m.store.startUpload(ctx, id, up, su.RawSize)
	if err != nil {
		m.serverError(w, "starting upload", err)
		return
	}
	if !started {
		http.Error(w, "deal upload has already started", http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// createStaging creates the staging directory and an empty file at path
// (an existing one, from a start that failed later, is kept).
func createStaging(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

func (m *MK20) uploadStatus(w http.ResponseWriter, r *http.Request, _ address.Address) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	if _, ok := m.uploadDeal(ctx, w, id); !ok {
		return
	}
	up, err := m.store.upload(ctx, id)
	if errors.Is(err, errNotFound) || (err == nil && !up.Chunked) {
		http.Error(w, "upload not initiated", http.StatusTooEarly)
		return
	}
	if err != nil {
		m.serverError(w, "reading upload", err)
		return
	}
	done, missing, err := m.store.chunks(ctx, id)
	if err != nil {
		m.serverError(w, "reading chunks", err)
		return
	}
	m.writeJSON(w, mk20.UploadStatus{
		TotalChunks: len(done) + len(missing), Uploaded: len(done), Missing: len(missing),
		UploadedChunks: done, MissingChunks: missing,
	})
}

// receive copies size bytes of body into f at off, and to tee when not
// nil, and syncs f; a body of another length is refused with errSize.
func receive(f *os.File, off int64, size int64, body io.Reader, tee io.Writer) error {
	w := io.Writer(io.NewOffsetWriter(f, off))
	if tee != nil {
		w = io.MultiWriter(w, tee)
	}
	n, err := io.Copy(w, io.LimitReader(body, size))
	if err != nil {
		return fmt.Errorf("receiving after %d bytes: %w", n, err)
	}
	if n != size {
		return fmt.Errorf("%w: %d bytes, want %d", errSize, n, size)
	}
	// Nothing is written past the chunk: a longer body is only refused.
	if m, _ := io.ReadFull(body, make([]byte, 1)); m > 0 {
		return fmt.Errorf("%w: more than %d bytes", errSize, size)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing staging file: %w", err)
	}
	return nil
}

var errSize = errors.New("wrong size")

// pieceAndSize is the form in which an upload's CommP is recorded and
// compared with its deal's piece: "<piece CID v1>:<raw size>".
func pieceAndSize(c cid.Cid, rawSize uint64) string {
	return c.String() + ":" + strconv.FormatUint(rawSize, 10)
}

func (m *MK20) uploadChunk(w http.ResponseWriter, r *http.Request, _ address.Address) {
	if !hasContentType(w, r, contentTypeBytes) {
		return
	}
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		http.Error(w, "invalid chunk number in url", http.StatusBadRequest)
		return
	}
	if n < 1 {
		http.Error(w, "chunk must be greater than 0", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	up, err := m.store.upload(ctx, id)
	if errors.Is(err, errNotFound) || (err == nil && (!up.Chunked || up.Finalized)) {
		http.Error(w, "chunk not found", http.StatusNotFound)
		return
	}
	if err != nil {
		m.serverError(w, "reading upload", err)
		return
	}
	if !m.here(up) {
		m.misdirected(w, r, up) // the upload's node takes the slot
		return
	}
	release, ok := m.slot(w)
	if !ok {
		return
	}
	defer release()
	size, complete, err := m.store.chunk(ctx, id, n)
	if errors.Is(err, errNotFound) {
		http.Error(w, "chunk not found", http.StatusNotFound)
		return
	}
	if err != nil {
		m.serverError(w, "reading chunk", err)
		return
	}
	if complete {
		http.Error(w, "chunk already uploaded", http.StatusConflict)
		return
	}
	f, err := os.OpenFile(up.Path, os.O_WRONLY, 0)
	if err != nil {
		m.serverError(w, "opening the staging file", err)
		return
	}
	defer f.Close()

	// Hash while receiving when this chunk is the next one of the prefix.
	h := m.hasher(id)
	var tee io.Writer
	if h.mu.TryLock() {
		if h.next == n {
			tee = h.calc
		} else {
			h.mu.Unlock()
		}
	}
	err = receive(f, int64(n-1)*up.ChunkSize, size, r.Body, tee)
	if err == nil {
		err = m.store.completeChunk(ctx, id, n)
	}
	if tee != nil {
		if err != nil {
			h.reset() // the Calc holds part of a chunk
		} else {
			h.next++
		}
		h.mu.Unlock()
	}
	if err != nil {
		if errors.Is(err, errSize) {
			http.Error(w, fmt.Sprintf("chunk %d: %v", n, err), http.StatusBadRequest)
			return
		}
		m.serverError(w, fmt.Sprintf("receiving chunk %d of deal %s", n, id), err)
		return
	}
	if h.mu.TryLock() {
		if err := m.catchUp(ctx, id, up, h, false); err != nil {
			m.cfg.Logf("httpdeal: hashing the upload of deal %s: %v", id, err)
		}
		h.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
}

// catchUp feeds h, whose lock the caller holds, the completed chunks after
// its prefix from the staging file, up to the first missing one (all, with
// wait, failing if one is missing). Once every chunk is hashed it records
// the commitment.
func (m *MK20) catchUp(ctx context.Context, id ulid.ULID, up *uploadRow, h *prefixHasher, all bool) error {
	f, err := os.Open(up.Path)
	if err != nil {
		return fmt.Errorf("opening the staging file: %w", err)
	}
	defer f.Close()
	for {
		size, complete, err := m.store.chunk(ctx, id, h.next)
		if errors.Is(err, errNotFound) {
			break // past the last chunk
		}
		if err != nil {
			return err
		}
		if !complete {
			if all {
				return fmt.Errorf("chunk %d is missing", h.next)
			}
			return nil
		}
		if _, err := io.Copy(h.calc, io.NewSectionReader(f, int64(h.next-1)*up.ChunkSize, size)); err != nil {
			h.reset()
			return fmt.Errorf("hashing chunk %d from the staging file: %w", h.next, err)
		}
		h.next++
	}
	cm, err := h.calc.Sum()
	if err != nil {
		h.reset()
		return fmt.Errorf("computing CommP: %w", err)
	}
	return m.store.setCommP(ctx, id, pieceAndSize(cm.CID(), cm.PayloadSize))
}

func (m *MK20) uploadFinalize(w http.ResponseWriter, r *http.Request, signer address.Address) {
	m.finalizeUpload(w, r, signer, true)
}

func (m *MK20) serialFinalize(w http.ResponseWriter, r *http.Request, signer address.Address) {
	m.finalizeUpload(w, r, signer, false)
}

// finalizeUpload ends an upload: every chunk is in (400 otherwise), the
// optional deal body fills in what the deal lacks, and the uploaded bytes'
// CommP is compared with the deal's piece CID, now when it is known, in
// the background otherwise.
func (m *MK20) finalizeUpload(w http.ResponseWriter, r *http.Request, signer address.Address, chunked bool) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	body, ok := readJSON(w, r, true)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	d, ok := m.uploadDeal(ctx, w, id)
	if !ok {
		return
	}
	up, err := m.store.upload(ctx, id)
	if errors.Is(err, errNotFound) || (err == nil && up.Chunked != chunked) {
		http.Error(w, "upload not initiated", http.StatusNotFound)
		return
	}
	if err != nil {
		reason(w, m.internal("reading upload", err))
		return
	}
	if up.Finalized {
		reason(w, nil) // finalized before: the answer was lost
		return
	}
	if !m.here(up) {
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body)) // read above
		m.misdirected(w, r, up)
		return
	}
	if chunked {
		_, missing, err := m.store.chunks(ctx, id)
		if err != nil {
			reason(w, m.internal("reading chunks", err))
			return
		}
		if len(missing) > 0 {
			http.Error(w, fmt.Sprintf("deal upload has not finished: chunks %v missing", missing), http.StatusBadRequest)
			return
		}
	} else if up.CommP == "" {
		http.Error(w, "deal upload has not finished", http.StatusBadRequest)
		return
	}
	var nd *mk20.Deal
	if body != nil {
		var rej *mk20.Rejection
		if nd, rej = m.updated(body, d, signer); rej != nil {
			reason(w, rej)
			return
		}
		if _, rej := m.checkDDO(ctx, nd); rej != nil {
			reason(w, rej)
			return
		}
	}
	if err := m.store.finalize(ctx, id, nd); err != nil {
		reason(w, m.internal("finalizing upload", err))
		return
	}
	if up.CommP == "" {
		m.verifyLater(id)
		reason(w, nil)
		return
	}
	reason(w, m.finish(ctx, id))
}

// verifyLater hashes an upload's remaining chunks from the staging file in
// the background, then finishes the deal.
func (m *MK20) verifyLater(id ulid.ULID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.verify[id] || m.ctx.Err() != nil {
		return
	}
	m.verify[id] = true
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() {
			m.mu.Lock()
			delete(m.verify, id)
			m.mu.Unlock()
		}()
		ctx := m.ctx
		up, err := m.store.upload(ctx, id)
		if err == nil && up.CommP == "" {
			h := m.hasher(id)
			h.mu.Lock()
			err = m.catchUp(ctx, id, up, h, true)
			h.mu.Unlock()
		}
		if err != nil {
			if ctx.Err() == nil {
				m.cfg.Logf("httpdeal: checking the upload of deal %s: %v", id, err)
				if rej := m.fail(ctx, id, "checking the upload: "+err.Error()); rej != nil {
					m.cfg.Logf("httpdeal: %v", rej)
				}
			}
			return
		}
		if rej := m.finish(ctx, id); rej != nil && rej.Code == mk20.ErrServerInternalError {
			m.cfg.Logf("httpdeal: finishing the upload of deal %s: %s", id, rej.Reason)
		}
	}()
}

// finish compares the recorded CommP of an upload with the deal's piece
// CID: a match hands the deal and its staged file to the market, a
// mismatch fails the deal (400).
func (m *MK20) finish(ctx context.Context, id ulid.ULID) *mk20.Rejection {
	d, err := m.store.deal(ctx, id)
	if err != nil {
		return m.internal("reading deal", err)
	}
	up, err := m.store.upload(ctx, id)
	if err != nil {
		return m.internal("reading upload", err)
	}
	m.dropHasher(id)
	want := pieceAndSize(d.Piece.PieceCID, d.Piece.RawSize)
	if up.CommP != want {
		why := fmt.Sprintf("the uploaded data has piece CID and size %s, the deal's are %s", up.CommP, want)
		if rej := m.fail(ctx, id, why); rej != nil {
			return rej
		}
		return mk20.Reject(mk20.ErrBadProposal, "%s", why)
	}
	if err := m.handOff(ctx, d, up.Path); err != nil {
		var rej *mk20.Rejection
		if errors.As(err, &rej) {
			return rej // refused: the deal failed
		}
		// The upload is complete and checked; the deal stays processing
		// until the hand-off, tried again later, succeeds.
		m.cfg.Logf("httpdeal: handing mk20 deal %s to the market (tried again later): %v", id, err)
	}
	return nil
}

// fail fails a deal still httpdeal's: its staging file and reservation
// go (after the state is recorded: a crash in between leaves them to
// Start's sweep).
func (m *MK20) fail(ctx context.Context, id ulid.ULID, why string) *mk20.Rejection {
	m.dropHasher(id)
	if err := m.store.setState(ctx, id, mk20.StateFailed, why); err != nil {
		return m.internal("failing deal", err)
	}
	if err := m.dropStaging(ctx, id.String()); err != nil {
		m.cfg.Logf("httpdeal: %v", err)
	}
	return nil
}

// dropStaging removes the staging file of the deal named id, if any, and
// then releases its reservation.
func (m *MK20) dropStaging(ctx context.Context, id string) error {
	if u, err := ulid.ParseStrict(id); err == nil {
		if err := os.Remove(m.stagingPath(u)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing the staging file of deal %s: %w", id, err)
		}
	}
	if err := m.d.Staging.Release(ctx, id); err != nil {
		return fmt.Errorf("releasing the staging reservation of deal %s: %w", id, err)
	}
	return nil
}

// serialUpload takes the whole payload in one request, CommP computed as
// it arrives.
func (m *MK20) serialUpload(w http.ResponseWriter, r *http.Request, _ address.Address) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	d, ok := m.uploadDeal(ctx, w, id)
	if !ok {
		return
	}
	if d.State != mk20.StateUploading {
		http.Error(w, "deal not found", http.StatusNotFound)
		return
	}
	up := &uploadRow{Path: m.stagingPath(id), Node: m.cfg.NodeID}
	if prev, err := m.store.upload(ctx, id); err == nil {
		if prev.Chunked || prev.CommP != "" {
			http.Error(w, "deal not found", http.StatusNotFound)
			return
		}
		if !m.here(prev) {
			m.misdirected(w, r, prev) // the upload's node takes the slot
			return
		}
	} else if !errors.Is(err, errNotFound) {
		m.serverError(w, "reading upload", err)
		return
	}
	release, ok := m.slot(w)
	if !ok {
		return
	}
	defer release()
	if err := createStaging(up.Path); err != nil {
		m.serverError(w, "creating the staging file", err)
		return
	}
	if _, err := m.store.startUpload(ctx, id, up, d.Piece.RawSize); err != nil {
		m.serverError(w, "starting upload", err)
		return
	}
	f, err := os.OpenFile(up.Path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		m.serverError(w, "opening the staging file", err)
		return
	}
	defer f.Close()
	calc := piece.NewCalc()
	if err := receive(f, 0, int64(d.Piece.RawSize), r.Body, calc); err != nil {
		if errors.Is(err, errSize) {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		m.serverError(w, "receiving upload", err)
		return
	}
	cm, err := calc.Sum()
	if err == nil {
		err = m.store.setCommP(ctx, id, pieceAndSize(cm.CID(), cm.PayloadSize))
	}
	if err != nil {
		m.serverError(w, "recording the upload's CommP", err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
