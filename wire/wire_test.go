package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multiaddr"
	cbg "github.com/whyrusleeping/cbor-gen"
)

// The DealProposal vector of SPEC.md §5, computed with Lotus' types.
const specProposalHex = "8bd82a5828000181e203922020496dae0cc9e265efe5a006e80626a5dc5c409e5d3155c13984caf6c8d5cfd605190200f44300e9074300e807783b62616679626569676479727a74357366703775646d37687537367568377932366e6633656675796c71616266336f636c67747179353566627a64691927101a00081010404040"

func specProposal(t testing.TB) market.DealProposal {
	t.Helper()
	b, err := hex.DecodeString(specProposalHex)
	if err != nil {
		t.Fatal(err)
	}
	var p market.DealProposal
	if err := p.UnmarshalCBOR(bytes.NewReader(b)); err != nil {
		t.Fatalf("decoding spec proposal: %v", err)
	}
	return p
}

func specClientProposal(t testing.TB) market.ClientDealProposal {
	return market.ClientDealProposal{
		Proposal:        specProposal(t),
		ClientSignature: crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: bytes.Repeat([]byte{0xcd}, 65)},
	}
}

func sampleDealParams(t testing.TB) DealParams {
	root, err := cid.Decode("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi")
	if err != nil {
		t.Fatal(err)
	}
	params, err := json.Marshal(HTTPRequest{URL: "http://127.0.0.1:8080/data.car", Headers: map[string]string{"Authorization": "Bearer x"}})
	if err != nil {
		t.Fatal(err)
	}
	return DealParams{
		DealUUID:           uuid.MustParse("6f5c4a7e-3a1b-4c2d-9e8f-0123456789ab"),
		ClientDealProposal: specClientProposal(t),
		DealDataRoot:       root,
		Transfer:           Transfer{Type: TransferHTTP, ClientID: "c1", Params: params, Size: 1016},
		RemoveUnsealedCopy: true,
		SkipIPNIAnnounce:   true,
	}
}

func encode(t testing.TB, m cbg.CBORMarshaler) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// roundTrip encodes in, decodes into out, and checks the re-encoding is
// byte-identical.
func roundTrip(t *testing.T, in cbg.CBORMarshaler, out Message) {
	t.Helper()
	b := encode(t, in)
	if err := Read(bytes.NewReader(b), out, 0); err != nil {
		t.Fatalf("decoding %T: %v", in, err)
	}
	if b2 := encode(t, out); !bytes.Equal(b, b2) {
		t.Fatalf("%T re-encodes differently:\n%x\n%x", in, b, b2)
	}
}

