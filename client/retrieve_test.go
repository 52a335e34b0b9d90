package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/retrieval"
	"github.com/ferry-fil/ferry/wire"
)

// memPieces is a PieceSource of unpadded pieces held in memory.
type memPieces struct{ pieces map[cid.Cid][]byte }

type memReader struct{ *bytes.Reader }

func (memReader) Close() error { return nil }

func (m memPieces) ReadPiece(_ context.Context, pc cid.Cid) (index.PieceReader, error) {
	b, ok := m.pieces[pc]
	if !ok {
		return nil, fmt.Errorf("piece %s: %w", pc, index.ErrNotFound)
	}
	return memReader{bytes.NewReader(b)}, nil
}

// tamperWriter flips the byte at offset at of the response body.
type tamperWriter struct {
	http.ResponseWriter
	at, n int64
}

func (t *tamperWriter) Write(p []byte) (int, error) {
	if t.at >= t.n && t.at < t.n+int64(len(p)) {
		q := append([]byte(nil), p...)
		q[t.at-t.n] ^= 0x55
		p = q
	}
	t.n += int64(len(p))
	return t.ResponseWriter.Write(p)
}

// retrievalFixture is a real retrieval server holding one piece: a CAR that
// CreateCAR made from a folder of files.
type retrievalFixture struct {
	dir       string // the original files
	root      cid.Cid
	pieceCid  cid.Cid
	piece     []byte // unpadded piece as served
	srv       *httptest.Server
	mu        sync.Mutex
	tamperAt  int64 // -1: serve the truth
	requested []string
}

func newRetrievalFixture(t *testing.T) *retrievalFixture {
	t.Helper()
	ctx := context.Background()
	f := &retrievalFixture{dir: filepath.Join(t.TempDir(), "data"), tamperAt: -1}
	writeFile(t, filepath.Join(f.dir, "big.bin"), randomBytes(1, 50_000))
	writeFile(t, filepath.Join(f.dir, "sub", "small.txt"), []byte("hello ferry\n"))
	writeFile(t, filepath.Join(f.dir, "sub", "deeper", "empty"), nil)
	carPath := filepath.Join(t.TempDir(), "data.car")
	res, err := CreateCAR(ctx, []string{f.dir}, carPath, CAROptions{ChunkSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	f.root = res.Root
	carBytes, err := os.ReadFile(carPath)
	if err != nil {
		t.Fatal(err)
	}
	calc := piece.NewCalc()
	calc.Write(carBytes)
	comm, err := calc.Sum()
	if err != nil {
		t.Fatal(err)
	}
	f.pieceCid = comm.CID()
	f.piece = make([]byte, piece.UnpaddedSizeFor(uint64(len(carBytes))))
	copy(f.piece, carBytes)
	src := memPieces{pieces: map[cid.Cid][]byte{f.pieceCid: f.piece}}
	sqldb, err := db.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	idx := index.New(sqldb, src)
	if _, err := idx.Rebuild(ctx, f.pieceCid); err != nil {
		t.Fatal(err)
	}
	h, err := retrieval.New(idx, src)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		at := f.tamperAt
		f.requested = append(f.requested, r.URL.RequestURI())
		f.mu.Unlock()
		if at >= 0 {
			w = &tamperWriter{ResponseWriter: w, at: at}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *retrievalFixture) tamper(at int64) {
	f.mu.Lock()
	f.tamperAt = at
	f.mu.Unlock()
}

// sameTree fails unless folder got holds exactly the files of want.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.Walk(want, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		gi, err := os.Stat(filepath.Join(got, rel))
		if err != nil {
			return err
		}
		if fi.IsDir() != gi.IsDir() {
			return fmt.Errorf("%s: directory %v, extracted as directory %v", rel, fi.IsDir(), gi.IsDir())
		}
		if fi.IsDir() {
			return nil
		}
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(got, rel))
		if err != nil {
			return err
		}
		if !bytes.Equal(a, b) {
			return fmt.Errorf("%s differs", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.Walk(got, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		if !seen[rel] {
			return fmt.Errorf("extra file %s", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// leftovers lists the entries of dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestRetrievePiece(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newRetrievalFixture(t)
	out := filepath.Join(t.TempDir(), "piece.bin")
	var last int64
	res, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.pieceCid, Piece: true, Out: out, Progress: func(n int64) { last = n }})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, f.piece) {
		t.Fatalf("retrieved %d bytes, not the piece's %d", len(got), len(f.piece))
	}
	if res.Bytes != int64(len(f.piece)) || last != res.Bytes || res.CID != f.pieceCid.String() || res.Out != out || res.URL != f.srv.URL {
		t.Fatalf("result %+v, progress %d", res, last)
	}
	if _, err := os.Stat(out + PartialSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partial file left: %v", err)
	}
	// Out is never overwritten.
	if _, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.pieceCid, Piece: true, Out: out}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("existing output: %v", err)
	}
	// A payload CID is not a piece CID.
	if _, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.root, Piece: true, Out: out + "2"}); !errors.Is(err, piece.ErrNotPieceCID) {
		t.Fatalf("payload CID as piece: %v", err)
	}
}

