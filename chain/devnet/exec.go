package devnet

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/ipfs/go-cid"
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/ferry-fil/ferry/chain"
)

// The gas model. Gas used is a fixed function of the message (see gasUsed),
// the base fee never moves, GasUsed×BaseFee is burnt (sent to f099) and
// GasLimit×GasPremium (capped by GasFeeCap−BaseFee) goes to the reward actor
// (f02) as the block reward of a real miner would. Unused gas is not charged:
// there is no over-estimation burn.
const (
	// BaseFee is the devnet's constant base fee in attoFIL per gas unit.
	BaseFee = 100
	// BlockGasLimit bounds the gas limits of the messages of one block.
	BlockGasLimit = 10_000_000_000
	// gasSend is the gas a plain Send (method 0) uses.
	gasSend = 500_000
	// gasMethod is the gas any actor method call uses, before params.
	gasMethod = 2_000_000
	// gasPerParamByte is added per byte of params.
	gasPerParamByte = 2_000
)

// gasUsed is what executing m costs on the devnet: a fixed schedule, so that
// GasEstimateMessageGas and execution agree.
func gasUsed(m *chain.Message) int64 {
	if m.Method == builtin.MethodSend {
		return gasSend + gasPerParamByte*int64(len(m.Params))
	}
	return gasMethod + gasPerParamByte*int64(len(m.Params))
}

// actorError aborts a method with an exit code; state is left unchanged.
type actorError struct {
	code exitcode.ExitCode
	msg  string
}

func (e *actorError) Error() string { return fmt.Sprintf("%s (exit code %d)", e.msg, e.code) }

// abort makes an actorError.
func abort(code exitcode.ExitCode, format string, args ...any) error {
	return &actorError{code: code, msg: fmt.Sprintf(format, args...)}
}

// Policy holds the chain parameters the actors check. Zero fields take the
// mainnet (or devnet) defaults described on each field.
type Policy struct {
	// MinDealDuration and MaxDealDuration bound EndEpoch−StartEpoch
	// (default 518,400 and 3,680,640 epochs: 180 and 1278 days).
	MinDealDuration, MaxDealDuration abi.ChainEpoch
	// PreCommitChallengeDelay is how many epochs after its pre-commit a
	// sector may be proven (default 5 on the devnet; 150 on mainnet).
	PreCommitChallengeDelay abi.ChainEpoch
	// MaxProveCommitDuration is how long a pre-commit waits for its proof
	// before it expires (default 30 days + the challenge delay).
	MaxProveCommitDuration abi.ChainEpoch
	// MinSectorExpiration is the shortest sector lifetime, counted from the
	// latest activation a pre-commit allows (pre-commit epoch +
	// MaxProveCommitDuration), as the actors count it (default 180 days).
	MinSectorExpiration abi.ChainEpoch
	// DealUpdatesInterval is how often, in epochs, an active deal's
	// payments are settled (default 100; always at the end too).
	DealUpdatesInterval abi.ChainEpoch
}

const epochsInDay = 2880

func (p Policy) withDefaults() Policy {
	if p.MinDealDuration == 0 {
		p.MinDealDuration = 180 * epochsInDay
	}
	if p.MaxDealDuration == 0 {
		p.MaxDealDuration = 1278 * epochsInDay
	}
	if p.PreCommitChallengeDelay == 0 {
		p.PreCommitChallengeDelay = 5
	}
	if p.MaxProveCommitDuration == 0 {
		p.MaxProveCommitDuration = 30*epochsInDay + p.PreCommitChallengeDelay
	}
	if p.MinSectorExpiration == 0 {
		p.MinSectorExpiration = 180 * epochsInDay
	}
	if p.DealUpdatesInterval == 0 {
		p.DealUpdatesInterval = 100
	}
	return p
}

// verifyFunc checks a signature by a key address (wallet.Verify).
type verifyFunc func(sig *crypto.Signature, addr address.Address, data []byte) error

// vm executes messages against a state.
type vm struct {
	st     *state
	policy Policy
	verify verifyFunc
	// commD computes an unsealed sector CID (piece.CommD).
	commD func(abi.PaddedPieceSize, []abi.PieceInfo) (cid.Cid, error)
}

