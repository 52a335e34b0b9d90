package retrieval

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/piece"
)

func do(t *testing.T, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestServePiece(t *testing.T) {
	f := newFixture(t)
	u := f.srv.URL + "/piece/" + f.pc.String()

	resp, body := do(t, "GET", u, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, f.payload) {
		t.Fatalf("GET: %s, %d bytes", resp.Status, len(body))
	}
	if resp.Header.Get("Content-Type") != PieceContentType || resp.Header.Get("ETag") != `"`+f.pc.String()+`"` {
		t.Fatalf("headers %v", resp.Header)
	}

	resp, body = do(t, "GET", u, map[string]string{"Range": "bytes=10-99"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, f.payload[10:100]) {
		t.Fatalf("range: %s %d bytes", resp.Status, len(body))
	}
	resp, body = do(t, "GET", u, map[string]string{"Range": "bytes=-5"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, f.payload[len(f.payload)-5:]) {
		t.Fatalf("suffix range: %s", resp.Status)
	}
	// Every unsatisfiable form: 416 naming the size, no bytes.
	size := len(f.payload)
	for _, rh := range []string{
		"bytes=-0",
		"bytes=-000",
		"bytes= -0 ",
		"bytes=-0,-0",
		fmt.Sprintf("bytes=%d-", size),
		fmt.Sprintf("bytes=%d-", size+1000),
		fmt.Sprintf("bytes=%d-%d", size, size+10),
		fmt.Sprintf("bytes=-0,%d-", size),
		fmt.Sprintf("bytes=%d-,-0", size+5),
	} {
		resp, _ := do(t, "GET", u, map[string]string{"Range": rh})
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("Range %q: %s, Content-Range %q", rh, resp.Status, resp.Header.Get("Content-Range"))
		}
	}
	// A satisfiable range beside an empty suffix is served alone.
	resp, body = do(t, "GET", u, map[string]string{"Range": "bytes=-0, 3-7"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, f.payload[3:8]) ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 3-7/%d", size) {
		t.Fatalf("bytes=-0, 3-7: %s %q", resp.Status, resp.Header.Get("Content-Range"))
	}
	// A mismatched If-Range still turns any range into the whole piece.
	resp, body = do(t, "GET", u, map[string]string{"Range": "bytes=-0", "If-Range": `"other"`})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, f.payload) {
		t.Fatalf("If-Range mismatch with bytes=-0: %s", resp.Status)
	}
	resp, body = do(t, "HEAD", u, nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(f.payload)) {
		t.Fatalf("HEAD: %s %d", resp.Status, resp.ContentLength)
	}
	resp, _ = do(t, "GET", u, map[string]string{"If-None-Match": `"` + f.pc.String() + `"`})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %s", resp.Status)
	}
	resp, _ = do(t, "POST", u, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %s", resp.Status)
	}

	// Piece CID v2 names the same bytes.
	v2, err := piece.V1ToV2(f.pc, uint64(len(f.payload)), piece.PaddedSizeFor(uint64(len(f.payload))))
	if err != nil {
		t.Fatal(err)
	}
	resp, body = do(t, "GET", f.srv.URL+"/piece/"+v2.String(), nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, f.payload) {
		t.Fatalf("v2: %s", resp.Status)
	}

	other := piece.CIDv1([32]byte{1})
	for _, c := range []struct {
		path string
		code int
		says string
	}{
		{"/piece/" + other.String(), 404, "not stored"},
		{"/piece/notacid", 400, "bad piece CID"},
		{"/piece/" + f.dag.L1.c.String(), 400, "not a piece CID"},
	} {
		resp, body := do(t, "GET", f.srv.URL+c.path, nil)
		if resp.StatusCode != c.code || !strings.Contains(string(body), c.says) {
			t.Errorf("%s: %s %q", c.path, resp.Status, body)
		}
	}
	// While an unsealed copy is being made: 503, try again later.
	f.src.unseal[f.pc] = true
	resp, body = do(t, "GET", u, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "60" || !strings.Contains(string(body), "unsealing since") {
		t.Fatalf("being unsealed: %s %v %q", resp.Status, resp.Header, body)
	}
	delete(f.src.unseal, f.pc)
	f.src.sealed[f.pc] = true
	resp, body = do(t, "GET", u, nil)
	if resp.StatusCode != http.StatusGone || !strings.Contains(string(body), "no unsealed copy") {
		t.Fatalf("sealed only: %s %q", resp.Status, body)
	}
	// A source that cannot tell unknown from unsealed-copy-gone: the
	// directory decides.
	f.src.likeSealing = true
	resp, _ = do(t, "GET", u, nil)
	if resp.StatusCode != http.StatusGone {
		t.Fatalf("indexed, sealed only: %s", resp.Status)
	}
	resp, _ = do(t, "GET", f.srv.URL+"/piece/"+other.String(), nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown to both: %s", resp.Status)
	}
}

func TestFetchPiece(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var buf bytes.Buffer
	if err := FetchPiece(ctx, f.srv.URL, f.pc, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), f.payload) {
		t.Fatal("fetched bytes differ")
	}
	// A server that lies is caught.
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := append([]byte(nil), f.payload...)
		b[3] ^= 1
		w.Write(b)
	}))
	defer liar.Close()
	if err := FetchPiece(ctx, liar.URL, f.pc, io.Discard); !errors.Is(err, ErrVerification) {
		t.Fatalf("tampered piece: %v", err)
	}
	if err := FetchPiece(ctx, f.srv.URL, piece.CIDv1([32]byte{9}), io.Discard); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown piece: %v", err)
	}
}

