package retrieval

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/internal/carv1"
)

// blk is a block: its CID and data.
type blk struct {
	c    cid.Cid
	data []byte
}

// byteRange is an absolute, inclusive byte range of a file entity.
type byteRange struct{ start, end uint64 }

// carPlan is what a CAR response holds: the blocks loaded to walk the
// path, then the terminal block and what the scope takes under it.
type carPlan struct {
	root     cid.Cid // the CAR's root: the requested CID
	visited  []blk   // blocks loaded to resolve the path, in order
	terminal blk
	scope    string
	// rng, when set, limits an entity scope on a file to the blocks
	// covering those bytes.
	rng *byteRange
}

// carWriter writes a CARv1 in depth-first order, each block once.
type carWriter struct {
	w    io.Writer
	l    *blockLoader
	seen map[cid.Cid]struct{}
}

// put writes a block unless it was written already; it reports whether
// it did.
func (cw *carWriter) put(b blk) (bool, error) {
	if _, ok := cw.seen[b.c]; ok {
		return false, nil
	}
	cw.seen[b.c] = struct{}{}
	if _, err := carv1.WriteBlock(cw.w, b.c, b.data); err != nil {
		return false, err
	}
	return true, nil
}

// writeCAR writes the CAR p describes.
func writeCAR(ctx context.Context, w io.Writer, l *blockLoader, p carPlan) error {
	if _, err := carv1.WriteHeader(w, []cid.Cid{p.root}); err != nil {
		return err
	}
	cw := &carWriter{w: w, l: l, seen: map[cid.Cid]struct{}{}}
	for _, b := range p.visited {
		if _, err := cw.put(b); err != nil {
			return err
		}
	}
	t := p.terminal
	if _, err := cw.put(t); err != nil {
		return err
	}
	switch {
	case p.scope == scopeBlock:
		return nil
	case p.scope == scopeAll:
		return cw.all(ctx, t)
	case unixfsFileLike(t.c, t.data):
		if p.rng != nil {
			return cw.fileRange(ctx, t, p.rng.start, p.rng.end, 0)
		}
		return cw.all(ctx, t)
	case isHAMT(t.c, t.data):
		return cw.shards(ctx, t, 0)
	}
	return nil // a directory or non-UnixFS block: the block is the entity
}

// all writes the DAG under b (b itself already written), depth-first.
func (cw *carWriter) all(ctx context.Context, b blk) error {
	var stack []cid.Cid
	push := func(c cid.Cid, data []byte) error {
		ls, err := links(c, data)
		if err != nil {
			return err
		}
		for i := len(ls) - 1; i >= 0; i-- {
			stack = append(stack, ls[i])
		}
		return nil
	}
	if err := push(b.c, b.data); err != nil {
		return err
	}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := cw.seen[c]; ok || isIdentity(c) {
			continue
		}
		data, err := cw.l.load(ctx, c)
		if err != nil {
			return err
		}
		if _, err := cw.put(blk{c, data}); err != nil {
			return err
		}
		if err := push(c, data); err != nil {
			return err
		}
	}
	return nil
}

// fileRange writes the blocks under the UnixFS file node b (already
// written) that hold bytes start..end (inclusive, relative to b), skipping
// the children the node's blocksizes place wholly outside.
func (cw *carWriter) fileRange(ctx context.Context, b blk, start, end uint64, depth int) error {
	if b.c.Type() == cid.Raw {
		return nil
	}
	if depth > maxDepth {
		return errors.New("UnixFS file too deep")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pn, fsn, err := unixfsNode(b.c, b.data)
	if err != nil {
		return err
	}
	if t := fsn.Type(); t != unixfs.TFile && t != unixfs.TRaw {
		return fmt.Errorf("block %s: a UnixFS %s inside a file", b.c, t)
	}
	ls := pn.Links()
	if len(ls) != fsn.NumChildren() {
		return fmt.Errorf("block %s: %d links but %d blocksizes", b.c, len(ls), fsn.NumChildren())
	}
	off := uint64(len(fsn.Data()))
	for i, ln := range ls {
		lo := off
		off += fsn.BlockSize(i)
		if off < lo {
			return fmt.Errorf("block %s: blocksizes overflow", b.c)
		}
		if off == lo || off <= start {
			continue // empty, or wholly before the range
		}
		if lo > end {
			break
		}
		var data []byte
		if isIdentity(ln.Cid) {
			if data, err = identityData(ln.Cid); err != nil {
				return err
			}
		} else {
			if data, err = cw.l.load(ctx, ln.Cid); err != nil {
				return err
			}
			if _, err := cw.put(blk{ln.Cid, data}); err != nil {
				return err
			}
		}
		s := max(start, lo) - lo
		e := min(end, off-1) - lo
		if err := cw.fileRange(ctx, blk{ln.Cid, data}, s, e, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// shards writes the sub-shards of the HAMT directory shard b (already
// written), depth-first, but not the entries.
func (cw *carWriter) shards(ctx context.Context, b blk, depth int) error {
	if depth > maxDepth {
		return errors.New("HAMT too deep")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pn, fsn, err := unixfsNode(b.c, b.data)
	if err != nil {
		return err
	}
	width, err := hamtWidth(fsn)
	if err != nil {
		return fmt.Errorf("block %s: %w", b.c, err)
	}
	for _, ln := range pn.Links() {
		if len(ln.Name) != width {
			continue // an entry
		}
		data, err := cw.l.load(ctx, ln.Cid)
		if err != nil {
			return err
		}
		if !isHAMT(ln.Cid, data) {
			return fmt.Errorf("block %s: HAMT sub-shard %s is not a shard", b.c, ln.Cid)
		}
		if _, err := cw.put(blk{ln.Cid, data}); err != nil {
			return err
		}
		if err := cw.shards(ctx, blk{ln.Cid, data}, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// hamtWidth is the length of the bucket prefix of a shard's link names.
func hamtWidth(fsn *unixfs.FSNode) (int, error) {
	fanout := fsn.Fanout()
	if fanout < 2 || fanout > 1<<16 || fanout&(fanout-1) != 0 {
		return 0, fmt.Errorf("HAMT fanout %d", fanout)
	}
	return len(fmt.Sprintf("%X", fanout-1)), nil
}

// isHAMT reports whether a block is a UnixFS HAMT directory shard.
func isHAMT(c cid.Cid, data []byte) bool {
	if c.Type() != cid.DagProtobuf {
		return false
	}
	_, fsn, err := unixfsNode(c, data)
	return err == nil && fsn.Type() == unixfs.THAMTShard
}

// fileSize returns the size a file-like block (see unixfsFileLike) says
// its entity has.
func fileSize(c cid.Cid, data []byte) (uint64, error) {
	if c.Type() == cid.Raw {
		return uint64(len(data)), nil
	}
	_, fsn, err := unixfsNode(c, data)
	if err != nil {
		return 0, err
	}
	return fsn.FileSize(), nil
}
