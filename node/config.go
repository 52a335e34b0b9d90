package node

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/httpdeal"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/ipni"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/minerapi"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/transfer"
)

// Config is ferryd's configuration, read from config.toml in the repo
// directory. Every field has a default that runs a devnet demo on one
// machine; an operator on the real network sets Chain.Mode = "lotus".
type Config struct {
	Subsystems SubsystemsConfig
	Database   DatabaseConfig
	Cluster    ClusterConfig
	Chain      ChainConfig
	Libp2p     Libp2pConfig
	HTTP       HTTPConfig
	API        APIConfig
	Sealing    SealingConfig
	Market     MarketConfig
	Transfer   TransferConfig
	IPNI       IPNIConfig
}

// SubsystemsConfig chooses the parts this ferryd runs, as Lotus'
// MinerSubsystems do: both in one process (the default), or a market-only
// ferryd whose sealer is a lotus-miner API (Sealing.Backend =
// "lotus-miner") and a sealing-only ferryd serving that API.
type SubsystemsConfig struct {
	// EnableMarkets runs the market: the libp2p deal protocols, the deal
	// pipeline and its publisher, the piece index, IPNI and retrievals.
	EnableMarkets bool
	// EnableSealing runs ferryd's own sealing and serves it as
	// lotus-miner's API on Sealing.MinerAPIListen.
	EnableSealing bool
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
	// ProposalsPerPeer is how many deal proposals of one client are
	// handled at once; more are answered at once with a rejection that
	// says to retry. The resource manager lets that many streams in and
	// more, so a busy client gets that answer, never a reset.
	ProposalsPerPeer int
}

// HTTPConfig sets the server for retrievals, IPNI and Curio's HTTP deal
// APIs.
type HTTPConfig struct {
	Listen string
	// PublicURL is how clients and indexers reach Listen; empty derives
	// it from Listen.
	PublicURL string
	// EnableMK12 serves Curio's mk12 over HTTP (/market/mk12/…): Boost's
	// deal messages in CBOR, to the same market as over libp2p.
	EnableMK12 bool
	// EnableMK20 serves Curio's Market 2.0 API (/market/mk20/…): ddo_v1
	// deals of verified allocations, by download, upload or offline (as
	// Market.ConsiderOnlineDeals and ConsiderOfflineDeals allow).
	EnableMK20 bool
	// DealRateLimit is how many requests per second one IP address may
	// make to each deal route, ChunkRateLimit to the chunk upload route
	// (Curio's 50 and 100).
	DealRateLimit  int
	ChunkRateLimit int
	// MaxParallelUploads bounds the uploads (chunks or whole payloads)
	// received at once; more are answered 429.
	MaxParallelUploads int
	// MinChunkSize and MaxChunkSize bound a chunked upload's chunk size,
	// powers of two (Curio's 16 MiB and 256 MiB).
	MinChunkSize string
	MaxChunkSize string
}

// APIConfig sets the operator API used by ferryd's own commands.
type APIConfig struct {
	Listen string
}

// Sealing back ends of the market (SealingConfig.Backend).
const (
	// BackendOwn is ferryd's own sealing, in this process.
	BackendOwn = "own"
	// BackendLotusMiner is a lotus-miner API (a lotus-miner, or a
	// sealing-only ferryd) at Sealing.MinerAPIInfo.
	BackendLotusMiner = "lotus-miner"
)

// SealingConfig sets where the market's pieces go, sector packing, and the
// lotus-miner API ferryd's sealing serves.
type SealingConfig struct {
	// Backend is the market's sealer: "own" (ferryd's sealing, which
	// Subsystems.EnableSealing runs) or "lotus-miner" (the API at
	// MinerAPIInfo).
	Backend string
	// MinerAPIInfo is the lotus-miner API of the "lotus-miner" back end
	// in MINER_API_INFO form (token:/ip4/…/tcp/2345/http, the token with
	// admin); empty reads MINER_API_INFO.
	MinerAPIInfo string
	// MinerAPIListen is where ferryd's own sealing serves lotus-miner's
	// API (/rpc/v0, its push streams and /remote); empty serves none.
	MinerAPIListen string
	// MinerAPIPublicURL is how other machines reach MinerAPIListen
	// (http://10.0.0.5:2345): StorageFindSector names sector files under
	// its /remote. Empty derives it from MinerAPIListen.
	MinerAPIPublicURL string

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
	MaxRetries int
	MinRate    int64
	RateWindow Duration
	// AllowPrivateAddresses lets clients name loopback, private and
	// link-local hosts as transfer URLs. Unset, it is true on the devnet
	// (where everything is on loopback) and false in lotus mode, so a
	// config written by a devnet start stays safe when switched to the
	// real network.
	AllowPrivateAddresses *bool `toml:",omitempty"`
}

