package piece

import (
	"reflect"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
)

func abiPadded(n uint64) abi.PaddedPieceSize { return abi.PaddedPieceSize(n) }

func TestFillers(t *testing.T) {
	for _, c := range []struct {
		offset, size abi.PaddedPieceSize
		want         []abi.PaddedPieceSize
	}{
		{0, 1024, []abi.PaddedPieceSize{}},
		{128, 1024, []abi.PaddedPieceSize{128, 256, 512}},
		{256 << 20, 1 << 30, []abi.PaddedPieceSize{256 << 20, 512 << 20}},
		{384, 256, []abi.PaddedPieceSize{128}},
	} {
		if got := Fillers(c.offset, c.size); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Fillers(%d, %d) = %v, want %v", c.offset, c.size, got, c.want)
		}
	}
	if got := TailFillers(128, 2048); !reflect.DeepEqual(got, []abi.PaddedPieceSize{128, 256, 512, 1024}) {
		t.Errorf("TailFillers = %v", got)
	}
	if TailFillers(2048, 2048) != nil {
		t.Error("TailFillers of a full sector")
	}
}

func TestCommDEmpty(t *testing.T) {
	c, err := CommD(2048, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy"; c.String() != want {
		t.Fatalf("empty 2 KiB CommD %s, want %s", c, want)
	}
}

// TestCommDMainnet checks the CommD of mainnet sector f01392893:139074, whose
// pieces are listed in go-commp-utils' nonffi test.
func TestCommDMainnet(t *testing.T) {
	list := []struct {
		c    string
		size abi.PaddedPieceSize
	}{
		{"baga6ea4seaqknzm22isnhsxt2s4dnw45kfywmhenngqq3nc7jvecakoca6ksyhy", 256 << 20},
		{"baga6ea4seaqnq6o5wuewdpviyoafno4rdpqnokz6ghvg2iyeyfbqxgcwdlj2egi", 1024 << 20},
		{"baga6ea4seaqpixk4ifbkzato3huzycj6ty6gllqwanhdpsvxikawyl5bg2h44mq", 512 << 20},
		{"baga6ea4seaqaxwe5dy6nt3ko5tngtmzvpqxqikw5mdwfjqgaxfwtzenc6bgzajq", 512 << 20},
		{"baga6ea4seaqpy33nbesa4d6ot2ygeuy43y4t7amc4izt52mlotqenwcmn2kyaai", 1024 << 20},
		{"baga6ea4seaqphvv4x2s2v7ykgc3ugs2kkltbdeg7icxstklkrgqvv72m2v3i2aa", 256 << 20},
		{"baga6ea4seaqf5u55znk6jwhdsrhe37emzhmehiyvjxpsww274f6fiy3h4yctady", 512 << 20},
		{"baga6ea4seaqa3qbabsbmvk5er6rhsjzt74beplzgulthamm22jue4zgqcuszofi", 1024 << 20},
		{"baga6ea4seaqiekvf623muj6jpxg6vsqaikyw3r4ob5u7363z7zcaixqvfqsc2ji", 256 << 20},
		{"baga6ea4seaqhsewv65z2d4m5o4vo65vl5o6z4bcegdvgnusvlt7rao44gro36pi", 512 << 20},
	}
	var pieces []abi.PieceInfo
	for _, p := range list {
		pieces = append(pieces, abi.PieceInfo{PieceCID: cid.MustParse(p.c), Size: p.size})
	}
	got, err := CommD(32<<30, pieces)
	if err != nil {
		t.Fatal(err)
	}
	if want := "baga6ea4seaqiw3gbmstmexb7sqwkc5r23o3i7zcyx5kr76pfobpykes3af62kca"; got.String() != want {
		t.Fatalf("CommD %s, want %s", got, want)
	}
	// The same sector with the pieces given as CID v2 gives the same CommD.
	for i := range pieces {
		root, _ := ParseCID(pieces[i].PieceCID)
		pieces[i].PieceCID, _ = CIDv2(root, 0, pieces[i].Size)
	}
	if got2, err := CommD(32<<30, pieces); err != nil || got2 != got {
		t.Fatalf("CommD from v2 CIDs: %s %v", got2, err)
	}
}

func TestCommDErrors(t *testing.T) {
	z := CIDv1(ZeroCommitment(1024))
	for name, c := range map[string]struct {
		sector abi.PaddedPieceSize
		pieces []abi.PieceInfo
	}{
		"bad sector":   {3000, nil},
		"bad piece":    {2048, []abi.PieceInfo{{PieceCID: z, Size: 1000}}},
		"overflow":     {2048, []abi.PieceInfo{{PieceCID: z, Size: 1024}, {PieceCID: z, Size: 1024}, {PieceCID: z, Size: 128}}},
		"too big":      {2048, []abi.PieceInfo{{PieceCID: z, Size: 4096}}},
		"undef cid":    {2048, []abi.PieceInfo{{Size: 1024}}},
		"v2 size diff": {2048, []abi.PieceInfo{{PieceCID: mustV2(t, 256), Size: 1024}}},
	} {
		if _, err := CommD(c.sector, c.pieces); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// A piece after a smaller one is aligned with fillers.
	small := CIDv1(ZeroCommitment(128))
	got, err := CommD(2048, []abi.PieceInfo{{PieceCID: small, Size: 128}, {PieceCID: z, Size: 1024}})
	if err != nil || got != CIDv1(ZeroCommitment(2048)) {
		t.Fatalf("zero pieces with fillers: %s %v", got, err)
	}
}

func mustV2(t *testing.T, size abi.PaddedPieceSize) cid.Cid {
	c, err := CIDv2(ZeroCommitment(size), 0, size)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRaise(t *testing.T) {
	z, err := Raise(ZeroCommitment(128), 128, 32<<30)
	if err != nil || z != ZeroCommitment(32<<30) {
		t.Fatal("Raise of zeros")
	}
	if _, err := Raise(z, 1024, 512); err == nil {
		t.Fatal("Raise down accepted")
	}
	if _, err := Raise(z, 100, 512); err == nil {
		t.Fatal("Raise from a bad size accepted")
	}
}
