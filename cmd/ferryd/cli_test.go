package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc"
	"github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/api"
	ferryauth "github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/cluster"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/internal/cliutil/clitest"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/wire"
)

// operator is an api.Ferry that answers with every field set (so that
// omitempty keys show) and records the calls it gets.
type operator struct {
	calls []string
}

var (
	testDeal  = uuid.MustParse("0b5f8a4e-7a4c-4f5e-9d7e-1c2b3a4d5e6f")
	testPiece = cid.MustParse("baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi")
	testCID   = cid.MustParse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	// testPieceV2 is testPiece's CID v2 (SPEC.md §2).
	testPieceV2 = cid.MustParse("bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi")
)

func (o *operator) Info(context.Context) (api.Info, error) {
	o.calls = append(o.calls, "Info")
	return api.Info{Miner: "f01000", MarketEscrow: big.Zero(), MarketLocked: big.Zero(), WorkerFunds: big.Zero()}, nil
}

func (o *operator) DealList(_ context.Context, f market.DealFilter) ([]market.DealInfo, error) {
	after := ""
	if f.After != nil {
		after = f.After.UUID
	}
	o.calls = append(o.calls, fmt.Sprintf("DealList %s %d %s%d", f.State, f.Limit, after, f.Offset))
	return []market.DealInfo{testDealInfo()}, nil
}

func testDealInfo() market.DealInfo {
	sector := uint64(3)
	ended := time.Unix(1700000000, 0).UTC()
	return market.DealInfo{UUID: testDeal.String(), CreatedAt: ended, UpdatedAt: ended, ClientPeer: "12D3KooW", Client: "f01001",
		PieceCID: testPiece.String(), PieceSize: 2048, DataRoot: testCID.String(), StartEpoch: 10, EndEpoch: 20, Verified: true,
		TransferSize: 2000, BytesReceived: 1000, AddPieceBytes: 500, Checkpoint: market.Complete, Retry: market.RetryFatal, Retries: 1,
		Error: "expired", PublishCID: testCID.String(), ChainDealID: 7, Sector: &sector, SectorOffset: &sector, SealingState: "Proving",
		SignedCID: testCID.String(), Ended: market.EndExpired, EndedAt: &ended,
		Kind: market.KindDirect, PieceCIDv2: testPieceV2.String(), AllocationID: 12, ClaimID: 12, DataPath: "/data/x.car"}
}

func (o *operator) DealShow(_ context.Context, id uuid.UUID) (*market.DealDetail, error) {
	o.calls = append(o.calls, "DealShow "+id.String())
	return &market.DealDetail{DealInfo: testDealInfo(), Logs: []market.DealLog{{At: time.Unix(1700000000, 0).UTC(), Text: "accepted"}}}, nil
}

func (o *operator) DealRetry(_ context.Context, id uuid.UUID) error {
	o.calls = append(o.calls, "DealRetry "+id.String())
	return nil
}

func (o *operator) DealFail(_ context.Context, id uuid.UUID) error {
	o.calls = append(o.calls, "DealFail "+id.String())
	return nil
}

func (o *operator) DealCancel(_ context.Context, id uuid.UUID) error {
	o.calls = append(o.calls, "DealCancel "+id.String())
	return nil
}

func (o *operator) DealImportData(_ context.Context, id uuid.UUID, path string) error {
	o.calls = append(o.calls, "DealImportData "+id.String()+" "+filepath.Base(path))
	return nil
}

func (o *operator) DealImportDirect(_ context.Context, dd market.DirectDeal) (*market.DealInfo, error) {
	o.calls = append(o.calls, fmt.Sprintf("DealImportDirect %s %d %s %s %d %t %t %t", dd.Client, dd.AllocationID, dd.PieceCID,
		filepath.Base(dd.Data.File), dd.StartEpoch, dd.Data.DeleteAfterImport, dd.RemoveUnsealedCopy, dd.SkipIPNIAnnounce))
	d := testDealInfo()
	return &d, nil
}

func (o *operator) PublishNow(context.Context) error {
	o.calls = append(o.calls, "PublishNow")
	return nil
}

func testAsk() *wire.SignedStorageAsk {
	miner, _ := address.NewIDAddress(1000)
	return &wire.SignedStorageAsk{
		Ask:       &wire.StorageAsk{Price: big.NewInt(1), VerifiedPrice: big.NewInt(0), MinPieceSize: 256, MaxPieceSize: 1 << 30, Miner: miner, Timestamp: 1, Expiry: 2, SeqNo: 3},
		Signature: &crypto.Signature{Type: crypto.SigTypeBLS, Data: []byte{1}},
	}
}

func (o *operator) AskGet(context.Context) (*wire.SignedStorageAsk, error) {
	o.calls = append(o.calls, "AskGet")
	return testAsk(), nil
}

func (o *operator) AskSet(_ context.Context, p market.AskParams) (*wire.SignedStorageAsk, error) {
	o.calls = append(o.calls, fmt.Sprintf("AskSet %s %s", p.Price, p.VerifiedPrice))
	return testAsk(), nil
}

func testSector() sealing.SectorInfo {
	at := time.Unix(1700000000, 0).UTC()
	return sealing.SectorInfo{Number: 3, State: "Proving", SealProof: abi.RegisteredSealProof_StackedDrg8MiBV1_1, SectorSize: 8 << 20, Used: 4096, Deals: 1,
		Pieces:   []sealing.SectorPiece{{Offset: 0, Size: 2048, PieceCID: testPiece, Written: true, DealUUID: &testDeal, DealID: 7, StartEpoch: 10, EndEpoch: 20, KeepUnsealed: true, Error: "x"}},
		OpenedAt: at, UpdatedAt: at, PackReason: "full", TicketEpoch: 1, SeedEpoch: 2, CommD: &testPiece, CommR: &testCID, PreCommitMsg: &testCID,
		PreCommitEpoch: 3, CommitMsg: &testCID, Retries: 1, LastError: "y", Unsealed: true}
}

func (o *operator) SectorsList(context.Context) ([]sealing.SectorInfo, error) {
	o.calls = append(o.calls, "SectorsList")
	return []sealing.SectorInfo{testSector()}, nil
}

func (o *operator) SectorsStatus(_ context.Context, n abi.SectorNumber) (sealing.SectorInfo, error) {
	o.calls = append(o.calls, fmt.Sprintf("SectorsStatus %d", n))
	return testSector(), nil
}

func testPieceIndex() api.PieceIndexInfo {
	return api.PieceIndexInfo{PieceCID: testPiece.String(), State: "indexing", Blocks: 5, Aggregate: true, Announced: true, Error: "x", BytesRead: 1, BytesTotal: 2,
		PieceCIDv2: testPieceV2.String(), PieceSize: 512, RawSize: 508}
}

func (o *operator) IndexList(context.Context) ([]api.PieceIndexInfo, error) {
	o.calls = append(o.calls, "IndexList")
	return []api.PieceIndexInfo{testPieceIndex()}, nil
}

func (o *operator) IndexStatus(_ context.Context, pc cid.Cid) (api.PieceIndexInfo, error) {
	o.calls = append(o.calls, "IndexStatus "+pc.String())
	return testPieceIndex(), nil
}

func (o *operator) IndexRebuild(_ context.Context, pc cid.Cid) (int64, error) {
	o.calls = append(o.calls, "IndexRebuild "+pc.String())
	return 5, nil
}

func (o *operator) IndexAnnounce(_ context.Context, pc cid.Cid) (cid.Cid, error) {
	o.calls = append(o.calls, "IndexAnnounce "+pc.String())
	return testCID, nil
}

func (o *operator) ClusterList(context.Context) ([]cluster.NodeInfo, error) {
	o.calls = append(o.calls, "ClusterList")
	at := time.Unix(1700000000, 0).UTC()
	return []cluster.NodeInfo{{ID: "node-1", Roles: cluster.AllRoles(), APIURL: "http://127.0.0.1:1288", HTTPURL: "http://127.0.0.1:7777",
		Libp2p: []string{"/ip4/127.0.0.1/tcp/24001"}, StartedAt: at, Heartbeat: at, Alive: true,
		Paths:  []cluster.PathInfo{{Kind: "staging", Path: "/r/staging"}},
		Leases: []cluster.LeaseInfo{{Name: "market.publisher", TakenAt: at, Expires: at}}}}, nil
}

func (o *operator) AuthNew(_ context.Context, perms []ferryauth.Permission) (string, error) {
	o.calls = append(o.calls, fmt.Sprint("AuthNew ", perms))
	return "operator-token", nil
}

