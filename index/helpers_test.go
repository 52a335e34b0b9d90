package index

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"math/rand"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
	"github.com/ferry-fil/ferry/internal/carv1"
	"github.com/ferry-fil/ferry/piece"
)

func openDB(t testing.TB) *sql.DB {
	t.Helper()
	sqldb, err := db.Open(context.Background(), dbtest.Source(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	return sqldb
}

type testBlock struct {
	c    cid.Cid
	data []byte
}

func rawCID(t testing.TB, data []byte) cid.Cid {
	h, err := multihash.Sum(data, multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

// makeCAR returns a CARv1 of n raw blocks of random sizes; its root is the
// first block.
func makeCAR(t testing.TB, n int, seed int64) ([]byte, []testBlock) {
	rng := rand.New(rand.NewSource(seed))
	var blocks []testBlock
	for i := 0; i < n; i++ {
		data := make([]byte, 4+rng.Intn(300))
		rng.Read(data)
		binary.LittleEndian.PutUint32(data, uint32(i)) // distinct
		blocks = append(blocks, testBlock{rawCID(t, data), data})
	}
	var buf bytes.Buffer
	if _, err := carv1.WriteHeader(&buf, []cid.Cid{blocks[0].c}); err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if _, err := carv1.WriteBlock(&buf, b.c, b.data); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes(), blocks
}

// pieceOf returns the piece CID of payload and the payload zero-filled to
// the unpadded piece size.
func pieceOf(t testing.TB, payload []byte) (cid.Cid, []byte) {
	calc := piece.NewCalc()
	calc.Write(payload)
	comm, err := calc.Sum()
	if err != nil {
		t.Fatal(err)
	}
	full := make([]byte, piece.UnpaddedSizeFor(uint64(len(payload))))
	copy(full, payload)
	return comm.CID(), full
}

// readSection reads the block at a section offset of payload.
func readSection(t testing.TB, payload []byte, off, size uint64) (cid.Cid, []byte) {
	t.Helper()
	r := bytes.NewReader(payload[off:])
	l, err := binary.ReadUvarint(r)
	if err != nil {
		t.Fatal(err)
	}
	_, c, err := cid.CidFromReader(r)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	if _, err := r.Read(data); err != nil && size > 0 {
		t.Fatal(err)
	}
	if uint64(c.ByteLen())+size != l {
		t.Fatalf("section length %d != cid %d + size %d", l, c.ByteLen(), size)
	}
	return c, data
}
