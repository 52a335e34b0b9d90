package transfer

import (
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
		`{"URL":"http://e.com","Headers":{"a b":"c"}}`:                                      "invalid header name",
		`{"URL":"http://e.com","Headers":{"a":"c\r\nd"}}`:                                   "invalid value",
		`{"URL":"http://e.com"} trailing`:                                                   "decoding JSON",
		`{"URL":"http://e.com","Headers":{"a":5}}`:                                          "decoding JSON",
		`{"URL":"http://e.com","Fallbacks":[{"URL":"ftp://e.com/x"}]}`:                      "fallback 1: ",
		`{"URL":"http://e.com","Fallbacks":[{"URL":"http://f.com"},{}]}`:                    "fallback 2: missing URL",
		`{"URL":"http://e.com","Fallbacks":[{"URL":"http://f.com","Headers":{"a b":"c"}}]}`: "invalid header name",
		`{"URL":"http://e.com","Fallbacks":{}}`:                                             "decoding JSON",
	} {
		_, err := ParseHTTPParams([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}

// Fallbacks are parsed and checked as the URL is, encoded back, and
// taken in order by Next.
func TestHTTPParamsFallbacks(t *testing.T) {
	in := `{"URL":"http://a.example/p.car","Headers":{"X-A":"1"},"Fallbacks":[{"URL":"http://b.example/p.car"},{"URL":"https://c.example/p.car","Headers":{"X-C":"3"}}]}`
	r, err := ParseHTTPParams([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if srcs := r.Sources(); len(srcs) != 3 || srcs[0].URL != "http://a.example/p.car" || srcs[0].Headers["X-A"] != "1" ||
		srcs[1].URL != "http://b.example/p.car" || srcs[2].Headers["X-C"] != "3" {
		t.Fatalf("sources %+v", srcs)
	}
	r.Size, r.Client = 100, "c"
	b, err := EncodeHTTPParams(r)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := ParseHTTPParams(b); err != nil || len(again.Fallbacks) != 2 || again.Fallbacks[1].Headers["X-C"] != "3" {
		t.Fatalf("round trip of %s: %+v, %v", b, again, err)
	}
	n1, ok := r.Next()
	if !ok || n1.URL != "http://b.example/p.car" || n1.Headers != nil || len(n1.Fallbacks) != 1 || n1.Size != 100 || n1.Client != "c" {
		t.Fatalf("Next: %+v, %v", n1, ok)
	}
	n2, ok := n1.Next()
	if !ok || n2.URL != "https://c.example/p.car" || n2.Headers["X-C"] != "3" || len(n2.Fallbacks) != 0 {
		t.Fatalf("Next of Next: %+v, %v", n2, ok)
	}
	if _, ok := n2.Next(); ok {
		t.Fatal("Next past the last fallback")
	}
	// Boost's params, without Fallbacks, encode as before.
	b, err = EncodeHTTPParams(Request{URL: "http://a.example/x"})
	if err != nil || string(b) != `{"URL":"http://a.example/x","Headers":null}` {
		t.Fatalf("Boost params: %s, %v", b, err)
	}
	if _, err := EncodeHTTPParams(Request{URL: "http://a.example/x", Fallbacks: []Source{{URL: "file:///etc/passwd"}}}); err == nil {
		t.Fatal("a bad fallback was encoded")
	}
}

func FuzzParseHTTPParams(f *testing.F) {
	for _, s := range []string{
		`{"URL":"https://example.com/p.car","Headers":{"Authorization":"Bearer x"}}`,
		`{"URL":"http://127.0.0.1:8080/x"}`,
		`{"URL":"ftp://example.com/x"}`,
		`{"url":"http://example.com"}`,
		`{"URL":"http://a.example/p","Fallbacks":[{"URL":"http://b.example/p","Headers":{"A":"b"}}]}`,
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
		for _, src := range r.Sources() {
			if _, err := parseURL(src.URL); err != nil {
				t.Fatalf("accepted bad URL %q", src.URL)
			}
			for k, v := range src.Headers {
				if !validHeaderName(k) || !validHeaderValue(v) {
					t.Fatalf("accepted bad header %q: %q", k, v)
				}
			}
		}
		// What was accepted round-trips to the same request.
		b, err := EncodeHTTPParams(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseHTTPParams(b)
		if err != nil || r2.URL != r.URL || len(r2.Headers) != len(r.Headers) || len(r2.Fallbacks) != len(r.Fallbacks) {
			t.Fatalf("round trip of %q: %+v, %v", b, r2, err)
		}
	})
}
