package minerapi

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestExactReader: the push body is the payload zero-filled to the piece
// size; a payload longer than the piece fails before the last byte is
// given.
func TestExactReader(t *testing.T) {
	const size = 3<<20 + 5
	for _, payload := range []int{0, 1, 1 << 20, size - 1, size} {
		data := randomBytes(payload, int64(payload))
		want := make([]byte, size)
		copy(want, data)
		var got bytes.Buffer
		if n, err := io.Copy(&got, &exactReader{r: iotest.HalfReader(bytes.NewReader(data)), left: size, size: size}); err != nil || n != size || !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("payload %d, copied: %d bytes, %v", payload, n, err)
		}
		if err := iotest.TestReader(&exactReader{r: bytes.NewReader(data), left: size, size: size}, want); err != nil {
			t.Fatalf("payload %d, Read: %v", payload, err)
		}
	}
	long := randomBytes(size+1, 1)
	var got bytes.Buffer
	n, err := io.Copy(&got, &exactReader{r: bytes.NewReader(long), left: size, size: size})
	var derr *dataError
	if !errors.As(err, &derr) || n >= size {
		t.Fatalf("a payload one byte too long: %d bytes given, %v", n, err)
	}
}

// eofSeen records whether a read of r returned io.EOF.
type eofSeen struct {
	r   io.Reader
	eof bool
}

func (e *eofSeen) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.eof = true
	}
	return n, err
}

// TestFullReader: the server takes exactly the piece's bytes, and reads
// the push body on to its end even when the consumer stops at the last
// byte (a chunked body's end comes in a read of its own), so the stream
// ends cleanly and its POST is answered 200.
func TestFullReader(t *testing.T) {
	data := randomBytes(2032, 1)
	src := &eofSeen{r: iotest.OneByteReader(bytes.NewReader(data))}
	got := make([]byte, 2032)
	if _, err := io.ReadFull(&fullReader{r: src, want: 2032}, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading exactly the piece: %v", err)
	}
	if !src.eof {
		t.Fatal("the body was not read to its end")
	}
	if _, err := io.ReadAll(&fullReader{r: bytes.NewReader(data[:2000]), want: 2032}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a short body: %v", err)
	}
	if _, err := io.ReadAll(&fullReader{r: bytes.NewReader(append(data, 1)), want: 2032}); err == nil {
		t.Fatal("a body one byte too long was taken")
	}
}
