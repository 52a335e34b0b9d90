package devnet

import (
	"sort"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/batch"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v16/datacap"
	"github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	"github.com/filecoin-project/go-state-types/exitcode"
)

// Verified registry policy, as in the actors.
const (
	// minAllocationSize is the smallest allocation, and the smallest
	// DataCap grant: 1 MiB.
	minAllocationSize = verifreg.MinimumVerifiedAllocationSize
	// minAllocationTerm is the shortest TermMin: 180 days.
	minAllocationTerm = verifreg.MinimumVerifiedAllocationTerm
	// maxAllocationTerm is the longest TermMax: 5 years.
	maxAllocationTerm = verifreg.MaximumVerifiedAllocationTerm
	// maxAllocationExpiration is how far ahead of now an allocation may
	// expire: 60 days.
	maxAllocationExpiration = verifreg.MaximumVerifiedAllocationExpiration
)

// batchOf makes a BatchReturn from one exit code per item.
func batchOf(codes []exitcode.ExitCode) batch.BatchReturn {
	b := batch.BatchReturn{FailCodes: []batch.FailCode{}}
	for i, c := range codes {
		if c == exitcode.Ok {
			b.SuccessCount++
		} else {
			b.FailCodes = append(b.FailCodes, batch.FailCode{Idx: uint64(i), Code: c})
		}
	}
	return b
}

// verifregAddVerifier lets the root key make an address a verifier with an
// allowance of DataCap it may grant.
func (v *vm) verifregAddVerifier(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p verifreg.AddVerifierParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	s := v.st
	if c.caller != s.Verifreg.Root {
		return nil, abort(exitcode.ErrForbidden, "caller f0%d is not the verified registry's root key", c.caller)
	}
	if p.Allowance.Int == nil || p.Allowance.Sign() <= 0 {
		return nil, abort(exitcode.ErrIllegalArgument, "allowance %s must be positive", p.Allowance)
	}
	id, create, err := s.resolveAccount(p.Address)
	if err != nil {
		return nil, err
	}
	if create == nil {
		if id == s.Verifreg.Root {
			return nil, abort(exitcode.ErrIllegalArgument, "the root key cannot be a verifier")
		}
		if s.datacapBalance(id).Sign() > 0 {
			return nil, abort(exitcode.ErrIllegalArgument, "f0%d is a verified client", id)
		}
	} else {
		id = create()
	}
	s.Verifreg.Verifiers[id] = p.Allowance
	return nil, nil
}

// verifregAddVerifiedClient grants DataCap to a client: it mints DataCap
// tokens to the client with the market actor as operator (so that verified
// deals can spend them). The caller is a verifier (spending its allowance)
// or, on the devnet, the root key itself (with no limit).
func (v *vm) verifregAddVerifiedClient(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p verifreg.AddVerifiedClientParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	s := v.st
	allowance, isVerifier := s.Verifreg.Verifiers[c.caller]
	isRoot := c.caller == s.Verifreg.Root
	if !isVerifier && !isRoot {
		return nil, abort(exitcode.ErrForbidden, "caller f0%d is not a verifier", c.caller)
	}
	if p.Allowance.Int == nil || p.Allowance.LessThan(big.NewInt(minAllocationSize)) {
		return nil, abort(exitcode.ErrIllegalArgument, "allowance %s is below the minimum of %d bytes", p.Allowance, minAllocationSize)
	}
	if isVerifier && allowance.LessThan(p.Allowance) {
		return nil, abort(exitcode.ErrIllegalArgument, "verifier f0%d has %s of allowance left, less than %s", c.caller, allowance, p.Allowance)
	}
	if id, ok := s.lookupID(p.Address); ok {
		if id == s.Verifreg.Root {
			return nil, abort(exitcode.ErrIllegalArgument, "the root key cannot be a verified client")
		}
		if _, ok := s.Verifreg.Verifiers[id]; ok {
			return nil, abort(exitcode.ErrIllegalArgument, "verifier f0%d cannot be a verified client", id)
		}
	}
	if isVerifier {
		s.Verifreg.Verifiers[c.caller] = big.Sub(allowance, p.Allowance)
	}
	_, err := v.send(c, idDatacap, builtin.MethodsDatacap.MintExported, &datacap.MintParams{
		To: p.Address, Amount: bytesToTokens(p.Allowance), Operators: []address.Address{idAddr(idMarket)},
	})
	if err != nil {
		return nil, err
	}
	return nil, nil
}

