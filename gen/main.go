// Command gen writes the cbor-gen encoders of Ferry's CBOR types. Run it
// from the module root: `go run ./gen`.
package main

import (
	"fmt"
	"os"

	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/ferry-fil/ferry/wire"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	// chain: Lotus' chain objects, tuple encoded like Lotus'.
	if err := genChain(); err != nil {
		return fmt.Errorf("chain: %w", err)
	}
	// chain/devnet: the devnet's own actor types, tuple encoded like the
	// actors'.
	if err := genDevnet(); err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	// wire: Boost's storage-market messages, map encoded like Boost's.
	if err := cbg.WriteMapEncodersToFile("wire/types_cbor_gen.go", "wire",
		wire.DealParams{},
		wire.Transfer{},
		wire.DealResponse{},
		wire.DealStatusRequest{},
		wire.DealStatusResponse{},
		wire.DealStatus{},
		wire.StorageAsk{},
		wire.SignedStorageAsk{},
		wire.AskRequest{},
		wire.AskResponse{},
		wire.QueryResponse{},
		wire.Protocol{},
	); err != nil {
		return fmt.Errorf("wire: %w", err)
	}
	return nil
}