// allowPrivate is AllowPrivateAddresses with its default for the mode.
func (c *Config) allowPrivate() bool {
	if p := c.Transfer.AllowPrivateAddresses; p != nil {
		return *p
	}
	return c.Chain.Mode == "devnet"
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
		Subsystems: SubsystemsConfig{EnableMarkets: true, EnableSealing: true},
		Chain: ChainConfig{
			Mode:             "devnet",
			DevnetBlockTime:  Duration(time.Second),
			DevnetListen:     "127.0.0.1:1234",
			DevnetSectorSize: "8MiB",
		},
		Libp2p: Libp2pConfig{ListenAddresses: []string{"/ip4/127.0.0.1/tcp/24001"}, ProposalsPerPeer: 256},
		HTTP: HTTPConfig{
			Listen:             "127.0.0.1:7777",
			EnableMK12:         true,
			EnableMK20:         true,
			DealRateLimit:      httpdeal.DefaultRateLimit,
			ChunkRateLimit:     httpdeal.DefaultChunkRateLimit,
			MaxParallelUploads: httpdeal.DefaultMaxParallelUploads,
			MinChunkSize:       "16MiB",
			MaxChunkSize:       "256MiB",
		},
		API: APIConfig{Listen: "127.0.0.1:1288"},
		Sealing: SealingConfig{
			Backend:                 BackendOwn,
			MinerAPIListen:          "127.0.0.1:2345", // lotus-miner's port
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
			MaxConcurrent: 20,
			MaxPerHost:    10,
			MaxPerClient:  10,
			StallTimeout:  Duration(5 * time.Minute),
			MaxRetries:    10,
			MinRate:       32 << 10,
			RateWindow:    Duration(10 * time.Minute),
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
	if err := cfg.validate(); err != nil {
		return cfg, fmt.Errorf("reading %s: %w", path, err)
	}
	return cfg, nil
}

// validate checks the settings that are more than their TOML type, so that
// a mistake is named at start rather than found by the part that reads it.
func (c *Config) validate() error {
	if c.Chain.Mode != "devnet" && c.Chain.Mode != "lotus" {
		return fmt.Errorf("Chain.Mode must be \"devnet\" or \"lotus\", not %q", c.Chain.Mode)
	}
	if c.Chain.Mode == "devnet" {
		if _, err := parseSectorSize(c.Chain.DevnetSectorSize); err != nil {
			return fmt.Errorf("Chain.DevnetSectorSize: %w", err)
		}
	}
	for _, s := range c.Libp2p.AnnounceAddresses {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return fmt.Errorf("Libp2p.AnnounceAddresses: %q: %w", s, err)
		}
	}
	if c.Libp2p.ProposalsPerPeer <= 0 {
		return fmt.Errorf("Libp2p.ProposalsPerPeer must be at least 1, not %d", c.Libp2p.ProposalsPerPeer)
	}
	if _, err := c.retrievalAddr(); err != nil {
		return err
	}
	if c.HTTP.DealRateLimit <= 0 || c.HTTP.ChunkRateLimit <= 0 || c.HTTP.MaxParallelUploads <= 0 {
		return fmt.Errorf("HTTP.DealRateLimit, ChunkRateLimit and MaxParallelUploads must be at least 1")
	}
	if _, err := c.mk20Config(address.Undef, 0, 0, ""); err != nil {
		return err
	}
	if err := c.validateSubsystems(); err != nil {
		return err
	}
	// The market's settings parse as one.
	_, err := c.marketConfig(address.Undef, "", nil, false)
	return err
}