// validateAllocationRequest checks one request as the registry does
// before it creates the allocation.
func (v *vm) validateAllocationRequest(epoch abi.ChainEpoch, r *verifreg.AllocationRequest) error {
	switch {
	case r.Size < minAllocationSize:
		return abort(exitcode.ErrIllegalArgument, "allocation size %d is below the minimum %d", r.Size, minAllocationSize)
	case r.TermMin < minAllocationTerm:
		return abort(exitcode.ErrIllegalArgument, "allocation term min %d is below the limit %d", r.TermMin, minAllocationTerm)
	case r.TermMax > maxAllocationTerm:
		return abort(exitcode.ErrIllegalArgument, "allocation term max %d is above the limit %d", r.TermMax, maxAllocationTerm)
	case r.TermMin > r.TermMax:
		return abort(exitcode.ErrIllegalArgument, "allocation term min %d exceeds term max %d", r.TermMin, r.TermMax)
	case r.Expiration < epoch:
		return abort(exitcode.ErrIllegalArgument, "allocation expiration %d has passed (now %d)", r.Expiration, epoch)
	case r.Expiration > epoch+maxAllocationExpiration:
		return abort(exitcode.ErrIllegalArgument, "allocation expiration %d is more than %d epochs after now (%d)", r.Expiration, maxAllocationExpiration, epoch)
	}
	if a, ok := v.st.Actors[uint64(r.Provider)]; !ok || a.Code != codeMiner {
		return abort(exitcode.ErrIllegalArgument, "allocation provider f0%d is not a miner", r.Provider)
	}
	return nil
}

// verifregReceive is the registry's receiver hook, which the DataCap actor
// calls when tokens are transferred to the registry: the operator data are
// AllocationRequests, and the tokens must pay for them exactly (one token
// per byte of every new allocation and of every claim extended). The
// allocations are made for the tokens' owner. It fails, and with it the
// transfer, if any request is invalid.
func (v *vm) verifregReceive(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	if c.caller != idDatacap {
		return nil, abort(exitcode.ErrForbidden, "caller f0%d is not the DataCap token actor f0%d", c.caller, idDatacap)
	}
	var p verifreg.UniversalReceiverParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	if p.Type_ != frc46TokenType {
		return nil, abort(exitcode.ErrIllegalArgument, "token type %d is not FRC-46 (%d)", p.Type_, frc46TokenType)
	}
	var got FRC46TokenReceived
	if err := decodeParams(p.Payload, &got); err != nil {
		return nil, err
	}
	if got.To != c.receiver {
		return nil, abort(exitcode.ErrIllegalArgument, "tokens were sent to f0%d, not to the registry f0%d", got.To, c.receiver)
	}
	var reqs verifreg.AllocationRequests
	if err := decodeParams(got.OperatorData, &reqs); err != nil {
		return nil, err
	}
	s := v.st
	total, extended := big.Zero(), big.Zero()
	for i := range reqs.Allocations {
		r := &reqs.Allocations[i]
		if err := v.validateAllocationRequest(c.epoch, r); err != nil {
			return nil, err
		}
		total = big.Add(total, big.NewInt(int64(r.Size)))
	}
	extensions := make([]*verifreg.Claim, 0, len(reqs.Extensions))
	for _, x := range reqs.Extensions {
		cl, err := v.validateClaimExtension(c.epoch, &x)
		if err != nil {
			return nil, err
		}
		extensions = append(extensions, cl)
		total = big.Add(total, big.NewInt(int64(cl.Size)))
		extended = big.Add(extended, big.NewInt(int64(cl.Size)))
	}
	if !bytesToTokens(total).Equals(got.Amount) {
		return nil, abort(exitcode.ErrIllegalArgument, "allocations and extensions total %s bytes, but %s DataCap was received", total, tokensToBytes(got.Amount))
	}
	// The tokens of extensions are spent now; those of new allocations
	// when they are claimed (or returned when they expire).
	if extended.Sign() > 0 {
		if _, err := v.send(c, idDatacap, builtin.MethodsDatacap.BurnExported, &datacap.BurnParams{Amount: bytesToTokens(extended)}); err != nil {
			return nil, err
		}
	}
	ret := verifreg.AllocationsResponse{
		AllocationResults: batch.BatchReturn{SuccessCount: uint64(len(reqs.Allocations)), FailCodes: []batch.FailCode{}},
		ExtensionResults:  batch.BatchReturn{SuccessCount: uint64(len(reqs.Extensions)), FailCodes: []batch.FailCode{}},
		NewAllocations:    make([]verifreg.AllocationId, 0, len(reqs.Allocations)),
	}
	for _, r := range reqs.Allocations {
		id := s.Verifreg.NextAllocationID
		s.Verifreg.NextAllocationID++
		s.putAllocation(got.From, id, &verifreg.Allocation{
			Client: abi.ActorID(got.From), Provider: r.Provider, Data: r.Data, Size: r.Size,
			TermMin: r.TermMin, TermMax: r.TermMax, Expiration: r.Expiration,
		})
		ret.NewAllocations = append(ret.NewAllocations, id)
	}
	for i, x := range reqs.Extensions {
		extensions[i].TermMax = x.TermMax
	}
	return encodeReturn(&ret)
}

// validateClaimExtension checks a request to raise a claim's TermMax,
// paid with new DataCap, and returns the claim.
func (v *vm) validateClaimExtension(epoch abi.ChainEpoch, x *verifreg.ClaimExtensionRequest) (*verifreg.Claim, error) {
	cl, ok := v.st.Verifreg.Claims[uint64(x.Provider)][x.Claim]
	if !ok {
		return nil, abort(exitcode.ErrNotFound, "no claim %d for provider f0%d", x.Claim, x.Provider)
	}
	if limit := epoch + maxAllocationTerm - cl.TermStart; x.TermMax > limit {
		return nil, abort(exitcode.ErrIllegalArgument, "term max %d for claim %d exceeds the maximum %d at epoch %d", x.TermMax, x.Claim, limit, epoch)
	}
	if x.TermMax <= cl.TermMax {
		return nil, abort(exitcode.ErrIllegalArgument, "term max %d for claim %d is not larger than its term max %d", x.TermMax, x.Claim, cl.TermMax)
	}
	if end := cl.TermStart + cl.TermMax; epoch > end {
		return nil, abort(exitcode.ErrForbidden, "claim %d expired at %d (now %d)", x.Claim, end, epoch)
	}
	return cl, nil
}

// putAllocation stores an allocation under its client.
func (s *state) putAllocation(client uint64, id verifreg.AllocationId, a *verifreg.Allocation) {
	m := s.Verifreg.Allocations[client]
	if m == nil {
		m = map[verifreg.AllocationId]*verifreg.Allocation{}
		s.Verifreg.Allocations[client] = m
	}
	m[id] = a
}

// removeAllocation deletes a client's allocation.
func (s *state) removeAllocation(client uint64, id verifreg.AllocationId) {
	m := s.Verifreg.Allocations[client]
	delete(m, id)
	if len(m) == 0 {
		delete(s.Verifreg.Allocations, client)
	}
}

// canClaim reports whether provider may claim alloc with claim in a sector
// that expires at sectorExpiry: same provider, client, piece and size, not
// expired, and the sector's remaining life within [TermMin, TermMax].
func canClaim(claim *verifreg.AllocationClaim, provider uint64, alloc *verifreg.Allocation, epoch, sectorExpiry abi.ChainEpoch) bool {
	lifetime := sectorExpiry - epoch
	return uint64(alloc.Provider) == provider &&
		claim.Client == alloc.Client &&
		claim.Data.Equals(alloc.Data) &&
		claim.Size == alloc.Size &&
		epoch <= alloc.Expiration &&
		lifetime >= alloc.TermMin &&
		lifetime <= alloc.TermMax
}

