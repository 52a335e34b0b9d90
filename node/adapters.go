package node

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/sealing"
)

// marketConfig turns the config file's market section into market.Config.
func (n *Node) marketConfig(retrieval ma.Multiaddr) (market.Config, error) {
	c := n.Config.Market
	capacity, err := parseBytes(c.StagingCapacity)
	if err != nil {
		return market.Config{}, fmt.Errorf("Market.StagingCapacity %q: %w", c.StagingCapacity, err)
	}
	fee, err := chain.ParseFIL(c.MaxPublishDealsFee)
	if err != nil {
		return market.Config{}, fmt.Errorf("Market.MaxPublishDealsFee %q: %w", c.MaxPublishDealsFee, err)
	}
	var blocklist []cid.Cid
	for _, s := range c.PieceCidBlocklist {
		pc, err := cid.Decode(s)
		if err != nil {
			return market.Config{}, fmt.Errorf("Market.PieceCidBlocklist: %q is not a CID: %w", s, err)
		}
		blocklist = append(blocklist, pc)
	}
	var filter []string
	if c.Filter != "" {
		filter = []string{"/bin/sh", "-c", c.Filter}
	}
	cfg := market.Config{
		Miner:                   n.Miner,
		StagingDir:              n.Repo.Path("staging"),
		StagingCapacity:         uint64(capacity),
		RejectOnline:            !c.ConsiderOnlineDeals,
		RejectOffline:           !c.ConsiderOfflineDeals,
		RejectVerified:          !c.ConsiderVerifiedDeals,
		RejectUnverified:        !c.ConsiderUnverifiedDeals,
		PieceCIDBlocklist:       blocklist,
		ExpectedSealDuration:    c.ExpectedSealDuration.Std(),
		MaxDealStartDelay:       c.MaxDealStartDelay.Std(),
		StartEpochSealingBuffer: abi.ChainEpoch(n.Config.Sealing.StartEpochSealingBuffer),
		FilterCommand:           filter,
		FilterTimeout:           c.FilterTimeout.Std(),
		PublishMsgPeriod:        c.PublishMsgPeriod.Std(),
		MaxDealsPerPublishMsg:   c.MaxDealsPerPublishMsg,
		MaxPublishDealsFee:      fee,
		RetrievalAddrs:          []ma.Multiaddr{retrieval},
		AllowPrivateAddresses:   n.Config.Transfer.AllowPrivateAddresses,
		DealEndCheckInterval:    c.DealEndCheckInterval.Std(),
		EndChecksPerPass:        c.EndChecksPerPass,
	}
	if n.Devnet != nil {
		cfg.PublishConfidence = 1
		cfg.PollInterval = n.Config.Chain.DevnetBlockTime.Std()
	}
	return cfg, nil
}

// httpMultiaddr turns host:port into /ip4/…/tcp/…/http.
func httpMultiaddr(hostport string) (ma.Multiaddr, error) {
	addr, err := manetResolve(hostport)
	if err != nil {
		return nil, err
	}
	return addr.Encapsulate(ma.StringCast("/http")), nil
}

func manetResolve(hostport string) (ma.Multiaddr, error) {
	tcp, err := net.ResolveTCPAddr("tcp", hostport)
	if err != nil {
		return nil, err
	}
	return manet.FromNetAddr(tcp)
}

// parseSectorSize reads "2KiB", "8MiB", "512MiB", "32GiB" or "64GiB".
func parseSectorSize(s string) (abi.SectorSize, error) {
	v, err := parseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("sector size %q: %w", s, err)
	}
	ss := abi.SectorSize(v)
	if _, err := sealing.SealProofFor(ss); err != nil {
		return 0, fmt.Errorf("sector size %q: must be 2KiB, 8MiB, 512MiB, 32GiB or 64GiB", s)
	}
	return ss, nil
}

// parseBytes reads a size such as "100GiB", "8MiB", "2048" (binary units).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("not a size in bytes (like 8MiB or 100GiB)")
	}
	return v * mult, nil
}
