package transfer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ParseHTTPParams decodes the Params of a Boost "http" transfer, the JSON
// object {"URL": "http(s)://…", "Headers": {"name": "value"}}. It checks that
// the URL is present, absolute, http or https, names a host (a numeric one
// well formed) and carries no user info, and that the headers are valid HTTP
// header fields; errors show the URL redacted. It makes no lookup: CheckURL
// judges where the URL leads. The returned Request has Size zero:
// the caller sets it from the deal's Transfer.Size.
func ParseHTTPParams(params []byte) (Request, error) {
	var p struct {
		URL     string
		Headers map[string]string
	}
	if len(params) == 0 {
		return Request{}, errors.New("http transfer params: empty")
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return Request{}, fmt.Errorf("http transfer params: decoding JSON: %w", err)
	}
	if p.URL == "" {
		return Request{}, errors.New("http transfer params: missing URL")
	}
	if _, err := parseURL(p.URL); err != nil {
		return Request{}, fmt.Errorf("http transfer params: %w", err)
	}
	for k, v := range p.Headers {
		if !validHeaderName(k) {
			return Request{}, fmt.Errorf("http transfer params: invalid header name %q", k)
		}
		if !validHeaderValue(v) {
			return Request{}, fmt.Errorf("http transfer params: invalid value for header %q", k)
		}
	}
	return Request{URL: p.URL, Headers: p.Headers}, nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue rejects control characters other than horizontal tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
