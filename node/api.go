package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/filecoin-project/go-address"
	carv2 "github.com/ipld/go-car/v2"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/build"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/ipni"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/transfer"
	"github.com/ferry-fil/ferry/wire"
)

// nodeAPI serves the operator API from the node's parts.
type nodeAPI struct {
	n      *Node
	secret []byte    // signs the API's tokens
	rates  rateMeter // transfer rates from the counts seen by Transfers
}

var _ api.Ferry = (*nodeAPI)(nil)

// errNoMarket is the answer of the market's methods on a sealing-only
// ferryd.
var errNoMarket = errors.New("this ferryd runs no market (Subsystems.EnableMarkets = false): deals, the ask and the piece index are its market's")

// market fails for a ferryd that runs no market.
func (a *nodeAPI) market() error {
	if a.n.Provider == nil {
		return errNoMarket
	}
	return nil
}

// pieceIndex fails for a ferryd that runs no piece index (no market).
func (a *nodeAPI) pieceIndex() error {
	if a.n.Index == nil {
		return errNoMarket
	}
	return nil
}

func (a *nodeAPI) Info(ctx context.Context) (api.Info, error) {
	n := a.n
	info := api.Info{
		Version:    build.Version,
		Miner:      n.Miner.String(),
		Worker:     n.Worker.String(),
		ChainMode:  n.Config.Chain.Mode,
		Subsystems: []string{},
		MinerAPI:   n.minerAPIAddr,
	}
	if n.Devnet != nil {
		var err error
		if info.ChainAPI, err = APIMultiaddr(n.Config.Chain.DevnetListen); err != nil {
			return info, fmt.Errorf("reading Chain.DevnetListen: %w", err)
		}
	}
	if n.Config.Subsystems.EnableMarkets {
		info.Subsystems = append(info.Subsystems, "markets")
		info.PeerID, info.RetrievalURL, info.SealingBackend = n.Host.ID().String(), n.RetrievalURL(), n.Config.Sealing.Backend
		for _, m := range n.announceAddrs() {
			info.Addresses = append(info.Addresses, m.String()+"/p2p/"+peer.ID(n.Host.ID()).String())
		}
		if n.MinerAPI != nil {
			info.SealerAPI = n.MinerAPI.URL()
		}
	}
	if n.Config.Subsystems.EnableSealing {
		info.Subsystems = append(info.Subsystems, "sealing")
	}
	head, err := n.Chain.ChainHead(ctx)
	if err != nil {
		return info, fmt.Errorf("reading the chain head: %w", err)
	}
	info.ChainHead, info.ChainHeadTime = head.Height(), time.Unix(int64(head.MinTimestamp()), 0)
	info.BlockDelayMillis = n.blockTime().Milliseconds()
	mi, err := n.Chain.StateMinerInfo(ctx, n.Miner, chain.EmptyTSK)
	if err != nil {
		return info, fmt.Errorf("reading miner %s: %w", n.Miner, err)
	}
	info.SectorSize = mi.SectorSize
	bal, err := n.Chain.StateMarketBalance(ctx, n.Miner, chain.EmptyTSK)
	if err != nil {
		return info, fmt.Errorf("reading the market balance: %w", err)
	}
	info.MarketEscrow, info.MarketLocked = bal.Escrow, bal.Locked
	if info.WorkerFunds, err = n.Chain.WalletBalance(ctx, n.Worker); err != nil {
		return info, fmt.Errorf("reading the worker balance: %w", err)
	}
	return info, nil
}

func (a *nodeAPI) DealList(ctx context.Context, f market.DealFilter) ([]market.DealInfo, error) {
	if err := a.market(); err != nil {
		return nil, err
	}
	// Deals are kept by the client's key address: an ID address is
	// resolved first.
	if addr, err := address.NewFromString(f.Client); err == nil && addr.Protocol() == address.ID {
		key, err := a.n.Chain.StateAccountKey(ctx, addr, chain.EmptyTSK)
		if err != nil {
			return nil, fmt.Errorf("resolving client %s: %w", addr, err)
		}
		f.Client = key.String()
	}
	return a.n.Provider.Deals(ctx, f)
}

