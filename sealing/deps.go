package sealing

import (
	"context"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
)

// Chain is what sealing reads from the chain: chain.FullNode (the devnet or
// a Lotus node) has it.
type Chain interface {
	ChainHead(ctx context.Context) (*chain.TipSet, error)
	StateLookupID(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (address.Address, error)
	StateMinerInfo(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (chain.MinerInfo, error)
	StateSectorPreCommitInfo(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk chain.TipSetKey) (*chain.SectorPreCommitOnChainInfo, error)
	StateSectorGetInfo(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk chain.TipSetKey) (*chain.SectorOnChainInfo, error)
	StateSearchMsg(ctx context.Context, from chain.TipSetKey, msg cid.Cid, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error)
	// StateGetAllocation and StateGetAllocationIdForPendingDeal read the
	// verified allocations pieces claim (their TermMax bounds the sector's
	// life; a verified market deal's is named in its piece's manifest).
	StateGetAllocation(ctx context.Context, client address.Address, id chain.AllocationID, tsk chain.TipSetKey) (*chain.Allocation, error)
	StateGetAllocationIdForPendingDeal(ctx context.Context, dealID abi.DealID, tsk chain.TipSetKey) (chain.AllocationID, error) //nolint:revive // Lotus' name
}

// MessageSender sends chain messages from one address with nonces it
// assigns, once per id: the worker's chain/sender.Sender (contracts §1).
type MessageSender interface {
	// Send signs and pushes msg (From, To, Value, Method, Params set;
	// nonce and gas filled in by the sender, the fee bounded by
	// spec.MaxFee) as the message named id. Calling it again with the
	// same id — after a crash, say — never sends a second message: it
	// returns the CID of the one already sent (pushing it again if the
	// pool lost it).
	Send(ctx context.Context, id uuid.UUID, msg *chain.Message, spec *chain.MessageSendSpec) (cid.Cid, error)
	// Wait waits until the message sent as id has executed with
	// confidence epochs on top and returns its lookup (Message is the
	// CID that executed, should it have been replaced). An id never sent
	// is sender.ErrUnknownID.
	Wait(ctx context.Context, id uuid.UUID, confidence uint64) (*chain.MsgLookup, error)
}
