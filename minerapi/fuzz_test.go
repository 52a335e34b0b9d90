package minerapi

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"
)

// FuzzReaderParam feeds the server's decoder of reader parameters
// arbitrary JSON: it must give a reader or an error, never panic or hang.
func FuzzReaderParam(f *testing.F) {
	for _, s := range []string{
		`{"Type":"push","Info":"5d1a6a0e-8d5b-4d2c-9d3f-0e6c7b1a2f34"}`,
		`{"Type":"null","Info":"2032"}`,
		`{"Type":"http","Info":"http://127.0.0.1:1/piece"}`,
		`{"Type":"push","Info":"not-a-uuid"}`,
		`null`, `{}`, `[1]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		reg := newStreams()
		reg.wait = time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		v, err := reg.decode(ctx, b, nil)
		if err != nil {
			return
		}
		r, ok := v.Interface().(io.Reader)
		if !ok {
			t.Fatalf("decoded %T, not a reader", v.Interface())
		}
		var rs ReaderStream
		if json.Unmarshal(b, &rs) == nil && rs.Type == StreamNull {
			// Zeros, as many as asked (read at most a few).
			buf := make([]byte, 64)
			n, _ := io.ReadFull(r, buf)
			for _, c := range buf[:n] {
				if c != 0 {
					t.Fatal("a null reader gave a non-zero byte")
				}
			}
		}
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
		if n := reg.pending(); n != 0 {
			t.Fatalf("%d streams pending after the decode", n)
		}
	})
}

// FuzzPieceDealInfo feeds SectorAddPieceToAny arbitrary deal info (the
// JSON a market sends): refused with an error or placed, never a panic.
func FuzzPieceDealInfo(f *testing.F) {
	good, _ := json.Marshal(dealInfo(testDeal(7, 2048)))
	f.Add(good)
	for _, s := range []string{
		`{"PublishCid":null,"DealID":7,"DealProposal":null,"DealSchedule":{"StartEpoch":1,"EndEpoch":2},"PieceActivationManifest":null,"KeepUnsealed":false}`,
		`{"PieceActivationManifest":{"CID":{"/":"baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"},"Size":2048,"VerifiedAllocationKey":null,"Notify":null},"DealSchedule":{"StartEpoch":1,"EndEpoch":2}}`,
		`{"DealProposal":{"PieceSize":0}}`, `{}`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d PieceDealInfo
		if json.Unmarshal(b, &d) != nil {
			return
		}
		srv, err := NewServer(ServerConfig{Miner: testMiner, SectorSize: 2048, RemoteURL: "http://127.0.0.1:1/remote", Verify: verifyTestToken}, newFakeSealing(t, 2048))
		if err != nil {
			t.Fatal(err)
		}
		impl := &serverImpl{srv}
		off, err := impl.SectorAddPieceToAny(context.Background(), 2032, io.LimitReader(zeros{}, 2032), d)
		if err == nil && (d.Validate() != nil || off.Sector != 1) {
			t.Fatalf("accepted %s at %+v", b, off)
		}
	})
}
