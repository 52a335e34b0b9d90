package httpdeal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/oklog/ulid/v2"

	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/httpdeal/mk20"
)

// The market's refusal of a proposal is the client's answer, with its code
// and reason, and nothing is reserved or recorded.
func TestMK20MarketCheckRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	e.market.set(mk20.Reject(mk20.ErrDealRejectedByMarket, "no such allocation"), nil)
	d := ddo(c, pieceCIDv2(t, payload(2000, 20)), "")
	err := c.MakeDeal(ctx, d)
	if codeOf(err) != 426 || !strings.Contains(err.Error(), "no such allocation") {
		t.Fatalf("refused by the market: %v", err)
	}
	if e.staging.has(d.Identifier) {
		t.Fatal("a refused deal holds a reservation")
	}
	if _, err := e.srv.store.deal(ctx, d.Identifier); !errors.Is(err, errNotFound) {
		t.Fatalf("a refused deal was recorded: %v", err)
	}
	// A failure of the market's own is a 500, and records nothing either.
	e.market.set(errors.New("database locked"), nil)
	if err := c.MakeDeal(ctx, d); codeOf(err) != 500 {
		t.Fatalf("the market failing: %v", err)
	}
}

// A deal whose hand-off the market refuses fails: an http deal's answer is
// the refusal, an upload's is its finalize's; the reservation and the
// staging file go, and sending the deal again is refused.
func TestMK20MarketStartRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	e.market.set(nil, mk20.Reject(mk20.ErrBadProposal, "the start epoch passed"))
	d := ddo(c, pieceCIDv2(t, payload(2000, 21)), "http://127.0.0.1:9/x.car")
	if err := c.MakeDeal(ctx, d); codeOf(err) != 400 || !strings.Contains(err.Error(), "the start epoch passed") {
		t.Fatalf("hand-off refused: %v", err)
	}
	if e.staging.has(d.Identifier) {
		t.Fatal("the failed deal keeps its reservation")
	}
	if st, err := c.Status(ctx, d.Identifier); err != nil || st.DDOV1.State != mk20.StateFailed || st.DDOV1.ErrorMsg != "the start epoch passed" {
		t.Fatalf("status %+v %v", st, err)
	}
	if err := c.MakeDeal(ctx, d); codeOf(err) != 400 || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("a failed deal sent again: %v", err)
	}

	data := payload(3000, 22)
	up := ddo(c, pieceCIDv2(t, data), "")
	e.market.set(nil, nil)
	if err := c.MakeDeal(ctx, up); err != nil {
		t.Fatal(err)
	}
	e.market.set(nil, mk20.Reject(mk20.ErrBadProposal, "allocation claimed"))
	path := filepath.Join(e.dir, "up")
	os.WriteFile(path, data, 0o644)
	if err := c.Upload(ctx, up.Identifier, path, 1024, nil); codeOf(err) != 400 || !strings.Contains(err.Error(), "allocation claimed") {
		t.Fatalf("upload whose hand-off is refused: %v", err)
	}
	if e.staging.has(up.Identifier) {
		t.Fatal("the failed upload keeps its reservation")
	}
	if _, err := os.Stat(e.srv.stagingPath(up.Identifier)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed upload's file is kept: %v", err)
	}
}

// A hand-off that fails on the provider's side is tried again until it
// succeeds; the client's finalize is answered 200 meanwhile and the deal
// is processing.
func TestMK20HandOffRetried(t *testing.T) {
	e := newEnv(t)
	e.cfg.RetryInterval = 10 * time.Millisecond
	e.restart()
	ctx := context.Background()
	c := e.client()
	data := payload(3000, 23)
	d := ddo(c, pieceCIDv2(t, data), "")
	if err := c.MakeDeal(ctx, d); err != nil {
		t.Fatal(err)
	}
	e.market.set(nil, errors.New("database locked"))
	path := filepath.Join(e.dir, "up")
	os.WriteFile(path, data, 0o644)
	if err := c.Upload(ctx, d.Identifier, path, 1024, nil); err != nil {
		t.Fatalf("finalize with the market failing: %v", err)
	}
	if st, err := c.Status(ctx, d.Identifier); err != nil || st.DDOV1.State != mk20.StateProcessing {
		t.Fatalf("status %+v %v", st, err)
	}
	e.market.set(nil, nil)
	if s := e.waitStarted(d.Identifier); s.path == "" {
		t.Fatalf("handed over without its file: %+v", s)
	}
	// The server records the hand-off once the market's Start returns,
	// a moment after the market saw the deal.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.Status(ctx, d.Identifier)
		if err == nil && st.DDOV1.State == mk20.StateSealing {
			break
		}
		if err != nil || st.DDOV1.State != mk20.StateProcessing || time.Now().After(deadline) {
			t.Fatalf("status after the hand-off %+v %v", st.DDOV1, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// At start, reservations of deals that will never be handed over are
// released with their files: one never recorded (a crash right after the
// reservation) and one of a failed deal (a crash while failing it); a live
// upload's stays.
func TestMK20StartSweepsStaging(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	live := ddo(c, pieceCIDv2(t, payload(2000, 24)), "")
	if err := c.MakeDeal(ctx, live); err != nil {
		t.Fatal(err)
	}
	if err := c.StartUpload(ctx, live.Identifier, 2000, 1024); err != nil {
		t.Fatal(err)
	}
	dead := ddo(c, pieceCIDv2(t, payload(2000, 25)), "")
	if err := c.MakeDeal(ctx, dead); err != nil {
		t.Fatal(err)
	}
	if err := c.StartUpload(ctx, dead.Identifier, 2000, 1024); err != nil {
		t.Fatal(err)
	}
	// The deal failed, and the process died before it dropped its staging.
	if err := e.srv.store.setState(ctx, dead.Identifier, mk20.StateFailed, "test"); err != nil {
		t.Fatal(err)
	}
	orphan := ulid.Make()
	if err := e.staging.Reserve(ctx, orphan.String(), 500); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(e.srv.stagingPath(orphan), []byte("partial"), 0o644)

	e.restart()
	for _, id := range []ulid.ULID{dead.Identifier, orphan} {
		if e.staging.has(id) {
			t.Errorf("reservation of %s kept", id)
		}
		if _, err := os.Stat(e.srv.stagingPath(id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("staging file of %s kept: %v", id, err)
		}
	}
	if !e.staging.has(live.Identifier) {
		t.Error("the live upload's reservation was released")
	}
	if _, err := os.Stat(e.srv.stagingPath(live.Identifier)); err != nil {
		t.Errorf("the live upload's file: %v", err)
	}
}

// An upload not finished when its start epoch no longer leaves time to
// seal fails, and its staging goes.
func TestMK20UploadExpires(t *testing.T) {
	e := newEnv(t)
	e.cfg.RetryInterval = 10 * time.Millisecond
	e.restart()
	ctx := context.Background()
	c := e.client()
	d := ddo(c, pieceCIDv2(t, payload(2000, 26)), "") // starts at 1000, SealEpochs 10
	if err := c.MakeDeal(ctx, d); err != nil {
		t.Fatal(err)
	}
	e.chain.setHead(abi.ChainEpoch(991))
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.Status(ctx, d.Identifier)
		if err != nil {
			t.Fatal(err)
		}
		if st.DDOV1.State == mk20.StateFailed {
			if !strings.Contains(st.DDOV1.ErrorMsg, "start epoch 1000") {
				t.Fatalf("error %q", st.DDOV1.ErrorMsg)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the late upload is still %s", st.DDOV1.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if e.staging.has(d.Identifier) {
		t.Fatal("the expired upload keeps its reservation")
	}
}

// A provider that takes only some sources lists those and refuses the
// others with Curio's code.
func TestMK20Sources(t *testing.T) {
	e := newEnv(t)
	e.cfg.Sources = []mk20.SourceName{mk20.SourceHTTP}
	e.restart()
	ctx := context.Background()
	c := e.client()
	pc := pieceCIDv2(t, payload(2000, 27))
	if err := c.MakeDeal(ctx, ddo(c, pc, "")); codeOf(err) != 422 || !strings.Contains(err.Error(), "put is not enabled") {
		t.Fatalf("an upload deal: %v", err)
	}
	if err := c.MakeDeal(ctx, ddo(c, pc, "http://127.0.0.1:9/x.car")); err != nil {
		t.Fatalf("an http deal: %v", err)
	}
	req, _ := http.NewRequest("GET", e.http.URL+MK20Path+"/sources", nil)
	auth, _ := mk20.SignAuth(c.Sign, c.Client, "GET", MK20Path+"/sources", e.clock())
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sl mk20.SourceList
	if err := json.NewDecoder(resp.Body).Decode(&sl); err != nil || len(sl.Sources) != 1 || sl.Sources[0] != mk20.SourceHTTP {
		t.Fatalf("sources %+v, %v", sl, err)
	}
	e.cfg.Sources = []mk20.SourceName{mk20.SourceAggregate}
	if _, err := NewMK20(e.cfg, e.deps); err == nil {
		t.Fatal("a source Ferry does not take was configured")
	}
}

// secondNode makes e's server node "a" of a cluster and starts node "b"
// beside it on the same database, with its own staging and nodeURL (nil:
// b cannot find other nodes); both end with the test.
func (e *env) secondNode(nodeURL func(context.Context, string) (string, error)) (*MK20, *httptest.Server) {
	e.t.Helper()
	e.cfg.NodeID = "a"
	e.restart()
	cfg := e.cfg
	cfg.NodeID, cfg.StagingDir, cfg.NodeURL = "b", filepath.Join(e.dir, "staging-b"), nodeURL
	other, err := NewMK20(cfg, e.deps)
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(other)
	e.t.Cleanup(func() { srv.Close(); other.Close() })
	return other, srv
}

// In a cluster whose nodes can find each other (NodeURL), a client may send
// every request of an upload to any node: chunks, a serial upload and
// finalize sent to another node are passed on to the upload's node, which
// receives and hands it over, whatever answer it gives coming back. A
// request that was forwarded already is not forwarded again (421), and a
// node that cannot be found is a 503.
func TestMK20UploadForwarded(t *testing.T) {
	e := newEnv(t)
	other, ohttp := e.secondNode(func(_ context.Context, node string) (string, error) {
		if node != "a" {
			return "", fmt.Errorf("node %s: unknown", node)
		}
		return e.http.URL, nil
	})

	ctx := context.Background()
	c := e.client()
	oc := *c
	oc.BaseURL = ohttp.URL
	data := payload(2*1024+10, 29)
	d := ddo(c, pieceCIDv2(t, data), "")
	if err := c.MakeDeal(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := c.StartUpload(ctx, d.Identifier, uint64(len(data)), 1024); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 3; n++ {
		b := data[(n-1)*1024 : min(n*1024, len(data))]
		via := c
		if n != 2 {
			via = &oc // chunks 1 and 3 through the other node
		}
		if err := via.PutChunk(ctx, d.Identifier, n, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatalf("chunk %d: %v", n, err)
		}
	}
	if entries, _ := os.ReadDir(other.cfg.StagingDir); len(entries) != 0 {
		t.Fatalf("the other node kept %d files of the upload", len(entries))
	}
	// The upload node's own answers come back: a chunk out of range.
	if err := oc.PutChunk(ctx, d.Identifier, 9, bytes.NewReader(data[:10]), 10); codeOf(err) != http.StatusNotFound {
		t.Fatalf("a chunk out of range through the other node: %v", err)
	}
	if err := oc.Finalize(ctx, d.Identifier); err != nil {
		t.Fatalf("finalize through the other node: %v", err)
	}
	if s := e.waitStarted(d.Identifier); !bytes.Equal(s.data, data) {
		t.Fatal("the market got other bytes")
	}

	// A serial upload and its finalize, both through the other node.
	send := func(base, method, path string, body []byte, ct string, hdr ...string) int {
		t.Helper()
		return e.signedRequestTo(t, base, c, method, path, body, ct, hdr...)
	}
	data2 := payload(1500, 30)
	d2 := ddo(c, pieceCIDv2(t, data2), "")
	if err := c.MakeDeal(ctx, d2); err != nil {
		t.Fatal(err)
	}
	// Begun on its node and cut short (a 400), then sent again.
	if code := send(e.http.URL, http.MethodPut, "/upload/"+d2.Identifier.String(), data2[:10], contentTypeBytes); code != http.StatusBadRequest {
		t.Fatalf("a short serial upload on its node: %d", code)
	}
	if code := send(ohttp.URL, http.MethodPut, "/upload/"+d2.Identifier.String(), data2, contentTypeBytes); code != http.StatusOK {
		t.Fatalf("the serial upload again through the other node: %d", code)
	}
	if code := send(ohttp.URL, http.MethodPost, "/upload/"+d2.Identifier.String(), nil, ""); code != http.StatusOK {
		t.Fatalf("serial finalize through the other node: %d", code)
	}
	if s := e.waitStarted(d2.Identifier); !bytes.Equal(s.data, data2) {
		t.Fatal("the market got other bytes of the serial upload")
	}

	// Forwarded once only: a request that says it was forwarded gets 421.
	d3 := ddo(c, pieceCIDv2(t, data), "")
	if err := c.MakeDeal(ctx, d3); err != nil {
		t.Fatal(err)
	}
	if err := c.StartUpload(ctx, d3.Identifier, uint64(len(data)), 1024); err != nil {
		t.Fatal(err)
	}
	chunk1 := "/uploads/" + d3.Identifier.String() + "/1"
	if code := send(ohttp.URL, http.MethodPut, chunk1, data[:1024], contentTypeBytes, forwardedBy, "c"); code != http.StatusMisdirectedRequest {
		t.Fatalf("a forwarded request forwarded again: %d", code)
	}
	// The upload's node not found, or not answering.
	other.cfg.NodeURL = func(context.Context, string) (string, error) { return "", errors.New("node a is down") }
	if code := send(ohttp.URL, http.MethodPut, chunk1, data[:1024], contentTypeBytes); code != http.StatusServiceUnavailable {
		t.Fatalf("the upload's node unknown: %d", code)
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	other.cfg.NodeURL = func(context.Context, string) (string, error) { return gone.URL, nil }
	if code := send(ohttp.URL, http.MethodPut, chunk1, data[:1024], contentTypeBytes); code != http.StatusBadGateway {
		t.Fatalf("the upload's node not answering: %d", code)
	}
	if st, err := c.UploadStatus(ctx, d3.Identifier); err != nil || st.TotalChunks != 3 || st.Missing != 3 {
		t.Fatalf("upload status after refused chunks: %+v, %v", st, err)
	}
}

// In a cluster an upload is its first node's: chunks and finalize sent to
// another node are answered 421, and that node never hands it over; the
// upload completes on its node.
func TestMK20UploadOnOneNode(t *testing.T) {
	e := newEnv(t)
	other, ohttp := e.secondNode(nil)

	ctx := context.Background()
	c := e.client()
	data := payload(2*1024+10, 28)
	d := ddo(c, pieceCIDv2(t, data), "")
	if err := c.MakeDeal(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := c.StartUpload(ctx, d.Identifier, uint64(len(data)), 1024); err != nil {
		t.Fatal(err)
	}
	oc := *c
	oc.BaseURL = ohttp.URL
	if err := oc.PutChunk(ctx, d.Identifier, 1, bytes.NewReader(data[:1024]), 1024); codeOf(err) != http.StatusMisdirectedRequest {
		t.Fatalf("a chunk sent to another node: %v", err)
	}
	for n := 1; n <= 3; n++ {
		b := data[(n-1)*1024 : min(n*1024, len(data))]
		if err := c.PutChunk(ctx, d.Identifier, n, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	if err := oc.Finalize(ctx, d.Identifier); codeOf(err) != http.StatusMisdirectedRequest {
		t.Fatalf("finalize sent to another node: %v", err)
	}
	if err := other.resume(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.market.get(d.Identifier); ok {
		t.Fatal("another node handed the upload over")
	}
	if err := c.Finalize(ctx, d.Identifier); err != nil {
		t.Fatal(err)
	}
	if s := e.waitStarted(d.Identifier); !bytes.Equal(s.data, data) {
		t.Fatal("the market got other bytes")
	}
}

// TestMK20ForwardedRateLimit: a chunk another node forwards counts in the
// upload node's limits under the client's address when the nodes share a
// peer token, so a client is not refused because other requests came from
// the forwarding node's address; a node without the token is counted as
// itself. The client dials from 127.0.0.2, the nodes from 127.0.0.1.
func TestMK20ForwardedRateLimit(t *testing.T) {
	for _, peers := range []bool{true, false} {
		t.Run(map[bool]string{true: "peers", false: "no peers"}[peers], func(t *testing.T) {
			e := newEnv(t)
			e.cfg.ChunkRateLimit = 2
			if peers {
				e.cfg.Peers = &PeerAuth{Token: "cluster", Verify: func(tok string) bool { return tok == "cluster" }}
			}
			_, ohttp := e.secondNode(func(_ context.Context, node string) (string, error) { return e.http.URL, nil })
			ctx := context.Background()
			c := e.client()
			data := payload(4*1024, 31)
			d := ddo(c, pieceCIDv2(t, data), "")
			if err := c.MakeDeal(ctx, d); err != nil {
				t.Fatal(err)
			}
			if err := c.StartUpload(ctx, d.Identifier, uint64(len(data)), 1024); err != nil {
				t.Fatal(err)
			}
			chunk := func(via *client.MK20Client, n int) error {
				b := data[(n-1)*1024 : n*1024]
				return via.PutChunk(ctx, d.Identifier, n, bytes.NewReader(b), int64(len(b)))
			}
			// 127.0.0.1 uses up its chunk limit on the upload node (the
			// test's clock stands still, so the second never ends).
			for n := 1; n <= 2; n++ {
				if err := chunk(c, n); err != nil {
					t.Fatalf("chunk %d: %v", n, err)
				}
			}
			if err := chunk(c, 3); codeOf(err) != http.StatusTooManyRequests {
				t.Fatalf("a third chunk from 127.0.0.1: %v", err)
			}
			// The client at 127.0.0.2 through the other node.
			far := *c
			far.BaseURL = ohttp.URL
			far.HTTP = &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
				LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
			err := chunk(&far, 3)
			if peers && err != nil {
				t.Fatalf("a chunk from 127.0.0.2 forwarded with the peer token: %v", err)
			}
			if !peers && codeOf(err) != http.StatusTooManyRequests {
				t.Fatalf("a chunk forwarded without the peer token counts under the forwarding node: %v", err)
			}
		})
	}
}

// TestMK20ForwardedTakesNoSlot: a node passing a chunk or a serial upload
// on to the upload's node takes none of its own upload slots (the
// upload's node takes one), so uploads it forwards are not refused for
// uploads it receives itself.
func TestMK20ForwardedTakesNoSlot(t *testing.T) {
	e := newEnv(t)
	other, ohttp := e.secondNode(func(_ context.Context, node string) (string, error) { return e.http.URL, nil })
	for range cap(other.slots) {
		other.slots <- struct{}{} // every slot of the other node busy
	}
	ctx := context.Background()
	c := e.client()
	oc := *c
	oc.BaseURL = ohttp.URL
	data := payload(2*1024, 32)
	d := ddo(c, pieceCIDv2(t, data), "")
	if err := c.MakeDeal(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := c.StartUpload(ctx, d.Identifier, uint64(len(data)), 1024); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 2; n++ {
		if err := oc.PutChunk(ctx, d.Identifier, n, bytes.NewReader(data[(n-1)*1024:n*1024]), 1024); err != nil {
			t.Fatalf("chunk %d through a node with no free slot: %v", n, err)
		}
	}
	// A serial upload begun on its node, sent again through the other.
	data2 := payload(1500, 33)
	d2 := ddo(c, pieceCIDv2(t, data2), "")
	if err := c.MakeDeal(ctx, d2); err != nil {
		t.Fatal(err)
	}
	if code := e.signedRequestTo(t, e.http.URL, c, http.MethodPut, "/upload/"+d2.Identifier.String(), data2[:10], contentTypeBytes); code != http.StatusBadRequest {
		t.Fatalf("a short serial upload on its node: %d", code)
	}
	if code := e.signedRequestTo(t, ohttp.URL, c, http.MethodPut, "/upload/"+d2.Identifier.String(), data2, contentTypeBytes); code != http.StatusOK {
		t.Fatalf("the serial upload through a node with no free slot: %d", code)
	}
	// Its own uploads still find no slot there.
	data3 := payload(1500, 34)
	d3 := ddo(c, pieceCIDv2(t, data3), "")
	if err := c.MakeDeal(ctx, d3); err != nil {
		t.Fatal(err)
	}
	if code := e.signedRequestTo(t, ohttp.URL, c, http.MethodPut, "/upload/"+d3.Identifier.String(), data3, contentTypeBytes); code != http.StatusTooManyRequests {
		t.Fatalf("a new serial upload on the node with no free slot: %d", code)
	}
}
