package piece

import (
	"bufio"
	"encoding/binary"
	"flag"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var (
	long    = flag.Bool("long", os.Getenv("FERRY_LONG_TESTS") != "", "run the slow tests (all of hashhash's random.txt, up to 64 GiB)")
	longMax = flag.Int64("long.max", 0, "with -long, skip vectors with payloads above this many bytes (0: no limit)")
)

// seededReader yields the stream go-fil-commp-hashhash's vectors were made
// from: math/rand seeded 1337, each Uint32 written little-endian.
type seededReader struct {
	r    *rand.Rand
	left int64
	word [4]byte
	n    int // unread bytes in word
}

func (s *seededReader) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	i := 0
	for i < len(p) && s.n > 0 {
		p[i] = s.word[4-s.n]
		s.n--
		i++
	}
	for ; i+4 <= len(p); i += 4 {
		binary.LittleEndian.PutUint32(p[i:], s.r.Uint32())
	}
	if i < len(p) {
		binary.LittleEndian.PutUint32(s.word[:], s.r.Uint32())
		s.n = 4
		for i < len(p) {
			p[i] = s.word[4-s.n]
			s.n--
			i++
		}
	}
	s.left -= int64(len(p))
	return len(p), nil
}

type vector struct {
	payload int64
	padded  uint64
	cid     string
}

// hashhashVectors reads testdata/random.txt from the go-fil-commp-hashhash
// module in the module cache.
func hashhashVectors(t *testing.T) []vector {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/filecoin-project/go-fil-commp-hashhash").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Skipf("go-fil-commp-hashhash module not found (run go mod download): %v", err)
	}
	f, err := os.Open(filepath.Join(dir, "testdata", "random.txt"))
	if err != nil {
		t.Skipf("random.txt: %v", err)
	}
	defer f.Close()
	var vs []vector
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(strings.TrimSpace(sc.Text()), ",")
		if len(fs) != 3 {
			continue
		}
		p, err1 := strconv.ParseInt(fs[0], 10, 64)
		s, err2 := strconv.ParseUint(fs[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		vs = append(vs, vector{p, s, fs[2]})
	}
	if len(vs) < 100 {
		t.Fatalf("only %d vectors in random.txt", len(vs))
	}
	return vs
}

// TestHashhashRandomVectors checks the published random-data vectors: those
// under 16 MiB (plus a sample up to 64 MiB) normally, all of them with -long.
func TestHashhashRandomVectors(t *testing.T) {
	vs := hashhashVectors(t)
	for i, v := range vs {
		if !*long && v.payload >= 16<<20 && !(v.payload < 64<<20 && i%3 == 0) {
			continue
		}
		if *long && *longMax > 0 && v.payload > *longMax {
			continue
		}
		if raceEnabled && !*long && v.payload > 2<<20 {
			continue
		}
		c := NewCalc()
		if _, err := io.CopyBuffer(c, &seededReader{r: rand.New(rand.NewSource(1337)), left: v.payload}, make([]byte, 4<<20+1)); err != nil {
			t.Fatal(err)
		}
		cm, err := c.Sum()
		if err != nil {
			t.Fatal(err)
		}
		if cm.CID().String() != v.cid || uint64(cm.Size) != v.padded {
			t.Errorf("payload %d: %s/%d, want %s/%d", v.payload, cm.CID(), cm.Size, v.cid, v.padded)
		}
	}
}
