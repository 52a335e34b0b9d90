package devnet

import (
	"bytes"
	"context"
	"fmt"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/power"
	"github.com/filecoin-project/go-state-types/exitcode"
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/ferry-fil/ferry/chain"
)

// The helpers below send real messages through the pool and wait for them,
// so they need blocks to be produced (a BlockTime ≥ 0, or Mine called by
// someone else).

// Fund sends amount attoFIL from the genesis account to addr and waits for
// the message to execute.
func (d *Devnet) Fund(ctx context.Context, addr address.Address, amount abi.TokenAmount) error {
	if _, err := d.callAndWait(ctx, d.genesis, addr, builtin.MethodSend, amount, nil); err != nil {
		return fmt.Errorf("funding %s: %w", addr, err)
	}
	return nil
}

// CreateMiner creates a miner actor with a real CreateMiner message from
// owner (whose key the node must hold), with the window PoSt proof type of
// sectorSize, and returns its ID address.
func (d *Devnet) CreateMiner(ctx context.Context, owner, worker address.Address, sectorSize abi.SectorSize, peerID []byte, multiaddrs []abi.Multiaddrs) (address.Address, error) {
	proof, err := windowPoStProofFor(sectorSize)
	if err != nil {
		return address.Undef, err
	}
	params := &power.CreateMinerParams{Owner: owner, Worker: worker, WindowPoStProofType: proof, Peer: peerID, Multiaddrs: multiaddrs}
	ret, err := d.callAndWait(ctx, owner, idAddr(idPower), builtin.MethodsPower.CreateMiner, big.Zero(), params)
	if err != nil {
		return address.Undef, fmt.Errorf("creating miner: %w", err)
	}
	var r power.CreateMinerReturn
	if err := r.UnmarshalCBOR(bytes.NewReader(ret)); err != nil {
		return address.Undef, fmt.Errorf("creating miner: decoding return: %w", err)
	}
	return r.IDAddress, nil
}

// windowPoStProofFor returns the V1_1 window PoSt proof type of a sector
// size.
func windowPoStProofFor(size abi.SectorSize) (abi.RegisteredPoStProof, error) {
	for _, p := range []abi.RegisteredPoStProof{
		abi.RegisteredPoStProof_StackedDrgWindow2KiBV1_1, abi.RegisteredPoStProof_StackedDrgWindow8MiBV1_1,
		abi.RegisteredPoStProof_StackedDrgWindow512MiBV1_1, abi.RegisteredPoStProof_StackedDrgWindow32GiBV1_1,
		abi.RegisteredPoStProof_StackedDrgWindow64GiBV1_1,
	} {
		if s, _ := p.SectorSize(); s == size {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no proof type for sector size %d (want 2KiB, 8MiB, 512MiB, 32GiB or 64GiB)", size)
}

// callAndWait pushes a message signed by the node's wallet, waits for it and
// returns its return value; a failed message is an error.
func (d *Devnet) callAndWait(ctx context.Context, from, to address.Address, method abi.MethodNum, value abi.TokenAmount, params cbg.CBORMarshaler) ([]byte, error) {
	var p []byte
	if params != nil {
		var buf bytes.Buffer
		if err := params.MarshalCBOR(&buf); err != nil {
			return nil, fmt.Errorf("encoding params: %w", err)
		}
		p = buf.Bytes()
	}
	sm, err := d.MpoolPushMessage(ctx, &chain.Message{From: from, To: to, Method: method, Value: value, Params: p}, nil)
	if err != nil {
		return nil, err
	}
	c, err := sm.Cid()
	if err != nil {
		return nil, err
	}
	l, err := d.StateWaitMsg(ctx, c, 0, -1, false)
	if err != nil {
		return nil, err
	}
	if l.Receipt.ExitCode != exitcode.Ok {
		return nil, fmt.Errorf("message %s failed with exit code %d (%s)", c, l.Receipt.ExitCode, l.Receipt.ExitCode)
	}
	return l.Receipt.Return, nil
}
