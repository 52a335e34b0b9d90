package devnet

import (
	"context"
	"net/http"

	"github.com/filecoin-project/go-jsonrpc"
	"github.com/filecoin-project/go-jsonrpc/auth"

	"github.com/ferry-fil/ferry/chain/lotus"
)

// Handler serves the Lotus full-node JSON-RPC API (chain.FullNode) at
// /rpc/v1 (HTTP POST and websocket, namespace "Filecoin"; ChainNotify
// needs the websocket). Bearer tokens minted by Token carry
// the permissions; a request without a token may call the read methods, as
// on Lotus.
func (d *Devnet) Handler() http.Handler {
	rpc := jsonrpc.NewServer()
	rpc.Register("Filecoin", lotus.PermissionedFull(d))
	mux := http.NewServeMux()
	mux.Handle("/rpc/v1", &auth.Handler{
		Verify: func(ctx context.Context, token string) ([]auth.Permission, error) {
			return VerifyToken(d.secret, token)
		},
		Next: rpc.ServeHTTP,
	})
	return mux
}

// Token mints an API token for this devnet's Handler granting perms
// ("read", "write", "sign", "admin"); none means all of them.
func (d *Devnet) Token(perms ...auth.Permission) (string, error) {
	if len(perms) == 0 {
		perms = lotus.AllPermissions
	}
	return MintToken(d.secret, perms...)
}
