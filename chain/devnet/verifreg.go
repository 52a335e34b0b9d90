package devnet

import (
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/verifreg"
	"github.com/filecoin-project/go-state-types/exitcode"
)

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
		if _, ok := s.Verifreg.Clients[id]; ok {
			return nil, abort(exitcode.ErrIllegalArgument, "f0%d is a verified client", id)
		}
	} else {
		id = create()
	}
	s.Verifreg.Verifiers[id] = p.Allowance
	return nil, nil
}

// verifregAddVerifiedClient grants DataCap to a client. The caller is a
// verifier (spending its allowance) or, on the devnet, the root key itself
// (with no limit).
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
	if p.Allowance.Int == nil || p.Allowance.Sign() <= 0 {
		return nil, abort(exitcode.ErrIllegalArgument, "allowance %s must be positive", p.Allowance)
	}
	if isVerifier && allowance.LessThan(p.Allowance) {
		return nil, abort(exitcode.ErrIllegalArgument, "verifier f0%d has %s of allowance left, less than %s", c.caller, allowance, p.Allowance)
	}
	id, create, err := s.resolveAccount(p.Address)
	if err != nil {
		return nil, err
	}
	if create == nil {
		if id == s.Verifreg.Root {
			return nil, abort(exitcode.ErrIllegalArgument, "the root key cannot be a verified client")
		}
		if _, ok := s.Verifreg.Verifiers[id]; ok {
			return nil, abort(exitcode.ErrIllegalArgument, "verifier f0%d cannot be a verified client", id)
		}
	} else {
		id = create()
	}
	if isVerifier {
		s.Verifreg.Verifiers[c.caller] = big.Sub(allowance, p.Allowance)
	}
	cur, ok := s.Verifreg.Clients[id]
	if !ok {
		cur = big.Zero()
	}
	s.Verifreg.Clients[id] = big.Add(cur, p.Allowance)
	return nil, nil
}
