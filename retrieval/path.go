package retrieval

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// Errors of content path resolution.
var (
	// errBadPath: the path is malformed (answered 400).
	errBadPath = errors.New("bad content path")
	// errNoSuchName: a directory has no entry of that name (404).
	errNoSuchName = errors.New("no such name")
	// errNotDirectory: the path goes through something other than a
	// UnixFS directory (400).
	errNotDirectory = errors.New("not a directory")
)

// maxPathSegments bounds how many segments a content path may have.
const maxPathSegments = 256

// splitContentPath splits the escaped path after /ipfs/{cid}/ into its
// unescaped segments. One trailing slash is allowed; empty, "." and ".."
// segments are refused.
func splitContentPath(escaped string) ([]string, error) {
	if escaped == "" {
		return nil, nil
	}
	escaped = strings.TrimSuffix(escaped, "/")
	parts := strings.Split(escaped, "/")
	if len(parts) > maxPathSegments {
		return nil, fmt.Errorf("%w: more than %d segments", errBadPath, maxPathSegments)
	}
	segs := make([]string, 0, len(parts))
	for _, p := range parts {
		seg, err := url.PathUnescape(p)
		if err != nil {
			return nil, fmt.Errorf("%w: segment %q: %v", errBadPath, p, err)
		}
		switch seg {
		case "":
			return nil, fmt.Errorf("%w: empty segment", errBadPath)
		case ".", "..":
			return nil, fmt.Errorf("%w: segment %q is not allowed", errBadPath, seg)
		}
		segs = append(segs, seg)
	}
	return segs, nil
}

// escapePath joins segments back into an escaped path.
func escapePath(segs []string) string {
	esc := make([]string, len(segs))
	for i, s := range segs {
		esc[i] = url.PathEscape(s)
	}
	return strings.Join(esc, "/")
}

// resolved is a content path walked down to its terminal block.
type resolved struct {
	// terminal is the block the path names.
	terminal blk
}

// blockSource loads verified blocks: the blocks a client received.
type blockSource interface {
	load(ctx context.Context, c cid.Cid) ([]byte, error)
}

// resolvePath walks segs from root (whose block is rootData) through
// UnixFS directories, plain or HAMT-sharded.
func resolvePath(ctx context.Context, l blockSource, root cid.Cid, rootData []byte, segs []string) (resolved, error) {
	var res resolved
	cur := blk{root, rootData}
	for i, seg := range segs {
		if err := ctx.Err(); err != nil {
			return resolved{}, err
		}
		where := "/" + escapePath(segs[:i])
		next, err := lookupName(ctx, l, cur, seg)
		if err != nil {
			return resolved{}, fmt.Errorf("resolving %q under %s (at %s): %w", seg, root, where, err)
		}
		data, err := l.load(ctx, next)
		if err != nil {
			return resolved{}, fmt.Errorf("resolving %q under %s (at %s): %w", seg, root, where, err)
		}
		cur = blk{next, data}
	}
	res.terminal = cur
	return res, nil
}

// lookupName finds the entry name in the directory dir.
func lookupName(ctx context.Context, l blockSource, dir blk, name string) (cid.Cid, error) {
	if dir.c.Type() != cid.DagProtobuf {
		return cid.Undef, fmt.Errorf("%w: %s is not UnixFS (codec 0x%x)", errNotDirectory, dir.c, dir.c.Type())
	}
	pn, fsn, err := unixfsNode(dir.c, dir.data)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %v", errNotDirectory, err)
	}
	switch fsn.Type() {
	case unixfs.TDirectory:
		for _, ln := range pn.Links() {
			if ln.Name == name {
				return ln.Cid, nil
			}
		}
		return cid.Undef, fmt.Errorf("%w: directory %s has no entry %q", errNoSuchName, dir.c, name)
	case unixfs.THAMTShard:
		sh, err := hamt.NewHamtFromDag(loaderDAG{l}, pn)
		if err != nil {
			return cid.Undef, fmt.Errorf("HAMT directory %s: %w", dir.c, err)
		}
		ln, err := sh.Find(ctx, name)
		if errors.Is(err, os.ErrNotExist) {
			return cid.Undef, fmt.Errorf("%w: sharded directory %s has no entry %q", errNoSuchName, dir.c, name)
		}
		if err != nil {
			return cid.Undef, fmt.Errorf("HAMT directory %s: %w", dir.c, err)
		}
		return ln.Cid, nil
	default:
		return cid.Undef, fmt.Errorf("%w: %s is a UnixFS %s", errNotDirectory, dir.c, fsn.Type())
	}
}

// loaderDAG is a read-only ipld.DAGService over a blockSource, for the
// HAMT code.
type loaderDAG struct {
	l blockSource
}

var _ ipld.DAGService = loaderDAG{}

// Get loads and decodes c (dag-pb or raw).
func (d loaderDAG) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	data, err := d.l.load(ctx, c)
	if err != nil {
		return nil, err
	}
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", c, err)
	}
	switch c.Type() {
	case cid.DagProtobuf:
		return merkledag.DecodeProtobufBlock(b)
	case cid.Raw:
		return merkledag.DecodeRawBlock(b)
	}
	return nil, fmt.Errorf("block %s: codec 0x%x is not UnixFS", c, c.Type())
}

// GetMany loads cs one after the other.
func (d loaderDAG) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	for _, c := range cs {
		n, err := d.Get(ctx, c)
		out <- &ipld.NodeOption{Node: n, Err: err}
	}
	close(out)
	return out
}

// Add refuses: the loader is read-only.
func (loaderDAG) Add(context.Context, ipld.Node) error { return errReadOnly }

// AddMany refuses: the loader is read-only.
func (loaderDAG) AddMany(context.Context, []ipld.Node) error { return errReadOnly }

// Remove refuses: the loader is read-only.
func (loaderDAG) Remove(context.Context, cid.Cid) error { return errReadOnly }

// RemoveMany refuses: the loader is read-only.
func (loaderDAG) RemoveMany(context.Context, []cid.Cid) error { return errReadOnly }
