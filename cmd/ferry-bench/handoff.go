package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
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
// sealing's AddPieceToAny in process, on the same piece file. Beside them
// it measures what the wire alone costs (the file sent over loopback TCP
// against the file read from the page cache), and from that the ratio a
// CPU-bound machine can reach at best, as `addpiece` measures the disk.
func handoffCommand() *cli.Command {
	return &cli.Command{
		Name:  "handoff",
		Usage: "SectorAddPieceToAny over loopback (market-only -> sealing ferryd) against local AddPiece of the same piece (target >= 90%), with the estimate loopback TCP's CPU cost gives when AddPiece is CPU-bound",
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: "size", Value: 1 << 30 / 128 * 127, Usage: "payload bytes of the random test file (the default fills a 1 GiB piece)"},
			&cli.StringFlag{Name: "dir", Usage: "directory for the test file, database and sectors (default: the system temp dir)"},
			&cli.IntFlag{Name: "rounds", Value: 3, Usage: "rounds of the four passes, in rotating order; medians are reported"},
		},
		Action: func(cctx *cli.Context) error {
			return runHandoffBench(cctx.Context, cctx.String("dir"), cctx.Int64("size"), cctx.Int("rounds"))
		},
	}
}

// cpuBound is the share of its CPUs a pass must keep busy to count as
// CPU-bound: then what another pass adds in CPU time adds to its wall time.
const cpuBound = 0.90

func runHandoffBench(ctx context.Context, dir string, size int64, rounds int) error {
	if rounds < 1 {
		return errors.New("--rounds must be at least 1")
	}
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
	// Go's default GOMAXPROCS is the CPUs the process may use (affinity,
	// cgroup quota); ferryd's spare P (internal/procs) adds none.
	cpus := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs.Ferryd())) // as ferryd runs

	var local, remote, read, wire []pass
	passes := []func() error{
		func() error { return timePass(&local, func() error { return rig.local(ctx) }) },
		func() error { return timePass(&remote, func() error { return rig.remote(ctx) }) },
		func() error { return timePass(&read, func() error { return moveAll(rig.src, size, readFile) }) },
		func() error {
			return timePass(&wire, func() error {
				return moveAll(rig.src, size, func(path string) (int64, error) { return sendFile(ctx, path) })
			})
		},
	}
	for r := range rounds {
		for i := range passes {
			if err := passes[(r+i)%len(passes)](); err != nil {
				return fmt.Errorf("round %d: %w", r+1, err)
			}
		}
	}
	// The handoff passes' figures are per GiB of the piece, the file
	// passes' per GiB of the file: at the default size the two are within
	// 1%.
	gib := float64(rig.size.Padded()) / (1 << 30)
	fileGiB := float64(size) / (1 << 30)
	line := func(name string, ps []pass, gib float64, note string) (wall, cpu float64) {
		wall, cpu = medianWall(ps).Seconds(), medianCPU(ps).Seconds()
		fmt.Printf("%-55s%8.1f MiB/s  (%v, %.2f CPU-s/GiB%s)\n", name, 1024*gib/wall, seconds(wall).Round(time.Millisecond), cpu/gib, note)
		return wall, cpu
	}
	fmt.Printf("piece %d bytes (payload %d), %d rounds, sector size %d, load average %s\n", rig.size.Padded(), size, rounds, rig.ssize, loadAvg())
	wl, cl := line("local sealing.AddPieceToAny:", local, gib, "")
	wr, _ := line("SectorAddPieceToAny over loopback (push stream, HTTP):", remote, gib, ", client and server")
	fmt.Printf("ratio handoff/local: %.1f%% (target >= 90%%)\n", 100*wl/wr)
	_, ca := line("piece file from the page cache (1 MiB reads):", read, fileGiB, "")
	_, cb := line("piece file over loopback TCP (sendfile, 1 MiB reads):", wire, fileGiB, ", sender and reader")
	// When local AddPiece is CPU-bound the handoff, which does its work
	// and the wire's on the same CPUs, is expected at local's CPU time
	// over local's plus what the wire adds beyond the file read local
	// does too, for the bytes the push stream sends (the piece's unpadded
	// size: the file, then zeros). An estimate, not a bound: the two
	// overlap a little, so the ratio may come out a few points above.
	wireCPU := (cb - ca) * float64(rig.size) / float64(size)
	fmt.Printf("wire cost (TCP - page cache): %.2f CPU-s/GiB; CPU-bound estimate local/(local+wire): %.1f%%\n", (cb-ca)/fileGiB, 100*cl/(cl+wireCPU))
	busy := cl / wl / float64(cpus)
	if busy >= cpuBound {
		fmt.Printf("local keeps %.0f%% of %d CPUs busy: CPU-bound, so the estimate applies\n", 100*busy, cpus)
	} else {
		fmt.Printf("local keeps %.0f%% of %d CPUs busy: not CPU-bound, so the estimate does not apply\n", 100*busy, cpus)
	}
	return nil
}

