package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/internal/cliutil/clitest"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/wire"
)

// TestCommonFlagsAnyPosition runs ferry's App with --repo and --json before
// the command, between its words and after its arguments.
func TestCommonFlagsAnyPosition(t *testing.T) {
	t.Setenv(client.EnvRepo, filepath.Join(t.TempDir(), "not-this-one"))
	for i, line := range []string{
		"--repo R init --json",
		"init --repo R --json",
		"--json init --repo=R",
		"init --json --repo R",
	} {
		repo := filepath.Join(t.TempDir(), "client")
		out, err := runClient(t, strings.Fields(strings.ReplaceAll(line, "R", repo))...)
		if err != nil {
			t.Fatalf("%d %s: %v", i, line, err)
		}
		if got := jsonField(t, out, "repo"); got != repo {
			t.Fatalf("%s: init used repo %s, want %s", line, got, repo)
		}
		if _, err := os.Stat(filepath.Join(repo, "keystore")); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		// The same repo, named in every position of a two-word command.
		want := jsonField(t, out, "defaultWallet")
		for _, l2 := range []string{"--repo R wallet default --json", "wallet --repo R default --json", "wallet default --json --repo R", "--json wallet default --repo R"} {
			out, err := runClient(t, strings.Fields(strings.ReplaceAll(l2, "R", repo))...)
			if err != nil || jsonField(t, out, "address") != want {
				t.Fatalf("%s: %q %v, want %s", l2, out, err, want)
			}
		}
	}

	// commp takes the common flags too, after its FILE as well.
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, bytes.Repeat([]byte{7}, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	for _, line := range [][]string{
		{"commp", file, "--repo", repo, "--json"},
		{"--repo", repo, "commp", "--json", file},
		{"--json", "commp", file, "--repo=" + repo},
	} {
		out, err := runClient(t, line...)
		if err != nil || !strings.HasPrefix(jsonField(t, out, "pieceCid"), "baga6ea4sea") {
			t.Fatalf("%q: %q %v", line, out, err)
		}
	}
}

// TestHelpAnyPosition: --help anywhere shows the help of the command the
// line names, arguments and missing required flags notwithstanding.
func TestHelpAnyPosition(t *testing.T) {
	for _, line := range []string{"--help deal", "deal --help", "deal x.car -h", "help deal", "deal x.car --json --help"} {
		out, err := runClient(t, strings.Fields(line)...)
		if err != nil || !strings.Contains(out, "ferry deal - propose a storage deal") || !strings.Contains(out, "--provider value") || strings.Contains(out, "ferry ferry") {
			t.Errorf("%s: %v\n%s", line, err, out)
		}
	}
	out, err := runClient(t, "car", "--help", "create")
	if err != nil || !strings.Contains(out, "ferry car create - import files") {
		t.Errorf("car --help create: %v\n%s", err, out)
	}
}

// TestUsageErrorsOneLine: usage errors of the real command line are one
// line, name the help to read, and print nothing on stdout.
func TestUsageErrorsOneLine(t *testing.T) {
	for _, tc := range []struct {
		line []string
		want string
	}{
		{[]string{"nosuch"}, `"nosuch" is not a command of ferry`},
		{[]string{"wallet", "nosuch"}, `"nosuch" is not a command of ferry wallet`},
		{[]string{"deal", "x.car"}, "ferry deal needs --provider (see ferry deal --help)"},
		{[]string{"deal-status", "--provider", "f01000"}, "ferry deal-status needs --deal-uuid"},
		{[]string{"commp", "--nope", "f"}, "flag provided but not defined: -nope (see ferry commp --help)"},
		{[]string{"deal", "--provider", "f01000", "--car-size", "big"}, `invalid value "big" for flag -car-size`},
	} {
		out, err := runClient(t, tc.line...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(cliutil.OneLine(err), "\n") {
			t.Errorf("%q: %v, want %q", tc.line, err, tc.want)
		}
		if out != "" {
			t.Errorf("%q printed %q on stdout", tc.line, out)
		}
	}
}

// TestEveryCommandTakesJSON: the command tree is one Run can reorder, and
// every command that runs takes --json and --repo.
func TestEveryCommandTakesJSON(t *testing.T) {
	app := newApp()
	if err := cliutil.Lint(app); err != nil {
		t.Fatal(err)
	}
	var leaves func(prefix string, cmds []*cli.Command)
	leaves = func(prefix string, cmds []*cli.Command) {
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
			if c.Action != nil && !names["json"] {
				t.Errorf("%s%s takes no --json", prefix, c.Name)
			}
			leaves(prefix+c.Name+" ", c.Subcommands)
		}
	}
	leaves("ferry ", app.Commands)
}

// TestWalletAndCARKeys checks the JSON keys of the commands that need no
// chain.
func TestWalletAndCARKeys(t *testing.T) {
	t.Setenv(client.EnvRepo, filepath.Join(t.TempDir(), "client"))
	if _, err := runClient(t, "init"); err != nil {
		t.Fatal(err)
	}
	out, err := runClient(t, "wallet", "new", "bls", "--json")
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "wallet new", []byte(out), "address", "type")
	addr := jsonField(t, out, "address")
	out, err = runClient(t, "wallet", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "wallet list", []byte(out), "[].address", "[].default")
	out, err = runClient(t, "wallet", "default", "--json")
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "wallet default", []byte(out), "address")
	out, err = runClient(t, "wallet", "export", addr, "--json")
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "wallet export", []byte(out), "key")
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(jsonField(t, out, "key")), 0o600); err != nil {
		t.Fatal(err)
	}
	// Text output stays the bare key, for `ferry wallet import`.
	if text, err := runClient(t, "wallet", "export", addr); err != nil || strings.TrimSpace(text) != jsonField(t, out, "key") {
		t.Fatalf("export as text: %q %v", text, err)
	}
	out, err = runClient(t, "wallet", "import", keyFile, "--json")
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "wallet import", []byte(out), "address")
	out, err = runClient(t, "wallet", "sign", addr, "cafe", "--json")
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "wallet sign", []byte(out), "signature")

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("ferry\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runClient(t, "car", "create", dir, "--json", "-o", filepath.Join(t.TempDir(), "x.car"))
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "car create", []byte(out), "rootCid", "carFile", "carSize", "blocks", "dataBytes")
}

