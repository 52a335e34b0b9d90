package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/internal/cliutil/clitest"
)

// runClient runs ferry's command line in-process, as the binary does, and
// returns what it printed on stdout.
func runClient(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errOut
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cliutil.Run(ctx, app, append([]string{"ferry"}, args...))
	return out.String(), err
}

func jsonField(t *testing.T, out, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	return strings.TrimSpace(strings.Trim(jsonString(m[field]), `"`))
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestClientCommandsOnDevnet(t *testing.T) {
	d, err := devnet.Open(context.Background(), devnet.Config{Dir: filepath.Join(t.TempDir(), "devnet"), BlockTime: 5 * time.Millisecond, Logf: t.Logf})
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
	t.Setenv("FULLNODE_API_INFO", tok+":"+srv.URL+"/rpc/v1")
	t.Setenv(client.EnvRepo, filepath.Join(t.TempDir(), "client"))

	if _, err := runClient(t, "wallet", "list"); err == nil || !strings.Contains(err.Error(), "ferry init") {
		t.Fatalf("wallet list before init: %v", err)
	}
	out, err := runClient(t, "init", "--json")
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "init", []byte(out), "repo", "created", "defaultWallet", "newWallet")
	addr := jsonField(t, out, "defaultWallet")

	out, err = runClient(t, "devnet", "fund", addr, "10", "--json")
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "devnet fund", []byte(out), "messageCid", "executed", "height", "exitCode")
	out, err = runClient(t, "wallet", "balance", "--json")
	if err != nil || jsonField(t, out, "balance") != "10 FIL" || jsonField(t, out, "attoFil") != "10000000000000000000" {
		t.Fatalf("balance %q %v", out, err)
	}
	clitest.CheckKeys(t, "wallet balance", []byte(out), "address", "balance", "attoFil")
	out, err = runClient(t, "market", "add-balance", "2.5", "--json")
	if err != nil || jsonField(t, out, "exitCode") != "0" {
		t.Fatalf("add-balance %q %v", out, err)
	}
	clitest.CheckKeys(t, "market add-balance", []byte(out), "messageCid", "executed", "height", "exitCode")
	out, err = runClient(t, "market", "balance", "--json")
	if err != nil || jsonField(t, out, "escrow") != "2500000000000000000" {
		t.Fatalf("market balance %q %v", out, err)
	}
	clitest.CheckKeys(t, "market balance", []byte(out), "address", "escrow", "locked", "available")
	// --wallet, like every flag, goes anywhere.
	for _, line := range [][]string{{"--wallet", addr, "market", "balance", "--json"}, {"market", "--wallet", addr, "balance", "--json"}, {"market", "balance", "--json", "--wallet", addr}} {
		out, err := runClient(t, line...)
		if err != nil || jsonField(t, out, "address") != addr {
			t.Fatalf("%q: %q %v", line, out, err)
		}
	}
	if _, err := runClient(t, "market", "withdraw", "5"); err == nil || !strings.Contains(err.Error(), "available") {
		t.Fatalf("over-withdrawal: %v", err)
	}
	out, err = runClient(t, "market", "withdraw", "0.5")
	if err != nil || !strings.Contains(out, "exit code 0") {
		t.Fatalf("withdraw %q %v", out, err)
	}
	out, err = runClient(t, "market", "withdraw", "0.5", "--no-wait", "--json")
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "market withdraw --no-wait", []byte(out), "messageCid", "executed", "exitCode")

	// Deals fail with one clear line before anything is sent.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "data"), bytes.Repeat([]byte("ferry "), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	car := filepath.Join(dir, "data.car")
	root, err := runClient(t, "car", "create", filepath.Join(dir, "data"), "-o", car)
	if err != nil {
		t.Fatal(err)
	}
	root = strings.TrimSpace(root)
	if _, err := runClient(t, "deal", "--provider", "f09999", car, "--http-url", "http://127.0.0.1:1/x"); err == nil || !strings.Contains(err.Error(), "miner f09999") {
		t.Fatalf("unknown miner: %v", err)
	}
	if _, err := runClient(t, "deal", "--provider", "f01000", filepath.Join(dir, "data"), "--http-url", "http://127.0.0.1:1/x"); err == nil || !strings.Contains(err.Error(), "not a valid CAR") {
		t.Fatalf("not a CAR: %v", err)
	}
	other := "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
	if root == other {
		t.Fatal("test data has the empty root")
	}
	if _, err := runClient(t, "deal", "--provider", "f01000", car, "--payload-cid", other, "--serve"); err == nil || !strings.Contains(err.Error(), "not --payload-cid") {
		t.Fatalf("wrong payload CID: %v", err)
	}
	if _, err := runClient(t, "deal", "--provider", "t1abc", car); err == nil {
		t.Fatal("a bad provider address was accepted")
	}
}
