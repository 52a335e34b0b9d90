package market

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
)

func TestStagedPieceReadsFileThenZeros(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.car")
	data := []byte("0123456789")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sp, err := openStagedPiece(path, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if sp.Size() != 16 {
		t.Fatalf("size %d, want 16", sp.Size())
	}
	want := append(append([]byte(nil), data...), make([]byte, 6)...)
	for _, c := range []struct {
		off, n int
		eof    bool
	}{{0, 16, false}, {0, 20, true}, {4, 8, false}, {8, 8, false}, {10, 6, false}, {12, 10, true}, {16, 4, true}} {
		p := bytes.Repeat([]byte{0xff}, c.n)
		n, err := sp.ReadAt(p, int64(c.off))
		end := min(c.off+c.n, 16)
		if n != end-c.off || !bytes.Equal(p[:n], want[c.off:end]) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d bytes %q, want %q", c.n, c.off, n, p[:n], want[c.off:end])
		}
		if (err == io.EOF) != c.eof || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d bytes at %d): error %v, want EOF %v", c.n, c.off, err, c.eof)
		}
	}
	if _, err := sp.ReadAt(make([]byte, 1), -1); err == nil {
		t.Fatal("read at a negative offset")
	}
	if _, err := openStagedPiece(path, 8); err == nil || !strings.Contains(err.Error(), "longer than its piece") {
		t.Fatalf("a file longer than its piece opened: %v", err)
	}
	if err := os.Truncate(path, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.ReadAt(make([]byte, 8), 0); err == nil || !strings.Contains(err.Error(), "ended at 5 bytes") {
		t.Fatalf("a file that shrank read as its piece: %v", err)
	}
}

// The index is read from the deal's data file, as the piece it became,
// while the file still holds its staging tag; the file and the tag go
// once the piece is indexed.
func TestIndexReadsStagedFile(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	staging := ""
	spaceAtIndex := -1
	h.idx.onIndex = func(r IndexRequest) error {
		if err := h.deps.DB.QueryRow(`SELECT count(*) FROM market_space_tags WHERE uuid = ?`, r.DealUUID.String()).Scan(&spaceAtIndex); err != nil {
			return err
		}
		if _, err := os.Stat(staging); err != nil {
			return err
		}
		return nil
	}
	h.start()
	params := h.deal("i.car", 1500, 3, nil)
	staging = filepath.Join(h.cfg.StagingDir, params.DealUUID.String()+".car")
	if resp := h.p.Propose(context.Background(), params, "peerA"); !resp.Accepted {
		t.Fatalf("rejected: %s", resp.Message)
	}
	d := h.waitFor(params.DealUUID, complete, Complete)
	src, err := os.ReadFile(filepath.Join(h.dl.srcDir, "i.car"))
	if err != nil {
		t.Fatal(err)
	}
	want := append(src, make([]byte, int(abi.PaddedPieceSize(d.PieceSize).Unpadded())-len(src))...)
	h.idx.mu.Lock()
	got, ok := h.idx.data[params.DealUUID]
	h.idx.mu.Unlock()
	if !ok || !bytes.Equal(got, want) {
		t.Fatalf("the indexer read %d bytes from the staged file (given: %v), want the %d-byte piece", len(got), ok, len(want))
	}
	if spaceAtIndex != 1 {
		t.Fatalf("%d staging tags while indexing, want 1", spaceAtIndex)
	}
	if _, s := tagCounts(t, h); s != 0 {
		t.Fatalf("%d staging tags left", s)
	}
	if _, err := os.Stat(staging); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staging file kept: %v", err)
	}
}

// Without its data file (removed before a crash, say) the piece is indexed
// from its sector, and the deal goes on.
func TestIndexWithoutStagedFile(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	params := h.deal("j.car", 1500, 4, nil)
	h.deps.OnCheckpoint = func(id uuid.UUID, cp string) {
		if id == params.DealUUID && cp == AddedPiece.String() {
			os.Remove(filepath.Join(h.cfg.StagingDir, id.String()+".car"))
		}
	}
	h.start()
	if resp := h.p.Propose(context.Background(), params, "peerA"); !resp.Accepted {
		t.Fatalf("rejected: %s", resp.Message)
	}
	h.waitFor(params.DealUUID, complete, Complete)
	h.idx.mu.Lock()
	calls, given := h.idx.calls[params.DealUUID], h.idx.data[params.DealUUID] != nil
	h.idx.mu.Unlock()
	if calls != 1 || given {
		t.Fatalf("indexer called %d times, with data %v; want once, from the sector", calls, given)
	}
	if _, s := tagCounts(t, h); s != 0 {
		t.Fatalf("%d staging tags left", s)
	}
}

// An index step that fails (an IPNI indexer down, say) frees the staging
// file and its space at once; the retry reads the piece from its sector.
func TestIndexFailureFreesStaging(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	calls := 0
	var second struct {
		given bool
		space int
	}
	h.idx.onIndex = func(r IndexRequest) error {
		calls++
		switch calls {
		case 1:
			if r.Data == nil {
				return nil // the test fails below: the first call has the file
			}
			return errors.New("indexer down")
		case 2:
			second.given = r.Data != nil
			return h.deps.DB.QueryRow(`SELECT count(*) FROM market_space_tags WHERE uuid = ?`, r.DealUUID.String()).Scan(&second.space)
		}
		return nil
	}
	params := h.deal("f.car", 1500, 5, nil)
	h.start()
	if resp := h.p.Propose(context.Background(), params, "peerA"); !resp.Accepted {
		t.Fatalf("rejected: %s", resp.Message)
	}
	h.waitFor(params.DealUUID, complete, Complete)
	h.idx.mu.Lock()
	defer h.idx.mu.Unlock()
	if calls != 2 || second.given || second.space != 0 {
		t.Fatalf("%d index calls; the retry had the staging file: %v, with %d staging tags; want 2, from the sector, none", calls, second.given, second.space)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.StagingDir, params.DealUUID.String()+".car")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staging file kept: %v", err)
	}
}
