package transfer

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseHTTPParams(t *testing.T) {
	r, err := ParseHTTPParams([]byte(`{"URL":"https://example.com/p.car","Headers":{"Authorization":"Bearer x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.URL != "https://example.com/p.car" || r.Headers["Authorization"] != "Bearer x" || r.Size != 0 {
		t.Fatalf("got %+v", r)
	}
	if _, err := ParseHTTPParams([]byte(`{"URL":"http://10.0.0.1:8080/x"}`)); err != nil {
		t.Fatalf("no headers: %v", err)
	}
	for in, want := range map[string]string{
		``:                                  "empty",
		`{`:                                 "decoding JSON",
		`[]`:                                "decoding JSON",
		`{"URL": 5}`:                        "decoding JSON",
		`{}`:                                "missing URL",
		`{"Headers":{"a":"b"}}`:             "missing URL",
		`{"URL":"ftp://example.com/x"}`:     "not http or https",
		`{"URL":"libp2p:///ip4/1.2.3.4"}`:   "not http or https",
		`{"URL":"/just/a/path"}`:            "no scheme",
		`{"URL":"http:///x"}`:               "no host",
		`{"URL":"http://u:p@example.com/"}`: "user info",
		`{"URL":"http://a b/"}`:             "parsing URL",
		`{"URL":"http://e.com","Headers":{"a b":"c"}}`:    "invalid header name",
		`{"URL":"http://e.com","Headers":{"a":"c\r\nd"}}`: "invalid value",
		`{"URL":"http://e.com"} trailing`:                 "decoding JSON",
		`{"URL":"http://e.com","Headers":{"a":5}}`:        "decoding JSON",
	} {
		_, err := ParseHTTPParams([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}

func FuzzParseHTTPParams(f *testing.F) {
	for _, s := range []string{
		`{"URL":"https://example.com/p.car","Headers":{"Authorization":"Bearer x"}}`,
		`{"URL":"http://127.0.0.1:8080/x"}`,
		`{"URL":"ftp://example.com/x"}`,
		`{"url":"http://example.com"}`,
		`{}`, `{`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := ParseHTTPParams(in)
		if err != nil {
			return
		}
		if _, err := parseURL(r.URL); err != nil {
			t.Fatalf("accepted bad URL %q", r.URL)
		}
		for k, v := range r.Headers {
			if !validHeaderName(k) || !validHeaderValue(v) {
				t.Fatalf("accepted bad header %q: %q", k, v)
			}
		}
		// What was accepted round-trips to the same request.
		b, err := json.Marshal(struct {
			URL     string
			Headers map[string]string
		}{r.URL, r.Headers})
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseHTTPParams(b)
		if err != nil || r2.URL != r.URL || len(r2.Headers) != len(r.Headers) {
			t.Fatalf("round trip of %q: %+v, %v", b, r2, err)
		}
	})
}
