package sealing

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
)

// Lotus' storage layout. A storage path is a directory holding
// sectorstore.json and one directory per sector file type, in which each
// sector's file is named s-t0<miner>-<number> (storiface.SectorName).
// `lotus-miner storage attach` opens such a path as it is.
const (
	storageMetaFile = "sectorstore.json"
	dirUnsealed     = "unsealed"
	dirSealed       = "sealed"
	dirCache        = "cache"
)

// StorageMeta is a storage path's sectorstore.json, Lotus'
// storiface.LocalStorageMeta field for field (the JSON keys are the Go
// names, as Lotus writes them).
type StorageMeta struct {
	// ID names the path in a sector index (a UUID).
	ID string
	// Weight: a higher weight draws more sectors; 0 is read-only.
	Weight uint64
	// CanSeal: sealing's intermediate files may go here.
	CanSeal bool
	// CanStore: finalized sectors may be kept here.
	CanStore bool
	// MaxStorage bounds the bytes used (0: unlimited).
	MaxStorage uint64
	// Groups this path belongs to.
	Groups []string
	// AllowTo lists the groups data may move to (none: any).
	AllowTo []string
	// AllowTypes and DenyTypes restrict the sector file types kept here.
	AllowTypes []string
	DenyTypes  []string
	// AllowMiners and DenyMiners restrict the miners whose sectors are kept
	// here.
	AllowMiners []string
	DenyMiners  []string
}

// newStorageMeta is what `lotus-miner init` writes for its own path.
func newStorageMeta() StorageMeta {
	return StorageMeta{ID: uuid.NewString(), Weight: 10, CanSeal: true, CanStore: true}
}

// parseStorageMeta decodes a sectorstore.json.
func parseStorageMeta(b []byte) (StorageMeta, error) {
	var m StorageMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return StorageMeta{}, fmt.Errorf("decoding %s: %w", storageMetaFile, err)
	}
	if m.ID == "" {
		return StorageMeta{}, fmt.Errorf("%s has no ID", storageMetaFile)
	}
	return m, nil
}

// sectorName is Lotus' name for sector n's files.
func sectorName(miner abi.ActorID, n abi.SectorNumber) string {
	return fmt.Sprintf("s-t0%d-%d", miner, n)
}

// openStorage makes dir a Lotus storage path for miner's sectors and
// returns its metadata: it creates the file-type directories, renames
// sector files left in Ferry's first layout (unsealed/<number>) to Lotus'
// names, and writes sectorstore.json if there is none. Every step is
// idempotent and each rename atomic, so a start killed half way is finished
// by the next one.
func openStorage(dir string, miner abi.ActorID) (StorageMeta, error) {
	for _, d := range []string{dirUnsealed, dirSealed, dirCache} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return StorageMeta{}, fmt.Errorf("creating storage directory: %w", err)
		}
	}
	if err := migrateUnsealedNames(filepath.Join(dir, dirUnsealed), miner); err != nil {
		return StorageMeta{}, err
	}
	path := filepath.Join(dir, storageMetaFile)
	b, err := os.ReadFile(path)
	if err == nil {
		m, err := parseStorageMeta(b)
		if err != nil {
			return StorageMeta{}, fmt.Errorf("storage path %s: %w", dir, err)
		}
		return m, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return StorageMeta{}, fmt.Errorf("reading %s: %w", path, err)
	}
	m := newStorageMeta()
	if b, err = json.MarshalIndent(m, "", "  "); err != nil {
		return StorageMeta{}, fmt.Errorf("encoding %s: %w", storageMetaFile, err)
	}
	if err := writeFileAtomic(path, b); err != nil {
		return StorageMeta{}, fmt.Errorf("writing %s: %w", path, err)
	}
	return m, nil
}

// migrateUnsealedNames renames the files of dir named by a bare sector
// number to Lotus' names.
func migrateUnsealedNames(dir string, miner abi.ActorID) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	renamed := false
	for _, e := range ents {
		n, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil || !e.Type().IsRegular() {
			continue // not Ferry's first layout
		}
		from := filepath.Join(dir, e.Name())
		to := filepath.Join(dir, sectorName(miner, abi.SectorNumber(n)))
		if _, err := os.Lstat(to); err == nil {
			return fmt.Errorf("moving sector %d to Lotus' layout: both %s and %s exist; keep the right one and remove the other", n, from, to)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("moving sector %d to Lotus' layout: %w", n, err)
		}
		if err := os.Rename(from, to); err != nil {
			return fmt.Errorf("moving sector %d to Lotus' layout: %w", n, err)
		}
		renamed = true
	}
	if renamed {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("moving sectors to Lotus' layout: %w", err)
		}
	}
	return nil
}

// writeFileAtomic writes b to path through a synced temporary file beside
// it and a rename.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
