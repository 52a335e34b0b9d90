package devnet

import (
	"bytes"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/exitcode"

	"github.com/ferry-fil/ferry/chain"
)

// FuzzMpoolPush feeds arbitrary bytes, decoded as a signed message, to the
// pool: it must never panic, and whatever it accepts must be a message the
// sender signed (which random bytes never are).
func FuzzMpoolPush(f *testing.F) {
	tn := newTestNet(f)
	g := tn.d.GenesisAddress()
	m := gasFields(f, tn.d, &chain.Message{From: g, To: idAddr(idMarket), Method: builtin.MethodsMarket.AddBalance, Value: big.NewInt(1), Params: append([]byte{0x55}, g.Bytes()...)})
	var buf bytes.Buffer
	if err := tn.signed(m).MarshalCBOR(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		var sm chain.SignedMessage
		if err := sm.UnmarshalCBOR(bytes.NewReader(b)); err != nil {
			return
		}
		c, err := tn.d.MpoolPush(tn.ctx, &sm)
		if err != nil {
			return
		}
		// Accepted: it must be the genesis key's own signature.
		if sm.Message.From != g && tn.lookupID(sm.Message.From) != tn.lookupID(g) {
			t.Fatalf("accepted message %s from %s", c, sm.Message.From)
		}
	})
}

// FuzzDecodeParams runs arbitrary params through every actor method the
// devnet has, sent by the miner's worker (which also holds DataCap): no
// panic, and a failed call changes nothing but the sender's nonce and gas.
func FuzzDecodeParams(f *testing.F) {
	e := newDealEnv(f)
	e.funded()
	e.mustGrant(e.worker, 4<<20)
	snap := e.d.snap
	height := e.height()
	worker, _ := address.IDFromAddress(e.lookupID(e.worker))
	targets := []struct {
		to      address.Address
		methods []abi.MethodNum
	}{
		{idAddr(idMarket), []abi.MethodNum{builtin.MethodsMarket.AddBalance, builtin.MethodsMarket.WithdrawBalance, builtin.MethodsMarket.PublishStorageDeals}},
		{idAddr(idPower), []abi.MethodNum{builtin.MethodsPower.CreateMiner}},
		{e.maddr, []abi.MethodNum{builtin.MethodsMiner.ChangeWorkerAddress, builtin.MethodsMiner.ChangePeerID, builtin.MethodsMiner.ChangeMultiaddrs,
			builtin.MethodsMiner.PreCommitSector, builtin.MethodsMiner.PreCommitSectorBatch2, builtin.MethodsMiner.ProveCommitSector, builtin.MethodsMiner.WithdrawBalance}},
		{idAddr(idVerifreg), []abi.MethodNum{builtin.MethodsVerifiedRegistry.AddVerifier, builtin.MethodsVerifiedRegistry.AddVerifiedClient}},
		// Direct data onboarding (index 13 on).
		{e.maddr, []abi.MethodNum{builtin.MethodsMiner.ProveCommitSectors3}},
		{idAddr(idVerifreg), []abi.MethodNum{builtin.MethodsVerifiedRegistry.UniversalReceiverHook, builtin.MethodsVerifiedRegistry.ClaimAllocations,
			builtin.MethodsVerifiedRegistry.RemoveExpiredAllocationsExported, builtin.MethodsVerifiedRegistry.GetClaimsExported}},
		{idAddr(idDatacap), []abi.MethodNum{builtin.MethodsDatacap.TransferExported, builtin.MethodsDatacap.TransferFromExported,
			builtin.MethodsDatacap.BalanceExported, builtin.MethodsDatacap.AllowanceExported, builtin.MethodsDatacap.MintExported, builtin.MethodsDatacap.BurnExported}},
		{idAddr(idMarket), []abi.MethodNum{builtin.MethodsMarket.SectorContentChangedExported}},
	}
	var all []struct {
		to address.Address
		m  abi.MethodNum
	}
	for _, tg := range targets {
		for _, m := range tg.methods {
			all = append(all, struct {
				to address.Address
				m  abi.MethodNum
			}{tg.to, m})
		}
	}
	f.Add(uint8(0), append([]byte{0x55}, e.client.Bytes()...))
	f.Add(uint8(2), []byte{0x81, 0x80})
	f.Add(uint8(5), []byte{0x81, 0x41, 0x00})
	f.Fuzz(func(t *testing.T, which uint8, params []byte) {
		target := all[int(which)%len(all)]
		st, err := decodeState(snap)
		if err != nil {
			t.Fatal(err)
		}
		v := e.d.newVM(st)
		msg := &chain.Message{From: e.worker, To: target.to, Method: target.m, Nonce: st.Actors[worker].Nonce,
			Value: big.Zero(), Params: params, GasLimit: 1 << 32, GasFeeCap: big.NewInt(BaseFee), GasPremium: big.Zero()}
		r := v.apply(height+1, msg)
		if r.ExitCode == exitcode.Ok {
			return
		}
		before, _ := decodeState(snap)
		onlyGasChanged(t, before, st, worker, true)
	})
}

// FuzzSectorChangesDecode feeds arbitrary bytes to the hand-written
// decoders of SectorContentChanged's params and return: no panic, and what
// decodes encodes back to the same bytes.
func FuzzSectorChangesDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var p sectorChangesParams
		if err := p.UnmarshalCBOR(bytes.NewReader(b)); err == nil {
			var out bytes.Buffer
			if err := p.MarshalCBOR(&out); err != nil {
				t.Fatal(err)
			}
			var again sectorChangesParams
			if err := again.UnmarshalCBOR(&out); err != nil || len(again) != len(p) {
				t.Fatalf("re-decoding %x: %v", out.Bytes(), err)
			}
		}
		var r sectorChangesReturn
		if err := r.UnmarshalCBOR(bytes.NewReader(b)); err == nil {
			var out bytes.Buffer
			if err := r.MarshalCBOR(&out); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), b[:out.Len()]) {
				t.Fatalf("%x encodes back as %x", b, out.Bytes())
			}
		}
	})
}
