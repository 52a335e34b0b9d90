package minerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc"
	"github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v13/miner"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	ferryauth "github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/sealing"
)

// Sealing is what Server needs from ferryd's sealing subsystem;
// *sealing.Sealing has it.
type Sealing interface {
	// AddPieceToAny places and writes a deal's piece.
	AddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, data io.Reader, d sealing.Deal) (sealing.Placement, error)
	// Sectors lists every sector with its pieces, in number order.
	Sectors(ctx context.Context) ([]sealing.SectorInfo, error)
	// Sector returns one sector with its pieces, or sealing.ErrUnknownSector.
	Sector(ctx context.Context, n abi.SectorNumber) (sealing.SectorInfo, error)
	// Storage returns the Lotus storage path holding the sector files
	// (unsealed/s-t0<miner>-<n>: Lotus' partial files) and its
	// sectorstore.json.
	Storage() (path string, meta sealing.StorageMeta)
}

var _ Sealing = (*sealing.Sealing)(nil)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Miner is the miner actor sealed for (an ID address).
	Miner address.Address
	// SectorSize is the miner's sector size.
	SectorSize abi.SectorSize
	// RemoteURL is the base URL of this server's /remote endpoint as
	// other machines reach it (http://10.0.0.5:2345/remote).
	RemoteURL string
	// Verify checks a token (Lotus' JWT) and returns its permissions.
	Verify func(ctx context.Context, token string) ([]auth.Permission, error)
	// Version is the version string Version reports.
	Version string
}

// Server serves lotus-miner's market-facing API over ferryd's sealing: an
// http.Handler for /rpc/v0, /rpc/streams/v0/push/{uuid} and /remote/. See
// the package doc for what it serves and how it authorizes.
type Server struct {
	cfg     ServerConfig
	storage StorageID // the storage path's ID (its sectorstore.json)
	dir     string    // the storage path
	minerID abi.ActorID
	proof   abi.RegisteredSealProof
	seal    Sealing
	streams *streams
	httpc   *http.Client // for http reader parameters
	handler http.Handler
}

// NewServer returns a Server over s.
func NewServer(cfg ServerConfig, s Sealing) (*Server, error) {
	id, err := address.IDFromAddress(cfg.Miner)
	if err != nil {
		return nil, fmt.Errorf("miner API server: miner %s is not an ID address: %w", cfg.Miner, err)
	}
	proof, err := sealing.SealProofFor(cfg.SectorSize)
	if err != nil {
		return nil, fmt.Errorf("miner API server: %w", err)
	}
	if cfg.Verify == nil {
		return nil, errors.New("miner API server: no token verifier")
	}
	if cfg.RemoteURL == "" {
		return nil, errors.New("miner API server: RemoteURL (the base URL of its /remote endpoint) is not set")
	}
	cfg.RemoteURL = strings.TrimSuffix(cfg.RemoteURL, "/")
	dir, meta := s.Storage()
	srv := &Server{cfg: cfg, storage: StorageID(meta.ID), dir: dir, minerID: abi.ActorID(id), proof: proof, seal: s, streams: newStreams(),
		httpc: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
		}}}

	var p proxy
	auth.PermissionedProxy(ferryauth.All(), defaultPerms, &serverImpl{srv}, &p.Internal)
	rpc := jsonrpc.NewServer(jsonrpc.WithParamDecoder(new(io.Reader), func(ctx context.Context, b []byte) (reflect.Value, error) {
		return srv.streams.decode(ctx, b, srv.httpc)
	}))
	rpc.Register("Filecoin", &p)

	mux := http.NewServeMux()
	mux.Handle(APIPath, rpc)
	mux.HandleFunc(pushPath, srv.streams.serveHTTP)
	mux.HandleFunc("/remote/", srv.serveRemote)
	srv.handler = &auth.Handler{Verify: cfg.Verify, Next: mux.ServeHTTP}
	return srv, nil
}

