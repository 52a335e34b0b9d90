package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// stubResolver answers every lookup from its table, without a packet.
type stubResolver struct {
	addrs map[string][]netip.Addr
	err   error

	mu      sync.Mutex
	lookups []string
}

func (r *stubResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	r.lookups = append(r.lookups, host)
	r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	a, ok := r.addrs[host]
	if !ok {
		return nil, fmt.Errorf("lookup %s: no such host", host)
	}
	return a, nil
}

func addrs(s ...string) []netip.Addr {
	var a []netip.Addr
	for _, x := range s {
		a = append(a, netip.MustParseAddr(x))
	}
	return a
}

func TestHostAddr(t *testing.T) {
	for host, want := range map[string]string{
		"127.0.0.1":        "127.0.0.1",
		"127.1":            "127.0.0.1",
		"127.0.1":          "127.0.0.1",
		"2130706433":       "127.0.0.1",
		"0x7f000001":       "127.0.0.1",
		"0X7F000001":       "127.0.0.1",
		"0x7f.1":           "127.0.0.1",
		"0177.0.0.1":       "127.0.0.1",
		"017700000001":     "127.0.0.1",
		"0x7f.0.0.0x1":     "127.0.0.1",
		"127.0.0.1.":       "127.0.0.1",
		"10.0x100":         "10.0.1.0",
		"0":                "0.0.0.0",
		"0x":               "0.0.0.0",
		"169.254.169.254":  "169.254.169.254",
		"3232235777":       "192.168.1.1",
		"::1":              "::1",
		"::ffff:127.0.0.1": "::ffff:127.0.0.1",
		"::ffff:7f00:1":    "::ffff:127.0.0.1",
		"fe80::1%eth0":     "fe80::1%eth0",
		"2606:4700::1111":  "2606:4700::1111",
		"8.8.8.8":          "8.8.8.8",
		// Names.
		"example.com": "", "localhost": "", "0x7f000001.example": "", "1.2.3.4.nip.io": "", "a-1": "", "1e3": "",
		// Malformed numbers.
		"256.0.0.1": "bad", "1.2.3.4.5": "bad", "0x100000000": "bad", "4294967296": "bad", "1.2.65536": "bad",
		"09": "bad", "1..2": "bad", "example.123": "bad", "0xg.1": "bad", ":::": "bad", "1.2.3.0x": "1.2.3.0",
	} {
		ip, numeric, err := hostAddr(host)
		switch {
		case want == "":
			if numeric || err != nil {
				t.Errorf("%s: %v %v %v, want a name", host, ip, numeric, err)
			}
		case want == "bad":
			if !numeric || !errors.Is(err, ErrInvalidURL) {
				t.Errorf("%s: %v %v %v, want a malformed numeric host", host, ip, numeric, err)
			}
		default:
			if !numeric || err != nil || ip != netip.MustParseAddr(want) {
				t.Errorf("%s: %v %v %v, want %s", host, ip, numeric, err, want)
			}
		}
	}
}