// TestDealOutputKeys checks what `ferry deal --json` prints against the
// keys of `boost deal --json` (dealUuid … url), then Ferry's own.
func TestDealOutputKeys(t *testing.T) {
	prov, _ := address.NewIDAddress(1000)
	cl, _ := address.NewIDAddress(1001)
	pc := piece.CIDv1([32]byte{1})
	root := cid.MustParse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	req := client.DealRequest{Provider: prov, Client: cl, PieceCID: pc, PieceSize: 2048, CARSize: 2000, PayloadCID: root, HTTPURL: "http://127.0.0.1:9/x.car"}
	res := &client.DealResult{
		DealUUID: uuid.New(), SignedProposalCID: root, Accepted: false, Message: "no room",
		Proposal: market.ClientDealProposal{Proposal: market.DealProposal{
			PieceCID: pc, PieceSize: 2048, Client: cl, Provider: prov, StartEpoch: 100, EndEpoch: 200,
			StoragePricePerEpoch: big.NewInt(5), ProviderCollateral: big.NewInt(7), ClientCollateral: big.Zero(),
		}},
	}
	out := newDealOutput(req, res)
	out.Status, out.BytesReceived = "Transferred", 2000
	var b bytes.Buffer
	if err := cliutil.WriteJSON(&b, out); err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "deal", b.Bytes(),
		"dealUuid", "provider", "clientWallet", "payloadCid", "url", "commp", "startEpoch", "endEpoch", "providerCollateral",
		"accepted", "message", "pieceSize", "carSize", "storagePricePerEpoch", "verified", "signedProposalCid", "status", "bytesReceived")
	// Boost's types: epochs and amounts are strings.
	if out.StartEpoch != "100" || out.EndEpoch != "200" || out.ProviderCollateral != "7" || out.Commp != pc.String() || out.ClientWallet != cl.String() {
		t.Fatalf("%+v", out)
	}
	// Offline deals have no url, as in Boost.
	req.Offline = true
	if o := newDealOutput(req, res); o.URL != "" {
		t.Fatalf("offline deal with url %q", o.URL)
	}
}