// pushPath is where push streams' bytes go, beside APIPath.
const pushPath = "/rpc/streams/v0/push/"

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Close lets go of idle connections the server made for http reader
// parameters. Requests in flight end with the http.Server that runs them.
func (s *Server) Close() { s.httpc.CloseIdleConnections() }

// dealNamespace names, in sealing, the deals handed over this API: a deal
// gets the same UUID from its publish CID and deal ID on every call, so
// sealing's per-deal idempotence holds across calls and restarts.
var dealNamespace = uuid.MustParse("5e7c1b3a-6d0f-4f5e-9a41-0c2b8e7d9f10")

// DealUUID is the UUID a deal handed over this API has in sealing.
func DealUUID(publishCid cid.Cid, dealID abi.DealID) uuid.UUID {
	return uuid.NewSHA1(dealNamespace, []byte(publishCid.String()+"/"+strconv.FormatUint(uint64(dealID), 10)))
}

// DirectPieceUUID is the UUID a direct piece handed over this API has in
// sealing: from the allocation it claims and its piece, or, claiming none,
// from its piece and schedule.
func DirectPieceUUID(m *miner.PieceActivationManifest, sched DealSchedule) uuid.UUID {
	name := "direct/" + m.CID.String() + "/" + strconv.FormatUint(uint64(m.Size), 10)
	if k := m.VerifiedAllocationKey; k != nil {
		name += fmt.Sprintf("/allocation/%d/%d", k.Client, k.ID)
	} else {
		name += fmt.Sprintf("/schedule/%d/%d", sched.StartEpoch, sched.EndEpoch)
	}
	return uuid.NewSHA1(dealNamespace, []byte(name))
}

// serverImpl implements methods over the Server's sealing; the proxy in
// front of it checks permissions.
type serverImpl struct{ s *Server }

func (m *serverImpl) Version(ctx context.Context) (chain.APIVersion, error) {
	return chain.APIVersion{Version: m.s.cfg.Version, APIVersion: MinerAPIVersion}, nil
}

func (m *serverImpl) AuthVerify(ctx context.Context, token string) ([]auth.Permission, error) {
	return m.s.cfg.Verify(ctx, token)
}

func (m *serverImpl) ActorAddress(ctx context.Context) (address.Address, error) {
	return m.s.cfg.Miner, nil
}

func (m *serverImpl) ActorSectorSize(ctx context.Context, maddr address.Address) (abi.SectorSize, error) {
	if maddr != m.s.cfg.Miner {
		return 0, fmt.Errorf("miner %s is not sealed here (this is %s)", maddr, m.s.cfg.Miner)
	}
	return m.s.cfg.SectorSize, nil
}

func (m *serverImpl) SectorAddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, r io.Reader, d PieceDealInfo) (SectorOffset, error) {
	if c, ok := r.(io.Closer); ok {
		defer c.Close()
	}
	if err := d.Validate(); err != nil {
		return SectorOffset{}, fmt.Errorf("piece metadata invalid: %w", err)
	}
	var deal sealing.Deal
	if man := d.PieceActivationManifest; man != nil {
		deal = sealing.Deal{
			UUID:                    DirectPieceUUID(man, d.DealSchedule),
			DealSchedule:            sealing.DealSchedule{StartEpoch: d.DealSchedule.StartEpoch, EndEpoch: d.DealSchedule.EndEpoch},
			PieceActivationManifest: man,
			KeepUnsealed:            d.KeepUnsealed,
		}
	} else {
		if p := d.DealProposal.Provider; p.Protocol() == address.ID && p != m.s.cfg.Miner {
			return SectorOffset{}, fmt.Errorf("deal %d is with provider %s, not %s", d.DealID, p, m.s.cfg.Miner)
		}
		deal = sealing.Deal{
			UUID:         DealUUID(*d.PublishCid, d.DealID),
			DealID:       d.DealID,
			PublishCid:   *d.PublishCid,
			Proposal:     d.DealProposal,
			KeepUnsealed: d.KeepUnsealed,
		}
	}
	pl, err := m.s.seal.AddPieceToAny(ctx, size, &fullReader{r: r, want: int64(size)}, deal)
	if err != nil {
		return SectorOffset{}, fmt.Errorf("adding piece %s: %w", deal.PieceCID(), err)
	}
	return SectorOffset{Sector: pl.Sector, Offset: pl.Offset}, nil
}

