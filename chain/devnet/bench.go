package devnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/builtin/v9/power"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/exitcode"
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/wallet"
)

// BenchReport is what Benchmark measured.
type BenchReport struct {
	Sends         int           // messages in the Send block
	PushSends     time.Duration // MpoolPush of all of them (signature checks)
	MineSends     time.Duration // producing the block that executes them
	Deals         int           // deals in the PublishStorageDeals message
	PushPublish   time.Duration // MpoolPush of the PublishStorageDeals
	MinePublish   time.Duration // producing the block that executes it
	OpenExisting  time.Duration // reopening the devnet afterwards
	BlocksPerSec  float64       // empty blocks produced per second
	EmptyBlockDur time.Duration // time per empty block
}

// Benchmark measures the devnet in a fresh state directory dir: a block
// executing sends signed Sends, and one executing a PublishStorageDeals of
// deals deals (each with its own client signature to verify). It is what
// `ferry-bench devnet` runs.
func Benchmark(ctx context.Context, dir string, sends, deals int) (BenchReport, error) {
	rep := BenchReport{Sends: sends, Deals: deals}
	w, err := wallet.Open(filepath.Join(dir, "wallet"))
	if err != nil {
		return rep, err
	}
	cfg := Config{Dir: filepath.Join(dir, "devnet"), BlockTime: -1, Wallet: w}
	d, err := Open(ctx, cfg)
	if err != nil {
		return rep, err
	}
	defer func() { d.Close() }()
	b := &bencher{ctx: ctx, d: d}

	// Keys: a sender, a client, an owner/worker.
	var keys [3]address.Address
	for i := range keys {
		if keys[i], err = w.New(wallet.TypeSecp256k1); err != nil {
			return rep, err
		}
	}
	sender, client, worker := keys[0], keys[1], keys[2]
	for _, a := range keys {
		if err := b.do(d.genesis, a, builtin.MethodSend, big.Mul(big.NewInt(1_000_000), big.NewInt(fil)), nil); err != nil {
			return rep, err
		}
	}

	// A block of sends, signed outside the node and pushed.
	ki, err := w.Export(sender)
	if err != nil {
		return rep, err
	}
	msgs := make([]*chain.SignedMessage, sends)
	for i := range msgs {
		to, err := address.NewSecp256k1Address(binary.BigEndian.AppendUint64([]byte("ferry-bench"), uint64(i)))
		if err != nil {
			return rep, err
		}
		m, err := d.GasEstimateMessageGas(ctx, &chain.Message{From: sender, To: to, Nonce: uint64(i), Value: big.NewInt(1)}, nil, chain.EmptyTSK)
		if err != nil {
			return rep, err
		}
		if msgs[i], err = chain.SignMessage(m, func(b []byte) (*crypto.Signature, error) { return wallet.Sign(ki, b) }); err != nil {
			return rep, err
		}
	}
	start := time.Now()
	for _, sm := range msgs {
		if _, err := d.MpoolPush(ctx, sm); err != nil {
			return rep, fmt.Errorf("pushing sends: %w", err)
		}
	}
	rep.PushSends = time.Since(start)
	start = time.Now()
	if _, err := d.Mine(ctx); err != nil {
		return rep, err
	}
	rep.MineSends = time.Since(start)
	if n, _ := d.MpoolGetNonce(ctx, sender); n != uint64(sends) {
		return rep, fmt.Errorf("only %d of %d sends executed", n, sends)
	}

	// A miner, escrow, and one PublishStorageDeals of many deals.
	ret := &power.CreateMinerReturn{}
	if err := b.call(worker, idAddr(idPower), builtin.MethodsPower.CreateMiner, big.Zero(),
		&power.CreateMinerParams{Owner: worker, Worker: worker, WindowPoStProofType: abi.RegisteredPoStProof_StackedDrgWindow32GiBV1_1}, ret); err != nil {
		return rep, err
	}
	maddr := ret.IDAddress
	escrow := big.Mul(big.NewInt(100_000), big.NewInt(fil))
	if err := b.do(client, idAddr(idMarket), builtin.MethodsMarket.AddBalance, escrow, &client); err != nil {
		return rep, err
	}
	if err := b.do(worker, idAddr(idMarket), builtin.MethodsMarket.AddBalance, escrow, &maddr); err != nil {
		return rep, err
	}
	head, _ := d.ChainHead(ctx)
	cki, err := w.Export(client)
	if err != nil {
		return rep, err
	}
	params := &market.PublishStorageDealsParams{}
	size := abi.PaddedPieceSize(1 << 30)
	min, _ := ProviderCollateralBounds(size)
	for i := 0; i < deals; i++ {
		root := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		root[31] &= 0x3f
		label, _ := market.NewLabelFromString(fmt.Sprintf("deal %d", i))
		p := market.DealProposal{
			PieceCID: piece.CIDv1(root), PieceSize: size, Client: client, Provider: maddr, Label: label,
			StartEpoch: head.Height() + 1000, EndEpoch: head.Height() + 1000 + 200*epochsInDay,
			StoragePricePerEpoch: big.NewInt(1), ProviderCollateral: min, ClientCollateral: big.Zero(),
		}
		var buf bytes.Buffer
		if err := p.MarshalCBOR(&buf); err != nil {
			return rep, err
		}
		sig, err := wallet.Sign(cki, buf.Bytes())
		if err != nil {
			return rep, err
		}
		params.Deals = append(params.Deals, market.ClientDealProposal{Proposal: p, ClientSignature: *sig})
	}
	var pb bytes.Buffer
	if err := params.MarshalCBOR(&pb); err != nil {
		return rep, err
	}
	m, err := d.GasEstimateMessageGas(ctx, &chain.Message{From: worker, To: idAddr(idMarket), Method: builtin.MethodsMarket.PublishStorageDeals, Params: pb.Bytes()}, nil, chain.EmptyTSK)
	if err != nil {
		return rep, err
	}
	if m.Nonce, err = d.MpoolGetNonce(ctx, worker); err != nil {
		return rep, err
	}
	wki, err := w.Export(worker)
	if err != nil {
		return rep, err
	}
	sm, err := chain.SignMessage(m, func(b []byte) (*crypto.Signature, error) { return wallet.Sign(wki, b) })
	if err != nil {
		return rep, err
	}
	start = time.Now()
	c, err := d.MpoolPush(ctx, sm)
	if err != nil {
		return rep, fmt.Errorf("pushing PublishStorageDeals: %w", err)
	}
	rep.PushPublish = time.Since(start)
	start = time.Now()
	if _, err := d.Mine(ctx); err != nil {
		return rep, err
	}
	rep.MinePublish = time.Since(start)
	l, err := d.StateSearchMsg(ctx, chain.EmptyTSK, c, -1, false)
	if err != nil || l == nil {
		return rep, fmt.Errorf("PublishStorageDeals not found after its block: %v", err)
	}
	var pr market.PublishStorageDealsReturn
	if l.Receipt.ExitCode != exitcode.Ok {
		return rep, fmt.Errorf("PublishStorageDeals failed with exit code %d", l.Receipt.ExitCode)
	}
	if err := pr.UnmarshalCBOR(bytes.NewReader(l.Receipt.Return)); err != nil || len(pr.IDs) != deals {
		return rep, fmt.Errorf("PublishStorageDeals published %d of %d deals (%v)", len(pr.IDs), deals, err)
	}

	// Empty blocks.
	const empty = 50
	start = time.Now()
	for i := 0; i < empty; i++ {
		if _, err := d.Mine(ctx); err != nil {
			return rep, err
		}
	}
	rep.EmptyBlockDur = time.Since(start) / empty
	rep.BlocksPerSec = float64(empty) / time.Since(start).Seconds()

	if err := d.Close(); err != nil {
		return rep, err
	}
	start = time.Now()
	d2, err := Open(ctx, cfg)
	if err != nil {
		return rep, err
	}
	rep.OpenExisting = time.Since(start)
	return rep, d2.Close()
}

