package chain

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/filecoin-project/go-state-types/exitcode"
	cbg "github.com/whyrusleeping/cbor-gen"
)

// MarshalCBOR encodes the receipt as Lotus encodes a receipt since FIP-0049
// (network version 18): the 4-tuple [ExitCode, Return, GasUsed, EventsRoot]
// with EventsRoot null when there are no events.
func (r *MessageReceipt) MarshalCBOR(w io.Writer) error {
	if r == nil {
		_, err := w.Write(cbg.CborNull)
		return err
	}
	cw := cbg.NewCborWriter(w)
	if err := cw.WriteMajorTypeHeader(cbg.MajArray, 4); err != nil {
		return err
	}
	if err := writeInt64(cw, int64(r.ExitCode)); err != nil {
		return err
	}
	if len(r.Return) > cbg.ByteArrayMaxLen {
		return fmt.Errorf("receipt return value is %d bytes, more than %d", len(r.Return), cbg.ByteArrayMaxLen)
	}
	if err := cw.WriteMajorTypeHeader(cbg.MajByteString, uint64(len(r.Return))); err != nil {
		return err
	}
	if _, err := cw.Write(r.Return); err != nil {
		return err
	}
	if err := writeInt64(cw, r.GasUsed); err != nil {
		return err
	}
	if r.EventsRoot == nil {
		_, err := cw.Write(cbg.CborNull)
		return err
	}
	return cbg.WriteCid(cw, *r.EventsRoot)
}

// UnmarshalCBOR decodes a receipt in either of Lotus' encodings: the
// 3-tuple of receipts before FIP-0049 or the 4-tuple after.
func (r *MessageReceipt) UnmarshalCBOR(rd io.Reader) (err error) {
	*r = MessageReceipt{}
	cr := cbg.NewCborReader(rd)
	defer func() {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}()
	maj, n, err := cr.ReadHeader()
	if err != nil {
		return err
	}
	if maj != cbg.MajArray || (n != 3 && n != 4) {
		return errors.New("receipt: want a CBOR array of 3 or 4 fields")
	}
	code, err := readInt64(cr)
	if err != nil {
		return fmt.Errorf("receipt ExitCode: %w", err)
	}
	r.ExitCode = exitcode.ExitCode(code)
	if r.Return, err = cbg.ReadByteArray(cr, cbg.ByteArrayMaxLen); err != nil {
		return fmt.Errorf("receipt Return: %w", err)
	}
	if len(r.Return) == 0 {
		r.Return = nil
	}
	if r.GasUsed, err = readInt64(cr); err != nil {
		return fmt.Errorf("receipt GasUsed: %w", err)
	}
	if n == 3 {
		return nil
	}
	b, err := cr.ReadByte()
	if err != nil {
		return err
	}
	if b == cbg.CborNull[0] {
		return nil
	}
	if err := cr.UnreadByte(); err != nil {
		return err
	}
	c, err := cbg.ReadCid(cr)
	if err != nil {
		return fmt.Errorf("receipt EventsRoot: %w", err)
	}
	r.EventsRoot = &c
	return nil
}

// Serialize returns the receipt's CBOR encoding.
func (r *MessageReceipt) Serialize() ([]byte, error) {
	var buf bytes.Buffer
	if err := r.MarshalCBOR(&buf); err != nil {
		return nil, fmt.Errorf("encoding receipt: %w", err)
	}
	return buf.Bytes(), nil
}

func writeInt64(cw *cbg.CborWriter, v int64) error {
	if v >= 0 {
		return cw.WriteMajorTypeHeader(cbg.MajUnsignedInt, uint64(v))
	}
	return cw.WriteMajorTypeHeader(cbg.MajNegativeInt, uint64(-v-1))
}

func readInt64(cr *cbg.CborReader) (int64, error) {
	maj, extra, err := cr.ReadHeader()
	if err != nil {
		return 0, err
	}
	if extra > 1<<63-1 {
		return 0, errors.New("integer overflows int64")
	}
	switch maj {
	case cbg.MajUnsignedInt:
		return int64(extra), nil
	case cbg.MajNegativeInt:
		return -1 - int64(extra), nil
	default:
		return 0, fmt.Errorf("want an integer, got CBOR major type %d", maj)
	}
}