func TestServeRawBlock(t *testing.T) {
	f := newFixture(t)
	for _, b := range f.dag.all() {
		resp, body := do(t, "GET", f.srv.URL+"/ipfs/"+b.c.String()+"?format=raw", nil)
		if resp.StatusCode != 200 || !bytes.Equal(body, b.data) || resp.Header.Get("Content-Type") != RawContentType {
			t.Fatalf("raw %s: %s", b.c, resp.Status)
		}
	}
	resp, body := do(t, "GET", f.srv.URL+"/ipfs/"+f.dag.L2.c.String(), map[string]string{"Accept": "application/vnd.ipld.raw"})
	if resp.StatusCode != 200 || !bytes.Equal(body, f.dag.L2.data) {
		t.Fatalf("Accept raw: %s", resp.Status)
	}
	missing := rawBlock(t, []byte("nowhere"))
	for _, c := range []struct {
		path string
		hdr  map[string]string
		code int
	}{
		{"/ipfs/" + missing.c.String() + "?format=raw", nil, 404},
		{"/ipfs/bogus?format=raw", nil, 400},
		{"/ipfs/" + f.dag.L1.c.String(), nil, http.StatusNotAcceptable},
		{"/ipfs/" + f.dag.L1.c.String(), map[string]string{"Accept": "text/html"}, http.StatusNotAcceptable},
		{"/ipfs/" + f.dag.L1.c.String() + "?format=tar", nil, http.StatusNotAcceptable},
		{"/ipfs/" + f.dag.L1.c.String() + "?format=car&dag-scope=most", nil, 400},
		{"/ipfs/" + f.dag.L1.c.String() + "/x?format=raw", nil, http.StatusNotAcceptable},
		{"/ipfs/" + f.dag.D.c.String() + "?format=car&car-version=2", nil, 400},
		{"/ipfs/" + f.dag.D.c.String() + "?format=car&car-order=weird", nil, 400},
		{"/ipfs/" + f.dag.D.c.String() + "?format=car&entity-bytes=10", nil, http.StatusBadRequest},
		{"/ipfs/" + f.dag.D.c.String() + "?format=car&car-dups=maybe", nil, http.StatusBadRequest},
	} {
		resp, body := do(t, "GET", f.srv.URL+c.path, c.hdr)
		if resp.StatusCode != c.code || len(body) == 0 {
			t.Errorf("%s: %s %q", c.path, resp.Status, body)
		}
	}
	f.src.unseal[f.pc] = true
	resp, _ = do(t, "GET", f.srv.URL+"/ipfs/"+f.dag.L1.c.String()+"?format=raw", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("being unsealed: %s %v", resp.Status, resp.Header)
	}
	delete(f.src.unseal, f.pc)
	f.src.sealed[f.pc] = true
	resp, _ = do(t, "GET", f.srv.URL+"/ipfs/"+f.dag.L1.c.String()+"?format=raw", nil)
	if resp.StatusCode != http.StatusGone {
		t.Fatalf("sealed only: %s", resp.Status)
	}
}

