package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	carv2 "github.com/ipld/go-car/v2"
)

// mapDAG is a node getter over the blocks of a CAR, read back for checking.
type mapDAG map[cid.Cid]blocks.Block

func (m mapDAG) Get(_ context.Context, c cid.Cid) (ipld.Node, error) {
	b, ok := m[c]
	if !ok {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	if c.Type() == cid.Raw {
		return merkledag.DecodeRawBlock(b)
	}
	return merkledag.DecodeProtobufBlock(b)
}

func (m mapDAG) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	for _, c := range cs {
		n, err := m.Get(ctx, c)
		out <- &ipld.NodeOption{Node: n, Err: err}
	}
	close(out)
	return out
}

// readCAR reads a CAR back, checking that every block hashes to its CID and
// that no block appears twice.
func readCAR(t *testing.T, path string) (cid.Cid, mapDAG) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br, err := carv2.NewBlockReader(f, carv2.WithTrustedCAR(false))
	if err != nil {
		t.Fatalf("reading CAR header: %v", err)
	}
	if br.Version != 1 {
		t.Fatalf("CAR version %d, want 1", br.Version)
	}
	if len(br.Roots) != 1 {
		t.Fatalf("CAR has %d roots, want 1", len(br.Roots))
	}
	dag := mapDAG{}
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading CAR block: %v", err)
		}
		if _, dup := dag[b.Cid()]; dup {
			t.Fatalf("block %s written twice", b.Cid())
		}
		dag[b.Cid()] = b
	}
	if _, ok := dag[br.Roots[0]]; !ok {
		t.Fatalf("root %s is not in the CAR", br.Roots[0])
	}
	return br.Roots[0], dag
}