func TestCheckURL(t *testing.T) {
	r := &stubResolver{addrs: map[string][]netip.Addr{
		"public.example":   addrs("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
		"localhost":        addrs("127.0.0.1", "::1"),
		"metadata.example": addrs("169.254.169.254"),
		"mixed.example":    addrs("93.184.215.14", "10.0.0.7"),
		"mapped.example":   addrs("::ffff:192.168.0.1"),
		"nat64.example":    addrs("64:ff9b::7f00:1"),
		"empty.example":    nil,
	}}
	ctx := context.Background()
	for _, u := range []string{
		"http://public.example/piece.car",
		"https://public.example:8443/x?token=abc",
		"http://8.8.8.8/x",
		"http://134744072/x", // 8.8.8.8
		"http://[2606:4700::1111]:80/x",
		"http://[::ffff:8.8.8.8]/x",
	} {
		if err := CheckURL(ctx, r, u, false); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{
		"http://127.0.0.1/x", "http://127.1/x", "http://2130706433/x", "http://0x7f000001/x",
		"http://0177.0.0.1/x", "http://0x7f.1:8080/x", "http://127.0.0.1./x",
		"http://[::1]/x", "http://[::ffff:127.0.0.1]/x", "http://[::ffff:7f00:1]/x", "http://[0:0:0:0:0:ffff:7f00:1]/x",
		"http://[fe80::1%25eth0]/x", "http://[fd00::1]/x", "http://[::127.0.0.1]/x", "http://[64:ff9b::a00:1]/x",
		"http://10.1.2.3/x", "http://167772161/x", "http://172.16.0.1/x", "http://192.168.1.1/x", "http://0/x",
		"http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/x", "http://0.0.0.0/x",
		"http://localhost:1234/x", "http://metadata.example/x", "http://mixed.example/x", "http://mapped.example/x",
		"http://nat64.example/x",
	} {
		err := CheckURL(ctx, r, u, false)
		if !errors.Is(err, ErrPrivateAddress) || !IsPermanent(err) {
			t.Errorf("%s: err = %v, want a permanent ErrPrivateAddress", u, err)
		}
	}
	for _, u := range []string{
		"ftp://public.example/x", "public.example/x", "http:///x", "http://u:p@public.example/x",
		"http://256.1.1.1/x", "http://1.2.3.4.5/x", "http://example.123/x", "http://a b/", "http://[::1/x",
		"http://public.example:port/x", "mailto:a@public.example", "http://%31%32%37.0.0.1/x",
	} {
		for _, allow := range []bool{false, true} {
			err := CheckURL(ctx, r, u, allow)
			if !errors.Is(err, ErrInvalidURL) || !IsPermanent(err) {
				t.Errorf("%s (allowPrivate %v): err = %v, want a permanent ErrInvalidURL", u, allow, err)
			}
		}
	}
	// A failed or empty lookup is an error that may pass.
	for _, u := range []string{"http://unknown.example/x", "http://empty.example/x"} {
		if err := CheckURL(ctx, r, u, false); err == nil || IsPermanent(err) {
			t.Errorf("%s: err = %v, want a transient error", u, err)
		}
	}
	// With private addresses allowed nothing is looked up.
	r.lookups = nil
	for _, u := range []string{"http://localhost/x", "http://127.1/x", "http://unknown.example/x"} {
		if err := CheckURL(ctx, r, u, true); err != nil {
			t.Errorf("%s (allowPrivate): %v", u, err)
		}
	}
	if len(r.lookups) != 0 {
		t.Errorf("lookups %q with private addresses allowed", r.lookups)
	}
	// The error shows the URL redacted.
	err := CheckURL(ctx, r, "http://localhost/x?X-Amz-Signature=secret", false)
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("err = %v, want one without the query", err)
	}
}

// The dialer understands the numeric forms CheckURL does: a download from
// 127.1 reaches the loopback server when private addresses are allowed and
// is refused before any request when they are not.
func TestDialNumericForms(t *testing.T) {
	data := testData(30, 1000)
	srv := &rangeServer{data: data}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	port := ts.URL[strings.LastIndexByte(ts.URL, ':'):]
	forms := []string{"127.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.0.0.1."}

	d := New(testConfig())
	defer d.CloseIdleConnections()
	for _, h := range forms {
		res := download(t, d, context.Background(), Request{URL: "http://" + h + port + "/x", Size: uint64(len(data))}, filepath.Join(t.TempDir(), "f"))
		checkComplete(t, res, data)
	}
	if srv.count() != len(forms) {
		t.Fatalf("%d requests, want %d", srv.count(), len(forms))
	}

	cfg := testConfig()
	cfg.AllowPrivateAddresses = false
	d2 := New(cfg)
	defer d2.CloseIdleConnections()
	for _, h := range forms {
		res := download(t, d2, context.Background(), Request{URL: "http://" + h + port + "/x", Size: uint64(len(data))}, filepath.Join(t.TempDir(), "f"))
		if !errors.Is(res.err, ErrPrivateAddress) || !IsPermanent(res.err) {
			t.Fatalf("%s: err = %v, want a permanent ErrPrivateAddress", h, res.err)
		}
	}
	if srv.count() != len(forms) {
		t.Fatalf("refused downloads reached the server: %d requests", srv.count())
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://example.com/p.car":                              "https://example.com/p.car",
		"https://example.com/p.car?X-Amz-Signature=abc&x=1":      "https://example.com/p.car?…",
		"https://user:pass@example.com:8443/a/b?tok=1#frag":      "https://example.com:8443/a/b?…",
		"http://user@example.com/":                               "http://example.com/",
		"http://example.com/p#frag":                              "http://example.com/p",
		"http://example.com/p?":                                  "http://example.com/p?…",
		"http://[::1]:80/x?y":                                    "http://[::1]:80/x?…",
		"http://u:p@ss@example.com/":                             "http://example.com/",
		"http://user:pa?ss@example.com/":                         "http://example.com/", // does not parse
		"http://user:pass@exa mple.com/x?tok":                    "http://exa mple.com/x?…",
		"http://exa mple.com/x#a?b":                              "http://exa mple.com/x",
		"user:pass@example.com/x?t":                              "example.com/x?…",
		"/local/path?t=1":                                        "/local/path?…",
		"":                                                       "",
		"mailto:someone@example.com?subject=x":                   "example.com?…",
		"http://example.com/a%20b?q":                             "http://example.com/a%20b?…",
		"http://h/\x7f?secret":                                   "http://h/\x7f?…",
		"https://user:secret@host.example/?X-Amz-Credential=key": "https://host.example/?…",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsPermanent(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("x: %w", ErrSizeMismatch):                    true,
		fmt.Errorf("x: %w", ErrPrivateAddress):                  true,
		fmt.Errorf("x: %w", ErrContentChanged):                  true,
		fmt.Errorf("x: %w", ErrInvalidURL):                      true,
		permanent(errors.New("bad Content-Range")):              true,
		&StatusError{Code: 404, Status: "404 Not Found"}:        true,
		&StatusError{Code: 403, Status: "403 Forbidden"}:        true,
		&StatusError{Code: 408, Status: "408 Request Timeout"}:  false,
		&StatusError{Code: 429, Status: "429 Too Many"}:         false,
		&StatusError{Code: 500, Status: "500 Internal"}:         false,
		&StatusError{Code: 503, Status: "503 Unavailable"}:      false,
		fmt.Errorf("x: %w", ErrStalled):                         false,
		localError{errors.New("write f: no space left")}:        false,
		errors.New("connection reset by peer"):                  false,
		fmt.Errorf("y: %w", &url.Error{Op: "Get", Err: io.EOF}): false,
	} {
		if got := IsPermanent(err); got != want {
			t.Errorf("IsPermanent(%v) = %v, want %v", err, got, want)
		}
	}
}

// No error of a download shows the query string or the user info, whether
// it comes from the server's status, a failed connection or a redirect.
func TestErrorsRedacted(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close() // a loopback port nothing listens on
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/404":
			http.NotFound(w, r)
		case "/redirect":
			http.Redirect(w, r, closedURL+"/moved?X-Amz-Signature=secret", http.StatusFound)
		case "/size":
			w.Write([]byte("12345"))
		}
	}))
	defer ts.Close()
	cfg := testConfig()
	cfg.MaxRetries = -1
	d := New(cfg)
	defer d.CloseIdleConnections()
	for _, u := range []string{
		ts.URL + "/404?token=secret",
		ts.URL + "/redirect?token=secret",
		ts.URL + "/size?token=secret",
		closedURL + "/x?token=secret#secret",
		"http://user:secret@127.0.0.1/x",
		"http://secret:pa?ss@127.0.0.1/x",
		"ftp://127.0.0.1/x?secret",
		"http://127.0.0.1:99999/x?secret",
	} {
		err := d.Download(context.Background(), Request{URL: u, Size: 3}, filepath.Join(t.TempDir(), "f"), nil, nil)
		if err == nil {
			t.Fatalf("%s: no error", u)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows a secret: %v", u, err)
		}
	}
	_, err := ParseHTTPParams([]byte(`{"URL":"http://u:secret@127.0.0.1/x?secret"}`))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("ParseHTTPParams: %v", err)
	}
}

