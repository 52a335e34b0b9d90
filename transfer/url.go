package transfer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrInvalidURL: the transfer URL does not parse, is not an absolute http or
// https URL with a host, carries user info, or names a malformed numeric
// host. Not retried.
var ErrInvalidURL = errors.New("transfer: invalid URL")

// Resolver looks up the addresses of a host name; net.DefaultResolver
// satisfies it, and tests give CheckURL a stub.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// CheckURL checks rawURL as Download would before any connection: it must
// be an absolute http or https URL with a host and without user info. Unless
// allowPrivate, the host must also lead only to public addresses: a numeric
// host in any form a URL parser or inet_aton accepts (127.1, 2130706433,
// 0x7f000001, 0177.0.0.1, [::ffff:127.0.0.1], …) is judged as the address it
// names, and a name is resolved with r and every address it resolves to is
// judged. A refused or malformed URL is a permanent error (IsPermanent); a
// failed lookup is not, since DNS may answer later.
//
// A name can resolve differently by the time Download connects, so Download
// checks the address it dials as well; CheckURL lets a caller refuse a deal
// before accepting it.
func CheckURL(ctx context.Context, r Resolver, rawURL string, allowPrivate bool) error {
	u, err := parseURL(rawURL)
	if err != nil {
		return err
	}
	if allowPrivate {
		return nil
	}
	host := u.Hostname()
	ip, numeric, err := hostAddr(host)
	if err != nil {
		return err
	}
	if numeric {
		if !publicAddr(ip) {
			return fmt.Errorf("%w: %s is %s", ErrPrivateAddress, Redact(rawURL), ip)
		}
		return nil
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolving the host of %s: %w", Redact(rawURL), err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("resolving the host of %s: no addresses", Redact(rawURL))
	}
	for _, a := range addrs {
		if !publicAddr(a) {
			return fmt.Errorf("%w: %s resolves to %s", ErrPrivateAddress, Redact(rawURL), a)
		}
	}
	return nil
}

// parseURL accepts absolute http and https URLs with a host and without user
// info; its errors wrap ErrInvalidURL and show the URL redacted.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// The parser quotes the part it stumbled on, which may be part of
		// the user info; without an '@' there is none to quote.
		detail := "malformed"
		var ue *url.Error
		if errors.As(err, &ue) && !strings.Contains(raw, "@") {
			detail = ue.Err.Error()
		}
		return nil, fmt.Errorf("%w: parsing URL %q: %s", ErrInvalidURL, Redact(raw), detail)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "":
		return nil, fmt.Errorf("%w: %q has no scheme (want http or https)", ErrInvalidURL, Redact(raw))
	default:
		return nil, fmt.Errorf("%w: scheme %q is not http or https", ErrInvalidURL, u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: %q has no host", ErrInvalidURL, Redact(raw))
	}
	if u.User != nil {
		// Credentials in the URL would be sent to every redirect target and
		// logged with the URL; Boost clients pass them as headers instead.
		return nil, fmt.Errorf("%w: %q carries user info; pass credentials in Headers", ErrInvalidURL, Redact(raw))
	}
	if _, _, err := hostAddr(u.Hostname()); err != nil {
		return nil, err
	}
	return u, nil
}

// Redact returns rawURL fit for logs, stored errors and replies: without
// user info, with the query string replaced by "?…" and without the
// fragment. Pre-signed URLs carry their tokens in the query string. A string
// that does not parse as a URL is cut the same way, conservatively: all up
// to the last '@' of what could be its authority goes.
func Redact(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.Opaque == "" && u.Host != "" {
		query := u.RawQuery != "" || u.ForceQuery
		u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
		s := u.String()
		if query {
			s += "?…"
		}
		return s
	}
	s, _, _ := strings.Cut(rawURL, "#")
	// The authority runs from "//" to the next '/'; a '?' before an '@'
	// there may belong to a password, so the user info is cut first.
	prefix, rest := "", s
	if i := strings.Index(s, "//"); i >= 0 {
		prefix, rest = s[:i+2], s[i+2:]
	}
	end := strings.IndexByte(rest, '/')
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		rest = rest[at+1:]
	}
	s = prefix + rest
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i] + "?…"
	}
	return s
}

// hostAddr interprets a URL's host (brackets removed, as url.URL.Hostname
// returns it) the way URL parsers and inet_aton do. An IPv6 literal, with
// or without a zone, is an address. A host whose last label is a number —
// decimal, octal with a leading 0, or hex with 0x — is an IPv4 address of one
// to four such numbers, the last filling the remaining bytes (127.1,
// 2130706433, 0x7f000001, 0177.0.0.1), and malformed if it is not one.
// Anything else is a name: numeric is false.
func hostAddr(host string) (ip netip.Addr, numeric bool, err error) {
	if strings.Contains(host, ":") {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return netip.Addr{}, true, fmt.Errorf("%w: host %q is not an IPv6 address", ErrInvalidURL, host)
		}
		return ip, true, nil
	}
	parts := strings.Split(host, ".")
	if len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1] // one trailing dot, as in a fully qualified name
	}
	if _, ok := ipv4Number(parts[len(parts)-1]); !ok && !allDigits(parts[len(parts)-1]) {
		return netip.Addr{}, false, nil
	}
	bad := fmt.Errorf("%w: host %q is not a valid IPv4 address", ErrInvalidURL, host)
	if len(parts) > 4 {
		return netip.Addr{}, true, bad
	}
	var v uint64
	for i, p := range parts {
		n, ok := ipv4Number(p)
		if !ok {
			return netip.Addr{}, true, bad
		}
		if i < len(parts)-1 {
			if n > 255 {
				return netip.Addr{}, true, bad
			}
			v |= n << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(4-i)) {
			return netip.Addr{}, true, bad
		}
		v |= n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, nil
}

// ipv4Number parses one part of a numeric IPv4 host: 0x or 0X then hex
// digits (none means 0), 0 then octal digits, or decimal digits.
func ipv4Number(s string) (uint64, bool) {
	base := 10
	switch {
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		s, base = s[2:], 16
		if s == "" {
			return 0, true
		}
	case len(s) >= 2 && s[0] == '0':
		s, base = s[1:], 8
	}
	n, err := strconv.ParseUint(s, base, 32) // no sign, no underscores
	if errors.Is(err, strconv.ErrRange) {
		// Digits of the base, too many for 32 bits: still a number, one
		// out of range, which the caller refuses.
		return 1 << 32, true
	}
	return n, err == nil
}

// allDigits reports whether s is a non-empty run of ASCII digits: a label
// that makes the host numeric even where it is no valid number (such as 09,
// octal with a 9).
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// dialAddr rewrites a numeric host of address (host:port) into the address
// it names, so the connection goes where CheckURL judged it to go whatever
// the system resolver makes of such forms.
func dialAddr(address string) (string, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", fmt.Errorf("%w: address %q: %v", ErrInvalidURL, address, err)
	}
	ip, numeric, err := hostAddr(host)
	if err != nil || !numeric {
		return address, err
	}
	return net.JoinHostPort(ip.String(), port), nil
}
