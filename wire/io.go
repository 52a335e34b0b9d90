package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"
	cbg "github.com/whyrusleeping/cbor-gen"
)

// MaxMessageSize bounds what Read accepts from a peer. The largest message,
// DealParams, carries a proposal with a label of at most a few hundred bytes
// and transfer parameters (a URL and headers); 4 MiB is far above anything
// honest and still small enough to hold in memory per stream.
const MaxMessageSize = 4 << 20

// ErrTooLarge is returned by Read when a message does not end within its
// size limit.
var ErrTooLarge = errors.New("message exceeds the size limit")

// Message is a wire message: anything cbor-gen made an encoder for.
type Message interface {
	cbg.CBORMarshaler
	cbg.CBORUnmarshaler
}

// Read decodes exactly one CBOR object from r into m, reading at most limit
// bytes (MaxMessageSize when limit ≤ 0). Bytes after the object are left
// unread only as far as buffering allows: use one stream per message.
func Read(r io.Reader, m cbg.CBORUnmarshaler, limit int64) error {
	if limit <= 0 {
		limit = MaxMessageSize
	}
	lr := &limitedReader{r: r, n: limit}
	if err := m.UnmarshalCBOR(bufio.NewReaderSize(lr, 4096)); err != nil {
		if lr.hit {
			return fmt.Errorf("decoding %T: %w (%d bytes)", m, ErrTooLarge, limit)
		}
		return fmt.Errorf("decoding %T: %w", m, err)
	}
	return nil
}

// Write encodes m to w.
func Write(w io.Writer, m cbg.CBORMarshaler) error {
	bw := bufio.NewWriter(w)
	if err := m.MarshalCBOR(bw); err != nil {
		return fmt.Errorf("encoding %T: %w", m, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("sending %T: %w", m, err)
	}
	return nil
}

// limitedReader is io.LimitedReader that remembers whether the limit was
// what ended the stream.
type limitedReader struct {
	r   io.Reader
	n   int64
	hit bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		l.hit = true
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// NewProtocol makes a transports entry from multiaddrs.
func NewProtocol(name string, addrs ...multiaddr.Multiaddr) Protocol {
	p := Protocol{Name: name, Addresses: make([][]byte, 0, len(addrs))}
	for _, a := range addrs {
		p.Addresses = append(p.Addresses, a.Bytes())
	}
	return p
}

// Multiaddrs parses the protocol's addresses.
func (p Protocol) Multiaddrs() ([]multiaddr.Multiaddr, error) {
	out := make([]multiaddr.Multiaddr, 0, len(p.Addresses))
	for i, b := range p.Addresses {
		a, err := multiaddr.NewMultiaddrBytes(b)
		if err != nil {
			return nil, fmt.Errorf("transport %q address %d: %w", p.Name, i, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// StatusSigningBytes returns what a client signs to ask for a deal's
// status: the 16 raw bytes of the deal UUID.
func StatusSigningBytes(id uuid.UUID) []byte {
	b := make([]byte, 16)
	copy(b, id[:])
	return b
}

// SignedProposalCID returns the CID Boost and the market actor give a
// signed proposal: dag-cbor, sha2-256, over the CBOR of the
// ClientDealProposal.
func SignedProposalCID(p *market.ClientDealProposal) (cid.Cid, error) {
	var buf bytes.Buffer
	if err := p.MarshalCBOR(&buf); err != nil {
		return cid.Undef, fmt.Errorf("encoding signed proposal: %w", err)
	}
	c, err := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: multihash.SHA2_256, MhLength: -1}.Sum(buf.Bytes())
	if err != nil {
		return cid.Undef, fmt.Errorf("hashing signed proposal: %w", err)
	}
	return c, nil
}
