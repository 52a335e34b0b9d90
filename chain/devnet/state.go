package devnet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/builtin/v9/miner"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/chain"
)

// Actor codes. The devnet names its actor kinds instead of using code CIDs.
const (
	codeSystem   = "system"
	codeReward   = "reward"
	codeCron     = "cron"
	codePower    = "storagepower"
	codeMarket   = "storagemarket"
	codeVerifreg = "verifiedregistry"
	codeDatacap  = "datacap"
	codeBurnt    = "burnt"
	codeAccount  = "account"
	codeMiner    = "storageminer"
)

// Singleton actor IDs, as on Filecoin.
const (
	idSystem   = 0
	idReward   = 2
	idCron     = 3
	idPower    = 4
	idMarket   = 5
	idVerifreg = 6
	idDatacap  = 7
	idBurnt    = 99
	// firstGenesisAccountID is where the genesis accounts start (Lotus
	// genesis does the same).
	firstGenesisAccountID = 100
	// firstActorID is the first ID given to actors created after genesis.
	firstActorID = 1000
)

// state is the whole devnet state: actors, market, verified registry,
// DataCap token. It is kept in memory and written as one JSON snapshot per
// block.
type state struct {
	NextID     uint64
	NextDealID abi.DealID
	Actors     map[uint64]*actorState
	Market     marketState
	Verifreg   verifregState
	Datacap    datacapState

	// byAddr maps key and robust addresses to actor IDs; rebuilt on load.
	byAddr map[address.Address]uint64
	// proposals maps pending proposal CIDs to deal IDs; rebuilt on load.
	proposals map[cid.Cid]abi.DealID
}

// actorState is one actor: balance, nonce and, for miners, the miner state.
type actorState struct {
	Code    string
	Address address.Address // key address (accounts), robust address (miners) or the ID address
	Balance abi.TokenAmount
	Nonce   uint64
	Miner   *minerState `json:",omitempty"`
}

// minerState is a storage miner actor's state.
type minerState struct {
	Owner           uint64
	Worker          uint64
	Control         []uint64
	PeerID          []byte
	Multiaddrs      [][]byte
	WindowPoStProof abi.RegisteredPoStProof
	SectorSize      abi.SectorSize
	PreCommits      map[abi.SectorNumber]*miner.SectorPreCommitOnChainInfo
	Sectors         map[abi.SectorNumber]*sectorRecord
}

// sectorRecord is a proven sector. The deal IDs are kept beside the info
// because its JSON form leaves them out.
type sectorRecord struct {
	Info    chain.SectorOnChainInfo
	DealIDs []abi.DealID
}

// marketState is the storage market actor's state.
type marketState struct {
	Escrow map[uint64]*escrow
	Deals  map[abi.DealID]*dealState
	// PendingAllocations maps a published verified deal, until it is
	// activated or times out, to the allocation its DataCap made (the
	// actors' PendingDealAllocationIds).
	PendingAllocations map[abi.DealID]verifreg.AllocationId
}

// escrow is an address' funds in the market: Balance includes Locked.
type escrow struct {
	Balance abi.TokenAmount
	Locked  abi.TokenAmount
}

// dealState is a published deal.
type dealState struct {
	Proposal    market.DealProposal `json:"-"`
	ProposalCid cid.Cid
	// PreCommitted is set while the deal is in a pre-committed sector
	// (SectorNumber) that is not proven yet.
	PreCommitted     bool
	SectorNumber     abi.SectorNumber
	SectorStartEpoch abi.ChainEpoch
	LastUpdatedEpoch abi.ChainEpoch
	SlashEpoch       abi.ChainEpoch
}

// dealStateJSON carries the proposal as CBOR: its label may be bytes, which
// the proposal's own JSON form cannot hold.
type dealStateJSON struct {
	ProposalCBOR     []byte
	ProposalCid      cid.Cid
	PreCommitted     bool
	SectorNumber     abi.SectorNumber
	SectorStartEpoch abi.ChainEpoch
	LastUpdatedEpoch abi.ChainEpoch
	SlashEpoch       abi.ChainEpoch
}

