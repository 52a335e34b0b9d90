package chain

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

func mustAddr(t testing.TB, s string) address.Address {
	t.Helper()
	a, err := address.NewFromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// specMessage is SPEC.md §5's message.
func specMessage(t testing.TB) *Message {
	params, _ := hex.DecodeString("820102")
	return &Message{
		Version:    0,
		To:         mustAddr(t, "f01000"),
		From:       mustAddr(t, "f01001"),
		Nonce:      7,
		Value:      FIL(1),
		GasLimit:   1000000,
		GasFeeCap:  big.NewInt(100000),
		GasPremium: big.NewInt(1000),
		Method:     2,
		Params:     params,
	}
}

func TestMessageVector(t *testing.T) {
	m := specMessage(t)
	b, err := m.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(b), "8a004300e8074300e9070749000de0b6b3a76400001a000f424044000186a0430003e80243820102"; got != want {
		t.Fatalf("CBOR\n got %s\nwant %s", got, want)
	}
	c, err := m.Cid()
	if err != nil {
		t.Fatal(err)
	}
	if c.String() != "bafy2bzacedyosdfz6tcraxlc6i4rblgeavj5lpmvpoezdgyxaelqwhbwaq24o" {
		t.Fatalf("CID %s", c)
	}
	var back Message
	if err := back.UnmarshalCBOR(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if c2, _ := back.Cid(); c2 != c {
		t.Fatal("decode changed the message")
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}

	sm := &SignedMessage{Message: *m, Signature: crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: bytes.Repeat([]byte{0xab}, 65)}}
	sc, err := sm.Cid()
	if err != nil {
		t.Fatal(err)
	}
	if sc.String() != "bafy2bzacec5mb6tnrw2djyezgn2lifgvii4qj64dkz3m53qrn5frwufw5dwgy" {
		t.Fatalf("signed CID %s", sc)
	}
	sm.Signature = crypto.Signature{Type: crypto.SigTypeBLS, Data: bytes.Repeat([]byte{0xab}, 96)}
	if bc, _ := sm.Cid(); bc != c {
		t.Fatalf("BLS signed message CID %s, want the message's %s", bc, c)
	}
}

func TestSignMessage(t *testing.T) {
	m := specMessage(t)
	c, _ := m.Cid()
	var got []byte
	sm, err := SignMessage(m, func(data []byte) (*crypto.Signature, error) {
		got = data
		return &crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: bytes.Repeat([]byte{0xab}, 65)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, c.Bytes()) {
		t.Fatal("signer was not given the message CID bytes")
	}
	if sc, _ := sm.Cid(); sc.String() != "bafy2bzacec5mb6tnrw2djyezgn2lifgvii4qj64dkz3m53qrn5frwufw5dwgy" {
		t.Fatalf("signed CID %s", sc)
	}
	if _, err := SignMessage(&Message{}, nil); err == nil {
		t.Fatal("signed a message without addresses")
	}
}

func TestDealProposalVector(t *testing.T) {
	piece, _ := cid.Decode("baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi")
	label, err := market.NewLabelFromString("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi")
	if err != nil {
		t.Fatal(err)
	}
	p := market.DealProposal{
		PieceCID: piece, PieceSize: 512, Client: mustAddr(t, "f01001"), Provider: mustAddr(t, "f01000"),
		Label: label, StartEpoch: 10000, EndEpoch: 528400,
		StoragePricePerEpoch: big.Zero(), ProviderCollateral: big.Zero(), ClientCollateral: big.Zero(),
	}
	var buf bytes.Buffer
	if err := p.MarshalCBOR(&buf); err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(buf.Bytes()), "8bd82a5828000181e203922020496dae0cc9e265efe5a006e80626a5dc5c409e5d3155c13984caf6c8d5cfd605190200f44300e9074300e807783b62616679626569676479727a74357366703775646d37687537367568377932366e6633656675796c71616266336f636c67747179353566627a64691927101a00081010404040"; got != want {
		t.Fatalf("proposal CBOR\n got %s\nwant %s", got, want)
	}
	sp := market.ClientDealProposal{Proposal: p, ClientSignature: crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: bytes.Repeat([]byte{0xcd}, 65)}}
	buf.Reset()
	if err := sp.MarshalCBOR(&buf); err != nil {
		t.Fatal(err)
	}
	// Signed proposals use the default dag-cbor CID (sha2-256).
	c, err := cid.V1Builder{Codec: cid.DagCBOR, MhType: multihash.SHA2_256}.Sum(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if c.String() != "bafyreigmoyamt4wmmfanjf5grvvwokwcqdtfkrvfc5rp4bp5vtomh4xtsu" {
		t.Fatalf("signed proposal CID %s", c)
	}
}

func TestMessageCheck(t *testing.T) {
	bad := map[string]func(m *Message){
		"version":      func(m *Message) { m.Version = 1 },
		"no to":        func(m *Message) { m.To = address.Undef },
		"no from":      func(m *Message) { m.From = address.Undef },
		"nil value":    func(m *Message) { m.Value = big.Int{} },
		"neg value":    func(m *Message) { m.Value = big.NewInt(-1) },
		"huge value":   func(m *Message) { m.Value = big.Add(TotalFilecoin(), big.NewInt(1)) },
		"neg feecap":   func(m *Message) { m.GasFeeCap = big.NewInt(-1) },
		"premium>cap":  func(m *Message) { m.GasPremium = big.NewInt(200000) },
		"zero gas":     func(m *Message) { m.GasLimit = 0 },
		"too much gas": func(m *Message) { m.GasLimit = BlockGasLimit + 1 },
		"nil premium":  func(m *Message) { m.GasPremium = big.Int{} },
		"nil fee cap":  func(m *Message) { m.GasFeeCap = big.Int{} },
		"neg premium":  func(m *Message) { m.GasPremium = big.NewInt(-1) },
	}
	for name, f := range bad {
		m := specMessage(t)
		f(m)
		if err := m.Check(); err == nil {
			t.Errorf("%s: passed", name)
		}
	}
}

func TestReceiptCBOR(t *testing.T) {
	root, _ := cid.Decode("bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4")
	for _, r := range []MessageReceipt{
		{ExitCode: 0, Return: []byte{1, 2}, GasUsed: 9},
		{ExitCode: 16, GasUsed: -5, EventsRoot: &root},
	} {
		b, err := r.Serialize()
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != 0x84 {
			t.Fatalf("receipt is not a 4-tuple: %x", b)
		}
		var back MessageReceipt
		if err := back.UnmarshalCBOR(bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip %+v != %+v", back, r)
		}
	}
	// The pre-FIP-0049 3-tuple [0, h'0102', 9].
	var v0 MessageReceipt
	if err := v0.UnmarshalCBOR(bytes.NewReader([]byte{0x83, 0x00, 0x42, 1, 2, 0x09})); err != nil {
		t.Fatal(err)
	}
	if v0.GasUsed != 9 || !bytes.Equal(v0.Return, []byte{1, 2}) || v0.EventsRoot != nil {
		t.Fatalf("v0 receipt %+v", v0)
	}
	// Exactly [0, h'', 0, null].
	b, _ := (&MessageReceipt{}).Serialize()
	if hex.EncodeToString(b) != "84004000f6" {
		t.Fatalf("empty receipt %x", b)
	}
}

func TestBlockHeaderCBOR(t *testing.T) {
	var ts TipSet
	if err := json.Unmarshal(readLotus(t, "ChainHead"), &ts); err != nil {
		t.Fatal(err)
	}
	bh := ts.Blocks()[0]
	b, err := bh.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0x90 {
		t.Fatalf("header is not a 16-tuple: %x", b[:1])
	}
	// The recorded head is a real mainnet block: its CID is in the tipset.
	c, err := bh.Cid()
	if err != nil {
		t.Fatal(err)
	}
	if c != ts.Cids()[0] {
		t.Fatalf("block CID %s, recorded %s", c, ts.Cids()[0])
	}
	var back BlockHeader
	if err := back.UnmarshalCBOR(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if c2, _ := back.Cid(); c2 != c {
		t.Fatal("CBOR round trip changed the header")
	}
}

func readLotus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "lotus", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLotusJSON decodes responses recorded from Lotus' API documentation
// into our types and encodes them again: the JSON must come out the same,
// so no field is lost, renamed or added.
func TestLotusJSON(t *testing.T) {
	for name, v := range map[string]interface{}{
		"ChainHead":                         new(TipSet),
		"StateMinerInfo":                    new(MinerInfo),
		"StateWaitMsg":                      new(MsgLookup),
		"StateSearchMsg":                    new(MsgLookup),
		"StateMarketStorageDeal":            new(MarketDeal),
		"MpoolPushMessage":                  new(SignedMessage),
		"GasEstimateMessageGas":             new(Message),
		"StateSectorGetInfo":                new(SectorOnChainInfo),
		"StateSectorPreCommitInfo":          new(SectorPreCommitOnChainInfo),
		"StateMarketBalance":                new(MarketBalance),
		"StateDealProviderCollateralBounds": new(DealCollateralBounds),
		"StateVerifiedClientStatus":         new(abi.StoragePower),
		"WalletBalance":                     new(big.Int),
		"WalletSign":                        new(crypto.Signature),
	} {
		t.Run(name, func(t *testing.T) {
			in := readLotus(t, name)
			if err := json.Unmarshal(in, v); err != nil {
				t.Fatal(err)
			}
			out, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var a, b interface{}
			if err := json.Unmarshal(in, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("JSON differs\nlotus: %s\n  ours: %s", compact(in), out)
			}
		})
	}
}

func TestMessageSendSpecJSON(t *testing.T) {
	// Lotus' documented example parameter of MpoolPushMessage.
	in := `{"MaxFee":"0","MsgUuid":"07070707-0707-0707-0707-070707070707","MaximizeFeeCap":true}`
	var s MessageSendSpec
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(&s)
	if string(out) != in {
		t.Fatalf("got %s", out)
	}
	v := APIVersion{Version: "1.28.0+mainnet", APIVersion: 0x020300, BlockDelay: 30}
	out, _ = json.Marshal(v)
	if string(out) != `{"Version":"1.28.0+mainnet","APIVersion":131840,"BlockDelay":30}` {
		t.Fatalf("version %s", out)
	}
}

func compact(b []byte) string {
	var buf bytes.Buffer
	_ = json.Compact(&buf, b)
	return buf.String()
}

func TestTipSetKeyJSON(t *testing.T) {
	b, _ := json.Marshal(EmptyTSK)
	if string(b) != "[]" {
		t.Fatalf("empty key %s", b)
	}
	var k TipSetKey
	if err := json.Unmarshal([]byte(`[{"/":"bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4"}]`), &k); err != nil {
		t.Fatal(err)
	}
	if len(k.Cids()) != 1 {
		t.Fatal(k)
	}
	if err := json.Unmarshal([]byte(`null`), &k); err != nil || !k.IsEmpty() {
		t.Fatalf("null key: %v %v", k, err)
	}
}

func TestFIL(t *testing.T) {
	for in, want := range map[string]string{
		"1":           "1000000000000000000",
		"1.5":         "1500000000000000000",
		"1.5 FIL":     "1500000000000000000",
		"0.000001fil": "1000000000000",
		"7 attofil":   "7",
		"12afil":      "12",
		"-2":          "-2000000000000000000",
		"0":           "0",
	} {
		got, err := ParseFIL(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got.String() != want {
			t.Fatalf("%q: %s, want %s", in, got, want)
		}
	}
	for _, in := range []string{"", "abc", "1.5 btc", "0.5 attofil", "1e3", "1/2", "1..2", "0.0000000000000000001"} {
		if _, err := ParseFIL(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
	for a, want := range map[string]string{"0": "0 FIL", "1500000000000000000": "1.5 FIL", "1": "0.000000000000000001 FIL", "2000000000000000000": "2 FIL", "-500000000000000000": "-0.5 FIL"} {
		v, _ := big.FromString(a)
		if got := FormatFIL(v); got != want {
			t.Errorf("%s: %q, want %q", a, got, want)
		}
	}
	if FormatFIL(big.Int{}) != "0 FIL" {
		t.Error("nil amount")
	}
	if FIL(3).String() != "3000000000000000000" {
		t.Error("FIL(3)")
	}
}