func TestSpecSignedProposalCID(t *testing.T) {
	p := specClientProposal(t)
	c, err := SignedProposalCID(&p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "bafyreigmoyamt4wmmfanjf5grvvwokwcqdtfkrvfc5rp4bp5vtomh4xtsu"; c.String() != want {
		t.Fatalf("signed proposal CID %s, want %s", c, want)
	}
}

func TestRoundTrips(t *testing.T) {
	dp := sampleDealParams(t)
	var gotDP DealParams
	roundTrip(t, &dp, &gotDP)
	if gotDP.DealUUID != dp.DealUUID || !gotDP.RemoveUnsealedCopy || !gotDP.SkipIPNIAnnounce ||
		!gotDP.DealDataRoot.Equals(dp.DealDataRoot) || !reflect.DeepEqual(gotDP.Transfer, dp.Transfer) {
		t.Fatalf("DealParams changed in a round trip: %+v", gotDP)
	}
	if gotDP.ClientDealProposal.Proposal.PieceSize != 512 || gotDP.ClientDealProposal.Proposal.EndEpoch != 528400 {
		t.Fatalf("proposal changed in a round trip: %+v", gotDP.ClientDealProposal.Proposal)
	}

	offline := DealParams{DealUUID: uuid.New(), IsOffline: true, ClientDealProposal: specClientProposal(t), DealDataRoot: dp.DealDataRoot}
	var gotOff DealParams
	roundTrip(t, &offline, &gotOff)
	if !gotOff.IsOffline || gotOff.Transfer.Type != "" {
		t.Fatalf("offline deal changed: %+v", gotOff)
	}

	roundTrip(t, &DealResponse{Accepted: false, Message: "deal rejected: piece size too large"}, &DealResponse{})

	sr := DealStatusRequest{DealUUID: dp.DealUUID, Signature: crypto.Signature{Type: crypto.SigTypeBLS, Data: bytes.Repeat([]byte{1}, 96)}}
	var gotSR DealStatusRequest
	roundTrip(t, &sr, &gotSR)
	if !reflect.DeepEqual(sr, gotSR) {
		t.Fatalf("status request changed: %+v", gotSR)
	}

	pub, _ := cid.Decode("bafy2bzacedyosdfz6tcraxlc6i4rblgeavj5lpmvpoezdgyxaelqwhbwaq24o")
	spc, _ := SignedProposalCID(&dp.ClientDealProposal)
	resp := DealStatusResponse{
		DealUUID: dp.DealUUID,
		DealStatus: &DealStatus{
			Status: "Published", SealingStatus: "WaitDeals", Proposal: dp.ClientDealProposal.Proposal,
			SignedProposalCid: spc, PublishCid: &pub, ChainDealID: 42,
		},
		TransferSize: 1016, NBytesReceived: 1016,
	}
	var gotResp DealStatusResponse
	roundTrip(t, &resp, &gotResp)
	if gotResp.DealStatus == nil || gotResp.DealStatus.PublishCid == nil || !gotResp.DealStatus.PublishCid.Equals(pub) || gotResp.DealStatus.ChainDealID != 42 {
		t.Fatalf("status response changed: %+v", gotResp.DealStatus)
	}
	roundTrip(t, &DealStatusResponse{DealUUID: dp.DealUUID, Error: "signature verification failed"}, &DealStatusResponse{})

	maddr, _ := address.NewIDAddress(1000)
	ask := StorageAsk{Price: big.NewInt(50_000_000), VerifiedPrice: big.NewInt(5_000_000), MinPieceSize: 256, MaxPieceSize: 32 << 30, Miner: maddr, Timestamp: 10, Expiry: 1000, SeqNo: 3}
	sig := crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: bytes.Repeat([]byte{2}, 65)}
	var gotAR AskResponse
	roundTrip(t, &AskResponse{Ask: &SignedStorageAsk{Ask: &ask, Signature: &sig}}, &gotAR)
	if gotAR.Ask == nil || gotAR.Ask.Ask == nil || !gotAR.Ask.Ask.Price.Equals(ask.Price) || gotAR.Ask.Ask.MaxPieceSize != ask.MaxPieceSize {
		t.Fatalf("ask changed: %+v", gotAR.Ask)
	}
	var gotNil AskResponse
	roundTrip(t, &AskResponse{}, &gotNil)
	if gotNil.Ask != nil {
		t.Fatal("nil ask decoded as non-nil")
	}
	var gotReq AskRequest
	roundTrip(t, &AskRequest{Miner: maddr}, &gotReq)
	if gotReq.Miner != maddr {
		t.Fatalf("ask request miner %s", gotReq.Miner)
	}

	ma := multiaddr.StringCast("/ip4/127.0.0.1/tcp/7777/http")
	var gotQ QueryResponse
	roundTrip(t, &QueryResponse{Protocols: []Protocol{NewProtocol("http", ma)}}, &gotQ)
	addrs, err := gotQ.Protocols[0].Multiaddrs()
	if err != nil || len(addrs) != 1 || !addrs[0].Equal(ma) || gotQ.Protocols[0].Name != "http" {
		t.Fatalf("transports changed: %+v %v", gotQ, err)
	}
}