// verifregClaimAllocations is called by a miner proving sectors: each
// sector's claims succeed or fail together (a missing allocation fails
// with ErrNotFound, one the sector may not claim with ErrForbidden), and
// with AllOrNothing any failure fails the call. A claim is stored under
// the provider with the allocation's ID, the allocation is removed, and
// the DataCap tokens it held are burnt.
func (v *vm) verifregClaimAllocations(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	s := v.st
	if a := s.Actors[c.caller]; a == nil || a.Code != codeMiner {
		return nil, abort(exitcode.ErrForbidden, "caller f0%d is not a miner", c.caller)
	}
	var p verifreg.ClaimAllocationsParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	if len(p.Sectors) == 0 {
		return nil, abort(exitcode.ErrIllegalArgument, "claim allocations called with no claims")
	}
	provider := c.caller
	type key struct {
		client uint64
		id     verifreg.AllocationId
	}
	claimed := map[key]bool{}
	codes := make([]exitcode.ExitCode, len(p.Sectors))
	for i, sec := range p.Sectors {
		inSector := map[key]bool{}
		for j := range sec.Claims {
			cl := &sec.Claims[j]
			k := key{uint64(cl.Client), cl.AllocationId}
			alloc, ok := s.Verifreg.Allocations[k.client][k.id]
			if !ok || claimed[k] || inSector[k] {
				codes[i] = exitcode.ErrNotFound
				break
			}
			if !canClaim(cl, provider, alloc, c.epoch, sec.SectorExpiry) {
				codes[i] = exitcode.ErrForbidden
				break
			}
			inSector[k] = true
		}
		if codes[i] == exitcode.Ok {
			for k := range inSector {
				claimed[k] = true
			}
		}
	}
	ret := verifreg.ClaimAllocationsReturn{BatchInfo: batchOf(codes), ClaimedSpace: big.Zero()}
	if p.AllOrNothing && !ret.BatchInfo.AllOk() {
		return nil, abort(exitcode.ErrIllegalArgument, "claim failed with all-or-nothing: codes %v", ret.BatchInfo.Codes())
	}
	for i, sec := range p.Sectors {
		if codes[i] != exitcode.Ok {
			continue
		}
		for _, cl := range sec.Claims {
			alloc := s.Verifreg.Allocations[uint64(cl.Client)][cl.AllocationId]
			s.putClaim(provider, verifreg.ClaimId(cl.AllocationId), &verifreg.Claim{
				Provider: abi.ActorID(provider), Client: alloc.Client, Data: alloc.Data, Size: alloc.Size,
				TermMin: alloc.TermMin, TermMax: alloc.TermMax, TermStart: c.epoch, Sector: sec.Sector,
			})
			s.removeAllocation(uint64(cl.Client), cl.AllocationId)
			ret.ClaimedSpace = big.Add(ret.ClaimedSpace, big.NewInt(int64(alloc.Size)))
		}
	}
	if ret.ClaimedSpace.Sign() > 0 {
		if _, err := v.send(c, idDatacap, builtin.MethodsDatacap.BurnExported, &datacap.BurnParams{Amount: bytesToTokens(ret.ClaimedSpace)}); err != nil {
			return nil, err
		}
	}
	return encodeReturn(&ret)
}

// putClaim stores a claim under its provider.
func (s *state) putClaim(provider uint64, id verifreg.ClaimId, cl *verifreg.Claim) {
	m := s.Verifreg.Claims[provider]
	if m == nil {
		m = map[verifreg.ClaimId]*verifreg.Claim{}
		s.Verifreg.Claims[provider] = m
	}
	m[id] = cl
}

// verifregGetClaims returns some of a provider's claims; a missing one is
// an ErrNotFound in the batch.
func (v *vm) verifregGetClaims(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p verifreg.GetClaimsParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	codes := make([]exitcode.ExitCode, len(p.ClaimIds))
	ret := verifreg.GetClaimsReturn{Claims: []verifreg.Claim{}}
	for i, id := range p.ClaimIds {
		cl, ok := v.st.Verifreg.Claims[uint64(p.Provider)][id]
		if !ok {
			codes[i] = exitcode.ErrNotFound
			continue
		}
		ret.Claims = append(ret.Claims, *cl)
	}
	ret.BatchInfo = batchOf(codes)
	return encodeReturn(&ret)
}

// verifregRemoveExpiredAllocations removes a client's allocations that can
// no longer be claimed (the given ones, or every expired one when none is
// given) and returns their DataCap to the client. Anyone may call it.
func (v *vm) verifregRemoveExpiredAllocations(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p verifreg.RemoveExpiredAllocationsParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	s := v.st
	client := uint64(p.Client)
	ids := p.AllocationIds
	if len(ids) == 0 {
		for id, a := range s.Verifreg.Allocations[client] {
			if c.epoch > a.Expiration {
				ids = append(ids, id)
			}
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	}
	codes := make([]exitcode.ExitCode, len(ids))
	recovered := big.Zero()
	for i, id := range ids {
		a, ok := s.Verifreg.Allocations[client][id]
		switch {
		case !ok:
			codes[i] = exitcode.ErrNotFound
		case c.epoch <= a.Expiration:
			codes[i] = exitcode.ErrForbidden
		default:
			recovered = big.Add(recovered, big.NewInt(int64(a.Size)))
			s.removeAllocation(client, id)
		}
	}
	if recovered.Sign() > 0 {
		if _, err := v.send(c, idDatacap, builtin.MethodsDatacap.TransferExported, &datacap.TransferParams{
			To: idAddr(client), Amount: bytesToTokens(recovered), OperatorData: []byte{},
		}); err != nil {
			return nil, err
		}
	}
	return encodeReturn(&verifreg.RemoveExpiredAllocationsReturn{
		Considered: append([]verifreg.AllocationId{}, ids...), Results: batchOf(codes), DataCapRecovered: recovered,
	})
}
