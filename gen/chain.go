package main

import (
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/ferry-fil/ferry/chain"
)

// genChain writes chain's tuple encoders, the encoding Lotus uses for
// chain objects. MessageReceipt is encoded by hand (chain/receipt.go)
// because Lotus accepts two versions of it.
func genChain() error {
	return cbg.WriteTupleEncodersToFile("chain/cbor_gen.go", "chain",
		chain.Message{},
		chain.SignedMessage{},
		chain.Ticket{},
		chain.ElectionProof{},
		chain.BeaconEntry{},
		chain.BlockHeader{},
	)
}
