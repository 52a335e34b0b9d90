package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/oklog/ulid/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/wire"
)

// uploadProxy stands between the client and ferryd's HTTP listener (the
// miner's HTTP address on chain is the proxy's, through HTTP.PublicURL).
// It counts the chunk uploads it forwards and can hold one: the first
// upload of chunk stallAt passes stallBytes of its body to ferryd and then
// waits until release, as a client that dies (or a provider killed) in the
// middle of a chunk leaves it.
type uploadProxy struct {
	srv  *http.Server
	addr string

	mu         sync.Mutex
	target     *httputil.ReverseProxy
	puts       map[int]int // chunk number → uploads forwarded
	stallAt    int         // 0: none
	stalled    chan struct{}
	released   chan struct{}
	stallBytes int64
}

var chunkPath = regexp.MustCompile(`^/market/mk20/uploads/[0-9A-Z]{26}/([0-9]+)$`)

func newUploadProxy(t *testing.T) *uploadProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &uploadProxy{addr: l.Addr().String(), puts: map[int]int{}, stallBytes: 256 << 10}
	p.srv = &http.Server{Handler: p}
	go p.srv.Serve(l)
	t.Cleanup(func() {
		p.release()
		p.srv.Close()
	})
	return p
}

// publicURL is ferryd's HTTP.PublicURL setting that sends clients here.
func (p *uploadProxy) publicURL() string { return fmt.Sprintf("PublicURL = %q", "http://"+p.addr) }

// forwardTo sends what comes to ferryd's HTTP listener on port.
func (p *uploadProxy) forwardTo(port int) {
	u, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", port))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = httputil.NewSingleHostReverseProxy(u)
	p.target.ErrorLog = log.New(io.Discard, "", 0) // a held chunk's end is expected
}

// stall holds the next upload of chunk n.
func (p *uploadProxy) stall(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stallAt, p.stalled, p.released = n, make(chan struct{}), make(chan struct{})
}

// waitStalled waits until the chunk is held.
func (p *uploadProxy) waitStalled(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	ch := p.stalled
	p.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(90 * time.Second):
		t.Fatal("the client never uploaded the chunk to hold")
	}
}

// release lets the held upload go on, with an error: its client is gone.
func (p *uploadProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released != nil {
		select {
		case <-p.released:
		default:
			close(p.released)
		}
	}
}

// counts returns the uploads forwarded per chunk.
func (p *uploadProxy) counts() map[int]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int]int{}
	for k, v := range p.puts {
		out[k] = v
	}
	return out
}

func (p *uploadProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	target := p.target
	if m := chunkPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPut {
		n, _ := strconv.Atoi(m[1])
		p.puts[n]++
		if n == p.stallAt {
			p.stallAt = 0
			r.Body = &heldBody{r: r.Body, left: p.stallBytes, stalled: p.stalled, released: p.released}
		}
	}
	p.mu.Unlock()
	target.ServeHTTP(w, r)
}

// heldBody passes left bytes, then says so and fails once released.
type heldBody struct {
	r                 io.ReadCloser
	left              int64
	stalled, released chan struct{}
}

func (b *heldBody) Read(buf []byte) (int, error) {
	if b.left > 0 {
		n, err := b.r.Read(buf[:min(int64(len(buf)), b.left)])
		b.left -= int64(n)
		return n, err
	}
	select {
	case <-b.stalled:
	default:
		close(b.stalled)
	}
	<-b.released
	return 0, errors.New("the client went away")
}

func (b *heldBody) Close() error { return b.r.Close() }

// allocatedPiece funds a client with FIL and DataCap, makes a CAR of a
// file of n random bytes and an allocation of DataCap for the provider and
// its piece (by piece CID v2).
func (e *env) allocatedPiece(n int) *directDeal {
	t := e.t
	t.Helper()
	dd := &directDeal{}
	dd.miner, dd.client = e.fundClient()
	e.must(e.ferry, "devnet", "datacap", dd.client, "4MiB")

	data := t.TempDir()
	dd.payload = make([]byte, n)
	rand.Read(dd.payload)
	os.WriteFile(filepath.Join(data, "direct.bin"), dd.payload, 0o644)
	dd.car = filepath.Join(t.TempDir(), "direct.car")
	dd.root = strings.TrimSpace(e.must(e.ferry, "car", "create", data, "-o", dd.car))
	var cp struct {
		PieceCID   string `json:"pieceCid"`
		PieceCIDv2 string `json:"pieceCidV2"`
	}
	if err := json.Unmarshal([]byte(e.must(e.ferry, "commp", dd.car, "--json")), &cp); err != nil {
		t.Fatal(err)
	}
	dd.pieceCID, dd.pieceCIDv2 = cp.PieceCID, cp.PieceCIDv2
	var alloc struct {
		Allocations []struct {
			AllocationID uint64 `json:"allocationId"`
			PieceCID     string `json:"pieceCid"`
		} `json:"allocations"`
	}
	if err := json.Unmarshal([]byte(e.must(e.ferry, "allocate", "--provider", dd.miner, "--piece-cid", dd.pieceCIDv2, "--json")), &alloc); err != nil {
		t.Fatal(err)
	}
	if len(alloc.Allocations) != 1 || alloc.Allocations[0].PieceCID != dd.pieceCID {
		t.Fatalf("ferry allocate made %+v", alloc)
	}
	dd.allocation = alloc.Allocations[0].AllocationID
	return dd
}

