package mk20

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/crypto"

	"github.com/ferry-fil/ferry/wallet"
)

// AuthScheme starts the Authorization header of every mk20 request.
const AuthScheme = "CurioAuth "

// Key types of the CurioAuth header.
const (
	KeySecp256k1 = "secp256k1"
	KeyBLS       = "bls"
	KeyDelegated = "delegated"
)

// ErrAuth is wrapped by every error of VerifyAuth and ParseAuth.
var ErrAuth = errors.New("CurioAuth")

// Auth is a parsed CurioAuth header.
type Auth struct {
	// KeyType is secp256k1, bls or delegated.
	KeyType string
	// Address is the signer, from AddressBytes.
	Address address.Address
	// AddressBytes are the address bytes as the header gives them: the
	// signed message holds these.
	AddressBytes []byte
	// Signature is the signature over AuthDigest.
	Signature crypto.Signature
}

// ParseAuth parses an Authorization header of the CurioAuth scheme without
// checking the signature.
func ParseAuth(header string) (*Auth, error) {
	rest, ok := strings.CutPrefix(header, AuthScheme)
	if !ok {
		return nil, fmt.Errorf("%w: the Authorization header does not start with %q", ErrAuth, AuthScheme)
	}
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: want <key type>:<address bytes>:<signature>", ErrAuth)
	}
	switch parts[0] {
	case KeySecp256k1, KeyBLS, KeyDelegated:
	default:
		return nil, fmt.Errorf("%w: unsupported key type %q", ErrAuth, parts[0])
	}
	ab, err := base64.StdEncoding.DecodeString(parts[1])
	if err != nil || len(ab) == 0 {
		return nil, fmt.Errorf("%w: the address bytes are not base64: %v", ErrAuth, err)
	}
	addr, err := address.NewFromBytes(ab)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid address bytes: %v", ErrAuth, err)
	}
	sb, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(sb) == 0 {
		return nil, fmt.Errorf("%w: the signature is not base64: %v", ErrAuth, err)
	}
	var sig crypto.Signature
	if err := sig.UnmarshalBinary(sb); err != nil {
		return nil, fmt.Errorf("%w: invalid signature bytes: %v", ErrAuth, err)
	}
	return &Auth{KeyType: parts[0], Address: addr, AddressBytes: ab, Signature: sig}, nil
}

// AuthDigest is what a CurioAuth signature signs: SHA-256 of the address
// bytes, the upper-case method, the escaped path ("/" when empty) and t
// truncated to the minute in UTC, RFC 3339.
func AuthDigest(addrBytes []byte, method, escapedPath string, t time.Time) [32]byte {
	if escapedPath == "" {
		escapedPath = "/"
	}
	return sha256.Sum256(bytes.Join([][]byte{
		addrBytes,
		[]byte(strings.ToUpper(method)),
		[]byte(escapedPath),
		[]byte(t.UTC().Truncate(time.Minute).Format(time.RFC3339)),
	}, nil))
}

// KeyType returns the CurioAuth key type of an address's protocol.
func KeyType(addr address.Address) (string, error) {
	switch addr.Protocol() {
	case address.SECP256K1:
		return KeySecp256k1, nil
	case address.BLS:
		return KeyBLS, nil
	case address.Delegated:
		return KeyDelegated, nil
	}
	return "", fmt.Errorf("%w: %s is not a key address (f1, f3 or f4)", ErrAuth, addr)
}

// SignAuth returns the Authorization header of a request by addr, signed
// with sign (a wallet's Signer) for the minute of now.
func SignAuth(sign func(data []byte) (*crypto.Signature, error), addr address.Address, method, escapedPath string, now time.Time) (string, error) {
	kt, err := KeyType(addr)
	if err != nil {
		return "", err
	}
	digest := AuthDigest(addr.Bytes(), method, escapedPath, now)
	sig, err := sign(digest[:])
	if err != nil {
		return "", fmt.Errorf("signing the CurioAuth header: %w", err)
	}
	sb, err := sig.MarshalBinary()
	if err != nil {
		return "", fmt.Errorf("encoding the CurioAuth signature: %w", err)
	}
	return AuthScheme + kt + ":" + base64.StdEncoding.EncodeToString(addr.Bytes()) + ":" + base64.StdEncoding.EncodeToString(sb), nil
}

// VerifyAuth checks a request's CurioAuth header against its method and
// escaped path at time now, accepting a signature for the current,
// previous or next minute, and returns the signer.
func VerifyAuth(header, method, escapedPath string, now time.Time) (address.Address, error) {
	a, err := ParseAuth(header)
	if err != nil {
		return address.Undef, err
	}
	var last error
	for _, off := range []time.Duration{0, -time.Minute, time.Minute} {
		digest := AuthDigest(a.AddressBytes, method, escapedPath, now.Add(off))
		if last = wallet.Verify(&a.Signature, a.Address, digest[:]); last == nil {
			return a.Address, nil
		}
	}
	return address.Undef, fmt.Errorf("%w: the signature of %s does not verify for %s %s within a minute of %s: %v",
		ErrAuth, a.Address, strings.ToUpper(method), escapedPath, now.UTC().Format(time.RFC3339), last)
}
