package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	miner13 "github.com/filecoin-project/go-state-types/builtin/v13/miner"
	verifreg13 "github.com/filecoin-project/go-state-types/builtin/v13/verifreg"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/ipfs/go-cid"
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/wallet"
)

const mib = 1 << 20

// ddoNet is a devnet with an 8 MiB miner (owner and worker: the genesis
// key) served over JSON-RPC, and a funded client wallet with DataCap.
type ddoNet struct {
	t      *testing.T
	ctx    context.Context
	d      *devnet.Devnet
	n      chain.FullNode
	ep     Endpoint
	r      *Repo
	client address.Address
	maddr  address.Address
	seq    int
}

func newDDONet(t *testing.T, dataCap int64) *ddoNet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	d, err := devnet.Open(ctx, devnet.Config{Dir: filepath.Join(t.TempDir(), "devnet"), BlockTime: 5 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	tok, err := d.Token(auth.Read, auth.Write) // a client's token
	if err != nil {
		t.Fatal(err)
	}
	ep := Endpoint{URL: srv.URL + "/rpc/v1", Token: tok, Source: "test devnet"}
	n, closer, err := Dial(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closer)
	r, _, err := InitRepo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := r.Wallet.New(wallet.TypeSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	g := d.GenesisAddress()
	maddr, err := d.CreateMiner(ctx, g, g, 8<<20, []byte("peer"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Fund(ctx, cl, chain.FIL(10)); err != nil {
		t.Fatal(err)
	}
	e := &ddoNet{t: t, ctx: ctx, d: d, n: n, ep: ep, r: r, client: cl, maddr: maddr}
	if dataCap > 0 {
		mc, err := GrantDevnetDataCap(ctx, n, ep, cl, big.NewInt(dataCap))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := WaitMessage(ctx, n, mc); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// pieceCID makes a distinct piece CID for each call.
func (e *ddoNet) pieceCID() cid.Cid {
	e.seq++
	root := sha256.Sum256([]byte(fmt.Sprint("piece", e.seq)))
	root[31] &= 0x3f
	return piece.CIDv1(root)
}

// push sends a message from the genesis key (the miner's owner and worker)
// and waits for it.
func (e *ddoNet) push(to address.Address, method abi.MethodNum, params cbg.CBORMarshaler) *chain.MsgLookup {
	e.t.Helper()
	var buf bytes.Buffer
	if err := params.MarshalCBOR(&buf); err != nil {
		e.t.Fatal(err)
	}
	// The provider's side signs in the devnet, whose keys the client's
	// token may not use.
	sm, err := e.d.MpoolPushMessage(e.ctx, &chain.Message{From: e.d.GenesisAddress(), To: to, Method: method, Value: big.Zero(), Params: buf.Bytes()}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c, _ := sm.Cid()
	ml, err := WaitMessage(e.ctx, e.n, c)
	if err != nil {
		e.t.Fatal(err)
	}
	return ml
}

func TestAllocateAndClaimOnDevnet(t *testing.T) {
	e := newDDONet(t, 4*mib)
	if dc, err := e.n.StateVerifiedClientStatus(e.ctx, e.client, chain.EmptyTSK); err != nil || dc == nil || dc.Int64() != 4*mib {
		t.Fatalf("DataCap %v, %v", dc, err)
	}
	p1, p2 := e.pieceCID(), e.pieceCID()
	v2, err := piece.V1ToV2(p2, 2_000_000, 2*mib)
	if err != nil {
		t.Fatal(err)
	}
	reqs := []AllocationRequest{
		{Provider: e.maddr, PieceCID: p1, PieceSize: mib, TermMin: DefaultTermMin, TermMax: DefaultTermMax, Expiration: 1000},
		{Provider: e.maddr, PieceCID: v2, TermMin: DefaultTermMin, TermMax: DefaultTermMax, Expiration: 1000}, // v2: size from the CID
	}
	var sent []cid.Cid
	done, err := Allocate(e.ctx, e.n, e.r, e.client, reqs, 1, func(c cid.Cid) { sent = append(sent, c) })
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 2 || len(done) != 2 || done[0].ID != 1 || done[1].ID != 2 {
		t.Fatalf("%d messages, allocations %+v", len(sent), done)
	}
	if !done[1].Request.Data.Equals(p2) || done[1].Request.Size != 2*mib {
		t.Fatalf("the v2 piece was allocated as %s of %d bytes", done[1].Request.Data, done[1].Request.Size)
	}
	as, err := ListAllocations(e.ctx, e.n, e.client, nil)
	if err != nil || len(as) != 2 || as[0].PieceCID != p1.String() || as[0].Provider != e.maddr.String() || as[1].PieceSize != 2*mib {
		t.Fatalf("allocations %+v, %v", as, err)
	}
	if other, _ := ListAllocations(e.ctx, e.n, e.client, []address.Address{mustAddr(t, "f09999")}); len(other) != 0 {
		t.Fatalf("allocations for another provider: %+v", other)
	}
	if dc, _ := e.n.StateVerifiedClientStatus(e.ctx, e.client, chain.EmptyTSK); dc == nil || dc.Int64() != mib {
		t.Fatalf("DataCap left %v, want 1 MiB", dc)
	}

	// The provider seals both pieces in one sector: pre-commit without
	// deals, then prove it with the manifest, which claims the
	// allocations.
	clientID, _ := address.IDFromAddress(mustLookup(t, e, e.client))
	var pieces []miner13.PieceActivationManifest
	var infos []abi.PieceInfo
	for _, d := range done {
		pieces = append(pieces, miner13.PieceActivationManifest{CID: d.Request.Data, Size: d.Request.Size,
			VerifiedAllocationKey: &miner13.VerifiedAllocationKey{Client: abi.ActorID(clientID), ID: verifreg13.AllocationId(d.ID)},
			Notify:                []miner13.DataActivationNotification{}})
		infos = append(infos, abi.PieceInfo{PieceCID: d.Request.Data, Size: d.Request.Size})
	}
	commD, err := piece.CommD(8<<20, infos)
	if err != nil {
		t.Fatal(err)
	}
	root := sha256.Sum256([]byte("sealed"))
	root[31] &= 0x3f
	sealed, _ := commcid.ReplicaCommitmentV1ToCID(root[:])
	head, _ := e.n.ChainHead(e.ctx)
	e.push(e.maddr, builtin.MethodsMiner.PreCommitSectorBatch2, &miner13.PreCommitSectorBatchParams2{Sectors: []miner13.SectorPreCommitInfo{{
		SealProof: abi.RegisteredSealProof_StackedDrg8MiBV1_1, SectorNumber: 1, SealedCID: sealed, SealRandEpoch: head.Height() - 1,
		Expiration: head.Height() + 700_000, UnsealedCid: &commD,
	}}})
	pc, err := e.n.StateSectorPreCommitInfo(e.ctx, e.maddr, 1, chain.EmptyTSK)
	if err != nil || pc == nil {
		t.Fatalf("pre-commit %v, %v", pc, err)
	}
	if _, err := e.d.MineUntil(e.ctx, pc.PreCommitEpoch+e.d.Policy().PreCommitChallengeDelay+1); err != nil {
		t.Fatal(err)
	}
	ml := e.push(e.maddr, builtin.MethodsMiner.ProveCommitSectors3, &miner13.ProveCommitSectors3Params{
		SectorActivations: []miner13.SectorActivationManifest{{SectorNumber: 1, Pieces: pieces}},
		SectorProofs:      [][]byte{{1}}, AggregateProof: []byte{}, RequireActivationSuccess: true, RequireNotificationSuccess: true,
	})
	var ret miner13.ProveCommitSectors3Return
	if err := ret.UnmarshalCBOR(bytes.NewReader(ml.Receipt.Return)); err != nil || !ret.AllOk() || ret.SuccessCount != 1 {
		t.Fatalf("ProveCommitSectors3 return %+v, %v", ret, err)
	}

	if as, err := ListAllocations(e.ctx, e.n, e.client, nil); err != nil || len(as) != 0 {
		t.Fatalf("allocations after the claims: %+v, %v", as, err)
	}
	for _, provs := range [][]address.Address{nil, {e.maddr}} {
		cs, err := ListClaims(e.ctx, e.n, e.client, provs)
		if err != nil || len(cs) != 2 || cs[0].ClaimID != 1 || cs[1].ClaimID != 2 || cs[0].Sector != 1 || cs[1].PieceCID != p2.String() ||
			cs[0].Client != mustLookup(t, e, e.client).String() || cs[0].TermStart != ml.Height {
			t.Fatalf("claims (providers %v): %+v, %v", provs, cs, err)
		}
	}
	if c, err := e.n.StateGetClaim(e.ctx, e.maddr, 2, chain.EmptyTSK); err != nil || c == nil || c.Size != 2*mib {
		t.Fatalf("StateGetClaim: %+v, %v", c, err)
	}
}

func mustLookup(t *testing.T, e *ddoNet, a address.Address) address.Address {
	t.Helper()
	id, err := e.n.StateLookupID(e.ctx, a, chain.EmptyTSK)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestAllocateRefusals(t *testing.T) {
	e := newDDONet(t, 2*mib)
	nonce := func() uint64 {
		n, err := e.n.MpoolGetNonce(e.ctx, e.client)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	start := nonce()
	good := func() AllocationRequest {
		return AllocationRequest{Provider: e.maddr, PieceCID: e.pieceCID(), PieceSize: mib, TermMin: DefaultTermMin, TermMax: DefaultTermMax, Expiration: 100}
	}
	account := mustLookup(t, e, e.d.GenesisAddress())
	cases := []struct {
		name   string
		mutate func(r *AllocationRequest)
		more   int // extra good requests
		want   string
	}{
		{"more than the DataCap", func(r *AllocationRequest) {}, 2, "not enough DataCap"},
		{"piece too small", func(r *AllocationRequest) { r.PieceSize = mib / 2 }, 0, "at least 1048576 bytes"},
		{"not a padded size", func(r *AllocationRequest) { r.PieceSize = mib + 1 }, 0, "not a padded piece size"},
		{"piece larger than the sector", func(r *AllocationRequest) { r.PieceSize = 16 * mib }, 0, "does not fit"},
		{"not a piece CID", func(r *AllocationRequest) { r.PieceCID = mustCID(t, "bafkqaaa") }, 0, "piece"},
		{"term min too short", func(r *AllocationRequest) { r.TermMin = DefaultTermMin - 1 }, 0, "term min"},
		{"term max too long", func(r *AllocationRequest) { r.TermMax = DefaultTermMax + 1 }, 0, "term max"},
		{"term min above term max", func(r *AllocationRequest) { r.TermMin, r.TermMax = DefaultTermMin+2, DefaultTermMin+1 }, 0, "larger than term max"},
		{"no expiration", func(r *AllocationRequest) { r.Expiration = 0 }, 0, "expiration"},
		{"expiration beyond 60 days", func(r *AllocationRequest) { r.Expiration = DefaultAllocationExpiration + 1 }, 0, "expiration"},
		{"provider is not a miner", func(r *AllocationRequest) { r.Provider = account }, 0, "not a miner"},
		{"provider is not an ID address", func(r *AllocationRequest) { r.Provider = e.client }, 0, "not a miner ID address"},
		{"a v2 CID of another size", func(r *AllocationRequest) {
			v2, _ := piece.V1ToV2(r.PieceCID, 100, 2*mib)
			r.PieceCID = v2
		}, 0, "not 1048576"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := good()
			c.mutate(&r)
			reqs := []AllocationRequest{r}
			for i := 0; i < c.more; i++ {
				reqs = append(reqs, good())
			}
			_, err := Allocate(e.ctx, e.n, e.r, e.client, reqs, 0, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
			if nonce() != start {
				t.Fatal("a refused allocation sent a message")
			}
		})
	}
	_, err := Allocate(e.ctx, e.n, e.r, e.client, []AllocationRequest{good(), good(), good()}, 0, nil)
	if !errors.Is(err, ErrNotEnoughDataCap) {
		t.Fatalf("error %v, want ErrNotEnoughDataCap", err)
	}
	stranger, _ := e.r.Wallet.New(wallet.TypeSecp256k1)
	if err := e.d.Fund(e.ctx, stranger, chain.FIL(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := Allocate(e.ctx, e.n, e.r, stranger, []AllocationRequest{good()}, 0, nil); !errors.Is(err, ErrNotEnoughDataCap) || !strings.Contains(err.Error(), "not a verified client") {
		t.Fatalf("allocating without DataCap: %v", err)
	}
}

func mustCID(t *testing.T, s string) cid.Cid {
	t.Helper()
	c, err := cid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mainnet is a notary that says it is not the devnet.
type mainnet struct{ DevnetNotary }

func (mainnet) StateNetworkName(context.Context) (chain.NetworkName, error) { return "mainnet", nil }

func TestGrantDevnetDataCapRefusals(t *testing.T) {
	ctx := context.Background()
	if _, err := GrantDevnetDataCap(ctx, mainnet{}, Endpoint{URL: "http://127.0.0.1:1/rpc/v1"}, mustAddr(t, "f01000"), big.NewInt(mib)); !errors.Is(err, ErrNotDevnet) {
		t.Fatalf("on mainnet: %v", err)
	}
	e := newDDONet(t, 0)
	if _, err := GrantDevnetDataCap(ctx, e.n, e.ep, e.client, big.NewInt(mib-1)); err == nil || !strings.Contains(err.Error(), "minimum") {
		t.Fatalf("below 1 MiB: %v", err)
	}
	mc, err := GrantDevnetDataCap(ctx, e.n, e.ep, e.client, big.NewInt(3*mib))
	if err != nil {
		t.Fatal(err)
	}
	if ml, err := WaitMessage(e.ctx, e.n, mc); err != nil || ml.Receipt.ExitCode != exitcode.Ok {
		t.Fatalf("grant: %+v, %v", ml, err)
	}
	if dc, _ := e.n.StateVerifiedClientStatus(ctx, e.client, chain.EmptyTSK); dc == nil || dc.Int64() != 3*mib {
		t.Fatalf("DataCap %v", dc)
	}
}

func TestReadPieceFile(t *testing.T) {
	p := "baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi"
	reqs, err := ReadPieceFile(strings.NewReader("# pieces\n" + p + ",1048576,f01000,518400,600000,2880\n" + p + ", 2097152, f01001, 518400, 5256000, 100\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []AllocationRequest{
		{Provider: mustAddr(t, "f01000"), PieceCID: mustCID(t, p), PieceSize: mib, TermMin: 518400, TermMax: 600000, Expiration: 2880},
		{Provider: mustAddr(t, "f01001"), PieceCID: mustCID(t, p), PieceSize: 2 * mib, TermMin: 518400, TermMax: 5256000, Expiration: 100},
	}
	if len(reqs) != 2 || reqs[0] != want[0] || reqs[1] != want[1] {
		t.Fatalf("requests %+v, want %+v", reqs, want)
	}
	for _, bad := range []string{
		"",
		p + ",1048576,f01000,518400,600000\n",
		p + ",1048576,f01000,518400,600000,\n",
		p + ",lots,f01000,518400,600000,2880\n",
		"nocid,1048576,f01000,518400,600000,2880\n",
		p + ",1048576,nominer,518400,600000,2880\n",
		p + ",1048576,f01000,soon,600000,2880\n",
	} {
		if _, err := ReadPieceFile(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if c, s, err := ParsePieceInfo(p + "=1048576"); err != nil || c.String() != p || s != mib {
		t.Fatalf("ParsePieceInfo: %s %d %v", c, s, err)
	}
	for _, bad := range []string{p, p + "=", "x=1048576", p + "=-1"} {
		if _, _, err := ParsePieceInfo(bad); err == nil {
			t.Errorf("ParsePieceInfo(%q): no error", bad)
		}
	}
}

// FuzzNewAllocations feeds arbitrary receipt return bytes to the decoder
// of a DataCap transfer's allocation IDs: no panic, and an error or IDs.
func FuzzNewAllocations(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := NewAllocations(b)
		if err == nil && ids == nil && len(b) == 0 {
			t.Fatal("empty bytes decoded")
		}
	})
}

// FuzzReadPieceFile feeds arbitrary piece files to the CSV reader: no
// panic, and whatever it accepts is a list of pieces with defined CIDs.
func FuzzReadPieceFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		reqs, err := ReadPieceFile(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, r := range reqs {
			if !r.PieceCID.Defined() || r.Provider == address.Undef {
				t.Fatalf("accepted %+v", r)
			}
		}
	})
}
