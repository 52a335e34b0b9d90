package ipni

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/internal/carv1"
	"github.com/ferry-fil/ferry/piece"
)

// TestAnnounceFromIndex announces a piece straight from the piece
// directory, reading its multihashes while the chunks are written to the
// same database.
func TestAnnounceFromIndex(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	idx := index.New(e.db, nil, index.WithBatchSize(100))
	a, err := New(e.db, idx, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	e.a = a

	var car bytes.Buffer
	var want []multihash.Multihash
	for i := 0; i < 1234; i++ {
		data := binary.LittleEndian.AppendUint32([]byte("block "), uint32(i))
		mh, _ := multihash.Sum(data, multihash.SHA2_256, -1)
		c := cid.NewCidV1(cid.Raw, mh)
		if i == 0 {
			carv1.WriteHeader(&car, []cid.Cid{c})
		}
		carv1.WriteBlock(&car, c, data)
		want = append(want, mh)
	}
	calc := piece.NewCalc()
	calc.Write(car.Bytes())
	comm, err := calc.Sum()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idx.IndexCAR(ctx, comm.CID(), bytes.NewReader(car.Bytes())); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AnnouncePiece(ctx, comm.CID()); err != nil {
		t.Fatal(err)
	}
	ads, entries := syncChain(t, e)
	if len(ads) != 1 || !sameSet(entries[0], want) {
		t.Fatalf("%d ads, %d entries", len(ads), len(entries[0]))
	}
}
