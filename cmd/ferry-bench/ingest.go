package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/multiformats/go-multihash"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/carv1"
	"github.com/ferry-fil/ferry/internal/procs"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/node"
	"github.com/ferry-fil/ferry/piece"
)

// ingestTarget is the target: deal bytes per second at 80% of the
// machine's limit.
const ingestTarget = 0.80

// ingestCommand measures online deals from proposal to AddedPiece through
// a real devnet ferryd, against the machine's limit measured in the same
// run.
func ingestCommand() *cli.Command {
	return &cli.Command{
		Name:  "ingest",
		Usage: "N concurrent online deals from proposal to AddedPiece through a devnet ferryd, data served over HTTP on loopback, against the disk's and CommP's limit",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "deals", Value: 8, Usage: "concurrent deals per round"},
			&cli.StringFlag{Name: "piece-size", Value: "256MiB", Usage: "padded piece size of each deal (its CAR fills the piece)"},
			&cli.StringFlag{Name: "sector-size", Value: "512MiB", Usage: "the devnet miner's sector size"},
			&cli.IntFlag{Name: "rounds", Value: 3, Usage: "rounds, each with a fresh daemon; medians are reported"},
			&cli.DurationFlag{Name: "publish-period", Value: time.Second, Usage: "the daemon's Market.PublishMsgPeriod"},
			&cli.StringFlag{Name: "dir", Usage: "directory for the data and the daemons' repos (default: the system temp dir)"},
			&cli.BoolFlag{Name: "verbose", Usage: "show the daemon's log"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the first round (proposals to the last AddedPiece) to this file"},
		},
		Action: func(cctx *cli.Context) error {
			ps, err := commpParseSize(cctx.String("piece-size"))
			if err != nil {
				return fmt.Errorf("ingest: --piece-size: %w", err)
			}
			p := ingestParams{
				Deals: cctx.Int("deals"), PieceSize: abi.PaddedPieceSize(ps), SectorSize: cctx.String("sector-size"),
				Rounds: cctx.Int("rounds"), PublishPeriod: cctx.Duration("publish-period"), Dir: cctx.String("dir"),
				Progress:   func(f string, a ...any) { fmt.Fprintf(cctx.App.Writer, f+"\n", a...) },
				CPUProfile: cctx.String("cpuprofile"),
			}
			if cctx.Bool("verbose") {
				p.Logf = func(f string, a ...any) {
					fmt.Fprintf(cctx.App.Writer, "%s ferryd: "+f+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
				}
			}
			res, err := runIngest(cctx.Context, p)
			if err != nil {
				return fmt.Errorf("ingest: %w", err)
			}
			res.print(cctx.App.Writer)
			return nil
		},
	}
}

// ingestParams are the bench's settings.
type ingestParams struct {
	Deals         int
	PieceSize     abi.PaddedPieceSize
	SectorSize    string // as the config file writes it: "8MiB", "512MiB"
	Rounds        int
	PublishPeriod time.Duration
	Dir           string               // "": the temp dir
	Logf          func(string, ...any) // the daemon's log; nil: dropped
	Progress      func(string, ...any) // the bench's own progress lines; nil: dropped
	CPUProfile    string               // file for a CPU profile of the first round; "": none
}

// ingestDeal is one deal's data as the client prepared it.
type ingestDeal struct {
	name     string // file name on the HTTP server
	size     uint64 // CAR bytes
	root     cid.Cid
	pieceCID cid.Cid
}

// ingestRound is one round's timeline: when each deal was proposed and
// reached each checkpoint.
type ingestRound struct {
	start  time.Time // the first proposal
	deals  []dealTimes
	bytes  uint64
	cpu    time.Duration // CPU time of the process (daemon, client and HTTP server) from the first proposal to the last AddedPiece seen
	kernel time.Duration // the part of cpu the kernel spent (system calls, page faults)
	polled time.Duration // when the wait saw the last AddedPiece, from start
	maxRSS float64       // peak RSS of the process once the round ended
}

// dealTimes are the moments a deal passed its checkpoints, from its log.
type dealTimes struct {
	proposed, accepted, transferred, published, confirmed, added time.Time
}

