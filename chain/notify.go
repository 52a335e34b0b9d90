package chain

import (
	"bytes"
	"errors"

	"github.com/filecoin-project/go-state-types/abi"
	cbg "github.com/whyrusleeping/cbor-gen"
)

// DealNotificationPayload is the payload of a piece manifest's
// notification to the storage market actor (f05) that activates deal id
// when the sector is proven with ProveCommitSectors3: the deal ID as a
// CBOR unsigned integer, as builtin-actors' market reads it.
func DealNotificationPayload(id abi.DealID) []byte {
	var buf bytes.Buffer
	_ = cbg.NewCborWriter(&buf).WriteMajorTypeHeader(cbg.MajUnsignedInt, uint64(id)) // a bytes.Buffer never fails
	return buf.Bytes()
}

// ParseDealNotificationPayload reads what DealNotificationPayload writes:
// a CBOR unsigned integer with nothing after it.
func ParseDealNotificationPayload(b []byte) (abi.DealID, error) {
	r := bytes.NewReader(b)
	maj, n, err := cbg.NewCborReader(r).ReadHeader()
	switch {
	case err != nil:
		return 0, err
	case maj != cbg.MajUnsignedInt:
		return 0, errors.New("deal notification payload is not a CBOR unsigned integer")
	case r.Len() != 0:
		return 0, errors.New("deal notification payload has bytes after the deal ID")
	}
	return abi.DealID(n), nil
}
