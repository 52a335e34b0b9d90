package client

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v16/datacap"
	"github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
)

// Allocation defaults and bounds: the verified registry's policy, which
// are also `boost allocate`'s defaults.
const (
	// DefaultTermMin is the shortest TermMin the registry accepts: 180
	// days.
	DefaultTermMin = abi.ChainEpoch(verifreg.MinimumVerifiedAllocationTerm)
	// DefaultTermMax is the longest TermMax the registry accepts: 5 years.
	DefaultTermMax = abi.ChainEpoch(verifreg.MaximumVerifiedAllocationTerm)
	// DefaultAllocationExpiration is how long after the chain head an
	// allocation may be claimed, and the most the registry accepts: 60
	// days.
	DefaultAllocationExpiration = abi.ChainEpoch(verifreg.MaximumVerifiedAllocationExpiration)
	// MinAllocationSize is the smallest allocation: 1 MiB.
	MinAllocationSize = abi.PaddedPieceSize(verifreg.MinimumVerifiedAllocationSize)
	// DefaultAllocationBatch is how many allocations one message makes at
	// most (boost allocate's --batch-size).
	DefaultAllocationBatch = 500
)

// ErrNotEnoughDataCap is returned when the client's DataCap cannot pay for
// the allocations asked for.
var ErrNotEnoughDataCap = errors.New("not enough DataCap")

// AllocationRequest is one allocation to make: DataCap for a provider to
// claim with a piece. Expiration is relative: epochs after the chain head.
type AllocationRequest struct {
	Provider   address.Address
	PieceCID   cid.Cid // v1, or v2 (converted to v1)
	PieceSize  abi.PaddedPieceSize
	TermMin    abi.ChainEpoch
	TermMax    abi.ChainEpoch
	Expiration abi.ChainEpoch
}

// ParsePieceInfo reads boost allocate's --piece-info "cid=size", with the
// padded size in bytes.
func ParsePieceInfo(s string) (cid.Cid, abi.PaddedPieceSize, error) {
	c, sz, ok := strings.Cut(s, "=")
	if !ok {
		return cid.Undef, 0, fmt.Errorf("piece info %q is not pieceCid=paddedSize", s)
	}
	pc, err := cid.Parse(strings.TrimSpace(c))
	if err != nil {
		return cid.Undef, 0, fmt.Errorf("piece info %q: piece CID: %w", s, err)
	}
	size, err := strconv.ParseUint(strings.TrimSpace(sz), 10, 64)
	if err != nil {
		return cid.Undef, 0, fmt.Errorf("piece info %q: size: %w", s, err)
	}
	return pc, abi.PaddedPieceSize(size), nil
}

// ReadPieceFile reads boost allocate's --piece-file: CSV lines of
// pieceCid,pieceSize,miner,termMin,termMax,expiration (expiration relative
// to the chain head, as the flag).
func ReadPieceFile(r io.Reader) ([]AllocationRequest, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 6
	cr.TrimLeadingSpace = true
	cr.Comment = '#'
	var out []AllocationRequest
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the piece file: %w (want pieceCid,pieceSize,miner,termMin,termMax,expiration)", err)
		}
		line, _ := cr.FieldPos(0)
		for i, f := range rec {
			if strings.TrimSpace(f) == "" {
				return nil, fmt.Errorf("piece file line %d: column %d is empty", line, i+1)
			}
		}
		pc, size, err := ParsePieceInfo(rec[0] + "=" + rec[1])
		if err != nil {
			return nil, fmt.Errorf("piece file line %d: %w", line, err)
		}
		prov, err := address.NewFromString(strings.TrimSpace(rec[2]))
		if err != nil {
			return nil, fmt.Errorf("piece file line %d: miner %q: %w", line, rec[2], err)
		}
		var epochs [3]abi.ChainEpoch
		for i, f := range rec[3:] {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("piece file line %d: %s %q is not a number of epochs", line, []string{"termMin", "termMax", "expiration"}[i], f)
			}
			epochs[i] = abi.ChainEpoch(v)
		}
		out = append(out, AllocationRequest{Provider: prov, PieceCID: pc, PieceSize: size, TermMin: epochs[0], TermMax: epochs[1], Expiration: epochs[2]})
	}
	if len(out) == 0 {
		return nil, errors.New("the piece file lists no pieces")
	}
	return out, nil
}

// check validates a request on its own and returns its piece CID v1.
func (r *AllocationRequest) check() (cid.Cid, error) {
	pc := r.PieceCID
	if pc.Defined() && pc.Type() == cid.Raw {
		v1, _, size, err := piece.V2ToV1(pc)
		if err != nil {
			return cid.Undef, fmt.Errorf("piece %s: %w", pc, err)
		}
		if r.PieceSize != 0 && r.PieceSize != size {
			return cid.Undef, fmt.Errorf("piece %s is %d bytes padded, not %d", pc, size, r.PieceSize)
		}
		pc, r.PieceSize = v1, size
	} else if _, err := piece.ParseCID(pc); err != nil {
		return cid.Undef, fmt.Errorf("piece %s: %w", pc, err)
	}
	switch {
	case r.Provider.Protocol() != address.ID:
		return cid.Undef, fmt.Errorf("provider %s is not a miner ID address (f0…)", r.Provider)
	case piece.ValidatePadded(r.PieceSize) != nil:
		return cid.Undef, fmt.Errorf("piece %s: %d is not a padded piece size (a power of two of at least 128)", pc, r.PieceSize)
	case r.PieceSize < MinAllocationSize:
		return cid.Undef, fmt.Errorf("piece %s is %d bytes: allocations are at least %d bytes (1 MiB)", pc, r.PieceSize, MinAllocationSize)
	case r.TermMin < DefaultTermMin:
		return cid.Undef, fmt.Errorf("term min %d is below the registry's minimum of %d epochs (180 days)", r.TermMin, DefaultTermMin)
	case r.TermMax > DefaultTermMax:
		return cid.Undef, fmt.Errorf("term max %d is above the registry's maximum of %d epochs (5 years)", r.TermMax, DefaultTermMax)
	case r.TermMin > r.TermMax:
		return cid.Undef, fmt.Errorf("term min %d is larger than term max %d", r.TermMin, r.TermMax)
	case r.Expiration <= 0 || r.Expiration > DefaultAllocationExpiration:
		return cid.Undef, fmt.Errorf("expiration %d must be 1 to %d epochs (60 days) after now", r.Expiration, DefaultAllocationExpiration)
	}
	return pc, nil
}

// Allocated is an allocation made, with the request it came from.
type Allocated struct {
	ID      chain.AllocationID
	Message cid.Cid // the message that made it
	Request verifreg.AllocationRequest
}

