package devnet

import (
	"bytes"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v16/datacap"
	"github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	"github.com/filecoin-project/go-state-types/exitcode"
)

// The DataCap actor (f07) is an FRC-46 token whose governor is the verified
// registry: the registry mints DataCap to verified clients (one token,
// 10^18 units, per byte), and tokens move only to the registry (a client
// making allocations) or from it (an expired allocation refunded). Every
// transfer to the registry runs its receiver hook, which must accept the
// transfer or the transfer fails.

// frc46TokenType is the receiver hook's type for FRC-46 tokens, the FRC-42
// hash of "FRC46".
var frc46TokenType = verifreg.ReceiverType(builtin.MustGenerateFRCMethodNum("FRC46"))

// infiniteAllowance is the allowance Mint gives the operators it names
// (the market actor), as builtin-actors: 10^21 tokens.
var infiniteAllowance = big.Mul(big.MustFromString("1000000000000000000000"), builtin.TokenPrecision)

// datacapBalance returns an actor's DataCap tokens.
func (s *state) datacapBalance(id uint64) abi.TokenAmount {
	if b, ok := s.Datacap.Balances[id]; ok {
		return b
	}
	return big.Zero()
}

// setDatacapBalance stores a balance, dropping empty ones.
func (s *state) setDatacapBalance(id uint64, b abi.TokenAmount) {
	if b.IsZero() {
		delete(s.Datacap.Balances, id)
		return
	}
	s.Datacap.Balances[id] = b
}

// allowance returns what operator may transfer of owner's tokens.
func (s *state) allowance(owner, operator uint64) abi.TokenAmount {
	if a, ok := s.Datacap.Allowances[owner][operator]; ok {
		return a
	}
	return big.Zero()
}

// setAllowance stores an allowance, dropping empty ones.
func (s *state) setAllowance(owner, operator uint64, a abi.TokenAmount) {
	m := s.Datacap.Allowances[owner]
	if a.IsZero() {
		delete(m, operator)
		if len(m) == 0 {
			delete(s.Datacap.Allowances, owner)
		}
		return
	}
	if m == nil {
		m = map[uint64]abi.TokenAmount{}
		s.Datacap.Allowances[owner] = m
	}
	m[operator] = a
}

// checkTokenAmount refuses a negative amount or one that is not whole
// tokens (the DataCap token's granularity is one token, 10^18 units).
func checkTokenAmount(a abi.TokenAmount) error {
	if a.Int == nil || a.Sign() < 0 {
		return abort(exitcode.ErrIllegalArgument, "token amount %s is negative", a)
	}
	if rem := big.Mod(a, builtin.TokenPrecision); !rem.IsZero() {
		return abort(exitcode.ErrIllegalArgument, "token amount %s is not a multiple of the granularity %s", a, builtin.TokenPrecision)
	}
	return nil
}

// tokensToBytes converts DataCap tokens to bytes of DataCap.
func tokensToBytes(a abi.TokenAmount) abi.StoragePower {
	return big.Div(a, builtin.TokenPrecision)
}

// bytesToTokens converts bytes of DataCap to tokens.
func bytesToTokens(n abi.StoragePower) abi.TokenAmount {
	return big.Mul(n, builtin.TokenPrecision)
}

// datacapMint creates tokens for an address (creating its account if it
// has none) and gives each operator an unlimited allowance over them. Only
// the verified registry may mint.
func (v *vm) datacapMint(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	if c.caller != idVerifreg {
		return nil, abort(exitcode.ErrForbidden, "caller f0%d is not the governor f0%d", c.caller, idVerifreg)
	}
	var p datacap.MintParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	if err := checkTokenAmount(p.Amount); err != nil {
		return nil, err
	}
	s := v.st
	operators := make([]uint64, 0, len(p.Operators))
	for _, o := range p.Operators {
		id, ok := s.lookupID(o)
		if !ok {
			return nil, abort(exitcode.ErrNotFound, "operator %s has no actor", o)
		}
		operators = append(operators, id)
	}
	to, create, err := s.resolveAccount(p.To)
	if err != nil {
		return nil, err
	}
	if create != nil {
		to = create()
	}
	bal := big.Add(s.datacapBalance(to), p.Amount)
	s.setDatacapBalance(to, bal)
	for _, o := range operators {
		s.setAllowance(to, o, infiniteAllowance)
	}
	return encodeReturn(&datacap.MintReturn{Balance: bal, Supply: s.datacapSupply(), RecipientData: []byte{}})
}

// datacapSupply is the sum of every balance.
func (s *state) datacapSupply() abi.TokenAmount {
	t := big.Zero()
	for _, b := range s.Datacap.Balances {
		t = big.Add(t, b)
	}
	return t
}

// datacapBalanceOf returns an address' tokens (zero for an address with no
// actor or no tokens).
func (v *vm) datacapBalanceOf(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var a address.Address
	if err := decodeParams(c.params, &a); err != nil {
		return nil, err
	}
	bal := big.Zero()
	if id, ok := v.st.lookupID(a); ok {
		bal = v.st.datacapBalance(id)
	}
	return encodeReturn(&bal)
}

