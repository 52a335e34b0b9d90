package node

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/miner"
	"github.com/filecoin-project/go-state-types/builtin/v9/power"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/sender"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/wallet"
)

// Funds a devnet miner starts with: the worker's balance pays for messages,
// the market escrow backs provider collateral.
var (
	devnetWorkerFunds = chain.FIL(10_000)
	devnetMarketFunds = chain.FIL(1_000)
)

// startConfidence is how many epochs the messages of the start-up wait on
// top of the one that executed them.
const startConfidence = 1

// setupMessages names the devnet set-up messages: each id is derived from
// what the message does for which address, so a restart after a crash asks
// the sender for the message it already sent.
var setupMessages = uuid.MustParse("3b0f5c2e-8d1a-4e67-9a43-1c7e2f9b5d08")

func setupID(what string, addr address.Address) uuid.UUID {
	return uuid.NewSHA1(setupMessages, []byte(what+" "+addr.String()))
}

// facts is the kv table: small facts about this repo (the miner address,
// the worker key, the id of a message under way).
type facts struct{ db *sql.DB }

func (f facts) get(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := f.db.QueryRowContext(ctx, `SELECT value FROM kv WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading %s: %w", key, err)
	}
	return v, true, nil
}

func (f facts) set(ctx context.Context, key, value string) error {
	_, err := f.db.ExecContext(ctx, `INSERT INTO kv (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("recording %s: %w", key, err)
	}
	return nil
}

func (f facts) delete(ctx context.Context, key string) error {
	if _, err := f.db.ExecContext(ctx, `DELETE FROM kv WHERE key = ?`, key); err != nil {
		return fmt.Errorf("forgetting %s: %w", key, err)
	}
	return nil
}

// devnetMiner is the miner actor of a repo on the devnet and the sender of
// its worker.
type devnetMiner struct {
	miner, worker address.Address
	sender        *sender.Sender
}

// ensureDevnetMiner returns the miner actor of this repo on the devnet,
// creating it at first start: a worker key in the repo wallet, funded from
// the genesis account, a miner actor with that worker as owner and worker,
// and market escrow for provider collateral. Every message goes through a
// sender under an id derived from the worker, and the worker key is recorded
// before it is used, so a crash part way resumes instead of creating a
// second miner.
//
// The devnet's senders look again at a message that waited ten blocks
// (blockTime each) without executing.
func ensureDevnetMiner(ctx context.Context, sqldb *sql.DB, node chain.FullNode, w *wallet.Wallet, genesis address.Address, sectorSize abi.SectorSize, self peer.ID, blockTime time.Duration, logf func(string, ...any)) (*devnetMiner, error) {
	recheck := 10 * blockTime
	kv := facts{sqldb}
	// The worker key.
	v, ok, err := kv.get(ctx, "worker")
	if err != nil {
		return nil, err
	}
	var worker address.Address
	if ok {
		worker, err = address.NewFromString(v)
	} else {
		worker, err = w.New(wallet.TypeBLS)
		if err == nil {
			err = kv.set(ctx, "worker", worker.String())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("making the worker key: %w", err)
	}
	ws, err := sender.New(ctx, sender.Config{DB: sqldb, Node: node, From: worker, Keys: w, Recheck: recheck, Logf: logf})
	if err != nil {
		return nil, err
	}
	dm := &devnetMiner{worker: worker, sender: ws}

	if v, ok, err := kv.get(ctx, "miner"); err != nil {
		return nil, err
	} else if ok {
		if dm.miner, err = address.NewFromString(v); err != nil {
			return nil, fmt.Errorf("repo names a bad miner address %q: %w", v, err)
		}
		return dm, nil
	}

	// Fund the worker from genesis: the devnet holds the genesis key and
	// signs (MpoolPushMessage).
	gs, err := sender.New(ctx, sender.Config{DB: sqldb, Node: node, From: genesis, Recheck: recheck, Logf: logf})
	if err != nil {
		return nil, err
	}
	logf("funding worker %s with %s from the devnet genesis account", worker, chain.FormatFIL(devnetWorkerFunds))
	if _, err := sendAndWait(ctx, gs, setupID("fund worker", worker), &chain.Message{From: genesis, To: worker, Value: devnetWorkerFunds}, "the worker's funds"); err != nil {
		return nil, err
	}

	// Create the miner.
	sealProof, err := sealing.SealProofFor(sectorSize)
	if err != nil {
		return nil, err
	}
	postProof, err := sealProof.RegisteredWindowPoStProof()
	if err != nil {
		return nil, fmt.Errorf("choosing the PoSt proof: %w", err)
	}
	params, err := cborBytes(&power.CreateMinerParams{
		Owner: worker, Worker: worker, WindowPoStProofType: postProof, Peer: abi.PeerID(self),
	})
	if err != nil {
		return nil, err
	}
	logf("creating a %s miner on the devnet", sectorSize.ShortString())
	rcpt, err := sendAndWait(ctx, ws, setupID("create miner", worker), &chain.Message{From: worker, To: builtin.StoragePowerActorAddr, Method: builtin.MethodsPower.CreateMiner, Params: params}, "CreateMiner")
	if err != nil {
		return nil, err
	}
	var ret power.CreateMinerReturn
	if err := ret.UnmarshalCBOR(bytes.NewReader(rcpt.Return)); err != nil {
		return nil, fmt.Errorf("decoding CreateMiner's return: %w", err)
	}
	dm.miner = ret.IDAddress

	// Collateral in the market.
	if params, err = cborBytes(&dm.miner); err != nil {
		return nil, err
	}
	if _, err := sendAndWait(ctx, ws, setupID("market collateral", worker), &chain.Message{From: worker, To: builtin.StorageMarketActorAddr, Method: builtin.MethodsMarket.AddBalance, Params: params, Value: devnetMarketFunds}, "AddBalance for "+dm.miner.String()); err != nil {
		return nil, err
	}
	if err := kv.set(ctx, "miner", dm.miner.String()); err != nil {
		return nil, err
	}
	logf("miner %s created (worker %s)", dm.miner, worker)
	return dm, nil
}

// ensureMinerAddrs makes the miner actor advertise self and addrs, sending
// ChangePeerID and ChangeMultiaddrs from the worker only when they differ
// from what StateMinerInfo shows, and waiting for them. The id of a
// message under way is kept in the kv table until it executed, so a restart
// waits for it rather than sending another.
func ensureMinerAddrs(ctx context.Context, sqldb *sql.DB, node chain.Node, ws *sender.Sender, maddr address.Address, self peer.ID, addrs []ma.Multiaddr) error {
	kv := facts{sqldb}
	want := make([]abi.Multiaddrs, len(addrs))
	for i, a := range addrs {
		want[i] = a.Bytes()
	}
	changes := []struct {
		what   string
		method abi.MethodNum
		params cborMarshaler
		done   func(mi chain.MinerInfo) bool
	}{
		{"ChangePeerID", builtin.MethodsMiner.ChangePeerID, &miner.ChangePeerIDParams{NewID: abi.PeerID(self)},
			func(mi chain.MinerInfo) bool { return mi.PeerId != nil && *mi.PeerId == self }},
		{"ChangeMultiaddrs", builtin.MethodsMiner.ChangeMultiaddrs, &miner.ChangeMultiaddrsParams{NewMultiaddrs: want},
			func(mi chain.MinerInfo) bool { return sameAddrs(mi.Multiaddrs, want) }},
	}
	for _, c := range changes {
		key := "message under way: " + c.what
		if v, ok, err := kv.get(ctx, key); err != nil {
			return err
		} else if ok {
			// Sent before a restart: wait for it before looking again.
			id, err := uuid.Parse(v)
			if err != nil {
				return fmt.Errorf("the kv table's %q is not a message id: %w", key, err)
			}
			if _, err := ws.Wait(ctx, id, startConfidence); err != nil && !errors.Is(err, sender.ErrUnknownID) {
				return fmt.Errorf("waiting for the %s sent before the restart: %w", c.what, err)
			}
			if err := kv.delete(ctx, key); err != nil {
				return err
			}
		}
		mi, err := node.StateMinerInfo(ctx, maddr, chain.EmptyTSK)
		if err != nil {
			return fmt.Errorf("reading miner %s: %w", maddr, err)
		}
		if c.done(mi) {
			continue
		}
		params, err := cborBytes(c.params)
		if err != nil {
			return err
		}
		id := uuid.New()
		if err := kv.set(ctx, key, id.String()); err != nil {
			return err
		}
		if _, err := sendAndWait(ctx, ws, id, &chain.Message{From: mi.Worker, To: maddr, Method: c.method, Params: params}, c.what+" to miner "+maddr.String()); err != nil {
			return err
		}
		if err := kv.delete(ctx, key); err != nil {
			return err
		}
	}
	return nil
}

func sameAddrs(a, b []abi.Multiaddrs) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// sendAndWait sends msg as id and waits for its receipt, turning a
// non-zero exit code into an error.
func sendAndWait(ctx context.Context, s *sender.Sender, id uuid.UUID, msg *chain.Message, what string) (*chain.MessageReceipt, error) {
	c, err := s.Send(ctx, id, msg, nil)
	if err != nil {
		return nil, fmt.Errorf("sending %s: %w", what, err)
	}
	l, err := s.Wait(ctx, id, startConfidence)
	if err != nil {
		return nil, fmt.Errorf("waiting for %s (message %s): %w", what, c, err)
	}
	if l.Receipt.ExitCode != exitcode.Ok {
		return nil, fmt.Errorf("%s: message %s failed with exit code %d (%s)", what, l.Message, l.Receipt.ExitCode, l.Receipt.ExitCode.Error())
	}
	return &l.Receipt, nil
}

type cborMarshaler interface{ MarshalCBOR(w io.Writer) error }

// cborBytes encodes a cbor-gen value.
func cborBytes(v cborMarshaler) ([]byte, error) {
	var buf bytes.Buffer
	if err := v.MarshalCBOR(&buf); err != nil {
		return nil, fmt.Errorf("encoding message params: %w", err)
	}
	return buf.Bytes(), nil
}
