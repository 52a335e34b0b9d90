package chain

import (
	"bytes"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
)

func TestDealNotificationPayload(t *testing.T) {
	for _, id := range []abi.DealID{0, 23, 24, 1 << 40} {
		b := DealNotificationPayload(id)
		if got, err := ParseDealNotificationPayload(b); err != nil || got != id {
			t.Fatalf("deal %d: payload %x parses as %d, %v", id, b, got, err)
		}
	}
	if b := DealNotificationPayload(7); !bytes.Equal(b, []byte{0x07}) {
		t.Fatalf("payload of deal 7 is %x, want 07", b)
	}
	for _, bad := range [][]byte{{}, {0x20}, {0x61, 'x'}, {0x07, 0x00}, {0x18}} {
		if _, err := ParseDealNotificationPayload(bad); err == nil {
			t.Errorf("%x parsed", bad)
		}
	}
}

// FuzzDealNotificationPayload feeds arbitrary payloads to the parser: no
// panic, and what parses encodes back to the same bytes.
func FuzzDealNotificationPayload(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseDealNotificationPayload(b)
		if err != nil {
			return
		}
		if enc := DealNotificationPayload(id); !bytes.Equal(enc, b) {
			t.Fatalf("%x parses as deal %d, which encodes as %x", b, id, enc)
		}
	})
}
