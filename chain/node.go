// Package chain is Ferry's view of a Filecoin chain: the subset of the Lotus
// full-node API that a storage market uses, with Lotus' method names,
// parameters and result shapes, and the chain types encoded exactly as Lotus
// encodes them (CBOR, CIDs and JSON).
//
// Two implementations exist: chain/lotus talks JSON-RPC to a real Lotus node,
// and chain/devnet is an embedded chain that follows the actors' rules for
// everything a deal touches.
package chain

import (
	"context"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/network"
	"github.com/ipfs/go-cid"
)

// Node is the part of the Lotus full-node API that Ferry uses. Method names,
// arguments and results are Lotus', so that a Lotus node and the devnet are
// interchangeable and Lotus' own clients can talk to the devnet.
//
// A TipSetKey argument that is empty (EmptyTSK) means the chain head.
type Node interface {
	// Version reports the node's version and block delay.
	Version(ctx context.Context) (APIVersion, error)

	// ChainHead returns the heaviest tipset.
	ChainHead(ctx context.Context) (*TipSet, error)
	// ChainGetTipSetByHeight returns the tipset at height h on the chain
	// ending at tsk (or the previous non-null one).
	ChainGetTipSetByHeight(ctx context.Context, h abi.ChainEpoch, tsk TipSetKey) (*TipSet, error)

	// StateNetworkVersion returns the network version at tsk.
	StateNetworkVersion(ctx context.Context, tsk TipSetKey) (network.Version, error)
	// StateLookupID resolves an address to its ID address.
	StateLookupID(ctx context.Context, addr address.Address, tsk TipSetKey) (address.Address, error)
	// StateAccountKey resolves an ID address of an account to its key
	// (f1/f3) address.
	StateAccountKey(ctx context.Context, addr address.Address, tsk TipSetKey) (address.Address, error)
	// StateMinerInfo returns a miner actor's owner, worker, peer ID,
	// multiaddrs and sector size.
	StateMinerInfo(ctx context.Context, maddr address.Address, tsk TipSetKey) (MinerInfo, error)
	// StateMarketBalance returns an address' escrow and locked balance in
	// the storage market actor.
	StateMarketBalance(ctx context.Context, addr address.Address, tsk TipSetKey) (MarketBalance, error)
	// StateMarketStorageDeal returns a published deal by its chain deal ID.
	StateMarketStorageDeal(ctx context.Context, dealID abi.DealID, tsk TipSetKey) (*MarketDeal, error)
	// StateDealProviderCollateralBounds returns the provider collateral a
	// deal of the given size must lock.
	StateDealProviderCollateralBounds(ctx context.Context, size abi.PaddedPieceSize, verified bool, tsk TipSetKey) (DealCollateralBounds, error)
	// StateVerifiedClientStatus returns a verified client's DataCap, or nil
	// when the address is not a verified client.
	StateVerifiedClientStatus(ctx context.Context, addr address.Address, tsk TipSetKey) (*abi.StoragePower, error)
	// StateSectorPreCommitInfo returns a pre-committed sector, or nil.
	StateSectorPreCommitInfo(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk TipSetKey) (*SectorPreCommitOnChainInfo, error)
	// StateSectorGetInfo returns a proven sector, or nil.
	StateSectorGetInfo(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk TipSetKey) (*SectorOnChainInfo, error)
	// StateWaitMsg waits until the message is executed and has confidence
	// epochs on top, searching back at most limit epochs (-1: no limit).
	StateWaitMsg(ctx context.Context, msg cid.Cid, confidence uint64, limit abi.ChainEpoch, allowReplaced bool) (*MsgLookup, error)
	// StateSearchMsg looks for an executed message without waiting; nil
	// when it has not been executed.
	StateSearchMsg(ctx context.Context, from TipSetKey, msg cid.Cid, limit abi.ChainEpoch, allowReplaced bool) (*MsgLookup, error)

	// WalletBalance returns an address' balance in attoFIL.
	WalletBalance(ctx context.Context, addr address.Address) (big.Int, error)
	// WalletSign signs data with a key held by the node.
	WalletSign(ctx context.Context, addr address.Address, data []byte) (*crypto.Signature, error)
	// WalletHas reports whether the node holds the key of addr.
	WalletHas(ctx context.Context, addr address.Address) (bool, error)
	// WalletDefaultAddress returns the node's default wallet address.
	WalletDefaultAddress(ctx context.Context) (address.Address, error)

	// MpoolGetNonce returns the next nonce for addr, counting pending
	// messages.
	MpoolGetNonce(ctx context.Context, addr address.Address) (uint64, error)
	// MpoolPush adds a message signed elsewhere to the message pool.
	MpoolPush(ctx context.Context, smsg *SignedMessage) (cid.Cid, error)
	// MpoolPushMessage fills nonce and gas, signs with a key the node holds
	// and pushes the message.
	MpoolPushMessage(ctx context.Context, msg *Message, spec *MessageSendSpec) (*SignedMessage, error)
	// GasEstimateMessageGas fills in GasLimit, GasFeeCap and GasPremium.
	GasEstimateMessageGas(ctx context.Context, msg *Message, spec *MessageSendSpec, tsk TipSetKey) (*Message, error)
}
