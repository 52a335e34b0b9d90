// Package carv1 writes CARv1 streams: a header naming the roots, then one
// section (uvarint length, CID, block data) per block. Reading CARs is left
// to go-car; writing them by hand keeps a served or generated CAR a plain
// stream with no buffering or index.
package carv1

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
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