// end is when the last deal of the round reached AddedPiece.
func (r *ingestRound) end() time.Time {
	var t time.Time
	for _, d := range r.deals {
		if d.added.After(t) {
			t = d.added
		}
	}
	return t
}

func (r *ingestRound) wall() time.Duration { return r.end().Sub(r.start) }

// ingestResult holds every round and the limits measured beside them.
type ingestResult struct {
	p                   ingestParams
	dealBytes           uint64 // per round
	disk, commp         []pass
	diskBytes           int64
	pageNew, pageReuse  pass // kernel time of writing pageBytes through the page cache into a new file, then over its cached pages
	pageBytes           int64
	commpBytes          int64
	rounds              []ingestRound
	loadBefore, loadEnd string
	ferrydProcs         int
	maxHeap             uint64
}

func runIngest(ctx context.Context, p ingestParams) (*ingestResult, error) {
	if p.Deals < 1 || p.Rounds < 1 {
		return nil, errors.New("--deals and --rounds must be at least 1")
	}
	if err := piece.ValidatePadded(p.PieceSize); err != nil || p.PieceSize < 1<<20 {
		return nil, fmt.Errorf("piece size %d: a power of two of at least 1 MiB is needed", p.PieceSize)
	}
	if p.Logf == nil {
		p.Logf = func(string, ...any) {}
	}
	if p.Progress == nil {
		p.Progress = func(string, ...any) {}
	}
	// The daemon runs as ferryd does (its spare P, internal/procs); the
	// CommP pass of the limit as `ferry commp` does, at Go's default.
	commpProcs := runtime.GOMAXPROCS(procs.Ferryd())
	defer runtime.GOMAXPROCS(commpProcs)

	tmp, err := os.MkdirTemp(p.Dir, "ferry-bench-ingest-")
	if err != nil {
		return nil, fmt.Errorf("creating work directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	dataDir := filepath.Join(tmp, "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		return nil, err
	}
	p.Progress("writing %d CAR files of %d-byte pieces to %s", p.Deals, p.PieceSize, dataDir)
	deals := make([]ingestDeal, p.Deals)
	res := &ingestResult{p: p, loadBefore: loadAvg(), ferrydProcs: runtime.GOMAXPROCS(0)}
	// What the staging write costs the kernel here, before anything
	// else has touched this run's memory.
	res.pageBytes = min(int64(p.Deals)*int64(p.PieceSize), 1<<30)
	if res.pageNew, res.pageReuse, err = timePageCacheWrite(filepath.Join(tmp, "pagecache"), res.pageBytes); err != nil {
		return nil, fmt.Errorf("page cache pass: %w", err)
	}
	for i := range deals {
		if deals[i], err = writeIngestCAR(dataDir, i, p.PieceSize); err != nil {
			return nil, fmt.Errorf("writing deal data: %w", err)
		}
		res.dealBytes += deals[i].size
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dataDir))}
	go srv.Serve(ln)
	defer srv.Close()
	baseURL := "http://" + ln.Addr().String() + "/"

	// The machine's limit, measured beside each round: the disk's
	// sequential O_DIRECT write rate and CommP's rate.
	res.diskBytes = min(int64(res.dealBytes), 1<<30) >> 20 << 20
	res.commpBytes = int64(deals[0].size)
	for r := range p.Rounds {
		pa, err := timeDirectWrite(filepath.Join(tmp, "disk"), res.diskBytes)
		if err != nil {
			return nil, fmt.Errorf("disk pass: %w", err)
		}
		res.disk = append(res.disk, pa)
		ferrydProcs := runtime.GOMAXPROCS(commpProcs)
		pa, _, err = timeCommP(filepath.Join(dataDir, deals[r%len(deals)].name), piece.PaddedSizeFor(deals[r%len(deals)].size))
		runtime.GOMAXPROCS(ferrydProcs)
		if err != nil {
			return nil, err
		}
		res.commp = append(res.commp, pa)

		p.Progress("round %d: %d deals", r+1, p.Deals)
		profile := ""
		if r == 0 {
			profile = p.CPUProfile
		}
		round, err := ingestOnce(ctx, p, filepath.Join(tmp, fmt.Sprintf("repo-%d", r)), baseURL, deals, profile, &res.maxHeap)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", r+1, err)
		}
		round.bytes = res.dealBytes
		res.rounds = append(res.rounds, round)
		p.Progress("round %d: %.1f MiB/s", r+1, float64(round.bytes)/(1<<20)/round.wall().Seconds())
	}
	res.loadEnd = loadAvg()
	return res, nil
}

