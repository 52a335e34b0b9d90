package transfer

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// refusePrivate is a net.Dialer Control function that refuses connections to
// addresses that are not public unicast addresses. It runs after name
// resolution, on the address actually dialled, so a host name that resolves
// (or re-resolves) to a private address is refused as well.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrPrivateAddress, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrPrivateAddress, address)
	}
	if !publicAddr(ip) {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, ip)
	}
	return nil
}

// publicAddr reports whether ip is a globally routable unicast address: not
// loopback, private (RFC 1918, RFC 4193), link-local, multicast, unspecified,
// carrier-grade NAT, benchmarking, IETF protocol assignment or reserved space.
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return false
	}
	if ip.Is4() {
		b := ip.As4()
		switch {
		case b[0] == 0: // 0.0.0.0/8 "this network"
			return false
		case b[0] == 100 && b[1]&0xc0 == 64: // 100.64.0.0/10 carrier-grade NAT
			return false
		case b[0] == 192 && b[1] == 0 && b[2] == 0: // 192.0.0.0/24 IETF assignments
			return false
		case b[0] == 198 && b[1]&0xfe == 18: // 198.18.0.0/15 benchmarking
			return false
		case b[0] >= 240: // 240.0.0.0/4 reserved
			return false
		}
		return true
	}
	b := ip.As16()
	switch {
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b:
		// 64:ff9b::/96 NAT64: judge the embedded IPv4 address.
		return publicAddr(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	case b[0] == 0x20 && b[1] == 0x02:
		// 2002::/16 6to4: judge the embedded IPv4 address.
		return publicAddr(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
	case b[0]&0xfe == 0xfc: // fc00::/7 unique local (also IsPrivate)
		return false
	case b[0] == 0xfe && b[1]&0xc0 == 0xc0: // fec0::/10 deprecated site-local
		return false
	}
	return true
}
