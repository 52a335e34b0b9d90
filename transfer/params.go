package transfer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ParseHTTPParams decodes the Params of a Boost "http" transfer, the JSON
// object {"URL": "http(s)://…", "Headers": {"name": "value"}}, with
// Ferry's optional "Fallbacks": [{"URL": …, "Headers": …}], other places
// of the same bytes (Market 2.0's several URLs of an http source). It
// checks that each URL is present, absolute, http or https, names a host
// (a numeric one well formed) and carries no user info, and that the
// headers are valid HTTP header fields; errors show the URL redacted. It
// makes no lookup: CheckURL judges where each URL leads. The returned
// Request has Size zero: the caller sets it from the deal's Transfer.Size.
func ParseHTTPParams(params []byte) (Request, error) {
	var p httpParams
	if len(params) == 0 {
		return Request{}, errors.New("http transfer params: empty")
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return Request{}, fmt.Errorf("http transfer params: decoding JSON: %w", err)
	}
	req := Request{URL: p.URL, Headers: p.Headers, Fallbacks: p.Fallbacks}
	for i, src := range req.Sources() {
		if err := src.check(); err != nil {
			if i > 0 {
				return Request{}, fmt.Errorf("http transfer params: fallback %d: %w", i, err)
			}
			return Request{}, fmt.Errorf("http transfer params: %w", err)
		}
	}
	return req, nil
}

// EncodeHTTPParams is the Params of a Boost "http" transfer for req (its
// Size and Client are the deal's, not the params'), checked as
// ParseHTTPParams checks a proposal's.
func EncodeHTTPParams(req Request) ([]byte, error) {
	b, err := json.Marshal(httpParams{URL: req.URL, Headers: req.Headers, Fallbacks: req.Fallbacks})
	if err != nil {
		return nil, fmt.Errorf("encoding http transfer params: %w", err)
	}
	if _, err := ParseHTTPParams(b); err != nil {
		return nil, err
	}
	return b, nil
}

// httpParams is the JSON of an "http" transfer's Params.
type httpParams struct {
	URL       string
	Headers   map[string]string
	Fallbacks []Source `json:",omitempty"`
}

// check validates a source as ParseHTTPParams does.
func (s Source) check() error {
	if s.URL == "" {
		return errors.New("missing URL")
	}
	if _, err := parseURL(s.URL); err != nil {
		return err
	}
	for k, v := range s.Headers {
		if !validHeaderName(k) {
			return fmt.Errorf("invalid header name %q", k)
		}
		if !validHeaderValue(v) {
			return fmt.Errorf("invalid value for header %q", k)
		}
	}
	return nil
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