// datacapAllowance returns what an operator may transfer of an owner's
// tokens.
func (v *vm) datacapAllowance(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p datacap.GetAllowanceParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	a := big.Zero()
	owner, ok1 := v.st.lookupID(p.Owner)
	operator, ok2 := v.st.lookupID(p.Operator)
	if ok1 && ok2 {
		a = v.st.allowance(owner, operator)
	}
	return encodeReturn(&a)
}

// datacapTransfer moves the caller's tokens to the verified registry,
// whose receiver hook turns OperatorData into allocations (or, for the
// registry itself, moves tokens back to a client). Any other transfer is
// forbidden.
func (v *vm) datacapTransfer(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p datacap.TransferParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	from, to, hookData, err := v.moveTokens(c, c.caller, p.To, p.Amount, p.OperatorData)
	if err != nil {
		return nil, err
	}
	return encodeReturn(&datacap.TransferReturn{FromBalance: v.st.datacapBalance(from), ToBalance: v.st.datacapBalance(to), RecipientData: hookData})
}

// datacapTransferFrom moves an owner's tokens to the verified registry on
// the owner's behalf, spending the caller's allowance (the market actor
// making the allocations of verified deals).
func (v *vm) datacapTransferFrom(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p datacap.TransferFromParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	s := v.st
	owner, ok := s.lookupID(p.From)
	if !ok {
		return nil, abort(exitcode.ErrNotFound, "owner %s has no actor", p.From)
	}
	if to, ok := s.lookupID(p.To); ok && to != idVerifreg {
		return nil, abort(exitcode.ErrForbidden, "transfer not allowed from %s to %s (governor is f0%d)", p.From, p.To, idVerifreg)
	}
	allowed := s.allowance(owner, c.caller)
	if err := checkTokenAmount(p.Amount); err != nil {
		return nil, err
	}
	if allowed.LessThan(p.Amount) {
		return nil, abort(exitcode.ErrInsufficientFunds, "operator f0%d may transfer %s of f0%d's tokens, less than %s", c.caller, allowed, owner, p.Amount)
	}
	from, to, hookData, err := v.moveTokens(c, owner, p.To, p.Amount, p.OperatorData)
	if err != nil {
		return nil, err
	}
	left := big.Sub(allowed, p.Amount)
	s.setAllowance(owner, c.caller, left)
	return encodeReturn(&datacap.TransferFromReturn{
		FromBalance: s.datacapBalance(from), ToBalance: s.datacapBalance(to), Allowance: left, RecipientData: hookData,
	})
}

// moveTokens moves amount of from's tokens to toAddr, which must be the
// verified registry unless from is; a transfer to the registry runs its
// receiver hook with operatorData, whose return is the recipient data. It
// is run by an atomic method: a refused hook undoes the move.
func (v *vm) moveTokens(c *call, from uint64, toAddr address.Address, amount abi.TokenAmount, operatorData []byte) (fromID, toID uint64, hookData []byte, err error) {
	s := v.st
	to, ok := s.lookupID(toAddr)
	if !ok {
		return 0, 0, nil, abort(exitcode.ErrIllegalArgument, "recipient %s has no actor", toAddr)
	}
	if to != idVerifreg && from != idVerifreg {
		return 0, 0, nil, abort(exitcode.ErrForbidden, "transfer not allowed from f0%d to f0%d (governor is f0%d)", from, to, idVerifreg)
	}
	if err := checkTokenAmount(amount); err != nil {
		return 0, 0, nil, err
	}
	bal := s.datacapBalance(from)
	if bal.LessThan(amount) {
		return 0, 0, nil, abort(exitcode.ErrInsufficientFunds, "f0%d holds %s DataCap tokens, less than the %s to transfer", from, bal, amount)
	}
	s.setDatacapBalance(from, big.Sub(bal, amount))
	s.setDatacapBalance(to, big.Add(s.datacapBalance(to), amount))
	if to != idVerifreg {
		return from, to, []byte{}, nil // accounts accept any tokens
	}
	var payload bytes.Buffer
	received := FRC46TokenReceived{From: from, To: to, Operator: c.caller, Amount: amount, OperatorData: operatorData, TokenData: []byte{}}
	if err := received.MarshalCBOR(&payload); err != nil {
		return 0, 0, nil, abort(exitcode.ErrSerialization, "encoding the receiver hook payload: %v", err)
	}
	hookData, err = v.send(c, to, builtin.MethodsVerifiedRegistry.UniversalReceiverHook,
		&verifreg.UniversalReceiverParams{Type_: frc46TokenType, Payload: payload.Bytes()})
	if err != nil {
		return 0, 0, nil, err
	}
	return from, to, hookData, nil
}

// datacapBurn destroys some of the caller's own tokens (the verified
// registry burning what claims used).
func (v *vm) datacapBurn(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p datacap.BurnParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	if err := checkTokenAmount(p.Amount); err != nil {
		return nil, err
	}
	s := v.st
	bal := s.datacapBalance(c.caller)
	if bal.LessThan(p.Amount) {
		return nil, abort(exitcode.ErrInsufficientFunds, "f0%d holds %s DataCap tokens, less than the %s to burn", c.caller, bal, p.Amount)
	}
	left := big.Sub(bal, p.Amount)
	s.setDatacapBalance(c.caller, left)
	return encodeReturn(&datacap.BurnReturn{Balance: left})
}
