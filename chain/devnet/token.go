package devnet

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/filecoin-project/go-jsonrpc/auth"
)

// Lotus API tokens are HS256 JWTs whose payload is {"Allow":[perms…]}.

// jwtHeader is the fixed header of an HS256 JWT.
var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

type jwtPayload struct {
	Allow []auth.Permission
}

// MintToken makes a Lotus-style API token granting perms, signed with
// secret.
func MintToken(secret []byte, perms ...auth.Permission) (string, error) {
	if perms == nil {
		perms = []auth.Permission{}
	}
	body, err := json.Marshal(jwtPayload{Allow: perms})
	if err != nil {
		return "", fmt.Errorf("encoding token payload: %w", err)
	}
	signing := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(body)
	return signing + "." + base64.RawURLEncoding.EncodeToString(hs256(secret, signing)), nil
}

// VerifyToken checks a token's HS256 signature with secret and returns the
// permissions it grants.
func VerifyToken(secret []byte, token string) ([]auth.Permission, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("token is not a JWT (want three dot-separated parts)")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("decoding token header: %w", err)
	}
	var h struct{ Alg string }
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("decoding token header: %w", err)
	}
	if h.Alg != "HS256" {
		return nil, fmt.Errorf("token algorithm %q is not HS256", h.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("decoding token signature: %w", err)
	}
	if !hmac.Equal(sig, hs256(secret, parts[0]+"."+parts[1])) {
		return nil, errors.New("token signature does not match")
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("decoding token payload: %w", err)
	}
	var p jwtPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("decoding token payload: %w", err)
	}
	return p.Allow, nil
}

func hs256(secret []byte, s string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(s))
	return m.Sum(nil)
}
