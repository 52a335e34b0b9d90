package node

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is ferryd's configuration, read from config.toml in the repo
// directory. Every field has a default that runs a devnet demo on one
// machine; an operator on the real network sets Chain.Mode = "lotus".
type Config struct {
	Database DatabaseConfig
	Cluster  ClusterConfig
	Chain    ChainConfig
	Libp2p   Libp2pConfig
	HTTP     HTTPConfig
	API      APIConfig
	Sealing  SealingConfig
	Market   MarketConfig
	Transfer TransferConfig
	IPNI     IPNIConfig
}

// ChainConfig chooses the chain ferryd follows.
type ChainConfig struct {
	// Mode is "devnet" (the embedded chain) or "lotus" (a Lotus node).
	Mode string
	// LotusAPIInfo is the Lotus node in FULLNODE_API_INFO form
	// (token:/ip4/…/tcp/1234/http); empty reads the environment.
	LotusAPIInfo string
	// Miner is the miner actor address on the real network.
	Miner string
	// DevnetBlockTime is the devnet's time between blocks.
	DevnetBlockTime Duration
	// DevnetListen is where the devnet serves Lotus' JSON-RPC API.
	DevnetListen string
	// DevnetSectorSize is the sector size of the miner created on the
	// devnet at first start ("2KiB", "8MiB", "512MiB", "32GiB", "64GiB").
	DevnetSectorSize string
}

// Libp2pConfig sets the deal protocols' libp2p host.
type Libp2pConfig struct {
	ListenAddresses []string
	// AnnounceAddresses, when set, are written to the miner actor instead
	// of the listen addresses.
	AnnounceAddresses []string
}

// HTTPConfig sets the server for retrievals and IPNI.
type HTTPConfig struct {
	Listen string
	// PublicURL is how clients and indexers reach Listen; empty derives
	// it from Listen.
	PublicURL string
}

// APIConfig sets the operator API used by ferryd's own commands.
type APIConfig struct {
	Listen string
}

// SealingConfig sets sector packing.
type SealingConfig struct {
	MaxWaitDealsSectors       int
	MaxSealingSectorsForDeals int
	WaitDealsDelay            Duration
	StartEpochSealingBuffer   int64
	AddPieceConcurrency       int
}

// MarketConfig sets what deals ferryd accepts and how it publishes them.
type MarketConfig struct {
	ConsiderOnlineDeals     bool
	ConsiderOfflineDeals    bool
	ConsiderVerifiedDeals   bool
	ConsiderUnverifiedDeals bool
	PieceCidBlocklist       []string
	ExpectedSealDuration    Duration
	MaxDealStartDelay       Duration
	MaxDealsPerPublishMsg   int
	PublishMsgPeriod        Duration
	MaxPublishDealsFee      string // FIL
	StagingCapacity         string // bytes, e.g. "100GiB"
	Filter                  string // external filter command
	FilterTimeout           Duration
	// After Complete, deals are looked up on chain to notice slashing:
	// EndChecksPerPass of them (longest unchecked first) every
	// DealEndCheckInterval. Expiry needs no lookup.
	DealEndCheckInterval Duration
	EndChecksPerPass     int
}

// TransferConfig sets deal data downloads (transfer.Config says more).
type TransferConfig struct {
	MaxConcurrent int // downloads at once
	MaxPerHost    int // of them from one host:port
	MaxPerClient  int // of them for one client (peer or wallet)
	StallTimeout  Duration
	// A download ends (to be retried by the market) after MaxRetries failed
	// attempts, or when its server sent less than MinRate bytes/s over a
	// RateWindow.
	MaxRetries            int
	MinRate               int64
	RateWindow            Duration
	AllowPrivateAddresses bool
}

// IPNIConfig sets announcements to network indexers.
type IPNIConfig struct {
	Enable      bool
	IndexerURLs []string
}

// DefaultConfig returns the defaults of a devnet demo: blocks every second,
// 8 MiB sectors packed after 30 seconds, deals published every 10 seconds.
// The Boost reference values are given where ours differ for the demo.
func DefaultConfig() Config {
	return Config{
		Chain: ChainConfig{
			Mode:             "devnet",
			DevnetBlockTime:  Duration(time.Second),
			DevnetListen:     "127.0.0.1:1234",
			DevnetSectorSize: "8MiB",
		},
		Libp2p: Libp2pConfig{ListenAddresses: []string{"/ip4/127.0.0.1/tcp/24001"}},
		HTTP:   HTTPConfig{Listen: "127.0.0.1:7777"},
		API:    APIConfig{Listen: "127.0.0.1:1288"},
		Sealing: SealingConfig{
			MaxWaitDealsSectors:     2,
			WaitDealsDelay:          Duration(30 * time.Second), // lotus: 6h
			StartEpochSealingBuffer: 30,                         // lotus: 480
			AddPieceConcurrency:     2,
		},
		Market: MarketConfig{
			ConsiderOnlineDeals:     true,
			ConsiderOfflineDeals:    true,
			ConsiderVerifiedDeals:   true,
			ConsiderUnverifiedDeals: true,
			ExpectedSealDuration:    Duration(2 * time.Minute), // boost: 24h
			MaxDealStartDelay:       Duration(14 * 24 * time.Hour),
			MaxDealsPerPublishMsg:   8,
			PublishMsgPeriod:        Duration(10 * time.Second), // boost: 1h
			MaxPublishDealsFee:      "0.05",
			StagingCapacity:         "100GiB",
			FilterTimeout:           Duration(10 * time.Second),
			DealEndCheckInterval:    Duration(5 * time.Minute),
			EndChecksPerPass:        1000,
		},
		Transfer: TransferConfig{
			MaxConcurrent:         20,
			MaxPerHost:            10,
			MaxPerClient:          10,
			StallTimeout:          Duration(5 * time.Minute),
			MaxRetries:            10,
			MinRate:               32 << 10,
			RateWindow:            Duration(10 * time.Minute),
			AllowPrivateAddresses: true, // devnet: everything is on loopback
		},
		Cluster: ClusterConfig{LeaseTimeout: Duration(30 * time.Second)},
		IPNI:    IPNIConfig{Enable: true},
	}
}

// LoadConfig reads dir/config.toml over the defaults, writing the defaults
// there first when the file does not exist.
func LoadConfig(dir string) (Config, error) {
	cfg := DefaultConfig()
	path := filepath.Join(dir, "config.toml")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		var buf bytes.Buffer
		buf.WriteString("# ferryd configuration. Every value shown is the default.\n\n")
		if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
			return cfg, fmt.Errorf("encoding default config: %w", err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			return cfg, fmt.Errorf("writing default config: %w", err)
		}
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("reading config: %w", err)
	}
	md, err := toml.Decode(string(b), &cfg)
	if err != nil {
		return cfg, fmt.Errorf("reading %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return cfg, fmt.Errorf("reading %s: unknown setting %q", path, und[0].String())
	}
	if cfg.Chain.Mode != "devnet" && cfg.Chain.Mode != "lotus" {
		return cfg, fmt.Errorf("reading %s: Chain.Mode must be \"devnet\" or \"lotus\", not %q", path, cfg.Chain.Mode)
	}
	return cfg, nil
}

// Duration is a time.Duration written as "10s", "1h30m" in TOML.
type Duration time.Duration

// MarshalText writes the duration as Go does ("1m30s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }
