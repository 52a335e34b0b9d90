package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/filecoin-project/lotus/storage/sealer/fr32"
	"github.com/filecoin-project/lotus/storage/sealer/partialfile"
	"github.com/filecoin-project/lotus/storage/sealer/storiface"

	"github.com/ferry-fil/ferry/sealing"
)

// lotusDeclared lists the sector files Lotus finds in a storage path when
// it attaches it (paths.Local.declareSectors: every entry of each file-type
// directory must parse as a sector name), failing on any it cannot parse.
func lotusDeclared(t *testing.T, dir string) map[storiface.SectorFileType][]abi.SectorID {
	t.Helper()
	out := map[storiface.SectorFileType][]abi.SectorID{}
	for _, ft := range storiface.PathTypes {
		ents, err := os.ReadDir(filepath.Join(dir, ft.String()))
		if errors.Is(err, os.ErrNotExist) {
			continue // Lotus creates it
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			sid, err := storiface.ParseSectorID(e.Name())
			if err != nil {
				t.Fatalf("Lotus cannot attach the path: %s/%s: %v", ft, e.Name(), err)
			}
			out[ft] = append(out[ft], sid)
		}
	}
	return out
}

// jsonKeys lists the keys of a JSON object, sorted.
func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestLotusAttachesStoragePath: ferryd's sector storage is a path
// lotus-miner could attach: a sectorstore.json with Lotus' keys, sector
// files under names Lotus parses, and unsealed files Lotus' own
// partialfile and fr32 code read the pieces from, with nothing allocated
// after the last piece.
func TestLotusAttachesStoragePath(t *testing.T) {
	ctx := context.Background()
	fs := startFerryServer(t)
	pieces := []testPiece{makePiece(t, 1, 1_000_000, 1<<20), makePiece(t, 2, 2_000_000, 2<<20), makePiece(t, 3, 100_000, 128<<10)}
	var placed []sealing.Placement
	for i, p := range pieces {
		pl, err := fs.seal.AddPieceToAny(ctx, p.size, bytes.NewReader(p.payload), sealingDeal(lotusDealInfo(p, abi.DealID(70+i))))
		if err != nil {
			t.Fatal(err)
		}
		placed = append(placed, pl)
	}
	dir, meta := fs.seal.Storage()

	raw, err := os.ReadFile(filepath.Join(dir, "sectorstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lm storiface.LocalStorageMeta
	if err := json.Unmarshal(raw, &lm); err != nil {
		t.Fatalf("Lotus cannot read sectorstore.json: %v", err)
	}
	if string(lm.ID) != meta.ID || lm.ID == "" || lm.Weight != 10 || !lm.CanSeal || !lm.CanStore {
		t.Fatalf("sectorstore.json as Lotus reads it: %+v", lm)
	}
	lb, err := json.Marshal(lm)
	if err != nil {
		t.Fatal(err)
	}
	if ours, lotus := jsonKeys(t, raw), jsonKeys(t, lb); !slices.Equal(ours, lotus) {
		t.Fatalf("sectorstore.json keys %v, Lotus writes %v", ours, lotus)
	}

	want := abi.SectorID{Miner: 1000, Number: 1}
	if got := lotusDeclared(t, dir)[storiface.FTUnsealed]; len(got) != 1 || got[0] != want {
		t.Fatalf("Lotus finds unsealed sectors %v, want %v", got, want)
	}
	path := filepath.Join(dir, storiface.FTUnsealed.String(), storiface.SectorName(want))
	if path != fs.unsealedPath(1) {
		t.Fatalf("Lotus' path %s, ferryd's %s", path, fs.unsealedPath(1))
	}
	pf, err := partialfile.OpenPartialFile(abi.PaddedPieceSize(sectorSize), path)
	if err != nil {
		t.Fatalf("Lotus cannot open the unsealed file: %v", err)
	}
	defer pf.Close()
	for i, p := range pieces {
		pl := placed[i]
		ok, err := pf.HasAllocated(storiface.UnpaddedByteIndex(pl.Offset.Unpadded()), pl.Size.Unpadded())
		if err != nil || !ok {
			t.Fatalf("Lotus does not see piece %d at %d as allocated (%v)", i, pl.Offset, err)
		}
		r, err := pf.Reader(storiface.PaddedByteIndex(pl.Offset), pl.Size)
		if err != nil {
			t.Fatal(err)
		}
		ur, err := fr32.NewUnpadReader(r, pl.Size)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(ur)
		if err != nil || !bytes.Equal(got, p.full()) {
			t.Fatalf("piece %d reads back different through Lotus' partialfile (%d bytes, %v)", i, len(got), err)
		}
	}
	end := placed[2].Offset + placed[2].Size
	if ok, err := pf.HasAllocated(storiface.UnpaddedByteIndex(end.Unpadded()), abi.PaddedPieceSize(128<<10).Unpadded()); err != nil || ok {
		t.Fatalf("Lotus sees bytes after the last piece as allocated (%v)", err)
	}
}
