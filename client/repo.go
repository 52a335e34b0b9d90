package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"

	"github.com/ferry-fil/ferry/wallet"
)

// Environment variables the client reads.
const (
	// EnvRepo overrides the client repo directory.
	EnvRepo = "FERRY_CLIENT_REPO"
	// EnvAPIToken is the chain API token used when FULLNODE_API_INFO is not
	// set.
	EnvAPIToken = "FERRY_API_TOKEN"
	// EnvProviderRepo names the ferryd repo whose token file the client
	// reads when talking to the local devnet (default ~/.ferry).
	EnvProviderRepo = "FERRY_REPO"
)

const (
	defaultRepoName = ".ferry-client"
	configFile      = "config.toml"
	keystoreDir     = "keystore"
)

// ErrNoRepo is returned by OpenRepo when the directory was never
// initialised.
var ErrNoRepo = errors.New("no client repo")

// Config is the client's config.toml.
type Config struct {
	// ChainAPI is the chain's API info (as in FULLNODE_API_INFO:
	// "token:/ip4/…/tcp/1234/http" or a URL). Empty means the environment
	// or the local devnet. FULLNODE_API_INFO wins over it.
	ChainAPI string
	// ServeAddr is where `ferry deal --serve` listens; empty means a free
	// loopback port.
	ServeAddr string
}

// Repo is the client's directory: config.toml and keystore/.
type Repo struct {
	// Dir is the repo directory.
	Dir string
	// Config is the parsed config.toml.
	Config Config
	// Wallet is the keystore.
	Wallet *wallet.Wallet
}

// DefaultRepoDir returns $FERRY_CLIENT_REPO or ~/.ferry-client.
func DefaultRepoDir() (string, error) {
	if d := os.Getenv(EnvRepo); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the client repo: %w (set %s)", err, EnvRepo)
	}
	return filepath.Join(home, defaultRepoName), nil
}

// InitRepo creates the repo in dir (config.toml with defaults and an empty
// keystore) unless it exists, and opens it. created says whether anything
// was made.
func InitRepo(dir string) (r *Repo, created bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("creating client repo: %w", err)
	}
	cfg := filepath.Join(dir, configFile)
	if _, err := os.Stat(cfg); errors.Is(err, fs.ErrNotExist) {
		f, err := os.OpenFile(cfg, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("creating client config: %w", err)
		}
		_, werr := fmt.Fprint(f, defaultConfigText)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, false, fmt.Errorf("writing client config: %w", werr)
		}
		created = true
	} else if err != nil {
		return nil, false, fmt.Errorf("reading client config: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, keystoreDir)); errors.Is(err, fs.ErrNotExist) {
		created = true
	}
	r, err = OpenRepo(dir)
	return r, created, err
}

const defaultConfigText = `# Ferry client configuration.

# The chain API, as in FULLNODE_API_INFO ("token:/ip4/127.0.0.1/tcp/1234/http"
# or a URL). Empty: FULLNODE_API_INFO, else the local devnet at
# http://127.0.0.1:1234/rpc/v1 with the token of the local ferryd.
ChainAPI = ""

# Where "ferry deal --serve" serves the CAR file; empty picks a free loopback
# port.
ServeAddr = ""
`

// OpenRepo opens an initialised repo.
func OpenRepo(dir string) (*Repo, error) {
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s: run `ferry init` first", ErrNoRepo, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("reading client config: %w", err)
	}
	var cfg Config
	md, err := toml.Decode(string(b), &cfg)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", filepath.Join(dir, configFile), err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("parsing %s: unknown setting %q", filepath.Join(dir, configFile), und[0].String())
	}
	w, err := wallet.Open(filepath.Join(dir, keystoreDir))
	if err != nil {
		return nil, err
	}
	return &Repo{Dir: dir, Config: cfg, Wallet: w}, nil
}