func (o *operator) ChainAuthNew(_ context.Context, perms []ferryauth.Permission) (string, error) {
	o.calls = append(o.calls, fmt.Sprint("ChainAuthNew ", perms))
	return "chain-token", nil
}

// The web UI's methods: no command calls them.
func (o *operator) Overview(context.Context) (api.Overview, error) {
	return api.Overview{}, errNoCommand
}
func (o *operator) Transfers(context.Context) ([]api.Transfer, error) { return nil, errNoCommand }
func (o *operator) PieceShow(context.Context, cid.Cid) (api.PieceDetail, error) {
	return api.PieceDetail{}, errNoCommand
}
func (o *operator) PieceCheckRetrieval(context.Context, cid.Cid) (api.RetrievalCheck, error) {
	return api.RetrievalCheck{}, errNoCommand
}
func (o *operator) ConfigShow(context.Context) (string, error) { return "", errNoCommand }

var errNoCommand = errors.New("no ferryd command calls this")

// serveOperator serves o as ferryd serves its operator API (JSON-RPC with
// a token, on loopback) and returns a repo directory that points at it.
func serveOperator(t *testing.T, o api.Ferry) string {
	t.Helper()
	const token = "test-token"
	rpc := jsonrpc.NewServer()
	rpc.Register("Ferry", api.Permissioned(o))
	srv := httptest.NewServer(&auth.Handler{
		Verify: func(_ context.Context, tok string) ([]auth.Permission, error) {
			if tok != token {
				return nil, errors.New("bad token")
			}
			return ferryauth.All(), nil
		},
		Next: rpc.ServeHTTP,
	})
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	maddr := fmt.Sprintf("/ip4/%s/tcp/%s/http", u.Hostname(), u.Port())
	if err := os.WriteFile(filepath.Join(repo, "api"), []byte(maddr), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "token"), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return repo
}

// runDaemonCLI runs ferryd's command line in-process and returns its
// stdout.
func runDaemonCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errOut
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cliutil.Run(ctx, app, append([]string{"ferryd"}, args...))
	return out.String(), err
}

// TestRepoAnyPosition runs ferryd's App with --repo and --json in every
// position against an operator API.
func TestRepoAnyPosition(t *testing.T) {
	t.Setenv("FERRY_REPO", filepath.Join(t.TempDir(), "not-this-one"))
	o := &operator{}
	repo := serveOperator(t, o)
	for _, line := range []string{
		"--repo R deal list --json",
		"deal --repo R list --json",
		"deal list --json --repo R",
		"--json deal list --repo=R",
		"deal list --state failed --repo R --json --limit 5",
		"deal list --after " + testDeal.String() + " --json --repo R",
	} {
		out, err := runDaemonCLI(t, strings.Fields(strings.ReplaceAll(line, "R", repo))...)
		if err != nil || !strings.Contains(out, testDeal.String()) {
			t.Fatalf("%s: %q %v", line, out, err)
		}
	}
	for _, line := range []string{
		"--repo R sectors status 3 --json",
		"sectors status 3 --repo R --json",
		"sectors --json status --repo R 3",
	} {
		out, err := runDaemonCLI(t, strings.Fields(strings.ReplaceAll(line, "R", repo))...)
		if err != nil || !strings.Contains(out, `"number": 3`) {
			t.Fatalf("%s: %q %v", line, out, err)
		}
	}
	want := "DealList  100 0,DealList  100 0,DealList  100 0,DealList  100 0,DealList failed 5 0,DealShow " + testDeal.String() + ",DealList  100 " + testDeal.String() + "0,SectorsStatus 3,SectorsStatus 3,SectorsStatus 3"
	if got := strings.Join(o.calls, ","); got != want {
		t.Fatalf("calls %s, want %s", got, want)
	}
	// Without a repo that names a running daemon, the error says which repo
	// was tried: the default, not a --repo that went missing.
	if _, err := runDaemonCLI(t, "info"); err == nil || !strings.Contains(err.Error(), "not-this-one") {
		t.Fatalf("info without --repo: %v", err)
	}
	for _, line := range [][]string{{"--repo", repo, "info"}, {"info", "--repo", repo}} {
		if _, err := runDaemonCLI(t, line...); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	}
}

