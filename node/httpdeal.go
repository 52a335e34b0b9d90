package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/oklog/ulid/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/cluster"
	"github.com/ferry-fil/ferry/httpdeal"
	"github.com/ferry-fil/ferry/httpdeal/mk20"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/transfer"
)

// This file puts Curio's HTTP deal APIs (package httpdeal) on the
// retrieval listener, in front of the market: mk12 over HTTP is the
// market's own Propose, Status and Ask; a Market 2.0 (mk20) deal is a
// direct deal (market.ImportDirect) named by its ULID, whose staging
// reservation and uploaded file the market takes over at the hand-off.

// mountHTTPDeals adds the enabled deal APIs to mux on a market node (as
// the libp2p deal protocols). The mk20 routes start (their sweep of
// staging and their retries) before the listener serves, and close with
// the node.
func (n *Node) mountHTTPDeals(ctx context.Context, mux *http.ServeMux) error {
	if !n.has(cluster.RoleMarket) {
		return nil
	}
	h := n.Config.HTTP
	if h.EnableMK12 {
		mux.Handle(httpdeal.MK12Path+"/", httpdeal.NewMK12(httpdeal.MK12Config{Miner: n.Miner, RateLimit: h.DealRateLimit, Logf: n.logf}, n.Provider))
	}
	if !h.EnableMK20 {
		return nil
	}
	cfg, err := n.Config.mk20Config(n.Miner, n.sectorSize, n.Provider.SealEpochs(), n.Repo.Path("staging"))
	if err != nil {
		return err
	}
	cfg.Logf, cfg.NodeID = n.logf, n.nodeID()
	if n.Cluster != nil {
		cfg.NodeURL = n.nodeURL // an upload's requests may come to any market node
		cfg.Peers = &httpdeal.PeerAuth{Token: n.clusterToken, Verify: n.peerToken}
	}
	m := &mk20Market{p: n.Provider, verified: n.Config.Market.ConsiderVerifiedDeals}
	srv, err := httpdeal.NewMK20(cfg, httpdeal.MK20Deps{DB: n.DB, Chain: n.Chain, Staging: mk20Staging{n.Provider}, Market: m})
	if err != nil {
		return fmt.Errorf("starting the Market 2.0 API: %w", err)
	}
	n.closers = append(n.closers, srv.Close)
	if err := srv.Start(ctx); err != nil {
		return fmt.Errorf("starting the Market 2.0 API: %w", err)
	}
	mux.Handle(httpdeal.MK20Path+"/", srv)
	return nil
}

// mk20Config is the HTTP section's Market 2.0 settings as
// httpdeal.MK20Config. Its sources are those the market takes: http and
// put are online deals (Market.ConsiderOnlineDeals), offline ones
// Market.ConsiderOfflineDeals.
func (c *Config) mk20Config(miner address.Address, size abi.SectorSize, sealEpochs abi.ChainEpoch, stagingDir string) (httpdeal.MK20Config, error) {
	h := c.HTTP
	minChunk, err := cliutil.ParseBytes(h.MinChunkSize)
	if err != nil {
		return httpdeal.MK20Config{}, fmt.Errorf("HTTP.MinChunkSize: %w", err)
	}
	maxChunk, err := cliutil.ParseBytes(h.MaxChunkSize)
	if err != nil {
		return httpdeal.MK20Config{}, fmt.Errorf("HTTP.MaxChunkSize: %w", err)
	}
	if minChunk <= 0 || maxChunk < minChunk || minChunk&(minChunk-1) != 0 || maxChunk&(maxChunk-1) != 0 {
		return httpdeal.MK20Config{}, fmt.Errorf("HTTP.MinChunkSize and MaxChunkSize must be powers of two, the minimum first (%s, %s)", h.MinChunkSize, h.MaxChunkSize)
	}
	sources := []mk20.SourceName{}
	if c.Market.ConsiderOnlineDeals {
		sources = append(sources, mk20.SourceHTTP, mk20.SourcePut)
	}
	if c.Market.ConsiderOfflineDeals {
		sources = append(sources, mk20.SourceOffline)
	}
	return httpdeal.MK20Config{
		Miner:              miner,
		SectorSize:         size,
		SealEpochs:         sealEpochs,
		StagingDir:         stagingDir,
		MinChunkSize:       minChunk,
		MaxChunkSize:       maxChunk,
		MaxParallelUploads: h.MaxParallelUploads,
		RateLimit:          h.DealRateLimit,
		ChunkRateLimit:     h.ChunkRateLimit,
		Sources:            sources,
	}, nil
}