func (a *nodeAPI) DealShow(ctx context.Context, id uuid.UUID) (*market.DealDetail, error) {
	if err := a.market(); err != nil {
		return nil, err
	}
	return a.n.Provider.Deal(ctx, id)
}

func (a *nodeAPI) DealRetry(ctx context.Context, id uuid.UUID) error {
	if err := a.market(); err != nil {
		return err
	}
	return a.n.Provider.Retry(ctx, id)
}

func (a *nodeAPI) DealFail(ctx context.Context, id uuid.UUID) error {
	if err := a.market(); err != nil {
		return err
	}
	return a.n.Provider.Fail(ctx, id)
}

func (a *nodeAPI) DealCancel(ctx context.Context, id uuid.UUID) error {
	if err := a.market(); err != nil {
		return err
	}
	return a.n.Provider.Cancel(ctx, id)
}

func (a *nodeAPI) DealImportData(ctx context.Context, id uuid.UUID, path string) error {
	if err := a.market(); err != nil {
		return err
	}
	return a.n.Provider.ImportData(ctx, id, path)
}

func (a *nodeAPI) DealImportDirect(ctx context.Context, dd market.DirectDeal) (*market.DealInfo, error) {
	if err := a.market(); err != nil {
		return nil, err
	}
	return a.n.Provider.ImportDirect(ctx, dd)
}

func (a *nodeAPI) PublishNow(ctx context.Context) error {
	if err := a.market(); err != nil {
		return err
	}
	return a.n.Provider.PublishNow(ctx)
}

func (a *nodeAPI) AskGet(ctx context.Context) (*wire.SignedStorageAsk, error) {
	if err := a.market(); err != nil {
		return nil, err
	}
	return a.n.Provider.Ask(ctx)
}

func (a *nodeAPI) AskSet(ctx context.Context, ask market.AskParams) (*wire.SignedStorageAsk, error) {
	if err := a.market(); err != nil {
		return nil, err
	}
	return a.n.Provider.SetAsk(ctx, ask)
}

