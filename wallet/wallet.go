package wallet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/crypto"
)

// ErrNoKey is returned when the wallet does not hold the key of an address.
var ErrNoKey = errors.New("key not in wallet")

// ErrNoDefault is returned by Default when no default address is set.
var ErrNoDefault = errors.New("no default wallet address")

const (
	keySuffix   = ".key"
	defaultFile = "default"
	dirMode     = 0o700
	fileMode    = 0o600
)

// Wallet is a keystore directory: one file per address (<address>.key
// holding the KeyInfo JSON, mode 0600) and a "default" file naming the
// default address. The directory is mode 0700. Writes are atomic (temporary
// file, fsync, rename). A Wallet is safe for concurrent use.
type Wallet struct {
	dir string
	mu  sync.Mutex
}

// Open opens the keystore in dir, creating it if needed. It refuses a
// directory that others than its owner may read.
func Open(dir string) (*Wallet, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("creating keystore %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("opening keystore: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("opening keystore: %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("opening keystore: %s has permissions %o, want 0700 (chmod 700 it)", dir, fi.Mode().Perm())
	}
	return &Wallet{dir: dir}, nil
}

// Dir returns the keystore directory.
func (w *Wallet) Dir() string { return w.dir }

func (w *Wallet) keyPath(addr address.Address) string {
	return filepath.Join(w.dir, addr.String()+keySuffix)
}

// New generates a key of the given type (TypeSecp256k1 or TypeBLS), stores
// it and returns its address. Like Lotus, the first key made becomes the
// default when none is set.
func (w *Wallet) New(typ string) (address.Address, error) {
	ki, err := Generate(typ)
	if err != nil {
		return address.Undef, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	addr, err := w.put(ki)
	if err != nil {
		return address.Undef, err
	}
	if _, err := w.readDefault(); errors.Is(err, ErrNoDefault) {
		if err := w.writeDefault(addr); err != nil {
			return address.Undef, err
		}
	}
	return addr, nil
}

// Import stores a key and returns its address. Importing a key already held
// is not an error.
func (w *Wallet) Import(ki KeyInfo) (address.Address, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.put(ki)
}

func (w *Wallet) put(ki KeyInfo) (address.Address, error) {
	addr, err := ki.Address()
	if err != nil {
		return address.Undef, fmt.Errorf("storing key: %w", err)
	}
	b, err := json.Marshal(ki)
	if err != nil {
		return address.Undef, fmt.Errorf("storing key %s: %w", addr, err)
	}
	if err := writeAtomic(w.keyPath(addr), b); err != nil {
		return address.Undef, fmt.Errorf("storing key %s: %w", addr, err)
	}
	return addr, nil
}

// Export returns the key of addr.
func (w *Wallet) Export(addr address.Address) (KeyInfo, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.get(addr)
}

func (w *Wallet) get(addr address.Address) (KeyInfo, error) {
	b, err := os.ReadFile(w.keyPath(addr))
	if errors.Is(err, fs.ErrNotExist) {
		return KeyInfo{}, fmt.Errorf("reading key %s: %w", addr, ErrNoKey)
	}
	if err != nil {
		return KeyInfo{}, fmt.Errorf("reading key %s: %w", addr, err)
	}
	var ki KeyInfo
	if err := json.Unmarshal(b, &ki); err != nil {
		return KeyInfo{}, fmt.Errorf("reading key %s: %w", addr, err)
	}
	got, err := ki.Address()
	if err != nil {
		return KeyInfo{}, fmt.Errorf("reading key %s: %w", addr, err)
	}
	if got != addr {
		return KeyInfo{}, fmt.Errorf("reading key %s: file holds the key of %s", addr, got)
	}
	return ki, nil
}

// Has reports whether the wallet holds the key of addr.
func (w *Wallet) Has(addr address.Address) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := os.Stat(w.keyPath(addr))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up key %s: %w", addr, err)
	}
	return true, nil
}

// List returns the addresses of all keys, sorted.
func (w *Wallet) List() ([]address.Address, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, fmt.Errorf("listing keystore: %w", err)
	}
	var out []address.Address
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), keySuffix)
		if !ok || e.IsDir() {
			continue
		}
		a, err := address.NewFromString(name)
		if err != nil {
			continue // not ours
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// Sign signs data with the key of addr (see the package function Sign).
func (w *Wallet) Sign(addr address.Address, data []byte) (*crypto.Signature, error) {
	w.mu.Lock()
	ki, err := w.get(addr)
	w.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("signing with %s: %w", addr, err)
	}
	sig, err := Sign(ki, data)
	if err != nil {
		return nil, fmt.Errorf("signing with %s: %w", addr, err)
	}
	return sig, nil
}

// Signer returns a function that signs with the key of addr, in the shape
// chain.SignMessage takes.
func (w *Wallet) Signer(addr address.Address) func(data []byte) (*crypto.Signature, error) {
	return func(data []byte) (*crypto.Signature, error) { return w.Sign(addr, data) }
}

// Default returns the default address, or ErrNoDefault.
func (w *Wallet) Default() (address.Address, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.readDefault()
}

func (w *Wallet) readDefault() (address.Address, error) {
	b, err := os.ReadFile(filepath.Join(w.dir, defaultFile))
	if errors.Is(err, fs.ErrNotExist) {
		return address.Undef, ErrNoDefault
	}
	if err != nil {
		return address.Undef, fmt.Errorf("reading default address: %w", err)
	}
	a, err := address.NewFromString(strings.TrimSpace(string(b)))
	if err != nil {
		return address.Undef, fmt.Errorf("reading default address: %w", err)
	}
	return a, nil
}

// SetDefault makes addr, whose key the wallet must hold, the default.
func (w *Wallet) SetDefault(addr address.Address) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.get(addr); err != nil {
		return fmt.Errorf("setting default address: %w", err)
	}
	return w.writeDefault(addr)
}

func (w *Wallet) writeDefault(addr address.Address) error {
	if err := writeAtomic(filepath.Join(w.dir, defaultFile), []byte(addr.String()+"\n")); err != nil {
		return fmt.Errorf("setting default address: %w", err)
	}
	return nil
}

// writeAtomic writes b to path with mode 0600 through a temporary file in
// the same directory, so readers see the old or the new content, never a
// mix.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(fileMode); err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