// MarshalJSON encodes the deal with its proposal as CBOR.
func (d *dealState) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	if err := d.Proposal.MarshalCBOR(&buf); err != nil {
		return nil, fmt.Errorf("encoding deal proposal: %w", err)
	}
	return json.Marshal(dealStateJSON{
		ProposalCBOR: buf.Bytes(), ProposalCid: d.ProposalCid, PreCommitted: d.PreCommitted,
		SectorNumber: d.SectorNumber, SectorStartEpoch: d.SectorStartEpoch,
		LastUpdatedEpoch: d.LastUpdatedEpoch, SlashEpoch: d.SlashEpoch,
	})
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (d *dealState) UnmarshalJSON(b []byte) error {
	var j dealStateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var p market.DealProposal
	if err := p.UnmarshalCBOR(bytes.NewReader(j.ProposalCBOR)); err != nil {
		return fmt.Errorf("decoding deal proposal: %w", err)
	}
	*d = dealState{
		Proposal: p, ProposalCid: j.ProposalCid, PreCommitted: j.PreCommitted,
		SectorNumber: j.SectorNumber, SectorStartEpoch: j.SectorStartEpoch,
		LastUpdatedEpoch: j.LastUpdatedEpoch, SlashEpoch: j.SlashEpoch,
	}
	return nil
}

// verifregState is the verified registry: its root key, verifiers with
// their allowance, the allocations clients made (by client, then
// allocation ID) and the claims providers made of them (by provider, then
// claim ID, which is the allocation's ID). The DataCap of unclaimed
// allocations is held as tokens by the registry in the DataCap actor.
type verifregState struct {
	Root      uint64
	Verifiers map[uint64]abi.StoragePower
	// Clients is the DataCap of verified clients in bytes, where devnets
	// made before the DataCap actor kept it; decodeState moves it into the
	// DataCap actor.
	Clients          map[uint64]abi.StoragePower `json:",omitempty"`
	NextAllocationID verifreg.AllocationId
	Allocations      map[uint64]map[verifreg.AllocationId]*verifreg.Allocation
	Claims           map[uint64]map[verifreg.ClaimId]*verifreg.Claim
}

// datacapState is the DataCap token actor (FRC-46): balances and
// operators' allowances in token units, 10^18 per byte of DataCap.
type datacapState struct {
	Balances   map[uint64]abi.TokenAmount
	Allowances map[uint64]map[uint64]abi.TokenAmount // owner, then operator
}

// newState makes an empty state with the singleton actors.
func newState() *state {
	s := &state{
		NextID:     firstActorID,
		NextDealID: 0,
		Actors:     map[uint64]*actorState{},
		byAddr:     map[address.Address]uint64{},
		proposals:  map[cid.Cid]abi.DealID{},
	}
	s.initMaps()
	s.addSingletons()
	return s
}

// singletons are the system actors every state has, by ID.
var singletons = map[uint64]string{
	idSystem: codeSystem, idReward: codeReward, idCron: codeCron, idPower: codePower,
	idMarket: codeMarket, idVerifreg: codeVerifreg, idDatacap: codeDatacap, idBurnt: codeBurnt,
}

// addSingletons adds the system actors a state lacks (all of them for a
// new state; the DataCap actor for a devnet made before it existed).
func (s *state) addSingletons() {
	for id, code := range singletons {
		if _, ok := s.Actors[id]; !ok {
			s.Actors[id] = &actorState{Code: code, Address: idAddr(id), Balance: big.Zero()}
		}
	}
}

// initMaps makes the maps a decoded state may lack (empty in its JSON, or
// added after the devnet that wrote it).
func (s *state) initMaps() {
	if s.Market.Escrow == nil {
		s.Market.Escrow = map[uint64]*escrow{}
	}
	if s.Market.Deals == nil {
		s.Market.Deals = map[abi.DealID]*dealState{}
	}
	if s.Market.PendingAllocations == nil {
		s.Market.PendingAllocations = map[abi.DealID]verifreg.AllocationId{}
	}
	if s.Verifreg.Verifiers == nil {
		s.Verifreg.Verifiers = map[uint64]abi.StoragePower{}
	}
	if s.Verifreg.NextAllocationID == verifreg.NoAllocationID {
		s.Verifreg.NextAllocationID = 1
	}
	if s.Verifreg.Allocations == nil {
		s.Verifreg.Allocations = map[uint64]map[verifreg.AllocationId]*verifreg.Allocation{}
	}
	if s.Verifreg.Claims == nil {
		s.Verifreg.Claims = map[uint64]map[verifreg.ClaimId]*verifreg.Claim{}
	}
	if s.Datacap.Balances == nil {
		s.Datacap.Balances = map[uint64]abi.TokenAmount{}
	}
	if s.Datacap.Allowances == nil {
		s.Datacap.Allowances = map[uint64]map[uint64]abi.TokenAmount{}
	}
	// DataCap in bytes from before the DataCap actor becomes tokens, with
	// the market as operator, as AddVerifiedClient mints them.
	for id, dc := range s.Verifreg.Clients {
		s.Datacap.Balances[id] = big.Add(s.datacapBalance(id), big.Mul(dc, builtin.TokenPrecision))
		s.setAllowance(id, idMarket, infiniteAllowance)
	}
	s.Verifreg.Clients = nil
}

