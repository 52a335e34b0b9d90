package retrieval

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/boxo/blockservice"
	bstore "github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	format "github.com/ipfs/go-ipld-format"
)

func TestExtractCAR(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dir := t.TempDir()
	carPath := filepath.Join(dir, "dag.car")
	out, err := os.Create(carPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := FetchCAR(ctx, f.srv.URL, f.dag.D.c, out); err != nil {
		t.Fatal(err)
	}
	out.Close()
	target := filepath.Join(dir, "out")
	if err := ExtractCAR(ctx, carPath, f.dag.D.c, target); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(target, "a"))
	b, _ := os.ReadFile(filepath.Join(target, "b"))
	if !bytes.Equal(a, append(append([]byte(nil), f.dag.L1.data...), f.dag.L2.data...)) || !bytes.Equal(b, f.dag.L3.data) {
		t.Fatalf("extracted a=%q b=%q", a, b)
	}
	// The file alone, and refusals.
	if err := ExtractCAR(ctx, carPath, f.dag.F.c, filepath.Join(dir, "file")); err != nil {
		t.Fatal(err)
	}
	if err := ExtractCAR(ctx, carPath, f.dag.F.c, filepath.Join(dir, "file")); err == nil {
		t.Fatal("overwrote an existing file")
	}
	if err := ExtractCAR(ctx, carPath, f.dag.L2.c, filepath.Join(dir, "nope")); err == nil {
		// L2 is in the CAR: a raw block is a file.
		if got, _ := os.ReadFile(filepath.Join(dir, "nope")); !bytes.Equal(got, f.dag.L2.data) {
			t.Fatal("raw block extracted wrongly")
		}
	}
	if err := ExtractCAR(ctx, carPath, f.dag.C.c, filepath.Join(dir, "cbor")); err == nil {
		t.Fatal("extracted a block missing from the CAR")
	}
}

func TestExtractHAMTAndUnsafeNames(t *testing.T) {
	ctx := context.Background()
	bs := bstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	dserv := merkledag.NewDAGService(blockservice.New(bs, offline.Exchange(bs)))
	shard, err := hamt.NewShard(dserv, 16)
	if err != nil {
		t.Fatal(err)
	}
	d := makeDAG(t)
	want := map[string][]byte{}
	leaves := map[cid.Cid]blk{}
	for i := 0; i < 40; i++ {
		name := "file" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('0'+i/26))
		data := []byte(name + " contents")
		b := rawBlock(t, data)
		want[name] = data
		leaves[b.c] = b
		if err := shard.Set(ctx, name, &rawNode{b}); err != nil {
			t.Fatal(err)
		}
	}
	root, err := shard.Node()
	if err != nil {
		t.Fatal(err)
	}
	// Gather the shard blocks and the leaves into a CAR.
	var blocks []blk
	seen := map[cid.Cid]bool{}
	var walk func(n format.Node)
	walk = func(n format.Node) {
		if seen[n.Cid()] {
			return
		}
		seen[n.Cid()] = true
		blocks = append(blocks, blk{n.Cid(), n.RawData()})
		for _, l := range n.Links() {
			if l.Cid.Type() == cid.Raw {
				if !seen[l.Cid] {
					seen[l.Cid] = true
					blocks = append(blocks, leaves[l.Cid])
				}
				continue
			}
			cn, err := dserv.Get(ctx, l.Cid)
			if err != nil {
				t.Fatal(err)
			}
			walk(cn)
		}
	}
	walk(root)
	dir := t.TempDir()
	carPath := filepath.Join(dir, "hamt.car")
	if err := os.WriteFile(carPath, carOf(t, root.Cid(), blocks), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := ExtractCAR(ctx, carPath, root.Cid(), out); err != nil {
		t.Fatal(err)
	}
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %q %v", name, got, err)
		}
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(entries), len(want))
	}

	// A directory naming an entry ".." is refused.
	evil := merkledag.NodeWithData(unixfs.FolderPBData())
	evil.SetCidBuilder(merkledag.V1CidPrefix())
	evil.AddRawLink("..", link(d.L3))
	evilPath := filepath.Join(dir, "evil.car")
	os.WriteFile(evilPath, carOf(t, evil.Cid(), []blk{{evil.Cid(), evil.RawData()}, d.L3}), 0o644)
	if err := ExtractCAR(ctx, evilPath, evil.Cid(), filepath.Join(dir, "evil")); err == nil || !strings.Contains(err.Error(), "unsafe") {
		t.Fatalf("unsafe name: %v", err)
	}
}

// rawNode is a raw block as a format.Node for the HAMT builder.
type rawNode struct{ b blk }

func (r *rawNode) RawData() []byte                                      { return r.b.data }
func (r *rawNode) Cid() cid.Cid                                         { return r.b.c }
func (r *rawNode) String() string                                       { return r.b.c.String() }
func (r *rawNode) Loggable() map[string]any                             { return nil }
func (r *rawNode) Resolve([]string) (any, []string, error)              { return nil, nil, nil }
func (r *rawNode) Tree(string, int) []string                            { return nil }
func (r *rawNode) ResolveLink([]string) (*format.Link, []string, error) { return nil, nil, nil }
func (r *rawNode) Copy() format.Node                                    { return r }
func (r *rawNode) Links() []*format.Link                                { return nil }
func (r *rawNode) Stat() (*format.NodeStat, error)                      { return &format.NodeStat{}, nil }
func (r *rawNode) Size() (uint64, error)                                { return uint64(len(r.b.data)), nil }
