package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/urfave/cli/v2"

	ferryauth "github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/internal/procs"
	"github.com/ferry-fil/ferry/minerapi"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/sealing"
)

// handoffCommand compares handing a piece to sealing over lotus-miner's
// API (SectorAddPieceToAny with its push stream, over loopback, into a
// minerapi.Server in front of ferryd's sealing) with calling the same
// sealing's AddPieceToAny in process, on the same piece file.
func handoffCommand() *cli.Command {
	return &cli.Command{
		Name:  "handoff",
		Usage: "SectorAddPieceToAny over loopback (market-only -> sealing ferryd) against local AddPiece of the same piece (target >= 90%)",
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: "size", Value: 1 << 30 / 128 * 127, Usage: "payload bytes of the random test file (the default fills a 1 GiB piece)"},
			&cli.StringFlag{Name: "dir", Usage: "directory for the test file, database and sectors (default: the system temp dir)"},
			&cli.IntFlag{Name: "rounds", Value: 3, Usage: "alternating rounds of each; the median is reported"},
		},
		Action: func(cctx *cli.Context) error {
			return runHandoffBench(cctx.Context, cctx.String("dir"), cctx.Int64("size"), cctx.Int("rounds"))
		},
	}
}

func runHandoffBench(ctx context.Context, dir string, size int64, rounds int) error {
	tmp, err := os.MkdirTemp(dir, "ferry-bench-handoff-")
	if err != nil {
		return fmt.Errorf("creating work directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	rig, err := newHandoffRig(ctx, tmp, size)
	if err != nil {
		return err
	}
	defer rig.close()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs.Ferryd())) // as ferryd runs

	var local, remote []time.Duration
	var cpuLocal, cpuRemote []float64
	for range rounds {
		cpu := cpuTime()
		d, err := rig.local(ctx)
		if err != nil {
			return err
		}
		local, cpuLocal = append(local, d), append(cpuLocal, cpuTime()-cpu)
		cpu = cpuTime()
		if d, err = rig.remote(ctx); err != nil {
			return err
		}
		remote, cpuRemote = append(remote, d), append(cpuRemote, cpuTime()-cpu)
	}
	ml, mr := medianDuration(local), medianDuration(remote)
	gib := float64(rig.size.Padded()) / (1 << 30)
	mib := gib * 1024
	fmt.Printf("piece %d bytes (payload %d), %d rounds, sector size %d, load average %s\n", rig.size.Padded(), size, rounds, rig.ssize, loadAvg())
	fmt.Printf("local sealing.AddPieceToAny:                           %8.1f MiB/s  (%v, %.2f CPU-s/GiB)\n", mib/ml.Seconds(), ml.Round(time.Millisecond), median(cpuLocal)/gib)
	fmt.Printf("SectorAddPieceToAny over loopback (push stream, HTTP): %8.1f MiB/s  (%v, %.2f CPU-s/GiB, client and server)\n", mib/mr.Seconds(), mr.Round(time.Millisecond), median(cpuRemote)/gib)
	fmt.Printf("ratio handoff/local: %.1f%% (target >= 90%%)\n", 100*ml.Seconds()/mr.Seconds())
	return nil
}

// handoffRig is ferryd's sealing (on an embedded devnet chain) served by a
// minerapi.Server on a loopback port, a minerapi.Client to it, and a
// random payload file with its piece CID.
type handoffRig struct {
	dn     *devnet.Devnet
	sqldb  *sql.DB
	seal   *sealing.Sealing
	hs     *http.Server
	srv    *minerapi.Server
	client *minerapi.Client
	src    string
	size   abi.UnpaddedPieceSize
	ssize  abi.SectorSize
	pc     cid.Cid
	deals  abi.DealID
}

