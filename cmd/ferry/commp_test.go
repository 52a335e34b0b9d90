package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-fil/ferry/internal/cliutil/clitest"
)

func TestCommPCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "four")
	payload := append(append(append(bytes.Repeat([]byte{0}, 127), bytes.Repeat([]byte{1}, 127)...), bytes.Repeat([]byte{2}, 127)...), bytes.Repeat([]byte{3}, 127)...)
	if err := os.WriteFile(file, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runClient(t, "commp", "--json", file)
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "commp", []byte(out), "pieceCid", "pieceCidV2", "payloadSize", "pieceSize")
	var res commpResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	want := commpResult{
		PieceCID:    "baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi",
		PieceCIDv2:  "bafkzcibcaaces3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi",
		PayloadSize: 508, PieceSize: 512,
	}
	if res != want {
		t.Fatalf("got %+v, want %+v", res, want)
	}
	out, err = runClient(t, "commp", file)
	if err != nil || !strings.Contains(out, want.PieceCID) || !strings.Contains(out, "512 bytes") || strings.Contains(out, "Root CID") {
		t.Fatalf("text output %q, %v", out, err)
	}

	// A CAR file also reports its root.
	carFile := filepath.Join(dir, "x.car")
	car := []byte{
		0x3a, 0xa2, 0x65, 'r', 'o', 'o', 't', 's', 0x81, 0xd8, 0x2a, 0x58, 0x25, 0x00,
	}
	rootBytes := []byte{0x01, 0x55, 0x12, 0x20}
	rootBytes = append(rootBytes, bytes.Repeat([]byte{0xab}, 32)...)
	car = append(car, rootBytes...)
	car = append(car, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01)
	if err := os.WriteFile(carFile, car, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runClient(t, "commp", "--json", carFile)
	if err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "commp (a CAR)", []byte(out), "pieceCid", "pieceCidV2", "payloadSize", "pieceSize", "rootCid")
	res = commpResult{}
	json.Unmarshal([]byte(out), &res)
	if !strings.HasPrefix(res.RootCID, "bafkrei") || res.PayloadSize != uint64(len(car)) {
		t.Fatalf("CAR: %+v", res)
	}

	// Missing, empty and directory inputs fail with one line.
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	for _, bad := range [][]string{{"commp", filepath.Join(dir, "nope")}, {"commp", empty}, {"commp", dir}, {"commp"}} {
		if _, err := runClient(t, bad...); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v", bad, err)
		}
	}
}
