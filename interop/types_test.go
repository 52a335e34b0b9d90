package interop

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v13/miner"

	lpiece "github.com/filecoin-project/lotus/storage/pipeline/piece"
	"github.com/filecoin-project/lotus/storage/sealer/storiface"

	"github.com/ferry-fil/ferry/minerapi"
)

// sameJSON checks that ferry's value, decoded into Lotus' type and
// encoded again, gives the very same JSON: same names, order and shapes.
func sameJSON(t *testing.T, name string, ferry, lotus any) {
	t.Helper()
	fb, err := json.Marshal(ferry)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fb, lotus); err != nil {
		t.Fatalf("%s: Lotus' type cannot decode ferry's JSON: %v\n%s", name, err, fb)
	}
	lb, err := json.Marshal(lotus)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fb, lb) {
		t.Fatalf("%s differs:\nferry %s\nlotus %s", name, fb, lb)
	}
}

func TestTypesMatchLotus(t *testing.T) {
	p := makePiece(t, 1, 100, 128)
	ld := lotusDealInfo(p, 7)
	sameJSON(t, "PieceDealInfo", ferryDeal(ld), new(lpiece.PieceDealInfo))
	ddo := minerapi.PieceDealInfo{
		DealSchedule: minerapi.DealSchedule{StartEpoch: 5, EndEpoch: 9},
		PieceActivationManifest: &miner.PieceActivationManifest{CID: p.cid, Size: 128,
			VerifiedAllocationKey: &miner.VerifiedAllocationKey{Client: 1001, ID: 3},
			Notify:                []miner.DataActivationNotification{{Address: testMiner, Payload: []byte{1, 2}}}},
	}
	sameJSON(t, "PieceDealInfo (DDO)", ddo, new(lpiece.PieceDealInfo))

	sameJSON(t, "SectorStorageInfo", minerapi.SectorStorageInfo{ID: "abc", URLs: []string{"http://a/remote/unsealed/s-t01000-1"},
		BaseURLs: []string{"http://a/remote"}, Weight: 10, CanSeal: true, CanStore: true, Primary: true,
		AllowTypes: []string{"unsealed"}, DenyTypes: []string{"sealed"}, AllowMiners: []string{"f01000"}, DenyMiners: []string{"f02000"}},
		new(storiface.SectorStorageInfo))
	sameJSON(t, "StorageInfo", minerapi.StorageInfo{ID: "abc", URLs: []string{"http://a/remote"}, Weight: 10, MaxStorage: 1 << 40,
		CanSeal: true, CanStore: true, Groups: []string{"g"}, AllowTo: []string{"h"}, AllowTypes: []string{"unsealed"},
		DenyTypes: []string{"cache"}, AllowMiners: []string{"f01000"}, DenyMiners: []string{"f02000"}}, new(storiface.StorageInfo))
	sameJSON(t, "Decl", map[minerapi.StorageID][]minerapi.Decl{"abc": {{SectorID: abi.SectorID{Miner: 1000, Number: 5}, SectorFileType: minerapi.FTUnsealed | minerapi.FTCache}}},
		&map[storiface.ID][]storiface.Decl{})
	sameJSON(t, "SectorRef", minerapi.SectorRef{ID: abi.SectorID{Miner: 1000, Number: 5}, ProofType: abi.RegisteredSealProof_StackedDrg32GiBV1_1}, new(storiface.SectorRef))

	kinds := map[minerapi.SectorFileType]storiface.SectorFileType{
		minerapi.FTUnsealed: storiface.FTUnsealed, minerapi.FTSealed: storiface.FTSealed, minerapi.FTCache: storiface.FTCache,
		minerapi.FTUpdate: storiface.FTUpdate, minerapi.FTUpdateCache: storiface.FTUpdateCache, minerapi.FTPiece: storiface.FTPiece,
	}
	for f, l := range kinds {
		if int(f) != int(l) || f.String() != l.String() {
			t.Errorf("file type %d %q, Lotus %d %q", f, f, l, l)
		}
	}
	id := abi.SectorID{Miner: 1000, Number: 42}
	if minerapi.SectorName(id) != storiface.SectorName(id) {
		t.Errorf("sector name %s, Lotus %s", minerapi.SectorName(id), storiface.SectorName(id))
	}
}