type bencher struct {
	ctx context.Context
	d   *Devnet
}

// do sends a message through the node's wallet, mines it and checks it
// succeeded.
func (b *bencher) do(from, to address.Address, method abi.MethodNum, value abi.TokenAmount, params cbg.CBORMarshaler) error {
	return b.call(from, to, method, value, params, nil)
}

func (b *bencher) call(from, to address.Address, method abi.MethodNum, value abi.TokenAmount, params cbg.CBORMarshaler, ret cbg.CBORUnmarshaler) error {
	var p []byte
	if params != nil {
		var buf bytes.Buffer
		if err := params.MarshalCBOR(&buf); err != nil {
			return err
		}
		p = buf.Bytes()
	}
	sm, err := b.d.MpoolPushMessage(b.ctx, &chain.Message{From: from, To: to, Method: method, Value: value, Params: p}, nil)
	if err != nil {
		return err
	}
	if _, err := b.d.Mine(b.ctx); err != nil {
		return err
	}
	c, err := sm.Cid()
	if err != nil {
		return err
	}
	l, err := b.d.StateSearchMsg(b.ctx, chain.EmptyTSK, c, -1, false)
	if err != nil || l == nil {
		return fmt.Errorf("message %s not executed: %v", c, err)
	}
	if l.Receipt.ExitCode != exitcode.Ok {
		return fmt.Errorf("method %d to %s failed with exit code %d", method, to, l.Receipt.ExitCode)
	}
	if ret != nil {
		return ret.UnmarshalCBOR(bytes.NewReader(l.Receipt.Return))
	}
	return nil
}
