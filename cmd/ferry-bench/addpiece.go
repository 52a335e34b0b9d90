package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/internal/procs"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/sealing"
)

// addPieceTarget is the target: AddPiece at 90% of a plain CommP
// pass's throughput.
const addPieceTarget = 0.90

// addPieceCommand compares the fused AddPiece work (fr32 + write into a
// sparse unsealed sector file + CommP, sealing.PieceWriter) with a plain
// CommP pass over the same file (what `ferry commp` does), and measures the
// disk's own O_DIRECT sequential write rate beside them, so the output says
// which of the two is the ceiling.
func addPieceCommand() *cli.Command {
	return &cli.Command{
		Name:  "addpiece",
		Usage: "AddPiece (fr32 + write + CommP in one pass) against a plain CommP pass on the same file and the disk's own O_DIRECT write rate",
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: "size", Value: 1 << 30 / 128 * 127, Usage: "payload bytes of the random test file (the default fills a 1 GiB piece)"},
			&cli.StringFlag{Name: "dir", Usage: "directory for the test file and the sector file (default: the system temp dir)"},
			&cli.IntFlag{Name: "rounds", Value: 5, Usage: "rounds of the three passes, in rotating order; medians are reported"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the AddPiece passes to this file"},
		},
		Action: func(cctx *cli.Context) error {
			res, err := runAddPieceBench(cctx.Context, addPieceParams{
				Dir: cctx.String("dir"), Size: cctx.Int64("size"), Rounds: cctx.Int("rounds"), CPUProfile: cctx.String("cpuprofile"),
			})
			if err != nil {
				return fmt.Errorf("addpiece: %w", err)
			}
			res.print(cctx.App.Writer)
			return nil
		},
	}
}

// addPieceParams are the bench's settings.
type addPieceParams struct {
	Dir        string // where the payload, sector and disk-test files go ("": the temp dir)
	Size       int64  // payload bytes
	Rounds     int
	CPUProfile string // file for a CPU profile of the AddPiece passes ("": none)
}

// pass is one timed run of one of the three passes.
type pass struct {
	wall, cpu time.Duration
	steal     time.Duration // machine-wide: time the hypervisor ran something else on our vCPUs
}

// meter times one pass: wall, this process's CPU and the machine's steal.
type meter struct {
	start        time.Time
	cpu0, steal0 time.Duration
}

func startPass() meter { return meter{start: time.Now(), cpu0: cpuDuration(), steal0: stealTime()} }

func (m meter) stop() pass {
	return pass{wall: time.Since(m.start), cpu: cpuDuration() - m.cpu0, steal: stealTime() - m.steal0}
}

// addPieceResult holds every round's figures.
type addPieceResult struct {
	payload     int64
	piece       abi.PaddedPieceSize
	written     int64 // padded bytes AddPiece writes
	commpProcs  int
	ferrydProcs int
	loadBefore  string
	loadAfter   string

	disk, commp, addpiece []pass
	both                  []pass // the disk pass and the CommP pass at once, separately
	syncs                 []time.Duration
	maxSys                uint64 // the Go runtime's memory from the OS, highest seen
}

