package chain

import (
	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	verifreg16 "github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	miner17 "github.com/filecoin-project/go-state-types/builtin/v17/miner"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/builtin/v9/miner"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/filecoin-project/go-state-types/proof"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Message is an unsigned chain message, Lotus' types.Message. It encodes as
// a 10-element CBOR tuple; its CID is dag-cbor with blake2b-256.
type Message struct {
	Version    uint64
	To         address.Address
	From       address.Address
	Nonce      uint64
	Value      abi.TokenAmount
	GasLimit   int64
	GasFeeCap  abi.TokenAmount
	GasPremium abi.TokenAmount
	Method     abi.MethodNum
	Params     []byte
}

// SignedMessage is a message with its sender's signature, Lotus'
// types.SignedMessage. A BLS-signed message's CID is its Message's CID.
type SignedMessage struct {
	Message   Message
	Signature crypto.Signature
}

// MessageReceipt is the result of executing a message.
type MessageReceipt struct {
	ExitCode   exitcode.ExitCode
	Return     []byte
	GasUsed    int64
	EventsRoot *cid.Cid // always nil on the devnet
}

// MsgLookup says where and how a message was executed, Lotus' api.MsgLookup.
type MsgLookup struct {
	Message   cid.Cid // the CID that was executed (may differ from the one asked for when replaced)
	Receipt   MessageReceipt
	ReturnDec interface{}
	TipSet    TipSetKey
	Height    abi.ChainEpoch
}

// Ticket is a block's election ticket.
type Ticket struct {
	VRFProof []byte
}

// ElectionProof proves a block producer won the election.
type ElectionProof struct {
	WinCount int64
	VRFProof []byte
}

// BeaconEntry is a randomness beacon round.
type BeaconEntry struct {
	Round uint64
	Data  []byte
}

// BlockHeader is Lotus' types.BlockHeader: a 16-element CBOR tuple whose
// blake2b-256 dag-cbor CID identifies the block.
type BlockHeader struct {
	Miner                 address.Address
	Ticket                *Ticket
	ElectionProof         *ElectionProof
	BeaconEntries         []BeaconEntry
	WinPoStProof          []proof.PoStProof
	Parents               []cid.Cid
	ParentWeight          big.Int
	Height                abi.ChainEpoch
	ParentStateRoot       cid.Cid
	ParentMessageReceipts cid.Cid
	Messages              cid.Cid
	BLSAggregate          *crypto.Signature
	Timestamp             uint64
	BlockSig              *crypto.Signature
	ForkSignaling         uint64
	ParentBaseFee         abi.TokenAmount
}

// MinerInfo is Lotus' api.MinerInfo.
type MinerInfo struct {
	Owner                      address.Address
	Worker                     address.Address
	NewWorker                  address.Address
	ControlAddresses           []address.Address
	WorkerChangeEpoch          abi.ChainEpoch
	PeerId                     *peer.ID //nolint:revive // Lotus' JSON name
	Multiaddrs                 []abi.Multiaddrs
	WindowPoStProofType        abi.RegisteredPoStProof
	SectorSize                 abi.SectorSize
	WindowPoStPartitionSectors uint64
	ConsensusFaultElapsed      abi.ChainEpoch
	PendingOwnerAddress        *address.Address
	Beneficiary                address.Address
	BeneficiaryTerm            *BeneficiaryTerm
	PendingBeneficiaryTerm     *PendingBeneficiaryChange
}

// BeneficiaryTerm is the quota a miner's beneficiary may withdraw.
type BeneficiaryTerm struct {
	Quota      abi.TokenAmount
	UsedQuota  abi.TokenAmount
	Expiration abi.ChainEpoch
}

// PendingBeneficiaryChange is a proposed, not yet approved, beneficiary.
type PendingBeneficiaryChange struct {
	NewBeneficiary        address.Address
	NewQuota              abi.TokenAmount
	NewExpiration         abi.ChainEpoch
	ApprovedByBeneficiary bool
	ApprovedByNominee     bool
}

// MarketBalance is an address' funds in the storage market actor.
type MarketBalance struct {
	Escrow big.Int
	Locked big.Int
}

// MarketDeal is a published deal and its state, Lotus' api.MarketDeal.
type MarketDeal struct {
	Proposal market.DealProposal
	State    MarketDealState
}

// MarketDealState is a published deal's on-chain progress. Epochs are -1
// until the event happens.
type MarketDealState struct {
	SectorNumber     abi.SectorNumber
	SectorStartEpoch abi.ChainEpoch
	LastUpdatedEpoch abi.ChainEpoch
	SlashEpoch       abi.ChainEpoch
}

// DealCollateralBounds is the range of provider collateral a deal may lock.
type DealCollateralBounds struct {
	Min abi.TokenAmount
	Max abi.TokenAmount
}

// APIVersion is what Version returns, Lotus' api.APIVersion.
type APIVersion struct {
	Version    string
	APIVersion uint32 // Lotus' api.Version: major<<16 | minor<<8 | patch
	BlockDelay uint64 // seconds between blocks
}

// MessageSendSpec bounds what MpoolPushMessage may spend on fees.
type MessageSendSpec struct {
	MaxFee         abi.TokenAmount
	MsgUuid        uuid.UUID //nolint:revive // Lotus' JSON name
	MaximizeFeeCap bool
}

// SectorPreCommitOnChainInfo is a pre-committed sector as Lotus returns it
// from StateSectorPreCommitInfo (the v9 actors' shape, which Lotus keeps).
type SectorPreCommitOnChainInfo = miner.SectorPreCommitOnChainInfo

// SectorOnChainInfo is a proven sector as Lotus returns it from
// StateSectorGetInfo: the newest actors' shape (with Flags and DailyFee),
// which Lotus uses for every network version.
type SectorOnChainInfo = miner17.SectorOnChainInfo

// Allocation is DataCap a verified client set aside for one provider to
// claim with one piece, Lotus' verifreg.Allocation: Client and Provider are
// actor IDs, Data the piece CID (v1), Size its padded size, TermMin and
// TermMax bound how long the sector must keep it, and Expiration is the
// last epoch it can be claimed.
type Allocation = verifreg16.Allocation

// AllocationID names an allocation among its client's; IDs are unique in
// the verified registry and start at 1 (0 is NoAllocationID).
type AllocationID = verifreg16.AllocationId

// NoAllocationID is the allocation ID that names none.
const NoAllocationID = verifreg16.NoAllocationID

// Claim is an allocation a provider claimed by proving a sector with its
// piece, Lotus' verifreg.Claim. It keeps its allocation's ID.
type Claim = verifreg16.Claim

// ClaimID names a claim among its provider's: the ID of the allocation it
// claimed.
type ClaimID = verifreg16.ClaimId
