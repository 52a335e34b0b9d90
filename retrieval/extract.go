package retrieval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	"github.com/ipld/go-car/v2/blockstore"
)

// maxDepth bounds how deep a UnixFS tree is followed.
const maxDepth = 1024

// ExtractCAR writes the UnixFS file or directory rooted at root, whose
// blocks are in the CAR file at carPath (for example one FetchCAR wrote),
// to outPath, which must not exist yet. HAMT-sharded directories are
// followed; symlinks and non-UnixFS data are refused.
func ExtractCAR(ctx context.Context, carPath string, root cid.Cid, outPath string) error {
	bs, err := blockstore.OpenReadOnly(carPath)
	if err != nil {
		return fmt.Errorf("opening CAR %s: %w", carPath, err)
	}
	defer bs.Close()
	x := &extractor{get: func(c cid.Cid) ([]byte, error) {
		if isIdentity(c) {
			return identityData(c)
		}
		b, err := bs.Get(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", c, err)
		}
		return b.RawData(), nil
	}, ctx: ctx}
	if err := x.node(root, outPath, 0); err != nil {
		return fmt.Errorf("extracting %s: %w", root, err)
	}
	return nil
}

type extractor struct {
	ctx context.Context
	get func(cid.Cid) ([]byte, error)
}

// unixfsNode decodes a dag-pb UnixFS node.
func unixfsNode(c cid.Cid, data []byte) (*merkledag.ProtoNode, *unixfs.FSNode, error) {
	pn, err := merkledag.DecodeProtobuf(data)
	if err != nil {
		return nil, nil, fmt.Errorf("block %s: %w", c, err)
	}
	fsn, err := unixfs.FSNodeFromBytes(pn.Data())
	if err != nil {
		return nil, nil, fmt.Errorf("block %s: not UnixFS: %w", c, err)
	}
	return pn, fsn, nil
}

func (x *extractor) node(c cid.Cid, path string, depth int) error {
	if depth > maxDepth {
		return errors.New("UnixFS tree too deep")
	}
	if err := x.ctx.Err(); err != nil {
		return err
	}
	data, err := x.get(c)
	if err != nil {
		return err
	}
	switch c.Type() {
	case cid.Raw:
		return x.file(path, func(w io.Writer) error { _, err := w.Write(data); return err })
	case cid.DagProtobuf:
	default:
		return fmt.Errorf("block %s: codec 0x%x is not UnixFS", c, c.Type())
	}
	pn, fsn, err := unixfsNode(c, data)
	if err != nil {
		return err
	}
	switch fsn.Type() {
	case unixfs.TFile, unixfs.TRaw:
		return x.file(path, func(w io.Writer) error { return x.fileData(w, c, pn, fsn, depth) })
	case unixfs.TDirectory:
		if err := os.Mkdir(path, 0o755); err != nil {
			return err
		}
		for _, l := range pn.Links() {
			if err := checkName(l.Name); err != nil {
				return fmt.Errorf("directory %s: %w", c, err)
			}
			if err := x.node(l.Cid, filepath.Join(path, l.Name), depth+1); err != nil {
				return err
			}
		}
		return nil
	case unixfs.THAMTShard:
		if err := os.Mkdir(path, 0o755); err != nil {
			return err
		}
		return x.shard(pn, fsn, path, depth)
	default:
		return fmt.Errorf("block %s: UnixFS type %s is not extracted", c, fsn.Type())
	}
}

// shard extracts the entries of a HAMT directory shard: links named with
// just the bucket prefix are sub-shards, the others are entries.
func (x *extractor) shard(pn *merkledag.ProtoNode, fsn *unixfs.FSNode, path string, depth int) error {
	if depth > maxDepth {
		return errors.New("HAMT too deep")
	}
	fanout := fsn.Fanout()
	if fanout < 2 || fanout > 1<<16 {
		return fmt.Errorf("HAMT fanout %d", fanout)
	}
	width := len(fmt.Sprintf("%X", fanout-1))
	for _, l := range pn.Links() {
		if len(l.Name) < width {
			return fmt.Errorf("HAMT link name %q too short", l.Name)
		}
		if len(l.Name) == width {
			data, err := x.get(l.Cid)
			if err != nil {
				return err
			}
			spn, sfsn, err := unixfsNode(l.Cid, data)
			if err != nil {
				return err
			}
			if sfsn.Type() != unixfs.THAMTShard {
				return fmt.Errorf("block %s: HAMT sub-shard is a %s", l.Cid, sfsn.Type())
			}
			if err := x.shard(spn, sfsn, path, depth+1); err != nil {
				return err
			}
			continue
		}
		name := l.Name[width:]
		if err := checkName(name); err != nil {
			return err
		}
		if err := x.node(l.Cid, filepath.Join(path, name), depth+1); err != nil {
			return err
		}
	}
	return nil
}

// fileData writes a UnixFS file node's own data, then its children's in order.
func (x *extractor) fileData(w io.Writer, c cid.Cid, pn *merkledag.ProtoNode, fsn *unixfs.FSNode, depth int) error {
	if depth > maxDepth {
		return errors.New("UnixFS file too deep")
	}
	if _, err := w.Write(fsn.Data()); err != nil {
		return err
	}
	for _, l := range pn.Links() {
		data, err := x.get(l.Cid)
		if err != nil {
			return err
		}
		switch l.Cid.Type() {
		case cid.Raw:
			if _, err := w.Write(data); err != nil {
				return err
			}
		case cid.DagProtobuf:
			cpn, cfsn, err := unixfsNode(l.Cid, data)
			if err != nil {
				return err
			}
			if t := cfsn.Type(); t != unixfs.TFile && t != unixfs.TRaw {
				return fmt.Errorf("file %s links to a %s", c, t)
			}
			if err := x.fileData(w, l.Cid, cpn, cfsn, depth+1); err != nil {
				return err
			}
		default:
			return fmt.Errorf("file %s links to codec 0x%x", c, l.Cid.Type())
		}
	}
	return nil
}

// file creates path (which must not exist) and fills it with write.
func (x *extractor) file(path string, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// checkName refuses directory entry names that would leave the output tree.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("unsafe directory entry name %q", name)
	}
	return nil
}
