package chain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/crypto"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// BlockGasLimit is the most gas one block's messages may use, Lotus'
// buildconstants.BlockGasLimit.
const BlockGasLimit = 10_000_000_000

// TotalFilecoin is the total FIL supply, 2 billion FIL in attoFIL.
func TotalFilecoin() abi.TokenAmount { return FIL(2_000_000_000) }

// cborCid returns the blake2b-256 dag-cbor CID of b, abi.CidBuilder's.
func cborCid(b []byte) (cid.Cid, error) {
	return abi.CidBuilder.Sum(b)
}

// Serialize returns the message's CBOR encoding.
func (m *Message) Serialize() ([]byte, error) {
	var buf bytes.Buffer
	if err := m.MarshalCBOR(&buf); err != nil {
		return nil, fmt.Errorf("encoding message: %w", err)
	}
	return buf.Bytes(), nil
}

// ToStorageBlock returns the message as an IPLD block (CBOR bytes and CID).
func (m *Message) ToStorageBlock() (blocks.Block, error) {
	b, err := m.Serialize()
	if err != nil {
		return nil, err
	}
	c, err := cborCid(b)
	if err != nil {
		return nil, fmt.Errorf("message CID: %w", err)
	}
	return blocks.NewBlockWithCid(b, c)
}

// Cid returns the message's CID: blake2b-256 over its CBOR, dag-cbor codec.
// It fails only for a message that cannot be encoded (an undefined
// address).
func (m *Message) Cid() (cid.Cid, error) {
	b, err := m.ToStorageBlock()
	if err != nil {
		return cid.Undef, err
	}
	return b.Cid(), nil
}

// Check performs the checks Lotus makes before a message may enter a block
// (ValidForBlockInclusion) that do not depend on gas prices or the network
// version.
func (m *Message) Check() error {
	switch {
	case m.Version != 0:
		return fmt.Errorf("message version %d unsupported", m.Version)
	case m.To == address.Undef:
		return errors.New("message 'To' address is empty")
	case m.From == address.Undef:
		return errors.New("message 'From' address is empty")
	case m.Value.Int == nil:
		return errors.New("message 'Value' is nil")
	case m.Value.LessThan(big.Zero()):
		return errors.New("message 'Value' is negative")
	case m.Value.GreaterThan(TotalFilecoin()):
		return errors.New("message 'Value' exceeds the total supply")
	case m.GasFeeCap.Int == nil:
		return errors.New("message 'GasFeeCap' is nil")
	case m.GasFeeCap.LessThan(big.Zero()):
		return errors.New("message 'GasFeeCap' is negative")
	case m.GasPremium.Int == nil:
		return errors.New("message 'GasPremium' is nil")
	case m.GasPremium.LessThan(big.Zero()):
		return errors.New("message 'GasPremium' is negative")
	case m.GasPremium.GreaterThan(m.GasFeeCap):
		return errors.New("message 'GasFeeCap' is less than 'GasPremium'")
	case m.GasLimit > BlockGasLimit:
		return fmt.Errorf("message 'GasLimit' %d exceeds the block gas limit %d", m.GasLimit, BlockGasLimit)
	case m.GasLimit <= 0:
		return fmt.Errorf("message 'GasLimit' %d must be positive", m.GasLimit)
	}
	return nil
}

// EqualCall reports whether o makes the same call as m: the same message
// but for its gas fields, Lotus' rule for a replacement (StateSearchMsg and
// StateWaitMsg with allowReplaced).
func (m *Message) EqualCall(o *Message) bool {
	return m.Version == o.Version && m.To == o.To && m.From == o.From && m.Nonce == o.Nonce &&
		m.Value.Equals(o.Value) && m.Method == o.Method && bytes.Equal(m.Params, o.Params)
}

// RequiredFunds is the most the message can cost its sender besides its
// value: GasFeeCap × GasLimit.
func (m *Message) RequiredFunds() abi.TokenAmount {
	return big.Mul(m.GasFeeCap, big.NewInt(m.GasLimit))
}