// ddoOut is what `ferry deal --ddo --json` prints.
type ddoOut struct {
	DealID   string `json:"dealId"`
	Accepted bool   `json:"accepted"`
	Uploaded bool   `json:"uploaded"`
	Message  string `json:"message"`
	PieceCID string `json:"pieceCid"`
}

// uploadArgs are the arguments of `ferry deal --ddo --upload` of dd in
// 1 MiB chunks as the deal named id.
func uploadArgs(dd *directDeal, id ulid.ULID) []string {
	return []string{"deal", "--ddo", "--provider", dd.miner, dd.car, "--upload", "--allocation-id", fmt.Sprint(dd.allocation),
		"--chunk-size", fmt.Sprint(1 << 20), "--deal-id", id.String(), "--json"}
}

// background starts a command with the client's environment.
func (e *env) background(name string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "FERRY_CLIENT_REPO="+e.client, "FERRY_REPO="+e.repo, "FULLNODE_API_INFO="+e.apiInfo)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	return cmd, &out
}

// waitHandedOff waits until the market has the mk20 deal: `ferryd deal
// show` knows its UUID.
func (e *env) waitHandedOff(id ulid.ULID) string {
	e.t.Helper()
	u := uuid.UUID(id).String()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := e.run(e.ferryd, "--repo", e.repo, "deal", "show", u); err == nil {
			return u
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("mk20 deal %s never reached the market\nferryd log:\n%s", id, e.daemonLog)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkRetrieved gets the deal's data back: the file by payload CID and
// the CAR by piece CID v2.
func (e *env) checkRetrieved(dd *directDeal) {
	t := e.t
	t.Helper()
	back := filepath.Join(t.TempDir(), "back")
	e.must(e.ferry, "retrieve", "--provider", dd.miner, dd.root, "-o", back, "--extract")
	if got, err := os.ReadFile(filepath.Join(back, "direct.bin")); err != nil || !bytes.Equal(got, dd.payload) {
		t.Fatalf("retrieved direct.bin differs (%d bytes, %v)", len(got), err)
	}
	pieceOut := filepath.Join(t.TempDir(), "piece")
	e.must(e.ferry, "retrieve", "--provider", dd.miner, "--piece", dd.pieceCIDv2, "-o", pieceOut)
	car, _ := os.ReadFile(dd.car)
	if got, _ := os.ReadFile(pieceOut); !bytes.Equal(got, car) {
		t.Fatalf("the piece by CID v2 is %d bytes, not the %d-byte CAR", len(got), len(car))
	}
}

// TestMK20UploadDeal is the README's Market 2.0 upload deal: the client
// allocates DataCap for its piece and uploads the CAR in chunks with
// `ferry deal --ddo --upload`; killed in the middle of the second chunk,
// it is run again and sends only what the provider lacks (that chunk
// again, and the last); `ferry deal-status` follows the deal to complete,
// the claim is on chain in the deal's sector, and the data comes back.
func TestMK20UploadDeal(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel() // most of an end-to-end test is waiting for blocks
	px := newUploadProxy(t)
	e := newEnv(t, px.publicURL(), `MinChunkSize = "1MiB"`)
	px.forwardTo(e.retrievalPort)
	e.start()
	dd := e.allocatedPiece(2<<20 + 300_000) // a CAR of three 1 MiB chunks
	id := ulid.Make()
	args := uploadArgs(dd, id)

	px.stall(2)
	cmd, _ := e.background(e.ferry, args...)
	px.waitStalled(t)
	cmd.Process.Kill()
	cmd.Wait()
	px.release()

	var out ddoOut
	if err := json.Unmarshal([]byte(lastJSON(e.must(e.ferry, args...))), &out); err != nil {
		t.Fatal(err)
	}
	if out.DealID != id.String() || !out.Accepted || !out.Uploaded || !strings.Contains(out.Message, "resumed") {
		t.Fatalf("the resumed deal --ddo printed %+v", out)
	}
	if got := px.counts(); got[1] != 1 || got[2] != 2 || got[3] != 1 || len(got) != 3 {
		t.Fatalf("chunks uploaded %v; want chunk 1 once, chunk 2 again after the crash, chunk 3 once", got)
	}
	e.must(e.ferry, "deal-status", "--provider", dd.miner, "--deal-uuid", id.String(), "--watch")
	dd.uuid = e.waitHandedOff(id)
	e.checkClaimed(dd, e.showDirect(dd.uuid))
	e.checkRetrieved(dd)
}

// TestMK20KilledDaemon kills ferryd with SIGKILL in the middle of an
// upload's chunk and again once the deal's piece is in a sector: the
// client, run again, resends what ferryd lacks, and the deal completes
// with its piece placed once and its allocation claimed once.
func TestMK20KilledDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel() // most of an end-to-end test is waiting for blocks
	px := newUploadProxy(t)
	e := newEnv(t, px.publicURL(), `MinChunkSize = "1MiB"`)
	px.forwardTo(e.retrievalPort)
	e.start()
	dd := e.allocatedPiece(2<<20 + 300_000)
	id := ulid.Make()
	args := uploadArgs(dd, id)

	px.stall(2)
	cmd, cout := e.background(e.ferry, args...)
	px.waitStalled(t)
	e.kill()
	px.release()
	if err := cmd.Wait(); err == nil || !strings.Contains(cout.String(), "--deal-id "+id.String()) {
		t.Fatalf("the client whose provider died mid-upload: %v\n%s", err, cout)
	}
	e.start()
	e.must(e.ferry, args...)
	if got := px.counts(); got[2] != 2 || got[3] != 1 {
		t.Fatalf("chunks uploaded %v", got)
	}
	dd.uuid = e.waitHandedOff(id)
	e.waitDirect(dd.uuid, func(cp string) bool { return cp == "AddedPiece" || cp == "IndexedAndAnnounced" || cp == "Complete" })
	e.kill()
	e.start()
	e.must(e.ferry, "deal-status", "--provider", dd.miner, "--deal-uuid", id.String(), "--watch")
	e.checkClaimed(dd, e.waitDirect(dd.uuid, isComplete))
}

// TestMK20HTTPSourceAndMK12 makes a Market 2.0 deal whose data ferryd
// downloads (`ferry deal --ddo --http-url`) and follows it to complete
// with its claim on chain; then checks that mk12 over HTTP answers as
// libp2p does for the same deal: the ask, a proposal sent twice (the
// second refused alike on both), and its status.
func TestMK20HTTPSourceAndMK12(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel() // most of an end-to-end test is waiting for blocks
	e := newEnv(t)
	e.start()
	dd := e.allocatedPiece(1<<20 + 4321)
	// The first URL is gone; ferryd goes on to the fallback.
	var gone atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gone.car" {
			gone.Add(1)
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, dd.car)
	}))
	defer srv.Close()
	id := ulid.Make()
	var out ddoOut
	if err := json.Unmarshal([]byte(lastJSON(e.must(e.ferry, "deal", "--ddo", "--provider", dd.miner, dd.car, "--http-url", srv.URL+"/gone.car",
		"--fallback-url", srv.URL+"/data.car", "--allocation-id", fmt.Sprint(dd.allocation), "--deal-id", id.String(), "--json"))), &out); err != nil {
		t.Fatal(err)
	}
	if !out.Accepted || out.PieceCID != dd.pieceCIDv2 {
		t.Fatalf("deal --ddo --http-url printed %+v", out)
	}
	e.must(e.ferry, "deal-status", "--provider", dd.miner, "--deal-uuid", id.String(), "--watch")
	dd.uuid = e.waitHandedOff(id)
	e.checkClaimed(dd, e.showDirect(dd.uuid))
	if gone.Load() != 1 {
		t.Fatalf("the first URL was asked %d times, want once (a 404 is final)", gone.Load())
	}

	e.compareMK12(dd)
}