// timePageCacheWrite writes size bytes through the page cache into a new
// file at path, as the transfer writes a staging file, then the same bytes
// over the file's cached pages, and returns the kernel time of each. On a
// machine whose memory the hypervisor hands out on first touch (a balloon
// driver's free page reporting gives idle pages back), the first costs
// many times the second.
func timePageCacheWrite(path string, size int64) (fresh, reused pass, err error) {
	buf := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{'p', 'a', 'g', 'e'}).Read(buf)
	defer os.Remove(path)
	f, err := os.Create(path)
	if err != nil {
		return pass{}, pass{}, err
	}
	defer f.Close()
	write := func() (pass, error) {
		start, k0 := time.Now(), kernelDuration()
		for off := int64(0); off < size; off += int64(len(buf)) {
			if _, err := f.WriteAt(buf, off); err != nil {
				return pass{}, fmt.Errorf("writing %s: %w", path, err)
			}
		}
		return pass{wall: time.Since(start), cpu: kernelDuration() - k0}, nil
	}
	if fresh, err = write(); err != nil {
		return pass{}, pass{}, err
	}
	if reused, err = write(); err != nil {
		return pass{}, pass{}, err
	}
	return fresh, reused, nil
}

// writeIngestCAR writes deal i's CAR: random 1 MiB raw blocks (the last
// one shorter) filling a piece of size ps, and computes its piece CID as the
// client does.
func writeIngestCAR(dir string, i int, ps abi.PaddedPieceSize) (ingestDeal, error) {
	d := ingestDeal{name: fmt.Sprintf("deal-%d.car", i)}
	f, err := os.Create(filepath.Join(dir, d.name))
	if err != nil {
		return d, err
	}
	defer f.Close()
	calc := piece.NewCalc()
	w := bufio.NewWriterSize(io.MultiWriter(f, calc), 1<<20)
	rng := rand.NewChaCha8([32]byte{'i', 'n', 'g', 'e', 's', 't', byte(i), byte(i >> 8)})
	block := make([]byte, 1<<20)
	rawCID := func(b []byte) cid.Cid {
		sum := sha256.Sum256(b)
		mh, _ := multihash.Encode(sum[:], multihash.SHA2_256)
		return cid.NewCidV1(cid.Raw, mh)
	}
	// The header names the first block as the root (the CAR is a set of
	// raw blocks); every raw CID has the same length, so the room left
	// for blocks is known before the first is made.
	headerLen := len(carv1.Header([]cid.Cid{rawCID(nil)}))
	overhead := len(carv1.SectionHeader(rawCID(nil), len(block)))
	left := int(ps.Unpadded()) - headerLen
	first := block[:min(len(block), left-overhead)]
	rng.Read(first)
	d.root = rawCID(first)
	if _, err := carv1.WriteHeader(w, []cid.Cid{d.root}); err != nil {
		return d, err
	}
	for i := 0; left > overhead; i++ {
		b := block[:min(len(block), left-overhead)]
		if i > 0 {
			rng.Read(b)
		}
		k, err := carv1.WriteBlock(w, rawCID(b), b)
		if err != nil {
			return d, err
		}
		left -= k
	}
	if err := w.Flush(); err != nil {
		return d, err
	}
	comm, err := calc.SumAs(ps)
	if err != nil {
		return d, err
	}
	d.size, d.pieceCID = comm.PayloadSize, comm.CID()
	return d, f.Close()
}

