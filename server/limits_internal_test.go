package server

import (
	"net/netip"
	"testing"
)

// TestAddrKeyCountsAnIPv6HostPer64: two addresses of one /64 share the
// per-address count; IPv4 and loopback count per address.
func TestAddrKeyCountsAnIPv6HostPer64(t *testing.T) {
	a, b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	if addrKey(a) != addrKey(b) {
		t.Fatalf("%s and %s count apart", a, b)
	}
	if addrKey(a) == addrKey(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Fatal("two /64s count as one")
	}
	for _, s := range []string{"192.0.2.7", "127.0.0.2", "::1"} {
		if ip := netip.MustParseAddr(s); addrKey(ip) != ip {
			t.Fatalf("%s is counted as %s", s, addrKey(ip))
		}
	}
}