// idAddr is the ID address of an actor.
func idAddr(id uint64) address.Address {
	a, err := address.NewIDAddress(id)
	if err != nil {
		panic(err) // NewIDAddress cannot fail
	}
	return a
}

// reindex rebuilds the derived maps after decoding.
func (s *state) reindex() {
	s.byAddr = make(map[address.Address]uint64, len(s.Actors))
	for id, a := range s.Actors {
		if a.Address.Protocol() != address.ID {
			s.byAddr[a.Address] = id
		}
	}
	s.proposals = make(map[cid.Cid]abi.DealID, len(s.Market.Deals))
	for id, d := range s.Market.Deals {
		s.proposals[d.ProposalCid] = id
	}
}

// encode writes the state as JSON (maps are written in key order, so equal
// states encode to equal bytes).
func (s *state) encode() ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding devnet state: %w", err)
	}
	return b, nil
}

// decodeState reads a state written by encode.
func decodeState(b []byte) (*state, error) {
	s := &state{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("decoding devnet state: %w", err)
	}
	if s.Actors == nil {
		s.Actors = map[uint64]*actorState{}
	}
	s.initMaps()
	s.addSingletons()
	for _, a := range s.Actors {
		if a.Miner != nil {
			if a.Miner.PreCommits == nil {
				a.Miner.PreCommits = map[abi.SectorNumber]*miner.SectorPreCommitOnChainInfo{}
			}
			if a.Miner.Sectors == nil {
				a.Miner.Sectors = map[abi.SectorNumber]*sectorRecord{}
			}
		}
	}
	s.reindex()
	return s, nil
}

// stateRoot is the CID standing for a state snapshot: blake2b-256 of its
// JSON encoding, with the raw codec (it is not an IPLD state tree).
func stateRoot(snapshot []byte) cid.Cid {
	c, err := cid.V1Builder{Codec: cid.Raw, MhType: multihash.BLAKE2B_MIN + 31}.Sum(snapshot)
	if err != nil {
		panic(err) // blake2b-256 is always available
	}
	return c
}

// lookupID resolves any address to an actor ID.
func (s *state) lookupID(a address.Address) (uint64, bool) {
	if a.Protocol() == address.ID {
		id, err := address.IDFromAddress(a)
		if err != nil {
			return 0, false
		}
		_, ok := s.Actors[id]
		return id, ok
	}
	id, ok := s.byAddr[a]
	return id, ok
}

// actor returns the actor at any address.
func (s *state) actor(a address.Address) (uint64, *actorState, bool) {
	id, ok := s.lookupID(a)
	if !ok {
		return 0, nil, false
	}
	return id, s.Actors[id], true
}

// newActor adds an actor with the next free ID.
func (s *state) newActor(code string, addr address.Address) (uint64, *actorState) {
	id := s.NextID
	s.NextID++
	a := &actorState{Code: code, Address: addr, Balance: big.Zero()}
	s.Actors[id] = a
	if addr.Protocol() != address.ID {
		s.byAddr[addr] = id
	}
	return id, a
}

// transfer moves funds between two existing actors; the caller has checked
// the balance.
func (s *state) transfer(from, to uint64, amount abi.TokenAmount) {
	if amount.IsZero() {
		return
	}
	s.Actors[from].Balance = big.Sub(s.Actors[from].Balance, amount)
	s.Actors[to].Balance = big.Add(s.Actors[to].Balance, amount)
}

// escrowOf returns an address' market funds, creating an empty entry.
func (s *state) escrowOf(id uint64) *escrow {
	e, ok := s.Market.Escrow[id]
	if !ok {
		e = &escrow{Balance: big.Zero(), Locked: big.Zero()}
		s.Market.Escrow[id] = e
	}
	return e
}

// sortedDealIDs returns the deal IDs in increasing order.
func (s *state) sortedDealIDs() []abi.DealID {
	ids := make([]abi.DealID, 0, len(s.Market.Deals))
	for id := range s.Market.Deals {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// sortedActorIDs returns the actor IDs in increasing order.
func (s *state) sortedActorIDs() []uint64 {
	ids := make([]uint64, 0, len(s.Actors))
	for id := range s.Actors {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// totalBalance sums every actor's balance (a conservation check for tests).
func (s *state) totalBalance() abi.TokenAmount {
	t := big.Zero()
	for _, a := range s.Actors {
		t = big.Add(t, a.Balance)
	}
	return t
}
