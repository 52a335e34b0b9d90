package sealing

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
)

// unsealedNames lists the files in the unsealed/ directory of the storage
// path dir. Lotus' own code parses these names in interop's tests.
func unsealedNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "unsealed"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// firstLayoutRepo builds a repo as Ferry kept it before Lotus' layout:
// sectors/unsealed/<number>, no sectorstore.json, no sealed/ or cache/.
// It returns the repo's directory and the pieces in it.
func firstLayoutRepo(t *testing.T) (string, []testPiece) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestDB(t, dir) // 2 KiB sectors
	var ps []testPiece
	for i, size := range []abi.PaddedPieceSize{2048, 1024, 512} { // sectors 1, 2, 2
		p := makePiece(t, int64(i), int(size)/2, size)
		if _, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), dealFor(p, 10000)); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	s.st.db.Close()
	sectors := filepath.Join(dir, "sectors")
	for _, n := range []abi.SectorNumber{1, 2} {
		if err := os.Rename(s.unsealedPath(n), filepath.Join(sectors, "unsealed", n.String())); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"sectorstore.json", "sealed", "cache"} {
		if err := os.Remove(filepath.Join(sectors, f)); err != nil {
			t.Fatal(err)
		}
	}
	return dir, ps
}

func TestStorageMigratesFirstLayout(t *testing.T) {
	dir, ps := firstLayoutRepo(t)
	// A start killed between two renames: sector 1 moved, sector 2 not.
	unsealed := filepath.Join(dir, "sectors", "unsealed")
	if err := os.Rename(filepath.Join(unsealed, "1"), filepath.Join(unsealed, "s-t01000-1")); err != nil {
		t.Fatal(err)
	}

	s := openTestDB(t, dir)
	lotusNames := []string{"s-t01000-1", "s-t01000-2"}
	if got := unsealedNames(t, filepath.Join(dir, "sectors")); !slices.Equal(got, lotusNames) {
		t.Fatalf("after the move unsealed/ holds %v, want Lotus' names %v", got, lotusNames)
	}
	for _, p := range ps {
		checkPayload(t, readBack(t, s, p.cid), p)
	}
	checkSector(t, s, 1)
	checkSector(t, s, 2)
	for _, d := range []string{"sealed", "cache"} {
		if st, err := os.Stat(filepath.Join(dir, "sectors", d)); err != nil || !st.IsDir() {
			t.Fatalf("%s/ missing: %v", d, err)
		}
	}
	_, meta := s.Storage()
	s.st.db.Close()

	// Starting again changes nothing.
	s = openTestDB(t, dir)
	if _, again := s.Storage(); again.ID != meta.ID {
		t.Fatalf("storage ID changed from %s to %s", meta.ID, again.ID)
	}
	if got := unsealedNames(t, filepath.Join(dir, "sectors")); !slices.Equal(got, lotusNames) {
		t.Fatalf("after the second start unsealed/ holds %v", got)
	}
	for _, p := range ps {
		checkPayload(t, readBack(t, s, p.cid), p)
	}
}

func TestStorageRefusesAmbiguousSector(t *testing.T) {
	dir, _ := firstLayoutRepo(t)
	unsealed := filepath.Join(dir, "sectors", "unsealed")
	b, err := os.ReadFile(filepath.Join(unsealed, "1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unsealed, "s-t01000-1"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{SectorSize: 2 << 10, Dir: filepath.Join(dir, "sectors")}
	_, err = New(cfg, nil, &fakeNode{}, nil, testMiner, nil)
	if err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("two files for sector 1: got %v, want a refusal naming both", err)
	}
	// Nothing was lost or overwritten.
	for _, name := range []string{"1", "s-t01000-1"} {
		if got, err := os.ReadFile(filepath.Join(unsealed, name)); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s changed: %v", name, err)
		}
	}
}

func TestStorageRefusesBadMeta(t *testing.T) {
	dir := t.TempDir()
	for _, bad := range []string{`{`, `{"Weight": 10}`, `[]`} {
		if err := os.WriteFile(filepath.Join(dir, "sectorstore.json"), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := New(Config{SectorSize: 2 << 10, Dir: dir}, nil, &fakeNode{}, nil, testMiner, nil)
		if err == nil || !strings.Contains(err.Error(), "sectorstore.json") {
			t.Fatalf("sectorstore.json %s: got %v", bad, err)
		}
	}
}

func TestParseStorageMetaLotus(t *testing.T) {
	// What `lotus-miner storage attach --init --seal --store` writes.
	m, err := parseStorageMeta([]byte(`{
  "ID": "d7c6d3c0-0c07-4a7c-9df1-6d1f5b5c9f5e",
  "Weight": 10,
  "CanSeal": true,
  "CanStore": true,
  "MaxStorage": 0,
  "Groups": null,
  "AllowTo": null,
  "AllowTypes": null,
  "DenyTypes": null,
  "AllowMiners": null,
  "DenyMiners": null
}`))
	if err != nil || m.ID != "d7c6d3c0-0c07-4a7c-9df1-6d1f5b5c9f5e" || m.Weight != 10 || !m.CanSeal || !m.CanStore {
		t.Fatalf("%+v %v", m, err)
	}
}
