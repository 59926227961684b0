//! Which IP addresses an outbound request may reach unless its host is
//! allowed to be private. IPv4: anything but loopback, private, link-local
//! (cloud metadata), CGNAT, IETF protocol assignments, documentation,
//! benchmarking, multicast and reserved ranges. IPv6 is an allow-list: only
//! global unicast (`2000::/3`) outside every block of the IANA IPv6
//! Special-Purpose Address Registry, plus the two forms that stand for an
//! IPv4 destination (IPv4-mapped `::ffff:0:0/96`, which the kernel sends over
//! IPv4, and NAT64 `64:ff9b::/96`, which a translator delivers to IPv4),
//! judged by the IPv4 address they carry.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The range a refused address falls in, for the audit line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockedRange {
    pub range: &'static str,
    /// The IPv6 form that carried an embedded IPv4 address, if any.
    pub embedded_in: Option<&'static str>,
}

impl fmt::Display for BlockedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.range)?;
        if let Some(outer) = self.embedded_in {
            write!(f, " inside an {outer} address")?;
        }
        Ok(())
    }
}

/// `Some(range)` if `ip` is not a public unicast address.
pub(crate) fn blocked_range(ip: IpAddr) -> Option<BlockedRange> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4).map(|range| BlockedRange {
            range,
            embedded_in: None,
        }),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let range = match (a, b, c) {
        (0, _, _) => "\"this network\" (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared CGNAT (100.64.0.0/10)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local and cloud metadata (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) => "documentation (192.0.2.0/24)",
        (192, 88, 99) => "6to4 relay anycast (192.88.99.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (198, 51, 100) => "documentation (198.51.100.0/24)",
        (203, 0, 113) => "documentation (203.0.113.0/24)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        (240..=255, _, _) => "reserved and broadcast (240.0.0.0/4)",
        _ => return None,
    };
    Some(range)
}

/// An IPv6 prefix with the name an audit line gives it.
struct Block {
    prefix: u128,
    len: u32,
    name: &'static str,
}

const fn block(prefix: u128, len: u32, name: &'static str) -> Block {
    Block { prefix, len, name }
}

impl Block {
    fn contains(&self, ip: u128) -> bool {
        let mask = if self.len == 0 {
            0
        } else {
            u128::MAX << (128 - self.len)
        };
        ip & mask == self.prefix
    }
}

/// The only IPv6 space reachable: global unicast.
const GLOBAL_UNICAST: Block = block(0x2000 << 112, 3, "global unicast (2000::/3)");

/// Every block of the IANA IPv6 Special-Purpose Address Registry (as of
/// 2025), whatever its flags, plus names for the rest of the space outside
/// `2000::/3` that an audit line should name. An address in global unicast
/// is refused if it is in any of these; the most specific one names it.
const NAMED_V6: &[Block] = &[
    block(0, 128, "unspecified (::/128)"),
    block(1, 128, "loopback (::1/128)"),
    block(0, 96, "IPv4-compatible, deprecated (::/96)"),
    block(0xffff << 32, 96, "IPv4-mapped (::ffff:0:0/96)"),
    block(0xffff << 48, 96, "IPv4-translated (::ffff:0:0:0/96)"),
    block(0x64_ff9b << 96, 96, "NAT64 (64:ff9b::/96)"),
    block(0x64_ff9b_0001 << 80, 48, "local-use NAT64 (64:ff9b:1::/48)"),
    block(0x0100 << 112, 64, "discard-only (100::/64)"),
    block(
        (0x0100 << 112) | (1 << 64),
        64,
        "dummy prefix (100:0:0:1::/64)",
    ),
    block(0x2001 << 112, 23, "IETF protocol assignments (2001::/23)"),
    block(0x2001 << 112, 32, "Teredo (2001::/32)"),
    block((0x2001_0001 << 96) | 1, 128, "PCP anycast (2001:1::1/128)"),
    block((0x2001_0001 << 96) | 2, 128, "TURN anycast (2001:1::2/128)"),
    block(
        (0x2001_0001 << 96) | 3,
        128,
        "DNS-SD SRP anycast (2001:1::3/128)",
    ),
    block(0x2001_0002 << 96, 48, "benchmarking (2001:2::/48)"),
    block(0x2001_0003 << 96, 32, "AMT (2001:3::/32)"),
    block(0x2001_0004_0112 << 80, 48, "AS112-v6 (2001:4:112::/48)"),
    block(0x2001_0010 << 96, 28, "ORCHID, deprecated (2001:10::/28)"),
    block(0x2001_0020 << 96, 28, "ORCHIDv2 (2001:20::/28)"),
    block(0x2001_0030 << 96, 28, "drone remote ID (2001:30::/28)"),
    block(0x2001_0db8 << 96, 32, "documentation (2001:db8::/32)"),
    block(0x2002 << 112, 16, "6to4 (2002::/16)"),
    block(
        0x2620_004f_8000 << 80,
        48,
        "AS112 direct delegation (2620:4f:8000::/48)",
    ),
    block(0x3fff << 112, 20, "documentation (3fff::/20)"),
    block(0x5f00 << 112, 16, "segment routing SIDs (5f00::/16)"),
    block(0xfc00 << 112, 7, "unique local (fc00::/7)"),
    block(0xfe80 << 112, 10, "link-local (fe80::/10)"),
    block(0xfec0 << 112, 10, "site-local, deprecated (fec0::/10)"),
    block(0xff00 << 112, 8, "multicast (ff00::/8)"),
];

