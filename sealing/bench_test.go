package sealing

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/piece"
)

const benchPiece = abi.PaddedPieceSize(64 << 20)

func benchPayload(b *testing.B) []byte {
	data := make([]byte, benchPiece.Unpadded())
	rand.New(rand.NewSource(1)).Read(data)
	return data
}

// BenchmarkAddPiece measures the fused AddPiece work: fr32 padding, the
// write into a sector file and CommP, in one pass (no fsync).
func BenchmarkAddPiece(b *testing.B) {
	data := benchPayload(b)
	var f sectorFile
	f, err := os.Create(filepath.Join(b.TempDir(), "unsealed"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var pw PieceWriter
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, err := pw.WritePadded(context.Background(), f, 0, benchPiece, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommPOnly is the reference: the plain CommP pass of `ferry commp`.
func BenchmarkCommPOnly(b *testing.B) {
	data := benchPayload(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		c := piece.NewCalc()
		if _, err := io.Copy(c, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if _, err := c.SumAs(benchPiece); err != nil {
			b.Fatal(err)
		}
	}
}

// discardSink is a piece.ChunkSink that lends aligned buffers, as the
// direct writer does, and writes nothing.
type discardSink struct{ free chan []byte }

func (s discardSink) Buffer() ([]byte, error) {
	select {
	case b := <-s.free:
		return b, nil
	default:
		return alignedBuffer(directBufSize), nil
	}
}

func (s discardSink) WriteChunk([]byte, uint64) error { return nil }
func (s discardSink) WriteZeros(uint64, uint64) error { return nil }

func (s discardSink) Release(b []byte) {
	select {
	case s.free <- b:
	default:
	}
}

// BenchmarkAddPieceNoDisk is AddPiece's pass without the device: fr32
// padding into lent buffers and CommP, the buffers handed over and
// dropped. Against BenchmarkCommPOnly it shows what the fused pass costs
// beyond the disk (nothing measurable on our VM).
func BenchmarkAddPieceNoDisk(b *testing.B) {
	data := benchPayload(b)
	sink := discardSink{free: make(chan []byte, directBuffers)}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		c := piece.NewCalcWithChunkSink(sink)
		if _, err := io.Copy(c, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if _, err := c.SumAs(benchPiece); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPieces are four different 64 MiB payloads and their pieces.
func benchPieces(b *testing.B) []testPiece {
	var ps []testPiece
	for i := range 4 {
		ps = append(ps, makePiece(b, int64(10+i), int(benchPiece.Unpadded()), benchPiece))
	}
	return ps
}

// BenchmarkAddPieceToAnyOneSector adds four 64 MiB pieces at once into one
// 512 MiB sector, where their writes take turns (synced, as AddPieceToAny
// always is).
func BenchmarkAddPieceToAnyOneSector(b *testing.B) {
	ps := benchPieces(b)
	b.SetBytes(int64(len(ps)) * int64(benchPiece.Unpadded()))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s := openTestSealing(b, b.TempDir(), Config{SectorSize: 512 << 20}, &fakeNode{height: 10})
		b.StartTimer()
		var results []<-chan addResult
		for _, p := range ps {
			results = append(results, addAsync(context.Background(), s, p, bytes.NewReader(p.data), dealFor(p, 10000)))
		}
		for _, ch := range results {
			if r := <-ch; r.err != nil || r.pl.Sector != 1 {
				b.Fatal(r.pl, r.err)
			}
		}
	}
}

// BenchmarkWritePaddedFourFiles is the same work with no turns: four 64 MiB
// pieces written at once, each into a file of its own, then synced.
func BenchmarkWritePaddedFourFiles(b *testing.B) {
	ps := benchPieces(b)
	b.SetBytes(int64(len(ps)) * int64(benchPiece.Unpadded()))
	b.ResetTimer()
	var pw PieceWriter
	for range b.N {
		dir := b.TempDir()
		errs := make(chan error, len(ps))
		for i, p := range ps {
			go func() {
				f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
				if err == nil {
					_, err = pw.WritePadded(context.Background(), f, 0, benchPiece, bytes.NewReader(p.data))
				}
				if err == nil {
					err = f.Sync()
				}
				if f != nil {
					f.Close()
				}
				errs <- err
			}()
		}
		for range ps {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
	}
}