// timePass runs f and appends its wall, process CPU and machine steal time
// to ps.
func timePass(ps *[]pass, f func() error) error {
	m := startPass()
	if err := f(); err != nil {
		return err
	}
	*ps = append(*ps, m.stop())
	return nil
}

// medianWall is the median of the passes' wall times.
func medianWall(ps []pass) time.Duration {
	var d []time.Duration
	for _, p := range ps {
		d = append(d, p.wall)
	}
	return medianDuration(d)
}

// medianCPU is the median of the passes' CPU times.
func medianCPU(ps []pass) time.Duration {
	var d []time.Duration
	for _, p := range ps {
		d = append(d, p.cpu)
	}
	return medianDuration(d)
}

// moveAll runs move on the file at path and checks it moved all size
// bytes.
func moveAll(path string, size int64, move func(path string) (int64, error)) error {
	n, err := move(path)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("moved %d bytes of the %d-byte file", n, size)
	}
	return nil
}

// readFile reads the file at path with 1 MiB reads and drops the bytes:
// the file read that local AddPiece does too. It returns the bytes read.
func readFile(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := drain(f, 1<<20)
	if err != nil {
		return n, fmt.Errorf("reading %s: %w", path, err)
	}
	return n, nil
}

// sendFile sends the file at path over a new loopback TCP connection with
// (*net.TCPConn).ReadFrom (sendfile) to a goroutine that reads it with
// 1 MiB reads and drops the bytes: the file read plus what the wire adds.
// It returns the bytes the reader received.
func sendFile(ctx context.Context, path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("listening on loopback: %w", err)
	}
	defer l.Close()
	type received struct {
		n   int64
		err error
	}
	done := make(chan received, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- received{err: fmt.Errorf("accepting the loopback connection: %w", err)}
			return
		}
		defer c.Close()
		n, err := drain(c, 1<<20)
		if err != nil {
			err = fmt.Errorf("reading the loopback connection: %w", err)
		}
		done <- received{n, err}
	}()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		l.Close() // ends the Accept
		<-done
		return 0, fmt.Errorf("dialing the loopback listener: %w", err)
	}
	conn := c.(*net.TCPConn)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	_, sendErr := conn.ReadFrom(f)
	stop()
	conn.Close() // the reader sees the end of the stream, or an error
	got := <-done
	if sendErr != nil {
		return got.n, fmt.Errorf("sending %s over loopback TCP: %w", path, sendErr)
	}
	return got.n, got.err
}

// drain reads r to its end with reads of size bytes and drops the bytes;
// it returns how many it read. (io.Copy to io.Discard would read in
// io.Discard's own 8 KiB pieces.)
func drain(r io.Reader, size int) (int64, error) {
	buf := make([]byte, size)
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
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

// local hands the file to sealing's AddPieceToAny, in process.
func (r *handoffRig) local(ctx context.Context) error {
	f, err := os.Open(r.src)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := r.seal.AddPieceToAny(ctx, r.size, f, r.deal()); err != nil {
		return fmt.Errorf("local AddPieceToAny: %w", err)
	}
	return nil
}

// remote hands the file to the server with SectorAddPieceToAny.
func (r *handoffRig) remote(ctx context.Context) error {
	f, err := os.Open(r.src)
	if err != nil {
		return err
	}
	defer f.Close()
	d := r.deal()
	publish, prop := d.PublishCid, d.Proposal
	if _, err := r.client.SectorAddPieceToAny(ctx, r.size, f, minerapi.PieceDealInfo{PublishCid: &publish, DealID: d.DealID,
		DealProposal: prop, DealSchedule: minerapi.DealSchedule{StartEpoch: prop.StartEpoch, EndEpoch: prop.EndEpoch}, KeepUnsealed: true}); err != nil {
		return fmt.Errorf("SectorAddPieceToAny over loopback: %w", err)
	}
	return nil
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
