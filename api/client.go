package api

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/filecoin-project/go-jsonrpc"
	"github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/ferry-fil/ferry/cluster"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/wire"
)

// Methods has one func field per Ferry method, tagged with the permission
// it needs. It is both the JSON-RPC client and the server's proxy.
type Methods struct {
	Info           func(ctx context.Context) (Info, error)                                         `perm:"read"`
	DealList       func(ctx context.Context, f market.DealFilter) ([]market.DealInfo, error)       `perm:"read"`
	DealShow       func(ctx context.Context, id uuid.UUID) (*market.DealDetail, error)             `perm:"read"`
	DealRetry      func(ctx context.Context, id uuid.UUID) error                                   `perm:"admin"`
	DealFail       func(ctx context.Context, id uuid.UUID) error                                   `perm:"admin"`
	DealCancel     func(ctx context.Context, id uuid.UUID) error                                   `perm:"admin"`
	DealImportData func(ctx context.Context, id uuid.UUID, path string) error                      `perm:"admin"`
	PublishNow     func(ctx context.Context) error                                                 `perm:"admin"`
	AskGet         func(ctx context.Context) (*wire.SignedStorageAsk, error)                       `perm:"read"`
	AskSet         func(ctx context.Context, ask market.AskParams) (*wire.SignedStorageAsk, error) `perm:"admin"`
	SectorsList    func(ctx context.Context) ([]sealing.SectorInfo, error)                         `perm:"read"`
	SectorsStatus  func(ctx context.Context, n abi.SectorNumber) (sealing.SectorInfo, error)       `perm:"read"`
	IndexList      func(ctx context.Context) ([]PieceIndexInfo, error)                             `perm:"read"`
	IndexStatus    func(ctx context.Context, piece cid.Cid) (PieceIndexInfo, error)                `perm:"read"`
	IndexRebuild   func(ctx context.Context, piece cid.Cid) (int64, error)                         `perm:"admin"`
	IndexAnnounce  func(ctx context.Context, piece cid.Cid) (cid.Cid, error)                       `perm:"admin"`
	ClusterList    func(ctx context.Context) ([]cluster.NodeInfo, error)                           `perm:"read"`
}

// Struct implements Ferry over its Methods.
type Struct struct {
	Internal Methods
}

var _ Ferry = (*Struct)(nil)

// Permissions the API knows; an admin token holds all of them.
var (
	AllPermissions     = []auth.Permission{"read", "write", "sign", "admin"}
	DefaultPermissions = []auth.Permission{"read"}
)

// Permissioned wraps an implementation so each method checks the caller's
// permissions, for registering with a JSON-RPC server.
func Permissioned(impl Ferry) *Struct {
	var out Struct
	auth.PermissionedProxy(AllPermissions, DefaultPermissions, impl, &out.Internal)
	return &out
}

// Dial connects to the ferryd whose repo is dir, reading its api and token
// files.
func Dial(ctx context.Context, dir string) (Ferry, jsonrpc.ClientCloser, error) {
	addrb, err := os.ReadFile(filepath.Join(dir, "api"))
	if err != nil {
		return nil, nil, fmt.Errorf("ferryd does not seem to be running with repo %s (no api file): start it with `ferryd run`", dir)
	}
	tokenb, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		return nil, nil, fmt.Errorf("reading ferryd's API token: %w", err)
	}
	m, err := ma.NewMultiaddr(strings.TrimSpace(string(addrb)))
	if err != nil {
		return nil, nil, fmt.Errorf("reading ferryd's API address: %w", err)
	}
	_, hostport, err := manet.DialArgs(m)
	if err != nil {
		return nil, nil, fmt.Errorf("reading ferryd's API address: %w", err)
	}
	hdr := http.Header{"Authorization": []string{"Bearer " + strings.TrimSpace(string(tokenb))}}
	var s Struct
	closer, err := jsonrpc.NewMergeClient(ctx, "http://"+hostport+"/rpc/v0", "Ferry", []interface{}{&s.Internal}, hdr)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to ferryd at %s: %w", hostport, err)
	}
	return &s, closer, nil
}