// carBlocks lists the CIDs of a CAR in order.
func carBlocks(t *testing.T, b []byte) []cid.Cid {
	t.Helper()
	br, err := car.NewBlockReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out []cid.Cid
	for {
		blk, err := br.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, blk.Cid())
	}
}

func TestServeCAR(t *testing.T) {
	f := newFixture(t)
	d := f.dag
	for _, c := range []struct {
		root  cid.Cid
		query string
		want  []blk
	}{
		{d.C.c, "?format=car", []blk{d.C, d.D, d.F, d.L1, d.L2, d.L3}},
		{d.C.c, "?format=car&dag-scope=all", []blk{d.C, d.D, d.F, d.L1, d.L2, d.L3}},
		{d.C.c, "?format=car&dag-scope=block", []blk{d.C}},
		{d.D.c, "?format=car&dag-scope=entity", []blk{d.D}},
		{d.F.c, "?format=car&dag-scope=entity", []blk{d.F, d.L1, d.L2}},
		{d.L3.c, "?format=car", []blk{d.L3}},
		{d.D.c, "/a?format=car", []blk{d.D, d.F, d.L1, d.L2}},
		{d.D.c, "/a?format=car&dag-scope=block", []blk{d.D, d.F}},
		{d.D.c, "/b?format=car&dag-scope=entity", []blk{d.D, d.L3}},
		// A directory has no bytes: entity-bytes is ignored.
		{d.D.c, "?format=car&dag-scope=entity&entity-bytes=0:10", []blk{d.D}},
		// The file's first 10 bytes are all in L1.
		{d.D.c, "/a?format=car&dag-scope=entity&entity-bytes=0:10", []blk{d.D, d.F, d.L1}},
		{d.F.c, "?format=car&dag-scope=entity&entity-bytes=-5:*", []blk{d.F, d.L2}},
		// An explicit dag-scope=all serves the whole DAG.
		{d.C.c, "?format=car&dag-scope=all&entity-bytes=0:10", []blk{d.C, d.D, d.F, d.L1, d.L2, d.L3}},
		// Paths go through DAG-CBOR nodes too.
		{d.C.c, "/dir/a?format=car&dag-scope=entity", []blk{d.C, d.D, d.F, d.L1, d.L2}},
	} {
		resp, body := do(t, "GET", f.srv.URL+"/ipfs/"+c.root.String()+c.query, nil)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), CARContentType) {
			t.Fatalf("%s%s: %s", c.root, c.query, resp.Status)
		}
		got := carBlocks(t, body)
		if len(got) != len(c.want) {
			t.Fatalf("%s%s: %d blocks, want %d", c.root, c.query, len(got), len(c.want))
		}
		for i := range got {
			if !got[i].Equals(c.want[i].c) {
				t.Fatalf("%s%s: block %d is %s, want %s", c.root, c.query, i, got[i], c.want[i].c)
			}
		}
	}
	resp, _ := do(t, "GET", f.srv.URL+"/ipfs/"+d.C.c.String(), map[string]string{"Accept": "application/vnd.ipld.car; version=1; order=dfs; dups=y"})
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "dups=y") {
		t.Fatalf("Accept car with dups=y: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	resp, _ = do(t, "GET", f.srv.URL+"/ipfs/"+d.C.c.String(), map[string]string{"Accept": "application/vnd.ipld.car; version=2"})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("CAR v2 asked: %s", resp.Status)
	}
}

