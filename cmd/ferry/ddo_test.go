package main

import (
	"bytes"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/internal/cliutil/clitest"
)

// TestDDOOutputKeys checks the keys of `ferry deal --ddo --json` and of
// `ferry deal-status --json` for an mk20 deal.
func TestDDOOutputKeys(t *testing.T) {
	var b bytes.Buffer
	out := ddoOutput{DealID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", URL: "http://127.0.0.1:9/x", AllocationID: 3, Message: "no", Status: "accepted"}
	if err := cliutil.WriteJSON(&b, out); err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "deal --ddo", b.Bytes(), "dealId", "provider", "clientWallet", "providerUrl", "pieceCid", "pieceCidV1",
		"pieceSize", "rawSize", "url", "uploaded", "startEpoch", "duration", "allocationId", "accepted", "message", "status")
	b.Reset()
	if err := cliutil.WriteJSON(&b, mk20StatusOutput{Error: "x"}); err != nil {
		t.Fatal(err)
	}
	clitest.CheckKeys(t, "deal-status (mk20)", b.Bytes(), "dealId", "provider", "clientWallet", "status", "error")
}

func TestIsULID(t *testing.T) {
	id := ulid.Make()
	if got, ok := isULID(id.String()); !ok || got != id {
		t.Fatal("a ULID is not taken")
	}
	for _, s := range []string{"6f5c4a7e-3a1b-4c2d-9e8f-0123456789ab", "", "01ARZ3NDEKTSV4RRFFQ69G5FA!", "81ARZ3NDEKTSV4RRFFQ69G5FAV"} {
		if _, ok := isULID(s); ok {
			t.Errorf("%q taken as a ULID", s)
		}
	}
}
