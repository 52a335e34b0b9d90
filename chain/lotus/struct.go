// Package lotus is the JSON-RPC client of a Lotus full node (or of anything
// that serves the same API, such as chain/devnet), and the permission table
// a server of that API enforces; also the client and table of the devnet's
// own namespace (DevnetNamespace).
package lotus

import (
	"context"
	"errors"

	"github.com/filecoin-project/go-address"
	jsonrpcauth "github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/network"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
)

// anonymous is what a caller without a token gets: read only, as in Lotus.
func anonymous() []auth.Permission { return []auth.Permission{auth.Read} }

// NodeMethods has one function field per chain.Node method, tagged with the
// permission Lotus requires for it. go-jsonrpc fills it on the client side
// (jsonrpc.NewMergeClient with &s.Internal) and auth.PermissionedProxy fills
// it on the server side.
type NodeMethods struct {
	Version func(ctx context.Context) (chain.APIVersion, error) `perm:"read"`

	ChainHead              func(ctx context.Context) (*chain.TipSet, error)                                        `perm:"read"`
	ChainGetTipSetByHeight func(ctx context.Context, h abi.ChainEpoch, tsk chain.TipSetKey) (*chain.TipSet, error) `perm:"read"`

	StateNetworkVersion               func(ctx context.Context, tsk chain.TipSetKey) (network.Version, error)                                                              `perm:"read"`
	StateLookupID                     func(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (address.Address, error)                                        `perm:"read"`
	StateAccountKey                   func(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (address.Address, error)                                        `perm:"read"`
	StateMinerInfo                    func(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (chain.MinerInfo, error)                                       `perm:"read"`
	StateMarketBalance                func(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (chain.MarketBalance, error)                                    `perm:"read"`
	StateMarketStorageDeal            func(ctx context.Context, dealID abi.DealID, tsk chain.TipSetKey) (*chain.MarketDeal, error)                                         `perm:"read"`
	StateDealProviderCollateralBounds func(ctx context.Context, size abi.PaddedPieceSize, verified bool, tsk chain.TipSetKey) (chain.DealCollateralBounds, error)          `perm:"read"`
	StateVerifiedClientStatus         func(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (*abi.StoragePower, error)                                      `perm:"read"`
	StateSectorPreCommitInfo          func(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk chain.TipSetKey) (*chain.SectorPreCommitOnChainInfo, error) `perm:"read"`
	StateSectorGetInfo                func(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk chain.TipSetKey) (*chain.SectorOnChainInfo, error)          `perm:"read"`
	StateWaitMsg                      func(ctx context.Context, msg cid.Cid, confidence uint64, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error)        `perm:"read"`
	StateSearchMsg                    func(ctx context.Context, from chain.TipSetKey, msg cid.Cid, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error)     `perm:"read"`

	WalletBalance        func(ctx context.Context, addr address.Address) (big.Int, error)                        `perm:"read"`
	WalletSign           func(ctx context.Context, addr address.Address, data []byte) (*crypto.Signature, error) `perm:"sign"`
	WalletHas            func(ctx context.Context, addr address.Address) (bool, error)                           `perm:"write"`
	WalletDefaultAddress func(ctx context.Context) (address.Address, error)                                      `perm:"write"`

	MpoolGetNonce         func(ctx context.Context, addr address.Address) (uint64, error)                                                         `perm:"read"`
	MpoolPush             func(ctx context.Context, smsg *chain.SignedMessage) (cid.Cid, error)                                                   `perm:"write"`
	MpoolPushMessage      func(ctx context.Context, msg *chain.Message, spec *chain.MessageSendSpec) (*chain.SignedMessage, error)                `perm:"sign"`
	GasEstimateMessageGas func(ctx context.Context, msg *chain.Message, spec *chain.MessageSendSpec, tsk chain.TipSetKey) (*chain.Message, error) `perm:"read"`
}

// NodeStruct implements chain.Node by calling the functions in Internal, the
// way Lotus' generated API structs do. A nil function reports
// ErrNotSupported instead of panicking.
type NodeStruct struct {
	Internal NodeMethods
}

var _ chain.Node = (*NodeStruct)(nil)

// Permissioned wraps n so that every method first checks the caller's
// permissions (those of its token, read when it has none) against Lotus'
// table. Register the result on a jsonrpc server
// under the "Filecoin" namespace.
func Permissioned(n chain.Node) *NodeStruct {
	var s NodeStruct
	jsonrpcauth.PermissionedProxy(auth.All(), anonymous(), n, &s.Internal)
	return &s
}

// ErrNotSupported is returned by a NodeStruct method whose function is nil.
var ErrNotSupported = errors.New("method not supported by this node")

// Version calls Internal.Version.
func (s *NodeStruct) Version(ctx context.Context) (chain.APIVersion, error) {
	if s.Internal.Version == nil {
		return chain.APIVersion{}, ErrNotSupported
	}
	return s.Internal.Version(ctx)
}

// ChainHead calls Internal.ChainHead.
func (s *NodeStruct) ChainHead(ctx context.Context) (*chain.TipSet, error) {
	if s.Internal.ChainHead == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.ChainHead(ctx)
}

// ChainGetTipSetByHeight calls Internal.ChainGetTipSetByHeight.
func (s *NodeStruct) ChainGetTipSetByHeight(ctx context.Context, h abi.ChainEpoch, tsk chain.TipSetKey) (*chain.TipSet, error) {
	if s.Internal.ChainGetTipSetByHeight == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.ChainGetTipSetByHeight(ctx, h, tsk)
}

// StateNetworkVersion calls Internal.StateNetworkVersion.
func (s *NodeStruct) StateNetworkVersion(ctx context.Context, tsk chain.TipSetKey) (network.Version, error) {
	if s.Internal.StateNetworkVersion == nil {
		return 0, ErrNotSupported
	}
	return s.Internal.StateNetworkVersion(ctx, tsk)
}

// StateLookupID calls Internal.StateLookupID.
func (s *NodeStruct) StateLookupID(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (address.Address, error) {
	if s.Internal.StateLookupID == nil {
		return address.Undef, ErrNotSupported
	}
	return s.Internal.StateLookupID(ctx, addr, tsk)
}

// StateAccountKey calls Internal.StateAccountKey.
func (s *NodeStruct) StateAccountKey(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (address.Address, error) {
	if s.Internal.StateAccountKey == nil {
		return address.Undef, ErrNotSupported
	}
	return s.Internal.StateAccountKey(ctx, addr, tsk)
}

// StateMinerInfo calls Internal.StateMinerInfo.
func (s *NodeStruct) StateMinerInfo(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (chain.MinerInfo, error) {
	if s.Internal.StateMinerInfo == nil {
		return chain.MinerInfo{}, ErrNotSupported
	}
	return s.Internal.StateMinerInfo(ctx, maddr, tsk)
}

// StateMarketBalance calls Internal.StateMarketBalance.
func (s *NodeStruct) StateMarketBalance(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (chain.MarketBalance, error) {
	if s.Internal.StateMarketBalance == nil {
		return chain.MarketBalance{}, ErrNotSupported
	}
	return s.Internal.StateMarketBalance(ctx, addr, tsk)
}

// StateMarketStorageDeal calls Internal.StateMarketStorageDeal.
func (s *NodeStruct) StateMarketStorageDeal(ctx context.Context, dealID abi.DealID, tsk chain.TipSetKey) (*chain.MarketDeal, error) {
	if s.Internal.StateMarketStorageDeal == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateMarketStorageDeal(ctx, dealID, tsk)
}

// StateDealProviderCollateralBounds calls
// Internal.StateDealProviderCollateralBounds.
func (s *NodeStruct) StateDealProviderCollateralBounds(ctx context.Context, size abi.PaddedPieceSize, verified bool, tsk chain.TipSetKey) (chain.DealCollateralBounds, error) {
	if s.Internal.StateDealProviderCollateralBounds == nil {
		return chain.DealCollateralBounds{}, ErrNotSupported
	}
	return s.Internal.StateDealProviderCollateralBounds(ctx, size, verified, tsk)
}

// StateVerifiedClientStatus calls Internal.StateVerifiedClientStatus.
func (s *NodeStruct) StateVerifiedClientStatus(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (*abi.StoragePower, error) {
	if s.Internal.StateVerifiedClientStatus == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateVerifiedClientStatus(ctx, addr, tsk)
}

// StateSectorPreCommitInfo calls Internal.StateSectorPreCommitInfo.
func (s *NodeStruct) StateSectorPreCommitInfo(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk chain.TipSetKey) (*chain.SectorPreCommitOnChainInfo, error) {
	if s.Internal.StateSectorPreCommitInfo == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateSectorPreCommitInfo(ctx, maddr, n, tsk)
}

// StateSectorGetInfo calls Internal.StateSectorGetInfo.
func (s *NodeStruct) StateSectorGetInfo(ctx context.Context, maddr address.Address, n abi.SectorNumber, tsk chain.TipSetKey) (*chain.SectorOnChainInfo, error) {
	if s.Internal.StateSectorGetInfo == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateSectorGetInfo(ctx, maddr, n, tsk)
}

// StateWaitMsg calls Internal.StateWaitMsg.
func (s *NodeStruct) StateWaitMsg(ctx context.Context, msg cid.Cid, confidence uint64, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error) {
	if s.Internal.StateWaitMsg == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateWaitMsg(ctx, msg, confidence, limit, allowReplaced)
}

// StateSearchMsg calls Internal.StateSearchMsg.
func (s *NodeStruct) StateSearchMsg(ctx context.Context, from chain.TipSetKey, msg cid.Cid, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error) {
	if s.Internal.StateSearchMsg == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateSearchMsg(ctx, from, msg, limit, allowReplaced)
}

// WalletBalance calls Internal.WalletBalance.
func (s *NodeStruct) WalletBalance(ctx context.Context, addr address.Address) (big.Int, error) {
	if s.Internal.WalletBalance == nil {
		return big.Int{}, ErrNotSupported
	}
	return s.Internal.WalletBalance(ctx, addr)
}

// WalletSign calls Internal.WalletSign.
func (s *NodeStruct) WalletSign(ctx context.Context, addr address.Address, data []byte) (*crypto.Signature, error) {
	if s.Internal.WalletSign == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.WalletSign(ctx, addr, data)
}

// WalletHas calls Internal.WalletHas.
func (s *NodeStruct) WalletHas(ctx context.Context, addr address.Address) (bool, error) {
	if s.Internal.WalletHas == nil {
		return false, ErrNotSupported
	}
	return s.Internal.WalletHas(ctx, addr)
}

// WalletDefaultAddress calls Internal.WalletDefaultAddress.
func (s *NodeStruct) WalletDefaultAddress(ctx context.Context) (address.Address, error) {
	if s.Internal.WalletDefaultAddress == nil {
		return address.Undef, ErrNotSupported
	}
	return s.Internal.WalletDefaultAddress(ctx)
}

// MpoolGetNonce calls Internal.MpoolGetNonce.
func (s *NodeStruct) MpoolGetNonce(ctx context.Context, addr address.Address) (uint64, error) {
	if s.Internal.MpoolGetNonce == nil {
		return 0, ErrNotSupported
	}
	return s.Internal.MpoolGetNonce(ctx, addr)
}

// MpoolPush calls Internal.MpoolPush.
func (s *NodeStruct) MpoolPush(ctx context.Context, smsg *chain.SignedMessage) (cid.Cid, error) {
	if s.Internal.MpoolPush == nil {
		return cid.Undef, ErrNotSupported
	}
	return s.Internal.MpoolPush(ctx, smsg)
}

// MpoolPushMessage calls Internal.MpoolPushMessage.
func (s *NodeStruct) MpoolPushMessage(ctx context.Context, msg *chain.Message, spec *chain.MessageSendSpec) (*chain.SignedMessage, error) {
	if s.Internal.MpoolPushMessage == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.MpoolPushMessage(ctx, msg, spec)
}

// GasEstimateMessageGas calls Internal.GasEstimateMessageGas.
func (s *NodeStruct) GasEstimateMessageGas(ctx context.Context, msg *chain.Message, spec *chain.MessageSendSpec, tsk chain.TipSetKey) (*chain.Message, error) {
	if s.Internal.GasEstimateMessageGas == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.GasEstimateMessageGas(ctx, msg, spec, tsk)
}
