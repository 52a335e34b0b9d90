package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/internal/cliutil/clitest"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/retrieval"
)

// piecesInMemory is a PieceSource of unpadded pieces.
type piecesInMemory map[cid.Cid][]byte

type pieceBytes struct{ *bytes.Reader }

func (pieceBytes) Close() error { return nil }

func (m piecesInMemory) ReadPiece(_ context.Context, pc cid.Cid) (index.PieceReader, error) {
	b, ok := m[pc]
	if !ok {
		return nil, fmt.Errorf("piece %s: %w", pc, index.ErrNotFound)
	}
	return pieceBytes{bytes.NewReader(b)}, nil
}

// flipWriter flips the response byte at offset at.
type flipWriter struct {
	http.ResponseWriter
	at, n int64
}

func (f *flipWriter) Write(p []byte) (int, error) {
	if f.at >= f.n && f.at < f.n+int64(len(p)) {
		p = append([]byte(nil), p...)
		p[f.at-f.n] ^= 1
	}
	f.n += int64(len(p))
	return f.ResponseWriter.Write(p)
}

// retrievalServer serves, through the real retrieval handler, a piece made
// of the CAR of a folder of files. Setting flip >= 0 corrupts that byte of
// every response.
type retrievalServer struct {
	files    string
	root     cid.Cid
	pieceCid cid.Cid
	piece    []byte
	url      string
	flip     atomic.Int64
}