// fullReader gives exactly want bytes of r: the body of
// SectorAddPieceToAny is the whole (zero-padded) piece. It fails when r
// ends early or holds more, and once it has want bytes it reads on to r's
// end, so a push stream is read to its EOF (and its POST answered 200)
// however much the consumer asks for.
type fullReader struct {
	r         io.Reader
	want, got int64
	eof       bool
}

func (f *fullReader) Read(p []byte) (int, error) {
	if f.eof {
		return 0, io.EOF
	}
	if rest := f.want - f.got; int64(len(p)) > rest {
		p = p[:rest]
	}
	var n int
	var err error
	if len(p) > 0 {
		n, err = f.r.Read(p)
		f.got += int64(n)
	}
	switch {
	case err == io.EOF && f.got < f.want:
		return n, fmt.Errorf("piece data ended after %d of its %d bytes: %w", f.got, f.want, io.ErrUnexpectedEOF)
	case err != nil && err != io.EOF:
		return n, err
	case f.got == f.want:
		var b [1]byte
		k, perr := io.ReadFull(f.r, b[:])
		switch {
		case k > 0:
			return n, fmt.Errorf("piece data is longer than its %d bytes", f.want)
		case perr != io.EOF:
			return n, perr
		}
		f.eof = true
	}
	return n, nil
}

func (m *serverImpl) SectorsStatus(ctx context.Context, n abi.SectorNumber, showOnChainInfo bool) (SectorInfo, error) {
	si, err := m.s.seal.Sector(ctx, n)
	if err != nil {
		return SectorInfo{}, err
	}
	return lotusSectorInfo(si), nil
}

// lotusSectorInfo is a sealing sector in Lotus' shape. Only written pieces
// are listed (Lotus lists a piece once AddPiece finished); offsets follow
// from the order and sizes, fillers included.
func lotusSectorInfo(si sealing.SectorInfo) SectorInfo {
	out := SectorInfo{
		SectorID:     si.Number,
		State:        si.State,
		CommD:        si.CommD,
		CommR:        si.CommR,
		Deals:        []abi.DealID{},
		Pieces:       []SectorPiece{},
		Ticket:       SealTicket{Epoch: si.TicketEpoch},
		Seed:         SealSeed{Epoch: si.SeedEpoch},
		PreCommitMsg: si.PreCommitMsg,
		CommitMsg:    si.CommitMsg,
		Retries:      uint64(max(si.Retries, 0)),
		LastErr:      si.LastError,
		Log:          []SectorLog{},
		SealProof:    si.SealProof,
	}
	for _, p := range si.Pieces {
		if !p.Written {
			continue
		}
		sp := SectorPiece{Piece: abi.PieceInfo{Size: p.Size, PieceCID: p.PieceCID}}
		var dealID abi.DealID
		if !p.Filler {
			dealID = p.DealID
			sp.DealInfo = &PieceDealInfo{
				PublishCid:              p.PublishCid,
				DealID:                  p.DealID,
				DealProposal:            p.Proposal,
				DealSchedule:            DealSchedule{StartEpoch: p.StartEpoch, EndEpoch: p.EndEpoch},
				PieceActivationManifest: p.Manifest,
				KeepUnsealed:            p.KeepUnsealed,
			}
		}
		out.Deals = append(out.Deals, dealID)
		out.Pieces = append(out.Pieces, sp)
	}
	out.DealWeight, out.VerifiedDealWeight, out.InitialPledge = big.Zero(), big.Zero(), big.Zero()
	return out
}

func (m *serverImpl) SectorsList(ctx context.Context) ([]abi.SectorNumber, error) {
	return m.sectorsIn(ctx, nil)
}

func (m *serverImpl) SectorsListInStates(ctx context.Context, states []SectorState) ([]abi.SectorNumber, error) {
	if len(states) == 0 {
		return []abi.SectorNumber{}, nil
	}
	return m.sectorsIn(ctx, states)
}

