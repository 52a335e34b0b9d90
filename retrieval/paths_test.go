package retrieval

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	ihelper "github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"
	car "github.com/ipld/go-car/v2"
)

// memDAG is an in-memory DAG service remembering the order of additions.
type memDAG struct {
	nodes map[cid.Cid]format.Node
	order []cid.Cid
}

func newMemDAG() *memDAG { return &memDAG{nodes: map[cid.Cid]format.Node{}} }

func (m *memDAG) Get(_ context.Context, c cid.Cid) (format.Node, error) {
	if n, ok := m.nodes[c]; ok {
		return n, nil
	}
	return nil, format.ErrNotFound{Cid: c}
}

func (m *memDAG) GetMany(ctx context.Context, cs []cid.Cid) <-chan *format.NodeOption {
	out := make(chan *format.NodeOption, len(cs))
	for _, c := range cs {
		n, err := m.Get(ctx, c)
		out <- &format.NodeOption{Node: n, Err: err}
	}
	close(out)
	return out
}

func (m *memDAG) Add(_ context.Context, n format.Node) error {
	if _, ok := m.nodes[n.Cid()]; !ok {
		m.order = append(m.order, n.Cid())
	}
	m.nodes[n.Cid()] = n
	return nil
}

func (m *memDAG) AddMany(ctx context.Context, ns []format.Node) error {
	for _, n := range ns {
		m.Add(ctx, n)
	}
	return nil
}

func (m *memDAG) Remove(context.Context, cid.Cid) error       { return nil }
func (m *memDAG) RemoveMany(context.Context, []cid.Cid) error { return nil }

// unixfsTree is a UnixFS tree built with boxo:
//
//	root/dir/sub/file.bin      a chunked file (13 raw leaves, 3 levels)
//	root/raw.txt               a raw leaf
//	root/hamt/entry-NN         a HAMT-sharded directory of 40 raw files
//	root/hamt/nested dir/x.bin and a plain directory in it
type unixfsTree struct {
	dag                         *memDAG
	root, dir, sub, file, raw   cid.Cid
	hamt, nested, xbin          cid.Cid
	shards                      *memDAG // the HAMT's shard nodes only
	content                     []byte  // file.bin's bytes
	entries                     map[string]cid.Cid
	fileChunk, fileLen, entryNo int
}

func plainDir(t testing.TB, d *memDAG, entries ...any) format.Node {
	t.Helper()
	n := merkledag.NodeWithData(unixfs.FolderPBData())
	n.SetCidBuilder(merkledag.V1CidPrefix())
	for i := 0; i < len(entries); i += 2 {
		if err := n.AddNodeLink(entries[i].(string), entries[i+1].(format.Node)); err != nil {
			t.Fatal(err)
		}
	}
	d.Add(context.Background(), n)
	return n
}

