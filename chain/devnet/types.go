package devnet

import (
	"fmt"
	"io"

	"github.com/filecoin-project/go-state-types/abi"
	miner13 "github.com/filecoin-project/go-state-types/builtin/v13/miner"
	cbg "github.com/whyrusleeping/cbor-gen"
)

// Actor types that go-state-types does not have (FRC46TokenReceived,
// encoded by cbor-gen) or has only as bare slice types, which the actors
// encode as plain CBOR arrays ("transparent" structs).

// FRC46TokenReceived is what an FRC-46 token passes to the receiver hook of
// the actor it sends tokens to (the payload of UniversalReceiverParams, as
// frc46_token encodes it): who sent them, to whom, which actor moved them,
// how many, and the operator's data (for the verified registry, the
// AllocationRequests). It encodes as a CBOR tuple.
type FRC46TokenReceived struct {
	From         uint64 // actor ID of the tokens' owner
	To           uint64 // actor ID of the receiver
	Operator     uint64 // actor ID of the caller that moved them
	Amount       abi.TokenAmount
	OperatorData []byte
	TokenData    []byte
}

// sectorChangesParams is SectorContentChangedParams: the changes of each
// sector, as a CBOR array.
type sectorChangesParams []miner13.SectorChanges

// MarshalCBOR writes the changes as a CBOR array.
func (p *sectorChangesParams) MarshalCBOR(w io.Writer) error {
	cw := cbg.NewCborWriter(w)
	if err := cw.WriteMajorTypeHeader(cbg.MajArray, uint64(len(*p))); err != nil {
		return err
	}
	for i := range *p {
		if err := (*p)[i].MarshalCBOR(cw); err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalCBOR reads what MarshalCBOR writes.
func (p *sectorChangesParams) UnmarshalCBOR(r io.Reader) error {
	cr := cbg.NewCborReader(r)
	n, err := readArrayHeader(cr)
	if err != nil {
		return err
	}
	out := make(sectorChangesParams, n)
	for i := range out {
		if err := out[i].UnmarshalCBOR(cr); err != nil {
			return fmt.Errorf("sector change %d: %w", i, err)
		}
	}
	*p = out
	return nil
}

// sectorChangesReturn is SectorContentChangedReturn: for each sector, for
// each piece, whether the receiver accepted it.
type sectorChangesReturn [][]bool

// MarshalCBOR writes the answers as a CBOR array of arrays of booleans.
func (r *sectorChangesReturn) MarshalCBOR(w io.Writer) error {
	cw := cbg.NewCborWriter(w)
	if err := cw.WriteMajorTypeHeader(cbg.MajArray, uint64(len(*r))); err != nil {
		return err
	}
	for _, sec := range *r {
		if err := cw.WriteMajorTypeHeader(cbg.MajArray, uint64(len(sec))); err != nil {
			return err
		}
		for _, ok := range sec {
			if err := cbg.WriteBool(cw, ok); err != nil {
				return err
			}
		}
	}
	return nil
}

// UnmarshalCBOR reads what MarshalCBOR writes.
func (r *sectorChangesReturn) UnmarshalCBOR(rd io.Reader) error {
	cr := cbg.NewCborReader(rd)
	n, err := readArrayHeader(cr)
	if err != nil {
		return err
	}
	out := make(sectorChangesReturn, n)
	for i := range out {
		m, err := readArrayHeader(cr)
		if err != nil {
			return fmt.Errorf("sector %d: %w", i, err)
		}
		out[i] = make([]bool, m)
		for j := range out[i] {
			var b cbg.CborBool
			if err := b.UnmarshalCBOR(cr); err != nil {
				return fmt.Errorf("sector %d piece %d: %w", i, j, err)
			}
			out[i][j] = bool(b)
		}
	}
	*r = out
	return nil
}

// readArrayHeader reads the header of a CBOR array of at most
// cbg.MaxLength items.
func readArrayHeader(cr *cbg.CborReader) (int, error) {
	maj, n, err := cr.ReadHeader()
	if err != nil {
		return 0, err
	}
	if maj != cbg.MajArray {
		return 0, fmt.Errorf("expected a CBOR array, got major type %d", maj)
	}
	if n > cbg.MaxLength {
		return 0, fmt.Errorf("array of %d items is too long", n)
	}
	return int(n), nil
}