// sectorsIn lists the sectors in any of states, or all with nil states.
func (m *serverImpl) sectorsIn(ctx context.Context, states []SectorState) ([]abi.SectorNumber, error) {
	all, err := m.s.seal.Sectors(ctx)
	if err != nil {
		return nil, err
	}
	out := []abi.SectorNumber{}
	for _, si := range all {
		if states == nil || slices.Contains(states, si.State) {
			out = append(out, si.Number)
		}
	}
	return out, nil
}

func (m *serverImpl) SectorsSummary(ctx context.Context) (map[SectorState]int, error) {
	all, err := m.s.seal.Sectors(ctx)
	if err != nil {
		return nil, err
	}
	out := map[SectorState]int{}
	for _, si := range all {
		out[si.State]++
	}
	return out, nil
}

// ours returns the sector number of id if it is one of this miner's.
func (m *serverImpl) ours(id abi.SectorID) (abi.SectorNumber, error) {
	if id.Miner != m.s.minerID {
		return 0, fmt.Errorf("sector %s belongs to miner f0%d, not %s", SectorName(id), id.Miner, m.s.cfg.Miner)
	}
	return id.Number, nil
}

func (m *serverImpl) SectorsUnsealPiece(ctx context.Context, sector SectorRef, offset UnpaddedByteIndex, size abi.UnpaddedPieceSize, randomness abi.SealRandomness, commd *cid.Cid) error {
	n, err := m.ours(sector.ID)
	if err != nil {
		return err
	}
	if offset%127 != 0 {
		return fmt.Errorf("unsealing sector %d: unpadded offset %d is not a multiple of 127", n, offset)
	}
	if uint64(offset)+uint64(size) > uint64(abi.PaddedPieceSize(m.s.cfg.SectorSize).Unpadded()) {
		return fmt.Errorf("unsealing sector %d: range %d+%d is beyond the sector", n, offset, size)
	}
	si, err := m.s.seal.Sector(ctx, n)
	if err != nil {
		return err
	}
	if !si.Unsealed {
		return fmt.Errorf("sector %d has no unsealed copy, and ferryd's sealing cannot unseal a sealed replica: %w", n, sealing.ErrNoUnsealedCopy)
	}
	return nil // the unsealed copy exists: nothing to do
}

// storagePath describes the one storage path the server has.
func (m *serverImpl) storagePath() SectorStorageInfo {
	return SectorStorageInfo{ID: m.s.storage, BaseURLs: []string{m.s.cfg.RemoteURL}, Weight: 10,
		CanSeal: true, CanStore: true, Primary: true}
}

func (m *serverImpl) StorageFindSector(ctx context.Context, sector abi.SectorID, ft SectorFileType, ssize abi.SectorSize, allowFetch bool) ([]SectorStorageInfo, error) {
	out := []SectorStorageInfo{}
	if sector.Miner != m.s.minerID || ft&FTUnsealed == 0 {
		return out, nil // only unsealed copies of this miner's sectors are kept here
	}
	si, err := m.s.seal.Sector(ctx, sector.Number)
	if errors.Is(err, sealing.ErrUnknownSector) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	if si.Unsealed {
		p := m.storagePath()
		p.URLs = []string{m.s.cfg.RemoteURL + "/" + FTUnsealed.String() + "/" + SectorName(sector)}
		out = append(out, p)
	}
	return out, nil
}

func (m *serverImpl) StorageList(ctx context.Context) (map[StorageID][]Decl, error) {
	all, err := m.s.seal.Sectors(ctx)
	if err != nil {
		return nil, err
	}
	decls := []Decl{}
	for _, si := range all {
		if si.Unsealed {
			decls = append(decls, Decl{SectorID: abi.SectorID{Miner: m.s.minerID, Number: si.Number}, SectorFileType: FTUnsealed})
		}
	}
	return map[StorageID][]Decl{m.s.storage: decls}, nil
}