// SectorsList lists ferryd's sectors, or lotus-miner's when the market
// hands its pieces there.
func (a *nodeAPI) SectorsList(ctx context.Context) ([]sealing.SectorInfo, error) {
	if a.n.Sealing != nil {
		return a.n.Sealing.Sectors(ctx)
	}
	nums, err := a.n.MinerAPI.SectorsList(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(nums)
	out := make([]sealing.SectorInfo, 0, len(nums))
	for _, num := range nums {
		si, err := a.n.MinerAPI.SectorsStatus(ctx, num, false)
		if err != nil {
			return nil, err
		}
		out = append(out, sectorInfo(si, a.n.sectorSize))
	}
	return out, nil
}

func (a *nodeAPI) SectorsStatus(ctx context.Context, num abi.SectorNumber) (sealing.SectorInfo, error) {
	if a.n.Sealing != nil {
		return a.n.Sealing.Sector(ctx, num)
	}
	si, err := a.n.MinerAPI.SectorsStatus(ctx, num, false)
	if err != nil {
		return sealing.SectorInfo{}, err
	}
	return sectorInfo(si, a.n.sectorSize), nil
}

func (a *nodeAPI) IndexList(ctx context.Context) ([]api.PieceIndexInfo, error) {
	if err := a.pieceIndex(); err != nil {
		return nil, err
	}
	pieces, err := a.n.Index.Pieces(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.PieceIndexInfo, 0, len(pieces))
	for _, p := range pieces {
		pi, err := a.pieceIndexInfo(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, pi)
	}
	return out, nil
}

// pieceV1 is the CID v1 the index knows a piece by, given either version.
func pieceV1(c cid.Cid) (cid.Cid, error) {
	v1, _, _, err := piece.ParseAnyCID(c)
	return v1, err
}

func (a *nodeAPI) IndexStatus(ctx context.Context, pc cid.Cid) (api.PieceIndexInfo, error) {
	if err := a.pieceIndex(); err != nil {
		return api.PieceIndexInfo{}, err
	}
	v1, err := pieceV1(pc)
	if err != nil {
		return api.PieceIndexInfo{}, err
	}
	p, err := a.n.Index.Piece(ctx, v1)
	if err != nil {
		return api.PieceIndexInfo{}, err
	}
	return a.pieceIndexInfo(ctx, p)
}

func (a *nodeAPI) pieceIndexInfo(ctx context.Context, p index.PieceInfo) (api.PieceIndexInfo, error) {
	pi := api.PieceIndexInfo{PieceCID: p.PieceCID.String(), State: p.State, Blocks: p.Blocks, Aggregate: p.Aggregate, Error: p.Error,
		BytesRead: p.BytesRead, BytesTotal: p.BytesTotal, PieceSize: uint64(p.PieceSize), RawSize: p.RawSize}
	if p.PieceCIDv2.Defined() {
		pi.PieceCIDv2 = p.PieceCIDv2.String()
	}
	if a.n.IPNI != nil {
		var err error
		if pi.Announced, err = a.n.IPNI.IsAnnounced(ctx, p.PieceCID); err != nil {
			return api.PieceIndexInfo{}, err
		}
	}
	return pi, nil
}

func (a *nodeAPI) IndexRebuild(ctx context.Context, pc cid.Cid) (int64, error) {
	if err := a.pieceIndex(); err != nil {
		return 0, err
	}
	v1, err := pieceV1(pc)
	if err != nil {
		return 0, err
	}
	res, err := a.n.Index.Rebuild(ctx, v1)
	return res.Blocks, err
}

func (a *nodeAPI) IndexAnnounce(ctx context.Context, pc cid.Cid) (cid.Cid, error) {
	v1, err := pieceV1(pc)
	if err != nil {
		return cid.Undef, err
	}
	if a.n.IPNI == nil {
		return cid.Undef, fmt.Errorf("IPNI is off (IPNI.Enable in config.toml)")
	}
	return a.n.IPNI.AnnouncePiece(ctx, v1)
}

func (a *nodeAPI) MinerAuthNew(ctx context.Context, perms []auth.Permission) (string, error) {
	if len(perms) == 0 {
		return "", fmt.Errorf("no permissions given for the token")
	}
	return a.n.minerAuthNew(perms)
}

func (a *nodeAPI) AuthNew(ctx context.Context, perms []auth.Permission) (string, error) {
	if len(perms) == 0 {
		return "", fmt.Errorf("no permissions given for the token")
	}
	return auth.Mint(a.secret, perms...)
}

func (a *nodeAPI) ChainAuthNew(ctx context.Context, perms []auth.Permission) (string, error) {
	if len(perms) == 0 {
		return "", fmt.Errorf("no permissions given for the token")
	}
	if a.n.Devnet == nil {
		return "", fmt.Errorf("the chain is a Lotus node: make its tokens with `lotus auth create-token`")
	}
	return a.n.Devnet.Token(perms...)
}

// transfersShown bounds Transfers: the downloads under way are at most
// Transfer.MaxConcurrent; deals queued for a slot come after them.
const transfersShown = 200

func (a *nodeAPI) Overview(ctx context.Context) (api.Overview, error) {
	n := a.n
	var ov api.Overview
	failed := func(part string, err error) {
		if err != nil {
			ov.Errors = append(ov.Errors, fmt.Sprintf("%s: %v", part, err))
		}
	}
	var err error
	ov.Info, err = a.Info(ctx)
	failed("chain", err)
	if !ov.Info.ChainHeadTime.IsZero() {
		lag := time.Since(ov.Info.ChainHeadTime)
		ov.ChainLagSeconds = int64(lag / time.Second)
		if bt := n.blockTime(); bt > 0 {
			ov.ChainLagEpochs = int64(lag / bt)
		}
	}
	if n.Provider != nil {
		ov.Deals, err = n.Provider.DealCounts(ctx)
		failed("deals", err)
		now := time.Now()
		ov.IngestHourly, err = n.Provider.Ingested(ctx, now.Add(-23*time.Hour), time.Hour)
		failed("ingest history", err)
		ov.IngestDaily, err = n.Provider.Ingested(ctx, now.AddDate(0, 0, -29), 24*time.Hour)
		failed("ingest history", err)
		ov.Transfers, err = a.Transfers(ctx)
		failed("transfers", err)
		ov.Reserved, err = n.Provider.Reserved(ctx)
		failed("reserved funds", err)
		ov.StagingUsed, err = dirBytes(n.Repo.Path("staging"))
		failed("staging", err)
	}
	ov.Sectors = map[string]int64{}
	switch {
	case n.Sealing != nil:
		sectors, err := n.Sealing.SectorCounts(ctx)
		failed("sectors", err)
		for st, k := range sectors {
			ov.Sectors[string(st)] = k
		}
	case n.MinerAPI != nil: // the sectors are lotus-miner's
		sectors, err := n.MinerAPI.SectorsSummary(ctx)
		failed("sectors", err)
		for st, k := range sectors {
			ov.Sectors[string(st)] = int64(k)
		}
	}
	if n.Index != nil {
		ov.IndexPieces, err = n.Index.PieceCounts(ctx)
		failed("index", err)
	}
	ov.IPNI = api.IPNIStatus{Enabled: n.IPNI != nil, Indexers: n.indexerStates()}
	if n.IPNI != nil {
		h, err := n.IPNI.Head(ctx)
		failed("IPNI", err)
		if h.Defined() {
			ov.IPNI.Head = h.String()
		}
	}
	return ov, nil
}

// blockTime is the chain's time between epochs.
func (n *Node) blockTime() time.Duration {
	if n.Devnet != nil {
		return n.Config.Chain.DevnetBlockTime.Std()
	}
	return 30 * time.Second // mainnet and calibration: builtin.EpochDurationSeconds
}

// dirBytes is the size of the regular files under dir (0 when dir does
// not exist yet).
func dirBytes(dir string) (uint64, error) {
	var total uint64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		total += uint64(fi.Size())
		return nil
	})
	return total, err
}