// TestOperatorOutputKeys checks the keys every `ferryd … --json` prints.
func TestOperatorOutputKeys(t *testing.T) {
	repo := serveOperator(t, &operator{})
	dealKeys := []string{"uuid", "kind", "createdAt", "updatedAt", "clientPeer", "client", "pieceCid", "pieceCidV2", "pieceSize", "allocationId",
		"claimId", "dataPath", "dataRoot", "startEpoch", "endEpoch", "verified", "isOffline", "transferSize", "bytesReceived", "addPieceBytes",
		"checkpoint", "retry", "retries", "error", "publishCid", "chainDealId", "sector", "sectorOffset", "sealingState", "signedCid", "ended", "endedAt"}
	detailKeys := append(append([]string{}, dealKeys...), "logs", "logs[].at", "logs[].text")
	sectorKeys := []string{"number", "state", "sealProof", "sectorSize", "used", "deals", "pieces", "openedAt", "updatedAt", "packReason",
		"ticketEpoch", "seedEpoch", "commD", "commR", "preCommitMsg", "preCommitEpoch", "commitMsg", "retries", "lastError", "unsealed",
		"pieces[].offset", "pieces[].size", "pieces[].pieceCid", "pieces[].filler", "pieces[].written", "pieces[].dealUuid", "pieces[].dealId",
		"pieces[].startEpoch", "pieces[].endEpoch", "pieces[].keepUnsealed", "pieces[].error"}
	askKeys := []string{"miner", "price", "verifiedPrice", "minPieceSize", "maxPieceSize", "timestamp", "expiry", "seqNo"}
	indexKeys := []string{"pieceCid", "pieceCidV2", "pieceSize", "rawSize", "state", "blocks", "aggregate", "announced", "error", "bytesRead", "bytesTotal"}
	data := filepath.Join(t.TempDir(), "data.car")
	if err := os.WriteFile(data, []byte("car"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string
		keys []string
	}{
		{"deal list", prefixed("[].", dealKeys)},
		{"deal show " + testDeal.String(), detailKeys},
		{"deal retry " + testDeal.String(), detailKeys},
		{"deal fail " + testDeal.String(), detailKeys},
		{"deal cancel " + testDeal.String(), detailKeys},
		{"import-data " + testDeal.String() + " " + data, detailKeys},
		{"import-direct --client f01001 --allocation-id 12 " + testPiece.String() + " " + data, dealKeys},
		{"publish now", []string{"published"}},
		{"ask get", askKeys},
		{"ask set --price 1 --verified-price 0", askKeys},
		{"sectors list", prefixed("[].", sectorKeys)},
		{"sectors status 3", sectorKeys},
		{"index list", prefixed("[].", indexKeys)},
		{"index status " + testPiece.String(), indexKeys},
		{"index rebuild " + testPiece.String(), []string{"pieceCid", "blocks"}},
		{"index announce " + testPiece.String(), []string{"pieceCid", "adCid"}},
		{"cluster list", prefixed("[].", []string{"id", "roles", "apiUrl", "httpUrl", "libp2p", "startedAt", "heartbeat", "alive", "paths",
			"paths[].kind", "paths[].path", "leases", "leases[].name", "leases[].takenAt", "leases[].expires"})},
		{"auth create-token --perm read", []string{"token"}},
		{"auth api-info --perm admin", []string{"token", "name", "apiInfo"}},
		{"auth api-info --perm write --chain", []string{"token", "name", "apiInfo"}},
	} {
		out, err := runDaemonCLI(t, append(strings.Fields(tc.line), "--json", "--repo", repo)...)
		if err != nil {
			t.Fatalf("%s: %v", tc.line, err)
		}
		clitest.CheckKeys(t, tc.line, []byte(out), tc.keys...)
	}

	// ferryd info --json prints api.Info as it comes over the API.
	var b bytes.Buffer
	if err := cliutil.WriteJSON(&b, api.Info{Addresses: []string{"/ip4/127.0.0.1/tcp/1"}, MarketEscrow: big.Zero(), MarketLocked: big.Zero(), WorkerFunds: big.Zero()}); err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "info", b.Bytes(), "version", "miner", "worker", "sectorSize", "peerId", "addresses", "retrievalUrl", "chainMode",
		"chainApi", "chainHead", "chainHeadTime", "blockDelayMillis", "marketEscrow", "marketLocked", "workerFunds")
}

func prefixed(p string, keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = p + k
	}
	return out
}