// call is one method invocation.
type call struct {
	epoch    abi.ChainEpoch
	caller   uint64 // sender's actor ID
	origin   address.Address
	nonce    uint64
	value    abi.TokenAmount
	receiver uint64
	params   []byte
}

// method is an actor method: it checks everything first and changes state
// only when it returns nil. A method that calls other actors (send) is made
// atomic, so that a failure after a call that changed state undoes it.
type method func(v *vm, c *call) ([]byte, error)

// atomic makes m leave the state as it found it when it fails.
func atomic(m method) method {
	return func(v *vm, c *call) ([]byte, error) {
		return v.undoOnFailure(func() ([]byte, error) { return m(v, c) })
	}
}

// undoOnFailure runs f and, when it fails, puts the state back as it was
// before (from a snapshot taken first).
func (v *vm) undoOnFailure(f func() ([]byte, error)) ([]byte, error) {
	before, err := v.st.encode()
	if err != nil {
		return nil, abort(exitcode.ErrIllegalState, "%v", err)
	}
	ret, err := f()
	if err != nil {
		restored, derr := decodeState(before)
		if derr != nil {
			// A snapshot just encoded always decodes; if it did not, the
			// state could not be trusted either way.
			return nil, abort(exitcode.ErrIllegalState, "%v; restoring the state also failed: %v", err, derr)
		}
		*v.st = *restored
	}
	return ret, err
}

// send calls method num of actor to on behalf of the actor running c, as
// actors call each other: no value and no gas, and the callee sees
// c.receiver as its caller. The callee changes nothing when it fails.
func (v *vm) send(c *call, to uint64, num abi.MethodNum, params cbg.CBORMarshaler) ([]byte, error) {
	a, ok := v.st.Actors[to]
	if !ok {
		return nil, abort(exitcode.SysErrInvalidReceiver, "no actor f0%d", to)
	}
	m, ok := methodsOf(a.Code)[num]
	if !ok {
		return nil, abort(exitcode.SysErrInvalidMethod, "%s actor f0%d has no method %d", a.Code, to, num)
	}
	var buf bytes.Buffer
	if params != nil {
		if err := params.MarshalCBOR(&buf); err != nil {
			return nil, abort(exitcode.ErrSerialization, "encoding params of method %d: %v", num, err)
		}
	}
	return m(v, &call{epoch: c.epoch, caller: c.receiver, origin: c.origin, nonce: c.nonce, value: big.Zero(), receiver: to, params: buf.Bytes()})
}

// exitCodeOf returns the exit code an actor error carries (Ok for nil).
func exitCodeOf(err error) exitcode.ExitCode {
	if err == nil {
		return exitcode.Ok
	}
	var ae *actorError
	if errors.As(err, &ae) {
		return ae.code
	}
	return exitcode.ErrIllegalState
}

