package mk20

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v9/verifreg"
	"github.com/ipfs/go-cid"
	"github.com/oklog/ulid/v2"

	"github.com/ferry-fil/ferry/wallet"
)

func newKey(t testing.TB, typ string) (wallet.KeyInfo, address.Address) {
	t.Helper()
	ki, err := wallet.Generate(typ)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ki.Address()
	if err != nil {
		t.Fatal(err)
	}
	return ki, a
}

func signer(ki wallet.KeyInfo) func([]byte) (*cryptoSig, error) {
	return func(b []byte) (*cryptoSig, error) { return wallet.Sign(ki, b) }
}

func TestAuthRoundTrip(t *testing.T) {
	at := time.Date(2025, 7, 15, 17, 0, 30, 0, time.UTC)
	for _, typ := range []string{wallet.TypeSecp256k1, wallet.TypeBLS} {
		ki, addr := newKey(t, typ)
		h, err := SignAuth(signer(ki), addr, "post", "/market/mk20/deal", at)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{wallet.TypeSecp256k1: KeySecp256k1, wallet.TypeBLS: KeyBLS}[typ]
		if !strings.HasPrefix(h, AuthScheme+want+":"+base64.StdEncoding.EncodeToString(addr.Bytes())+":") {
			t.Fatalf("%s header %q", typ, h)
		}
		for _, ok := range []time.Duration{0, 29 * time.Second, -30 * time.Second, time.Minute, -time.Minute, 89 * time.Second} {
			got, err := VerifyAuth(h, "POST", "/market/mk20/deal", at.Add(ok))
			if err != nil || got != addr {
				t.Errorf("%s at %+v: %s %v", typ, ok, got, err)
			}
		}
		for name, f := range map[string]func() (address.Address, error){
			"stale": func() (address.Address, error) {
				return VerifyAuth(h, "POST", "/market/mk20/deal", at.Add(2*time.Minute))
			},
			"early": func() (address.Address, error) {
				return VerifyAuth(h, "POST", "/market/mk20/deal", at.Add(-91*time.Second))
			},
			"other method": func() (address.Address, error) { return VerifyAuth(h, "GET", "/market/mk20/deal", at) },
			"other path":   func() (address.Address, error) { return VerifyAuth(h, "POST", "/market/mk20/status", at) },
		} {
			if _, err := f(); !errors.Is(err, ErrAuth) {
				t.Errorf("%s %s: %v", typ, name, err)
			}
		}
	}
}

// The digest is exactly SHA-256(address ‖ METHOD ‖ path ‖ minute).
func TestAuthDigestLayout(t *testing.T) {
	_, addr := newKey(t, wallet.TypeSecp256k1)
	at := time.Date(2025, 7, 15, 17, 0, 59, 999, time.FixedZone("x", 3600))
	got := AuthDigest(addr.Bytes(), "put", "/market/mk20/uploads/01ARZ3NDEKTSV4RRFFQ69G5FAV/1", at)
	msg := string(addr.Bytes()) + "PUT" + "/market/mk20/uploads/01ARZ3NDEKTSV4RRFFQ69G5FAV/1" + "2025-07-15T16:00:00Z"
	if want := sha256Sum([]byte(msg)); got != want {
		t.Fatalf("digest %x, want %x", got, want)
	}
	if AuthDigest(addr.Bytes(), "GET", "", at) != AuthDigest(addr.Bytes(), "GET", "/", at) {
		t.Fatal("an empty path is not signed as /")
	}
}