// TestDaemonUsageErrorsOneLine: usage errors are one line, name the help
// to read, and print nothing on stdout.
func TestDaemonUsageErrorsOneLine(t *testing.T) {
	for _, tc := range []struct {
		line []string
		want string
	}{
		{[]string{"nosuch"}, `"nosuch" is not a command of ferryd (see ferryd --help)`},
		{[]string{"deal", "nosuch"}, `"nosuch" is not a command of ferryd deal (see ferryd deal --help)`},
		{[]string{"ask", "set", "--verified-price", "0"}, "ferryd ask set needs --price (see ferryd ask set --help)"},
		{[]string{"info", "--nope"}, "flag provided but not defined: -nope (see ferryd info --help)"},
		{[]string{"deal", "list", "--limit", "x"}, `invalid value "x" for flag -limit`},
	} {
		out, err := runDaemonCLI(t, tc.line...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(cliutil.OneLine(err), "\n") {
			t.Errorf("%q: %v, want %q", tc.line, err, tc.want)
		}
		if out != "" {
			t.Errorf("%q printed %q on stdout", tc.line, out)
		}
	}
}

// TestEveryDaemonCommandTakesJSON: the tree is one Run can reorder, every
// command takes --repo, and every one that prints a result --json (ferryd
// run only starts the daemon).
func TestEveryDaemonCommandTakesJSON(t *testing.T) {
	app := newApp()
	if err := cliutil.Lint(app); err != nil {
		t.Fatal(err)
	}
	var check func(prefix string, cmds []*cli.Command)
	check = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Name == "help" {
				continue
			}
			names := map[string]bool{}
			for _, f := range c.Flags {
				names[f.Names()[0]] = true
			}
			if !names["repo"] {
				t.Errorf("%s%s takes no --repo", prefix, c.Name)
			}
			if c.Action != nil && c != runCmd && !names["json"] {
				t.Errorf("%s%s takes no --json", prefix, c.Name)
			}
			check(prefix+c.Name+" ", c.Subcommands)
		}
	}
	check("ferryd ", app.Commands)
}

// TestImportDirectAndPieceArgs: import-direct passes Boost's flags on, and
// every piece CID argument takes v1 or v2 (passed on as given, for the
// daemon to read) and refuses a CID that is no piece's.
func TestImportDirectAndPieceArgs(t *testing.T) {
	o := &operator{}
	repo := serveOperator(t, o)
	data := filepath.Join(t.TempDir(), "piece.car")
	if err := os.WriteFile(data, []byte("car"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"import-direct --client f01001 --allocation-id 12 " + testPieceV2.String() + " " + data,
		"import-direct --client-addr f01001 --allocation-id 13 --start-epoch 5000 --delete-after-import --remove-unsealed-copy --skip-ipni-announce " +
			testPiece.String() + " " + data,
		"index status " + testPieceV2.String(),
		"index rebuild " + testPieceV2.String(),
		"index announce " + testPiece.String(),
	} {
		if out, err := runDaemonCLI(t, append(strings.Fields(line), "--repo", repo)...); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
	}
	want := []string{
		"DealImportDirect f01001 12 " + testPieceV2.String() + " piece.car 0 false false false",
		"DealImportDirect f01001 13 " + testPiece.String() + " piece.car 5000 true true true",
		"IndexStatus " + testPieceV2.String(), "IndexRebuild " + testPieceV2.String(), "IndexAnnounce " + testPiece.String(),
	}
	if got := strings.Join(o.calls, "\n"); !strings.HasSuffix(got, strings.Join(want, "\n")) {
		t.Fatalf("calls:\n%s\nwant them to end with:\n%s", got, strings.Join(want, "\n"))
	}
	n := len(o.calls)
	for _, line := range []string{
		"import-direct --client f01001 --allocation-id 12 " + testCID.String() + " " + data,
		"import-direct --client f01001 --allocation-id 0 " + testPiece.String() + " " + data,
		"import-direct --client nobody --allocation-id 1 " + testPiece.String() + " " + data,
		"import-direct --client f01001 --allocation-id 1 " + testPiece.String(),
		"index status " + testCID.String(),
	} {
		if _, err := runDaemonCLI(t, append(strings.Fields(line), "--repo", repo)...); err == nil {
			t.Errorf("%s: accepted", line)
		}
	}
	if len(o.calls) != n {
		t.Fatalf("refused lines reached the daemon: %v", o.calls[n:])
	}
}