func TestFetchCAR(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var buf bytes.Buffer
	if err := FetchCAR(ctx, f.srv.URL, f.dag.C.c, &buf); err != nil {
		t.Fatal(err)
	}
	if got := carBlocks(t, buf.Bytes()); len(got) != 6 || !got[0].Equals(f.dag.C.c) {
		t.Fatalf("fetched %v", got)
	}

	// A server that lost one block (not in the index, its bytes in the
	// piece rotten), through either way of serving a whole DAG: the fetch
	// fails.
	hide := hidingDir{f.idx, f.dag.L2.c.Hash()}
	rotten := &memSource{pieces: map[cid.Cid][]byte{f.pc: bytes.Clone(f.payload)}}
	at := bytes.Index(rotten.pieces[f.pc], f.dag.L2.data)
	rotten.pieces[f.pc][at] ^= 1
	for _, opts := range [][]Option{nil, {WithLibraryOnly()}} {
		srv := httptest.NewServer(newServer(t, hide, rotten, opts...))
		defer srv.Close()
		if err := FetchCAR(ctx, srv.URL, f.dag.C.c, io.Discard); !errors.Is(err, ErrVerification) {
			t.Fatalf("lost block (%d options): %v", len(opts), err)
		}
	}
	if err := FetchCAR(ctx, f.srv.URL, rawBlock(t, []byte("x")).c, io.Discard); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing root: %v", err)
	}
}

// hidingDir is a directory that has lost one block.
type hidingDir struct {
	*index.Service
	mh multihash.Multihash
}

func (h hidingDir) PiecesContaining(ctx context.Context, mh multihash.Multihash) ([]index.Location, error) {
	if bytes.Equal(mh, h.mh) {
		return nil, nil
	}
	return h.Service.PiecesContaining(ctx, mh)
}

