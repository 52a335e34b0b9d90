package mk20

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/crypto"
)

type cryptoSig = crypto.Signature

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// FuzzDecodeDeal: any body decodes or fails cleanly, and what decodes
// validates without panicking; a deal that validates names a piece whose
// sizes agree.
func FuzzDecodeDeal(f *testing.F) {
	f.Add([]byte(`{"identifier":"01ARZ3NDEKTSV4RRFFQ69G5FAV","client":"f01","products":{}}`))
	f.Add([]byte(`{"identifier":"01ARZ3NDEKTSV4RRFFQ69G5FAV","client":"f01","data":{"piece_cid":{"/":"bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"},"format":{"car":{}},"source_http_put":{}},"products":{"ddo_v1":{"provider":"f01000","duration":518400},"retrieval_v1":{}}}`))
	signer, _ := address.NewIDAddress(1)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDeal(b)
		if err != nil {
			return
		}
		if r := d.Validate(signer); r == nil && d.Data != nil {
			pi, err := ParsePieceCID(d.Data.PieceCID)
			if err != nil || pi.RawSize == 0 || uint64(pi.Size.Unpadded()) < pi.RawSize {
				t.Fatalf("validated deal with piece %s: %+v %v", d.Data.PieceCID, pi, err)
			}
		}
	})
}

// FuzzParseAuth: any header parses or fails cleanly, and never verifies
// unless it was made by SignAuth.
func FuzzParseAuth(f *testing.F) {
	f.Add("CurioAuth secp256k1:AQIDBA==:AQID")
	f.Add("CurioAuth bls:AwE=:Ag==")
	f.Add("Bearer x")
	at := time.Date(2025, 7, 15, 17, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, h string) {
		a, err := ParseAuth(h)
		if err == nil && (a.KeyType == "" || a.Address == address.Undef || !strings.HasPrefix(h, AuthScheme)) {
			t.Fatalf("ParseAuth(%q) = %+v", h, a)
		}
		if _, err := VerifyAuth(h, "GET", "/market/mk20/products", at); err == nil {
			t.Fatalf("a fuzzed header verified: %q", h)
		}
	})
}
