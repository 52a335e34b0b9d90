package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	carv2 "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	"github.com/multiformats/go-multihash"
)

// UnixFS import parameters: the IPIP-499 "unixfs-v1-2025" profile, which is
// what `ipfs add --cid-version=1` produces with Kubo's modern defaults: CIDv1,
// sha2-256, raw leaves, 1 MiB chunks, balanced layout, 1024 links per node.
const (
	// DefaultChunkSize is the size of a file's leaf blocks.
	DefaultChunkSize = 1 << 20
	// DefaultLinksPerNode is the widest a file's internal node gets.
	DefaultLinksPerNode = 1024
	// hamtShardingSize is the estimated directory block size above which a
	// directory becomes a HAMT.
	hamtShardingSize = 256 << 10
)

// cidBuilder makes the CIDs of dag-pb nodes: CIDv1, sha2-256.
var cidBuilder = cid.Prefix{Version: 1, Codec: cid.DagProtobuf, MhType: multihash.SHA2_256, MhLength: -1}

// CAROptions tunes CreateCAR. The zero value uses the defaults.
type CAROptions struct {
	// ChunkSize is the leaf size in bytes; 0 means DefaultChunkSize.
	ChunkSize int64
	// Progress, when set, is called with the number of file bytes read so
	// far, after each chunk.
	Progress func(read int64)
}

// CARResult describes a CAR written by CreateCAR.
type CARResult struct {
	// Root is the CID of the UnixFS root (a file or a directory).
	Root cid.Cid
	// Size is the CAR file's size in bytes.
	Size int64
	// Blocks is the number of blocks written (duplicates are written once).
	Blocks int
	// DataBytes is the number of file bytes imported.
	DataBytes int64
}

// CreateCAR imports paths (files, directories, symlinks) as a UnixFS DAG and
// writes it as a CARv1 to out. One path is imported as itself; several paths
// are wrapped in a directory named by their base names, as `ipfs add -w`
// does. Blocks go to the file as they are produced; nothing but the block
// index is held in memory. The CAR is written to out+".partial" and renamed
// into place once complete, so out never holds a half-written CAR.
func CreateCAR(ctx context.Context, paths []string, out string, opts CAROptions) (CARResult, error) {
	if len(paths) == 0 {
		return CARResult{}, errors.New("no input paths given")
	}
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.ChunkSize < 1 || opts.ChunkSize > int64(chunker.ChunkSizeLimit) {
		return CARResult{}, fmt.Errorf("chunk size %d outside 1..%d", opts.ChunkSize, chunker.ChunkSizeLimit)
	}
	seen := make(map[string]bool)
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			return CARResult{}, fmt.Errorf("reading input: %w", err)
		}
		if len(paths) > 1 {
			name := filepath.Base(filepath.Clean(p))
			if seen[name] {
				return CARResult{}, fmt.Errorf("two inputs are named %q; they cannot share the wrapping directory", name)
			}
			seen[name] = true
		}
	}

	tmp := out + ".partial"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return CARResult{}, fmt.Errorf("creating CAR: %w", err)
	}
	res, err := writeCAR(ctx, f, paths, opts)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing CAR: %w", cerr)
	}
	if err == nil {
		// The header was written with a placeholder root of the same
		// encoded length; put the real one in.
		if rerr := carv2.ReplaceRootsInFile(tmp, []cid.Cid{res.Root}); rerr != nil {
			err = fmt.Errorf("writing the CAR root: %w", rerr)
		}
	}
	if err == nil {
		if rerr := os.Rename(tmp, out); rerr != nil {
			err = fmt.Errorf("moving the CAR into place: %w", rerr)
		}
	}
	if err != nil {
		_ = os.Remove(tmp)
		return CARResult{}, err
	}
	return res, nil
}

// placeholderRoot stands in the CAR header until the root is known. Every
// root CreateCAR makes is a CIDv1 with a one-byte codec and a sha2-256
// multihash, so the real header has the same length.
func placeholderRoot() cid.Cid {
	mh, _ := multihash.Sum(nil, multihash.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, mh)
}

func writeCAR(ctx context.Context, f *os.File, paths []string, opts CAROptions) (CARResult, error) {
	sc, err := storage.NewReadableWritable(f, []cid.Cid{placeholderRoot()}, carv2.WriteAsCarV1(true))
	if err != nil {
		return CARResult{}, fmt.Errorf("starting CAR: %w", err)
	}
	b := &dagBuilder{car: &carDAG{sc: sc}, opts: opts}
	var root ipld.Node
	if len(paths) == 1 {
		root, err = b.add(ctx, paths[0])
	} else {
		root, err = b.wrap(ctx, paths)
	}
	if err != nil {
		return CARResult{}, err
	}
	if root.Cid().Prefix().MhType != multihash.SHA2_256 || root.Cid().Version() != 1 {
		return CARResult{}, fmt.Errorf("unexpected root CID %s", root.Cid())
	}
	if err := sc.Finalize(); err != nil {
		return CARResult{}, fmt.Errorf("finishing CAR: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return CARResult{}, fmt.Errorf("finishing CAR: %w", err)
	}
	return CARResult{Root: root.Cid(), Size: st.Size(), Blocks: b.car.blocks, DataBytes: b.read}, nil
}

// dagBuilder imports files and directories into a carDAG.
type dagBuilder struct {
	car  *carDAG
	opts CAROptions
	read int64
}

// add imports one path.
func (b *dagBuilder) add(ctx context.Context, path string) (ipld.Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	switch {
	case fi.Mode().IsRegular():
		return b.addFile(ctx, path)
	case fi.IsDir():
		return b.addDir(ctx, path)
	case fi.Mode()&fs.ModeSymlink != 0:
		return b.addSymlink(ctx, path)
	default:
		return nil, fmt.Errorf("%s: cannot import a %s", path, fi.Mode().Type())
	}
}

func (b *dagBuilder) addFile(ctx context.Context, path string) (ipld.Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	defer f.Close()
	r := &progressReader{ctx: ctx, r: f, b: b}
	params := helpers.DagBuilderParams{
		Dagserv:    b.car,
		Maxlinks:   DefaultLinksPerNode,
		RawLeaves:  true,
		CidBuilder: cidBuilder,
	}
	db, err := params.New(chunker.NewSizeSplitter(r, b.opts.ChunkSize))
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", path, err)
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", path, err)
	}
	return nd, nil
}

func (b *dagBuilder) addDir(ctx context.Context, path string) (ipld.Node, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	dir, err := b.newDir()
	if err != nil {
		return nil, err
	}
	for _, e := range entries { // ReadDir sorts by name
		nd, err := b.add(ctx, filepath.Join(path, e.Name()))
		if err != nil {
			return nil, err
		}
		if err := dir.AddChild(ctx, e.Name(), nd); err != nil {
			return nil, fmt.Errorf("adding %s to its directory: %w", filepath.Join(path, e.Name()), err)
		}
	}
	return b.finishDir(dir, path)
}

// wrap imports several paths into one directory.
func (b *dagBuilder) wrap(ctx context.Context, paths []string) (ipld.Node, error) {
	dir, err := b.newDir()
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		nd, err := b.add(ctx, p)
		if err != nil {
			return nil, err
		}
		if err := dir.AddChild(ctx, filepath.Base(filepath.Clean(p)), nd); err != nil {
			return nil, fmt.Errorf("adding %s to the wrapping directory: %w", p, err)
		}
	}
	return b.finishDir(dir, "the wrapping directory")
}

func (b *dagBuilder) newDir() (uio.Directory, error) {
	dir, err := uio.NewDirectory(b.car,
		uio.WithCidBuilder(cidBuilder),
		uio.WithSizeEstimationMode(uio.SizeEstimationBlock))
	if err != nil {
		return nil, fmt.Errorf("making a directory: %w", err)
	}
	dir.SetHAMTShardingSize(hamtShardingSize)
	return dir, nil
}

func (b *dagBuilder) finishDir(dir uio.Directory, what string) (ipld.Node, error) {
	nd, err := dir.GetNode()
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", what, err)
	}
	if err := b.car.Add(context.Background(), nd); err != nil {
		return nil, fmt.Errorf("writing %s: %w", what, err)
	}
	return nd, nil
}

func (b *dagBuilder) addSymlink(ctx context.Context, path string) (ipld.Node, error) {
	target, err := os.Readlink(path)
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	data, err := ft.SymlinkData(target)
	if err != nil {
		return nil, fmt.Errorf("encoding symlink %s: %w", path, err)
	}
	nd := merkledag.NodeWithData(data)
	if err := nd.SetCidBuilder(cidBuilder); err != nil {
		return nil, fmt.Errorf("encoding symlink %s: %w", path, err)
	}
	if err := b.car.Add(ctx, nd); err != nil {
		return nil, fmt.Errorf("writing symlink %s: %w", path, err)
	}
	return nd, nil
}

// progressReader counts the bytes read, reports them and stops when the
// context is done.
type progressReader struct {
	ctx context.Context
	r   io.Reader
	b   *dagBuilder
}

func (p *progressReader) Read(buf []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(buf)
	p.b.read += int64(n)
	if n > 0 && p.b.opts.Progress != nil {
		p.b.opts.Progress(p.b.read)
	}
	return n, err
}

// carDAG is an ipld.DAGService over a CAR being written: Add appends the
// block (once), Get reads it back from the file.
type carDAG struct {
	sc     *storage.StorageCar
	blocks int
}

var _ ipld.DAGService = (*carDAG)(nil)

func (d *carDAG) Add(ctx context.Context, nd ipld.Node) error {
	key := nd.Cid().KeyString()
	has, err := d.sc.Has(ctx, key)
	if err != nil {
		return fmt.Errorf("checking block %s: %w", nd.Cid(), err)
	}
	if has {
		return nil
	}
	if err := d.sc.Put(ctx, key, nd.RawData()); err != nil {
		return fmt.Errorf("writing block %s: %w", nd.Cid(), err)
	}
	d.blocks++
	return nil
}

func (d *carDAG) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		if err := d.Add(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

func (d *carDAG) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	data, err := d.sc.Get(ctx, c.KeyString())
	if err != nil {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	blk, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		return nil, fmt.Errorf("reading block %s back: %w", c, err)
	}
	switch c.Type() {
	case cid.Raw:
		return merkledag.DecodeRawBlock(blk)
	case cid.DagProtobuf:
		return merkledag.DecodeProtobufBlock(blk)
	default:
		return nil, fmt.Errorf("block %s: unexpected codec 0x%x", c, c.Type())
	}
}

func (d *carDAG) GetMany(ctx context.Context, cids []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cids))
	for _, c := range cids {
		nd, err := d.Get(ctx, c)
		out <- &ipld.NodeOption{Node: nd, Err: err}
	}
	close(out)
	return out
}

func (d *carDAG) Remove(context.Context, cid.Cid) error {
	return errors.New("blocks cannot be removed from a CAR being written")
}

func (d *carDAG) RemoveMany(context.Context, []cid.Cid) error {
	return errors.New("blocks cannot be removed from a CAR being written")
}
