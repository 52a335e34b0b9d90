package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/minerapi"
	"github.com/ferry-fil/ferry/sealing"
)

// repoWith writes config.toml into a new repo: a fast 2 KiB devnet on
// free loopback ports, chain (TOML lines) in its Chain section, then the
// sections of extra.
func repoWith(t *testing.T, chain, extra string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
[Chain]
DevnetBlockTime = "50ms"
DevnetListen = "127.0.0.1:%d"
%s
[Libp2p]
ListenAddresses = ["/ip4/127.0.0.1/tcp/%d"]
[HTTP]
Listen = "127.0.0.1:%d"
[API]
Listen = "127.0.0.1:%d"
%s`, freePort(t), chain, freePort(t), freePort(t), freePort(t), extra)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sealingOnly starts a devnet ferryd that runs sealing alone, with
// sectors of size, and returns it with the MINER_API_INFO (admin) and
// FULLNODE_API_INFO (sign) a market-only ferryd is given.
func sealingOnly(t *testing.T, size string) (n *Node, minerInfo, chainInfo string) {
	t.Helper()
	dir := repoWith(t, fmt.Sprintf("DevnetSectorSize = %q", size), `
[Subsystems]
EnableMarkets = false
EnableSealing = true
[Sealing]
MinerAPIListen = "127.0.0.1:0" # the port chosen is the one MINER_API_INFO names
`)
	n, err := Start(context.Background(), dir, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	tok, err := n.minerAuthNew(auth.All())
	if err != nil {
		t.Fatal(err)
	}
	ct, err := n.Devnet.Token(auth.Read, auth.Write, auth.Sign)
	if err != nil {
		t.Fatal(err)
	}
	chainAddr, err := APIMultiaddr(n.Config.Chain.DevnetListen)
	if err != nil {
		t.Fatal(err)
	}
	return n, tok + ":" + n.minerAPIAddr, ct + ":" + chainAddr
}

// startMarketOnly starts a market-only ferryd on the chain of chainInfo
// (as a Lotus node), for miner, handing pieces to the lotus-miner API of
// minerInfo.
func startMarketOnly(ctx context.Context, t *testing.T, chainInfo, miner, minerInfo string) (*Node, error) {
	dir := repoWith(t, fmt.Sprintf("Mode = \"lotus\"\nLotusAPIInfo = %q\nMiner = %q", chainInfo, miner), fmt.Sprintf(`
[Subsystems]
EnableMarkets = true
EnableSealing = false
[Sealing]
Backend = "lotus-miner"
MinerAPIInfo = %q
`, minerInfo))
	return Start(ctx, dir, Options{Logf: t.Logf})
}

// TestMarketOnlyAndSealingOnly: a sealing-only ferryd runs no libp2p and no
// market and serves lotus-miner's API; a market-only ferryd on its chain
// (as a Lotus node) takes that API as its sealer once it has checked it:
// it seals for the same miner, with the chain's sector size, and the token
// has admin. Each failed check is a start error that says what is wrong.
func TestMarketOnlyAndSealingOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, minerInfo, chainInfo := sealingOnly(t, "2KiB")
	if a.Host != nil || a.Provider != nil || a.Index != nil || a.Sealing == nil {
		t.Fatalf("sealing-only ferryd runs host %v, market %v, index %v, sealing %v", a.Host, a.Provider, a.Index, a.Sealing)
	}
	info, err := (&nodeAPI{n: a}).Info(ctx)
	if err != nil || !slices.Equal(info.Subsystems, []string{"sealing"}) || info.MinerAPI == "" || info.PeerID != "" || info.SealingBackend != "" {
		t.Fatalf("sealing-only Info = %+v, %v", info, err)
	}
	if _, err := (&nodeAPI{n: a}).DealList(ctx, market.DealFilter{}); err == nil || !strings.Contains(err.Error(), "runs no market") {
		t.Fatalf("DealList of a sealing-only ferryd: %v", err)
	}

	marketOnly := func(minerInfo string) (*Node, error) {
		return startMarketOnly(ctx, t, chainInfo, a.Miner.String(), minerInfo)
	}
	b, err := marketOnly(minerInfo)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Sealing != nil || b.MinerAPI == nil || b.Provider == nil || b.minerAPIAddr != "" {
		t.Fatalf("market-only ferryd: sealing %v, miner API %v, market %v, serves %q", b.Sealing, b.MinerAPI, b.Provider, b.minerAPIAddr)
	}
	info, err = (&nodeAPI{n: b}).Info(ctx)
	if err != nil || !slices.Equal(info.Subsystems, []string{"markets"}) || info.SealingBackend != BackendLotusMiner ||
		!strings.HasSuffix(info.SealerAPI, minerapi.APIPath) || info.MinerAPI != "" || info.PeerID == "" || info.Miner != a.Miner.String() {
		t.Fatalf("market-only Info = %+v, %v", info, err)
	}
	if _, err := b.minerAuthNew(auth.All()); err == nil {
		t.Fatal("a market-only ferryd minted a token for a lotus-miner API it does not serve")
	}
	// The operator sees the miner's sectors (none yet) through its API.
	if list, err := (&nodeAPI{n: b}).SectorsList(ctx); err != nil || len(list) != 0 {
		t.Fatalf("SectorsList through the miner API: %v, %v", list, err)
	}

	// A token without admin.
	readTok, err := a.minerAuthNew([]auth.Permission{auth.Read})
	if err != nil {
		t.Fatal(err)
	}
	_, addr, _ := strings.Cut(minerInfo, ":")
	if n, err := marketOnly(readTok + ":" + addr); err == nil || !strings.Contains(err.Error(), "needs admin") {
		if n != nil {
			n.Close()
		}
		t.Fatalf("a read token for the miner API: %v", err)
	}
	// A token of another secret, the sealer's operator token among them.
	forged, err := auth.Mint([]byte("not the secret of this ferryd!!!"), auth.All()...)
	if err != nil {
		t.Fatal(err)
	}
	operatorTok, err := os.ReadFile(a.Repo.Path("token"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{forged, string(operatorTok)} {
		if n, err := marketOnly(tok + ":" + addr); err == nil || !strings.Contains(err.Error(), "refused the token") {
			if n != nil {
				n.Close()
			}
			t.Fatalf("a token of another secret for the miner API: %v", err)
		}
	}
	// A miner API that does not answer.
	if n, err := marketOnly(strings.Replace(minerInfo, addr, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/http", freePort(t)), 1)); err == nil || !strings.Contains(err.Error(), "unavailable") {
		if n != nil {
			n.Close()
		}
		t.Fatalf("a miner API nobody serves: %v", err)
	}
	// A sealer of the same miner ID (another devnet) with other sectors.
	_, other, _ := sealingOnly(t, "8MiB")
	if n, err := marketOnly(other); err == nil || !strings.Contains(err.Error(), "seals 8MiB sectors, but miner") {
		if n != nil {
			n.Close()
		}
		t.Fatalf("a miner API with 8 MiB sectors for a 2 KiB miner: %v", err)
	}
}

// TestLotusMinerBackendNeedsAPIInfo: without Sealing.MinerAPIInfo and
// MINER_API_INFO the start error says how to name the miner.
func TestLotusMinerBackendNeedsAPIInfo(t *testing.T) {
	t.Setenv(minerapi.EnvAPIInfo, "")
	dir := repoWith(t, "", "[Subsystems]\nEnableSealing = false\n[Sealing]\nBackend = \"lotus-miner\"\n")
	n, err := Start(context.Background(), dir, Options{Logf: t.Logf})
	if err == nil {
		n.Close()
		t.Fatal("started without a lotus-miner API")
	}
	if !strings.Contains(err.Error(), "Sealing.MinerAPIInfo") || !strings.Contains(err.Error(), minerapi.EnvAPIInfo) {
		t.Fatalf("error does not say how to name the miner: %v", err)
	}
}

// failingPieces fails every read with err.
type failingPieces struct{ err error }

func (f failingPieces) ReadPiece(context.Context, cid.Cid) (sealing.PieceReader, error) {
	return nil, f.err
}

// TestPieceSourceErrors: what the market and the retrievals are told when
// a piece cannot be read: no unsealed copy (410), one being made (503), a
// lotus-miner that cannot be reached (the market waits for it).
func TestPieceSourceErrors(t *testing.T) {
	pc := cid.MustParse("baga6ea4seaqao7s73y24kcutaosvacpdjgfe5pw76ooefnyqw4ynr3d2y6x2mpq")
	for _, tc := range []struct {
		err       error
		want, not error
	}{
		{fmt.Errorf("piece: %w", sealing.ErrNoUnsealedCopy), index.ErrNoUnsealedCopy, index.ErrUnsealing},
		{fmt.Errorf("piece: %w", minerapi.ErrUnsealing), index.ErrUnsealing, index.ErrNoUnsealedCopy},
		{fmt.Errorf("lotus-miner StorageFindSector: %w: connection refused", minerapi.ErrUnavailable), market.ErrSealerUnavailable, index.ErrNoUnsealedCopy},
	} {
		_, err := pieceSource(failingPieces{tc.err}).ReadPiece(context.Background(), pc)
		if !errors.Is(err, tc.want) || errors.Is(err, tc.not) || !errors.Is(err, tc.err) {
			t.Errorf("%v: read gives %v, want %v", tc.err, err, tc.want)
		}
	}
}

// TestConfigShowHidesMinerToken: the config the API shows has no token of
// the chain's or the lotus-miner's API info.
func TestConfigShowHidesMinerToken(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Chain.LotusAPIInfo = "chain.secret.token:/ip4/127.0.0.1/tcp/1234/http"
	cfg.Sealing.MinerAPIInfo = "miner.secret.token:/ip4/127.0.0.1/tcp/2345/http"
	out, err := (&nodeAPI{n: &Node{Config: cfg}}).ConfigShow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "secret") || !strings.Contains(out, `MinerAPIInfo = "<redacted>:/ip4/127.0.0.1/tcp/2345/http"`) {
		t.Fatalf("ConfigShow shows:\n%s", out)
	}
	for in, want := range map[string]string{"": "", "/ip4/127.0.0.1/tcp/1/http": "/ip4/127.0.0.1/tcp/1/http", "tok:/ip4/127.0.0.1/tcp/1/http": "<redacted>:/ip4/127.0.0.1/tcp/1/http", "garbage": "<redacted>"} {
		if got := redactAPIInfo(in); got != want {
			t.Errorf("redactAPIInfo(%q) = %q, want %q", in, got, want)
		}
	}
}
