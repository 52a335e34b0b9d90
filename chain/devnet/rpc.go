package devnet

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/verifreg"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/lotus"
)

// MaxFund is the most one Fund call sends: 1,000,000 FIL.
func MaxFund() abi.TokenAmount { return chain.FIL(1_000_000) }

// Handler serves the Lotus full-node JSON-RPC API (chain.FullNode,
// namespace "Filecoin") and the devnet's own (lotus.Devnet, namespace
// "Devnet") at /rpc/v1, over HTTP POST and websocket (ChainNotify needs
// the websocket). Bearer tokens minted by Token carry the permissions; a
// request without a token may call the read methods, as on Lotus.
func (d *Devnet) Handler() http.Handler {
	rpc := jsonrpc.NewServer()
	rpc.Register("Filecoin", lotus.PermissionedFull(d))
	rpc.Register(lotus.DevnetNamespace, lotus.PermissionedDevnet(faucet{d}))
	mux := http.NewServeMux()
	mux.Handle("/rpc/v1", auth.OptionalToken(d.secret, rpc))
	return mux
}

// Token mints an API token for this devnet's Handler granting perms; none
// means all of them (an admin token).
func (d *Devnet) Token(perms ...auth.Permission) (string, error) {
	if len(perms) == 0 {
		perms = auth.All()
	}
	return auth.Mint(d.secret, perms...)
}

// faucet serves lotus.Devnet.
type faucet struct{ d *Devnet }

// Fund sends amount (at most MaxFund) from the genesis account to addr,
// without waiting: the faucet that clients, whose tokens may not sign with
// the genesis key, call with write permission.
func (f faucet) Fund(ctx context.Context, addr address.Address, amount abi.TokenAmount) (cid.Cid, error) {
	if amount.Nil() || amount.Sign() <= 0 || amount.GreaterThan(MaxFund()) {
		return cid.Undef, fmt.Errorf("funding %s: the amount must be more than 0 and at most %s", addr, chain.FormatFIL(MaxFund()))
	}
	c, err := f.d.Send(ctx, f.d.genesis, addr, amount)
	if err != nil {
		return cid.Undef, fmt.Errorf("funding %s from the genesis account: %w", addr, err)
	}
	return c, nil
}

// GrantDataCap makes addr a verified client with size more bytes of
// DataCap, without waiting: a real AddVerifiedClient message from the
// verified registry's root key, for clients whose tokens may not sign with
// it (write permission). The registry's own rules (the 1 MiB minimum) apply
// when it executes.
func (f faucet) GrantDataCap(ctx context.Context, addr address.Address, size abi.StoragePower) (cid.Cid, error) {
	if size.Nil() || size.Sign() <= 0 {
		return cid.Undef, fmt.Errorf("granting DataCap to %s: the size must be more than 0", addr)
	}
	var params bytes.Buffer
	p := verifreg.AddVerifiedClientParams{Address: addr, Allowance: size}
	if err := p.MarshalCBOR(&params); err != nil {
		return cid.Undef, fmt.Errorf("granting DataCap to %s: %w", addr, err)
	}
	sm, err := f.d.MpoolPushMessage(ctx, &chain.Message{
		From: f.d.root, To: idAddr(idVerifreg), Method: builtin.MethodsVerifiedRegistry.AddVerifiedClient, Value: big.Zero(), Params: params.Bytes(),
	}, nil)
	if err != nil {
		return cid.Undef, fmt.Errorf("granting DataCap to %s: %w", addr, err)
	}
	return sm.Cid()
}