func runAddPieceBench(ctx context.Context, p addPieceParams) (*addPieceResult, error) {
	if p.Size <= 0 || uint64(p.Size) > piece.MaxPayload {
		return nil, fmt.Errorf("size %d out of range", p.Size)
	}
	if p.Rounds < 1 {
		return nil, errors.New("--rounds must be at least 1")
	}
	tmp, err := os.MkdirTemp(p.Dir, "ferry-bench-addpiece-")
	if err != nil {
		return nil, fmt.Errorf("creating work directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "payload")
	if err := writeRandom(src, uint64(p.Size)); err != nil {
		return nil, fmt.Errorf("writing the payload: %w", err)
	}
	if _, err := commpWarm(src); err != nil { // every pass reads it from the page cache
		return nil, fmt.Errorf("reading the payload: %w", err)
	}
	res := &addPieceResult{
		payload: p.Size, piece: piece.PaddedSizeFor(uint64(p.Size)),
		// CommP runs as `ferry commp` does, at Go's default GOMAXPROCS;
		// AddPiece as ferryd runs it (internal/procs).
		commpProcs: runtime.GOMAXPROCS(0), ferrydProcs: procs.Ferryd(),
		loadBefore: loadAvg(),
	}
	defer runtime.GOMAXPROCS(res.commpProcs)

	var prof *os.File
	if p.CPUProfile != "" {
		if prof, err = os.Create(p.CPUProfile); err != nil {
			return nil, fmt.Errorf("creating the CPU profile: %w", err)
		}
		defer prof.Close()
	}

	// The disk pass writes as many bytes as AddPiece does (the padded
	// payload; the zero fill after it stays a hole) with the sector
	// writer's buffer sizes to a file beside the sector file: what the
	// device does on its own.
	res.written = (p.Size + 126) / 127 * 128
	diskPass := func() error {
		pa, err := timeDirectWrite(filepath.Join(tmp, "disk"), res.written)
		if err != nil {
			return fmt.Errorf("disk pass: %w", err)
		}
		res.disk = append(res.disk, pa)
		return nil
	}
	var rootPlain, rootFused [32]byte
	var pw sealing.PieceWriter // one for every pass, as ferryd's sealing keeps one
	commpPass := func() error {
		runtime.GOMAXPROCS(res.commpProcs)
		pa, root, err := timeCommP(src, res.piece)
		if err != nil {
			return err
		}
		res.commp, rootPlain = append(res.commp, pa), root
		return nil
	}
	addPiecePass := func() error {
		runtime.GOMAXPROCS(res.ferrydProcs)
		defer runtime.GOMAXPROCS(res.commpProcs)
		if prof != nil {
			if err := pprof.StartCPUProfile(prof); err != nil {
				return fmt.Errorf("starting the CPU profile: %w", err)
			}
			// Collecting across passes: StartCPUProfile takes one file
			// once, so the profile covers the first AddPiece pass.
			defer func() { pprof.StopCPUProfile(); prof = nil }()
		}
		pa, sync, root, err := timeAddPiece(ctx, &pw, src, filepath.Join(tmp, "unsealed"), res.piece)
		if err != nil {
			return err
		}
		res.addpiece, res.syncs, rootFused = append(res.addpiece, pa), append(res.syncs, sync), root
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		res.maxSys = max(res.maxSys, ms.Sys)
		return nil
	}
	// Both at once, each on its own as above: what a fused pass could do
	// at best on this machine, where the device's work and the hashing
	// share the CPUs (and, in a VM, the host's).
	bothPass := func() error {
		runtime.GOMAXPROCS(res.ferrydProcs)
		defer runtime.GOMAXPROCS(res.commpProcs)
		m := startPass()
		diskErr := make(chan error, 1)
		go func() {
			_, err := timeDirectWrite(filepath.Join(tmp, "disk"), res.written)
			diskErr <- err
		}()
		_, _, err := timeCommP(src, res.piece)
		if derr := <-diskErr; err == nil && derr != nil {
			err = fmt.Errorf("disk pass: %w", derr)
		}
		if err != nil {
			return err
		}
		res.both = append(res.both, m.stop())
		return nil
	}
	passes := []func() error{diskPass, commpPass, addPiecePass, bothPass}
	for r := range p.Rounds {
		for i := range passes {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := passes[(r+i)%len(passes)](); err != nil {
				return nil, fmt.Errorf("round %d: %w", r+1, err)
			}
		}
		if rootPlain != rootFused {
			return nil, fmt.Errorf("round %d: AddPiece and the plain pass disagree on CommP", r+1)
		}
	}
	res.loadAfter = loadAvg()
	return res, nil
}

// timeDirectWrite writes size bytes of random data (rounded up to a whole
// chunk) to a new file at path with O_DIRECT, in vectored writes of the
// sector writer's largest size (as `dd oflag=direct bs=8M` does with one
// buffer), and removes it.
func timeDirectWrite(path string, size int64) (pass, error) {
	chunk := int64(piece.ChunkSize)
	size = (size + chunk - 1) / chunk * chunk
	bufs, err := alignedBuffers(int(min(size, sealing.DirectWriteMax)/chunk), int(chunk))
	if err != nil {
		return pass{}, err
	}
	rng := rand.NewChaCha8([32]byte{'d', 'i', 's', 'k'})
	for _, b := range bufs {
		rng.Read(b)
	}
	defer os.Remove(path)
	m := startPass()
	if err := directWrite(path, size, bufs); err != nil {
		return pass{}, err
	}
	return m.stop(), nil
}

// timeCommP is the plain CommP pass over src, as `ferry commp` reads it.
func timeCommP(src string, ps abi.PaddedPieceSize) (pass, [32]byte, error) {
	f, err := os.Open(src)
	if err != nil {
		return pass{}, [32]byte{}, err
	}
	defer f.Close()
	m := startPass()
	c := piece.NewCalc()
	if _, err := io.CopyBuffer(c, f, make([]byte, 1<<20)); err != nil {
		return pass{}, [32]byte{}, fmt.Errorf("commp pass: %w", err)
	}
	comm, err := c.SumAs(ps)
	if err != nil {
		return pass{}, [32]byte{}, fmt.Errorf("commp pass: %w", err)
	}
	return m.stop(), comm.Root, nil
}

// timeAddPiece is the fused pass into a new sparse sector file at dst (each
// round writes into fresh sector space, as AddPiece does), then its fsync.
func timeAddPiece(ctx context.Context, pw *sealing.PieceWriter, src, dst string, ps abi.PaddedPieceSize) (pass, time.Duration, [32]byte, error) {
	f, err := os.Open(src)
	if err != nil {
		return pass{}, 0, [32]byte{}, err
	}
	defer f.Close()
	os.Remove(dst)
	out, err := os.Create(dst)
	if err != nil {
		return pass{}, 0, [32]byte{}, fmt.Errorf("creating sector file: %w", err)
	}
	defer os.Remove(dst)
	defer out.Close()
	if err := out.Truncate(int64(ps)); err != nil {
		return pass{}, 0, [32]byte{}, fmt.Errorf("sizing sector file: %w", err)
	}
	m := startPass()
	comm, err := pw.WritePadded(ctx, out, 0, ps, f)
	if err != nil {
		return pass{}, 0, [32]byte{}, fmt.Errorf("addpiece pass: %w", err)
	}
	pa := m.stop()
	if err := out.Sync(); err != nil {
		return pass{}, 0, [32]byte{}, fmt.Errorf("syncing sector file: %w", err)
	}
	return pa, time.Since(m.start) - pa.wall, comm.Root, nil
}

// medianPass is the pass of median wall time; its CPU time goes with it.
func medianPass(ps []pass) pass {
	s := slices.Clone(ps)
	slices.SortFunc(s, func(a, b pass) int { return int(a.wall - b.wall) })
	return s[len(s)/2]
}

func (r *addPieceResult) print(out io.Writer) {
	disk, commp, fused, both := medianPass(r.disk), medianPass(r.commp), medianPass(r.addpiece), medianPass(r.both)
	var syncs []float64
	for _, s := range r.syncs {
		syncs = append(syncs, s.Seconds())
	}
	mib, gib := float64(r.payload)/(1<<20), float64(r.payload)/(1<<30)
	writtenMiB := float64(r.written) / (1 << 20)
	fmt.Fprintf(out, "payload %d bytes, piece %d bytes, %d rounds, %d CPUs, load average before %s, after %s\n",
		r.payload, r.piece, len(r.addpiece), runtime.NumCPU(), r.loadBefore, r.loadAfter)
	fmt.Fprintf(out, "disk (O_DIRECT, %d MiB per pwritev, %.0f MiB):          %8.1f MiB/s  (%v, steal %v)\n",
		sealing.DirectWriteMax>>20, writtenMiB, writtenMiB/disk.wall.Seconds(), disk.wall.Round(time.Millisecond), disk.steal.Round(time.Millisecond))
	fmt.Fprintf(out, "commp (plain piece.Calc pass, GOMAXPROCS %d):          %8.1f MiB/s  (%v, %.2f CPU-s/GiB, steal %v)\n",
		r.commpProcs, mib/commp.wall.Seconds(), commp.wall.Round(time.Millisecond), commp.cpu.Seconds()/gib, commp.steal.Round(time.Millisecond))
	fmt.Fprintf(out, "addpiece (fr32 + write + CommP fused, GOMAXPROCS %d):  %8.1f MiB/s  (%v, %.2f CPU-s/GiB, steal %v, then fsync %v)\n",
		r.ferrydProcs, mib/fused.wall.Seconds(), fused.wall.Round(time.Millisecond), fused.cpu.Seconds()/gib, fused.steal.Round(time.Millisecond),
		time.Duration(median(syncs)*float64(time.Second)).Round(time.Millisecond))
	fmt.Fprintf(out, "disk and commp passes at once, apart (GOMAXPROCS %d):  %8.1f MiB/s  (%v, %.2f CPU-s/GiB, steal %v)\n",
		r.ferrydProcs, mib/both.wall.Seconds(), both.wall.Round(time.Millisecond), both.cpu.Seconds()/gib, both.steal.Round(time.Millisecond))
	if spare := float64(runtime.NumCPU())*fused.wall.Seconds() - fused.cpu.Seconds() - fused.steal.Seconds(); fused.steal > 0 {
		// What the vCPUs did during the fused pass: ours, the host's
		// (steal: a VM's hypervisor running its own I/O work or other
		// guests on our vCPUs), and idle.
		fmt.Fprintf(out, "vCPU time in the fused pass: ours %.2f s, stolen by the host %.2f s, idle %.2f s of %.2f s\n",
			fused.cpu.Seconds(), fused.steal.Seconds(), max(spare, 0), float64(runtime.NumCPU())*fused.wall.Seconds())
	}
	ceiling, which := commp.wall, "CommP (the disk writes the piece faster than CommP hashes it)"
	if disk.wall > commp.wall {
		ceiling, which = disk.wall, "the disk (it writes the piece slower than CommP hashes it)"
	}
	fmt.Fprintf(out, "ceiling: %s\n", which)
	fmt.Fprintf(out, "ratio addpiece/commp: %.1f%% (target >= %.0f%%); addpiece/ceiling: %.1f%%; both-at-once/commp: %.1f%%; addpiece/both-at-once: %.1f%%\n",
		100*commp.wall.Seconds()/fused.wall.Seconds(), 100*addPieceTarget, 100*ceiling.Seconds()/fused.wall.Seconds(),
		100*commp.wall.Seconds()/both.wall.Seconds(), 100*both.wall.Seconds()/fused.wall.Seconds())
	fmt.Fprintf(out, "memory: Go runtime memory from the OS %d MiB, peak RSS %.0f MiB\n", r.maxSys>>20, peakRSS()/(1<<20))
}

// seconds turns cpuTime's float seconds into a Duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// medianDuration is the median of d.
func medianDuration(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// parseSteal reads the steal field of /proc/stat's aggregate cpu line
// ("cpu user nice system idle iowait irq softirq steal ..."), in 1/100 s.
func parseSteal(stat []byte) time.Duration {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	ticks, err := strconv.ParseInt(f[8], 10, 64)
	if err != nil || ticks < 0 {
		return 0
	}
	return time.Duration(ticks) * time.Second / 100
}
