package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"

	"github.com/ferry-fil/ferry/internal/iocount"
	"github.com/ferry-fil/ferry/piece"
)

// ErrNotCAR is wrapped by InspectCAR's errors for files that are not valid
// CARs.
var ErrNotCAR = errors.New("not a valid CAR file")

// CARInfo is what a deal needs to know about a CAR file.
type CARInfo struct {
	// Root is the CAR's single root, the deal's payload CID.
	Root cid.Cid
	// Size is the file size in bytes (the transfer size).
	Size uint64
	// PieceCID is the piece commitment of the file (CommP, v1).
	PieceCID cid.Cid
	// PieceSize is the padded size of the piece holding the file.
	PieceSize abi.PaddedPieceSize
	// Blocks is the number of blocks in the CAR.
	Blocks int
}

// InspectCAR reads a CARv1 or CARv2 file once: it checks the header (one
// root), that every block hashes to its CID, and computes the piece
// commitment of the whole file's bytes. progress, when set, gets the bytes
// read so far.
func InspectCAR(ctx context.Context, path string, progress func(read int64)) (CARInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return CARInfo{}, fmt.Errorf("opening CAR: %w", err)
	}
	defer f.Close()
	calc := piece.NewCalc()
	var read atomic.Int64
	cr := iocount.ContextReader{Ctx: ctx, R: iocount.Reader{R: f, N: &read, Progress: progress}}
	// Everything the block reader reads goes through the CommP calculator.
	tee := bufio.NewReaderSize(io.TeeReader(cr, calc), 1<<20)
	br, err := carv2.NewBlockReader(tee, carv2.WithTrustedCAR(false))
	if err != nil {
		return CARInfo{}, fmt.Errorf("%s: %w: %v", path, ErrNotCAR, err)
	}
	if len(br.Roots) != 1 {
		return CARInfo{}, fmt.Errorf("%s: %w: it has %d roots, a deal needs exactly one", path, ErrNotCAR, len(br.Roots))
	}
	info := CARInfo{Root: br.Roots[0]}
	for {
		_, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return CARInfo{}, ctx.Err()
			}
			return CARInfo{}, fmt.Errorf("%s: %w: block %d: %v", path, ErrNotCAR, info.Blocks+1, err)
		}
		info.Blocks++
	}
	// A CARv2 has an index after the data: hash it too, the piece is the
	// whole file.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return CARInfo{}, fmt.Errorf("reading CAR: %w", err)
	}
	if read.Load() == 0 {
		return CARInfo{}, fmt.Errorf("%s: %w: empty file", path, ErrNotCAR)
	}
	c, err := calc.Sum()
	if err != nil {
		return CARInfo{}, fmt.Errorf("computing the piece commitment: %w", err)
	}
	info.Size = uint64(read.Load())
	info.PieceCID = c.CID()
	info.PieceSize = c.Size
	return info, nil
}

// PieceCIDFor returns the CAR's piece CID in a piece of padded size size
// (at least PieceSize): the commitment zero-extended as the market does
// for a padded piece.
func (i CARInfo) PieceCIDFor(size abi.PaddedPieceSize) (cid.Cid, error) {
	if size == i.PieceSize {
		return i.PieceCID, nil
	}
	if err := piece.ValidatePadded(size); err != nil {
		return cid.Undef, err
	}
	if size < i.PieceSize {
		return cid.Undef, fmt.Errorf("the %d-byte CAR needs a piece of at least %d bytes, not %d", i.Size, i.PieceSize, size)
	}
	root, err := piece.ParseCID(i.PieceCID)
	if err != nil {
		return cid.Undef, err
	}
	raised, err := piece.Raise(root, i.PieceSize, size)
	if err != nil {
		return cid.Undef, fmt.Errorf("extending the piece to %d bytes: %w", size, err)
	}
	return piece.CIDv1(raised), nil
}