// ingestOnce starts a devnet ferryd on a new repo at dir, proposes every
// deal at once and waits until all reached AddedPiece.
func ingestOnce(ctx context.Context, p ingestParams, dir, baseURL string, deals []ingestDeal, profile string, maxHeap *uint64) (ingestRound, error) {
	defer os.RemoveAll(dir)
	if err := writeIngestConfig(dir, p); err != nil {
		return ingestRound{}, err
	}
	d, err := node.Start(ctx, dir, node.Options{Logf: p.Logf})
	if err != nil {
		return ingestRound{}, fmt.Errorf("starting ferryd: %w", err)
	}
	defer d.Close()
	if d.Devnet == nil {
		return ingestRound{}, errors.New("the repo is not in devnet mode")
	}
	wallet, _, err := acceptFundClient(ctx, d)
	if err != nil {
		return ingestRound{}, err
	}
	h, err := client.NewHost()
	if err != nil {
		return ingestRound{}, err
	}
	defer h.Close()
	// One ask first, so the proposals below find the provider connected.
	prov, err := client.LookupProvider(ctx, d.Chain, d.Miner)
	if err != nil {
		return ingestRound{}, err
	}
	if _, err := client.QueryAsk(ctx, d.Chain, h, prov); err != nil {
		return ingestRound{}, err
	}

	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return ingestRound{}, fmt.Errorf("creating the CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return ingestRound{}, fmt.Errorf("starting the CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, kernel0 := cpuTime(), kernelDuration()
	round := ingestRound{start: time.Now(), deals: make([]dealTimes, len(deals))}
	ids, err := proposeAll(ctx, d, h, wallet, baseURL, deals)
	if err != nil {
		return ingestRound{}, err
	}
	for i := range round.deals {
		round.deals[i].proposed = round.start
	}
	if err := waitAddedPiece(ctx, d.Provider, ids, maxHeap); err != nil {
		return ingestRound{}, err
	}
	round.cpu, round.polled = seconds(cpuTime()-cpu0), time.Since(round.start)
	round.kernel = kernelDuration() - kernel0
	for i, id := range ids {
		dd, err := d.Provider.Deal(ctx, id)
		if err != nil {
			return ingestRound{}, err
		}
		round.deals[i] = timesFromLog(round.start, dd.Logs)
	}
	round.maxRSS = peakRSS()
	return round, nil
}

// writeIngestConfig writes the daemon's config.toml: a devnet on loopback
// with ephemeral ports, the bench's sector size and publish period, and
// room for every deal's sectors at once.
func writeIngestConfig(dir string, p ingestParams) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ss, err := commpParseSize(p.SectorSize)
	if err != nil {
		return fmt.Errorf("sector size: %w", err)
	}
	cfg := node.DefaultConfig()
	cfg.Chain.DevnetListen = "127.0.0.1:0"
	cfg.Chain.DevnetSectorSize = p.SectorSize
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Libp2p.ListenAddresses = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Market.PublishMsgPeriod = node.Duration(p.PublishPeriod)
	// Room for every deal's sector at once: the bench measures the data
	// path, not how soon full sectors leave WaitDeals.
	perSector := max(1, int(ss/uint64(p.PieceSize)))
	cfg.Sealing.MaxWaitDealsSectors = max(cfg.Sealing.MaxWaitDealsSectors, (p.Deals+perSector-1)/perSector)
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		return fmt.Errorf("encoding config: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "config.toml"), buf.Bytes(), 0o600)
}

// proposeAll makes every deal at once, as a data-preparation tool does,
// and returns their UUIDs in the order of deals.
func proposeAll(ctx context.Context, d *node.Node, h host.Host, wallet address.Address, baseURL string, deals []ingestDeal) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, len(deals))
	errs := make([]error, len(deals))
	var wg sync.WaitGroup
	for i, dl := range deals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := client.MakeDeal(ctx, d.Chain, h, d.Wallet, client.DealRequest{
				Provider: d.Miner, Client: wallet, PieceCID: dl.pieceCID, PieceSize: piece.PaddedSizeFor(dl.size),
				CARSize: dl.size, PayloadCID: dl.root, HTTPURL: baseURL + dl.name,
			})
			if err != nil {
				errs[i] = fmt.Errorf("proposing deal %d: %w", i, err)
				return
			}
			ids[i] = res.DealUUID
		}()
	}
	wg.Wait()
	return ids, errors.Join(errs...)
}

