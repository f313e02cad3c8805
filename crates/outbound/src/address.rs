//! Which IP addresses outbound requests may reach.
//!
//! Loopback, private, link-local (cloud metadata at 169.254.169.254), carrier-grade NAT,
//! multicast and other special ranges are refused unless the operator lists them in
//! `outbound.allow_private`. The check runs on the addresses a name resolves to, right before
//! connecting, so a public name that resolves to a private address is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address range: `10.0.0.0/8`, `127.0.0.1`, `fd00::/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    base: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses an address or CIDR range; `None` when it is neither.
    pub fn parse(text: &str) -> Option<IpRange> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let base: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpRange { base, prefix })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, canonical(ip)) {
            (IpAddr::V4(b), IpAddr::V4(a)) => {
                prefix_eq(b.to_bits().into(), a.to_bits().into(), 32, self.prefix)
            }
            (IpAddr::V6(b), IpAddr::V6(a)) => prefix_eq(b.to_bits(), a.to_bits(), 128, self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, bits: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    a >> shift == b >> shift
}

/// An IPv4 address carried in IPv6 (`::ffff:10.0.0.1`, NAT64 `64:ff9b::a00:1`) as IPv4, so
/// the IPv4 rules apply to it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let bits = v6.to_bits();
            if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
                return IpAddr::V4(Ipv4Addr::from_bits(bits as u32));
            }
            ip
        }
        v4 => v4,
    }
}

/// Why an address is not public, or `None` when it is.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(a) => {
            let o = a.octets();
            Some(match o {
                [0, ..] => "unspecified",
                [127, ..] => "loopback",
                [10, ..] => "private",
                [172, b, ..] if (16..32).contains(&b) => "private",
                [192, 168, ..] => "private",
                [169, 254, ..] => "link-local",
                [100, b, ..] if (64..128).contains(&b) => "shared (carrier-grade NAT)",
                [192, 0, 0, _] => "IETF protocol assignments",
                [198, 18 | 19, ..] => "benchmarking",
                [224..=239, ..] => "multicast",
                [240..=255, ..] => "reserved",
                _ => return None,
            })
        }
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            Some(if a == Ipv6Addr::LOCALHOST {
                "loopback"
            } else if a == Ipv6Addr::UNSPECIFIED {
                "unspecified"
            } else if first & 0xfe00 == 0xfc00 {
                "unique local (private)"
            } else if first & 0xffc0 == 0xfe80 {
                "link-local"
            } else if first & 0xff00 == 0xff00 {
                "multicast"
            } else {
                return None;
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn special_ranges_include_metadata_and_mapped_addresses() {
        for (addr, kind) in [
            ("169.254.169.254", "link-local"),
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("0.0.0.0", "unspecified"),
            ("::1", "loopback"),
            ("fd00::1", "unique local (private)"),
            ("fe80::1", "link-local"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
        ] {
            assert_eq!(special_range(ip(addr)), Some(kind), "{addr}");
        }
        for addr in ["8.8.8.8", "172.32.0.1", "2606:4700::1111", "100.128.0.1"] {
            assert_eq!(special_range(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn ranges_parse_and_match() {
        let r = IpRange::parse("10.0.0.0/8").unwrap();
        assert!(r.contains(ip("10.200.1.1")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(r.contains(ip("::ffff:10.0.0.1")));
        let one = IpRange::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        assert!(IpRange::parse("[::1]").unwrap().contains(ip("::1")));
        assert!(IpRange::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
        assert!(IpRange::parse("10.0.0.0/33").is_none());
        assert!(IpRange::parse("example.com").is_none());
    }
}
