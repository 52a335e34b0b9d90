package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/cliutil/clitest"
)

// prefixed puts prefix before each key.
func prefixed(prefix string, keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = prefix + k
	}
	return out
}

func TestAllocationCommandsOnDevnet(t *testing.T) {
	ctx := context.Background()
	d, err := devnet.Open(ctx, devnet.Config{Dir: filepath.Join(t.TempDir(), "devnet"), BlockTime: 5 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	tok, err := d.Token()
	if err != nil {
		t.Fatal(err)
	}
	maddr, err := d.CreateMiner(ctx, d.GenesisAddress(), d.GenesisAddress(), 8<<20, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FULLNODE_API_INFO", tok+":"+srv.URL+"/rpc/v1")
	t.Setenv(client.EnvRepo, filepath.Join(t.TempDir(), "client"))
	out, err := runClient(t, "init", "--json")
	if err != nil {
		t.Fatal(err)
	}
	addr := jsonField(t, out, "defaultWallet")
	if _, err := runClient(t, "devnet", "fund", addr, "10"); err != nil {
		t.Fatal(err)
	}
	if _, err := runClient(t, "devnet", "datacap", addr, "1KiB"); err == nil || !strings.Contains(err.Error(), "minimum") {
		t.Fatalf("datacap below 1 MiB: %v", err)
	}
	if _, err := runClient(t, "devnet", "datacap", addr, "lots"); err == nil {
		t.Fatal("datacap of no size: no error")
	}
	if out, err = runClient(t, "devnet", "datacap", addr, "2MiB"); err != nil || !strings.Contains(out, "granted 2.0 MiB (2097152 bytes)") {
		t.Fatalf("datacap: %q, %v", out, err)
	}
	out, err = runClient(t, "devnet", "datacap", addr, "1048576", "--json")
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "devnet datacap", []byte(out), "messageCid", "executed", "height", "exitCode")

	p1 := "baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"
	p2 := "baga6ea4seaqdlpnhgsndrgjeu4p46hahlsr4lybg6du4d56ooppdpxhcofxeuoi"
	for _, bad := range [][]string{
		{"allocate", "--piece-info", p1 + "=1048576"},                                                   // no provider
		{"allocate", "--provider", maddr.String()},                                                      // no piece
		{"allocate", "--provider", maddr.String(), "--piece-size", "1048576"},                           // size without CID
		{"allocate", "--provider", maddr.String(), "--piece-file", "x.csv"},                             // file and provider
		{"allocate", "--provider", maddr.String(), "--piece-info", p1 + "=1048576", "--term-min", "10"}, // term too short
		{"allocate", "--provider", maddr.String(), "--piece-info", p1 + "=4194304"},                     // more than the DataCap
	} {
		if _, err := runClient(t, bad...); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}

	out, err = runClient(t, "allocate", "--provider", maddr.String(), "--piece-info", p1+"=1048576", "--piece-cid", p2, "--piece-size", "2097152", "--json")
	if err != nil {
		t.Fatal(err)
	}
	allocKeys := []string{"allocationId", "client", "provider", "pieceCid", "pieceSize", "termMin", "termMax", "expiration"}
	clitest.CheckKeys(t, "allocate", []byte(out), append(prefixed("allocations[].", allocKeys), "allocations", "messages")...)
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	allocs := res["allocations"].([]any)
	if len(allocs) != 2 || len(res["messages"].([]any)) != 1 {
		t.Fatalf("allocate --json: %s", out)
	}
	if a := allocs[1].(map[string]any); a["pieceCid"] != p2 || a["pieceSize"] != float64(2<<20) || a["provider"] != maddr.String() || a["allocationId"] != float64(2) {
		t.Fatalf("second allocation %v", a)
	}

	// A piece file, in human output.
	file := filepath.Join(t.TempDir(), "pieces.csv")
	if err := os.WriteFile(file, []byte(fmt.Sprintf("%s,8388608,%s,518400,600000,2880\n", p1, maddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runClient(t, "allocate", "--piece-file", file); err == nil || !strings.Contains(err.Error(), "DataCap") {
		t.Fatalf("allocating 8 MiB with 0 left: %v", err)
	}

	out, err = runClient(t, "allocations", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res["allocations"].([]any)) != 2 {
		t.Fatalf("allocations --json: %q, %v", out, err)
	}
	clitest.CheckKeys(t, "allocations", []byte(out), append(prefixed("allocations[].", allocKeys), "allocations")...)
	if out, err = runClient(t, "allocations", addr, "--provider", maddr.String()); err != nil || !strings.Contains(out, p2) {
		t.Fatalf("allocations %s: %q, %v", addr, out, err)
	}
	if out, err = runClient(t, "allocations", "--provider", "f09999"); err != nil || !strings.Contains(out, "no allocations") {
		t.Fatalf("allocations of another provider: %q, %v", out, err)
	}
	if out, err = runClient(t, "allocations", "--claims", "--json"); err != nil || strings.TrimSpace(out) != "{\n  \"claims\": []\n}" {
		t.Fatalf("claims --json: %q, %v", out, err)
	}
}
