package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
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
	"github.com/urfave/cli/v2"
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/wallet"
)

// devnetCommand measures the embedded chain: a block executing many signed
// Sends, and a block executing one PublishStorageDeals of many deals. There
// is no reference implementation to run side by side (a Lotus devnet needs
// proofs parameters and minutes to start); the target is well under a second
// for each block.
func devnetCommand() *cli.Command {
	return &cli.Command{
		Name:  "devnet",
		Usage: "execute a block of signed Sends and a PublishStorageDeals of many deals (target: each block well under 1 s)",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "sends", Value: 1000, Usage: "Send messages in one block"},
			&cli.IntFlag{Name: "deals", Value: 256, Usage: "deals in one PublishStorageDeals"},
			&cli.StringFlag{Name: "dir", Usage: "working directory (default: a new temporary directory, removed afterwards)"},
		},
		Action: func(cctx *cli.Context) error {
			dir := cctx.String("dir")
			if dir == "" {
				d, err := os.MkdirTemp("", "ferry-bench-devnet-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				dir = d
			}
			rep, err := benchDevnet(cctx.Context, dir, cctx.Int("sends"), cctx.Int("deals"))
			if err != nil {
				return fmt.Errorf("devnet benchmark: %w", err)
			}
			ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
			fmt.Printf("push %d signed Sends (signature, nonce, balance checks): %s (%.0f µs each)\n", rep.Sends, ms(rep.PushSends), float64(rep.PushSends.Microseconds())/float64(rep.Sends))
			fmt.Printf("block executing %d Sends:                             %s  (target < 1000 ms, ratio %.3f)\n", rep.Sends, ms(rep.MineSends), rep.MineSends.Seconds())
			fmt.Printf("push PublishStorageDeals of %d deals:                  %s\n", rep.Deals, ms(rep.PushPublish))
			fmt.Printf("block executing PublishStorageDeals of %d deals:       %s  (target < 1000 ms, ratio %.3f)\n", rep.Deals, ms(rep.MinePublish), rep.MinePublish.Seconds())
			fmt.Printf("empty block:                                           %s  (%.0f blocks/s)\n", ms(rep.EmptyBlockDur), rep.BlocksPerSec)
			fmt.Printf("reopen the devnet:                                     %s  (target < 1000 ms)\n", ms(rep.OpenExisting))
			return nil
		},
	}
}

// devnetReport is what benchDevnet measured.
type devnetReport struct {
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

// benchDevnet measures the devnet in a fresh state directory dir through
// its public API: a block executing sends signed Sends, and one executing a
// PublishStorageDeals of deals deals (each with its own client signature to
// verify).
func benchDevnet(ctx context.Context, dir string, sends, deals int) (devnetReport, error) {
	rep := devnetReport{Sends: sends, Deals: deals}
	w, err := wallet.Open(filepath.Join(dir, "wallet"))
	if err != nil {
		return rep, err
	}
	cfg := devnet.Config{Dir: filepath.Join(dir, "devnet"), BlockTime: -1, Wallet: w}
	d, err := devnet.Open(ctx, cfg)
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
		if err := b.do(d.GenesisAddress(), a, builtin.MethodSend, big.Mul(big.NewInt(1_000_000), big.NewInt(1e18)), nil); err != nil {
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
	if err := b.call(worker, builtin.StoragePowerActorAddr, builtin.MethodsPower.CreateMiner, big.Zero(),
		&power.CreateMinerParams{Owner: worker, Worker: worker, WindowPoStProofType: abi.RegisteredPoStProof_StackedDrgWindow32GiBV1_1}, ret); err != nil {
		return rep, err
	}
	maddr := ret.IDAddress
	escrow := big.Mul(big.NewInt(100_000), big.NewInt(1e18))
	if err := b.do(client, builtin.StorageMarketActorAddr, builtin.MethodsMarket.AddBalance, escrow, &client); err != nil {
		return rep, err
	}
	if err := b.do(worker, builtin.StorageMarketActorAddr, builtin.MethodsMarket.AddBalance, escrow, &maddr); err != nil {
		return rep, err
	}
	head, _ := d.ChainHead(ctx)
	cki, err := w.Export(client)
	if err != nil {
		return rep, err
	}
	params := &market.PublishStorageDealsParams{}
	size := abi.PaddedPieceSize(1 << 30)
	min, _ := devnet.ProviderCollateralBounds(size)
	for i := 0; i < deals; i++ {
		root := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		root[31] &= 0x3f
		label, _ := market.NewLabelFromString(fmt.Sprintf("deal %d", i))
		p := market.DealProposal{
			PieceCID: piece.CIDv1(root), PieceSize: size, Client: client, Provider: maddr, Label: label,
			StartEpoch: head.Height() + 1000, EndEpoch: head.Height() + 1000 + 200*builtin.EpochsInDay,
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
	m, err := d.GasEstimateMessageGas(ctx, &chain.Message{From: worker, To: builtin.StorageMarketActorAddr, Method: builtin.MethodsMarket.PublishStorageDeals, Params: pb.Bytes()}, nil, chain.EmptyTSK)
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
	d2, err := devnet.Open(ctx, cfg)
	if err != nil {
		return rep, err
	}
	rep.OpenExisting = time.Since(start)
	return rep, d2.Close()
}

type bencher struct {
	ctx context.Context
	d   *devnet.Devnet
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
