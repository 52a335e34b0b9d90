package api

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/filecoin-project/go-jsonrpc"
	jsonrpcauth "github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/cluster"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/wire"
)

// EnvAPIInfo names the operator API to Dial instead of the repo's files:
// "<token>:<multiaddr>", as `ferryd auth api-info` prints it.
const EnvAPIInfo = "FERRY_API_INFO"

// Methods has one func field per Ferry method, tagged with the permission
// it needs. It is both the JSON-RPC client and the server's proxy.
type Methods struct {
	Info             func(ctx context.Context) (Info, error)                                         `perm:"read"`
	DealList         func(ctx context.Context, f market.DealFilter) ([]market.DealInfo, error)       `perm:"read"`
	DealShow         func(ctx context.Context, id uuid.UUID) (*market.DealDetail, error)             `perm:"read"`
	DealRetry        func(ctx context.Context, id uuid.UUID) error                                   `perm:"admin"`
	DealFail         func(ctx context.Context, id uuid.UUID) error                                   `perm:"admin"`
	DealCancel       func(ctx context.Context, id uuid.UUID) error                                   `perm:"admin"`
	DealImportData   func(ctx context.Context, id uuid.UUID, path string) error                      `perm:"admin"`
	DealImportDirect func(ctx context.Context, dd market.DirectDeal) (*market.DealInfo, error)       `perm:"admin"`
	PublishNow       func(ctx context.Context) error                                                 `perm:"admin"`
	AskGet           func(ctx context.Context) (*wire.SignedStorageAsk, error)                       `perm:"read"`
	AskSet           func(ctx context.Context, ask market.AskParams) (*wire.SignedStorageAsk, error) `perm:"admin"`
	SectorsList      func(ctx context.Context) ([]sealing.SectorInfo, error)                         `perm:"read"`
	SectorsStatus    func(ctx context.Context, n abi.SectorNumber) (sealing.SectorInfo, error)       `perm:"read"`
	IndexList        func(ctx context.Context) ([]PieceIndexInfo, error)                             `perm:"read"`
	IndexStatus      func(ctx context.Context, piece cid.Cid) (PieceIndexInfo, error)                `perm:"read"`
	IndexRebuild     func(ctx context.Context, piece cid.Cid) (int64, error)                         `perm:"admin"`
	IndexAnnounce    func(ctx context.Context, piece cid.Cid) (cid.Cid, error)                       `perm:"admin"`
	ClusterList      func(ctx context.Context) ([]cluster.NodeInfo, error)                           `perm:"read"`
	AuthNew          func(ctx context.Context, perms []auth.Permission) (string, error)              `perm:"admin"`
	ChainAuthNew     func(ctx context.Context, perms []auth.Permission) (string, error)              `perm:"admin"`

	Overview            func(ctx context.Context) (Overview, error)                      `perm:"read"`
	Transfers           func(ctx context.Context) ([]Transfer, error)                    `perm:"read"`
	PieceShow           func(ctx context.Context, piece cid.Cid) (PieceDetail, error)    `perm:"read"`
	PieceCheckRetrieval func(ctx context.Context, piece cid.Cid) (RetrievalCheck, error) `perm:"read"`
	ConfigShow          func(ctx context.Context) (string, error)                        `perm:"read"`
}

// Struct implements Ferry over its Methods.
type Struct struct {
	Internal Methods
}

var _ Ferry = (*Struct)(nil)

// Permissioned wraps an implementation so each method checks the caller's
// permissions, for registering with a JSON-RPC server behind
// auth.RequireToken. A call that reaches it without a token's permissions
// has none.
func Permissioned(impl Ferry) *Struct {
	var out Struct
	jsonrpcauth.PermissionedProxy(auth.All(), nil, impl, &out.Internal)
	return &out
}

// Dial connects to the ferryd whose repo is dir, reading its api and token
// files, or to the one FERRY_API_INFO names when it is set.
func Dial(ctx context.Context, dir string) (Ferry, jsonrpc.ClientCloser, error) {
	addr, token, err := Target(dir)
	if err != nil {
		return nil, nil, err
	}
	return dial(ctx, addr, token)
}

// Target returns the operator API Dial connects to: its multiaddr
// (/ip4/…/tcp/…/http) and token, from FERRY_API_INFO or the repo's api and
// token files.
func Target(dir string) (addr, token string, err error) {
	if info := os.Getenv(EnvAPIInfo); info != "" {
		addr, token, err := ParseAPIInfo(info)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", EnvAPIInfo, err)
		}
		return addr, token, nil
	}
	addrb, err := os.ReadFile(filepath.Join(dir, "api"))
	if err != nil {
		return "", "", fmt.Errorf("ferryd does not seem to be running with repo %s (no api file): start it with `ferryd run`", dir)
	}
	tokenb, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		return "", "", fmt.Errorf("reading ferryd's API token: %w", err)
	}
	return strings.TrimSpace(string(addrb)), strings.TrimSpace(string(tokenb)), nil
}

// ParseAPIInfo reads "<token>:<multiaddr>" (FERRY_API_INFO) into the
// operator API's multiaddr (/ip4/…/tcp/…/http) and token.
func ParseAPIInfo(info string) (addr, token string, err error) {
	token, addr, ok := strings.Cut(strings.TrimSpace(info), ":")
	if !ok || token == "" {
		return "", "", fmt.Errorf("API info is not <token>:<multiaddr>")
	}
	if _, err := hostPort(addr); err != nil {
		return "", "", err
	}
	return addr, token, nil
}

// hostPort is the host:port of the API's multiaddr.
func hostPort(addr string) (string, error) {
	m, err := ma.NewMultiaddr(addr)
	if err != nil {
		return "", fmt.Errorf("reading ferryd's API address %q: %w", addr, err)
	}
	if _, err := m.ValueForProtocol(ma.P_TCP); err != nil {
		return "", fmt.Errorf("ferryd's API address %q has no TCP port", addr)
	}
	_, hp, err := manet.DialArgs(m)
	if err != nil {
		return "", fmt.Errorf("reading ferryd's API address %q: %w", addr, err)
	}
	return hp, nil
}

func dial(ctx context.Context, addr, token string) (Ferry, jsonrpc.ClientCloser, error) {
	hostport, err := hostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	hdr := http.Header{"Authorization": []string{"Bearer " + token}}
	var s Struct
	closer, err := jsonrpc.NewMergeClient(ctx, "http://"+hostport+"/rpc/v0", "Ferry", []interface{}{&s.Internal}, hdr)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to ferryd at %s: %w", hostport, err)
	}
	return &s, closer, nil
}
