package client

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/wallet"
)

func mustAddr(t *testing.T, s string) address.Address {
	t.Helper()
	a, err := address.NewFromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestBuildProposalSpecVector(t *testing.T) {
	// SPEC §5: the proposal as Lotus' types encode it.
	spec := ProposalSpec{
		PieceCID:           cid.MustParse("baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"),
		PieceSize:          512,
		Client:             mustAddr(t, "f01001"),
		Provider:           mustAddr(t, "f01000"),
		PayloadCID:         cid.MustParse("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"),
		StartEpoch:         10000,
		Duration:           518400,
		PricePerEpoch:      big.Zero(),
		ProviderCollateral: big.Zero(),
	}
	p, err := BuildProposal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := p.MarshalCBOR(&buf); err != nil {
		t.Fatal(err)
	}
	const want = "8bd82a5828000181e203922020496dae0cc9e265efe5a006e80626a5dc5c409e5d3155c13984caf6c8d5cfd605190200f44300e9074300e807783b62616679626569676479727a74357366703775646d37687537367568377932366e6633656675796c71616266336f636c67747179353566627a64691927101a00081010404040"
	if got := hex.EncodeToString(buf.Bytes()); got != want {
		t.Fatalf("proposal CBOR\n got %s\nwant %s", got, want)
	}
}

func TestSignProposalVerifies(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ks")
	w, err := wallet.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{wallet.TypeSecp256k1, wallet.TypeBLS} {
		addr, err := w.New(typ)
		if err != nil {
			t.Fatal(err)
		}
		p, err := BuildProposal(ProposalSpec{
			PieceCID:   cid.MustParse("baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"),
			PieceSize:  512,
			Client:     addr,
			Provider:   mustAddr(t, "f01000"),
			PayloadCID: cid.MustParse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
			StartEpoch: 100, Duration: DefaultDuration,
			PricePerEpoch: big.NewInt(7), ProviderCollateral: big.NewInt(3),
		})
		if err != nil {
			t.Fatal(err)
		}
		if p.EndEpoch != 100+DefaultDuration || p.ClientCollateral.Sign() != 0 {
			t.Fatalf("end %d, client collateral %s", p.EndEpoch, p.ClientCollateral)
		}
		if s, _ := p.Label.ToString(); s != "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku" {
			t.Fatalf("label %q", s)
		}
		signed, err := SignProposal(w, p)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := signed.Proposal.MarshalCBOR(&buf); err != nil {
			t.Fatal(err)
		}
		if err := wallet.Verify(&signed.ClientSignature, addr, buf.Bytes()); err != nil {
			t.Fatalf("%s signature does not verify: %v", typ, err)
		}
		// A changed proposal must not verify with the same signature.
		p.StoragePricePerEpoch = big.NewInt(8)
		buf.Reset()
		_ = p.MarshalCBOR(&buf)
		if err := wallet.Verify(&signed.ClientSignature, addr, buf.Bytes()); err == nil {
			t.Fatalf("%s signature verifies over a changed proposal", typ)
		}
	}
	// A client whose key is not in the wallet cannot sign.
	p, _ := BuildProposal(ProposalSpec{Client: mustAddr(t, "f1ksu3ktw4xhyaoltwr546b3epfs5wxxqfyyxipwi"), Duration: 1, PayloadCID: cid.MustParse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"), PricePerEpoch: big.Zero(), ProviderCollateral: big.Zero()})
	if _, err := SignProposal(w, p); err == nil {
		t.Fatal("signed with a key the wallet does not hold")
	}
}

func validRequest(t *testing.T) DealRequest {
	return DealRequest{
		Provider:   mustAddr(t, "f01000"),
		Client:     mustAddr(t, "f1ksu3ktw4xhyaoltwr546b3epfs5wxxqfyyxipwi"),
		PieceCID:   cid.MustParse("baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"),
		PieceSize:  2048,
		CARSize:    1500,
		PayloadCID: cid.MustParse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
		HTTPURL:    "http://127.0.0.1:9999/data.car",
	}
}

func TestDealRequestValidate(t *testing.T) {
	if r := validRequest(t); r.Validate() != nil {
		t.Fatalf("valid request refused: %v", r.Validate())
	}
	neg := big.NewInt(-1)
	for name, tc := range map[string]struct {
		mod  func(r *DealRequest)
		want string
	}{
		"no provider":        {func(r *DealRequest) { r.Provider = address.Undef }, "provider"},
		"provider not f0":    {func(r *DealRequest) { r.Provider = r.Client }, "miner ID"},
		"commp not a piece":  {func(r *DealRequest) { r.PieceCID = r.PayloadCID }, "--commp"},
		"piece size not 2^n": {func(r *DealRequest) { r.PieceSize = 3000 }, "--piece-size"},
		"piece too small":    {func(r *DealRequest) { r.CARSize = 2100 }, "needs a piece"},
		"no car size":        {func(r *DealRequest) { r.CARSize = 0 }, "--car-size"},
		"no payload":         {func(r *DealRequest) { r.PayloadCID = cid.Undef }, "--payload-cid"},
		"short duration":     {func(r *DealRequest) { r.Duration = 1000 }, "--duration"},
		"long duration":      {func(r *DealRequest) { r.Duration = MaxDuration + 1 }, "--duration"},
		"negative start":     {func(r *DealRequest) { r.StartEpoch = -5 }, "--start-epoch"},
		"negative price":     {func(r *DealRequest) { r.PricePerGiBEpoch = &neg }, "--storage-price"},
		"negative coll":      {func(r *DealRequest) { r.ProviderCollateral = &neg }, "--provider-collateral"},
		"no url":             {func(r *DealRequest) { r.HTTPURL = "" }, "--http-url"},
		"bad url":            {func(r *DealRequest) { r.HTTPURL = "ftp://x/y" }, "--http-url"},
		"offline with url":   {func(r *DealRequest) { r.Offline = true }, "--offline"},
	} {
		r := validRequest(t)
		tc.mod(&r)
		err := r.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, tc.want)
		}
	}
	r := validRequest(t)
	r.Offline, r.HTTPURL = true, ""
	if err := r.Validate(); err != nil {
		t.Fatalf("offline deal refused: %v", err)
	}
}

func TestParseHTTPHeaders(t *testing.T) {
	h, err := ParseHTTPHeaders([]string{"Authorization=Bearer a=b", "X-Y="})
	if err != nil || h["Authorization"] != "Bearer a=b" || h["X-Y"] != "" || len(h) != 2 {
		t.Fatalf("%v %v", h, err)
	}
	if _, err := ParseHTTPHeaders([]string{"novalue"}); err == nil {
		t.Fatal("header without = accepted")
	}
	if h, err := ParseHTTPHeaders(nil); h != nil || err != nil {
		t.Fatal("no headers should give nil")
	}
}

func TestPricePerEpoch(t *testing.T) {
	for _, tc := range []struct {
		perGiB int64
		size   abi.PaddedPieceSize
		want   int64
	}{
		{50_000_000, 1 << 30, 50_000_000},
		{50_000_000, 32 << 30, 1_600_000_000},
		{50_000_000, 2048, 96}, // 95.37 rounded up
		{0, 2048, 0},
		{1 << 20, 1 << 10, 1},
	} {
		if got := PricePerEpoch(big.NewInt(tc.perGiB), tc.size); got.Int64() != tc.want {
			t.Errorf("PricePerEpoch(%d, %d) = %s, want %d", tc.perGiB, tc.size, got, tc.want)
		}
	}
}

func TestInspectCAR(t *testing.T) {
	dir := t.TempDir()
	data := randomBytes(5, 400_000)
	writeFile(t, filepath.Join(dir, "in"), data)
	out := filepath.Join(dir, "in.car")
	res, err := CreateCAR(t.Context(), []string{filepath.Join(dir, "in")}, out, CAROptions{ChunkSize: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	info, err := InspectCAR(t.Context(), out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Root != res.Root || int64(info.Size) != res.Size || info.Blocks != res.Blocks {
		t.Fatalf("inspect %+v vs create %+v", info, res)
	}
	if info.PieceSize != 512<<10 || !strings.HasPrefix(info.PieceCID.String(), "baga6ea4seaq") {
		t.Fatalf("piece %s of %d bytes", info.PieceCID, info.PieceSize)
	}

	// Not a CAR at all.
	writeFile(t, filepath.Join(dir, "text"), []byte("this is not a CAR file, just text\n"))
	if _, err := InspectCAR(t.Context(), filepath.Join(dir, "text"), nil); !errors.Is(err, ErrNotCAR) {
		t.Fatalf("text file: %v", err)
	}
	// A flipped byte in a block's data.
	b, _ := os.ReadFile(out)
	b[len(b)-10] ^= 1
	writeFile(t, filepath.Join(dir, "bad.car"), b)
	if _, err := InspectCAR(t.Context(), filepath.Join(dir, "bad.car"), nil); !errors.Is(err, ErrNotCAR) {
		t.Fatalf("corrupted CAR: %v", err)
	}
	// Cut short.
	writeFile(t, filepath.Join(dir, "short.car"), b[:len(b)/2])
	if _, err := InspectCAR(t.Context(), filepath.Join(dir, "short.car"), nil); !errors.Is(err, ErrNotCAR) {
		t.Fatalf("truncated CAR: %v", err)
	}
}
