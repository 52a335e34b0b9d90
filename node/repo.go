package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// Repo is ferryd's repo directory (default ~/.ferry):
//
//	config.toml  keystore/  ferry.db  staging/  sectors/  devnet/
//	libp2p.key   jwt.secret  miner-jwt.secret  api  token
type Repo struct {
	Dir string
}

// OpenRepo creates dir and its sub-directories when missing.
func OpenRepo(dir string) (*Repo, error) {
	for _, d := range []string{dir, filepath.Join(dir, "keystore"), filepath.Join(dir, "staging"), filepath.Join(dir, "sectors")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating repo directory: %w", err)
		}
	}
	return &Repo{Dir: dir}, nil
}

// Path returns a path inside the repo.
func (r *Repo) Path(elem ...string) string {
	return filepath.Join(append([]string{r.Dir}, elem...)...)
}

// Libp2pKey returns the host's persistent identity, creating it at first
// start. The peer ID is what clients find in the miner actor, so it must not
// change across restarts.
func (r *Repo) Libp2pKey() (crypto.PrivKey, error) {
	path := r.Path("libp2p.key")
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("reading libp2p identity %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading libp2p identity: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating libp2p identity: %w", err)
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding libp2p identity: %w", err)
	}
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("saving libp2p identity: %w", err)
	}
	return k, nil
}

// Secret returns the key that signs operator API tokens, creating it at
// first start.
func (r *Repo) Secret() ([]byte, error) { return r.secret("jwt.secret", "API secret") }

// MinerAPISecret returns the key that signs the tokens of the lotus-miner
// API ferryd's sealing serves, creating it at first use: a token for it
// is no operator token, nor the other way round.
func (r *Repo) MinerAPISecret() ([]byte, error) {
	return r.secret("miner-jwt.secret", "lotus-miner API secret")
}

// secret reads the 32-byte key in file name, creating it when missing.
func (r *Repo) secret(name, what string) ([]byte, error) {
	path := r.Path(name)
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading the %s: %w", what, err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generating the %s: %w", what, err)
	}
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("saving the %s: %w", what, err)
	}
	return b, nil
}

// writeFileAtomic writes b to path through a synced temporary file and a
// rename, so a crash leaves the old file or the new one, never a torn one.
func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
