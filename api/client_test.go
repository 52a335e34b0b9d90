package api

import (
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

func TestParseAPIInfo(t *testing.T) {
	addr, token, err := ParseAPIInfo("eyJhbGciOiJIUzI1NiJ9.e30.x:/ip4/127.0.0.1/tcp/1288/http\n")
	if err != nil || addr != "/ip4/127.0.0.1/tcp/1288/http" || token != "eyJhbGciOiJIUzI1NiJ9.e30.x" {
		t.Fatalf("ParseAPIInfo = %q, %q, %v", addr, token, err)
	}
	for _, bad := range []string{"", "token", ":/ip4/127.0.0.1/tcp/1288/http", "tok:127.0.0.1:1288", "tok:/ip4/127.0.0.1", "tok:/dns4/x/udp/1"} {
		if _, _, err := ParseAPIInfo(bad); err == nil {
			t.Errorf("ParseAPIInfo(%q) accepted", bad)
		}
	}
}

// FuzzParseAPIInfo: FERRY_API_INFO comes from the environment; no value
// panics, and what is accepted has a token and a multiaddr to dial.
func FuzzParseAPIInfo(f *testing.F) {
	f.Add("tok:/ip4/127.0.0.1/tcp/1288/http")
	f.Fuzz(func(t *testing.T, s string) {
		addr, token, err := ParseAPIInfo(s)
		if err != nil {
			return
		}
		if token == "" || strings.Contains(token, ":") {
			t.Fatalf("accepted %q with token %q", s, token)
		}
		if _, err := ma.NewMultiaddr(addr); err != nil {
			t.Fatalf("accepted %q with address %q: %v", s, addr, err)
		}
	})
}
