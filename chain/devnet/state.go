package devnet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
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
	idBurnt    = 99
	// firstGenesisAccountID is where the genesis accounts start (Lotus
	// genesis does the same).
	firstGenesisAccountID = 100
	// firstActorID is the first ID given to actors created after genesis.
	firstActorID = 1000
)

// state is the whole devnet state: actors, market, verified registry. It is
// kept in memory and written as one JSON snapshot per block.
type state struct {
	NextID     uint64
	NextDealID abi.DealID
	Actors     map[uint64]*actorState
	Market     marketState
	Verifreg   verifregState

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
// their allowance and clients with their DataCap.
type verifregState struct {
	Root      uint64
	Verifiers map[uint64]abi.StoragePower
	Clients   map[uint64]abi.StoragePower
}

// newState makes an empty state with the singleton actors.
func newState() *state {
	s := &state{
		NextID:     firstActorID,
		NextDealID: 0,
		Actors:     map[uint64]*actorState{},
		Market:     marketState{Escrow: map[uint64]*escrow{}, Deals: map[abi.DealID]*dealState{}},
		Verifreg:   verifregState{Verifiers: map[uint64]abi.StoragePower{}, Clients: map[uint64]abi.StoragePower{}},
		byAddr:     map[address.Address]uint64{},
		proposals:  map[cid.Cid]abi.DealID{},
	}
	for id, code := range map[uint64]string{
		idSystem: codeSystem, idReward: codeReward, idCron: codeCron, idPower: codePower,
		idMarket: codeMarket, idVerifreg: codeVerifreg, idBurnt: codeBurnt,
	} {
		s.Actors[id] = &actorState{Code: code, Address: idAddr(id), Balance: big.Zero()}
	}
	return s
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
	s := newState()
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("decoding devnet state: %w", err)
	}
	if s.Market.Escrow == nil {
		s.Market.Escrow = map[uint64]*escrow{}
	}
	if s.Market.Deals == nil {
		s.Market.Deals = map[abi.DealID]*dealState{}
	}
	if s.Verifreg.Verifiers == nil {
		s.Verifreg.Verifiers = map[uint64]abi.StoragePower{}
	}
	if s.Verifreg.Clients == nil {
		s.Verifreg.Clients = map[uint64]abi.StoragePower{}
	}
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
