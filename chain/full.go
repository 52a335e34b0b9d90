package chain

import (
	"context"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-bitfield"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/dline"
	"github.com/filecoin-project/go-state-types/network"
	"github.com/ipfs/go-cid"
)

// FullNode is Node plus the read methods of Lotus' full-node API that
// Lotus' own tools (lotus chain/state/mpool/wallet commands) and Boost's
// client call but Ferry's code does not. Names, arguments and results are
// Lotus'. Ferry code should depend on Node; FullNode is what the devnet
// serves and what chain/lotus can call.
type FullNode interface {
	Node

	// ChainGetGenesis returns the genesis tipset.
	ChainGetGenesis(ctx context.Context) (*TipSet, error)
	// ChainGetTipSet returns the tipset with key tsk (the head when empty).
	ChainGetTipSet(ctx context.Context, tsk TipSetKey) (*TipSet, error)
	// ChainGetBlock returns a block header by its CID.
	ChainGetBlock(ctx context.Context, blk cid.Cid) (*BlockHeader, error)
	// ChainGetMessage returns the unsigned message with CID mc (signed or
	// unsigned CID).
	ChainGetMessage(ctx context.Context, mc cid.Cid) (*Message, error)
	// ChainGetBlockMessages returns the messages a block includes.
	ChainGetBlockMessages(ctx context.Context, blk cid.Cid) (*BlockMessages, error)
	// ChainGetParentMessages returns the messages executed by the parent
	// tipset of blk, in execution order.
	ChainGetParentMessages(ctx context.Context, blk cid.Cid) ([]APIMessage, error)
	// ChainGetParentReceipts returns the receipts of ChainGetParentMessages,
	// in the same order.
	ChainGetParentReceipts(ctx context.Context, blk cid.Cid) ([]*MessageReceipt, error)
	// ChainNotify streams head changes: first one "current" change with the
	// head, then "apply" changes as the chain grows. It needs a websocket
	// connection; the channel is closed when ctx ends.
	ChainNotify(ctx context.Context) (<-chan []*HeadChange, error)

	// StateNetworkName returns the name of the network.
	StateNetworkName(ctx context.Context) (NetworkName, error)
	// StateGetActor returns an actor's code, head, nonce and balance.
	StateGetActor(ctx context.Context, actor address.Address, tsk TipSetKey) (*Actor, error)
	// StateActorCodeCIDs returns the code CIDs of the builtin actors by
	// name at network version nv.
	StateActorCodeCIDs(ctx context.Context, nv network.Version) (map[string]cid.Cid, error)
	// StateListMiners returns the addresses of every miner actor.
	StateListMiners(ctx context.Context, tsk TipSetKey) ([]address.Address, error)
	// StateMinerPower returns a miner's power and the network's total.
	StateMinerPower(ctx context.Context, maddr address.Address, tsk TipSetKey) (*MinerPower, error)
	// StateMinerAvailableBalance returns the part of a miner's balance not
	// locked as pledge, deposits or vesting rewards.
	StateMinerAvailableBalance(ctx context.Context, maddr address.Address, tsk TipSetKey) (big.Int, error)
	// StateMinerSectors returns a miner's proven sectors, only those in
	// sectors when it is not nil.
	StateMinerSectors(ctx context.Context, maddr address.Address, sectors *bitfield.BitField, tsk TipSetKey) ([]*SectorOnChainInfo, error)
	// StateMinerActiveSectors returns a miner's active sectors.
	StateMinerActiveSectors(ctx context.Context, maddr address.Address, tsk TipSetKey) ([]*SectorOnChainInfo, error)
	// StateMinerProvingDeadline returns the miner's current WindowPoSt
	// deadline.
	StateMinerProvingDeadline(ctx context.Context, maddr address.Address, tsk TipSetKey) (*dline.Info, error)
	// StateMarketDeals returns every published deal, keyed by the decimal
	// deal ID.
	StateMarketDeals(ctx context.Context, tsk TipSetKey) (map[string]*MarketDeal, error)
	// StateCirculatingSupply returns the circulating FIL supply.
	StateCirculatingSupply(ctx context.Context, tsk TipSetKey) (abi.TokenAmount, error)

	// StateVerifiedRegistryRootKey returns the address of the verified
	// registry's root key.
	StateVerifiedRegistryRootKey(ctx context.Context, tsk TipSetKey) (address.Address, error)
	// StateGetAllocation returns a client's allocation by its ID, or nil.
	StateGetAllocation(ctx context.Context, client address.Address, id AllocationID, tsk TipSetKey) (*Allocation, error)
	// StateGetAllocations returns a client's allocations by ID.
	StateGetAllocations(ctx context.Context, client address.Address, tsk TipSetKey) (map[AllocationID]Allocation, error)
	// StateGetAllAllocations returns every allocation by ID.
	StateGetAllAllocations(ctx context.Context, tsk TipSetKey) (map[AllocationID]Allocation, error)
	// StateGetAllocationForPendingDeal returns the allocation a published,
	// not yet activated, verified deal made, or nil.
	StateGetAllocationForPendingDeal(ctx context.Context, dealID abi.DealID, tsk TipSetKey) (*Allocation, error)
	// StateGetAllocationIdForPendingDeal is StateGetAllocationForPendingDeal's
	// allocation ID, 0 (NoAllocationID) when there is none.
	StateGetAllocationIdForPendingDeal(ctx context.Context, dealID abi.DealID, tsk TipSetKey) (AllocationID, error) //nolint:revive // Lotus' name
	// StateGetClaim returns a provider's claim by its ID, or nil.
	StateGetClaim(ctx context.Context, provider address.Address, id ClaimID, tsk TipSetKey) (*Claim, error)
	// StateGetClaims returns a provider's claims by ID.
	StateGetClaims(ctx context.Context, provider address.Address, tsk TipSetKey) (map[ClaimID]Claim, error)
	// StateGetAllClaims returns every claim by ID.
	StateGetAllClaims(ctx context.Context, tsk TipSetKey) (map[ClaimID]Claim, error)

	// MpoolPending returns the messages waiting in the pool.
	MpoolPending(ctx context.Context, tsk TipSetKey) ([]*SignedMessage, error)
	// GasEstimateFeeCap estimates a gas fee cap for msg.
	GasEstimateFeeCap(ctx context.Context, msg *Message, maxqueueblks int64, tsk TipSetKey) (big.Int, error)
	// GasEstimateGasPremium estimates a gas premium.
	GasEstimateGasPremium(ctx context.Context, nblocksincl uint64, sender address.Address, gaslimit int64, tsk TipSetKey) (big.Int, error)
	// GasEstimateGasLimit estimates the gas msg uses.
	GasEstimateGasLimit(ctx context.Context, msg *Message, tsk TipSetKey) (int64, error)

	// WalletList returns the addresses of the keys the node holds.
	WalletList(ctx context.Context) ([]address.Address, error)
	// WalletNew makes a new key of type typ ("secp256k1" or "bls") in the
	// node's wallet.
	WalletNew(ctx context.Context, typ KeyType) (address.Address, error)
}