// Allocate makes allocations from client's DataCap (a key of the repo's
// wallet): it checks every
// request (piece, size within the provider's sector size, terms), that the
// provider is a miner and that the client has the DataCap for all of
// them, then sends DataCap Transfers to the verified registry, batch
// requests per message, and waits for each. sent, when not nil, is told
// each message's CID as it is pushed. The allocations come back in request
// order. A batch that fails stops Allocate: the allocations of the
// batches before it exist (they are returned with the error).
func Allocate(ctx context.Context, n chain.FullNode, r *Repo, client address.Address, reqs []AllocationRequest, batch int, sent func(cid.Cid)) ([]Allocated, error) {
	if len(reqs) == 0 {
		return nil, errors.New("no allocations asked for")
	}
	if batch <= 0 {
		batch = DefaultAllocationBatch
	}
	head, err := n.ChainHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the chain head: %w", err)
	}
	sectorSizes := map[address.Address]abi.SectorSize{}
	out := make([]verifreg.AllocationRequest, 0, len(reqs))
	total := big.Zero()
	for i := range reqs {
		r := reqs[i]
		pc, err := r.check()
		if err != nil {
			return nil, fmt.Errorf("allocation %d: %w", i+1, err)
		}
		ss, ok := sectorSizes[r.Provider]
		if !ok {
			mi, err := n.StateMinerInfo(ctx, r.Provider, chain.EmptyTSK)
			if err != nil {
				return nil, fmt.Errorf("allocation %d: provider %s is not a miner on this chain: %w", i+1, r.Provider, err)
			}
			ss = mi.SectorSize
			sectorSizes[r.Provider] = ss
		}
		if uint64(r.PieceSize) > uint64(ss) {
			return nil, fmt.Errorf("allocation %d: piece %s (%d bytes) does not fit provider %s's %d-byte sectors", i+1, pc, r.PieceSize, r.Provider, ss)
		}
		id, err := address.IDFromAddress(r.Provider)
		if err != nil {
			return nil, fmt.Errorf("allocation %d: provider %s: %w", i+1, r.Provider, err)
		}
		out = append(out, verifreg.AllocationRequest{
			Provider: abi.ActorID(id), Data: pc, Size: r.PieceSize,
			TermMin: r.TermMin, TermMax: r.TermMax, Expiration: head.Height() + r.Expiration,
		})
		total = big.Add(total, big.NewInt(int64(r.PieceSize)))
	}
	dc, err := n.StateVerifiedClientStatus(ctx, client, chain.EmptyTSK)
	if err != nil {
		return nil, fmt.Errorf("reading the DataCap of %s: %w", client, err)
	}
	if dc == nil {
		return nil, fmt.Errorf("%w: %s is not a verified client (it has no DataCap)", ErrNotEnoughDataCap, client)
	}
	if dc.LessThan(total) {
		return nil, fmt.Errorf("%w: the allocations need %s bytes, %s has %s", ErrNotEnoughDataCap, total, client, dc)
	}

	var done []Allocated
	for start := 0; start < len(out); start += batch {
		part := out[start:min(start+batch, len(out))]
		msg, err := AllocateMessage(client, part)
		if err != nil {
			return done, err
		}
		mc, err := SendMessage(ctx, n, r, msg)
		if err != nil {
			return done, fmt.Errorf("sending allocations %d to %d: %w", start+1, start+len(part), err)
		}
		if sent != nil {
			sent(mc)
		}
		ml, err := WaitMessage(ctx, n, mc)
		if err != nil {
			return done, fmt.Errorf("allocations %d to %d: %w", start+1, start+len(part), err)
		}
		ids, err := NewAllocations(ml.Receipt.Return)
		if err != nil {
			return done, fmt.Errorf("allocations %d to %d (message %s): %w", start+1, start+len(part), mc, err)
		}
		if len(ids) != len(part) {
			return done, fmt.Errorf("message %s made %d allocations for %d requests", mc, len(ids), len(part))
		}
		for j, id := range ids {
			done = append(done, Allocated{ID: id, Message: ml.Message, Request: part[j]})
		}
	}
	return done, nil
}

// AllocateMessage is the message that makes allocations from client's
// DataCap: a DataCap Transfer of their total size (10^18 tokens per byte)
// to the verified registry, with the requests as operator data.
func AllocateMessage(client address.Address, reqs []verifreg.AllocationRequest) (*chain.Message, error) {
	total := big.Zero()
	for _, r := range reqs {
		total = big.Add(total, big.NewInt(int64(r.Size)))
	}
	var op bytes.Buffer
	ar := verifreg.AllocationRequests{Allocations: reqs, Extensions: []verifreg.ClaimExtensionRequest{}}
	if err := ar.MarshalCBOR(&op); err != nil {
		return nil, fmt.Errorf("encoding allocation requests: %w", err)
	}
	var params bytes.Buffer
	tp := datacap.TransferParams{To: builtin.VerifiedRegistryActorAddr, Amount: big.Mul(total, builtin.TokenPrecision), OperatorData: op.Bytes()}
	if err := tp.MarshalCBOR(&params); err != nil {
		return nil, fmt.Errorf("encoding the DataCap transfer: %w", err)
	}
	return &chain.Message{
		To: builtin.DatacapActorAddr, From: client, Value: big.Zero(),
		Method: builtin.MethodsDatacap.TransferExported, Params: params.Bytes(),
		GasFeeCap: big.Zero(), GasPremium: big.Zero(),
	}, nil
}

// NewAllocations reads the IDs of the allocations a DataCap transfer to
// the verified registry made from its return value.
func NewAllocations(ret []byte) ([]chain.AllocationID, error) {
	var tr datacap.TransferReturn
	if err := tr.UnmarshalCBOR(bytes.NewReader(ret)); err != nil {
		return nil, fmt.Errorf("decoding the DataCap transfer's return: %w", err)
	}
	var ar verifreg.AllocationsResponse
	if err := ar.UnmarshalCBOR(bytes.NewReader(tr.RecipientData)); err != nil {
		return nil, fmt.Errorf("decoding the verified registry's allocations response: %w", err)
	}
	return ar.NewAllocations, nil
}
