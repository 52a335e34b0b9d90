package sealing

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	rle "github.com/filecoin-project/go-bitfield/rle"
	"github.com/filecoin-project/go-state-types/abi"
	"golang.org/x/sys/unix"
)

// sectorFile is what the sealing code needs of an unsealed sector file;
// *os.File has it. Tests wrap it to inject failures.
type sectorFile interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Close() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Fd() uintptr
}

// openFunc opens an unsealed sector file; Sealing.openFile defaults to
// osOpen and is replaced in tests.
type openFunc func(path string, flag int, perm os.FileMode) (sectorFile, error)

func osOpen(path string, flag int, perm os.FileMode) (sectorFile, error) {
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// span is a range of padded bytes in a sector.
type span struct {
	Offset abi.PaddedPieceSize
	Size   abi.PaddedPieceSize
}

// maxTrailer bounds the trailer we are willing to read: a sector's worth of
// alternating 128-byte runs stays far below it.
const maxTrailer = 64 << 20

// encodeTrailer returns the RLE+ bitfield of the padded bytes covered by
// spans, which may be in any order and may touch or overlap.
func encodeTrailer(spans []span) ([]byte, error) {
	s := append([]span(nil), spans...)
	sort.Slice(s, func(i, j int) bool { return s[i].Offset < s[j].Offset })
	var runs []rle.Run
	var pos uint64
	for _, sp := range s {
		start, end := uint64(sp.Offset), uint64(sp.Offset)+uint64(sp.Size)
		if sp.Size == 0 || end <= pos {
			continue
		}
		if start > pos {
			runs = append(runs, rle.Run{Val: false, Len: start - pos})
		} else if len(runs) > 0 {
			// touches or overlaps the previous true run: extend it
			runs[len(runs)-1].Len += end - pos
			pos = end
			continue
		}
		runs = append(runs, rle.Run{Val: true, Len: end - start})
		pos = end
	}
	b, err := rle.EncodeRuns(&rle.RunSliceIterator{Runs: runs}, nil)
	if err != nil {
		return nil, fmt.Errorf("encoding allocation bitfield: %w", err)
	}
	return b, nil
}

// decodeTrailer returns the allocated spans of an RLE+ trailer, checking
// that they lie within a sector of ssize bytes.
func decodeTrailer(b []byte, ssize abi.SectorSize) ([]span, error) {
	if len(b) == 0 {
		return nil, nil // Lotus writes an empty bitfield as zero bytes
	}
	bf, err := rle.FromBuf(b)
	if err != nil {
		return nil, fmt.Errorf("decoding allocation bitfield: %w", err)
	}
	it, err := bf.RunIterator()
	if err != nil {
		return nil, fmt.Errorf("decoding allocation bitfield: %w", err)
	}
	var out []span
	var pos uint64
	for it.HasNext() {
		r, err := it.NextRun()
		if err != nil {
			return nil, fmt.Errorf("decoding allocation bitfield: %w", err)
		}
		if r.Len > uint64(ssize) || pos+r.Len > uint64(ssize) {
			return nil, fmt.Errorf("allocation bitfield reaches past the %d-byte sector", ssize)
		}
		if r.Val {
			out = append(out, span{Offset: abi.PaddedPieceSize(pos), Size: abi.PaddedPieceSize(r.Len)})
		}
		pos += r.Len
	}
	return out, nil
}

// readAllocation reads the trailer of an unsealed file and returns its
// allocated spans.
func readAllocation(f sectorFile, ssize abi.SectorSize) ([]span, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat unsealed file: %w", err)
	}
	if st.Size() < int64(ssize)+4 {
		return nil, fmt.Errorf("unsealed file has %d bytes, fewer than the %d-byte sector and its trailer", st.Size(), ssize)
	}
	var l [4]byte
	if _, err := f.ReadAt(l[:], st.Size()-4); err != nil {
		return nil, fmt.Errorf("reading trailer length: %w", err)
	}
	tlen := int64(binary.LittleEndian.Uint32(l[:]))
	if tlen > maxTrailer || int64(ssize)+tlen+4 != st.Size() {
		return nil, fmt.Errorf("unsealed file has %d bytes, but a %d-byte sector and a %d-byte trailer make %d", st.Size(), ssize, tlen, int64(ssize)+tlen+4)
	}
	b := make([]byte, tlen)
	if _, err := f.ReadAt(b, int64(ssize)); err != nil {
		return nil, fmt.Errorf("reading trailer: %w", err)
	}
	return decodeTrailer(b, ssize)
}

// writeTrailer replaces the trailer with the bitfield of spans and cuts the
// file after it. It does not sync.
func writeTrailer(f sectorFile, ssize abi.SectorSize, spans []span) error {
	b, err := encodeTrailer(spans)
	if err != nil {
		return err
	}
	buf := binary.LittleEndian.AppendUint32(b, uint32(len(b)))
	if _, err := f.WriteAt(buf, int64(ssize)); err != nil {
		return fmt.Errorf("writing trailer: %w", err)
	}
	if err := f.Truncate(int64(ssize) + int64(len(buf))); err != nil {
		return fmt.Errorf("truncating after trailer: %w", err)
	}
	return nil
}

// zeroRange makes [off, off+n) of f read as zeros: it punches a hole where
// the file system can, keeping the file sparse, and writes zeros otherwise.
func zeroRange(f sectorFile, off, n int64) error {
	if n == 0 {
		return nil
	}
	{
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("punching hole at %d (+%d): %w", off, n, err)
		}
	}
	zeros := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:k], off); err != nil {
			return fmt.Errorf("zeroing at %d: %w", off, err)
		}
		off += k
		n -= k
	}
	return nil
}