func newRetrievalServer(t *testing.T) *retrievalServer {
	t.Helper()
	ctx := context.Background()
	s := &retrievalServer{files: filepath.Join(t.TempDir(), "files")}
	s.flip.Store(-1)
	data := make([]byte, 30_000)
	rand.New(rand.NewSource(7)).Read(data)
	for name, b := range map[string][]byte{"a.bin": data, "d/b.txt": []byte("retrieved\n"), "d/e/c.txt": bytes.Repeat([]byte("ferry "), 2000)} {
		p := filepath.Join(s.files, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	carPath := filepath.Join(t.TempDir(), "files.car")
	res, err := client.CreateCAR(ctx, []string{s.files}, carPath, client.CAROptions{ChunkSize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	s.root = res.Root
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
	s.pieceCid = comm.CID()
	s.piece = make([]byte, piece.UnpaddedSizeFor(uint64(len(carBytes))))
	copy(s.piece, carBytes)
	src := piecesInMemory{s.pieceCid: s.piece}
	sqldb, err := db.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	idx := index.New(sqldb, src)
	if _, err := idx.Rebuild(ctx, s.pieceCid); err != nil {
		t.Fatal(err)
	}
	h, err := retrieval.New(idx, src)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if at := s.flip.Load(); at >= 0 {
			w = &flipWriter{ResponseWriter: w, at: at}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestRetrieveCommand(t *testing.T) {
	s := newRetrievalServer(t)
	out := t.TempDir()

	// A piece, with --json.
	pieceOut := filepath.Join(out, "piece.bin")
	stdout, err := runClient(t, "retrieve", "--url", s.url, "--piece", s.pieceCid.String(), "-o", pieceOut, "--json")
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "retrieve", []byte(stdout), "url", "cid", "bytes", "out")
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v in %q", err, stdout)
	}
	if res["url"] != s.url || res["cid"] != s.pieceCid.String() || res["out"] != pieceOut || res["bytes"] != float64(len(s.piece)) {
		t.Fatalf("JSON %v", res)
	}
	if got, err := os.ReadFile(pieceOut); err != nil || !bytes.Equal(got, s.piece) {
		t.Fatalf("piece file: %d bytes, %v", len(got), err)
	}

	// The same piece by its CID v2: the payload's bytes alone.
	n := len(bytes.TrimRight(s.piece, "\x00"))
	v2, err := piece.V1ToV2(s.pieceCid, uint64(n), piece.PaddedSizeFor(uint64(len(s.piece))))
	if err != nil {
		t.Fatal(err)
	}
	v2Out := filepath.Join(out, "piece-v2.bin")
	if _, err := runClient(t, "retrieve", "--url", s.url, "--piece", v2.String(), "-o", v2Out); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(v2Out); err != nil || !bytes.Equal(got, s.piece[:n]) {
		t.Fatalf("piece file by CID v2: %d bytes (want %d), %v", len(got), n, err)
	}

	// The payload as a CAR (flags after the CID), then as files.
	carOut := filepath.Join(out, "files.car")
	stdout, err = runClient(t, "retrieve", s.root.String(), "--url", s.url, "-o", carOut)
	if err != nil || !strings.Contains(stdout, "retrieved "+s.root.String()) {
		t.Fatalf("%q %v", stdout, err)
	}
	if err := retrieval.ExtractCAR(context.Background(), carOut, s.root, filepath.Join(out, "from-car")); err != nil {
		t.Fatal(err)
	}
	filesOut := filepath.Join(out, "files")
	if _, err := runClient(t, "retrieve", "--url", s.url, s.root.String(), "-o", filesOut, "--extract"); err != nil {
		t.Fatal(err)
	}
	for _, got := range []string{filepath.Join(out, "from-car"), filesOut} {
		for _, name := range []string{"a.bin", "d/b.txt", "d/e/c.txt"} {
			want, _ := os.ReadFile(filepath.Join(s.files, name))
			b, err := os.ReadFile(filepath.Join(got, name))
			if err != nil || !bytes.Equal(b, want) {
				t.Fatalf("%s/%s: %d bytes (want %d), %v", got, name, len(b), len(want), err)
			}
		}
	}
	// One file by its path, in both spellings.
	for i, arg := range []string{s.root.String() + "/d/e/c.txt", "/ipfs/" + s.root.String() + "/d/e/c.txt"} {
		one := filepath.Join(out, fmt.Sprintf("c%d.txt", i))
		if _, err := runClient(t, "retrieve", "--url", s.url, arg, "-o", one, "--extract"); err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(filepath.Join(s.files, "d/e/c.txt"))
		if b, err := os.ReadFile(one); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("%s: %q, %v", arg, b, err)
		}
	}
	names := dirNames(t, out)
	if strings.Join(names, " ") != "c0.txt c1.txt files files.car from-car piece-v2.bin piece.bin" {
		t.Fatalf("output folder holds %v", names)
	}

	// The output is never overwritten.
	if _, err := runClient(t, "retrieve", "--url", s.url, s.root.String(), "-o", carOut); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("existing output: %v", err)
	}
}

func TestRetrieveCommandFailures(t *testing.T) {
	s := newRetrievalServer(t)
	out := t.TempDir()

	// Tampered bytes: one line naming the failure, exit non-zero, no file.
	s.flip.Store(5000)
	for _, args := range [][]string{
		{"--piece", s.pieceCid.String(), "-o", filepath.Join(out, "p")},
		{s.root.String(), "-o", filepath.Join(out, "c.car")},
		{s.root.String(), "-o", filepath.Join(out, "x"), "--extract"},
	} {
		_, err := runClient(t, append([]string{"retrieve", "--url", s.url}, args...)...)
		if err == nil || !strings.HasPrefix(err.Error(), "retrieval from "+s.url+" failed verification: ") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%v: %v", args, err)
		}
		if n := dirNames(t, out); len(n) != 0 {
			t.Fatalf("%v left %v", args, n)
		}
	}
	s.flip.Store(-1)

	// An unknown CID.
	unknown := piece.CIDv1([32]byte{9})
	if _, err := runClient(t, "retrieve", "--url", s.url, "--piece", unknown.String(), "-o", filepath.Join(out, "u")); err == nil || !strings.Contains(err.Error(), "404 Not Found") {
		t.Fatalf("unknown piece: %v", err)
	}
	// Nobody at the URL.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	if _, err := runClient(t, "retrieve", "--url", closed.URL, s.root.String(), "-o", filepath.Join(out, "c")); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("unreachable: %v", err)
	}
	if n := dirNames(t, out); len(n) != 0 {
		t.Fatalf("left %v", n)
	}

	// Usage errors, before anything is fetched.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "x", "--url", s.url}, "nothing to retrieve"},
		{[]string{"-o", "x", s.root.String()}, "no provider"},
		{[]string{"-o", "x", "--url", s.url, "--piece", s.pieceCid.String(), s.root.String()}, "not both"},
		{[]string{"-o", "x", "--url", s.url, "nonsense"}, "payload CID"},
		{[]string{"-o", "x", "--url", s.url, "--piece", s.root.String()}, "not a piece CID"},
		{[]string{"-o", "x", "--url", s.url, "--piece", s.pieceCid.String(), "--extract"}, "cannot be extracted"},
		{[]string{"-o", "x", "--provider", "t3abc", s.root.String()}, "provider"},
		{[]string{"-o", "x", "--url", s.url, "--provider", "t1abc", s.root.String()}, "provider"},
	} {
		if _, err := runClient(t, append([]string{"retrieve"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
