package retrieval

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/internal/carv1"
)

// rangeCAR is the CARv1 of an entity-bytes range of a UnixFS file: the
// file's root, then, depth-first, the blocks under it that hold bytes
// from..to (inclusive), skipping the children whose blocksizes place them
// wholly outside. It is what boxo sends for the same request, block for
// block, read with fewer copies and with the request's pieces kept open.
type rangeCAR struct {
	ctx      context.Context
	bs       *Blockstore
	root     blk
	from, to uint64
	seen     map[cid.Cid]struct{} // blocks written, unless duplicates are asked for
}

// newRangeCAR plans the range r of the file rooted at c, each block once
// unless dups; ok is false when c is not a dag-pb UnixFS file or r does
// not resolve to bytes of it, requests left to boxo.
func newRangeCAR(ctx context.Context, bs *Blockstore, c cid.Cid, r gateway.DagByteRange, dups bool) (*stream, bool) {
	if c.Type() != cid.DagProtobuf {
		return nil, false
	}
	data, _, err := bs.load(ctx, c, nil)
	if err != nil {
		return nil, false
	}
	_, fsn, err := unixfsNode(c, data)
	if err != nil || fsn.Type() != unixfs.TFile {
		return nil, false
	}
	from, to, ok := resolveRange(r, fsn.FileSize())
	if !ok {
		return nil, false
	}
	rc := &rangeCAR{ctx: ctx, bs: bs, root: blk{c, data}, from: from, to: to}
	if !dups {
		rc.seen = map[cid.Cid]struct{}{c: {}}
	}
	return &stream{write: rc.write}, true
}

// resolveRange turns r into absolute inclusive offsets of a file of size
// bytes; false for a range with no byte of the file, or one that starts
// past its end.
func resolveRange(r gateway.DagByteRange, size uint64) (from, to uint64, ok bool) {
	const maxSize = 1 << 62
	if size == 0 || size > maxSize {
		return 0, 0, false
	}
	sz := int64(size)
	f := r.From
	if f < 0 {
		f = max(sz+f, 0)
	}
	t := sz - 1
	if r.To != nil {
		if t = *r.To; t < 0 {
			t += sz
		}
		t = min(t, sz-1)
	}
	if f >= sz || t < f {
		return 0, 0, false
	}
	return uint64(f), uint64(t), true
}

// write writes the CAR to w.
func (r *rangeCAR) write(w io.Writer) error {
	open := openPieces{}
	defer open.close()
	if _, err := carv1.WriteHeader(w, []cid.Cid{r.root.c}); err != nil {
		return err
	}
	if _, err := carv1.WriteBlock(w, r.root.c, r.root.data); err != nil {
		return err
	}
	return r.file(w, open, r.root, r.from, r.to, 0)
}

// file writes the blocks under the UnixFS file node b (already written)
// that hold its bytes start..end (inclusive, relative to b).
func (r *rangeCAR) file(w io.Writer, open openPieces, b blk, start, end uint64, depth int) error {
	if b.c.Type() == cid.Raw {
		return nil
	}
	if depth > maxDepth {
		return errors.New("UnixFS file too deep")
	}
	if err := r.ctx.Err(); err != nil {
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
		data, _, err := r.bs.load(r.ctx, ln.Cid, open)
		if err != nil {
			return err
		}
		if _, dup := r.seen[ln.Cid]; !dup && !isIdentity(ln.Cid) {
			if r.seen != nil {
				r.seen[ln.Cid] = struct{}{}
			}
			if _, err := carv1.WriteBlock(w, ln.Cid, data); err != nil {
				return err
			}
		}
		s := max(start, lo) - lo
		e := min(end, off-1) - lo
		if err := r.file(w, open, blk{ln.Cid, data}, s, e, depth+1); err != nil {
			return err
		}
	}
	return nil
}