// indexerStates are the IPNI indexers with their URLs redacted.
func (n *Node) indexerStates() []ipni.IndexerState {
	out := []ipni.IndexerState{}
	if n.IPNI != nil {
		for _, st := range n.IPNI.Indexers() {
			st.URL = transfer.Redact(st.URL)
			out = append(out, st)
		}
	}
	return out
}

func redactAll(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = transfer.Redact(u)
	}
	return out
}

func (a *nodeAPI) Transfers(ctx context.Context) ([]api.Transfer, error) {
	if err := a.market(); err != nil {
		return nil, err
	}
	deals, err := a.n.Provider.Deals(ctx, market.DealFilter{State: market.StateActive, Checkpoint: market.Accepted.String(), Limit: transfersShown})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := []api.Transfer{}
	var live []string
	for _, d := range deals {
		if d.IsOffline && d.BytesReceived == 0 {
			continue // waiting for import-data, nothing arriving
		}
		t := api.Transfer{DealUUID: d.UUID, Client: d.Client, PieceCID: d.PieceCID, IsOffline: d.IsOffline,
			Size: d.TransferSize, Received: d.BytesReceived, Retry: string(d.Retry), Error: d.Error}
		t.BytesPerSecond = a.rates.sample(d.UUID, d.BytesReceived, now)
		if t.BytesPerSecond > 0 && t.Size > t.Received {
			t.ETASeconds = int64(float64(t.Size-t.Received)/t.BytesPerSecond + 0.5)
		}
		live = append(live, d.UUID)
		out = append(out, t)
	}
	a.rates.keep(live)
	return out, nil
}

// rateWindow is how far back a transfer's rate looks.
const rateWindow = 10 * time.Second

// rateMeter turns the received-byte counts seen at successive calls into
// rates: each deal keeps the samples of the last rateWindow.
type rateMeter struct {
	mu      sync.Mutex
	samples map[string][]rateSample
}

type rateSample struct {
	at    time.Time
	bytes uint64
}

