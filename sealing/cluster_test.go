package sealing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
)

// Two nodes of a cluster on one database, each with its storage path: a
// node places pieces only in sectors of its own, leaves a deal placed in
// another node's sector to that node, reads back only its own unsealed
// copies and says who holds the others; sectors made before clusters go to
// the first node that starts sealing.
func TestSectorsBelongToTheirNode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sqldb, err := db.Open(ctx, dbtest.Source(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	if _, err := sqldb.ExecContext(ctx, `INSERT INTO sealing_sectors (number, state, seal_proof, opened_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		int64(7), string(StateProving), int64(0), int64(1), int64(1)); err != nil {
		t.Fatal(err)
	}
	node := &fakeNode{height: 10}
	open := func(id string) *Sealing {
		s, err := New(Config{Dir: filepath.Join(dir, id), SectorSize: 2 << 10, NodeID: id}, sqldb, node, nil, testMiner, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := open("a")
	b := open("b")
	var owner string
	if err := sqldb.QueryRowContext(ctx, `SELECT node FROM sealing_sectors WHERE number = ?`, int64(7)).Scan(&owner); err != nil || owner != "a" {
		t.Fatalf("sector made before clusters belongs to %q (%v), want a, the first to start", owner, err)
	}

	pa, pb := makePiece(t, 1, 500, 512), makePiece(t, 2, 500, 512)
	dA, dB := dealFor(pa, 10000), dealFor(pb, 10000)
	pla, err := a.AddPieceToAny(ctx, pa.size, bytes.NewReader(pa.data), dA)
	if err != nil {
		t.Fatal(err)
	}
	plb, err := b.AddPieceToAny(ctx, pb.size, bytes.NewReader(pb.data), dB)
	if err != nil {
		t.Fatal(err)
	}
	if pla.Sector == plb.Sector {
		t.Fatalf("nodes a and b placed pieces in one sector %d (a sector's file is on one node)", pla.Sector)
	}
	checkPayload(t, readBack(t, b, pb.cid), pb)
	if _, err := b.ReadPiece(ctx, pa.cid); !errors.Is(err, ErrNoUnsealedCopy) {
		t.Fatalf("b read a's piece from its own storage: %v", err)
	}
	if nodes, err := b.UnsealedElsewhere(ctx, pa.cid); err != nil || fmt.Sprint(nodes) != "[a]" {
		t.Fatalf("nodes holding a's piece: %v %v", nodes, err)
	}

	// A deal a reserved in its sector and has not written is a's to add.
	pc := makePiece(t, 3, 500, 512)
	dc := dealFor(pc, 10000)
	g := &gatedReader{r: bytes.NewReader(pc.data), open: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := a.AddPieceToAny(ctx, pc.size, g, dc)
		done <- err
	}()
	waitReserved(t, a, dc)
	var ee *ElsewhereError
	if _, err := b.AddPieceToAny(ctx, pc.size, bytes.NewReader(pc.data), dc); !errors.As(err, &ee) || ee.Node != "a" {
		t.Fatalf("b adding a deal placed on a: %v", err)
	}
	close(g.open)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Written, it is found by any node (AddPieceToAny is idempotent).
	if pl, err := b.AddPieceToAny(ctx, pc.size, bytes.NewReader(pc.data), dc); err != nil || pl.Sector != pla.Sector {
		t.Fatalf("b adding a deal a wrote: %+v %v", pl, err)
	}
}
