package minerapi

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestExactReader: the push body is the payload zero-filled to the piece
// size, by Read and by WriteTo (which the HTTP transport uses); a payload
// longer than the piece fails before the last byte is given.
func TestExactReader(t *testing.T) {
	const size = 3<<20 + 5
	for _, payload := range []int{0, 1, 1 << 20, size - 1, size} {
		data := randomBytes(payload, int64(payload))
		want := make([]byte, size)
		copy(want, data)
		var got bytes.Buffer
		if n, err := io.Copy(&got, &exactReader{r: iotest.HalfReader(bytes.NewReader(data)), left: size, size: size}); err != nil || n != size || !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("payload %d, WriteTo: %d bytes, %v", payload, n, err)
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
	n, err = io.Copy(io.Discard, io.MultiReader(&exactReader{r: bytes.NewReader(long), left: size, size: size}))
	if !errors.As(err, &derr) || n >= size {
		t.Fatalf("a payload one byte too long, by Read: %d bytes given, %v", n, err)
	}
}