// sample records that deal had received bytes at now and returns its rate
// in bytes per second over the samples kept (0 until two samples a
// second apart exist, or when the count went back, as after a restart of
// the download).
func (m *rateMeter) sample(deal string, bytes uint64, now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.samples == nil {
		m.samples = map[string][]rateSample{}
	}
	s := append(m.samples[deal], rateSample{now, bytes})
	for len(s) > 2 && now.Sub(s[1].at) >= rateWindow {
		s = s[1:]
	}
	if bytes < s[0].bytes {
		s = s[len(s)-1:]
	}
	m.samples[deal] = s
	first := s[0]
	if dt := now.Sub(first.at); dt >= time.Second {
		return float64(bytes-first.bytes) / dt.Seconds()
	}
	return 0
}

// keep forgets the deals not in live.
func (m *rateMeter) keep(live []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.samples {
		if !slices.Contains(live, k) {
			delete(m.samples, k)
		}
	}
}

func (a *nodeAPI) PieceShow(ctx context.Context, pc cid.Cid) (api.PieceDetail, error) {
	n := a.n
	v1, err := pieceV1(pc)
	if err != nil {
		return api.PieceDetail{}, err
	}
	if err := a.market(); err != nil {
		return api.PieceDetail{}, err
	}
	pd := api.PieceDetail{PieceCID: v1.String(), Sectors: []api.PiecePlacement{}}
	if pd.Deals, err = n.Provider.Deals(ctx, market.DealFilter{PieceCID: v1.String()}); err != nil {
		return pd, err
	}
	seen := map[abi.SectorNumber]bool{}
	for _, d := range pd.Deals {
		pd.PieceSize = d.PieceSize
		if pd.PieceCIDv2 == "" && d.TransferSize > 0 {
			if c, err := piece.V1ToV2(v1, d.TransferSize, abi.PaddedPieceSize(d.PieceSize)); err == nil {
				pd.PieceCIDv2 = c.String()
			}
		}
		if d.Sector == nil || seen[abi.SectorNumber(*d.Sector)] {
			continue
		}
		num := abi.SectorNumber(*d.Sector)
		seen[num] = true
		si, err := a.SectorsStatus(ctx, num)
		if err != nil {
			return pd, fmt.Errorf("reading sector %d of piece %s: %w", num, v1, err)
		}
		for _, sp := range si.Pieces {
			if sp.Filler || !sp.PieceCID.Equals(v1) {
				continue
			}
			pp := api.PiecePlacement{Sector: num, Offset: uint64(sp.Offset), Size: uint64(sp.Size), State: string(si.State),
				Written: sp.Written, Unsealed: si.Unsealed}
			if sp.DealUUID != nil {
				pp.DealUUID = sp.DealUUID.String()
			}
			pd.Sectors = append(pd.Sectors, pp)
		}
	}
	if pd.Unsealed, err = n.hasUnsealedCopy(ctx, v1); err != nil {
		return pd, err
	}
	if p, err := n.Index.Piece(ctx, v1); err == nil {
		pi, err := a.pieceIndexInfo(ctx, p)
		if err != nil {
			return pd, err
		}
		pd.Index = &pi
	} else if !errors.Is(err, index.ErrNotFound) {
		return pd, err
	}
	if n.IPNI != nil {
		ad, active, found, err := n.IPNI.PieceAd(ctx, v1)
		if err != nil {
			return pd, err
		}
		if found {
			pd.IPNI = &api.PieceAd{AdCID: ad.AdCID.String(), Seq: ad.Seq, Removal: ad.IsRm, Announced: active, Entries: ad.Entries,
				CreatedAt: ad.CreatedAt, Indexers: n.indexerStates()}
		}
	}
	return pd, nil
}

// checkRange is how much of a piece the retrieval check fetches.
const checkRange = 1024

