package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/transfer"
)

// transferCommand compares transfer.Download with piece.Calc as its tee
// against a plain io.Copy of the response body into a file, both fetching the
// same file from a net/http file server on loopback, in alternating rounds.
func transferCommand() *cli.Command {
	return &cli.Command{
		Name:  "transfer",
		Usage: "HTTP download with in-stream CommP vs a plain HTTP download (target ratio >= 0.8)",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "size", Value: 1 << 30, Usage: "bytes in the served file"},
			&cli.IntFlag{Name: "rounds", Value: 5, Usage: "rounds; each runs both downloads, in alternating order"},
			&cli.StringFlag{Name: "dir", Usage: "directory for the served and downloaded files (default: a new temporary directory)"},
		},
		Action: func(cctx *cli.Context) error {
			return benchTransfer(cctx.Context, cctx.Uint64("size"), cctx.Int("rounds"), cctx.String("dir"))
		},
	}
}

func benchTransfer(ctx context.Context, size uint64, rounds int, dir string) error {
	if size == 0 || rounds <= 0 {
		return errors.New("transfer: size and rounds must be positive")
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "ferry-bench-transfer-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	srcDir := filepath.Join(dir, "src")
	if err := os.MkdirAll(srcDir, 0o755); err != nil {
		return err
	}
	src := filepath.Join(srcDir, "data")
	defer os.Remove(src)
	fmt.Printf("writing %d random bytes to %s\n", size, src)
	if err := writeRandom(src, size); err != nil {
		return err
	}

	// The reference commitment, computed once straight from the file.
	want, err := commpOfFile(src)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(srcDir))}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/data"

	d := transfer.New(transfer.Config{AllowPrivateAddresses: true})
	defer d.CloseIdleConnections()
	dst := filepath.Join(dir, "dst")
	defer os.Remove(dst)

	var cpuPlain, cpuOurs []float64 // process CPU seconds per run
	plain := func() (time.Duration, error) {
		os.Remove(dst)
		start, cpu := time.Now(), cpuTime()
		err := plainDownload(ctx, url, dst)
		el := time.Since(start)
		cpuPlain = append(cpuPlain, cpuTime()-cpu)
		return el, err
	}
	ours := func() (time.Duration, error) {
		os.Remove(dst)
		start, cpu := time.Now(), cpuTime()
		calc := piece.NewCalc()
		if err := d.Download(ctx, transfer.Request{URL: url, Size: size}, dst, calc, nil); err != nil {
			return 0, err
		}
		got, err := calc.Sum()
		el := time.Since(start)
		cpuOurs = append(cpuOurs, cpuTime()-cpu)
		if err != nil {
			return 0, err
		}
		if got.Root != want.Root {
			return 0, fmt.Errorf("CommP of the download %x differs from the file's %x", got.Root, want.Root)
		}
		return el, nil
	}

	// For the record, the two parts of ours on their own: Download with no
	// tee, and CommP over the file from the page cache.
	bare := func() (time.Duration, error) {
		os.Remove(dst)
		start := time.Now()
		err := d.Download(ctx, transfer.Request{URL: url, Size: size}, dst, nil, nil)
		return time.Since(start), err
	}
	commpOnly := func() (time.Duration, error) {
		start := time.Now()
		_, err := commpOfFile(src)
		return time.Since(start), err
	}

	var tPlain, tOurs, tBare, tCommP []float64
	var maxHeap uint64
	for i := range rounds {
		first, second := plain, ours
		if i%2 == 1 {
			first, second = ours, plain
		}
		a, err := first()
		if err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		maxHeap = max(maxHeap, heapInUse())
		b, err := second()
		if err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		maxHeap = max(maxHeap, heapInUse())
		if i%2 == 1 {
			a, b = b, a
		}
		c, err := bare()
		if err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		e, err := commpOnly()
		if err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		p, o := mbps(size, a), mbps(size, b)
		tPlain, tOurs = append(tPlain, p), append(tOurs, o)
		tBare, tCommP = append(tBare, mbps(size, c)), append(tCommP, mbps(size, e))
		fmt.Printf("round %d: plain %7.1f MB/s   Download+CommP %7.1f MB/s   (Download alone %7.1f, CommP alone %7.1f)\n",
			i, p, o, tBare[i], tCommP[i])
	}
	mp, mo := median(tPlain), median(tOurs)
	fmt.Printf("file %d bytes, %d rounds, GOMAXPROCS %d, load average %s\n", size, rounds, runtime.GOMAXPROCS(0), loadAvg())
	fmt.Printf("plain HTTP download (io.Copy to file + fsync): median %7.1f MB/s\n", mp)
	fmt.Printf("transfer.Download + piece.Calc tee:            median %7.1f MB/s\n", mo)
	fmt.Printf("ratio %.2f (target >= 0.80)\n", mo/mp)
	fmt.Printf("parts: Download without tee median %7.1f MB/s, CommP alone from the page cache median %7.1f MB/s\n", median(tBare), median(tCommP))
	gib := float64(size) / (1 << 30)
	cp, co := median(cpuPlain)/gib, median(cpuOurs)/gib
	fmt.Printf("CPU time (user+sys, client and loopback server) per GiB: plain median %.2f s, Download+CommP median %.2f s\n", cp, co)
	fmt.Printf("memory: max Go heap in use after a run %.1f MiB, peak RSS %.1f MiB\n", float64(maxHeap)/(1<<20), peakRSS()/(1<<20))
	return nil
}

// plainDownload is the reference: GET and io.Copy the body into a file, then
// fsync it as Download does.
func plainDownload(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("plain download: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeRandom(path string, size uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{'f', 'e', 'r', 'r', 'y'})
	buf := make([]byte, 4<<20)
	for left := size; left > 0; {
		n := min(uint64(len(buf)), left)
		rng.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	return f.Close()
}

func commpOfFile(path string) (piece.Commitment, error) {
	f, err := os.Open(path)
	if err != nil {
		return piece.Commitment{}, err
	}
	defer f.Close()
	calc := piece.NewCalc()
	if _, err := io.CopyBuffer(calc, f, make([]byte, 4<<20)); err != nil {
		return piece.Commitment{}, err
	}
	return calc.Sum()
}

func mbps(size uint64, d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// cpuTime is the process's user and system CPU time in seconds.
func cpuTime() float64 { return cpuDuration().Seconds() }

// cpuDuration is the process's CPU time so far (user and system).
func cpuDuration() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// kernelDuration is the process's system CPU time so far: what the kernel
// spent on its behalf (system calls, page faults).
func kernelDuration() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Stime.Nano())
}

// loadAvg is the first three fields of /proc/loadavg, or "unknown".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// peakRSS is the process's maximum resident set size in bytes (Linux
// reports ru_maxrss in KiB).
func peakRSS() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) * 1024
}