// waitAddedPiece polls the provider's deal list until every deal in ids
// reached AddedPiece; a failed deal ends the wait with its error. It keeps
// the highest Go heap seen in maxHeap. Every 100 ms: the round's times come
// from the deals' logs, and the polls' CPU counts in the round's.
func waitAddedPiece(ctx context.Context, prov *market.Provider, ids []uuid.UUID, maxHeap *uint64) error {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id.String()] = true
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		deals, err := prov.Deals(ctx, market.DealFilter{})
		if err != nil {
			return err
		}
		done := 0
		for _, di := range deals {
			if !want[di.UUID] {
				continue
			}
			if di.Retry == market.RetryFatal || di.Retry == market.RetryManual {
				return fmt.Errorf("deal %s stopped at %s: %s", di.UUID, di.Checkpoint, di.Error)
			}
			if di.Checkpoint >= market.AddedPiece {
				done++
			}
		}
		*maxHeap = max(*maxHeap, heapInUse())
		if done == len(ids) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// timesFromLog reads when a deal reached each checkpoint from its log
// lines ("checkpoint Transferred", …); proposed is when it was sent.
func timesFromLog(proposed time.Time, logs []market.DealLog) dealTimes {
	t := dealTimes{proposed: proposed}
	at := map[string]*time.Time{
		"checkpoint " + market.Transferred.String():      &t.transferred,
		"checkpoint " + market.Published.String():        &t.published,
		"checkpoint " + market.PublishConfirmed.String(): &t.confirmed,
		"checkpoint " + market.AddedPiece.String():       &t.added,
	}
	for _, l := range logs {
		if strings.HasPrefix(l.Text, "accepted from peer ") && t.accepted.IsZero() {
			t.accepted = l.At
		}
		if p := at[strings.TrimSpace(l.Text)]; p != nil && p.IsZero() {
			*p = l.At
		}
	}
	return t
}

// medianRound is the round of median wall time.
func (r *ingestResult) medianRound() ingestRound {
	s := slices.Clone(r.rounds)
	slices.SortFunc(s, func(a, b ingestRound) int { return int(a.wall() - b.wall()) })
	return s[len(s)/2]
}

func (r *ingestResult) rate() float64 {
	round := r.medianRound()
	return float64(round.bytes) / (1 << 20) / round.wall().Seconds()
}

// limit is the machine's limit for ingest in MiB/s: each byte is written
// twice (staging, then the sector file) and read once, so half the disk's
// sequential O_DIRECT write rate, or CommP's rate if lower.
func (r *ingestResult) limit() (mibps float64, diskHalf, commp float64) {
	disk, cp := medianPass(r.disk), medianPass(r.commp)
	diskHalf = float64(r.diskBytes) / (1 << 20) / disk.wall.Seconds() / 2
	commp = float64(r.commpBytes) / (1 << 20) / cp.wall.Seconds()
	return min(diskHalf, commp), diskHalf, commp
}

