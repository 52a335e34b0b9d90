package piece

import (
	"bytes"
	"errors"
	"io"
	"math/big"
	"testing"
	"testing/iotest"
)

// padBits is a bit-by-bit Fr32 straight from the definition, to check Pad.
func padBits(in []byte) []byte {
	out := make([]byte, len(in)/127*128)
	for q := 0; q < len(in)/127; q++ {
		src, dst := in[q*127:], out[q*128:]
		for j := 0; j < 4; j++ {
			for b := 0; b < 254; b++ {
				ib := 254*j + b
				if src[ib/8]>>(ib%8)&1 == 1 {
					ob := 256*j + b
					dst[ob/8] |= 1 << (ob % 8)
				}
			}
		}
	}
	return out
}

func TestPadVector(t *testing.T) {
	in := bytes.Repeat([]byte{0xFF}, 127)
	out := make([]byte, 128)
	Pad(out, in)
	want := bytes.Repeat(append(bytes.Repeat([]byte{0xFF}, 31), 0x3F), 4)
	if !bytes.Equal(out, want) {
		t.Fatalf("fr32(0xFF×127) = %x", out)
	}
	back := make([]byte, 127)
	Unpad(back, out)
	if !bytes.Equal(back, in) {
		t.Fatal("unpad of 0xFF×127 differs")
	}
}

func TestPadMatchesDefinition(t *testing.T) {
	for seed := int64(0); seed < 50; seed++ {
		in := randBytes(seed, 127*int(1+seed%5))
		out := make([]byte, len(in)/127*128)
		Pad(out, in)
		if !bytes.Equal(out, padBits(in)) {
			t.Fatalf("seed %d: Pad differs from the bit definition", seed)
		}
		back := make([]byte, len(in))
		Unpad(back, out)
		if !bytes.Equal(back, in) {
			t.Fatalf("seed %d: Unpad(Pad(x)) != x", seed)
		}
	}
	// Every padded node must be a field element (< 2^254).
	out := make([]byte, 128)
	Pad(out, bytes.Repeat([]byte{0xFF}, 127))
	for j := 0; j < 4; j++ {
		le := make([]byte, 32)
		for i := range le {
			le[i] = out[32*j+31-i]
		}
		if new(big.Int).SetBytes(le).BitLen() > 254 {
			t.Fatal("node exceeds 254 bits")
		}
	}
}

func TestPadWriterUnpadReader(t *testing.T) {
	payload := randBytes(5, 127*20000)
	var padded bytes.Buffer
	w := NewPadWriter(&padded)
	for p := payload; len(p) > 0; {
		n := min(len(p), 1000)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, len(payload)/127*128)
	Pad(want, payload)
	if !bytes.Equal(padded.Bytes(), want) {
		t.Fatal("PadWriter output differs from Pad")
	}
	got, err := io.ReadAll(iotest.OneByteReader(NewUnpadReader(bytes.NewReader(want))))
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("UnpadReader: %v", err)
	}
	// A payload not ending on 127 bytes fails at Close.
	w = NewPadWriter(io.Discard)
	w.Write(make([]byte, 200))
	if err := w.Close(); !errors.Is(err, ErrNotQuadAligned) {
		t.Fatalf("Close of 200 bytes: %v", err)
	}
	// A truncated padded stream is an error.
	if _, err := io.ReadAll(NewUnpadReader(bytes.NewReader(want[:300]))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated stream: %v", err)
	}
}

func TestUnpadRange(t *testing.T) {
	payload := randBytes(9, 127*64)
	padded := make([]byte, 128*64)
	Pad(padded, payload)
	// Store the piece at padded offset 8192 of a "sector file".
	file := append(make([]byte, 8192), padded...)
	r := bytes.NewReader(file)
	for _, c := range [][2]uint64{{0, 1}, {0, 127}, {1, 126}, {126, 2}, {127, 127}, {300, 5000}, {0, 127 * 64}, {127*64 - 1, 1}, {5, 0}} {
		got, err := io.ReadAll(UnpadRange(r, 8192, c[0], c[1]))
		if err != nil {
			t.Fatalf("range %v: %v", c, err)
		}
		if !bytes.Equal(got, payload[c[0]:c[0]+c[1]]) {
			t.Fatalf("range %v: wrong bytes", c)
		}
	}
	if _, err := io.ReadAll(UnpadRange(r, 8192, 127*64-10, 20)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("range past the end: %v", err)
	}
}

func TestInflator(t *testing.T) {
	r, err := NewInflator(bytes.NewReader([]byte("hello")), 5, 127)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || len(got) != 127 || string(got[:5]) != "hello" || !bytes.Equal(got[5:], make([]byte, 122)) {
		t.Fatalf("inflated %q, %v", got, err)
	}
	r, _ = NewInflator(bytes.NewReader([]byte("hell")), 5, 127)
	if _, err := io.ReadAll(r); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short payload: %v", err)
	}
	r, _ = NewInflator(bytes.NewReader([]byte("hello!")), 5, 127)
	if _, err := io.ReadAll(r); err == nil {
		t.Fatal("long payload accepted")
	}
	if _, err := NewInflator(bytes.NewReader(nil), 200, 127); err == nil {
		t.Fatal("payload larger than size accepted")
	}
}

func TestSizes(t *testing.T) {
	for _, c := range []struct {
		payload uint64
		want    uint64
	}{{0, 128}, {1, 128}, {127, 128}, {128, 256}, {254, 256}, {255, 512}, {1016, 1024}, {1017, 2048}, {MaxPayload, 64 << 30}} {
		if got := PaddedSizeFor(c.payload); uint64(got) != c.want {
			t.Errorf("PaddedSizeFor(%d) = %d, want %d", c.payload, got, c.want)
		}
	}
	if err := ValidatePadded(PaddedSizeFor(MaxPayload + 1)); err == nil {
		t.Error("size for MaxPayload+1 valid")
	}
	for _, bad := range []uint64{0, 64, 127, 129, 3 << 10, 128 << 30} {
		if ValidatePadded(abiPadded(bad)) == nil {
			t.Errorf("ValidatePadded(%d) accepted", bad)
		}
	}
	if ValidateUnpadded(127*8) != nil || ValidateUnpadded(128) == nil {
		t.Error("ValidateUnpadded")
	}
}

func BenchmarkPad(b *testing.B) {
	in := randBytes(1, 127*8192)
	out := make([]byte, 128*8192)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		Pad(out, in)
	}
}

func BenchmarkUnpad(b *testing.B) {
	in := randBytes(1, 128*8192)
	out := make([]byte, 127*8192)
	b.SetBytes(int64(len(out)))
	for b.Loop() {
		Unpad(out, in)
	}
}