// mk20Reservation is the name of an mk20 deal's staging reservation in the
// market, apart from other front ends'.
const mk20Reservation = "mk20/"

// mk20Staging is the market's staging reservations as httpdeal.Staging.
type mk20Staging struct{ p *market.Provider }

func (s mk20Staging) Reserve(ctx context.Context, id string, n uint64) error {
	err := s.p.ReserveStaging(ctx, mk20Reservation+id, n)
	if errors.Is(err, market.ErrStagingFull) {
		return fmt.Errorf("%w: %w", httpdeal.ErrStagingFull, err)
	}
	return err
}

func (s mk20Staging) Release(ctx context.Context, id string) error {
	return s.p.ReleaseStaging(ctx, mk20Reservation+id)
}

func (s mk20Staging) Reservations(ctx context.Context) ([]string, error) {
	all, err := s.p.StagingReservations(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range all {
		if rest, ok := strings.CutPrefix(id, mk20Reservation); ok {
			out = append(out, rest)
		}
	}
	return out, nil
}

// mk20Market is the market as httpdeal.MK20Market: an mk20 ddo_v1 deal is
// a direct deal whose UUID has the bytes of its ULID.
type mk20Market struct {
	p *market.Provider
	// verified is Market.ConsiderVerifiedDeals: every ddo_v1 deal Ferry
	// takes claims a verified allocation.
	verified bool
}

// directDeal is the market's direct deal for an mk20 deal, with the data
// at path for an upload ("" for other sources, and when only checking).
func (m *mk20Market) directDeal(d *mk20.Deal, path string) (market.DirectDeal, error) {
	ddo := d.Products.DDOV1
	switch {
	case ddo == nil || d.Data == nil:
		return market.DirectDeal{}, mk20.Reject(mk20.ErrProductValidationFailed, "a ddo_v1 deal with its data is needed")
	case !m.verified:
		return market.DirectDeal{}, mk20.Reject(mk20.ErrProductNotEnabled, "this provider takes no verified deals at the moment")
	case ddo.AllocationID == nil:
		return market.DirectDeal{}, mk20.Reject(mk20.ErrProductValidationFailed,
			"this provider takes ddo_v1 deals that claim a verified allocation: give allocation_id")
	case d.Data.Format.Car == nil:
		// The piece is indexed for retrieval, which needs a CAR.
		return market.DirectDeal{}, mk20.Reject(mk20.ErrMalformedDataSource, "this provider takes CAR payloads only (format car)")
	}
	client, err := address.NewFromString(d.Client)
	if err != nil {
		return market.DirectDeal{}, mk20.Reject(mk20.ErrBadProposal, "client address is not valid")
	}
	dd := market.DirectDeal{
		UUID:             httpdeal.DealUUID(d.Identifier),
		Client:           client,
		AllocationID:     chain.AllocationID(*ddo.AllocationID),
		PieceCID:         d.Data.PieceCID,
		Duration:         ddo.Duration,
		SkipIPNIAnnounce: d.Products.RetrievalV1 == nil || !d.Products.RetrievalV1.AnnouncePayload,
		Source:           fmt.Sprintf("Market 2.0 deal %s of %s", d.Identifier, d.Client),
	}
	if ddo.StartEpoch != nil {
		dd.StartEpoch = *ddo.StartEpoch
	}
	reservation := mk20Reservation + d.Identifier.String()
	switch d.Data.Source() {
	case mk20.SourceHTTP:
		pi, err := mk20.ParsePieceCID(d.Data.PieceCID)
		if err != nil {
			return market.DirectDeal{}, mk20.Reject(mk20.ErrBadProposal, "%v", err)
		}
		srcs := orderedURLs(d.Data.SourceHTTP.URLs)
		dd.Data.HTTP = &transfer.Request{URL: srcs[0].URL, Headers: srcs[0].Headers, Fallbacks: srcs[1:], Size: pi.RawSize}
		dd.Reservation = reservation
	case mk20.SourcePut:
		if path == "" {
			dd.Data.Upload = true // checking: the upload is to come
		} else {
			dd.Data.Staged, dd.Reservation = path, reservation
		}
	case mk20.SourceOffline:
		dd.Data.Upload = true // ferryd import-data gives it its file
	default:
		return market.DirectDeal{}, mk20.Reject(mk20.ErrUnsupportedDataSource, "data source %q is not supported", d.Data.Source())
	}
	return dd, nil
}

// orderedURLs are an http source's URLs in the order the market tries
// them: those that are not fallbacks by priority, lowest first, then the
// fallbacks by priority (the list's order between equals). The market
// downloads from the first, retrying it, and goes on to the next when one
// fails for good or runs out of retries. Repeated headers are joined with
// ", ", as HTTP allows.
func orderedURLs(urls []mk20.HTTPURL) []transfer.Source {
	sorted := slices.Clone(urls)
	slices.SortStableFunc(sorted, func(a, b mk20.HTTPURL) int {
		if a.Fallback != b.Fallback {
			if a.Fallback {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Priority, b.Priority)
	})
	out := make([]transfer.Source, len(sorted))
	for i, u := range sorted {
		out[i].URL = u.URL
		if len(u.Headers) > 0 {
			out[i].Headers = make(map[string]string, len(u.Headers))
			for name, values := range u.Headers {
				out[i].Headers[name] = strings.Join(values, ", ")
			}
		}
	}
	return out
}

// rejection turns the market's refusal of a direct deal into Curio's
// ErrDealRejectedByMarket with its reason; other errors stay.
func rejection(err error) error {
	if errors.Is(err, market.ErrDirectDealRejected) {
		why := strings.TrimPrefix(err.Error(), market.ErrDirectDealRejected.Error()+": ")
		return mk20.Reject(mk20.ErrDealRejectedByMarket, "%s", why)
	}
	return err
}

func (m *mk20Market) Check(ctx context.Context, d *mk20.Deal) error {
	dd, err := m.directDeal(d, "")
	if err != nil {
		return err
	}
	return rejection(m.p.CheckDirect(ctx, dd))
}

func (m *mk20Market) Start(ctx context.Context, d *mk20.Deal, path string) error {
	id := httpdeal.DealUUID(d.Identifier)
	taken := func() (bool, error) {
		_, err := m.p.Deal(ctx, id)
		if errors.Is(err, market.ErrUnknownDeal) {
			return false, nil
		}
		return err == nil, err
	}
	// Taken before: a crash, or a retry, between the hand-off and its
	// record.
	if ok, err := taken(); ok || err != nil {
		return err
	}
	dd, err := m.directDeal(d, path)
	if err != nil {
		return err
	}
	if _, err := m.p.ImportDirect(ctx, dd); err != nil {
		// A hand-off running at the same time took it.
		if ok, terr := taken(); ok && terr == nil {
			return nil
		}
		return rejection(err)
	}
	return nil
}

func (m *mk20Market) State(ctx context.Context, id ulid.ULID) (mk20.State, string, error) {
	d, err := m.p.Deal(ctx, httpdeal.DealUUID(id))
	if err != nil {
		return "", "", err
	}
	return mk20State(&d.DealInfo), d.Error, nil
}

// mk20State is where a direct deal is, in Curio's words: accepted until
// its data starts to arrive, processing while it arrives and is checked,
// sealing while the piece goes into a sector, indexing while it is indexed
// and announced, sealing again until the sector is proven and the claim is
// on chain, complete then; failed once it failed for good.
func mk20State(d *market.DealInfo) mk20.State {
	if d.Retry == market.RetryFatal {
		return mk20.StateFailed
	}
	switch d.Checkpoint {
	case market.Accepted:
		if d.BytesReceived > 0 {
			return mk20.StateProcessing
		}
		return mk20.StateAccepted
	case market.AddedPiece:
		return mk20.StateIndexing
	case market.Complete:
		return mk20.StateComplete
	}
	return mk20.StateSealing // Transferred, IndexedAndAnnounced
}