// compareMK12 sends the same messages over HTTP and libp2p and compares
// the answers' bytes.
func (e *env) compareMK12(dd *directDeal) {
	t := e.t
	t.Helper()
	ctx := context.Background()
	node := e.chainNode()
	repo, err := client.OpenRepo(e.client)
	if err != nil {
		t.Fatal(err)
	}
	maddr, _ := address.NewFromString(dd.miner)
	caddr, _ := address.NewFromString(dd.client)
	p, err := client.LookupProvider(ctx, node, maddr)
	if err != nil {
		t.Fatal(err)
	}
	bases := client.DealBaseURLs(p.AddrInfo.Addrs)
	h, err := client.NewHost()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	same := func(what string, a, b wire.Message) {
		t.Helper()
		var ba, bb bytes.Buffer
		if err := wire.Write(&ba, a); err != nil {
			t.Fatal(err)
		}
		if err := wire.Write(&bb, b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ba.Bytes(), bb.Bytes()) {
			t.Fatalf("%s over HTTP and over libp2p differ:\n%+v\n%+v", what, a, b)
		}
	}

	askP2P, err := client.QueryAsk(ctx, node, h, p)
	if err != nil {
		t.Fatal(err)
	}
	askHTTP, err := client.QueryAskHTTP(ctx, node, nil, bases, p)
	if err != nil {
		t.Fatal(err)
	}
	same("the ask", askHTTP, askP2P)

	// An offline deal of the same piece, proposed over HTTP, then again
	// over both.
	var cp struct {
		PieceSize uint64 `json:"pieceSize"`
	}
	if err := json.Unmarshal([]byte(e.must(e.ferry, "commp", dd.car, "--json")), &cp); err != nil {
		t.Fatal(err)
	}
	head, err := node.ChainHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bounds, err := node.StateDealProviderCollateralBounds(ctx, abi.PaddedPieceSize(cp.PieceSize), false, chain.EmptyTSK)
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := cid.Decode(dd.pieceCID)
	root, _ := cid.Decode(dd.root)
	prop, err := client.BuildProposal(client.ProposalSpec{PieceCID: pc, PieceSize: abi.PaddedPieceSize(cp.PieceSize), Client: caddr, Provider: maddr,
		PayloadCID: root, StartEpoch: head.Height() + client.DefaultStartDelay, Duration: client.DefaultDuration,
		PricePerEpoch: client.PricePerEpoch(askP2P.Price, abi.PaddedPieceSize(cp.PieceSize)), ProviderCollateral: bounds.Min})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := client.SignProposal(repo.Wallet, prop)
	if err != nil {
		t.Fatal(err)
	}
	params := &wire.DealParams{DealUUID: uuid.New(), IsOffline: true, ClientDealProposal: *signed, DealDataRoot: root}
	first, _, err := client.ProposeHTTP(ctx, nil, bases, params)
	if err != nil || !first.Accepted {
		t.Fatalf("the offline deal over HTTP: %+v, %v\nferryd log:\n%s", first, err, e.daemonLog)
	}
	againP2P, err := client.Propose(ctx, h, p, params)
	if err != nil {
		t.Fatal(err)
	}
	againHTTP, _, err := client.ProposeHTTP(ctx, nil, bases, params)
	if err != nil {
		t.Fatal(err)
	}
	if againHTTP.Accepted || !strings.Contains(againHTTP.Message, params.DealUUID.String()) {
		t.Fatalf("the same proposal again: %+v", againHTTP)
	}
	same("the refusal of a proposal sent again", againHTTP, againP2P)

	statusP2P, err := client.QueryDealStatus(ctx, h, p, repo.Wallet, caddr, params.DealUUID)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := repo.Wallet.Sign(caddr, wire.StatusSigningBytes(params.DealUUID))
	if err != nil {
		t.Fatal(err)
	}
	statusHTTP, err := client.DealStatusHTTP(ctx, nil, bases, &wire.DealStatusRequest{DealUUID: params.DealUUID, Signature: *sig})
	if err != nil {
		t.Fatal(err)
	}
	if statusHTTP.DealStatus == nil || statusHTTP.DealStatus.Status != "Accepted" {
		t.Fatalf("status over HTTP: %+v", statusHTTP)
	}
	same("the deal's status", statusHTTP, statusP2P)

	// The provider took it over HTTP: no libp2p peer proposed it.
	var shown struct{ ClientPeer string }
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "deal", "show", params.DealUUID.String(), "--json")), &shown); err != nil {
		t.Fatal(err)
	}
	if shown.ClientPeer != "" {
		t.Fatalf("the deal proposed over HTTP shows client peer %q", shown.ClientPeer)
	}
}