func TestVerifyCAR(t *testing.T) {
	d := makeDAG(t)
	dfs := []blk{d.C, d.D, d.F, d.L1, d.L2, d.L3}
	if err := VerifyCAR(bytes.NewReader(carOf(t, d.C.c, dfs)), d.C.c, io.Discard); err != nil {
		t.Fatal(err)
	}
	other := rawBlock(t, []byte("stranger"))
	tampered := append([]blk(nil), dfs...)
	tampered[3] = blk{d.L1.c, []byte("not L1")}
	for name, c := range map[string][]byte{
		"missing block":  carOf(t, d.C.c, dfs[:5]),
		"unlinked block": carOf(t, d.C.c, append(append([]blk(nil), dfs...), other)),
		"wrong root":     carOf(t, d.D.c, dfs),
		"root not first": carOf(t, d.C.c, append([]blk{d.D, d.C}, dfs[2:]...)),
		"bad hash":       carOf(t, d.C.c, tampered),
		"garbage":        []byte("garbage"),
	} {
		if err := VerifyCAR(bytes.NewReader(c), d.C.c, io.Discard); !errors.Is(err, ErrVerification) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestGatewayHeaders checks what the trustless gateway spec asks of the
// headers, on the fast paths and on boxo's: ?filename= names the
// download, X-Ipfs-Roots is there without a path, and CARs say
// Accept-Ranges: none.
func TestGatewayHeaders(t *testing.T) {
	f := newFixture(t)
	d := f.dag
	for _, c := range []struct {
		path, accept, roots string
	}{
		{"/ipfs/" + d.C.c.String() + "?format=car&filename=all.car", "", d.C.c.String()},                                   // dagCAR
		{"/ipfs/" + d.F.c.String() + "?format=car&dag-scope=entity&entity-bytes=0:5&filename=all.car", "", d.F.c.String()}, // rangeCAR
		{"/ipfs/" + d.C.c.String() + "?format=car&dag-scope=block&filename=all.car", "", d.C.c.String()},                   // boxo
		{"/ipfs/" + d.C.c.String() + "/dir?format=car&filename=all.car", "", d.C.c.String() + "," + d.D.c.String()},        // boxo, a path
		{"/ipfs/" + d.L1.c.String() + "?filename=all.car", RawContentType, d.L1.c.String()},                                // a raw block
	} {
		resp, _ := do(t, "GET", f.srv.URL+c.path, map[string]string{"Accept": c.accept})
		h := resp.Header
		if resp.StatusCode != 200 || !strings.Contains(h.Get("Content-Disposition"), `filename="all.car"`) || h.Get("X-Ipfs-Roots") != c.roots {
			t.Errorf("%s: %s, Content-Disposition %q, X-Ipfs-Roots %q (want %q)", c.path, resp.Status, h.Get("Content-Disposition"), h.Get("X-Ipfs-Roots"), c.roots)
		}
		if strings.HasPrefix(h.Get("Content-Type"), CARContentType) && h.Get("Accept-Ranges") != "none" {
			t.Errorf("%s: Accept-Ranges %q on a CAR", c.path, h.Get("Accept-Ranges"))
		}
	}
}

// A piece CID v2 names the payload: /piece/{v2} serves its bytes alone (a
// v1 the whole piece), FetchPiece writes them alone whatever the server
// sends after them, and a v2 whose payload is larger than the stored piece
// is not stored here.
func TestServePieceV2Payload(t *testing.T) {
	f := newFixture(t)
	n := len(bytes.TrimRight(f.payload, "\x00"))
	size := piece.PaddedSizeFor(uint64(len(f.payload)))
	v2, err := piece.V1ToV2(f.pc, uint64(n), size)
	if err != nil {
		t.Fatal(err)
	}
	u := f.srv.URL + "/piece/" + v2.String()
	resp, body := do(t, "GET", u, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, f.payload[:n]) || resp.ContentLength != int64(n) {
		t.Fatalf("GET v2: %s, %d bytes; want the %d payload bytes", resp.Status, len(body), n)
	}
	resp, _ = do(t, "GET", u, map[string]string{"Range": fmt.Sprintf("bytes=%d-", n)})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", n) {
		t.Fatalf("range past the payload: %s %q", resp.Status, resp.Header.Get("Content-Range"))
	}
	bigger, err := piece.V1ToV2(f.pc, uint64(len(f.payload))+1, size*2)
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, "GET", f.srv.URL+"/piece/"+bigger.String(), nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("v2 with a payload larger than the piece: %s", resp.Status)
	}

	ctx := context.Background()
	var got bytes.Buffer
	if err := FetchPiece(ctx, f.srv.URL, v2, &got); err != nil || !bytes.Equal(got.Bytes(), f.payload[:n]) {
		t.Fatalf("FetchPiece(v2): %d bytes, %v", got.Len(), err)
	}
	// A server that sends the whole piece for a v2 (the zero fill after
	// the payload too): the payload is written alone.
	whole := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(f.payload) }))
	defer whole.Close()
	got.Reset()
	if err := FetchPiece(ctx, whole.URL, v2, &got); err != nil || !bytes.Equal(got.Bytes(), f.payload[:n]) {
		t.Fatalf("FetchPiece(v2) from a server sending the whole piece: %d bytes, %v", got.Len(), err)
	}
	// One that sends less than the payload, even if the commitment holds.
	short := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(f.payload[:n]) }))
	defer short.Close()
	long, err := piece.V1ToV2(f.pc, uint64(n+1), size)
	if err != nil {
		t.Fatal(err)
	}
	if err := FetchPiece(ctx, short.URL, long, io.Discard); !errors.Is(err, ErrVerification) {
		t.Fatalf("FetchPiece of a short payload: %v", err)
	}
}
