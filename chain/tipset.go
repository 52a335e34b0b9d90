package chain

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
)

// TipSetKey identifies a tipset by the CIDs of its blocks. Its JSON form is
// a list of CIDs, as in Lotus. The zero value (EmptyTSK) means "the head".
type TipSetKey struct {
	// value holds the concatenated binary CIDs, so keys compare with ==.
	value string
}

// EmptyTSK is the empty key: methods taking a TipSetKey read the head.
var EmptyTSK = TipSetKey{}

// NewTipSetKey makes the key of a tipset with these block CIDs.
func NewTipSetKey(cids ...cid.Cid) TipSetKey {
	var b strings.Builder
	for _, c := range cids {
		b.Write(c.Bytes())
	}
	return TipSetKey{value: b.String()}
}

// IsEmpty reports whether k is the empty key.
func (k TipSetKey) IsEmpty() bool { return k.value == "" }

// Cids returns the block CIDs of the key.
func (k TipSetKey) Cids() []cid.Cid {
	var out []cid.Cid
	buf := []byte(k.value)
	for len(buf) > 0 {
		n, c, err := cid.CidFromBytes(buf)
		if err != nil {
			// Keys are only built from valid CIDs.
			panic(fmt.Sprintf("chain: corrupt tipset key: %v", err))
		}
		out = append(out, c)
		buf = buf[n:]
	}
	return out
}

// String lists the key's CIDs.
func (k TipSetKey) String() string { return fmt.Sprint(k.Cids()) }

// MarshalJSON encodes the key as a list of CIDs.
func (k TipSetKey) MarshalJSON() ([]byte, error) {
	cids := k.Cids()
	if cids == nil {
		cids = []cid.Cid{}
	}
	return json.Marshal(cids)
}

// UnmarshalJSON decodes a list of CIDs.
func (k *TipSetKey) UnmarshalJSON(b []byte) error {
	var cids []cid.Cid
	if err := json.Unmarshal(b, &cids); err != nil {
		return fmt.Errorf("decoding tipset key: %w", err)
	}
	*k = NewTipSetKey(cids...)
	return nil
}

// TipSet is a set of blocks at one height with the same parents. The devnet
// produces one block per tipset.
type TipSet struct {
	cids   []cid.Cid
	blocks []*BlockHeader
	height abi.ChainEpoch
}

// NewTipSet makes a tipset of blocks whose CIDs are given in the same order.
func NewTipSet(blocks []*BlockHeader, cids []cid.Cid) (*TipSet, error) {
	if len(blocks) == 0 {
		return nil, fmt.Errorf("a tipset needs at least one block")
	}
	if len(blocks) != len(cids) {
		return nil, fmt.Errorf("tipset has %d blocks but %d CIDs", len(blocks), len(cids))
	}
	for _, b := range blocks[1:] {
		if b.Height != blocks[0].Height {
			return nil, fmt.Errorf("tipset blocks at different heights %d and %d", blocks[0].Height, b.Height)
		}
	}
	return &TipSet{cids: cids, blocks: blocks, height: blocks[0].Height}, nil
}

// Key returns the tipset's key.
func (ts *TipSet) Key() TipSetKey { return NewTipSetKey(ts.cids...) }

// Cids returns the CIDs of the tipset's blocks.
func (ts *TipSet) Cids() []cid.Cid { return ts.cids }

// Blocks returns the tipset's blocks.
func (ts *TipSet) Blocks() []*BlockHeader { return ts.blocks }

// Height returns the tipset's epoch.
func (ts *TipSet) Height() abi.ChainEpoch { return ts.height }

// Parents returns the key of the parent tipset.
func (ts *TipSet) Parents() TipSetKey { return NewTipSetKey(ts.blocks[0].Parents...) }

// MinTimestamp returns the earliest block timestamp (Unix seconds).
func (ts *TipSet) MinTimestamp() uint64 {
	min := ts.blocks[0].Timestamp
	for _, b := range ts.blocks[1:] {
		if b.Timestamp < min {
			min = b.Timestamp
		}
	}
	return min
}

// tipSetJSON is Lotus' ExpTipSet.
type tipSetJSON struct {
	Cids   []cid.Cid
	Blocks []*BlockHeader
	Height abi.ChainEpoch
}

// MarshalJSON encodes the tipset as Lotus does: {"Cids","Blocks","Height"}.
func (ts *TipSet) MarshalJSON() ([]byte, error) {
	return json.Marshal(tipSetJSON{Cids: ts.cids, Blocks: ts.blocks, Height: ts.height})
}

// UnmarshalJSON decodes Lotus' tipset JSON.
func (ts *TipSet) UnmarshalJSON(b []byte) error {
	var j tipSetJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("decoding tipset: %w", err)
	}
	t, err := NewTipSet(j.Blocks, j.Cids)
	if err != nil {
		return fmt.Errorf("decoding tipset: %w", err)
	}
	*ts = *t
	return nil
}
