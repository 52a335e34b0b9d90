package main

import (
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/ferry-fil/ferry/chain/devnet"
)

// genDevnet writes the tuple encoders of the devnet's actor types that
// go-state-types does not have.
func genDevnet() error {
	return cbg.WriteTupleEncodersToFile("chain/devnet/types_cbor_gen.go", "devnet",
		devnet.FRC46TokenReceived{},
	)
}
