package minerapi

import (
	"context"
	"io"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"

	ferryauth "github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
)

// A caller with no token has read only, as with lotus-miner; an admin
// token (ferryauth.All) holds every permission.
var defaultPerms = []auth.Permission{ferryauth.Read}

// MinerAPIVersion is the API version lotus-miner v1.34 reports
// (api.MinerAPIVersion0, 1.5.0).
const MinerAPIVersion = 1<<16 | 5<<8

// methods has one func field per served method of lotus-miner's API
// (namespace Filecoin), with Lotus' name, parameters, results and
// permission. It is both the JSON-RPC client and the server's
// permission-checking proxy, so the two sides cannot disagree.
type methods struct {
	Version             func(ctx context.Context) (chain.APIVersion, error)                                                                                                    `perm:"read"`
	AuthVerify          func(ctx context.Context, token string) ([]auth.Permission, error)                                                                                     `perm:"read"`
	ActorAddress        func(ctx context.Context) (address.Address, error)                                                                                                     `perm:"read"`
	ActorSectorSize     func(ctx context.Context, maddr address.Address) (abi.SectorSize, error)                                                                               `perm:"read"`
	SectorAddPieceToAny func(ctx context.Context, size abi.UnpaddedPieceSize, r io.Reader, d PieceDealInfo) (SectorOffset, error)                                              `perm:"admin"`
	SectorsStatus       func(ctx context.Context, n abi.SectorNumber, showOnChainInfo bool) (SectorInfo, error)                                                                `perm:"read"`
	SectorsList         func(ctx context.Context) ([]abi.SectorNumber, error)                                                                                                  `perm:"read"`
	SectorsListInStates func(ctx context.Context, states []SectorState) ([]abi.SectorNumber, error)                                                                            `perm:"read"`
	SectorsSummary      func(ctx context.Context) (map[SectorState]int, error)                                                                                                 `perm:"read"`
	SectorsUnsealPiece  func(ctx context.Context, sector SectorRef, offset UnpaddedByteIndex, size abi.UnpaddedPieceSize, randomness abi.SealRandomness, commd *cid.Cid) error `perm:"admin"`
	StorageFindSector   func(ctx context.Context, sector abi.SectorID, ft SectorFileType, ssize abi.SectorSize, allowFetch bool) ([]SectorStorageInfo, error)                  `perm:"admin"`
	StorageList         func(ctx context.Context) (map[StorageID][]Decl, error)                                                                                                `perm:"admin"`
	StorageInfo         func(ctx context.Context, id StorageID) (StorageInfo, error)                                                                                           `perm:"admin"`
}

// proxy serves methods as Go methods, for registering with a JSON-RPC
// server; the client calls Internal directly.
type proxy struct{ Internal methods }

func (p *proxy) Version(ctx context.Context) (chain.APIVersion, error) {
	return p.Internal.Version(ctx)
}

func (p *proxy) AuthVerify(ctx context.Context, token string) ([]auth.Permission, error) {
	return p.Internal.AuthVerify(ctx, token)
}

func (p *proxy) ActorAddress(ctx context.Context) (address.Address, error) {
	return p.Internal.ActorAddress(ctx)
}

func (p *proxy) ActorSectorSize(ctx context.Context, maddr address.Address) (abi.SectorSize, error) {
	return p.Internal.ActorSectorSize(ctx, maddr)
}

func (p *proxy) SectorAddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, r io.Reader, d PieceDealInfo) (SectorOffset, error) {
	return p.Internal.SectorAddPieceToAny(ctx, size, r, d)
}

func (p *proxy) SectorsStatus(ctx context.Context, n abi.SectorNumber, showOnChainInfo bool) (SectorInfo, error) {
	return p.Internal.SectorsStatus(ctx, n, showOnChainInfo)
}

func (p *proxy) SectorsList(ctx context.Context) ([]abi.SectorNumber, error) {
	return p.Internal.SectorsList(ctx)
}

func (p *proxy) SectorsListInStates(ctx context.Context, states []SectorState) ([]abi.SectorNumber, error) {
	return p.Internal.SectorsListInStates(ctx, states)
}

func (p *proxy) SectorsSummary(ctx context.Context) (map[SectorState]int, error) {
	return p.Internal.SectorsSummary(ctx)
}

func (p *proxy) SectorsUnsealPiece(ctx context.Context, sector SectorRef, offset UnpaddedByteIndex, size abi.UnpaddedPieceSize, randomness abi.SealRandomness, commd *cid.Cid) error {
	return p.Internal.SectorsUnsealPiece(ctx, sector, offset, size, randomness, commd)
}

func (p *proxy) StorageFindSector(ctx context.Context, sector abi.SectorID, ft SectorFileType, ssize abi.SectorSize, allowFetch bool) ([]SectorStorageInfo, error) {
	return p.Internal.StorageFindSector(ctx, sector, ft, ssize, allowFetch)
}

func (p *proxy) StorageList(ctx context.Context) (map[StorageID][]Decl, error) {
	return p.Internal.StorageList(ctx)
}

func (p *proxy) StorageInfo(ctx context.Context, id StorageID) (StorageInfo, error) {
	return p.Internal.StorageInfo(ctx, id)
}
