// Package wallet holds Filecoin keys: secp256k1 (f1 addresses) and BLS
// (f3 addresses), signing and verifying exactly as Lotus does, Lotus' key
// export format, and a keystore directory.
package wallet

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/filecoin-project/go-address"
	gocrypto "github.com/filecoin-project/go-crypto"
	"github.com/filecoin-project/go-state-types/crypto"
	blst "github.com/supranational/blst/bindings/go"
	"gitlab.com/yawning/secp256k1-voi/secec"
	"golang.org/x/crypto/blake2b"
)

// Key types, as Lotus names them in KeyInfo.Type.
const (
	TypeSecp256k1 = "secp256k1"
	TypeBLS       = "bls"
)

// blsDST is the domain separation tag of Filecoin's BLS signatures
// (min-pk, signatures in G2, hash to curve with SHA-256).
const blsDST = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_NUL_"

// Sizes of keys and signatures.
const (
	secpPrivateKeyLen = 32
	secpSignatureLen  = 65
	blsPrivateKeyLen  = 32
	blsPublicKeyLen   = 48
	blsSignatureLen   = 96
)

// KeyInfo is a private key and its type, Lotus' types.KeyInfo. Its JSON is
// {"Type":"secp256k1"|"bls","PrivateKey":"<base64>"}. A secp256k1 key is a
// 32-byte big-endian scalar; a BLS key is a 32-byte little-endian scalar
// (filecoin-ffi's serialization).
type KeyInfo struct {
	Type       string
	PrivateKey []byte
}

// Generate makes a new random key of the given type.
func Generate(typ string) (KeyInfo, error) {
	switch typ {
	case TypeSecp256k1:
		sk, err := gocrypto.GenerateKey()
		if err != nil {
			return KeyInfo{}, fmt.Errorf("generating secp256k1 key: %w", err)
		}
		return KeyInfo{Type: TypeSecp256k1, PrivateKey: sk}, nil
	case TypeBLS:
		var ikm [32]byte
		if _, err := rand.Read(ikm[:]); err != nil {
			return KeyInfo{}, fmt.Errorf("generating BLS key: %w", err)
		}
		sk := blst.KeyGen(ikm[:])
		if sk == nil {
			return KeyInfo{}, errors.New("generating BLS key: key derivation failed")
		}
		return KeyInfo{Type: TypeBLS, PrivateKey: sk.ToLEndian()}, nil
	default:
		return KeyInfo{}, fmt.Errorf("unknown key type %q (want %q or %q)", typ, TypeSecp256k1, TypeBLS)
	}
}

// secpKey parses a secp256k1 private key.
func secpKey(b []byte) (*secec.PrivateKey, error) {
	if len(b) != secpPrivateKeyLen {
		return nil, fmt.Errorf("secp256k1 private key is %d bytes, want %d", len(b), secpPrivateKeyLen)
	}
	sk, err := secec.NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("invalid secp256k1 private key: %w", err)
	}
	return sk, nil
}

// blsKey parses a BLS private key: a canonical, non-zero little-endian
// scalar.
func blsKey(b []byte) (*blst.SecretKey, error) {
	if len(b) != blsPrivateKeyLen {
		return nil, fmt.Errorf("BLS private key is %d bytes, want %d", len(b), blsPrivateKeyLen)
	}
	sk := new(blst.SecretKey).FromLEndian(b)
	if sk == nil || !sk.Valid() || string(sk.ToLEndian()) != string(b) {
		return nil, errors.New("invalid BLS private key: not a non-zero scalar below the group order")
	}
	return sk, nil
}

// PublicKey returns the key's public key: 65 bytes uncompressed for
// secp256k1, 48 bytes compressed G1 for BLS.
func (ki KeyInfo) PublicKey() ([]byte, error) {
	switch ki.Type {
	case TypeSecp256k1:
		sk, err := secpKey(ki.PrivateKey)
		if err != nil {
			return nil, err
		}
		return sk.PublicKey().Bytes(), nil
	case TypeBLS:
		sk, err := blsKey(ki.PrivateKey)
		if err != nil {
			return nil, err
		}
		return new(blst.P1Affine).From(sk).Compress(), nil
	default:
		return nil, fmt.Errorf("unknown key type %q", ki.Type)
	}
}

// Address returns the key's address: f1 for secp256k1, f3 for BLS.
func (ki KeyInfo) Address() (address.Address, error) {
	pub, err := ki.PublicKey()
	if err != nil {
		return address.Undef, err
	}
	var a address.Address
	if ki.Type == TypeSecp256k1 {
		a, err = address.NewSecp256k1Address(pub)
	} else {
		a, err = address.NewBLSAddress(pub)
	}
	if err != nil {
		return address.Undef, fmt.Errorf("making %s address: %w", ki.Type, err)
	}
	return a, nil
}