func makeTree(t testing.TB) *unixfsTree {
	t.Helper()
	ctx := context.Background()
	tr := &unixfsTree{dag: newMemDAG(), shards: newMemDAG(), entries: map[string]cid.Cid{}, fileChunk: 100, fileLen: 1234, entryNo: 40}
	tr.content = make([]byte, tr.fileLen)
	for i := range tr.content {
		tr.content[i] = byte(i*7 + i/13)
	}
	db, err := (&ihelper.DagBuilderParams{Maxlinks: 3, RawLeaves: true, CidBuilder: merkledag.V1CidPrefix(), Dagserv: tr.dag}).
		New(chunker.NewSizeSplitter(bytes.NewReader(tr.content), int64(tr.fileChunk)))
	if err != nil {
		t.Fatal(err)
	}
	file, err := balanced.Layout(db)
	if err != nil {
		t.Fatal(err)
	}
	tr.file = file.Cid()
	raw := merkledag.NewRawNode([]byte("just raw bytes"))
	tr.dag.Add(ctx, raw)
	tr.raw = raw.Cid()

	sh, err := hamt.NewShard(tr.shards, 16)
	if err != nil {
		t.Fatal(err)
	}
	sh.SetCidBuilder(merkledag.V1CidPrefix())
	for i := 0; i < tr.entryNo; i++ {
		name := fmt.Sprintf("entry-%02d", i)
		n := merkledag.NewRawNode([]byte(name + " contents"))
		tr.dag.Add(ctx, n)
		tr.entries[name] = n.Cid()
		l, _ := format.MakeLink(n)
		if err := sh.SetLink(ctx, name, l); err != nil {
			t.Fatal(err)
		}
	}
	xbin := merkledag.NewRawNode([]byte("x marks the spot"))
	tr.dag.Add(ctx, xbin)
	tr.xbin = xbin.Cid()
	nested := plainDir(t, tr.dag, "x.bin", xbin)
	tr.nested = nested.Cid()
	nl, _ := format.MakeLink(nested)
	if err := sh.SetLink(ctx, "nested dir", nl); err != nil {
		t.Fatal(err)
	}
	hn, err := sh.Node()
	if err != nil {
		t.Fatal(err)
	}
	tr.hamt = hn.Cid()
	for _, c := range tr.shards.order {
		tr.dag.Add(ctx, tr.shards.nodes[c])
	}

	sub := plainDir(t, tr.dag, "file.bin", file)
	dir := plainDir(t, tr.dag, "sub", sub)
	root := plainDir(t, tr.dag, "dir", dir, "raw.txt", raw, "hamt", hn)
	tr.sub, tr.dir, tr.root = sub.Cid(), dir.Cid(), root.Cid()
	return tr
}

func (tr *unixfsTree) blocks() []blk {
	out := make([]blk, 0, len(tr.dag.order))
	for _, c := range tr.dag.order {
		out = append(out, blk{c, tr.dag.nodes[c].RawData()})
	}
	return out
}

// dfs lists the DAG under c in depth-first order, each block once.
func (tr *unixfsTree) dfs(c cid.Cid) []cid.Cid {
	var out []cid.Cid
	seen := map[cid.Cid]bool{}
	var walk func(cid.Cid)
	walk = func(c cid.Cid) {
		if seen[c] {
			return
		}
		seen[c] = true
		out = append(out, c)
		for _, l := range tr.dag.nodes[c].Links() {
			walk(l.Cid)
		}
	}
	walk(c)
	return out
}

// span is how many file bytes the leaves under c hold (counted from the
// leaves' data, not from blocksizes).
func (tr *unixfsTree) span(c cid.Cid) int {
	n := tr.dag.nodes[c]
	if c.Type() == cid.Raw {
		return len(n.RawData())
	}
	total := 0
	for _, l := range n.Links() {
		total += tr.span(l.Cid)
	}
	return total
}

// rangeBlocks lists, depth-first, the file's root and the nodes whose
// bytes meet [start, end], and the offset of the first leaf listed.
func (tr *unixfsTree) rangeBlocks(start, end int) ([]cid.Cid, int) {
	out := []cid.Cid{tr.file}
	first := -1
	var walk func(c cid.Cid, lo int)
	walk = func(c cid.Cid, lo int) {
		for _, l := range tr.dag.nodes[c].Links() {
			n := tr.span(l.Cid)
			if lo < end+1 && lo+n > start {
				out = append(out, l.Cid)
				if l.Cid.Type() == cid.Raw && first < 0 {
					first = lo
				}
				walk(l.Cid, lo)
			}
			lo += n
		}
	}
	walk(tr.file, 0)
	return out, first
}

// shardPath finds, by scanning the shards, the shard blocks from the HAMT
// root down to the one holding name.
func (tr *unixfsTree) shardPath(t *testing.T, name string) []cid.Cid {
	t.Helper()
	var find func(c cid.Cid) []cid.Cid
	find = func(c cid.Cid) []cid.Cid {
		for _, l := range tr.dag.nodes[c].Links() {
			switch {
			case len(l.Name) == 1: // fanout 16: one hex digit
				if p := find(l.Cid); p != nil {
					return append([]cid.Cid{c}, p...)
				}
			case l.Name[1:] == name:
				return []cid.Cid{c}
			}
		}
		return nil
	}
	p := find(tr.hamt)
	if p == nil {
		t.Fatalf("%q is not in the HAMT", name)
	}
	return p
}

