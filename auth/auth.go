// Package auth is the API tokens of ferryd and of its devnet: Lotus'
// permissions in Lotus' tokens, so that Lotus' own tools and ours read each
// other's.
//
// A token is an HS256 JSON Web Token whose payload is {"Allow":[…]}, the
// permissions it grants, signed with a secret the server keeps (ferryd:
// <repo>/jwt.secret). There are four permissions, weakest first:
//
//	read   read chain and daemon state
//	write  change state without a key the server holds (push a message
//	       signed elsewhere; on the devnet, ask its faucet for funds)
//	sign   sign with a key the server holds (WalletSign, MpoolPushMessage)
//	admin  everything else: steer deals, set the ask, import files
//
// Each API method names the one permission it needs (the `perm` tag of its
// function field, checked by go-jsonrpc's PermissionedProxy), and a token
// must list that permission: a token is minted with a permission and every
// weaker one (UpTo), as `lotus auth create-token --perm` does. Tokens do not
// expire; a new secret revokes them all.
//
// RequireToken and OptionalToken put a request's permissions where the
// proxy finds them: the operator API refuses a request without a token, the
// devnet's chain API (like Lotus') serves it with read only.
package auth

import (
	"errors"
	"fmt"
	"strings"

	jsonrpcauth "github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/golang-jwt/jwt/v5"
)

// Permission is a Lotus API permission, go-jsonrpc's type.
type Permission = jsonrpcauth.Permission

// The permissions, weakest first.
const (
	Read  Permission = "read"
	Write Permission = "write"
	Sign  Permission = "sign"
	Admin Permission = "admin"
)

// All returns every permission, weakest first: what an admin token holds
// and what a PermissionedProxy accepts as tags.
func All() []Permission { return []Permission{Read, Write, Sign, Admin} }

// Parse reads a permission's name.
func Parse(s string) (Permission, error) {
	for _, p := range All() {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown permission %q (want read, write, sign or admin)", s)
}

// UpTo returns p and every weaker permission, what a token "with
// permission p" holds.
func UpTo(p Permission) ([]Permission, error) {
	all := All()
	for i, q := range all {
		if q == p {
			return all[:i+1], nil
		}
	}
	return nil, fmt.Errorf("unknown permission %q (want read, write, sign or admin)", p)
}

// claims is a token's payload, Lotus' jwtPayload.
type claims struct {
	Allow []Permission
	jwt.RegisteredClaims
}

// Mint makes a token granting perms, signed with secret.
func Mint(secret []byte, perms ...Permission) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("minting a token: empty secret")
	}
	for _, p := range perms {
		if _, err := Parse(string(p)); err != nil {
			return "", fmt.Errorf("minting a token: %w", err)
		}
	}
	if perms == nil {
		perms = []Permission{}
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{Allow: perms}).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("minting a token: %w", err)
	}
	return tok, nil
}

// Verify checks a token's HS256 signature with secret and returns the
// permissions it grants (unknown names are dropped: they grant nothing).
func Verify(secret []byte, token string) ([]Permission, error) {
	if len(secret) == 0 {
		return nil, errors.New("checking a token: empty secret")
	}
	var c claims
	_, err := jwt.ParseWithClaims(strings.TrimSpace(token), &c, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}))
	if err != nil {
		return nil, fmt.Errorf("checking a token: %w", err)
	}
	out := make([]Permission, 0, len(c.Allow))
	for _, p := range c.Allow {
		if _, err := Parse(string(p)); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}