func TestRetrievePieceTampered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newRetrievalFixture(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "piece.bin")
	// A stale partial file from an interrupted run is replaced, then removed.
	if err := os.WriteFile(out+PartialSuffix, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.tamper(100)
	_, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, Source: "f01000", CID: f.pieceCid, Piece: true, Out: out})
	var ve *VerificationError
	if !errors.Is(err, retrieval.ErrVerification) || !errors.As(err, &ve) || !strings.HasPrefix(err.Error(), "retrieval from f01000 failed verification: ") {
		t.Fatalf("tampered piece: %v", err)
	}
	if strings.Count(err.Error(), "verification") != 1 {
		t.Fatalf("unclear message %q", err)
	}
	t.Log(err)
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("left behind: %v", l)
	}
}

func TestRetrieveCAR(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newRetrievalFixture(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "data.car")
	res, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL + "/", CID: f.root, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Size() != res.Bytes || res.Bytes == 0 {
		t.Fatalf("CAR %v %v, result %+v", fi, err, res)
	}
	// The CAR holds the whole DAG: it extracts to the original files.
	if err := retrieval.ExtractCAR(ctx, out, f.root, filepath.Join(dir, "x")); err != nil {
		t.Fatal(err)
	}
	sameTree(t, f.dir, filepath.Join(dir, "x"))

	// Tampering with a block (near the end of the stream: the last block's
	// data) is caught and leaves nothing behind.
	dir2 := t.TempDir()
	f.tamper(res.Bytes - 10)
	_, err = Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.root, Out: filepath.Join(dir2, "data.car")})
	if !errors.Is(err, retrieval.ErrVerification) || !strings.Contains(err.Error(), "failed verification") {
		t.Fatalf("tampered CAR: %v", err)
	}
	t.Log(err)
	if l := leftovers(t, dir2); len(l) != 0 {
		t.Fatalf("left behind: %v", l)
	}
}

func TestRetrieveExtract(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newRetrievalFixture(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "files")
	res, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.root, Out: out, Extract: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes == 0 || res.Out != out {
		t.Fatalf("result %+v", res)
	}
	sameTree(t, f.dir, out)
	if l := leftovers(t, dir); len(l) != 1 || l[0] != "files" {
		t.Fatalf("temporary files left: %v", l)
	}
	if _, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.root, Out: out, Extract: true}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("existing output: %v", err)
	}

	// A tampered DAG is never extracted.
	dir2 := t.TempDir()
	f.tamper(res.Bytes - 10)
	if _, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.root, Out: filepath.Join(dir2, "files"), Extract: true}); !errors.Is(err, retrieval.ErrVerification) {
		t.Fatalf("tampered: %v", err)
	}
	if l := leftovers(t, dir2); len(l) != 0 {
		t.Fatalf("left behind: %v", l)
	}
	// A piece cannot be extracted.
	if _, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.pieceCid, Piece: true, Out: filepath.Join(dir2, "p"), Extract: true}); err == nil {
		t.Fatal("extracting a piece was accepted")
	}
}

// A path under the payload CID retrieves only what it names.
func TestRetrievePath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newRetrievalFixture(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "sub")
	res, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.root, Path: "/sub/", Out: out, Extract: true})
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, filepath.Join(f.dir, "sub"), out)
	if res.CID == f.root.String() {
		t.Fatalf("result names the root, not the path's CID: %+v", res)
	}
	out = filepath.Join(dir, "small.txt")
	if _, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.root, Path: "sub/small.txt", Out: out, Extract: true}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "hello ferry\n" {
		t.Fatalf("small.txt: %q, %v", b, err)
	}
	// A CAR of a big file holds that file's blocks only.
	whole := filepath.Join(dir, "whole.car")
	if _, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.root, Out: whole}); err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(dir, "big.car")
	pres, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.root, Path: "big.bin", Out: part})
	if err != nil {
		t.Fatal(err)
	}
	wres, _ := os.Stat(whole)
	if pres.Bytes <= 50_000 || pres.Bytes >= wres.Size() {
		t.Fatalf("CAR of big.bin: %d bytes, the whole DAG's %d", pres.Bytes, wres.Size())
	}
	if _, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.root, Path: "sub/missing", Out: filepath.Join(dir, "m")}); err == nil || !strings.Contains(err.Error(), `has no entry "missing"`) {
		t.Fatalf("missing name: %v", err)
	}
	if _, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: f.pieceCid, Piece: true, Path: "x", Out: filepath.Join(dir, "p")}); err == nil {
		t.Fatal("a path under a piece was accepted")
	}
	if l := leftovers(t, dir); len(l) != 4 {
		t.Fatalf("files left: %v", l)
	}
}

func TestRetrieveErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newRetrievalFixture(t)
	dir := t.TempDir()

	// Unknown CIDs: the server's 404 in one line.
	mh, err := multihash.Sum([]byte("not stored"), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	unknown := cid.NewCidV1(cid.Raw, mh)
	_, err = Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, Source: "f01000", CID: unknown, Out: filepath.Join(dir, "u.car")})
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.HasPrefix(err.Error(), "retrieval from f01000: ") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("unknown CID: %v", err)
	}
	t.Log(err)
	otherPiece := piece.CIDv1([32]byte{1, 2, 3})
	if _, err := Retrieve(ctx, RetrieveRequest{BaseURL: f.srv.URL, CID: otherPiece, Piece: true, Out: filepath.Join(dir, "u.bin")}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown piece: %v", err)
	}

	// Nobody listening.
	l := closedURL()
	_, err = Retrieve(ctx, RetrieveRequest{BaseURL: l, CID: f.root, Out: filepath.Join(dir, "c.car")})
	if err == nil || !strings.Contains(err.Error(), "retrieval from "+l) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("unreachable: %v", err)
	}
	t.Log(err)
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("left behind: %v", l)
	}
}

// closedURL returns a loopback URL nothing listens on (any more).
func closedURL() string {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

func TestHTTPURL(t *testing.T) {
	for in, want := range map[string]string{
		"/ip4/127.0.0.1/tcp/7777/http":       "http://127.0.0.1:7777",
		"/ip6/::1/tcp/80/http":               "http://[::1]:80",
		"/dns/example.com/tcp/443/https":     "https://example.com:443",
		"/dns4/example.com/tcp/443/tls/http": "https://example.com:443",
	} {
		got, err := HTTPURL(multiaddr.StringCast(in))
		if err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"/ip4/127.0.0.1/tcp/7777", "/ip4/127.0.0.1/udp/7777/quic-v1", "/ip4/1.2.3.4/tcp/80/http/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"} {
		if got, err := HTTPURL(multiaddr.StringCast(in)); err == nil {
			t.Errorf("%s: accepted as %q", in, got)
		}
	}
	if _, err := HTTPBaseURL(&wire.QueryResponse{Protocols: []wire.Protocol{wire.NewProtocol("libp2p", multiaddr.StringCast("/ip4/1.2.3.4/tcp/1"))}}); !errors.Is(err, ErrNoHTTPTransport) {
		t.Fatalf("no http: %v", err)
	}
	if _, err := HTTPBaseURL(&wire.QueryResponse{Protocols: []wire.Protocol{{Name: "http", Addresses: [][]byte{{0xff, 0xff}}}}}); !errors.Is(err, ErrNoHTTPTransport) || !strings.Contains(err.Error(), "address 0") {
		t.Fatalf("bad address: %v", err)
	}
}

func TestProviderHTTPURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fp, fc := newFakeProvider(t)
	fp.h.SetStreamHandler(wire.TransportsProtocol, func(s network.Stream) {
		defer s.Close()
		_ = wire.Write(s, &wire.QueryResponse{Protocols: []wire.Protocol{
			wire.NewProtocol("libp2p", multiaddr.StringCast("/ip4/127.0.0.1/tcp/1")),
			wire.NewProtocol("http", multiaddr.StringCast("/ip4/127.0.0.1/tcp/7777/http")),
		}})
	})
	h, err := NewHost()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p, err := LookupProvider(ctx, fc, mustAddr(t, "f01000"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := ProviderHTTPURL(ctx, h, p)
	if err != nil || u != "http://127.0.0.1:7777" {
		t.Fatalf("%q %v", u, err)
	}
	fp.h.SetStreamHandler(wire.TransportsProtocol, func(s network.Stream) {
		defer s.Close()
		_ = wire.Write(s, &wire.QueryResponse{})
	})
	if _, err := ProviderHTTPURL(ctx, h, p); !errors.Is(err, ErrNoHTTPTransport) || !strings.Contains(err.Error(), "f01000") {
		t.Fatalf("no transports: %v", err)
	}
}

// FuzzHTTPBaseURL feeds arbitrary bytes as an "http" transport address, as
// a provider's transports answer carries them: any URL returned must be an
// http(s) URL with a host.
func FuzzHTTPBaseURL(f *testing.F) {
	for _, s := range []string{"/ip4/127.0.0.1/tcp/7777/http", "/dns/example.com/tcp/443/tls/http", "/ip6/::1/tcp/80/https"} {
		f.Add(multiaddr.StringCast(s).Bytes())
	}
	f.Add([]byte{0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := HTTPBaseURL(&wire.QueryResponse{Protocols: []wire.Protocol{{Name: "http", Addresses: [][]byte{b}}}})
		if err != nil {
			if !errors.Is(err, ErrNoHTTPTransport) {
				t.Fatalf("error %v does not wrap ErrNoHTTPTransport", err)
			}
			return
		}
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.Path != "" {
			t.Fatalf("%x gave URL %q (%v)", b, u, err)
		}
	})
}