func (r *ingestResult) print(out io.Writer) {
	round := r.medianRound()
	limit, diskHalf, commp := r.limit()
	rate := r.rate()
	fmt.Fprintf(out, "%d deals of %d-byte pieces (%d CAR bytes), %s sectors, publish period %v, %d rounds, GOMAXPROCS %d, %d CPUs, load average before %s, after %s\n",
		r.p.Deals, r.p.PieceSize, r.dealBytes, r.p.SectorSize, r.p.PublishPeriod, len(r.rounds), r.ferrydProcs, runtime.NumCPU(), r.loadBefore, r.loadEnd)
	var walls []string
	for _, rd := range r.rounds {
		walls = append(walls, rd.wall().Round(time.Millisecond).String())
	}
	fmt.Fprintf(out, "proposal to the last AddedPiece: %s (rounds %s)\n", round.wall().Round(time.Millisecond), strings.Join(walls, ", "))
	fmt.Fprintf(out, "ingest:  %8.1f MiB/s of deal data (median round)\n", rate)
	fmt.Fprintf(out, "limit:   %8.1f MiB/s = min(disk O_DIRECT write %.1f MiB/s / 2, CommP %.1f MiB/s)\n", limit, 2*diskHalf, commp)
	fmt.Fprintf(out, "ratio:   %7.1f%% (target >= %.0f%%)\n", 100*rate/limit, 100*ingestTarget)
	// Each byte is hashed once (the transfer's CommP; AddPiece checks
	// the transfer's CRC-32C instead), on the CPUs the plain CommP pass
	// used. What 80% of the limit leaves for everything else is the
	// budget the rest of the path must keep to.
	cp := medianPass(r.commp)
	hashCPU := cp.cpu.Seconds() / (float64(r.commpBytes) / (1 << 30))
	gib := float64(round.bytes) / (1 << 30)
	cpuPerGiB := round.cpu.Seconds() / gib
	ncpu := float64(runtime.NumCPU())
	fmt.Fprintf(out, "CPU:     %.2f CPU-s per GiB of deal data (daemon, client and HTTP server; %.2f of it in the kernel), %.0f%% of %d CPUs busy; at that cost %d CPUs ingest at most %.1f MiB/s\n",
		cpuPerGiB, round.kernel.Seconds()/gib, 100*round.cpu.Seconds()/round.polled.Seconds()/ncpu, runtime.NumCPU(), runtime.NumCPU(), ncpu/cpuPerGiB*1024)
	budget := ncpu * 1024 / (ingestTarget * limit)
	fmt.Fprintf(out, "budget:  at %.0f%% of the limit %d CPUs have %.2f CPU-s per GiB; the one CommP pass takes %.2f, leaving %.2f for the rest (HTTP on both ends, staging, fr32, CRC, index), which costs %.2f here\n",
		100*ingestTarget, runtime.NumCPU(), budget, hashCPU, max(0, budget-hashCPU), max(0, cpuPerGiB-hashCPU))
	// Each byte also goes once into a new staging file through the page
	// cache; the limit counts only the disk's side of it.
	pageGiB := float64(r.pageBytes) / (1 << 30)
	fresh, reused := r.pageNew.cpu.Seconds()/pageGiB, r.pageReuse.cpu.Seconds()/pageGiB
	withPages := ncpu / (hashCPU + fresh) * 1024
	fmt.Fprintf(out, "page cache: writing a new file costs %.2f kernel CPU-s/GiB here, rewriting its cached pages %.2f; CommP and the staging write's new pages alone cap ingest at %.1f MiB/s, %.0f%% of the limit\n",
		fresh, reused, withPages, 100*min(1, withPages/limit))
	// Where the median round's time went.
	phase := func(name string, from, to func(dealTimes) time.Time) {
		var first, last time.Time
		var ds []time.Duration
		for _, d := range round.deals {
			a, b := from(d), to(d)
			ds = append(ds, b.Sub(a))
			if first.IsZero() || b.Before(first) {
				first = b
			}
			if b.After(last) {
				last = b
			}
		}
		slices.Sort(ds)
		fmt.Fprintf(out, "  %-28s per deal median %8s, max %8s; first done at %8s, last at %8s\n", name,
			ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond),
			first.Sub(round.start).Round(time.Millisecond), last.Sub(round.start).Round(time.Millisecond))
	}
	fmt.Fprintln(out, "median round, from the deals' logs:")
	phase("proposal -> Accepted", func(d dealTimes) time.Time { return d.proposed }, func(d dealTimes) time.Time { return d.accepted })
	phase("Accepted -> Transferred", func(d dealTimes) time.Time { return d.accepted }, func(d dealTimes) time.Time { return d.transferred })
	phase("Transferred -> Published", func(d dealTimes) time.Time { return d.transferred }, func(d dealTimes) time.Time { return d.published })
	phase("Published -> PublishConfirmed", func(d dealTimes) time.Time { return d.published }, func(d dealTimes) time.Time { return d.confirmed })
	phase("PublishConfirmed -> AddedPiece", func(d dealTimes) time.Time { return d.confirmed }, func(d dealTimes) time.Time { return d.added })
	fmt.Fprintf(out, "memory: peak RSS %.0f MiB, max Go heap in use %.0f MiB\n", round.maxRSS/(1<<20), float64(r.maxHeap)/(1<<20))
}
