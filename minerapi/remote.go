package minerapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/sealing"
)

// OpenPiece opens, for reading over the miner's /remote endpoint, the
// piece of padded size size at padded offset in the unsealed copy of
// sector (a sector of ssize bytes). It fails with sealing.ErrNoUnsealedCopy
// when no storage path has an unsealed copy, or the copy lacks the piece's
// bytes (Lotus' /remote/…/allocated says so; SectorsUnsealPiece makes
// them).
func (c *Client) OpenPiece(ctx context.Context, sector abi.SectorID, ssize abi.SectorSize, offset, size abi.PaddedPieceSize) (*PieceReader, error) {
	if err := piece.ValidatePadded(size); err != nil {
		return nil, fmt.Errorf("opening piece in sector %d: %w", sector.Number, err)
	}
	if offset%size != 0 || uint64(offset+size) > uint64(ssize) {
		return nil, fmt.Errorf("opening piece in sector %d: a %d-byte piece cannot be at offset %d of a %d-byte sector", sector.Number, size, offset, ssize)
	}
	paths, err := c.StorageFindSector(ctx, sector, FTUnsealed, ssize, false)
	if err != nil {
		return nil, fmt.Errorf("finding the unsealed copy of sector %d: %w", sector.Number, err)
	}
	var url string
	for _, p := range paths {
		if len(p.URLs) > 0 && (url == "" || p.Primary) {
			url = p.URLs[0]
		}
	}
	if url == "" {
		return nil, fmt.Errorf("sector %d: %w", sector.Number, sealing.ErrNoUnsealedCopy)
	}
	ok, err := c.allocated(ctx, url, ssize, offset, size)
	if err != nil {
		return nil, fmt.Errorf("checking that the unsealed copy of sector %d holds the piece: %w", sector.Number, err)
	}
	if !ok {
		return nil, fmt.Errorf("sector %d: its unsealed copy lacks the piece at %d: %w", sector.Number, offset, sealing.ErrNoUnsealedCopy)
	}
	return &PieceReader{c: c, ctx: ctx, url: url, offset: offset, size: int64(size.Unpadded())}, nil
}

// allocated asks the miner whether the sector file at url holds the padded
// range [offset, offset+size): GET <url>/<seal proof>/allocated/<unpadded
// offset>/<unpadded size>, 200 when it does, 416 when not.
func (c *Client) allocated(ctx context.Context, url string, ssize abi.SectorSize, offset, size abi.PaddedPieceSize) (bool, error) {
	proof, err := sealing.SealProofFor(ssize)
	if err != nil {
		return false, err
	}
	u := fmt.Sprintf("%s/%d/allocated/%d/%d", url, proof, offset.Unpadded(), size.Unpadded())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Errorf("asking %s: %w", u, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.httpc.Do(req)
	if err != nil {
		if errors.Is(err, ErrUnauthorized) {
			return false, fmt.Errorf("asking %s: %w", u, err)
		}
		return false, fmt.Errorf("asking %s: %w: %w", u, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusRequestedRangeNotSatisfiable:
		return false, nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return false, fmt.Errorf("asking %s: %s: %s", u, resp.Status, strings.TrimSpace(string(msg)))
}

// PieceReader reads a piece's unpadded bytes from a remote unsealed sector
// file: each ReadAt is one ranged GET of the fr32 quads it needs (token in
// Authorization), unpadded as it streams. It satisfies sealing.PieceReader
// and is safe for concurrent use; its context is OpenPiece's.
type PieceReader struct {
	c      *Client
	ctx    context.Context
	url    string
	offset abi.PaddedPieceSize
	size   int64
}

// Size is the unpadded piece size.
func (r *PieceReader) Size() int64 { return r.size }

// URL is the sector file read.
func (r *PieceReader) URL() string { return r.url }

// Close releases nothing: each read is its own request.
func (r *PieceReader) Close() error { return nil }

// ReadAt reads unpadded piece bytes at off.
func (r *PieceReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("reading piece at negative offset %d", off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.size-off)
	// The quads holding [off, off+n) end here, in the file.
	end := int64(r.offset) + (off+n+126)/127*128
	span := &httpSpan{c: r.c, ctx: r.ctx, url: r.url, end: end}
	defer span.close()
	got, err := io.ReadFull(piece.UnpadRange(span, r.offset, uint64(off), uint64(n)), p[:n])
	if err != nil {
		return got, fmt.Errorf("reading piece bytes from %s: %w", r.url, err)
	}
	if n < int64(len(p)) {
		return got, io.EOF
	}
	return got, nil
}

// httpSpan is an io.ReaderAt over bytes [.., end) of a remote file for one
// sequential reader: the first ReadAt opens a ranged GET up to end, the
// following ones read on from it (a jump opens a new one).
type httpSpan struct {
	c    *Client
	ctx  context.Context
	url  string
	end  int64
	body io.ReadCloser
	pos  int64
}

func (h *httpSpan) ReadAt(p []byte, off int64) (int, error) {
	if off >= h.end {
		return 0, io.EOF
	}
	if h.body == nil || off != h.pos {
		h.close()
		if err := h.open(off); err != nil {
			return 0, err
		}
	}
	want := min(int64(len(p)), h.end-off)
	n, err := io.ReadFull(h.body, p[:want])
	h.pos += int64(n)
	if err != nil {
		h.close()
		return n, fmt.Errorf("reading %s at %d: %w", h.url, off, err)
	}
	if want < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

func (h *httpSpan) open(off int64) error {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return fmt.Errorf("reading sector file: %w", err)
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, h.end-1))
	if h.c.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.c.token)
	}
	resp, err := h.c.httpc.Do(req)
	if err != nil {
		if errors.Is(err, ErrUnauthorized) {
			return fmt.Errorf("reading %s: %w", h.url, err)
		}
		return fmt.Errorf("reading %s: %w: %w", h.url, ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusPartialContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return fmt.Errorf("reading %s bytes %d-%d: %s: %s", h.url, off, h.end-1, resp.Status, strings.TrimSpace(string(msg)))
	}
	var start, last int64
	if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/", &start, &last); err != nil || start != off || last != h.end-1 {
		resp.Body.Close()
		return fmt.Errorf("reading %s: asked for bytes %d-%d, got Content-Range %q", h.url, off, h.end-1, resp.Header.Get("Content-Range"))
	}
	h.body, h.pos = resp.Body, off
	return nil
}

func (h *httpSpan) close() {
	if h.body != nil {
		h.body.Close()
		h.body = nil
	}
}
