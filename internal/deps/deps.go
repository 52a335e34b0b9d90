package main

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/filecoin-project/go-address"
	_ "github.com/filecoin-project/go-bitfield"
	_ "github.com/filecoin-project/go-crypto"
	_ "github.com/filecoin-project/go-fil-commcid"
	_ "github.com/filecoin-project/go-fil-commp-hashhash"
	_ "github.com/filecoin-project/go-jsonrpc"
	_ "github.com/filecoin-project/go-padreader"
	_ "github.com/filecoin-project/go-state-types/builtin/v9/market"
	_ "github.com/google/uuid"
	_ "github.com/ipfs/boxo/ipld/unixfs"
	_ "github.com/ipld/go-car/v2"
	_ "github.com/ipni/go-libipni/ingest/schema"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/libp2p/go-libp2p"
	_ "github.com/mattn/go-sqlite3"
	_ "github.com/pressly/goose/v3"
	_ "github.com/prysmaticlabs/gohashtree"
	_ "github.com/supranational/blst/bindings/go"
	_ "github.com/urfave/cli/v2"
	_ "github.com/whyrusleeping/cbor-gen"
	_ "golang.org/x/term"
)

func main() {}