// TestDealStatusOutputKeys checks what `ferry deal-status --json` prints
// against the keys of `boost deal-status --json`, then Ferry's own.
func TestDealStatusOutputKeys(t *testing.T) {
	prov, _ := address.NewIDAddress(1000)
	cl, _ := address.NewIDAddress(1001)
	label, _ := market.NewLabelFromString("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	pub := piece.CIDv1([32]byte{2})
	resp := &wire.DealStatusResponse{DealUUID: uuid.New(), TransferSize: 100, NBytesReceived: 100, DealStatus: &wire.DealStatus{
		Status: "IndexedAndAnnounced", SealingStatus: "PreCommit1", Error: "retrying", ChainDealID: 4, PublishCid: &pub,
		SignedProposalCid: pub, Proposal: market.DealProposal{PieceCID: piece.CIDv1([32]byte{1}), Label: label},
	}}
	boostKeys := []string{"dealUuid", "provider", "clientWallet", "label", "chainDealId", "status", "sealingStatus", "statusMessage", "publishCid"}
	ferryKeys := []string{"error", "pieceCid", "signedProposalCid", "isOffline", "transferSize", "bytesReceived"}
	var b bytes.Buffer
	o := newStatusOutput(resp, prov, cl)
	if err := cliutil.WriteJSON(&b, o); err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "deal-status", b.Bytes(), append(boostKeys, ferryKeys...)...)
	if o.StatusMessage != "Sealing: PreCommit1" || o.Label != "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku" || *o.PublishCid != pub.String() {
		t.Fatalf("%+v", o)
	}
	// Before publishing, publishCid is null, as in Boost.
	resp.DealStatus.PublishCid = nil
	if b.Reset(); cliutil.WriteJSON(&b, newStatusOutput(resp, prov, cl)) != nil || !strings.Contains(b.String(), `"publishCid": null`) {
		t.Fatalf("unpublished: %s", b.String())
	}

	for _, tc := range []struct {
		status           string
		offline          bool
		received, size   uint64
		errText, sealing string
		want             string
	}{
		{"Accepted", true, 0, 0, "", "", "Awaiting Offline Data Import"},
		{"Accepted", false, 0, 100, "", "", "Transfer Queued"},
		{"Accepted", false, 25, 100, "", "", "Transferring 25.00%"},
		{"Accepted", false, 100, 100, "", "", "Transfer Complete"},
		{"Transferred", false, 0, 0, "", "", "Ready to Publish"},
		{"Published", false, 0, 0, "", "", "Awaiting Publish Confirmation"},
		{"PublishConfirmed", false, 0, 0, "", "", "Adding to Sector"},
		{"AddedPiece", false, 0, 0, "", "", "Announcing"},
		{"IndexedAndAnnounced", false, 0, 0, "", "", "Sealing"},
		{"Complete", false, 0, 0, "", "Proving", "Active"},
		{"Complete", false, 0, 0, "expired", "", "Error: expired"},
	} {
		r := &wire.DealStatusResponse{IsOffline: tc.offline, NBytesReceived: tc.received, TransferSize: tc.size,
			DealStatus: &wire.DealStatus{Status: tc.status, Error: tc.errText, SealingStatus: tc.sealing}}
		if got := statusMessage(r); got != tc.want {
			t.Errorf("%+v: %q", tc, got)
		}
	}
}

// TestProviderOutputKeys checks `ferry provider info|ask|transports --json`;
// transports has the shape of `boost provider retrieval-transports --json`.
func TestProviderOutputKeys(t *testing.T) {
	miner, _ := address.NewIDAddress(1000)
	worker, _ := address.NewIDAddress(1002)
	id, err := peer.Decode("12D3KooWGzBPCXfvRQzEUpVBbzbGC4ySoEt3AkbTJiNPZhVWjXBP")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := multiaddr.StringCast("/ip4/127.0.0.1/tcp/7777/http")
	p2pAddr := multiaddr.StringCast("/ip4/127.0.0.1/tcp/24001")
	p := &client.Provider{Miner: miner, Info: chain.MinerInfo{Owner: worker, Worker: worker, SectorSize: 8 << 20}, AddrInfo: peer.AddrInfo{ID: id, Addrs: []multiaddr.Multiaddr{p2pAddr}}}
	var b bytes.Buffer
	if err := cliutil.WriteJSON(&b, newProviderOutput(p)); err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "provider info", b.Bytes(), "provider", "peerId", "multiaddrs", "owner", "worker", "sectorSize")

	b.Reset()
	ask := &wire.StorageAsk{Price: big.NewInt(1), VerifiedPrice: big.Zero(), MinPieceSize: 256, MaxPieceSize: abi.PaddedPieceSize(8 << 20), Miner: miner, Timestamp: 1, Expiry: 2, SeqNo: 3}
	if err := cliutil.WriteJSON(&b, cliutil.NewAsk(ask)); err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "provider ask", b.Bytes(), "miner", "price", "verifiedPrice", "minPieceSize", "maxPieceSize", "timestamp", "expiry", "seqNo")

	b.Reset()
	tr, err := newTransports(&wire.QueryResponse{Protocols: []wire.Protocol{wire.NewProtocol("http", httpAddr), wire.NewProtocol("libp2p", p2pAddr)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cliutil.WriteJSON(&b, tr); err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "provider transports", b.Bytes(), "http", "http[].multiaddr", "http[].address", "libp2p", "libp2p[].multiaddr")
	if tr["http"][0].Address != "http://127.0.0.1:7777" {
		t.Fatalf("%+v", tr)
	}
}