// SigType returns the signature type the key produces.
func (ki KeyInfo) SigType() (crypto.SigType, error) {
	switch ki.Type {
	case TypeSecp256k1:
		return crypto.SigTypeSecp256k1, nil
	case TypeBLS:
		return crypto.SigTypeBLS, nil
	default:
		return crypto.SigTypeUnknown, fmt.Errorf("unknown key type %q", ki.Type)
	}
}

// Sign signs data as Lotus does: secp256k1 signs blake2b-256(data) and gives
// 65 bytes r‖s‖v; BLS signs data itself and gives a 96-byte compressed G2
// point.
func Sign(ki KeyInfo, data []byte) (*crypto.Signature, error) {
	switch ki.Type {
	case TypeSecp256k1:
		if _, err := secpKey(ki.PrivateKey); err != nil {
			return nil, err
		}
		h := blake2b.Sum256(data)
		sig, err := gocrypto.Sign(ki.PrivateKey, h[:])
		if err != nil {
			return nil, fmt.Errorf("secp256k1 signing: %w", err)
		}
		return &crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: sig}, nil
	case TypeBLS:
		sk, err := blsKey(ki.PrivateKey)
		if err != nil {
			return nil, err
		}
		sig := new(blst.P2Affine).Sign(sk, data, []byte(blsDST))
		if sig == nil {
			return nil, errors.New("BLS signing failed")
		}
		return &crypto.Signature{Type: crypto.SigTypeBLS, Data: sig.Compress()}, nil
	default:
		return nil, fmt.Errorf("unknown key type %q", ki.Type)
	}
}

// Verify checks that sig is addr's signature over data, as Lotus does. A
// secp256k1 signature's public key is recovered and its f1 address compared
// with addr; a BLS signature is checked against the public key in the f3
// address.
func Verify(sig *crypto.Signature, addr address.Address, data []byte) error {
	if sig == nil {
		return errors.New("verifying signature: no signature")
	}
	switch sig.Type {
	case crypto.SigTypeSecp256k1:
		if addr.Protocol() != address.SECP256K1 {
			return fmt.Errorf("verifying secp256k1 signature: address %s is not an f1 address", addr)
		}
		if len(sig.Data) != secpSignatureLen {
			return fmt.Errorf("verifying secp256k1 signature: %d bytes, want %d", len(sig.Data), secpSignatureLen)
		}
		h := blake2b.Sum256(data)
		pub, err := gocrypto.EcRecover(h[:], sig.Data)
		if err != nil {
			return fmt.Errorf("verifying secp256k1 signature: recovering public key: %w", err)
		}
		got, err := address.NewSecp256k1Address(pub)
		if err != nil {
			return fmt.Errorf("verifying secp256k1 signature: %w", err)
		}
		if got != addr {
			return fmt.Errorf("secp256k1 signature is by %s, not %s", got, addr)
		}
		return nil
	case crypto.SigTypeBLS:
		if addr.Protocol() != address.BLS {
			return fmt.Errorf("verifying BLS signature: address %s is not an f3 address", addr)
		}
		if len(sig.Data) != blsSignatureLen {
			return fmt.Errorf("verifying BLS signature: %d bytes, want %d", len(sig.Data), blsSignatureLen)
		}
		pk := new(blst.P1Affine).Uncompress(addr.Payload())
		if pk == nil || !pk.KeyValidate() {
			return fmt.Errorf("verifying BLS signature: address %s holds no valid public key", addr)
		}
		s := new(blst.P2Affine).Uncompress(sig.Data)
		if s == nil {
			return errors.New("verifying BLS signature: signature is not a G2 point")
		}
		if !s.Verify(true, pk, false, data, []byte(blsDST)) {
			return fmt.Errorf("BLS signature does not verify for %s", addr)
		}
		return nil
	default:
		return fmt.Errorf("verifying signature: unknown signature type %d", sig.Type)
	}
}

// ExportKey encodes a key as `lotus wallet export` prints it: the hex of
// its JSON.
func ExportKey(ki KeyInfo) string {
	b, err := json.Marshal(ki)
	if err != nil {
		// A struct of a string and bytes always marshals.
		panic(fmt.Sprintf("wallet: marshaling key info: %v", err))
	}
	return hex.EncodeToString(b)
}

// ImportKey decodes what `lotus wallet export` prints (surrounding
// whitespace, such as a trailing newline, is ignored) and checks the key.
func ImportKey(s string) (KeyInfo, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return KeyInfo{}, fmt.Errorf("importing key: not hex: %w", err)
	}
	var ki KeyInfo
	if err := json.Unmarshal(b, &ki); err != nil {
		return KeyInfo{}, fmt.Errorf("importing key: not Lotus key JSON: %w", err)
	}
	if _, err := ki.Address(); err != nil {
		return KeyInfo{}, fmt.Errorf("importing key: %w", err)
	}
	return ki, nil
}