// methodsOf returns an actor kind's methods.
func methodsOf(code string) map[abi.MethodNum]method {
	switch code {
	case codeMarket:
		return map[abi.MethodNum]method{
			builtin.MethodsMarket.AddBalance:                   (*vm).marketAddBalance,
			builtin.MethodsMarket.WithdrawBalance:              (*vm).marketWithdrawBalance,
			builtin.MethodsMarket.PublishStorageDeals:          (*vm).marketPublishStorageDeals,
			builtin.MethodsMarket.SectorContentChangedExported: (*vm).marketSectorContentChanged,
		}
	case codePower:
		return map[abi.MethodNum]method{
			builtin.MethodsPower.CreateMiner: (*vm).powerCreateMiner,
		}
	case codeMiner:
		return map[abi.MethodNum]method{
			builtin.MethodsMiner.ChangeWorkerAddress:   (*vm).minerChangeWorkerAddress,
			builtin.MethodsMiner.ChangePeerID:          (*vm).minerChangePeerID,
			builtin.MethodsMiner.ChangeMultiaddrs:      (*vm).minerChangeMultiaddrs,
			builtin.MethodsMiner.PreCommitSector:       (*vm).minerPreCommitSector,
			builtin.MethodsMiner.PreCommitSectorBatch2: (*vm).minerPreCommitSectorBatch2,
			builtin.MethodsMiner.ProveCommitSector:     atomic((*vm).minerProveCommitSector),
			builtin.MethodsMiner.ProveCommitSectors3:   atomic((*vm).minerProveCommitSectors3),
			builtin.MethodsMiner.WithdrawBalance:       (*vm).minerWithdrawBalance,
		}
	case codeVerifreg:
		return map[abi.MethodNum]method{
			builtin.MethodsVerifiedRegistry.AddVerifier:                      (*vm).verifregAddVerifier,
			builtin.MethodsVerifiedRegistry.AddVerifiedClient:                atomic((*vm).verifregAddVerifiedClient),
			builtin.MethodsVerifiedRegistry.AddVerifiedClientExported:        atomic((*vm).verifregAddVerifiedClient),
			builtin.MethodsVerifiedRegistry.RemoveExpiredAllocations:         atomic((*vm).verifregRemoveExpiredAllocations),
			builtin.MethodsVerifiedRegistry.RemoveExpiredAllocationsExported: atomic((*vm).verifregRemoveExpiredAllocations),
			builtin.MethodsVerifiedRegistry.ClaimAllocations:                 (*vm).verifregClaimAllocations,
			builtin.MethodsVerifiedRegistry.GetClaims:                        (*vm).verifregGetClaims,
			builtin.MethodsVerifiedRegistry.GetClaimsExported:                (*vm).verifregGetClaims,
			builtin.MethodsVerifiedRegistry.UniversalReceiverHook:            (*vm).verifregReceive,
		}
	case codeDatacap:
		return map[abi.MethodNum]method{
			builtin.MethodsDatacap.MintExported:         (*vm).datacapMint,
			builtin.MethodsDatacap.BalanceExported:      (*vm).datacapBalanceOf,
			builtin.MethodsDatacap.AllowanceExported:    (*vm).datacapAllowance,
			builtin.MethodsDatacap.TransferExported:     atomic((*vm).datacapTransfer),
			builtin.MethodsDatacap.TransferFromExported: atomic((*vm).datacapTransferFrom),
			builtin.MethodsDatacap.BurnExported:         (*vm).datacapBurn,
		}
	}
	return nil
}

// methodExists reports whether the actor at to (in state s) has method m; a
// key address that has no actor yet accepts only Send.
func methodExists(s *state, to address.Address, m abi.MethodNum) bool {
	if m == builtin.MethodSend {
		return true
	}
	_, a, ok := s.actor(to)
	if !ok {
		return false
	}
	_, ok = methodsOf(a.Code)[m]
	return ok
}

// apply executes one message at epoch and returns its receipt. Like
// Filecoin, a message whose sender cannot pay for gas or whose nonce is
// wrong changes nothing; a message that fails later changes only the
// sender's nonce and balance (gas).
func (v *vm) apply(epoch abi.ChainEpoch, m *chain.Message) chain.MessageReceipt {
	s := v.st
	fromID, from, ok := s.actor(m.From)
	if !ok || from.Code != codeAccount {
		return chain.MessageReceipt{ExitCode: exitcode.SysErrSenderInvalid}
	}
	if m.Nonce != from.Nonce {
		return chain.MessageReceipt{ExitCode: exitcode.SysErrSenderStateInvalid}
	}
	if m.GasLimit <= 0 || m.GasFeeCap.Int == nil || m.GasPremium.Int == nil || m.Value.Int == nil ||
		m.GasFeeCap.Sign() < 0 || m.GasPremium.Sign() < 0 || m.Value.Sign() < 0 {
		return chain.MessageReceipt{ExitCode: exitcode.SysErrSenderStateInvalid}
	}
	maxCost := big.Mul(big.NewInt(m.GasLimit), m.GasFeeCap)
	if from.Balance.LessThan(maxCost) {
		return chain.MessageReceipt{ExitCode: exitcode.SysErrSenderStateInvalid}
	}

	// From here on the nonce moves and gas is paid.
	used := gasUsed(m)
	code, ret := exitcode.Ok, []byte(nil)
	if used > m.GasLimit {
		used, code = m.GasLimit, exitcode.SysErrOutOfGas
	}
	baseFee := big.Min(big.NewInt(BaseFee), m.GasFeeCap)
	burn := big.Mul(big.NewInt(used), baseFee)
	premium := big.Min(m.GasPremium, big.Sub(m.GasFeeCap, baseFee))
	tip := big.Mul(big.NewInt(m.GasLimit), premium)
	s.transfer(fromID, idBurnt, burn)
	s.transfer(fromID, idReward, tip)
	from.Nonce++

	if code == exitcode.Ok {
		c := &call{epoch: epoch, caller: fromID, origin: from.Address, nonce: m.Nonce, value: m.Value, params: m.Params}
		ret, code = v.invoke(c, m.To, m.Method)
	}
	return chain.MessageReceipt{ExitCode: code, Return: ret, GasUsed: used}
}