func TestParseAuthErrors(t *testing.T) {
	ki, addr := newKey(t, wallet.TypeSecp256k1)
	good, err := SignAuth(signer(ki), addr, "GET", "/x", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(strings.TrimPrefix(good, AuthScheme), ":", 3)
	for name, h := range map[string]string{
		"empty":          "",
		"bearer":         "Bearer abc",
		"two parts":      AuthScheme + parts[0] + ":" + parts[1],
		"key type":       AuthScheme + "ed25519:" + parts[1] + ":" + parts[2],
		"address base64": AuthScheme + parts[0] + ":!!:" + parts[2],
		"no address":     AuthScheme + parts[0] + "::" + parts[2],
		"address bytes":  AuthScheme + parts[0] + ":" + base64.StdEncoding.EncodeToString([]byte{9, 9}) + ":" + parts[2],
		"no signature":   AuthScheme + parts[0] + ":" + parts[1] + ":",
		"signature type": AuthScheme + parts[0] + ":" + parts[1] + ":" + base64.StdEncoding.EncodeToString([]byte{7, 1, 2}),
	} {
		if _, err := VerifyAuth(h, "GET", "/x", time.Now()); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Another key's signature with this address.
	other, _ := newKey(t, wallet.TypeSecp256k1)
	forged, _ := SignAuth(signer(other), addr, "GET", "/x", time.Now())
	if _, err := VerifyAuth(forged, "GET", "/x", time.Now()); !errors.Is(err, ErrAuth) {
		t.Errorf("forged: %v", err)
	}
}

// testPieceCID is the SPEC's v2 vector: 508 bytes in a 512-byte piece.
var testPieceCID = cid.MustParse("bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi")

func goodDeal(t testing.TB, client address.Address) *Deal {
	prov, _ := address.NewIDAddress(1001)
	start := abi.ChainEpoch(10000)
	return &Deal{
		Identifier: ulid.Make(),
		Client:     client.String(),
		Data: &DataSource{
			PieceCID:   testPieceCID,
			Format:     PieceDataFormat{Car: &FormatCar{}},
			SourceHTTP: &DataSourceHTTP{URLs: []HTTPURL{{URL: "http://127.0.0.1:8080/x.car", Headers: http.Header{"Authorization": {"Bearer x"}}}}},
		},
		Products: Products{
			DDOV1:       &DDOV1{Provider: prov, StartEpoch: &start, Duration: MinDuration},
			RetrievalV1: &RetrievalV1{Indexing: true, AnnouncePayload: true},
		},
	}
}

func TestValidate(t *testing.T) {
	_, client := newKey(t, wallet.TypeSecp256k1)
	_, other := newKey(t, wallet.TypeSecp256k1)
	if r := goodDeal(t, client).Validate(client); r != nil {
		t.Fatalf("good deal: %v", r)
	}
	v1 := cid.MustParse("baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi")
	zero := abi.ChainEpoch(0)
	noAlloc := verifreg.NoAllocationID
	alloc := verifreg.AllocationId(7)
	notify, _ := address.NewIDAddress(6)
	many := make([]HTTPURL, MaxURLs+1)
	for i := range many {
		many[i] = HTTPURL{URL: "http://127.0.0.1/x"}
	}
	headers := http.Header{}
	for i := 0; i <= MaxHeaders; i++ {
		headers.Set("X-H"+string(rune('a'+i)), "v")
	}
	for _, tc := range []struct {
		name string
		mod  func(d *Deal)
		code DealCode
	}{
		{"empty client", func(d *Deal) { d.Client = "" }, ErrBadProposal},
		{"other client", func(d *Deal) { d.Client = other.String() }, ErrBadProposal},
		{"no products", func(d *Deal) { d.Products = Products{} }, ErrProductValidationFailed},
		{"only retrieval", func(d *Deal) { d.Products.DDOV1 = nil }, ErrProductValidationFailed},
		{"pdp", func(d *Deal) { d.Products.DDOV1 = nil; d.Products.PDPV1 = &PDPV1{AddPiece: true} }, ErrUnsupportedProduct},
		{"ddo and pdp", func(d *Deal) { d.Products.PDPV1 = &PDPV1{} }, ErrUnsupportedProduct},
		{"no provider", func(d *Deal) { d.Products.DDOV1.Provider = address.Undef }, ErrProductValidationFailed},
		{"start 0", func(d *Deal) { d.Products.DDOV1.StartEpoch = &zero }, ErrProductValidationFailed},
		{"no allocation id", func(d *Deal) { d.Products.DDOV1.AllocationID = &noAlloc }, ErrProductValidationFailed},
		{"short", func(d *Deal) { d.Products.DDOV1.Duration = MinDuration - 1 }, ErrDurationTooShort},
		{"market address", func(d *Deal) { d.Products.DDOV1.MarketAddress = "f01234" }, ErrProductValidationFailed},
		{"payload without address", func(d *Deal) { d.Products.DDOV1.NotificationPayload = []byte{1} }, ErrProductValidationFailed},
		{"address without payload", func(d *Deal) { d.Products.DDOV1.NotificationAddress = notify }, ErrProductValidationFailed},
		{"no retrieval", func(d *Deal) { d.Products.RetrievalV1 = nil }, ErrProductValidationFailed},
		{"announce piece", func(d *Deal) { d.Products.RetrievalV1.AnnouncePiece = true }, ErrProductValidationFailed},
		{"announce without index", func(d *Deal) { d.Products.RetrievalV1.Indexing = false }, ErrProductValidationFailed},
		{"v1 piece cid", func(d *Deal) { d.Data.PieceCID = v1 }, ErrBadProposal},
		{"undefined piece cid", func(d *Deal) { d.Data.PieceCID = cid.Undef }, ErrBadProposal},
		{"no source", func(d *Deal) { d.Data.SourceHTTP = nil }, ErrBadProposal},
		{"two sources", func(d *Deal) { d.Data.SourceOffline = &DataSourceOffline{} }, ErrBadProposal},
		{"aggregate source", func(d *Deal) { d.Data.SourceHTTP = nil; d.Data.SourceAggregate = &DataSourceAggregate{} }, ErrUnsupportedDataSource},
		{"aggregate format", func(d *Deal) {
			d.Data.Format = PieceDataFormat{Aggregate: &FormatAggregate{Type: AggregateTypeV1}}
		}, ErrUnsupportedDataSource},
		{"aggregate type", func(d *Deal) { d.Data.Format = PieceDataFormat{Aggregate: &FormatAggregate{Type: 5}} }, ErrMalformedDataSource},
		{"no format", func(d *Deal) { d.Data.Format = PieceDataFormat{} }, ErrBadProposal},
		{"two formats", func(d *Deal) { d.Data.Format.Raw = &FormatBytes{} }, ErrBadProposal},
		{"no urls", func(d *Deal) { d.Data.SourceHTTP.URLs = nil }, ErrMalformedDataSource},
		{"11 urls", func(d *Deal) { d.Data.SourceHTTP.URLs = many }, ErrMalformedDataSource},
		{"ftp", func(d *Deal) { d.Data.SourceHTTP.URLs[0].URL = "ftp://127.0.0.1/x" }, ErrBadProposal},
		{"user info", func(d *Deal) { d.Data.SourceHTTP.URLs[0].URL = "http://u:p@127.0.0.1/x" }, ErrBadProposal},
		{"bad header", func(d *Deal) { d.Data.SourceHTTP.URLs[0].Headers = http.Header{"A B": {"x"}} }, ErrBadProposal},
		{"11 headers", func(d *Deal) { d.Data.SourceHTTP.URLs[0].Headers = headers }, ErrMalformedDataSource},
	} {
		d := goodDeal(t, client)
		tc.mod(d)
		r := d.Validate(client)
		if r == nil || r.Code != tc.code {
			t.Errorf("%s: %v, want code %d", tc.name, r, tc.code)
		}
	}
	for name, mod := range map[string]func(*Deal){
		"no data":    func(d *Deal) { d.Data = nil },
		"offline":    func(d *Deal) { d.Data.SourceHTTP = nil; d.Data.SourceOffline = &DataSourceOffline{} },
		"put":        func(d *Deal) { d.Data.SourceHTTP = nil; d.Data.SourceHTTPPut = &DataSourceHTTPPut{} },
		"allocation": func(d *Deal) { d.Products.DDOV1.AllocationID = &alloc; d.Products.DDOV1.Duration = 0 },
		"notification": func(d *Deal) {
			d.Products.DDOV1.NotificationAddress = notify
			d.Products.DDOV1.NotificationPayload = []byte{}
		},
		"market contract": func(d *Deal) { d.Products.DDOV1.MarketAddress = "0x" + strings.Repeat("aB", 20) },
	} {
		d := goodDeal(t, client)
		mod(d)
		if r := d.Validate(client); r != nil {
			t.Errorf("%s: %v", name, r)
		}
	}
}

// Curio's JSON: the field names, the piece CID as an IPLD link, the ULID as
// a string, addresses as strings.
func TestDealJSON(t *testing.T) {
	_, client := newKey(t, wallet.TypeSecp256k1)
	d := goodDeal(t, client)
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"identifier":"` + d.Identifier.String() + `"`, `"client":"` + client.String() + `"`,
		`"piece_cid":{"/":"` + testPieceCID.String() + `"}`, `"format":{"car":{}}`,
		`"source_http":{"urls":[{"url":"http://127.0.0.1:8080/x.car","headers":{"Authorization":["Bearer x"]},"priority":0,"fallback":false}]}`,
		`"ddo_v1":{"provider":"f01001","start_epoch":10000,"duration":518400,`, `"retrieval_v1":{"indexing":true,"announce_payload":true,"announce_piece":false}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	back, err := DecodeDeal(b)
	if err != nil || back.Identifier != d.Identifier || back.Data.PieceCID != testPieceCID || back.Products.DDOV1.Provider != d.Products.DDOV1.Provider {
		t.Fatalf("DecodeDeal: %+v %v", back, err)
	}
	for name, bad := range map[string]string{
		"not json":      "deal",
		"trailing":      string(b) + "{}",
		"bad ulid":      `{"identifier":"nope"}`,
		"bad piece cid": `{"data":{"piece_cid":{"/":"x"}}}`,
		"bad provider":  `{"products":{"ddo_v1":{"provider":"f9"}}}`,
	} {
		if _, err := DecodeDeal([]byte(bad)); err == nil {
			t.Errorf("%s decoded", name)
		}
	}
}

func TestParsePieceCID(t *testing.T) {
	pi, err := ParsePieceCID(testPieceCID)
	if err != nil || pi.RawSize != 508 || pi.Size != 512 || pi.PieceCID.String() != "baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi" {
		t.Fatalf("%+v %v", pi, err)
	}
}
