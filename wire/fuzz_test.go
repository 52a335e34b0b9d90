package wire

import (
	"bytes"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
)

// fuzzDecode is the property every decoder must keep on arbitrary bytes:
// no panic and bounded reading; and when what was accepted re-encodes and
// decodes again, its encoding is stable. (Missing keys decode to zero
// values that need not encode: an undefined CID, a signature of type 0. The
// market validates those before using them.)
func fuzzDecode[T any, PT interface {
	*T
	Message
}](t *testing.T, b []byte) {
	var v T
	if err := Read(bytes.NewReader(b), PT(&v), 64<<10); err != nil {
		return
	}
	var enc bytes.Buffer
	if err := PT(&v).MarshalCBOR(&enc); err != nil {
		return
	}
	var v2 T
	if err := Read(bytes.NewReader(enc.Bytes()), PT(&v2), 0); err != nil {
		return
	}
	var enc2 bytes.Buffer
	if err := PT(&v2).MarshalCBOR(&enc2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc.Bytes(), enc2.Bytes()) {
		t.Fatalf("encoding not stable:\n%x\n%x", enc.Bytes(), enc2.Bytes())
	}
}

func FuzzDealParams(f *testing.F) {
	dp := sampleDealParams(f)
	f.Add(encode(f, &dp))
	dp.IsOffline, dp.Transfer = true, Transfer{}
	f.Add(encode(f, &dp))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzDecode[DealParams](t, b) })
}

func FuzzDealStatusRequest(f *testing.F) {
	f.Add(encode(f, &DealStatusRequest{DealUUID: uuid.New(), Signature: crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: bytes.Repeat([]byte{7}, 65)}}))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzDecode[DealStatusRequest](t, b) })
}

func FuzzAskRequest(f *testing.F) {
	a, _ := address.NewIDAddress(1000)
	f.Add(encode(f, &AskRequest{Miner: a}))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzDecode[AskRequest](t, b) })
}

// The client decodes the provider's answers: they are outside bytes too.

func FuzzDealResponse(f *testing.F) {
	f.Add(encode(f, &DealResponse{Message: "deal rejected"}))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzDecode[DealResponse](t, b) })
}

func FuzzDealStatusResponse(f *testing.F) {
	dp := sampleDealParams(f)
	f.Add(encode(f, &DealStatusResponse{DealUUID: dp.DealUUID, DealStatus: &DealStatus{Status: "Accepted", Proposal: dp.ClientDealProposal.Proposal, SignedProposalCid: dp.DealDataRoot}}))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzDecode[DealStatusResponse](t, b) })
}

func FuzzAskResponse(f *testing.F) {
	f.Add(encode(f, &AskResponse{}))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzDecode[AskResponse](t, b) })
}

func FuzzQueryResponse(f *testing.F) {
	f.Add(encode(f, &QueryResponse{Protocols: []Protocol{{Name: "http", Addresses: [][]byte{{4, 127, 0, 0, 1}}}}}))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzDecode[QueryResponse](t, b) })
}