func fileBytes(t *testing.T, dag mapDAG, c cid.Cid) []byte {
	t.Helper()
	nd, err := dag.Get(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	r, err := uio.NewDagReader(context.Background(), nd, dag)
	if err != nil {
		t.Fatalf("reading file %s: %v", c, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading file %s: %v", c, err)
	}
	return b
}

func dirEntries(t *testing.T, dag mapDAG, c cid.Cid) map[string]cid.Cid {
	t.Helper()
	nd, err := dag.Get(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	fsn, err := ft.ExtractFSNode(nd)
	if err != nil || fsn.Type() != ft.TDirectory {
		t.Fatalf("%s is not a UnixFS directory (%v)", c, err)
	}
	out := map[string]cid.Cid{}
	for _, l := range nd.Links() {
		out[l.Name] = l.Cid
	}
	return out
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func TestCreateCAREmptyFile(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "empty")
	writeFile(t, in, nil)
	out := filepath.Join(dir, "out.car")
	res, err := CreateCAR(context.Background(), []string{in}, out, CAROptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The empty file with raw leaves is the raw block of no bytes, as
	// `ipfs add --cid-version=1` of an empty file reports.
	const want = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
	if res.Root.String() != want {
		t.Fatalf("root %s, want %s", res.Root, want)
	}
	root, dag := readCAR(t, out)
	if root != res.Root || len(dag) != 1 || res.Blocks != 1 {
		t.Fatalf("CAR root %s with %d blocks (result says %d)", root, len(dag), res.Blocks)
	}
	st, _ := os.Stat(out)
	if st.Size() != res.Size {
		t.Fatalf("result size %d, file size %d", res.Size, st.Size())
	}
	if _, err := os.Stat(out + ".partial"); !os.IsNotExist(err) {
		t.Fatalf("partial file left behind: %v", err)
	}
}

func TestCreateCARSmallFile(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "hello")
	writeFile(t, in, []byte("hello\n"))
	res, err := CreateCAR(context.Background(), []string{in}, filepath.Join(dir, "h.car"), CAROptions{})
	if err != nil {
		t.Fatal(err)
	}
	// `echo hello | ipfs add --cid-version=1`
	if want := "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"; res.Root.String() != want {
		t.Fatalf("root %s, want %s", res.Root, want)
	}
}

func TestCreateCARFile(t *testing.T) {
	dir := t.TempDir()
	data := randomBytes(1, 2*DefaultChunkSize+12345)
	in := filepath.Join(dir, "data.bin")
	writeFile(t, in, data)
	out := filepath.Join(dir, "out.car")
	var last int64
	res, err := CreateCAR(context.Background(), []string{in}, out, CAROptions{Progress: func(n int64) { last = n }})
	if err != nil {
		t.Fatal(err)
	}
	if last != int64(len(data)) || res.DataBytes != int64(len(data)) {
		t.Fatalf("progress reported %d, result %d, want %d", last, res.DataBytes, len(data))
	}
	root, dag := readCAR(t, out)
	if root != res.Root {
		t.Fatalf("CAR root %s, result root %s", root, res.Root)
	}
	if root.Type() != cid.DagProtobuf || root.Version() != 1 {
		t.Fatalf("root %s is not a CIDv1 dag-pb", root)
	}
	// Three 1 MiB raw leaves under one dag-pb node.
	if len(dag) != 4 {
		t.Fatalf("%d blocks, want 4", len(dag))
	}
	leaves := 0
	for c, b := range dag {
		if c.Type() == cid.Raw {
			leaves++
			if len(b.RawData()) > DefaultChunkSize {
				t.Fatalf("leaf of %d bytes", len(b.RawData()))
			}
		}
	}
	if leaves != 3 {
		t.Fatalf("%d raw leaves, want 3", leaves)
	}
	if got := fileBytes(t, dag, root); !bytes.Equal(got, data) {
		t.Fatalf("DAG reassembles to %d bytes that differ from the %d input bytes", len(got), len(data))
	}
}

func TestCreateCARDirectory(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	files := map[string][]byte{
		"a.txt":       []byte("hello ferry\n"),
		"b/c.bin":     randomBytes(2, 300_000),
		"b/d/e.txt":   []byte("deep"),
		"b/same.txt":  []byte("hello ferry\n"), // same block as a.txt
		"empty":       nil,
		"z/large.bin": randomBytes(3, DefaultChunkSize+1),
	}
	for name, data := range files {
		writeFile(t, filepath.Join(src, name), data)
	}
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "dir.car")
	res, err := CreateCAR(context.Background(), []string{src}, out, CAROptions{ChunkSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	root, dag := readCAR(t, out)
	if root != res.Root || len(dag) != res.Blocks {
		t.Fatalf("root %s/%s, %d blocks vs %d", root, res.Root, len(dag), res.Blocks)
	}
	var walk func(c cid.Cid, prefix string)
	found := map[string]bool{}
	walk = func(c cid.Cid, prefix string) {
		for name, child := range dirEntries(t, dag, c) {
			p := prefix + name
			if name == "b" || name == "d" || name == "z" {
				walk(child, p+"/")
				continue
			}
			if name == "link" {
				nd, _ := dag.Get(context.Background(), child)
				fsn, err := ft.ExtractFSNode(nd)
				if err != nil || fsn.Type() != ft.TSymlink || string(fsn.Data()) != "a.txt" {
					t.Fatalf("link is not a symlink to a.txt (%v)", err)
				}
				found[p] = true
				continue
			}
			want, ok := files[p]
			if !ok {
				t.Fatalf("unexpected entry %s", p)
			}
			if got := fileBytes(t, dag, child); !bytes.Equal(got, want) {
				t.Fatalf("%s: %d bytes differ from the %d input bytes", p, len(got), len(want))
			}
			found[p] = true
		}
	}
	walk(root, "")
	if len(found) != len(files)+1 {
		t.Fatalf("found %d entries, want %d", len(found), len(files)+1)
	}
}

func TestCreateCARWrapsSeveralPaths(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "one"), []byte("1"))
	writeFile(t, filepath.Join(dir, "sub", "two"), []byte("2"))
	out := filepath.Join(dir, "w.car")
	res, err := CreateCAR(context.Background(), []string{filepath.Join(dir, "one"), filepath.Join(dir, "sub")}, out, CAROptions{})
	if err != nil {
		t.Fatal(err)
	}
	root, dag := readCAR(t, out)
	ents := dirEntries(t, dag, root)
	if len(ents) != 2 || root != res.Root {
		t.Fatalf("wrapping directory has %v", ents)
	}
	if got := fileBytes(t, dag, ents["one"]); string(got) != "1" {
		t.Fatalf("one = %q", got)
	}
	if got := fileBytes(t, dag, dirEntries(t, dag, ents["sub"])["two"]); string(got) != "2" {
		t.Fatalf("sub/two = %q", got)
	}
}

func TestCreateCARErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.car")
	if _, err := CreateCAR(context.Background(), nil, out, CAROptions{}); err == nil {
		t.Fatal("no inputs accepted")
	}
	if _, err := CreateCAR(context.Background(), []string{filepath.Join(dir, "missing")}, out, CAROptions{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing input: %v", err)
	}
	writeFile(t, filepath.Join(dir, "a", "f"), []byte("x"))
	writeFile(t, filepath.Join(dir, "b", "f"), []byte("y"))
	if _, err := CreateCAR(context.Background(), []string{filepath.Join(dir, "a", "f"), filepath.Join(dir, "b", "f")}, out, CAROptions{}); err == nil {
		t.Fatal("two inputs with one name accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	writeFile(t, filepath.Join(dir, "big"), randomBytes(4, 100_000))
	if _, err := CreateCAR(ctx, []string{filepath.Join(dir, "big")}, out, CAROptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled import: %v", err)
	}
	for _, p := range []string{out, out + ".partial"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s left behind after a failure", p)
		}
	}
}