// rawMessage has Message's fields without its methods, for JSON.
type rawMessage Message

// MarshalJSON encodes the message as Lotus does: its fields plus "CID".
func (m Message) MarshalJSON() ([]byte, error) {
	c, err := m.Cid()
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		*rawMessage
		CID cid.Cid
	}{(*rawMessage)(&m), c})
}

// Serialize returns the signed message's CBOR encoding.
func (sm *SignedMessage) Serialize() ([]byte, error) {
	var buf bytes.Buffer
	if err := sm.MarshalCBOR(&buf); err != nil {
		return nil, fmt.Errorf("encoding signed message: %w", err)
	}
	return buf.Bytes(), nil
}

// ToStorageBlock returns the signed message as an IPLD block. For a BLS
// signed message this is the unsigned message's block, as in Lotus (BLS
// signatures are aggregated in the block header).
func (sm *SignedMessage) ToStorageBlock() (blocks.Block, error) {
	if sm.Signature.Type == crypto.SigTypeBLS {
		return sm.Message.ToStorageBlock()
	}
	b, err := sm.Serialize()
	if err != nil {
		return nil, err
	}
	c, err := cborCid(b)
	if err != nil {
		return nil, fmt.Errorf("signed message CID: %w", err)
	}
	return blocks.NewBlockWithCid(b, c)
}

// Cid returns the signed message's CID; for a BLS signature it is the
// unsigned message's CID.
func (sm *SignedMessage) Cid() (cid.Cid, error) {
	b, err := sm.ToStorageBlock()
	if err != nil {
		return cid.Undef, err
	}
	return b.Cid(), nil
}

// rawSignedMessage has SignedMessage's fields without its methods.
type rawSignedMessage SignedMessage

// MarshalJSON encodes the signed message as Lotus does: Message (with its
// own "CID"), Signature and "CID".
func (sm SignedMessage) MarshalJSON() ([]byte, error) {
	c, err := sm.Cid()
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		*rawSignedMessage
		CID cid.Cid
	}{(*rawSignedMessage)(&sm), c})
}

// SignMessage signs msg as Lotus does: the signature is over the bytes of
// the message's CID. sign is typically a wallet's Sign bound to msg.From.
func SignMessage(msg *Message, sign func(data []byte) (*crypto.Signature, error)) (*SignedMessage, error) {
	c, err := msg.Cid()
	if err != nil {
		return nil, fmt.Errorf("signing message: %w", err)
	}
	sig, err := sign(c.Bytes())
	if err != nil {
		return nil, fmt.Errorf("signing message %s: %w", c, err)
	}
	if sig == nil {
		return nil, fmt.Errorf("signing message %s: signer returned no signature", c)
	}
	return &SignedMessage{Message: *msg, Signature: *sig}, nil
}

// Serialize returns the block header's CBOR encoding.
func (bh *BlockHeader) Serialize() ([]byte, error) {
	var buf bytes.Buffer
	if err := bh.MarshalCBOR(&buf); err != nil {
		return nil, fmt.Errorf("encoding block header: %w", err)
	}
	return buf.Bytes(), nil
}

// ToStorageBlock returns the header as an IPLD block.
func (bh *BlockHeader) ToStorageBlock() (blocks.Block, error) {
	b, err := bh.Serialize()
	if err != nil {
		return nil, err
	}
	c, err := cborCid(b)
	if err != nil {
		return nil, fmt.Errorf("block header CID: %w", err)
	}
	return blocks.NewBlockWithCid(b, c)
}

// Cid returns the block's CID.
func (bh *BlockHeader) Cid() (cid.Cid, error) {
	b, err := bh.ToStorageBlock()
	if err != nil {
		return cid.Undef, err
	}
	return b.Cid(), nil
}

// SigningBytes returns what a block producer signs: the header's CBOR with
// BlockSig left out, as in Lotus.
func (bh *BlockHeader) SigningBytes() ([]byte, error) {
	c := *bh
	c.BlockSig = nil
	return c.Serialize()
}
