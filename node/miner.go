package node

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/power"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/wallet"
)

// Funds a devnet miner starts with: the worker's balance pays for messages,
// the market escrow backs provider collateral.
var (
	devnetWorkerFunds = chain.FIL(10_000)
	devnetMarketFunds = chain.FIL(1_000)
)

// kvGet reads a fact about this repo from the kv table.
func kvGet(ctx context.Context, sqldb *sql.DB, key string) (string, bool, error) {
	var v string
	err := sqldb.QueryRowContext(ctx, `SELECT value FROM kv WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading %s: %w", key, err)
	}
	return v, true, nil
}

// kvSet records a fact about this repo in the kv table.
func kvSet(ctx context.Context, sqldb *sql.DB, key, value string) error {
	_, err := sqldb.ExecContext(ctx, `INSERT INTO kv(key, value) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("recording %s: %w", key, err)
	}
	return nil
}

// ensureDevnetMiner returns the miner actor of this repo on the devnet,
// creating it at first start: a worker key in the repo wallet, funded from
// the genesis account, a miner actor with that worker as owner and worker,
// and market escrow for provider collateral. Each step is recorded so a
// crash part way resumes instead of creating a second miner.
func ensureDevnetMiner(ctx context.Context, sqldb *sql.DB, node chain.Node, w *wallet.Wallet, genesis address.Address, sectorSize abi.SectorSize, self peer.ID, logf func(string, ...any)) (miner, worker address.Address, err error) {
	if v, ok, err := kvGet(ctx, sqldb, "miner"); err != nil {
		return address.Undef, address.Undef, err
	} else if ok {
		miner, err = address.NewFromString(v)
		if err != nil {
			return address.Undef, address.Undef, fmt.Errorf("repo names a bad miner address %q: %w", v, err)
		}
		info, err := node.StateMinerInfo(ctx, miner, chain.EmptyTSK)
		if err != nil {
			return address.Undef, address.Undef, fmt.Errorf("reading miner %s from the devnet: %w", miner, err)
		}
		return miner, info.Worker, nil
	}

	// The worker key.
	v, ok, err := kvGet(ctx, sqldb, "worker")
	if err != nil {
		return address.Undef, address.Undef, err
	}
	if ok {
		worker, err = address.NewFromString(v)
	} else {
		worker, err = w.New(wallet.TypeBLS)
		if err == nil {
			err = kvSet(ctx, sqldb, "worker", worker.String())
		}
	}
	if err != nil {
		return address.Undef, address.Undef, fmt.Errorf("making the worker key: %w", err)
	}

	// Fund the worker from genesis.
	if bal, err := node.WalletBalance(ctx, worker); err != nil {
		return address.Undef, address.Undef, fmt.Errorf("reading worker balance: %w", err)
	} else if bal.LessThan(devnetWorkerFunds) {
		logf("funding worker %s with %s from the devnet genesis account", worker, chain.FormatFIL(devnetWorkerFunds))
		if _, err := pushAndWait(ctx, node, &chain.Message{From: genesis, To: worker, Value: devnetWorkerFunds}); err != nil {
			return address.Undef, address.Undef, fmt.Errorf("funding the worker: %w", err)
		}
	}

	// Create the miner.
	sealProof, err := sealing.SealProofFor(sectorSize)
	if err != nil {
		return address.Undef, address.Undef, err
	}
	postProof, err := sealProof.RegisteredWindowPoStProof()
	if err != nil {
		return address.Undef, address.Undef, fmt.Errorf("choosing the PoSt proof: %w", err)
	}
	params, err := cborBytes(&power.CreateMinerParams{
		Owner: worker, Worker: worker, WindowPoStProofType: postProof, Peer: abi.PeerID(self),
	})
	if err != nil {
		return address.Undef, address.Undef, err
	}
	logf("creating a %s miner on the devnet", sectorSize.ShortString())
	rcpt, err := pushAndWait(ctx, node, &chain.Message{From: worker, To: builtin.StoragePowerActorAddr, Method: builtin.MethodsPower.CreateMiner, Params: params})
	if err != nil {
		return address.Undef, address.Undef, fmt.Errorf("creating the miner: %w", err)
	}
	var ret power.CreateMinerReturn
	if err := ret.UnmarshalCBOR(bytes.NewReader(rcpt.Return)); err != nil {
		return address.Undef, address.Undef, fmt.Errorf("decoding CreateMiner's return: %w", err)
	}
	miner = ret.IDAddress

	// Collateral in the market.
	params, err = cborBytes(&miner)
	if err != nil {
		return address.Undef, address.Undef, err
	}
	if _, err := pushAndWait(ctx, node, &chain.Message{From: worker, To: builtin.StorageMarketActorAddr, Method: builtin.MethodsMarket.AddBalance, Params: params, Value: devnetMarketFunds}); err != nil {
		return address.Undef, address.Undef, fmt.Errorf("adding market collateral for %s: %w", miner, err)
	}
	if err := kvSet(ctx, sqldb, "miner", miner.String()); err != nil {
		return address.Undef, address.Undef, err
	}
	logf("miner %s created (worker %s)", miner, worker)
	return miner, worker, nil
}

// pushAndWait sends msg with the node's wallet and waits for its receipt,
// turning a non-zero exit code into an error.
func pushAndWait(ctx context.Context, node chain.Node, msg *chain.Message) (*chain.MessageReceipt, error) {
	if msg.Value.Nil() {
		msg.Value = big.Zero()
	}
	sm, err := node.MpoolPushMessage(ctx, msg, nil)
	if err != nil {
		return nil, fmt.Errorf("pushing message: %w", err)
	}
	mcid, err := sm.Cid()
	if err != nil {
		return nil, fmt.Errorf("computing message CID: %w", err)
	}
	lookup, err := node.StateWaitMsg(ctx, mcid, 1, -1, true)
	if err != nil {
		return nil, fmt.Errorf("waiting for message %s: %w", mcid, err)
	}
	if lookup.Receipt.ExitCode != exitcode.Ok {
		return nil, fmt.Errorf("message %s failed with exit code %d (%s)", mcid, lookup.Receipt.ExitCode, lookup.Receipt.ExitCode.Error())
	}
	return &lookup.Receipt, nil
}

// cborBytes encodes a cbor-gen value.
func cborBytes(v interface{ MarshalCBOR(w io.Writer) error }) ([]byte, error) {
	var buf bytes.Buffer
	if err := v.MarshalCBOR(&buf); err != nil {
		return nil, fmt.Errorf("encoding message params: %w", err)
	}
	return buf.Bytes(), nil
}