// invoke transfers the value and runs the method; on failure nothing but
// what apply already did stays.
func (v *vm) invoke(c *call, to address.Address, num abi.MethodNum) ([]byte, exitcode.ExitCode) {
	s := v.st
	from := s.Actors[c.caller]
	if from.Balance.LessThan(c.value) {
		return nil, exitcode.SysErrInsufficientFunds
	}
	toID, toActor, ok := s.actor(to)
	if !ok {
		// Sending to a new key address creates its account.
		if num != builtin.MethodSend || (to.Protocol() != address.SECP256K1 && to.Protocol() != address.BLS) {
			return nil, exitcode.SysErrInvalidReceiver
		}
		toID, _ = s.newActor(codeAccount, to)
		s.transfer(c.caller, toID, c.value)
		return nil, exitcode.Ok
	}
	if num == builtin.MethodSend {
		s.transfer(c.caller, toID, c.value)
		return nil, exitcode.Ok
	}
	m, ok := methodsOf(toActor.Code)[num]
	if !ok {
		return nil, exitcode.SysErrInvalidMethod
	}
	c.receiver = toID
	ret, err := m(v, c)
	if err != nil {
		return nil, exitCodeOf(err)
	}
	// The method accepted the value.
	s.transfer(c.caller, toID, c.value)
	return ret, exitcode.Ok
}

// decodeParams decodes CBOR params, failing with ErrSerialization; trailing
// bytes are an error too.
func decodeParams(b []byte, into cbg.CBORUnmarshaler) error {
	r := bytes.NewReader(b)
	if err := into.UnmarshalCBOR(r); err != nil {
		return abort(exitcode.ErrSerialization, "decoding params: %v", err)
	}
	if r.Len() != 0 {
		return abort(exitcode.ErrSerialization, "decoding params: %d trailing bytes", r.Len())
	}
	return nil
}

// encodeReturn encodes a method's return value.
func encodeReturn(v cbg.CBORMarshaler) ([]byte, error) {
	var buf bytes.Buffer
	if err := v.MarshalCBOR(&buf); err != nil {
		return nil, abort(exitcode.ErrSerialization, "encoding return: %v", err)
	}
	return buf.Bytes(), nil
}

// requireNoValue refuses funds sent to a method that does not take any.
func requireNoValue(c *call) error {
	if !c.value.IsZero() {
		return abort(exitcode.ErrIllegalArgument, "method does not accept value")
	}
	return nil
}

// resolveAccount returns the ID of addr, creating an account for a
// key address that has none (as a send to it would). The creation happens
// only when commit is called, so that a failing method leaves no trace.
func (s *state) resolveAccount(a address.Address) (id uint64, create func() uint64, err error) {
	if id, ok := s.lookupID(a); ok {
		return id, nil, nil
	}
	if a.Protocol() == address.SECP256K1 || a.Protocol() == address.BLS {
		return 0, func() uint64 { id, _ := s.newActor(codeAccount, a); return id }, nil
	}
	return 0, nil, abort(exitcode.ErrNotFound, "no actor at address %s", a)
}
