// Package minerapi is both sides of the part of lotus-miner's API a
// storage market uses (the hand-off Boost makes): a Client and a Sealer
// for a market whose sealing runs in lotus-miner, and a Server through
// which ferryd's own sealing serves the same API, so that one ferryd (or
// Boost) can be the market of another ferryd's sealing.
//
// # What is served
//
// JSON-RPC 2.0 at /rpc/v0 (HTTP POST or websocket), namespace Filecoin,
// with Lotus v1.34's method names, parameters and JSON shapes (the types
// of this package mirror api.SectorInfo, piece.PieceDealInfo and
// storiface's; big integers are JSON strings and never null, CIDs are
// {"/": "…"}):
//
//	Version                                          read
//	AuthVerify(token) []permission                   read
//	ActorAddress() address                           read
//	ActorSectorSize(address) SectorSize              read
//	SectorsStatus(n, showOnChainInfo) SectorInfo     read
//	SectorsList() []n                                read
//	SectorsListInStates([]state) []n                 read
//	SectorsSummary() {state: count}                  read
//	SectorAddPieceToAny(size, reader, PieceDealInfo) admin  → {Sector, Offset}
//	SectorsUnsealPiece(SectorRef, offset, size, …)   admin
//	StorageFindSector(SectorID, type, ssize, fetch)  admin
//	StorageList() {storageID: []Decl}                admin
//	StorageInfo(storageID)                           admin
//
// SectorsStatus lists only pieces whose bytes are written, in sector
// order, fillers included (DealInfo null), so a piece's offset is the sum
// of the sizes before it; a deal's piece has its PublishCid, DealID and
// DealProposal, as lotus-miner shows them, so a market's lookup of its
// deals (see Never two copies) works the same against either. Deals has
// one entry per piece, 0 for fillers.
// Its on-chain fields (Activation, Expiration, the weights and pledge) are
// zero: the server has no chain (the big integers are "0", never null).
// SectorsUnsealPiece succeeds at once when the sector's unsealed copy
// exists and fails with a clear error otherwise (ferryd keeps no sealed
// replica to unseal from). StorageFindSector answers for unsealed files
// only, with URLs under ServerConfig.RemoteURL.
//
// # Reader parameters (Lotus' lib/rpcenc)
//
// SectorAddPieceToAny's data is a reader parameter, sent as
// {"Type":"push","Info":"<uuid>"}: its bytes go to
// /rpc/streams/v0/push/<uuid> beside /rpc/v0 (the client derives it as
// <api>/../streams/v0/push), Content-Type application/octet-stream. The
// client first sends HEAD, following 302 Location answers; the server
// answers it 200 when the call's reader first reads (then the client POSTs
// the body), or 204 when the reader was closed unread. A POST without a
// HEAD is accepted too, and is answered 200 once the reader has read the
// body to its end. The RPC request and the push requests run concurrently
// and either may come first: each side waits StreamWait (30 s) for the
// other. The body streams straight into sealing, so memory stays flat for
// any piece size. A reader is closed when its call ends, whatever
// happened, so a client's push is always answered. {"Type":"null","Info":
// "<n>"} is n zero bytes; {"Type":"http","Info":"<url>"} is fetched by the
// server (GET), only once the call reads it. The body must hold exactly
// the unpadded piece size in bytes (the payload, zero-filled); Client
// zero-fills a shorter payload and refuses a longer one before the last
// byte leaves.
//
// # Authorization (as lotus-miner's)
//
// A bearer token (Lotus' HS256 JWT, checked by ServerConfig.Verify) in
// Authorization, or ?token=. No token means read only: a write is refused
// with "missing permission to invoke 'SectorAddPieceToAny' (need
// 'admin')". A bad token is a bare HTTP 401 (go-jsonrpc's auth.Handler).
// The push route sits behind the same handler (no token passes: the
// stream's UUID is its capability). /remote/unsealed/s-t0<miner>-<n>
// (GET with Range: Lotus' partial file, fr32 data then its allocation
// trailer) and /remote/unsealed/s-t0<miner>-<n>/<proof>/allocated/<off>/<size>
// (200 when those unpadded bytes are written, 416 when not) need an admin
// token, as Lotus' /remote does.
//
// # Never two copies
//
// lotus-miner's SectorAddPieceToAny is not idempotent: it dedupes a deal
// only while the same deal is pending, so a retry after a crash or a
// timeout places the piece a second time (Boost #575). Sealer therefore
// records each hand-off (table minerapi_deals) and, before every call and
// again after any failed call, looks for the deal at the miner: in every
// sector holding pieces not yet active on chain (SectorsListInStates of
// the states from WaitDeals to FinalizeSector, SnapDeals' up to their
// activation, and the failure states they retry from; then SectorsStatus
// of each, newest first), then on chain (a deal active in a sector is
// found in the sector the chain names; a direct piece's claim names its
// sector). A piece matches by deal ID and piece CID, and publish CID when
// the miner reports one; a direct piece (FIP-0076), handed over with its
// PieceActivationManifest in PieceDealInfo as Lotus' market does, matches
// by its manifest: piece CID, size and allocation (a direct piece that
// claims no allocation, by piece and schedule, and only in open sectors:
// nothing on chain names it). A match is recorded and returned instead of
// a new hand-off. A deal already recorded as placed is returned without
// asking the miner. Server adds its own guard: a deal gets the same
// sealing UUID on every call, from its publish CID and deal ID (DealUUID)
// or from a direct piece's manifest (DirectPieceUUID), so ferryd's sealing
// places it once however often it is handed over; SectorsStatus lists a
// direct piece's manifest in its DealInfo.
//
// # Failures
//
// A miner that is down, restarting or unreachable gives errors wrapping
// ErrUnavailable: transient, the market retries with back-off. A refused
// token gives ErrUnauthorized. An error the miner answered is passed on
// with the method's name. Pieces are read back from the miner's unsealed
// copy over /remote (StorageFindSector, then ranged GETs with the API
// token) through the fr32 unpadding of package piece (PieceReader).
package minerapi
