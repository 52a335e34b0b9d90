package node

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/internal/carv1"
	"github.com/ferry-fil/ferry/ipni"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/piece"
)

// TestIndexerRemovePiece runs the end-of-deal removal over the real index
// and IPNI announcer: nothing while other deals want the piece announced,
// a removal ad once none does, the index entry once no deal holds it, and
// repeated calls are harmless.
func TestIndexerRemovePiece(t *testing.T) {
	ctx := context.Background()
	sqldb, err := db.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	idx := index.New(sqldb, nil)
	ann, err := ipni.New(sqldb, idx, ipni.Config{PrivKey: key,
		RetrievalAddrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/7777/http")}})
	if err != nil {
		t.Fatal(err)
	}
	defer ann.Close()

	var car bytes.Buffer
	for i := 0; i < 3; i++ {
		data := []byte{'b', byte(i)}
		mh, _ := multihash.Sum(data, multihash.SHA2_256, -1)
		c := cid.NewCidV1(cid.Raw, mh)
		if i == 0 {
			carv1.WriteHeader(&car, []cid.Cid{c})
		}
		carv1.WriteBlock(&car, c, data)
	}
	calc := piece.NewCalc()
	calc.Write(car.Bytes())
	comm, err := calc.Sum()
	if err != nil {
		t.Fatal(err)
	}
	pc := comm.CID()
	if _, err := idx.IndexCAR(ctx, pc, bytes.NewReader(car.Bytes())); err != nil {
		t.Fatal(err)
	}
	if _, err := ann.AnnouncePiece(ctx, pc); err != nil {
		t.Fatal(err)
	}

	ix := indexer{idx: idx, ann: ann}
	check := func(step string, wantAds int, wantRm, wantIndexed bool) {
		t.Helper()
		ads, err := ann.Ads(ctx)
		if err != nil {
			t.Fatal(err)
		}
		indexed, err := idx.IsIndexed(ctx, pc)
		if err != nil {
			t.Fatal(err)
		}
		if len(ads) != wantAds || ads[len(ads)-1].IsRm != wantRm || indexed != wantIndexed {
			t.Fatalf("%s: %d ads (last removal %t), indexed %t; want %d, %t, %t",
				step, len(ads), ads[len(ads)-1].IsRm, indexed, wantAds, wantRm, wantIndexed)
		}
	}
	req := market.RemoveRequest{IndexRequest: market.IndexRequest{PieceCID: pc}, EndReason: market.EndExpired}

	req.KeepIndex, req.KeepAnnounced = true, true
	if err := ix.RemovePiece(ctx, req); err != nil {
		t.Fatal(err)
	}
	check("other deals announce the piece", 1, false, true)

	req.KeepAnnounced = false
	if err := ix.RemovePiece(ctx, req); err != nil {
		t.Fatal(err)
	}
	check("other deals hold the piece unannounced", 2, true, true)

	req.KeepIndex = false
	for i := 0; i < 2; i++ {
		if err := ix.RemovePiece(ctx, req); err != nil {
			t.Fatalf("removal %d of a piece no longer announced: %v", i, err)
		}
		check("no deal holds the piece", 2, true, false)
	}
}

// oneBlockPiece makes a CAR of one raw block of data in a 256-byte piece:
// the block's CID, the piece CID, the CAR and the piece's unpadded bytes.
func oneBlockPiece(t *testing.T, data string) (c, pc cid.Cid, car *bytes.Buffer, full []byte) {
	t.Helper()
	mh, _ := multihash.Sum([]byte(data), multihash.SHA2_256, -1)
	c = cid.NewCidV1(cid.Raw, mh)
	car = new(bytes.Buffer)
	carv1.WriteHeader(car, []cid.Cid{c})
	carv1.WriteBlock(car, c, []byte(data))
	calc := piece.NewCalc()
	calc.Write(car.Bytes())
	comm, err := calc.SumAs(256)
	if err != nil {
		t.Fatal(err)
	}
	full = make([]byte, 254)
	copy(full, car.Bytes())
	return c, comm.CID(), car, full
}

type bytesPiece struct{ *bytes.Reader }

func (b bytesPiece) Close() error { return nil }

// TestIndexerRecordsPieceCIDv2: the pipeline's index step records the
// piece's sizes beside its CID v1, so the index shows its CID v2, and the
// operator API takes either CID.
func TestIndexerRecordsPieceCIDv2(t *testing.T) {
	ctx := context.Background()
	sqldb, err := db.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	c, pc, car, full := oneBlockPiece(t, "block")
	idx := index.New(sqldb, index.PieceSourceFunc(func(context.Context, cid.Cid) (index.PieceReader, error) {
		return bytesPiece{bytes.NewReader(full)}, nil
	}))
	ix := indexer{idx: idx}
	if err := ix.IndexAndAnnounce(ctx, market.IndexRequest{PieceCID: pc, PieceSize: 256, PayloadSize: uint64(car.Len())}); err != nil {
		t.Fatal(err)
	}
	v2, err := piece.V1ToV2(pc, uint64(car.Len()), 256)
	if err != nil {
		t.Fatal(err)
	}
	a := &nodeAPI{n: &Node{Index: idx}}
	for _, name := range []cid.Cid{pc, v2} {
		pi, err := a.IndexStatus(ctx, name)
		if err != nil || pi.PieceCID != pc.String() || pi.PieceCIDv2 != v2.String() || pi.RawSize != uint64(car.Len()) || pi.PieceSize != 256 {
			t.Fatalf("IndexStatus(%s) = %+v, %v", name, pi, err)
		}
	}
	if _, err := a.IndexStatus(ctx, c); err == nil {
		t.Fatal("IndexStatus took a CID that is not a piece's")
	}
}

// TestIndexerReadsDataItIsGiven: with the deal's data in the request, the
// index step reads the piece from it, not from the sector.
func TestIndexerReadsDataItIsGiven(t *testing.T) {
	ctx := context.Background()
	sqldb, err := db.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	c, pc, car, full := oneBlockPiece(t, "staged block")
	idx := index.New(sqldb, index.PieceSourceFunc(func(context.Context, cid.Cid) (index.PieceReader, error) {
		return nil, errors.New("the sector is not to be read")
	}))
	ix := indexer{idx: idx}
	req := market.IndexRequest{PieceCID: pc, PieceSize: 256, PayloadSize: uint64(car.Len())}
	if err := ix.IndexAndAnnounce(ctx, req); err == nil || !strings.Contains(err.Error(), "not to be read") {
		t.Fatalf("without data the sector was not read: %v", err)
	}
	req.Data = bytesPiece{bytes.NewReader(full)}
	if err := ix.IndexAndAnnounce(ctx, req); err != nil {
		t.Fatal(err)
	}
	locs, err := idx.PiecesContaining(ctx, c.Hash())
	if err != nil || len(locs) != 1 || !locs[0].PieceCID.Equals(pc) {
		t.Fatalf("block located in %+v, %v; want the piece", locs, err)
	}
	// Indexed once, the piece is not read again (a retry after a failed
	// announcement, another deal of the same piece).
	req.Data = nil
	if err := ix.IndexAndAnnounce(ctx, req); err != nil {
		t.Fatalf("an indexed piece was read again: %v", err)
	}
}
