package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	jsonrpcauth "github.com/filecoin-project/go-jsonrpc/auth"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// lotusToken builds a token the way Lotus' tools do (gbrlsnchs/jwt,
// HS256): base64url header and payload, HMAC-SHA256 over both.
func lotusToken(secret []byte, payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(payload))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signing))
	return signing + "." + enc(m.Sum(nil))
}

func TestMintIsLotusToken(t *testing.T) {
	tok, err := Mint(testSecret, Read, Write)
	if err != nil {
		t.Fatal(err)
	}
	if want := lotusToken(testSecret, `{"Allow":["read","write"]}`); tok != want {
		t.Fatalf("minted %s\nLotus mints %s", tok, want)
	}
	perms, err := Verify(testSecret, lotusToken(testSecret, `{"Allow":["read","write","sign","admin"]}`))
	if err != nil || !slices.Equal(perms, All()) {
		t.Fatalf("a Lotus admin token gives %v, %v", perms, err)
	}
}

func TestUpTo(t *testing.T) {
	for p, want := range map[Permission][]Permission{
		Read: {Read}, Write: {Read, Write}, Sign: {Read, Write, Sign}, Admin: All(),
	} {
		got, err := UpTo(p)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("UpTo(%s) = %v, %v; want %v", p, got, err, want)
		}
	}
	if _, err := UpTo("root"); err == nil {
		t.Fatal("UpTo accepted an unknown permission")
	}
	if _, err := Parse("Admin"); err == nil {
		t.Fatal("Parse accepted a permission in another case")
	}
}

func TestVerifyRefuses(t *testing.T) {
	tok, err := Mint(testSecret, Admin)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	parts := strings.Split(tok, ".")
	for name, bad := range map[string]string{
		"empty":          "",
		"two parts":      "a.b",
		"garbage":        "e30.e30.e30",
		"trailing byte":  tok + "x",
		"other secret":   lotusToken([]byte("another secret, another server!"), `{"Allow":["admin"]}`),
		"changed claims": parts[0] + "." + enc([]byte(`{"Allow":["read","write","sign","admin"]}`)) + "." + parts[2],
		"alg none":       enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc([]byte(`{"Allow":["admin"]}`)) + ".",
		"alg HS512":      enc([]byte(`{"alg":"HS512","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2],
	} {
		if perms, err := Verify(testSecret, bad); err == nil {
			t.Errorf("%s: token accepted with %v", name, perms)
		}
	}
	if _, err := Mint(testSecret, "root"); err == nil {
		t.Error("minted a token with an unknown permission")
	}
	if _, err := Mint(nil, Read); err == nil {
		t.Error("minted a token without a secret")
	}
	// Names that are no permission grant nothing.
	perms, err := Verify(testSecret, lotusToken(testSecret, `{"Allow":["read","root"]}`))
	if err != nil || !slices.Equal(perms, []Permission{Read}) {
		t.Errorf("unknown permission kept: %v, %v", perms, err)
	}
}

// TestHandlers: RequireToken refuses a request without a token or with a
// bad one before the API sees it; OptionalToken lets one without a token
// through with no permissions; both hand a good token's permissions on.
func TestHandlers(t *testing.T) {
	readTok, _ := Mint(testSecret, Read)
	badTok, _ := Mint([]byte("another secret, another server!"), All()...)
	for _, anonymous := range []bool{false, true} {
		var reached bool
		var perms []Permission
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reached = true
			perms = nil
			if jsonrpcauth.HasPerm(r.Context(), nil, Read) {
				perms = append(perms, Read)
			}
			if jsonrpcauth.HasPerm(r.Context(), nil, Admin) {
				perms = append(perms, Admin)
			}
		})
		h := RequireToken(testSecret, next)
		if anonymous {
			h = OptionalToken(testSecret, next)
		}
		do := func(header, query string) int {
			t.Helper()
			reached = false
			r := httptest.NewRequestWithContext(context.Background(), "POST", "/rpc/v0"+query, nil)
			if header != "" {
				r.Header.Set("Authorization", header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w.Code
		}
		if code := do("", ""); anonymous != reached || (!anonymous && code != http.StatusUnauthorized) {
			t.Fatalf("anonymous=%v: no token: %d, reached %v", anonymous, code, reached)
		}
		if reached && perms != nil {
			t.Fatalf("no token ran with %v", perms)
		}
		for _, bad := range []string{"Bearer " + badTok, "Bearer nonsense", "Basic " + readTok} {
			if code := do(bad, ""); code != http.StatusUnauthorized || reached {
				t.Fatalf("anonymous=%v: %q: %d, reached %v", anonymous, bad, code, reached)
			}
		}
		for _, good := range [][2]string{{"Bearer " + readTok, ""}, {"", "?token=" + readTok}} {
			if do(good[0], good[1]); !reached || !slices.Equal(perms, []Permission{Read}) {
				t.Fatalf("anonymous=%v: read token %q: reached %v with %v", anonymous, good, reached, perms)
			}
		}
	}
}

// FuzzVerify: no input panics, and nothing verifies but a token minted
// with the secret.
func FuzzVerify(f *testing.F) {
	tok, err := Mint(testSecret, Read, Write)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Fuzz(func(t *testing.T, s string) {
		perms, err := Verify(testSecret, s)
		if err != nil {
			return
		}
		// Accepted: it must carry the secret's signature over its content.
		parts := strings.Split(strings.TrimSpace(s), ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %q (not three parts) with %v", s, perms)
		}
		m := hmac.New(sha256.New, testSecret)
		m.Write([]byte(parts[0] + "." + parts[1]))
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil || !hmac.Equal(sig, m.Sum(nil)) {
			t.Fatalf("accepted %q without the secret's signature", s)
		}
	})
}
