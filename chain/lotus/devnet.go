package lotus

import (
	"context"
	"fmt"
	"net/http"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc"
	jsonrpcauth "github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/auth"
)

// DevnetNamespace is the JSON-RPC namespace of what Ferry's devnet serves
// beside Lotus' API ("Filecoin"): what a devnet has and a Lotus node has
// not. A Lotus node answers its methods with "method not found".
const DevnetNamespace = "Devnet"

// Devnet is the devnet's own API.
type Devnet interface {
	// Fund sends amount from the devnet's genesis account to addr and
	// returns the message's CID: the faucet, for a client whose token may
	// not sign with the genesis key.
	Fund(ctx context.Context, addr address.Address, amount abi.TokenAmount) (cid.Cid, error)
	// GrantDataCap makes addr a verified client with size more bytes of
	// DataCap (AddVerifiedClient from the verified registry's root key,
	// which the devnet holds) and returns the message's CID: a notary for
	// clients whose token may not sign with the root key.
	GrantDataCap(ctx context.Context, addr address.Address, size abi.StoragePower) (cid.Cid, error)
}

// DevnetMethods has one function field per Devnet method, tagged with the
// permission it needs.
type DevnetMethods struct {
	Fund         func(ctx context.Context, addr address.Address, amount abi.TokenAmount) (cid.Cid, error) `perm:"write"`
	GrantDataCap func(ctx context.Context, addr address.Address, size abi.StoragePower) (cid.Cid, error)  `perm:"write"`
}

// DevnetStruct implements Devnet over DevnetMethods.
type DevnetStruct struct {
	Internal DevnetMethods
}

var _ Devnet = (*DevnetStruct)(nil)

// Fund calls Internal.Fund.
func (s *DevnetStruct) Fund(ctx context.Context, addr address.Address, amount abi.TokenAmount) (cid.Cid, error) {
	if s.Internal.Fund == nil {
		return cid.Undef, ErrNotSupported
	}
	return s.Internal.Fund(ctx, addr, amount)
}

// GrantDataCap calls Internal.GrantDataCap.
func (s *DevnetStruct) GrantDataCap(ctx context.Context, addr address.Address, size abi.StoragePower) (cid.Cid, error) {
	if s.Internal.GrantDataCap == nil {
		return cid.Undef, ErrNotSupported
	}
	return s.Internal.GrantDataCap(ctx, addr, size)
}

// PermissionedDevnet wraps d so that every method first checks the
// caller's permissions, for registering under DevnetNamespace.
func PermissionedDevnet(d Devnet) *DevnetStruct {
	var s DevnetStruct
	jsonrpcauth.PermissionedProxy(auth.All(), anonymous(), d, &s.Internal)
	return &s
}

// DialDevnet connects to the devnet namespace at url (as Dial does for
// Lotus' API).
func DialDevnet(ctx context.Context, url string, token string) (Devnet, jsonrpc.ClientCloser, error) {
	header := http.Header{}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	var s DevnetStruct
	closer, err := jsonrpc.NewMergeClient(ctx, url, DevnetNamespace, []any{&s.Internal}, header)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the devnet API at %s: %w", url, err)
	}
	return &s, closer, nil
}