// FuzzCheckURL checks CheckURL's parsing against a resolver stub that makes
// every name public: what it accepts is an http(s) URL whose numeric host,
// if any, is public, and a refusal shows no query string.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"http://example.com/p.car", "http://127.1/", "http://2130706433:80/x", "http://0x7f000001/",
		"http://0177.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://[fe80::1%25eth0]:1/", "http://8.8.8.8/?a=b",
		"http://u:p@h/", "ftp://h/", "http://256.1.1.1/", "http://1.2.3.4.5/", "http://0x/", "http://09/",
		"https://host.example:8443/a?X-Amz-Signature=x#y", "http://%31%32%37.0.0.1/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		ctx := context.Background()
		err := CheckURL(ctx, publicResolver{}, raw, false)
		errAllow := CheckURL(ctx, publicResolver{}, raw, true)
		if errAllow != nil && !errors.Is(errAllow, ErrInvalidURL) {
			t.Fatalf("%q: allowing private addresses: %v", raw, errAllow)
		}
		if err == nil {
			if errAllow != nil {
				t.Fatalf("%q: accepted, but not with private addresses allowed: %v", raw, errAllow)
			}
			u, perr := url.Parse(raw)
			if perr != nil || (!strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https")) || u.User != nil {
				t.Fatalf("%q: accepted: %v", raw, perr)
			}
			if ip, numeric, _ := hostAddr(u.Hostname()); numeric && !publicAddr(ip) {
				t.Fatalf("%q: accepted the non-public %s", raw, ip)
			}
			return
		}
		if !IsPermanent(err) {
			t.Fatalf("%q: %v is not permanent with a resolver that never fails", raw, err)
		}
		if u, perr := url.Parse(raw); perr == nil && u.RawQuery != "" && u.RawQuery != "…" && strings.Contains(err.Error(), "?"+u.RawQuery) {
			t.Fatalf("%q: the error shows the query: %v", raw, err)
		}
	})
}

// publicResolver resolves every name to a public address.
type publicResolver struct{}

func (publicResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return addrs("93.184.215.14"), nil
}

// FuzzRedact checks what Redact keeps: no fragment, nothing after a '?' but
// the ellipsis, and no user info.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		"https://user:pass@example.com:8443/a/b?tok=1#frag", "http://user:pa?ss@example.com/", "http://u:p@ss@h/",
		"http://exa mple.com/x?tok", "mailto:a@b?c", "/p?q", "", "?", "#", "@", "http://[::1]:80/x?y", "//u@h?x@y/z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := Redact(raw)
		if strings.Contains(got, "#") {
			t.Fatalf("Redact(%q) = %q keeps a fragment", raw, got)
		}
		if i := strings.IndexByte(got, '?'); i >= 0 && got[i:] != "?…" {
			t.Fatalf("Redact(%q) = %q keeps a query", raw, got)
		}
		if u, err := url.Parse(got); err == nil && u.User != nil {
			t.Fatalf("Redact(%q) = %q keeps user info", raw, got)
		}
	})
}