// NetworkName is the name of a Filecoin network, Lotus' dtypes.NetworkName.
type NetworkName string

// KeyType is a wallet key type, Lotus' types.KeyType: "secp256k1" or "bls".
type KeyType string

// Actor is an actor's entry in the state tree, Lotus' types.Actor.
type Actor struct {
	// Code identifies the kind of actor.
	Code cid.Cid
	// Head is the root of the actor's state.
	Head cid.Cid
	// Nonce counts the messages the actor sent (accounts).
	Nonce uint64
	// Balance is in attoFIL.
	Balance big.Int
	// DelegatedAddress is the actor's f4 address, if any.
	DelegatedAddress *address.Address
}

// PowerClaim is a miner's (or the network's) power, Lotus' power.Claim.
type PowerClaim struct {
	RawBytePower    abi.StoragePower
	QualityAdjPower abi.StoragePower
}

// MinerPower is what StateMinerPower returns, Lotus' api.MinerPower.
type MinerPower struct {
	MinerPower  PowerClaim
	TotalPower  PowerClaim
	HasMinPower bool
}

// BlockMessages are the messages of one block, Lotus' api.BlockMessages:
// BLS-signed messages (unsigned, their signatures are aggregated in the
// header), secp256k1-signed messages, and the CIDs of both in that order.
type BlockMessages struct {
	BlsMessages   []*Message
	SecpkMessages []*SignedMessage
	Cids          []cid.Cid
}

// APIMessage is a message with its CID, Lotus' api.Message.
type APIMessage struct {
	Cid     cid.Cid
	Message *Message
}

// Head change types of HeadChange.Type, as in Lotus.
const (
	HCRevert  = "revert"
	HCApply   = "apply"
	HCCurrent = "current"
)

// HeadChange is one event of ChainNotify, Lotus' api.HeadChange.
type HeadChange struct {
	Type string
	Val  *TipSet
}