func (m *serverImpl) StorageInfo(ctx context.Context, id StorageID) (StorageInfo, error) {
	if id != m.s.storage {
		return StorageInfo{}, fmt.Errorf("storage path %s not found", id)
	}
	p := m.storagePath()
	return StorageInfo{ID: p.ID, URLs: p.BaseURLs, Weight: p.Weight, CanSeal: p.CanSeal, CanStore: p.CanStore}, nil
}

// serveRemote serves sector files as Lotus' /remote does, to admin tokens
// only: GET (or HEAD) /remote/unsealed/s-t0<miner>-<n> with Range, and
// /remote/unsealed/s-t0<miner>-<n>/<proof>/allocated/<offset>/<size>
// (unpadded): 200 when that range holds written pieces, 416 when not.
func (s *Server) serveRemote(w http.ResponseWriter, r *http.Request) {
	if !auth.HasPerm(r.Context(), nil, ferryauth.Admin) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(struct{ Error string }{"unauthorized: /remote needs an admin token"})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "sector files are read with GET", http.StatusMethodNotAllowed)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/remote/"), "/")
	if len(parts) != 2 && !(len(parts) == 6 && parts[3] == "allocated") {
		http.NotFound(w, r)
		return
	}
	if parts[0] != FTUnsealed.String() {
		http.Error(w, fmt.Sprintf("no %s sector files are kept here, only unsealed ones", parts[0]), http.StatusNotFound)
		return
	}
	id, err := ParseSectorName(parts[1])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	impl := &serverImpl{s}
	n, err := impl.ours(id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if len(parts) == 6 {
		s.serveAllocated(w, r, n, parts[4], parts[5])
		return
	}
	si, ok := s.sectorInfo(w, r, n)
	if !ok {
		return
	}
	if !si.Unsealed {
		http.Error(w, fmt.Sprintf("sector %d: %v", n, sealing.ErrNoUnsealedCopy), http.StatusNotFound)
		return
	}
	f, err := os.Open(filepath.Join(s.dir, FTUnsealed.String(), SectorName(abi.SectorID{Miner: s.minerID, Number: n})))
	if errors.Is(err, os.ErrNotExist) {
		http.Error(w, fmt.Sprintf("sector %d: its unsealed file is missing", n), http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, fmt.Sprintf("opening the unsealed file of sector %d: %v", n, err), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, f)
}

// sectorInfo reads sector n for a /remote request, answering 404 itself
// when sealing does not know it and 500 when it cannot be read.
func (s *Server) sectorInfo(w http.ResponseWriter, r *http.Request, n abi.SectorNumber) (sealing.SectorInfo, bool) {
	si, err := s.seal.Sector(r.Context(), n)
	if errors.Is(err, sealing.ErrUnknownSector) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return si, false
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return si, false
	}
	return si, true
}

func (s *Server) serveAllocated(w http.ResponseWriter, r *http.Request, n abi.SectorNumber, offS, sizeS string) {
	off, err1 := strconv.ParseUint(offS, 10, 64)
	size, err2 := strconv.ParseUint(sizeS, 10, 64)
	if err := errors.Join(err1, err2); err != nil || off%127 != 0 || size%127 != 0 {
		http.Error(w, fmt.Sprintf("allocated: offset and size must be unpadded byte counts, multiples of 127 (%q, %q)", offS, sizeS), http.StatusBadRequest)
		return
	}
	si, ok := s.sectorInfo(w, r, n)
	if !ok {
		return
	}
	start := abi.UnpaddedPieceSize(off).Padded()
	end := start + abi.UnpaddedPieceSize(size).Padded()
	if si.Unsealed && written(si.Pieces, start, end) {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
}

// written reports whether the written pieces cover padded bytes [start, end).
func written(pieces []sealing.SectorPiece, start, end abi.PaddedPieceSize) bool {
	at := start
	for _, p := range pieces { // in offset order
		if p.Offset > at {
			break
		}
		if p.Written && p.Offset+p.Size > at {
			at = p.Offset + p.Size
		}
		if at >= end {
			return true
		}
	}
	return at >= end
}
