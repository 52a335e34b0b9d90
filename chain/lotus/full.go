package lotus

import (
	"context"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-bitfield"
	jsonrpcauth "github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/dline"
	"github.com/filecoin-project/go-state-types/network"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
)

// FullNodeMethods has one function field per method chain.FullNode adds to
// chain.Node, tagged with Lotus' permission for it.
type FullNodeMethods struct {
	ChainGetGenesis        func(ctx context.Context) (*chain.TipSet, error)                        `perm:"read"`
	ChainGetTipSet         func(ctx context.Context, tsk chain.TipSetKey) (*chain.TipSet, error)   `perm:"read"`
	ChainGetBlock          func(ctx context.Context, blk cid.Cid) (*chain.BlockHeader, error)      `perm:"read"`
	ChainGetMessage        func(ctx context.Context, mc cid.Cid) (*chain.Message, error)           `perm:"read"`
	ChainGetBlockMessages  func(ctx context.Context, blk cid.Cid) (*chain.BlockMessages, error)    `perm:"read"`
	ChainGetParentMessages func(ctx context.Context, blk cid.Cid) ([]chain.APIMessage, error)      `perm:"read"`
	ChainGetParentReceipts func(ctx context.Context, blk cid.Cid) ([]*chain.MessageReceipt, error) `perm:"read"`
	ChainNotify            func(ctx context.Context) (<-chan []*chain.HeadChange, error)           `perm:"read"`

	StateNetworkName           func(ctx context.Context) (chain.NetworkName, error)                                                                                  `perm:"read"`
	StateGetActor              func(ctx context.Context, actor address.Address, tsk chain.TipSetKey) (*chain.Actor, error)                                           `perm:"read"`
	StateActorCodeCIDs         func(ctx context.Context, nv network.Version) (map[string]cid.Cid, error)                                                             `perm:"read"`
	StateListMiners            func(ctx context.Context, tsk chain.TipSetKey) ([]address.Address, error)                                                             `perm:"read"`
	StateMinerPower            func(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (*chain.MinerPower, error)                                      `perm:"read"`
	StateMinerAvailableBalance func(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (big.Int, error)                                                `perm:"read"`
	StateMinerSectors          func(ctx context.Context, maddr address.Address, sectors *bitfield.BitField, tsk chain.TipSetKey) ([]*chain.SectorOnChainInfo, error) `perm:"read"`
	StateMinerActiveSectors    func(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) ([]*chain.SectorOnChainInfo, error)                             `perm:"read"`
	StateMinerProvingDeadline  func(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (*dline.Info, error)                                            `perm:"read"`
	StateMarketDeals           func(ctx context.Context, tsk chain.TipSetKey) (map[string]*chain.MarketDeal, error)                                                  `perm:"read"`
	StateCirculatingSupply     func(ctx context.Context, tsk chain.TipSetKey) (abi.TokenAmount, error)                                                               `perm:"read"`

	StateVerifiedRegistryRootKey       func(ctx context.Context, tsk chain.TipSetKey) (address.Address, error)                                                  `perm:"read"`
	StateGetAllocation                 func(ctx context.Context, client address.Address, id chain.AllocationID, tsk chain.TipSetKey) (*chain.Allocation, error) `perm:"read"`
	StateGetAllocations                func(ctx context.Context, client address.Address, tsk chain.TipSetKey) (map[chain.AllocationID]chain.Allocation, error)  `perm:"read"`
	StateGetAllAllocations             func(ctx context.Context, tsk chain.TipSetKey) (map[chain.AllocationID]chain.Allocation, error)                          `perm:"read"`
	StateGetAllocationForPendingDeal   func(ctx context.Context, dealID abi.DealID, tsk chain.TipSetKey) (*chain.Allocation, error)                             `perm:"read"`
	StateGetAllocationIdForPendingDeal func(ctx context.Context, dealID abi.DealID, tsk chain.TipSetKey) (chain.AllocationID, error)                            `perm:"read"`
	StateGetClaim                      func(ctx context.Context, provider address.Address, id chain.ClaimID, tsk chain.TipSetKey) (*chain.Claim, error)         `perm:"read"`
	StateGetClaims                     func(ctx context.Context, provider address.Address, tsk chain.TipSetKey) (map[chain.ClaimID]chain.Claim, error)          `perm:"read"`
	StateGetAllClaims                  func(ctx context.Context, tsk chain.TipSetKey) (map[chain.ClaimID]chain.Claim, error)                                    `perm:"read"`

	MpoolPending          func(ctx context.Context, tsk chain.TipSetKey) ([]*chain.SignedMessage, error)                                              `perm:"read"`
	GasEstimateFeeCap     func(ctx context.Context, msg *chain.Message, maxqueueblks int64, tsk chain.TipSetKey) (big.Int, error)                     `perm:"read"`
	GasEstimateGasPremium func(ctx context.Context, nblocksincl uint64, sender address.Address, gaslimit int64, tsk chain.TipSetKey) (big.Int, error) `perm:"read"`
	GasEstimateGasLimit   func(ctx context.Context, msg *chain.Message, tsk chain.TipSetKey) (int64, error)                                           `perm:"read"`

	WalletList func(ctx context.Context) ([]address.Address, error)                  `perm:"write"`
	WalletNew  func(ctx context.Context, typ chain.KeyType) (address.Address, error) `perm:"write"`
}

// FullNodeStruct implements chain.FullNode: the chain.Node methods through
// the embedded NodeStruct, the others through Internal. A nil function
// reports ErrNotSupported.
type FullNodeStruct struct {
	NodeStruct
	Internal FullNodeMethods
}

var _ chain.FullNode = (*FullNodeStruct)(nil)

// internals returns the function tables go-jsonrpc fills.
func (s *FullNodeStruct) internals() []interface{} {
	return []interface{}{&s.NodeStruct.Internal, &s.Internal}
}

// PermissionedFull wraps n as Permissioned does, for every chain.FullNode
// method. Register the result on a jsonrpc server under "Filecoin".
func PermissionedFull(n chain.FullNode) *FullNodeStruct {
	var s FullNodeStruct
	for _, out := range s.internals() {
		jsonrpcauth.PermissionedProxy(auth.All(), anonymous(), n, out)
	}
	return &s
}

// ChainGetGenesis calls Internal.ChainGetGenesis.
func (s *FullNodeStruct) ChainGetGenesis(ctx context.Context) (*chain.TipSet, error) {
	if s.Internal.ChainGetGenesis == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.ChainGetGenesis(ctx)
}

// ChainGetTipSet calls Internal.ChainGetTipSet.
func (s *FullNodeStruct) ChainGetTipSet(ctx context.Context, tsk chain.TipSetKey) (*chain.TipSet, error) {
	if s.Internal.ChainGetTipSet == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.ChainGetTipSet(ctx, tsk)
}

// ChainGetBlock calls Internal.ChainGetBlock.
func (s *FullNodeStruct) ChainGetBlock(ctx context.Context, blk cid.Cid) (*chain.BlockHeader, error) {
	if s.Internal.ChainGetBlock == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.ChainGetBlock(ctx, blk)
}

// ChainGetMessage calls Internal.ChainGetMessage.
func (s *FullNodeStruct) ChainGetMessage(ctx context.Context, mc cid.Cid) (*chain.Message, error) {
	if s.Internal.ChainGetMessage == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.ChainGetMessage(ctx, mc)
}

// ChainGetBlockMessages calls Internal.ChainGetBlockMessages.
func (s *FullNodeStruct) ChainGetBlockMessages(ctx context.Context, blk cid.Cid) (*chain.BlockMessages, error) {
	if s.Internal.ChainGetBlockMessages == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.ChainGetBlockMessages(ctx, blk)
}

// ChainGetParentMessages calls Internal.ChainGetParentMessages.
func (s *FullNodeStruct) ChainGetParentMessages(ctx context.Context, blk cid.Cid) ([]chain.APIMessage, error) {
	if s.Internal.ChainGetParentMessages == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.ChainGetParentMessages(ctx, blk)
}

// ChainGetParentReceipts calls Internal.ChainGetParentReceipts.
func (s *FullNodeStruct) ChainGetParentReceipts(ctx context.Context, blk cid.Cid) ([]*chain.MessageReceipt, error) {
	if s.Internal.ChainGetParentReceipts == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.ChainGetParentReceipts(ctx, blk)
}

// ChainNotify calls Internal.ChainNotify.
func (s *FullNodeStruct) ChainNotify(ctx context.Context) (<-chan []*chain.HeadChange, error) {
	if s.Internal.ChainNotify == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.ChainNotify(ctx)
}

// StateNetworkName calls Internal.StateNetworkName.
func (s *FullNodeStruct) StateNetworkName(ctx context.Context) (chain.NetworkName, error) {
	if s.Internal.StateNetworkName == nil {
		return "", ErrNotSupported
	}
	return s.Internal.StateNetworkName(ctx)
}

// StateGetActor calls Internal.StateGetActor.
func (s *FullNodeStruct) StateGetActor(ctx context.Context, actor address.Address, tsk chain.TipSetKey) (*chain.Actor, error) {
	if s.Internal.StateGetActor == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateGetActor(ctx, actor, tsk)
}

// StateActorCodeCIDs calls Internal.StateActorCodeCIDs.
func (s *FullNodeStruct) StateActorCodeCIDs(ctx context.Context, nv network.Version) (map[string]cid.Cid, error) {
	if s.Internal.StateActorCodeCIDs == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateActorCodeCIDs(ctx, nv)
}

// StateListMiners calls Internal.StateListMiners.
func (s *FullNodeStruct) StateListMiners(ctx context.Context, tsk chain.TipSetKey) ([]address.Address, error) {
	if s.Internal.StateListMiners == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateListMiners(ctx, tsk)
}

// StateMinerPower calls Internal.StateMinerPower.
func (s *FullNodeStruct) StateMinerPower(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (*chain.MinerPower, error) {
	if s.Internal.StateMinerPower == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateMinerPower(ctx, maddr, tsk)
}

// StateMinerAvailableBalance calls Internal.StateMinerAvailableBalance.
func (s *FullNodeStruct) StateMinerAvailableBalance(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (big.Int, error) {
	if s.Internal.StateMinerAvailableBalance == nil {
		return big.Int{}, ErrNotSupported
	}
	return s.Internal.StateMinerAvailableBalance(ctx, maddr, tsk)
}

// StateMinerSectors calls Internal.StateMinerSectors.
func (s *FullNodeStruct) StateMinerSectors(ctx context.Context, maddr address.Address, sectors *bitfield.BitField, tsk chain.TipSetKey) ([]*chain.SectorOnChainInfo, error) {
	if s.Internal.StateMinerSectors == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateMinerSectors(ctx, maddr, sectors, tsk)
}

// StateMinerActiveSectors calls Internal.StateMinerActiveSectors.
func (s *FullNodeStruct) StateMinerActiveSectors(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) ([]*chain.SectorOnChainInfo, error) {
	if s.Internal.StateMinerActiveSectors == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateMinerActiveSectors(ctx, maddr, tsk)
}

// StateMinerProvingDeadline calls Internal.StateMinerProvingDeadline.
func (s *FullNodeStruct) StateMinerProvingDeadline(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (*dline.Info, error) {
	if s.Internal.StateMinerProvingDeadline == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateMinerProvingDeadline(ctx, maddr, tsk)
}

// StateMarketDeals calls Internal.StateMarketDeals.
func (s *FullNodeStruct) StateMarketDeals(ctx context.Context, tsk chain.TipSetKey) (map[string]*chain.MarketDeal, error) {
	if s.Internal.StateMarketDeals == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateMarketDeals(ctx, tsk)
}

// StateCirculatingSupply calls Internal.StateCirculatingSupply.
func (s *FullNodeStruct) StateCirculatingSupply(ctx context.Context, tsk chain.TipSetKey) (abi.TokenAmount, error) {
	if s.Internal.StateCirculatingSupply == nil {
		return big.Int{}, ErrNotSupported
	}
	return s.Internal.StateCirculatingSupply(ctx, tsk)
}

// StateVerifiedRegistryRootKey calls Internal.StateVerifiedRegistryRootKey.
func (s *FullNodeStruct) StateVerifiedRegistryRootKey(ctx context.Context, tsk chain.TipSetKey) (address.Address, error) {
	if s.Internal.StateVerifiedRegistryRootKey == nil {
		return address.Undef, ErrNotSupported
	}
	return s.Internal.StateVerifiedRegistryRootKey(ctx, tsk)
}

// StateGetAllocation calls Internal.StateGetAllocation.
func (s *FullNodeStruct) StateGetAllocation(ctx context.Context, client address.Address, id chain.AllocationID, tsk chain.TipSetKey) (*chain.Allocation, error) {
	if s.Internal.StateGetAllocation == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateGetAllocation(ctx, client, id, tsk)
}

// StateGetAllocations calls Internal.StateGetAllocations.
func (s *FullNodeStruct) StateGetAllocations(ctx context.Context, client address.Address, tsk chain.TipSetKey) (map[chain.AllocationID]chain.Allocation, error) {
	if s.Internal.StateGetAllocations == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateGetAllocations(ctx, client, tsk)
}

// StateGetAllAllocations calls Internal.StateGetAllAllocations.
func (s *FullNodeStruct) StateGetAllAllocations(ctx context.Context, tsk chain.TipSetKey) (map[chain.AllocationID]chain.Allocation, error) {
	if s.Internal.StateGetAllAllocations == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateGetAllAllocations(ctx, tsk)
}

// StateGetAllocationForPendingDeal calls Internal.StateGetAllocationForPendingDeal.
func (s *FullNodeStruct) StateGetAllocationForPendingDeal(ctx context.Context, dealID abi.DealID, tsk chain.TipSetKey) (*chain.Allocation, error) {
	if s.Internal.StateGetAllocationForPendingDeal == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateGetAllocationForPendingDeal(ctx, dealID, tsk)
}

// StateGetAllocationIdForPendingDeal calls Internal.StateGetAllocationIdForPendingDeal.
func (s *FullNodeStruct) StateGetAllocationIdForPendingDeal(ctx context.Context, dealID abi.DealID, tsk chain.TipSetKey) (chain.AllocationID, error) { //nolint:revive // Lotus' name
	if s.Internal.StateGetAllocationIdForPendingDeal == nil {
		return chain.NoAllocationID, ErrNotSupported
	}
	return s.Internal.StateGetAllocationIdForPendingDeal(ctx, dealID, tsk)
}

// StateGetClaim calls Internal.StateGetClaim.
func (s *FullNodeStruct) StateGetClaim(ctx context.Context, provider address.Address, id chain.ClaimID, tsk chain.TipSetKey) (*chain.Claim, error) {
	if s.Internal.StateGetClaim == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateGetClaim(ctx, provider, id, tsk)
}

// StateGetClaims calls Internal.StateGetClaims.
func (s *FullNodeStruct) StateGetClaims(ctx context.Context, provider address.Address, tsk chain.TipSetKey) (map[chain.ClaimID]chain.Claim, error) {
	if s.Internal.StateGetClaims == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateGetClaims(ctx, provider, tsk)
}

// StateGetAllClaims calls Internal.StateGetAllClaims.
func (s *FullNodeStruct) StateGetAllClaims(ctx context.Context, tsk chain.TipSetKey) (map[chain.ClaimID]chain.Claim, error) {
	if s.Internal.StateGetAllClaims == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.StateGetAllClaims(ctx, tsk)
}

// MpoolPending calls Internal.MpoolPending.
func (s *FullNodeStruct) MpoolPending(ctx context.Context, tsk chain.TipSetKey) ([]*chain.SignedMessage, error) {
	if s.Internal.MpoolPending == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.MpoolPending(ctx, tsk)
}

// GasEstimateFeeCap calls Internal.GasEstimateFeeCap.
func (s *FullNodeStruct) GasEstimateFeeCap(ctx context.Context, msg *chain.Message, maxqueueblks int64, tsk chain.TipSetKey) (big.Int, error) {
	if s.Internal.GasEstimateFeeCap == nil {
		return big.Int{}, ErrNotSupported
	}
	return s.Internal.GasEstimateFeeCap(ctx, msg, maxqueueblks, tsk)
}

// GasEstimateGasPremium calls Internal.GasEstimateGasPremium.
func (s *FullNodeStruct) GasEstimateGasPremium(ctx context.Context, nblocksincl uint64, sender address.Address, gaslimit int64, tsk chain.TipSetKey) (big.Int, error) {
	if s.Internal.GasEstimateGasPremium == nil {
		return big.Int{}, ErrNotSupported
	}
	return s.Internal.GasEstimateGasPremium(ctx, nblocksincl, sender, gaslimit, tsk)
}

// GasEstimateGasLimit calls Internal.GasEstimateGasLimit.
func (s *FullNodeStruct) GasEstimateGasLimit(ctx context.Context, msg *chain.Message, tsk chain.TipSetKey) (int64, error) {
	if s.Internal.GasEstimateGasLimit == nil {
		return 0, ErrNotSupported
	}
	return s.Internal.GasEstimateGasLimit(ctx, msg, tsk)
}

// WalletList calls Internal.WalletList.
func (s *FullNodeStruct) WalletList(ctx context.Context) ([]address.Address, error) {
	if s.Internal.WalletList == nil {
		return nil, ErrNotSupported
	}
	return s.Internal.WalletList(ctx)
}

// WalletNew calls Internal.WalletNew.
func (s *FullNodeStruct) WalletNew(ctx context.Context, typ chain.KeyType) (address.Address, error) {
	if s.Internal.WalletNew == nil {
		return address.Undef, ErrNotSupported
	}
	return s.Internal.WalletNew(ctx, typ)
}