fn v6_range(ip: Ipv6Addr) -> Option<BlockedRange> {
    let s = ip.segments();
    // The forms that stand for an IPv4 destination are judged by it: the
    // kernel (mapped) or a translator (NAT64) would deliver them there.
    let embedded = |outer: &'static str, hi: u16, lo: u16| {
        let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        v4_range(v4).map(|range| BlockedRange {
            range,
            embedded_in: Some(outer),
        })
    };
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => return embedded("IPv4-mapped (::ffff:0:0/96)", hi, lo),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return embedded("NAT64 (64:ff9b::/96)", hi, lo),
        _ => {}
    }
    let bits = u128::from(ip);
    let named = NAMED_V6
        .iter()
        .filter(|b| b.contains(bits))
        .max_by_key(|b| b.len)
        .map(|b| b.name);
    let range = match named {
        Some(name) => name,
        None if GLOBAL_UNICAST.contains(bits) => return None,
        None => "outside global unicast (2000::/3)",
    };
    Some(BlockedRange {
        range,
        embedded_in: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(text: &str) -> bool {
        blocked_range(text.parse().unwrap()).is_some()
    }

    #[test]
    fn internal_ipv4_ranges_are_blocked() {
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "100.100.100.200",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(blocked(ip), "{ip} should be blocked");
        }
    }

    #[test]
    fn public_ipv4_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.1.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
        ] {
            assert!(!blocked(ip), "{ip} should pass");
        }
    }

    #[test]
    fn internal_ipv6_ranges_are_blocked() {
        for ip in [
            "::",
            "::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "64:ff9b:1::1",
        ] {
            assert!(blocked(ip), "{ip} should be blocked");
        }
    }

    #[test]
    fn mapped_and_nat64_addresses_are_judged_by_the_ipv4_address() {
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            let range = blocked_range(ip.parse().unwrap());
            assert!(
                range.is_some_and(|r| r.embedded_in.is_some()),
                "{ip}: {range:?}"
            );
        }
        for ip in [
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2001:4860:4860::8888",
            "2606:4700::1111",
        ] {
            assert!(!blocked(ip), "{ip} should pass");
        }
    }

    /// The addresses of issue 16: other IPv6 forms carrying an IPv4 address
    /// and reserved space outside global unicast, all refused whatever they
    /// carry.
    #[test]
    fn other_ipv6_forms_and_reserved_space_are_refused() {
        for ip in [
            // IPv4-translated loopback and metadata address.
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "::ffff:0:808:808",
            // IPv4-compatible, 6to4 and Teredo, even of a public address.
            "::127.0.0.1",
            "::8.8.8.8",
            "2002:7f00:1::",
            "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "1::1",
            "4000::1",
            "5f00::1",
            "fe00::1",
            "8000::1",
            "e000::1",
        ] {
            let range = blocked_range(ip.parse().unwrap());
            assert!(
                range.is_some_and(|r| r.embedded_in.is_none()),
                "{ip}: {range:?}"
            );
        }
    }

    /// One block of an IANA special-purpose registry: its prefix, name and
    /// "Globally Reachable" flag (`None` where the registry says N/A).
    type Entry = (&'static str, &'static str, Option<bool>);

    /// The IANA IPv4 Special-Purpose Address Registry, written out.
    const IANA_IPV4: &[Entry] = &[
        ("0.0.0.0/8", "\"This network\"", Some(false)),
        ("0.0.0.0/32", "\"This host on this network\"", Some(false)),
        ("10.0.0.0/8", "Private-Use", Some(false)),
        ("100.64.0.0/10", "Shared Address Space", Some(false)),
        ("127.0.0.0/8", "Loopback", Some(false)),
        ("169.254.0.0/16", "Link Local", Some(false)),
        ("172.16.0.0/12", "Private-Use", Some(false)),
        ("192.0.0.0/24", "IETF Protocol Assignments", Some(false)),
        (
            "192.0.0.0/29",
            "IPv4 Service Continuity Prefix",
            Some(false),
        ),
        ("192.0.0.8/32", "IPv4 dummy address", Some(false)),
        ("192.0.0.9/32", "Port Control Protocol Anycast", Some(true)),
        (
            "192.0.0.10/32",
            "Traversal Using Relays around NAT Anycast",
            Some(true),
        ),
        ("192.0.0.170/32", "NAT64/DNS64 Discovery", Some(false)),
        ("192.0.0.171/32", "NAT64/DNS64 Discovery", Some(false)),
        ("192.0.2.0/24", "Documentation (TEST-NET-1)", Some(false)),
        ("192.31.196.0/24", "AS112-v4", Some(true)),
        ("192.52.193.0/24", "AMT", Some(true)),
        ("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", None),
        ("192.168.0.0/16", "Private-Use", Some(false)),
        (
            "192.175.48.0/24",
            "Direct Delegation AS112 Service",
            Some(true),
        ),
        ("198.18.0.0/15", "Benchmarking", Some(false)),
        ("198.51.100.0/24", "Documentation (TEST-NET-2)", Some(false)),
        ("203.0.113.0/24", "Documentation (TEST-NET-3)", Some(false)),
        ("240.0.0.0/4", "Reserved", Some(false)),
        ("255.255.255.255/32", "Limited Broadcast", Some(false)),
    ];

    /// The IANA IPv6 Special-Purpose Address Registry, written out.
    const IANA_IPV6: &[Entry] = &[
        ("::1/128", "Loopback Address", Some(false)),
        ("::/128", "Unspecified Address", Some(false)),
        ("::ffff:0:0/96", "IPv4-mapped Address", Some(false)),
        ("64:ff9b::/96", "IPv4-IPv6 Translat.", Some(true)),
        ("64:ff9b:1::/48", "IPv4-IPv6 Translat.", Some(false)),
        ("100::/64", "Discard-Only Address Block", Some(false)),
        ("100:0:0:1::/64", "Dummy IPv6 Prefix", Some(false)),
        ("2001::/23", "IETF Protocol Assignments", Some(false)),
        ("2001::/32", "TEREDO", None),
        ("2001:1::1/128", "Port Control Protocol Anycast", Some(true)),
        (
            "2001:1::2/128",
            "Traversal Using Relays around NAT Anycast",
            Some(true),
        ),
        (
            "2001:1::3/128",
            "DNS-SD Service Registration Protocol Anycast",
            Some(true),
        ),
        ("2001:2::/48", "Benchmarking", Some(false)),
        ("2001:3::/32", "AMT", Some(true)),
        ("2001:4:112::/48", "AS112-v6", Some(true)),
        (
            "2001:10::/28",
            "Deprecated (previously ORCHID)",
            Some(false),
        ),
        ("2001:20::/28", "ORCHIDv2", Some(true)),
        (
            "2001:30::/28",
            "Drone Remote ID Protocol Entity Tags (DETs) Prefix",
            Some(true),
        ),
        ("2001:db8::/32", "Documentation", Some(false)),
        ("2002::/16", "6to4", None),
        (
            "2620:4f:8000::/48",
            "Direct Delegation AS112 Service",
            Some(true),
        ),
        ("3fff::/20", "Documentation", Some(false)),
        ("5f00::/16", "Segment Routing (SRv6) SIDs", Some(false)),
        ("fc00::/7", "Unique-Local", Some(false)),
        ("fe80::/10", "Link-Local Unicast", Some(false)),
    ];

    /// A prefix as the first and last address of its block, as integers.
    fn bounds(prefix: &str) -> (u128, u128, bool) {
        let (ip, len) = prefix.split_once('/').unwrap();
        let len: u32 = len.parse().unwrap();
        let (bits, width, v4) = match ip.parse::<IpAddr>().unwrap() {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32, true),
            IpAddr::V6(v6) => (u128::from(v6), 128, false),
        };
        let host = if len == width {
            0
        } else {
            (1u128 << (width - len)) - 1
        };
        assert_eq!(bits & host, 0, "{prefix} has host bits");
        (bits, bits | host, v4)
    }

    fn ip(bits: u128, v4: bool) -> IpAddr {
        if v4 {
            IpAddr::V4(Ipv4Addr::from(bits as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }

    /// First, middle and last address of each block, and the addresses
    /// just outside it.
    fn samples(registry: &[Entry]) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for (prefix, ..) in registry {
            let (first, last, v4) = bounds(prefix);
            let top = if v4 { u128::from(u32::MAX) } else { u128::MAX };
            out.push(ip(first, v4));
            out.push(ip(first + (last - first) / 2, v4));
            out.push(ip(last, v4));
            if first > 0 {
                out.push(ip(first - 1, v4));
            }
            if last < top {
                out.push(ip(last + 1, v4));
            }
        }
        out
    }

    fn in_entry(entry: &Entry, addr: IpAddr) -> bool {
        let (first, last, v4) = bounds(entry.0);
        let bits = match addr {
            IpAddr::V4(a) if v4 => u128::from(u32::from(a)),
            IpAddr::V6(a) if !v4 => u128::from(a),
            _ => return false,
        };
        (first..=last).contains(&bits)
    }

    /// IPv4 keeps its rules: every block the registry does not call
    /// globally reachable is refused, all of it (so are its globally
    /// reachable sub-blocks, 192.0.0.9 and .10), as is multicast; the
    /// globally reachable blocks (AS112, AMT) and everything just outside
    /// a refused block pass.
    #[test]
    fn ipv4_follows_the_iana_special_purpose_registry() {
        let multicast = ("224.0.0.0/4", "Multicast", Some(false));
        for addr in samples(IANA_IPV4) {
            let expected = IANA_IPV4
                .iter()
                .chain([&multicast])
                .any(|e| e.2 != Some(true) && in_entry(e, addr));
            assert_eq!(blocked_range(addr).is_some(), expected, "{addr}");
        }
    }

    /// IPv6 is an allow-list: global unicast minus every block of the
    /// registry, whatever its flags; only the IPv4-mapped and NAT64 forms
    /// are judged by the IPv4 address they carry.
    #[test]
    fn ipv6_allows_only_global_unicast_outside_the_iana_special_purpose_registry() {
        let mut judged_by_ipv4 = 0;
        for addr in samples(IANA_IPV6) {
            let IpAddr::V6(v6) = addr else { unreachable!() };
            let bits = u128::from(v6);
            let carried = Ipv4Addr::from(bits as u32);
            let expected = if in_entry(&IANA_IPV6[2], addr) || in_entry(&IANA_IPV6[3], addr) {
                judged_by_ipv4 += 1;
                v4_range(carried).is_some()
            } else {
                !GLOBAL_UNICAST.contains(bits) || IANA_IPV6.iter().any(|e| in_entry(e, addr))
            };
            assert_eq!(blocked_range(addr).is_some(), expected, "{addr}");
        }
        assert!(judged_by_ipv4 > 0);
        // Across the whole space, in steps of a /8: only 2000::/3 passes.
        for top in 0..=255u128 {
            let bits = (top << 120) | 0x0000_1234_5678_9abc_def0_1234_5678;
            let addr = IpAddr::V6(Ipv6Addr::from(bits));
            let expected =
                !GLOBAL_UNICAST.contains(bits) || IANA_IPV6.iter().any(|e| in_entry(e, addr));
            assert_eq!(blocked_range(addr).is_some(), expected, "{addr}");
        }
    }

    #[test]
    fn the_audit_text_names_the_range_and_the_carrier() {
        let r = blocked_range("::ffff:169.254.169.254".parse().unwrap()).unwrap();
        assert_eq!(
            r.to_string(),
            "link-local and cloud metadata (169.254.0.0/16) inside an IPv4-mapped (::ffff:0:0/96) address"
        );
    }
}
