package cliutil

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ferry-fil/ferry/wire"
)

// Ask is a storage ask as `ferry provider ask` and `ferryd ask get|set`
// print it. Prices are attoFIL per GiB per epoch, sizes padded bytes.
type Ask struct {
	Miner         string `json:"miner"`
	Price         string `json:"price"`
	VerifiedPrice string `json:"verifiedPrice"`
	MinPieceSize  uint64 `json:"minPieceSize"`
	MaxPieceSize  uint64 `json:"maxPieceSize"`
	Timestamp     int64  `json:"timestamp"` // the epoch the ask was made at
	Expiry        int64  `json:"expiry"`    // the last epoch it is valid at
	SeqNo         uint64 `json:"seqNo"`
}

// NewAsk is the printed form of a.
func NewAsk(a *wire.StorageAsk) Ask {
	return Ask{
		Miner: a.Miner.String(), Price: a.Price.String(), VerifiedPrice: a.VerifiedPrice.String(),
		MinPieceSize: uint64(a.MinPieceSize), MaxPieceSize: uint64(a.MaxPieceSize),
		Timestamp: int64(a.Timestamp), Expiry: int64(a.Expiry), SeqNo: a.SeqNo,
	}
}

// WriteText writes the ask for people.
func (a Ask) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Miner:\t%s\n", a.Miner)
	fmt.Fprintf(tw, "Price:\t%s attoFIL/GiB/epoch\n", a.Price)
	fmt.Fprintf(tw, "Verified price:\t%s attoFIL/GiB/epoch\n", a.VerifiedPrice)
	fmt.Fprintf(tw, "Piece sizes:\t%s to %s\n", HumanBytes(int64(a.MinPieceSize)), HumanBytes(int64(a.MaxPieceSize)))
	fmt.Fprintf(tw, "Valid:\tepochs %d to %d (seq %d)\n", a.Timestamp, a.Expiry, a.SeqNo)
	tw.Flush()
}
