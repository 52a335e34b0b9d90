package chain

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func FuzzMessageDecode(f *testing.F) {
	b, _ := hex.DecodeString("8a004300e8074300e9070749000de0b6b3a76400001a000f424044000186a0430003e80243820102")
	f.Add(b)
	f.Add([]byte{0x8a})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if err := m.UnmarshalCBOR(bytes.NewReader(data)); err != nil {
			return
		}
		enc, err := m.Serialize()
		if err != nil {
			return // e.g. an undefined address decodes but does not encode
		}
		var m2 Message
		if err := m2.UnmarshalCBOR(bytes.NewReader(enc)); err != nil {
			t.Fatalf("re-decoding our own encoding: %v", err)
		}
		enc2, err := m2.Serialize()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %x vs %x (%v)", enc, enc2, err)
		}
		_ = m.Check()
		if _, err := m.MarshalJSON(); err != nil {
			t.Fatalf("JSON of a decodable message: %v", err)
		}
	})
}

func FuzzSignedMessageDecode(f *testing.F) {
	b, _ := hex.DecodeString("82" + "8a004300e8074300e9070749000de0b6b3a76400001a000f424044000186a0430003e80243820102" + "5842" + "01" + strRepeat("ab", 65))
	f.Add(b)
	f.Add([]byte{0x82, 0x80, 0x40})
	f.Fuzz(func(t *testing.T, data []byte) {
		var sm SignedMessage
		if err := sm.UnmarshalCBOR(bytes.NewReader(data)); err != nil {
			return
		}
		enc, err := sm.Serialize()
		if err != nil {
			return
		}
		var sm2 SignedMessage
		if err := sm2.UnmarshalCBOR(bytes.NewReader(enc)); err != nil {
			t.Fatalf("re-decoding our own encoding: %v", err)
		}
		c1, err1 := sm.Cid()
		c2, err2 := sm2.Cid()
		if err1 != nil || err2 != nil || c1 != c2 {
			t.Fatalf("CID not stable: %s %s %v %v", c1, c2, err1, err2)
		}
	})
}

func FuzzReceiptDecode(f *testing.F) {
	f.Add([]byte{0x84, 0x00, 0x40, 0x00, 0xf6})
	f.Add([]byte{0x83, 0x00, 0x42, 1, 2, 0x09})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r MessageReceipt
		if err := r.UnmarshalCBOR(bytes.NewReader(data)); err != nil {
			return
		}
		enc, err := r.Serialize()
		if err != nil {
			t.Fatalf("encoding a decoded receipt: %v", err)
		}
		var r2 MessageReceipt
		if err := r2.UnmarshalCBOR(bytes.NewReader(enc)); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		enc2, _ := r2.Serialize()
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable")
		}
	})
}

func strRepeat(s string, n int) string {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		b.WriteString(s)
	}
	return b.String()
}