func (a *nodeAPI) PieceCheckRetrieval(ctx context.Context, pc cid.Cid) (api.RetrievalCheck, error) {
	v1, err := pieceV1(pc)
	if err != nil {
		return api.RetrievalCheck{}, err
	}
	base, err := localURL(a.n.Config.HTTP.Listen)
	if err != nil {
		return api.RetrievalCheck{}, err
	}
	if err := a.market(); err != nil {
		return api.RetrievalCheck{}, err
	}
	deals, err := a.n.Provider.Deals(ctx, market.DealFilter{PieceCID: v1.String()})
	if err != nil {
		return api.RetrievalCheck{}, err
	}
	var rc api.RetrievalCheck
	rc.Piece = probe(ctx, base+"/piece/"+v1.String(), "bytes=0-"+strconv.Itoa(checkRange-1), "", func(status int, body []byte) error {
		if status != http.StatusPartialContent && status != http.StatusOK {
			return fmt.Errorf("HTTP %d", status)
		}
		if len(body) == 0 || len(body) > checkRange {
			return fmt.Errorf("%d bytes for a range of %d", len(body), checkRange)
		}
		return nil
	})
	var root cid.Cid
	for _, d := range deals {
		if c, err := cid.Decode(d.DataRoot); err == nil {
			root = c
			break
		}
	}
	if !root.Defined() {
		rc.Block = api.RetrievalProbe{Error: "no deal of this piece names a payload root"}
		return rc, nil
	}
	rc.Block = probe(ctx, base+"/ipfs/"+root.String()+"?dag-scope=block", "", "application/vnd.ipld.car", func(status int, body []byte) error {
		if status != http.StatusOK {
			return fmt.Errorf("HTTP %d", status)
		}
		return carHolds(body, root)
	})
	return rc, nil
}

// probe GETs url (with a Range or Accept header when given) and checks
// the answer with check.
func probe(ctx context.Context, url, rng, accept string, check func(status int, body []byte) error) api.RetrievalProbe {
	p := api.RetrievalProbe{URL: url}
	started := time.Now()
	defer func() { p.DurationMS = time.Since(started).Milliseconds() }()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.Error = err.Error()
		p.DurationMS = time.Since(started).Milliseconds()
		return p
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	p.Status, p.Bytes = resp.StatusCode, int64(len(body))
	if err == nil {
		err = check(resp.StatusCode, body)
	}
	if err != nil {
		p.Error = err.Error()
	}
	p.OK = err == nil
	p.DurationMS = time.Since(started).Milliseconds()
	return p
}

// carHolds checks that body is a CAR holding the block root, its bytes
// matching the CID.
func carHolds(body []byte, root cid.Cid) error {
	br, err := carv2.NewBlockReader(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("reading the CAR: %w", err)
	}
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("the CAR does not hold block %s", root)
		}
		if err != nil {
			return fmt.Errorf("reading the CAR: %w", err)
		}
		if !b.Cid().Equals(root) {
			continue
		}
		got, err := root.Prefix().Sum(b.RawData())
		if err != nil || !got.Equals(root) {
			return fmt.Errorf("block %s does not hash to its CID", root)
		}
		return nil
	}
}

// localURL is the retrieval server's own base URL on this machine: its
// listen address, with an unspecified host replaced by loopback.
func localURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("HTTP.Listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

func (a *nodeAPI) ConfigShow(ctx context.Context) (string, error) {
	cfg := a.n.Config
	cfg.Chain.LotusAPIInfo = redactAPIInfo(cfg.Chain.LotusAPIInfo)
	cfg.Sealing.MinerAPIInfo = redactAPIInfo(cfg.Sealing.MinerAPIInfo)
	cfg.IPNI.IndexerURLs = redactAll(cfg.IPNI.IndexerURLs)
	if cfg.HTTP.PublicURL != "" {
		cfg.HTTP.PublicURL = transfer.Redact(cfg.HTTP.PublicURL)
	}
	if cfg.Sealing.MinerAPIPublicURL != "" {
		cfg.Sealing.MinerAPIPublicURL = transfer.Redact(cfg.Sealing.MinerAPIPublicURL)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		return "", fmt.Errorf("encoding the config: %w", err)
	}
	return buf.String(), nil
}

// redacted replaces secrets in what the API shows.
const redacted = "<redacted>"

// redactAPIInfo hides the token of an API info (Lotus' token:multiaddr).
func redactAPIInfo(info string) string {
	if info == "" || strings.HasPrefix(info, "/") {
		return info // nothing, or a bare multiaddr: no token
	}
	if token, addr, ok := strings.Cut(info, ":"); ok && token != "" && strings.HasPrefix(addr, "/") {
		return redacted + ":" + addr
	}
	return redacted
}
