package retrieval

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/datamodel"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/multicodec"
	basicnode "github.com/ipld/go-ipld-prime/node/basic"
	"github.com/multiformats/go-multihash"

	// Codecs whose links the DAG walks follow.
	_ "github.com/ipld/go-codec-dagpb"
	_ "github.com/ipld/go-ipld-prime/codec/dagcbor"
	_ "github.com/ipld/go-ipld-prime/codec/dagjson"
	_ "github.com/ipld/go-ipld-prime/codec/raw"

	"github.com/ferry-fil/ferry/index"
)

// maxBlockSize bounds the blocks read from pieces or from a CAR: IPFS
// blocks are at most a few MiB.
const maxBlockSize = 8 << 20

// maxNesting bounds how deep a block's data model is walked for links.
const maxNesting = 256

// ErrBlockNotFound is returned when no indexed piece holds a block.
var ErrBlockNotFound = errors.New("block not found")

// blk is a block: its CID and data.
type blk struct {
	c    cid.Cid
	data []byte
}

// readSection reads the block c from the CAR section at loc.Offset of pr,
// checking that the section is the one the index promised and that the data
// hashes to c.
func readSection(pr index.PieceReader, loc index.Location, c cid.Cid) ([]byte, error) {
	if loc.Size > maxBlockSize {
		return nil, fmt.Errorf("block %s: indexed size %d exceeds %d", c, loc.Size, maxBlockSize)
	}
	buf := make([]byte, binary.MaxVarintLen64+256+int(loc.Size))
	if rem := pr.Size() - int64(loc.Offset); rem < int64(len(buf)) {
		if rem <= 0 {
			return nil, fmt.Errorf("block %s: offset %d is past the piece's end", c, loc.Offset)
		}
		buf = buf[:rem]
	}
	n, err := pr.ReadAt(buf, int64(loc.Offset))
	if n < len(buf) && err != nil {
		return nil, fmt.Errorf("reading block %s at %d: %w", c, loc.Offset, err)
	}
	return parseSection(buf[:n], loc.Size, c)
}

// parseSection decodes the CAR section at the start of buf, whose block
// data is size bytes, and checks it holds c.
func parseSection(buf []byte, size uint64, c cid.Cid) ([]byte, error) {
	l, k := binary.Uvarint(buf)
	if k <= 0 {
		return nil, fmt.Errorf("block %s: bad section length", c)
	}
	rest := buf[k:]
	cl, sc, err := cid.CidFromBytes(rest)
	if err != nil {
		return nil, fmt.Errorf("block %s: section CID: %w", c, err)
	}
	if l < uint64(cl) || l-uint64(cl) != size || uint64(len(rest)-cl) < size {
		return nil, fmt.Errorf("block %s: section of %d bytes does not match the indexed size %d", c, l, size)
	}
	if !bytes.Equal(sc.Hash(), c.Hash()) {
		return nil, fmt.Errorf("block %s: the section holds %s", c, sc)
	}
	data := rest[cl : cl+int(size)]
	if err := verifyBlock(c, data); err != nil {
		return nil, err
	}
	return data, nil
}

// verifyBlock checks that data hashes to c's multihash.
func verifyBlock(c cid.Cid, data []byte) error {
	dec, err := multihash.Decode(c.Hash())
	if err != nil {
		return fmt.Errorf("block %s: %w", c, err)
	}
	sum, err := multihash.Sum(data, dec.Code, dec.Length)
	if err != nil {
		return fmt.Errorf("block %s: hashing: %w", c, err)
	}
	if !bytes.Equal(sum, c.Hash()) {
		return fmt.Errorf("block %s: data does not match its hash", c)
	}
	return nil
}

// isIdentity reports whether c inlines its data in an identity multihash.
func isIdentity(c cid.Cid) bool { return c.Prefix().MhType == multihash.IDENTITY }

// identityData returns the data inlined in an identity CID.
func identityData(c cid.Cid) ([]byte, error) {
	dec, err := multihash.Decode(c.Hash())
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", c, err)
	}
	return dec.Digest, nil
}

// links returns the CIDs block data of codec c.Type() links to, in order.
// Codecs without a decoder here (raw among them) have no links.
func links(c cid.Cid, data []byte) ([]cid.Cid, error) {
	if c.Type() == cid.Raw {
		return nil, nil
	}
	dec, err := multicodec.LookupDecoder(c.Type())
	if err != nil {
		return nil, nil // opaque to us: a leaf
	}
	nb := basicnode.Prototype.Any.NewBuilder()
	if err := dec(nb, bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("decoding block %s: %w", c, err)
	}
	var out []cid.Cid
	if err := collectLinks(nb.Build(), &out, 0); err != nil {
		return nil, fmt.Errorf("block %s: %w", c, err)
	}
	return out, nil
}

func collectLinks(n datamodel.Node, out *[]cid.Cid, depth int) error {
	if depth > maxNesting {
		return errors.New("data nested too deeply")
	}
	switch n.Kind() {
	case datamodel.Kind_Link:
		l, err := n.AsLink()
		if err != nil {
			return err
		}
		if cl, ok := l.(cidlink.Link); ok {
			*out = append(*out, cl.Cid)
		}
	case datamodel.Kind_Map:
		it := n.MapIterator()
		for !it.Done() {
			_, v, err := it.Next()
			if err != nil {
				return err
			}
			if err := collectLinks(v, out, depth+1); err != nil {
				return err
			}
		}
	case datamodel.Kind_List:
		it := n.ListIterator()
		for !it.Done() {
			_, v, err := it.Next()
			if err != nil {
				return err
			}
			if err := collectLinks(v, out, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