func newHandoffRig(ctx context.Context, dir string, payload int64) (rig *handoffRig, err error) {
	if payload <= 0 || uint64(payload) > piece.MaxPayload {
		return nil, fmt.Errorf("size %d out of range", payload)
	}
	rig = &handoffRig{src: filepath.Join(dir, "payload"), size: piece.UnpaddedSizeFor(uint64(payload)), ssize: 32 << 30}
	defer func() {
		if err != nil {
			rig.close()
		}
	}()
	if err := writeRandom(rig.src, uint64(payload)); err != nil {
		return nil, err
	}
	comm, err := piece.FromFile(ctx, rig.src, nil)
	if err != nil {
		return nil, fmt.Errorf("computing the piece CID of the test file: %w", err)
	}
	if comm.Size != rig.size.Padded() {
		return nil, fmt.Errorf("the test file's piece is %d bytes, not %d", comm.Size, rig.size.Padded())
	}
	rig.pc = comm.CID()
	if rig.dn, err = devnet.Open(ctx, devnet.Config{Dir: filepath.Join(dir, "devnet"), BlockTime: -1}); err != nil {
		return nil, fmt.Errorf("opening the devnet: %w", err)
	}
	if rig.sqldb, err = db.Open(ctx, filepath.Join(dir, "ferry.db")); err != nil {
		return nil, err
	}
	miner, _ := address.NewIDAddress(1000)
	cfg := sealing.Config{Dir: filepath.Join(dir, "sectors"), SectorSize: rig.ssize, MaxWaitDealsSectors: 64}
	// The bench only adds pieces: no sector is sealed, no message sent.
	if rig.seal, err = sealing.New(cfg, rig.sqldb, rig.dn, nil, miner, sealing.NewDevnetSealer()); err != nil {
		return nil, err
	}
	secret := []byte(uuid.NewString())
	token, err := ferryauth.Mint(secret, ferryauth.All()...)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening on loopback: %w", err)
	}
	rig.srv, err = minerapi.NewServer(minerapi.ServerConfig{
		Miner: miner, SectorSize: rig.ssize,
		RemoteURL: "http://" + l.Addr().String() + "/remote",
		Verify: func(ctx context.Context, tok string) ([]auth.Permission, error) {
			return ferryauth.Verify(secret, tok)
		},
	}, rig.seal)
	if err != nil {
		l.Close()
		return nil, err
	}
	rig.hs = &http.Server{Handler: rig.srv}
	go rig.hs.Serve(l)
	if rig.client, err = minerapi.DialURL(ctx, "http://"+l.Addr().String()+minerapi.APIPath, token); err != nil {
		return nil, err
	}
	return rig, nil
}

func (r *handoffRig) deal() sealing.Deal {
	r.deals++
	mh, _ := multihash.Sum([]byte(fmt.Sprint("publish ", r.deals)), multihash.SHA2_256, -1)
	miner, _ := address.NewIDAddress(1000)
	client, _ := address.NewIDAddress(1001)
	return sealing.Deal{UUID: uuid.New(), DealID: r.deals, PublishCid: cid.NewCidV1(cid.DagCBOR, mh), KeepUnsealed: true,
		Proposal: &market.DealProposal{PieceCID: r.pc, PieceSize: r.size.Padded(), Client: client, Provider: miner,
			StartEpoch: 100000, EndEpoch: 100000 + 518400,
			StoragePricePerEpoch: big.Zero(), ProviderCollateral: big.Zero(), ClientCollateral: big.Zero()}}
}

// local times sealing's AddPieceToAny of the file, in process.
func (r *handoffRig) local(ctx context.Context) (time.Duration, error) {
	f, err := os.Open(r.src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	if _, err := r.seal.AddPieceToAny(ctx, r.size, f, r.deal()); err != nil {
		return 0, fmt.Errorf("local AddPieceToAny: %w", err)
	}
	return time.Since(start), nil
}

// remote times SectorAddPieceToAny of the file through the server.
func (r *handoffRig) remote(ctx context.Context) (time.Duration, error) {
	f, err := os.Open(r.src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	d := r.deal()
	publish, prop := d.PublishCid, d.Proposal
	start := time.Now()
	if _, err := r.client.SectorAddPieceToAny(ctx, r.size, f, minerapi.PieceDealInfo{PublishCid: &publish, DealID: d.DealID,
		DealProposal: prop, DealSchedule: minerapi.DealSchedule{StartEpoch: prop.StartEpoch, EndEpoch: prop.EndEpoch}, KeepUnsealed: true}); err != nil {
		return 0, fmt.Errorf("SectorAddPieceToAny over loopback: %w", err)
	}
	return time.Since(start), nil
}

func (r *handoffRig) close() {
	if r.client != nil {
		r.client.Close()
	}
	if r.hs != nil {
		r.hs.Close()
	}
	if r.srv != nil {
		r.srv.Close()
	}
	if r.sqldb != nil {
		r.sqldb.Close()
	}
	if r.dn != nil {
		r.dn.Close()
	}
}
