//! Which IP addresses an outbound request may not reach unless its host is
//! allowed to be private: loopback, private, link-local (cloud metadata),
//! CGNAT, unique-local, multicast, reserved and documentation ranges, also
//! when an IPv4 address is embedded in an IPv6 one.

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

fn v6_range(ip: Ipv6Addr) -> Option<BlockedRange> {
    let s = ip.segments();
    let own = |range| {
        Some(BlockedRange {
            range,
            embedded_in: None,
        })
    };
    // An IPv6 form that carries an IPv4 address is judged by that address:
    // the kernel (mapped), a relay or a translator would deliver it there.
    let embedded = |outer: &'static str, hi: u16, lo: u16| {
        let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        v4_range(v4).map(|range| BlockedRange {
            range,
            embedded_in: Some(outer),
        })
    };
    if ip.is_unspecified() {
        return own("unspecified (::)");
    }
    if ip.is_loopback() {
        return own("loopback (::1)");
    }
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => embedded("IPv4-mapped (::ffff:0:0/96)", hi, lo),
        [0, 0, 0, 0, 0, 0, hi, lo] => embedded("IPv4-compatible (::/96)", hi, lo),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => embedded("NAT64 (64:ff9b::/96)", hi, lo),
        [0x64, 0xff9b, 1, ..] => own("local-use NAT64 (64:ff9b:1::/48)"),
        [0x0100, 0, 0, 0, ..] => own("discard-only (100::/64)"),
        [0x2002, hi, lo, ..] => embedded("6to4 (2002::/16)", hi, lo),
        // Teredo carries the client's public IPv4 address inverted.
        [0x2001, 0, _, _, _, _, hi, lo] => embedded("Teredo (2001::/32)", !hi, !lo),
        [0x2001, 0x0db8, ..] => own("documentation (2001:db8::/32)"),
        [first, ..] if first & 0xfff0 == 0x3ff0 => own("documentation (3fff::/20)"),
        [first, ..] if first & 0xfe00 == 0xfc00 => own("unique local (fc00::/7)"),
        [first, ..] if first & 0xffc0 == 0xfe80 => own("link-local (fe80::/10)"),
        [first, ..] if first & 0xffc0 == 0xfec0 => own("site-local (fec0::/10)"),
        [first, ..] if first & 0xff00 == 0xff00 => own("multicast (ff00::/8)"),
        _ => None,
    }
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
    fn embedded_ipv4_addresses_are_judged_by_the_ipv4_address() {
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:c0a8:0101::1",
            // Teredo with client 127.0.0.1 (inverted: 80ff:fffe).
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
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
            "2002:808:808::1",
            "2001:4860:4860::8888",
            "2606:4700::1111",
        ] {
            assert!(!blocked(ip), "{ip} should pass");
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