// TestCanonicalKeyOrder checks the encoding Boost produces: a map whose keys
// are sorted shorter first, then bytewise.
func TestCanonicalKeyOrder(t *testing.T) {
	dp := sampleDealParams(t)
	keys := mapKeys(t, encode(t, &dp))
	want := []string{"DealUUID", "Transfer", "IsOffline", "DealDataRoot", "SkipIPNIAnnounce", "ClientDealProposal", "RemoveUnsealedCopy"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	q := QueryResponse{Protocols: []Protocol{NewProtocol("http")}}
	b := encode(t, &q)
	// {"Protocols": [{"Name": "http", "Addresses": []}]}
	if want := "a16950726f746f636f6c7381a2644e616d6564687474706941646472657373657380"; hex.EncodeToString(b) != want {
		t.Fatalf("transports encoding %x, want %s", b, want)
	}
}

func mapKeys(t *testing.T, b []byte) []string {
	t.Helper()
	cr := cbg.NewCborReader(bytes.NewReader(b))
	maj, n, err := cr.ReadHeader()
	if err != nil || maj != cbg.MajMap {
		t.Fatalf("not a map: %v", err)
	}
	var keys []string
	for i := uint64(0); i < n; i++ {
		k, err := cbg.ReadString(cr)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
		if err := cbg.ScanForLinks(cr, func(cid.Cid) {}); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// mapBuilder writes a CBOR map by hand, the way another implementation
// would, in whatever key order and with whatever keys it likes.
type mapBuilder struct {
	buf bytes.Buffer
	n   int
	t   testing.TB
}

func (m *mapBuilder) key(k string) *cbg.CborWriter {
	m.n++
	cw := cbg.NewCborWriter(&m.buf)
	if err := cw.WriteMajorTypeHeader(cbg.MajTextString, uint64(len(k))); err != nil {
		m.t.Fatal(err)
	}
	if _, err := cw.WriteString(k); err != nil {
		m.t.Fatal(err)
	}
	return cw
}

func (m *mapBuilder) value(k string, v cbg.CBORMarshaler) {
	cw := m.key(k)
	if err := v.MarshalCBOR(cw); err != nil {
		m.t.Fatal(err)
	}
}

func (m *mapBuilder) raw(k string, b []byte) {
	m.key(k).Write(b)
}

func (m *mapBuilder) bytes() []byte {
	var out bytes.Buffer
	if err := cbg.NewCborWriter(&out).WriteMajorTypeHeader(cbg.MajMap, uint64(m.n)); err != nil {
		m.t.Fatal(err)
	}
	out.Write(m.buf.Bytes())
	return out.Bytes()
}

func cborBytes(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	if err := cbg.WriteByteArray(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func cborText(t testing.TB, s string) []byte {
	var out bytes.Buffer
	if err := cbg.NewCborWriter(&out).WriteMajorTypeHeader(cbg.MajTextString, uint64(len(s))); err != nil {
		t.Fatal(err)
	}
	out.WriteString(s)
	return out.Bytes()
}

// TestDecodeV120WithUnknownKey decodes a 1.2.0 DealParams (no
// RemoveUnsealedCopy, no SkipIPNIAnnounce) written in a non-canonical key
// order with an extra key carrying a nested value.
func TestDecodeV120WithUnknownKey(t *testing.T) {
	want := sampleDealParams(t)
	want.RemoveUnsealedCopy, want.SkipIPNIAnnounce = false, false

	id := want.DealUUID
	// An unknown key whose value is an array holding a map and a CID.
	var extra bytes.Buffer
	cw := cbg.NewCborWriter(&extra)
	cw.WriteMajorTypeHeader(cbg.MajArray, 3)
	cw.WriteMajorTypeHeader(cbg.MajMap, 1)
	extra.Write(cborText(t, "a"))
	extra.Write(cborBytes(t, []byte{0, 1, 2}))
	cbg.WriteCid(cw, want.DealDataRoot)
	cw.WriteMajorTypeHeader(cbg.MajNegativeInt, 6)
	m2 := &mapBuilder{t: t}
	m2.value("ClientDealProposal", &want.ClientDealProposal)
	m2.raw("DealUUID", cborBytes(t, id[:]))
	m2.raw("FutureField", extra.Bytes())
	m2.raw("IsOffline", []byte{0xf4})
	root := cbg.CborCid(want.DealDataRoot)
	m2.value("DealDataRoot", &root)
	m2.value("Transfer", &want.Transfer)
	b := m2.bytes()

	var got DealParams
	if err := Read(bytes.NewReader(b), &got, 0); err != nil {
		t.Fatalf("decoding a 1.2.0 DealParams with an unknown key: %v", err)
	}
	if !bytes.Equal(encode(t, &got), encode(t, &want)) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
}

func TestDecodeRejects(t *testing.T) {
	dp := sampleDealParams(t)
	good := encode(t, &dp)
	cases := map[string][]byte{
		"empty":         nil,
		"truncated":     good[:len(good)/2],
		"array not map": {0x82, 0x01, 0x02},
		"uuid too short": func() []byte {
			m := &mapBuilder{t: t}
			m.raw("DealUUID", cborBytes(t, []byte{1, 2, 3}))
			return m.bytes()
		}(),
		"bool not bool": func() []byte { m := &mapBuilder{t: t}; m.raw("IsOffline", []byte{0x01}); return m.bytes() }(),
		"huge map":      {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"huge byte string": func() []byte {
			m := &mapBuilder{t: t}
			m.raw("Transfer", []byte{0xa1, 0x66, 'P', 'a', 'r', 'a', 'm', 's', 0x5b, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
			return m.bytes()
		}(),
	}
	for name, b := range cases {
		var got DealParams
		if err := Read(bytes.NewReader(b), &got, 0); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// endless produces an ever-growing nest of CBOR arrays: a peer that never
// stops sending.
type endless struct{ off int }

func (e *endless) Read(p []byte) (int, error) {
	pat := []byte{0x99, 0x20, 0x00} // array of 8192 items
	for i := range p {
		p[i] = pat[e.off%3]
		e.off++
	}
	return len(p), nil
}

func TestOversized(t *testing.T) {
	dp := sampleDealParams(t)
	dp.Transfer.Params = bytes.Repeat([]byte("x"), 5000)
	b := encode(t, &dp)

	var got DealParams
	err := Read(bytes.NewReader(b), &got, 1024)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("limit 1024 on %d bytes: got %v, want ErrTooLarge", len(b), err)
	}
	if !strings.Contains(err.Error(), "size limit") {
		t.Fatalf("unclear error %q", err)
	}
	if err := Read(bytes.NewReader(b), &got, int64(len(b))); err != nil {
		t.Fatalf("message of exactly the limit: %v", err)
	}

	// An unknown key whose value never ends is cut off at MaxMessageSize.
	m := &mapBuilder{t: t}
	m.raw("DealUUID", cborBytes(t, make([]byte, 16)))
	head := m.bytes()
	head[0] = 0xa2 // two entries: DealUUID and the endless one
	head = append(head, cborText(t, "Junk")...)
	err = Read(io.MultiReader(bytes.NewReader(head), &endless{}), &got, 0)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless message: got %v, want ErrTooLarge", err)
	}
}

func TestHTTPRequestJSON(t *testing.T) {
	b, err := json.Marshal(HTTPRequest{URL: "https://example.com/a.car", Headers: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"URL":"https://example.com/a.car","Headers":{"k":"v"}}`; string(b) != want {
		t.Fatalf("HTTPRequest JSON %s, want %s", b, want)
	}
}

func TestStatusSigningBytes(t *testing.T) {
	id := uuid.New()
	b := StatusSigningBytes(id)
	mb, _ := id.MarshalBinary()
	if !bytes.Equal(b, mb) || len(b) != 16 {
		t.Fatalf("signing bytes %x, want %x", b, mb)
	}
}