// validateSubsystems checks that the subsystems and the sealing back end
// make one provider: a market has a sealer, and one sealer seals for the
// miner, never two.
func (c *Config) validateSubsystems() error {
	sub, s := c.Subsystems, c.Sealing
	if !sub.EnableMarkets && !sub.EnableSealing {
		return errors.New("Subsystems.EnableMarkets and Subsystems.EnableSealing are both false: this ferryd would run nothing")
	}
	switch s.Backend {
	case BackendOwn:
		if sub.EnableMarkets && !sub.EnableSealing {
			return fmt.Errorf("Sealing.Backend = %q is ferryd's own sealing, which Subsystems.EnableSealing = false turns off: "+
				"a market-only ferryd sets Sealing.Backend = %q and Sealing.MinerAPIInfo", BackendOwn, BackendLotusMiner)
		}
	case BackendLotusMiner:
		if sub.EnableSealing {
			return fmt.Errorf("Sealing.Backend = %q hands the market's pieces to a lotus-miner, which seals for the miner: "+
				"set Subsystems.EnableSealing = false, or this ferryd would seal for the same miner too", BackendLotusMiner)
		}
		if s.MinerAPIInfo != "" {
			if _, _, err := minerapi.ParseAPIInfo(s.MinerAPIInfo); err != nil {
				return fmt.Errorf("Sealing.MinerAPIInfo: %w", err)
			}
		}
	default:
		return fmt.Errorf("Sealing.Backend must be %q or %q, not %q", BackendOwn, BackendLotusMiner, s.Backend)
	}
	if sub.EnableSealing && s.MinerAPIListen != "" {
		if err := c.checkMinerAPIAddress(); err != nil {
			return err
		}
	}
	return nil
}

