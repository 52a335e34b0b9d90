// Package carv1 writes CARv1 streams: a header naming the roots, then one
// section (uvarint length, CID, block data) per block. Reading CARs is left
// to go-car; writing them by hand keeps a served or generated CAR a plain
// stream with no buffering or index. WriteFileDAG generates the CAR of a
// UnixFS file of any size, for benchmarks and tests.
package carv1

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"
)

// Header returns the dag-cbor CARv1 header {roots: [...], version: 1}
// with its uvarint length prefix.
func Header(roots []cid.Cid) []byte {
	var body []byte
	body = append(body, 0xa2)                          // map(2)
	body = append(body, 0x65, 'r', 'o', 'o', 't', 's') // "roots"
	body = cborHead(body, 4, uint64(len(roots)))
	for _, r := range roots {
		b := r.Bytes()
		body = append(body, 0xd8, 0x2a) // tag(42)
		body = cborHead(body, 2, uint64(len(b)+1))
		body = append(body, 0) // multibase identity prefix
		body = append(body, b...)
	}
	body = append(body, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01) // "version": 1
	out := binary.AppendUvarint(nil, uint64(len(body)))
	return append(out, body...)
}

func cborHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n < 1<<8:
		return append(b, m|24, byte(n))
	case n < 1<<16:
		return append(b, m|25, byte(n>>8), byte(n))
	case n < 1<<32:
		return append(b, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, m|27), n)
	}
}

// WriteHeader writes the CARv1 header for roots and returns its length.
func WriteHeader(w io.Writer, roots []cid.Cid) (int, error) {
	n, err := w.Write(Header(roots))
	if err != nil {
		return n, fmt.Errorf("writing CAR header: %w", err)
	}
	return n, nil
}

// SectionHeader returns the uvarint length and CID bytes that precede a
// block's data in its CAR section.
func SectionHeader(c cid.Cid, dataLen int) []byte {
	cb := c.Bytes()
	out := binary.AppendUvarint(make([]byte, 0, len(cb)+10), uint64(len(cb)+dataLen))
	return append(out, cb...)
}

// WriteBlock writes one CAR section and returns its length.
func WriteBlock(w io.Writer, c cid.Cid, data []byte) (int, error) {
	h := SectionHeader(c, len(data))
	n, err := w.Write(h)
	if err == nil {
		var m int
		m, err = w.Write(data)
		n += m
	}
	if err != nil {
		return n, fmt.Errorf("writing CAR block %s: %w", c, err)
	}
	return n, nil
}

// FileDAG describes a UnixFS file DAG written by WriteFileDAG.
type FileDAG struct {
	Root   cid.Cid   // the file's root node
	Leaves []cid.Cid // the raw leaves, in file order
	Size   uint64    // the file's length
}

// fileDAGFanout is the links per node of WriteFileDAG's balanced layout
// (as kubo's importer uses).
const fileDAGFanout = 174

// WriteFileDAG writes to w a CARv1 rooted at a UnixFS file of size
// pseudo-random bytes (the same for the same seed): raw leaves of leafSize
// bytes under dag-pb nodes of a balanced layout, in depth-first order, each
// block once. It holds only the inner nodes in memory, so it makes DAGs of
// any size for benchmarks and tests.
func WriteFileDAG(w io.Writer, size uint64, leafSize int, seed uint64) (FileDAG, error) {
	if size == 0 || leafSize <= 0 {
		return FileDAG{}, fmt.Errorf("file DAG of %d bytes in leaves of %d", size, leafSize)
	}
	n := int((size + uint64(leafSize) - 1) / uint64(leafSize))
	leafLen := func(i int) int { return int(min(uint64(leafSize), size-uint64(i)*uint64(leafSize))) }
	buf := make([]byte, leafSize)
	leaf := func(i int) []byte {
		b := buf[:leafLen(i)]
		var key [32]byte
		binary.LittleEndian.PutUint64(key[:], seed)
		binary.LittleEndian.PutUint64(key[8:], uint64(i))
		rand.NewChaCha8(key).Read(b)
		return b
	}
	fd := FileDAG{Size: size, Leaves: make([]cid.Cid, n)}
	type node struct {
		c        cid.Cid
		data     []byte
		children []int // indexes into the level below
		span     uint64
	}
	level := make([]node, n)
	for i := range n {
		b := leaf(i)
		mh, err := multihash.Sum(b, multihash.SHA2_256, -1)
		if err != nil {
			return FileDAG{}, err
		}
		fd.Leaves[i] = cid.NewCidV1(cid.Raw, mh)
		level[i] = node{c: fd.Leaves[i], span: uint64(len(b))}
	}
	levels := [][]node{level}
	for len(level) > 1 || len(levels) == 1 {
		var up []node
		for start := 0; start < len(level); start += fileDAGFanout {
			end := min(start+fileDAGFanout, len(level))
			fsn := unixfs.NewFSNode(unixfs.TFile)
			pn := new(merkledag.ProtoNode)
			pn.SetCidBuilder(merkledag.V1CidPrefix())
			var nd node
			for j := start; j < end; j++ {
				fsn.AddBlockSize(level[j].span)
				if err := pn.AddRawLink("", &ipld.Link{Cid: level[j].c, Size: level[j].span}); err != nil {
					return FileDAG{}, err
				}
				nd.children = append(nd.children, j)
				nd.span += level[j].span
			}
			fb, err := fsn.GetBytes()
			if err != nil {
				return FileDAG{}, err
			}
			pn.SetData(fb)
			nd.c, nd.data = pn.Cid(), pn.RawData()
			up = append(up, nd)
		}
		level = up
		levels = append(levels, level)
	}
	fd.Root = level[0].c
	if _, err := WriteHeader(w, []cid.Cid{fd.Root}); err != nil {
		return FileDAG{}, err
	}
	var walk func(depth, i int) error
	walk = func(depth, i int) error {
		if depth == 0 {
			_, err := WriteBlock(w, fd.Leaves[i], leaf(i))
			return err
		}
		nd := levels[depth][i]
		if _, err := WriteBlock(w, nd.c, nd.data); err != nil {
			return err
		}
		for _, j := range nd.children {
			if err := walk(depth-1, j); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(len(levels)-1, 0); err != nil {
		return FileDAG{}, err
	}
	return fd, nil
}