// carRead reads a CAR: its roots and blocks, each checked against its CID.
func carRead(t *testing.T, body []byte) ([]cid.Cid, []blk) {
	t.Helper()
	br, err := car.NewBlockReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out []blk
	for {
		b, err := br.Next()
		if err != nil {
			break
		}
		sum, err := b.Cid().Prefix().Sum(b.RawData())
		if err != nil || !sum.Equals(b.Cid()) {
			t.Fatalf("block %s does not hash to its CID", b.Cid())
		}
		out = append(out, blk{b.Cid(), b.RawData()})
	}
	return br.Roots, out
}

func sameCids(got []blk, want []cid.Cid) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d blocks, want %d", len(got), len(want))
	}
	for i := range got {
		if !got[i].c.Equals(want[i]) {
			return fmt.Errorf("block %d is %s, want %s", i, got[i].c, want[i])
		}
	}
	return nil
}

func cat(parts ...[]cid.Cid) []cid.Cid {
	var out []cid.Cid
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestServePaths(t *testing.T) {
	f := newFixture(t)
	tr := f.tree
	root := tr.root.String()
	// An entry below the HAMT's root shard, so a sub-shard is on its path.
	deep := ""
	for name := range tr.entries {
		if p := tr.shardPath(t, name); len(p) > 1 && (deep == "" || name < deep) {
			deep = name
		}
	}
	if deep == "" {
		t.Fatal("no HAMT entry below the root shard: the fixture does not shard deep enough")
	}
	nestedPath := tr.shardPath(t, "nested dir")
	shardTree := tr.shards.order // every shard node
	for _, c := range []struct {
		path, query string
		want        []cid.Cid
	}{
		{"/dir/sub/file.bin", "", cat([]cid.Cid{tr.root, tr.dir, tr.sub}, tr.dfs(tr.file))},
		{"/dir/sub/file.bin/", "", cat([]cid.Cid{tr.root, tr.dir, tr.sub}, tr.dfs(tr.file))},
		{"/dir/sub/file.bin", "&dag-scope=entity", cat([]cid.Cid{tr.root, tr.dir, tr.sub}, tr.dfs(tr.file))},
		{"/dir/sub/file.bin", "&dag-scope=block", []cid.Cid{tr.root, tr.dir, tr.sub, tr.file}},
		{"/dir", "", cat([]cid.Cid{tr.root}, tr.dfs(tr.dir))},
		{"/dir", "&dag-scope=entity", []cid.Cid{tr.root, tr.dir}},
		{"/raw.txt", "", []cid.Cid{tr.root, tr.raw}},
		{"/hamt/" + deep, "", cat([]cid.Cid{tr.root}, tr.shardPath(t, deep), []cid.Cid{tr.entries[deep]})},
		{"/hamt/nested%20dir/x.bin", "", cat([]cid.Cid{tr.root}, nestedPath, []cid.Cid{tr.nested, tr.xbin})},
		{"/hamt/nested%20dir", "&dag-scope=entity", cat([]cid.Cid{tr.root}, nestedPath, []cid.Cid{tr.nested})},
		{"/hamt", "&dag-scope=block", []cid.Cid{tr.root, tr.hamt}},
		{"/hamt", "&dag-scope=entity", nil}, // the shard tree: checked below
	} {
		resp, body := do(t, "GET", f.srv.URL+"/ipfs/"+root+c.path+"?format=car"+c.query, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s%s: %s %q", c.path, c.query, resp.Status, body)
		}
		roots, got := carRead(t, body)
		if len(roots) != 1 || !slices.ContainsFunc(got, func(b blk) bool { return b.c.Equals(roots[0]) }) {
			t.Fatalf("%s: CAR roots %v, not one of its blocks", c.path, roots)
		}
		if c.want == nil {
			// Each shard once, the root shard first, every other one
			// linked from a block before it.
			if len(got) != 1+len(shardTree) || !got[0].c.Equals(tr.root) || !got[1].c.Equals(tr.hamt) {
				t.Fatalf("%s%s: %d blocks, want root and %d shards", c.path, c.query, len(got), len(shardTree))
			}
			sent := map[cid.Cid]bool{}
			for i, b := range got[1:] {
				if tr.shards.nodes[b.c] == nil || sent[b.c] {
					t.Fatalf("%s%s: block %d %s is not a new shard", c.path, c.query, i+1, b.c)
				}
				linked := i == 0
				for p := range sent {
					for _, l := range tr.dag.nodes[p].Links() {
						linked = linked || l.Cid.Equals(b.c)
					}
				}
				if !linked {
					t.Fatalf("%s%s: shard %s comes before its parent", c.path, c.query, b.c)
				}
				sent[b.c] = true
			}
			continue
		}
		if err := sameCids(got, c.want); err != nil {
			t.Fatalf("%s%s: %v", c.path, c.query, err)
		}
	}

	// A raw block is only served for a bare CID: a path cannot be
	// verified from the terminal block alone.
	resp, body := do(t, "GET", f.srv.URL+"/ipfs/"+root+"/hamt/nested%20dir/x.bin?format=raw", nil)
	if resp.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("raw through the HAMT: %s %q", resp.Status, body)
	}
	// Headers name the whole path.
	resp, body = do(t, "GET", f.srv.URL+"/ipfs/"+root+"/hamt/nested%20dir/x.bin?format=car&dag-scope=block", nil)
	if _, got := carRead(t, body); resp.StatusCode != 200 || len(got) == 0 || !got[len(got)-1].c.Equals(tr.xbin) {
		t.Fatalf("block through the HAMT: %s", resp.Status)
	}
	if got := resp.Header.Get("X-Ipfs-Path"); got != "/ipfs/"+root+"/hamt/nested dir/x.bin" {
		t.Fatalf("X-Ipfs-Path %q", got)
	}
	if got, want := resp.Header.Get("X-Ipfs-Roots"), strings.Join([]string{root, tr.hamt.String(), tr.nested.String(), tr.xbin.String()}, ","); got != want {
		t.Fatalf("X-Ipfs-Roots %q, want %q", got, want)
	}
	etags := map[string]string{}
	for _, p := range []string{"", "/dir", "/dir/sub", "/dir?format=car&dag-scope=entity"} {
		u := f.srv.URL + "/ipfs/" + root + p
		if !strings.Contains(p, "?") {
			u += "?format=car"
		}
		resp, _ := do(t, "HEAD", u, nil)
		e := resp.Header.Get("ETag")
		if resp.StatusCode != 200 || e == "" {
			t.Fatalf("HEAD %s: %s etag %q", p, resp.Status, e)
		}
		if other, ok := etags[e]; ok {
			t.Fatalf("%q and %q share ETag %s", other, p, e)
		}
		etags[e] = p
	}

	// A name that is not there, or a path through a file: the blocks
	// walked, as the proof, under an empty root (boxo's answer).
	for _, c := range []struct {
		path string
		want []cid.Cid
	}{
		{"/dir/nope", []cid.Cid{tr.root, tr.dir}},
		{"/dir/sub/nope/deeper", []cid.Cid{tr.root, tr.dir, tr.sub}},
		{"/dir/sub/file.bin/x", []cid.Cid{tr.root, tr.dir, tr.sub, tr.file}},
		{"/raw.txt/x", []cid.Cid{tr.root, tr.raw}},
	} {
		resp, body := do(t, "GET", f.srv.URL+"/ipfs/"+root+c.path+"?format=car", nil)
		roots, got := carRead(t, body)
		if resp.StatusCode != 200 || len(roots) != 1 || !isIdentity(roots[0]) || sameCids(got, c.want) != nil {
			t.Errorf("%s: %s, roots %v, blocks %v", c.path, resp.Status, roots, got)
		}
	}
	for _, p := range []string{"/hamt/nope", "/hamt/entry-01/x"} {
		resp, body := do(t, "GET", f.srv.URL+"/ipfs/"+root+p+"?format=car", nil)
		roots, got := carRead(t, body)
		if resp.StatusCode != 200 || len(roots) != 1 || !isIdentity(roots[0]) || len(got) < 2 || !got[0].c.Equals(tr.root) || !got[1].c.Equals(tr.hamt) {
			t.Errorf("%s: %s, roots %v, %d blocks", p, resp.Status, roots, len(got))
		}
	}
	// A block on the path that is gone is not in the CAR: no client can
	// be told the path resolves.
	srv := hidingServer(t, f, tr.dir)
	resp, body = do(t, "GET", srv+"/ipfs/"+root+"/dir/sub?format=car", nil)
	if _, got := carRead(t, body); slices.ContainsFunc(got, func(b blk) bool { return b.c.Equals(tr.dir) || b.c.Equals(tr.sub) }) {
		t.Fatalf("hidden directory: %s, blocks %v", resp.Status, got)
	}
}

func hidingServer(t *testing.T, f *fixture, c cid.Cid) string {
	srv := httptest.NewServer(newServer(t, hidingDir{f.idx, c.Hash()}, f.src))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestServeEntityBytes(t *testing.T) {
	f := newFixture(t)
	tr := f.tree
	size := tr.fileLen
	prefix := []cid.Cid{tr.root, tr.dir, tr.sub}
	for _, c := range []struct {
		eb         string
		start, end int
	}{
		{"0:0", 0, 0},
		{"0:99", 0, 99},
		{"0:100", 0, 100},
		{"150:450", 150, 450},
		{"650:650", 650, 650},
		{"1200:*", 1200, size - 1},
		{"0:*", 0, size - 1},
		{"-100:*", size - 100, size - 1},
		{"-5000:*", 0, size - 1},
		{"1000:99999", 1000, size - 1},
		{"-200:-100", size - 200, size - 100},
		{"499:-700", 499, size - 700},
		{"-1:*", size - 1, size - 1},
	} {
		for _, base := range []string{"/ipfs/" + tr.root.String() + "/dir/sub/file.bin", "/ipfs/" + tr.file.String()} {
			resp, body := do(t, "GET", f.srv.URL+base+"?format=car&dag-scope=entity&entity-bytes="+c.eb, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %s %q", c.eb, resp.Status, body)
			}
			_, got := carRead(t, body)
			want, first := tr.rangeBlocks(c.start, c.end)
			if strings.Contains(base, "/dir/") {
				want = cat(prefix, want)
			}
			if err := sameCids(got, want); err != nil {
				t.Fatalf("%s %s: %v", base, c.eb, err)
			}
			var leaves []byte
			for _, b := range got {
				if b.c.Type() == cid.Raw {
					leaves = append(leaves, b.data...)
				}
			}
			if first < 0 || c.end+1-first > len(leaves) || !bytes.Equal(leaves[c.start-first:c.end+1-first], tr.content[c.start:c.end+1]) {
				t.Fatalf("%s: the leaves sent do not hold bytes %d-%d", c.eb, c.start, c.end)
			}
		}
	}
	// Fewer leaves than the whole file for a small range.
	if all, _ := tr.rangeBlocks(0, size-1); len(all) != len(tr.dfs(tr.file)) {
		t.Fatalf("the whole range is %d blocks, the file %d", len(all), len(tr.dfs(tr.file)))
	}

	fileURL := f.srv.URL + "/ipfs/" + tr.root.String() + "/dir/sub/file.bin?format=car&dag-scope=entity"
	// A range with no byte in the file: the file's root block alone.
	for _, eb := range []string{"0:-5000", "1234:*", "5000:6000"} {
		resp, body := do(t, "GET", fileURL+"&entity-bytes="+eb, nil)
		if _, got := carRead(t, body); resp.StatusCode != 200 || sameCids(got, cat(prefix, []cid.Cid{tr.file})) != nil {
			t.Fatalf("empty range %s: %s %d blocks", eb, resp.Status, len(got))
		}
	}
	// A raw file is one block: the range needs it.
	resp, body := do(t, "GET", f.srv.URL+"/ipfs/"+tr.root.String()+"/raw.txt?format=car&dag-scope=entity&entity-bytes=2:3", nil)
	if _, got := carRead(t, body); resp.StatusCode != 200 || sameCids(got, []cid.Cid{tr.root, tr.raw}) != nil {
		t.Fatalf("raw file range: %s", resp.Status)
	}
	// Not a file: entity-bytes is ignored, the entity is the directory.
	resp, body = do(t, "GET", f.srv.URL+"/ipfs/"+tr.root.String()+"/dir?format=car&dag-scope=entity&entity-bytes=0:10", nil)
	if _, got := carRead(t, body); resp.StatusCode != 200 || sameCids(got, []cid.Cid{tr.root, tr.dir}) != nil {
		t.Fatalf("directory with entity-bytes: %s", resp.Status)
	}
	// ETags follow the range.
	r1, _ := do(t, "HEAD", fileURL+"&entity-bytes=0:10", nil)
	r2, _ := do(t, "HEAD", fileURL+"&entity-bytes=0:11", nil)
	r3, _ := do(t, "HEAD", fileURL, nil)
	if e1, e2, e3 := r1.Header.Get("ETag"), r2.Header.Get("ETag"), r3.Header.Get("ETag"); e1 == e2 || e1 == e3 || e1 == "" {
		t.Fatalf("ETags %s %s %s", e1, e2, e3)
	}
	for _, q := range []string{"&entity-bytes=", "&entity-bytes=abc", "&entity-bytes=1:2:3", "&entity-bytes=5:2",
		"&entity-bytes=-2:-5", "&entity-bytes=:5", "&entity-bytes=*:5", "&entity-bytes=1:99999999999999999999"} {
		resp, body := do(t, "GET", fileURL+q, nil)
		if resp.StatusCode != 400 || !strings.Contains(string(body), "entity-bytes") {
			t.Errorf("%s: %s %q", q, resp.Status, body)
		}
	}

	// An explicit dag-scope wins over entity-bytes: all is the whole DAG
	// (what lassie asks for with --entity-bytes), block the one block.
	allURL := f.srv.URL + "/ipfs/" + tr.file.String() + "?format=car&entity-bytes=0:5&dag-scope="
	resp, body = do(t, "GET", allURL+"all", nil)
	if _, got := carRead(t, body); resp.StatusCode != 200 || sameCids(got, tr.dfs(tr.file)) != nil {
		t.Fatalf("entity-bytes with dag-scope=all: %s, %d blocks, want the whole file's %d", resp.Status, len(got), len(tr.dfs(tr.file)))
	}
	resp, body = do(t, "GET", allURL+"block", nil)
	if _, got := carRead(t, body); resp.StatusCode != 200 || sameCids(got, []cid.Cid{tr.file}) != nil {
		t.Fatalf("entity-bytes with dag-scope=block: %s, %d blocks", resp.Status, len(got))
	}
}

func TestResolveRange(t *testing.T) {
	to := func(n int64) *int64 { return &n }
	for _, c := range []struct {
		r        gateway.DagByteRange
		size     uint64
		from, to uint64
		ok       bool
	}{
		{gateway.DagByteRange{From: 0}, 10, 0, 9, true},
		{gateway.DagByteRange{From: -3}, 10, 7, 9, true},
		{gateway.DagByteRange{From: -30}, 10, 0, 9, true},
		{gateway.DagByteRange{From: 2, To: to(-3)}, 10, 2, 7, true},
		{gateway.DagByteRange{From: 8, To: to(-3)}, 10, 0, 0, false},
		{gateway.DagByteRange{From: 10}, 10, 0, 0, false},
		{gateway.DagByteRange{From: 0}, 0, 0, 0, false},
		{gateway.DagByteRange{From: 5, To: to(100)}, 10, 5, 9, true},
		{gateway.DagByteRange{From: -1, To: to(-1)}, 10, 9, 9, true},
	} {
		from, to, ok := resolveRange(c.r, c.size)
		if from != c.from || to != c.to || ok != c.ok {
			t.Errorf("%+v of %d: %d-%d %v", c.r, c.size, from, to, ok)
		}
	}
}