// checkMinerAPIAddress checks that other machines can be told where the
// lotus-miner API ferryd's sealing serves is: Sealing.MinerAPIPublicURL,
// or else Sealing.MinerAPIListen, which must then name one address.
func (c *Config) checkMinerAPIAddress() error {
	s := c.Sealing
	if s.MinerAPIPublicURL != "" {
		u, err := url.Parse(s.MinerAPIPublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("Sealing.MinerAPIPublicURL %q: want http(s)://host:port, with no path", s.MinerAPIPublicURL)
		}
		return nil
	}
	host, _, err := net.SplitHostPort(s.MinerAPIListen)
	if err != nil {
		return fmt.Errorf("Sealing.MinerAPIListen %q: %w", s.MinerAPIListen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return fmt.Errorf("Sealing.MinerAPIListen %q listens on every address: set Sealing.MinerAPIPublicURL to the URL other machines reach it at", s.MinerAPIListen)
	}
	return nil
}

// sealingConfig is the Sealing section as sealing.Config, for sectors of
// size in dir; the devnet's policy shortens the chain's delays and its
// messages are waited for with confidence epochs on top (zero on the real
// network: sealing's defaults are the network's).
func (c *Config) sealingConfig(dir string, size abi.SectorSize, policy devnet.Policy, confidence uint64) sealing.Config {
	s := c.Sealing
	return sealing.Config{
		Dir:                       dir,
		SectorSize:                size,
		MaxWaitDealsSectors:       s.MaxWaitDealsSectors,
		MaxSealingSectorsForDeals: s.MaxSealingSectorsForDeals,
		WaitDealsDelay:            s.WaitDealsDelay.Std(),
		StartEpochSealingBuffer:   abi.ChainEpoch(s.StartEpochSealingBuffer),
		AddPieceConcurrency:       s.AddPieceConcurrency,
		PreCommitChallengeDelay:   policy.PreCommitChallengeDelay,
		MaxProveCommitDuration:    policy.MaxProveCommitDuration,
		MinSectorExpiration:       policy.MinSectorExpiration,
		PollInterval:              c.Chain.DevnetBlockTime.Std(),
		MessageConfidence:         confidence,
	}
}

// transferConfig is the Transfer section as transfer.Config.
func (c *Config) transferConfig() transfer.Config {
	t := c.Transfer
	return transfer.Config{
		MaxConcurrent:         t.MaxConcurrent,
		MaxPerHost:            t.MaxPerHost,
		MaxPerClient:          t.MaxPerClient,
		StallTimeout:          t.StallTimeout.Std(),
		MaxRetries:            t.MaxRetries,
		MinRate:               t.MinRate,
		RateWindow:            t.RateWindow.Std(),
		AllowPrivateAddresses: c.allowPrivate(),
	}
}

// marketConfig is the Market section as market.Config for miner, with
// staging in stagingDir and retrievals announced at retrieval; on the
// devnet the market polls the chain at each block.
func (c *Config) marketConfig(miner address.Address, stagingDir string, retrieval ma.Multiaddr, devnet bool) (market.Config, error) {
	m := c.Market
	capacity, err := cliutil.ParseBytes(m.StagingCapacity)
	if err != nil {
		return market.Config{}, fmt.Errorf("Market.StagingCapacity: %w", err)
	}
	fee, err := chain.ParseFIL(m.MaxPublishDealsFee)
	if err != nil {
		return market.Config{}, fmt.Errorf("Market.MaxPublishDealsFee %q: %w", m.MaxPublishDealsFee, err)
	}
	var blocklist []cid.Cid
	for _, s := range m.PieceCidBlocklist {
		pc, err := cid.Decode(s)
		if err != nil {
			return market.Config{}, fmt.Errorf("Market.PieceCidBlocklist: %q is not a CID: %w", s, err)
		}
		blocklist = append(blocklist, pc)
	}
	var filter []string
	if m.Filter != "" {
		filter = []string{"/bin/sh", "-c", m.Filter}
	}
	cfg := market.Config{
		Miner:                   miner,
		StagingDir:              stagingDir,
		StagingCapacity:         uint64(capacity),
		RejectOnline:            !m.ConsiderOnlineDeals,
		RejectOffline:           !m.ConsiderOfflineDeals,
		RejectVerified:          !m.ConsiderVerifiedDeals,
		RejectUnverified:        !m.ConsiderUnverifiedDeals,
		PieceCIDBlocklist:       blocklist,
		ExpectedSealDuration:    m.ExpectedSealDuration.Std(),
		MaxDealStartDelay:       m.MaxDealStartDelay.Std(),
		StartEpochSealingBuffer: abi.ChainEpoch(c.Sealing.StartEpochSealingBuffer),
		FilterCommand:           filter,
		FilterTimeout:           m.FilterTimeout.Std(),
		PublishMsgPeriod:        m.PublishMsgPeriod.Std(),
		MaxDealsPerPublishMsg:   m.MaxDealsPerPublishMsg,
		MaxPublishDealsFee:      fee,
		AllowPrivateAddresses:   c.allowPrivate(),
		DealEndCheckInterval:    m.DealEndCheckInterval.Std(),
		EndChecksPerPass:        m.EndChecksPerPass,
	}
	if retrieval != nil {
		cfg.RetrievalAddrs = []ma.Multiaddr{retrieval}
	}
	if devnet {
		cfg.PublishConfidence = 1
		cfg.PollInterval = c.Chain.DevnetBlockTime.Std()
	}
	return cfg, nil
}

// retrievalAddr is where clients retrieve, as the market and IPNI announce
// it: HTTP.PublicURL, else HTTP.Listen, as /ip4/…/tcp/…/http.
func (c *Config) retrievalAddr() (ma.Multiaddr, error) {
	if c.HTTP.PublicURL != "" {
		m, err := ipni.HTTPMultiaddr(c.HTTP.PublicURL)
		if err != nil {
			return nil, fmt.Errorf("HTTP.PublicURL: %w", err)
		}
		return m, nil
	}
	tcp, err := net.ResolveTCPAddr("tcp", c.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("HTTP.Listen: %w", err)
	}
	m, err := manet.FromNetAddr(tcp)
	if err != nil {
		return nil, fmt.Errorf("HTTP.Listen: %w", err)
	}
	return m.Encapsulate(ma.StringCast("/http")), nil
}

// parseSectorSize reads "2KiB", "8MiB", "512MiB", "32GiB" or "64GiB".
func parseSectorSize(s string) (abi.SectorSize, error) {
	v, err := cliutil.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("sector size: %w", err)
	}
	ss := abi.SectorSize(v)
	if _, err := sealing.SealProofFor(ss); err != nil {
		return 0, fmt.Errorf("sector size %q: must be 2KiB, 8MiB, 512MiB, 32GiB or 64GiB", s)
	}
	return ss, nil
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
