package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/market"
)

func TestParseAskValues(t *testing.T) {
	for in, want := range map[string]string{"50000000": "50000000", "0.5FIL": "500000000000000000", "1 fil": "1000000000000000000"} {
		got, err := parseAttoFIL(in)
		if err != nil || got.String() != want {
			t.Errorf("parseAttoFIL(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "x", "1.5"} {
		if _, err := parseAttoFIL(bad); err == nil {
			t.Errorf("parseAttoFIL(%q) accepted", bad)
		}
	}
	for in, want := range map[string]abi.PaddedPieceSize{"256B": 256, "2KiB": 2048, "32GiB": 32 << 30, "128": 128} {
		got, err := parsePieceSize(in)
		if err != nil || got != want {
			t.Errorf("parsePieceSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"3KiB", "0", "64B", "big"} {
		if _, err := parsePieceSize(bad); err == nil {
			t.Errorf("parsePieceSize(%q) accepted", bad)
		}
	}
}

func TestPrintDeals(t *testing.T) {
	var buf bytes.Buffer
	s := uint64(3)
	err := printDeals(&buf, []market.DealInfo{
		{UUID: "a", CreatedAt: time.Unix(0, 0), Checkpoint: market.AddedPiece, PieceSize: 2048, ChainDealID: 7, Sector: &s, SealingState: "WaitDeals"},
		{UUID: "b", CreatedAt: time.Unix(0, 0), Checkpoint: market.Accepted, Retry: market.RetryFatal, Error: "cancelled by the operator"},
		{UUID: "c", Kind: market.KindDirect, CreatedAt: time.Unix(0, 0), Checkpoint: market.Complete, AllocationID: 12},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"AddedPiece", "WaitDeals", "failed: cancelled by the operator", "2048", "direct", "allocation 12"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// A direct deal's detail shows its kind, both piece CIDs, its allocation
// and claim, and no chain deal.
func TestPrintDirectDeal(t *testing.T) {
	var buf bytes.Buffer
	printDeal(&buf, &market.DealDetail{DealInfo: market.DealInfo{UUID: "d", Kind: market.KindDirect, Checkpoint: market.Complete,
		PieceCID: "baga6", PieceCIDv2: "bafkzc", PieceSize: 2048, AllocationID: 12, ClaimID: 12}})
	out := buf.String()
	for _, want := range []string{"direct", "baga6", "bafkzc", "12 (claim: 12)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Chain deal ID") {
		t.Errorf("a direct deal shows a chain deal ID:\n%s", out)
	}
}

// A deal still downloading shows where from, and how many URLs are left.
func TestPrintDealDownloading(t *testing.T) {
	var buf bytes.Buffer
	printDeal(&buf, &market.DealDetail{DealInfo: market.DealInfo{UUID: "d", Kind: market.KindDirect, Checkpoint: market.Accepted,
		TransferSize: 100, BytesReceived: 40, TransferURL: "https://a.example/p.car?…", TransferFallbacks: 2}})
	if out := buf.String(); !strings.Contains(out, "Downloading from:") || !strings.Contains(out, "https://a.example/p.car?… (then 2 more)") {
		t.Errorf("output lacks the download's URL:\n%s", out)
	}
}
