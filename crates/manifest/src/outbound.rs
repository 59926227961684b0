//! Outbound HTTP destinations a function may reach: the
//! `allowed_outbound_hosts` / `allowed_private_hosts` patterns
//! (`scheme://host[:port]` with wildcards), how they are parsed, and how a
//! request's scheme, host and port are matched against them.

use crate::diagnostic::Diagnostics;
use crate::limits;
use crate::resolve::limit;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use toml::Spanned;

/// Where a function may send HTTP requests. Empty lists deny everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// Destinations that may be reached at public addresses only.
    pub allowed_hosts: Vec<HostPattern>,
    /// Destinations that may also be reached at loopback, private and other
    /// internal addresses. They are allowed destinations in their own right.
    pub private_hosts: Vec<HostPattern>,
    /// Cap on each wait of a request: connecting (DNS, TCP, TLS), the
    /// response head, and the gap between body chunks.
    pub timeout_ms: u64,
    /// Largest response body a function may receive.
    pub max_response_bytes: u64,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            allowed_hosts: Vec::new(),
            private_hosts: Vec::new(),
            timeout_ms: limits::OUTBOUND_TIMEOUT_MS.default,
            max_response_bytes: limits::MAX_OUTBOUND_RESPONSE_BYTES.default,
        }
    }
}

/// How far a request may go, once its destination matched a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Matched `allowed_outbound_hosts` only: public addresses.
    Public,
    /// Matched `allowed_private_hosts`: any address.
    Private,
}

impl Outbound {
    /// Whether a request to `scheme://host:port` may be sent, and where to.
    /// `host` is as written in the request URI (IPv6 in brackets).
    pub fn reach(&self, scheme: &str, host: &str, port: u16) -> Option<Reach> {
        let host = RequestHost::parse(host);
        if self
            .private_hosts
            .iter()
            .any(|p| p.matches_host(scheme, &host, port))
        {
            Some(Reach::Private)
        } else if self
            .allowed_hosts
            .iter()
            .any(|p| p.matches_host(scheme, &host, port))
        {
            Some(Reach::Public)
        } else {
            None
        }
    }
}

/// One `scheme://host[:port]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: SchemePattern,
    host: HostMatch,
    port: PortPattern,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemePattern {
    Any,
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// `*`: every host, names and addresses.
    Any,
    /// `*.example.com`, stored as `.example.com`: names with at least one
    /// more label in front; not `example.com` itself.
    Suffix(String),
    /// A DNS name, lower case, without a trailing dot.
    Name(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// No port written: the default port of the request's scheme.
    Default,
    Exact(u16),
}

/// Why a pattern was rejected: what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub message: String,
    pub help: String,
}

fn error(message: impl Into<String>, help: impl Into<String>) -> PatternError {
    PatternError {
        message: message.into(),
        help: help.into(),
    }
}

const SHAPE: &str =
    "write `scheme://host[:port]`, e.g. `https://api.example.com` or `http://*.example.com:8080`";

impl HostPattern {
    pub fn parse(text: &str) -> Result<HostPattern, PatternError> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(error(format!("`{text}` has no scheme"), SHAPE));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => SchemePattern::Http,
            "https" => SchemePattern::Https,
            "*" => SchemePattern::Any,
            _ => {
                return Err(error(
                    format!("scheme `{scheme}` in `{text}` is not supported"),
                    "use `http`, `https` or `*`",
                ));
            }
        };
        if rest.contains('@') {
            return Err(error(
                format!("`{text}` contains user information (`@`)"),
                "give only scheme, host and port; credentials belong in request headers",
            ));
        }
        if let Some(i) = rest.find(['/', '?', '#']) {
            return Err(error(
                format!("`{text}` has a path, query or fragment (`{}`)", &rest[i..]),
                format!("outbound hosts are matched by scheme, host and port only; {SHAPE}"),
            ));
        }
        let (host, port) = split_host_port(rest, text)?;
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => PortPattern::Exact(n),
                _ => {
                    return Err(error(
                        format!("port `{p}` in `{text}` is not valid"),
                        "use a port from 1 to 65535, or `*` for any port",
                    ));
                }
            },
        };
        Ok(HostPattern {
            scheme,
            host: parse_host(host, text)?,
            port,
        })
    }

    /// Whether the pattern accepts every host (`*`).
    pub fn any_host(&self) -> bool {
        self.host == HostMatch::Any
    }

    /// Whether `scheme://host:port` (host as written in a request URI)
    /// matches.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.matches_host(scheme, &RequestHost::parse(host), port)
    }

    fn matches_host(&self, scheme: &str, host: &RequestHost, port: u16) -> bool {
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return false,
        };
        let scheme_ok = match self.scheme {
            SchemePattern::Any => true,
            SchemePattern::Http => scheme == "http",
            SchemePattern::Https => scheme == "https",
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Default => port == default_port,
            PortPattern::Exact(p) => port == p,
        };
        let host_ok = match (&self.host, host) {
            (HostMatch::Any, _) => true,
            (HostMatch::Suffix(suffix), RequestHost::Name(name)) => {
                name.len() > suffix.len() && name.ends_with(suffix.as_str())
            }
            (HostMatch::Name(want), RequestHost::Name(name)) => want == name,
            (HostMatch::Ip(want), RequestHost::Ip(ip)) => want == ip,
            _ => false,
        };
        scheme_ok && port_ok && host_ok
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            SchemePattern::Any => "*",
            SchemePattern::Http => "http",
            SchemePattern::Https => "https",
        };
        write!(f, "{scheme}://")?;
        match &self.host {
            HostMatch::Any => f.write_str("*")?,
            HostMatch::Suffix(suffix) => write!(f, "*{suffix}")?,
            HostMatch::Name(name) => f.write_str(name)?,
            HostMatch::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            HostMatch::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
        }
        match self.port {
            PortPattern::Any => f.write_str(":*"),
            PortPattern::Default => Ok(()),
            PortPattern::Exact(p) => write!(f, ":{p}"),
        }
    }
}

/// A request's host, normalised for matching.
enum RequestHost {
    Name(String),
    Ip(IpAddr),
    /// Not a host any pattern but `*` can match (e.g. a malformed literal).
    Other,
}

impl RequestHost {
    fn parse(host: &str) -> RequestHost {
        if let Some(inner) = host.strip_prefix('[') {
            return match inner.strip_suffix(']').map(str::parse::<Ipv6Addr>) {
                Some(Ok(ip)) => RequestHost::Ip(IpAddr::V6(ip)),
                _ => RequestHost::Other,
            };
        }
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return RequestHost::Ip(IpAddr::V4(ip));
        }
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if valid_dns_name(&name) {
            RequestHost::Name(name)
        } else {
            // Numeric forms such as `2130706433` or `0x7f.1` are addresses
            // to a resolver, so they must never match a name pattern.
            RequestHost::Other
        }
    }
}

fn split_host_port<'a>(
    rest: &'a str,
    text: &str,
) -> Result<(&'a str, Option<&'a str>), PatternError> {
    if rest.starts_with('[') {
        let Some(end) = rest.find(']') else {
            return Err(error(
                format!("`{text}` has an unclosed `[`"),
                "write IPv6 addresses in brackets, e.g. `http://[2001:db8::1]:8080`",
            ));
        };
        let (host, after) = rest.split_at(end + 1);
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) if !port.is_empty() => Ok((host, Some(port))),
                _ => Err(error(
                    format!("`{text}` has `{after}` after the address"),
                    "follow the bracketed address with `:PORT`, or nothing",
                )),
            },
        };
    }
    match rest.split_once(':') {
        None => Ok((rest, None)),
        Some((_, port)) if port.contains(':') => Err(error(
            format!("`{text}` has more than one `:`"),
            "write IPv6 addresses in brackets, e.g. `http://[::1]:8080`",
        )),
        Some((host, "")) => Err(error(
            format!("`{text}` has an empty port after `{host}:`"),
            "give a port from 1 to 65535 or `*`, or leave out the `:` for the scheme's default",
        )),
        Some((host, port)) => Ok((host, Some(port))),
    }
}

fn parse_host(host: &str, text: &str) -> Result<HostMatch, PatternError> {
    if host.is_empty() {
        return Err(error(format!("`{text}` has no host"), SHAPE));
    }
    if host == "*" {
        return Ok(HostMatch::Any);
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return match inner.parse::<Ipv6Addr>() {
            Ok(ip) => Ok(HostMatch::Ip(IpAddr::V6(ip))),
            Err(_) => Err(error(
                format!("`{inner}` in `{text}` is not an IPv6 address"),
                "write IPv6 addresses in brackets, e.g. `http://[2001:db8::1]`",
            )),
        };
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(HostMatch::Ip(IpAddr::V4(ip)));
    }
    let lower = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if let Some(suffix) = lower.strip_prefix("*.") {
        if valid_dns_name(suffix) {
            return Ok(HostMatch::Suffix(format!(".{suffix}")));
        }
    } else if !lower.contains('*') && valid_dns_name(&lower) {
        return Ok(HostMatch::Name(lower));
    }
    if host.contains('*') {
        Err(error(
            format!("wildcard `{host}` in `{text}` is not supported"),
            "`*` may stand for the whole host (`*`) or for leading labels (`*.example.com`)",
        ))
    } else {
        Err(error(
            format!("`{host}` in `{text}` is neither a DNS name nor an IP address"),
            "use a name such as `api.example.com`, a dotted IPv4 address such as `10.0.0.1`, or an IPv6 address in brackets",
        ))
    }
}

/// Letters, digits, `-` and `_` in dot-separated labels of 1 to 63
/// characters, 253 in all; the last label not numeric, so that numeric
/// forms of addresses (`2130706433`, `127.1`, `0x7f.1`) are not names.
fn valid_dns_name(name: &str) -> bool {
    let labels_ok = name.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let last = name.rsplit('.').next().unwrap_or_default();
    let numeric_last = last.bytes().all(|b| b.is_ascii_digit())
        || (last.starts_with("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    name.len() <= 253 && labels_ok && !numeric_last
}

/// The outbound settings of one function.
pub(crate) struct RawOutbound<'a> {
    pub allowed_hosts: &'a [Spanned<String>],
    pub private_hosts: &'a [Spanned<String>],
    pub timeout_ms: &'a Option<Spanned<i64>>,
    pub max_response_bytes: &'a Option<Spanned<i64>>,
}

pub(crate) fn resolve(d: &mut Diagnostics, raw: RawOutbound<'_>) -> Outbound {
    let mut parse_all = |entries: &[Spanned<String>], private: bool| {
        let mut patterns: Vec<HostPattern> = Vec::new();
        for entry in entries {
            match HostPattern::parse(entry.get_ref()) {
                Ok(p) if private && p.any_host() => d.error(
                    entry.span(),
                    format!(
                        "`{}` would let the function reach every private address",
                        entry.get_ref()
                    ),
                    "name the private host (`http://localhost:8080`, `http://10.0.0.5`) or a domain (`http://*.internal`)",
                ),
                Ok(p) if !patterns.contains(&p) => patterns.push(p),
                Ok(_) => {}
                Err(e) => d.error(entry.span(), e.message, e.help),
            }
        }
        patterns
    };
    let allowed_hosts = parse_all(raw.allowed_hosts, false);
    let private_hosts = parse_all(raw.private_hosts, true);
    Outbound {
        allowed_hosts,
        private_hosts,
        timeout_ms: limit(d, raw.timeout_ms, limits::OUTBOUND_TIMEOUT_MS),
        max_response_bytes: limit(
            d,
            raw.max_response_bytes,
            limits::MAX_OUTBOUND_RESPONSE_BYTES,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> HostPattern {
        HostPattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    #[test]
    fn exact_host_matches_scheme_host_and_default_port_only() {
        let pat = p("https://api.example.com");
        assert!(pat.matches("https", "api.example.com", 443));
        assert!(pat.matches("https", "API.Example.com.", 443));
        assert!(!pat.matches("http", "api.example.com", 443));
        assert!(!pat.matches("https", "api.example.com", 8443));
        assert!(!pat.matches("https", "example.com", 443));
        assert!(!pat.matches("https", "api.example.com.evil.net", 443));
    }

    #[test]
    fn suffix_wildcard_matches_subdomains_not_the_domain() {
        let pat = p("http://*.example.com:8080");
        assert!(pat.matches("http", "a.example.com", 8080));
        assert!(pat.matches("http", "a.b.example.com", 8080));
        assert!(!pat.matches("http", "example.com", 8080));
        assert!(!pat.matches("http", "badexample.com", 8080));
        assert!(!pat.matches("http", "a.example.com", 80));
    }

    #[test]
    fn any_scheme_and_port_wildcards() {
        let pat = p("*://example.com");
        assert!(pat.matches("http", "example.com", 80));
        assert!(pat.matches("https", "example.com", 443));
        assert!(!pat.matches("http", "example.com", 443));
        let pat = p("https://*:*");
        assert!(pat.matches("https", "anything.net", 1));
        assert!(pat.matches("https", "[::1]", 443));
        assert!(!pat.matches("http", "anything.net", 80));
        assert!(!pat.matches("ftp", "anything.net", 80));
    }

    #[test]
    fn ip_literals_match_only_the_same_address() {
        let pat = p("http://127.0.0.1:*");
        assert!(pat.matches("http", "127.0.0.1", 9000));
        assert!(!pat.matches("http", "2130706433", 9000));
        assert!(!pat.matches("http", "0177.0.0.1", 9000));
        assert!(!pat.matches("http", "[::ffff:127.0.0.1]", 9000));
        let pat = p("http://[::1]:8080");
        assert!(pat.matches("http", "[::1]", 8080));
        assert!(pat.matches("http", "[0:0::1]", 8080));
        assert!(!pat.matches("http", "127.0.0.1", 8080));
    }

    #[test]
    fn numeric_hosts_are_not_names() {
        for host in [
            "2130706433",
            "0x7f000001",
            "127.1",
            "0177.0.0.1",
            "1.2.3.0x4",
        ] {
            assert!(
                matches!(RequestHost::parse(host), RequestHost::Other),
                "{host} was taken for a name"
            );
            assert!(!p("http://127.0.0.1:*").matches("http", host, 80), "{host}");
        }
    }

    #[test]
    fn patterns_display_as_written() {
        for text in [
            "https://api.example.com",
            "http://*.example.com:8080",
            "*://*:*",
            "http://[::1]:80",
            "http://10.0.0.1",
        ] {
            assert_eq!(p(text).to_string(), text);
        }
    }

    #[test]
    fn malformed_patterns_are_rejected_with_a_reason() {
        for (text, wanted) in [
            ("api.example.com", "has no scheme"),
            ("ftp://example.com", "scheme `ftp`"),
            ("https://user@example.com", "user information"),
            ("https://example.com/path", "path, query or fragment"),
            ("https://example.com?q=1", "path, query or fragment"),
            ("https://ex*ample.com", "wildcard"),
            ("https://*example.com", "wildcard"),
            ("https://a.*.com", "wildcard"),
            ("https://example.com:0", "port `0`"),
            ("https://example.com:70000", "port `70000`"),
            ("https://example.com:", "empty port"),
            ("https://::1", "more than one `:`"),
            ("https://[::1", "unclosed"),
            ("https://[::g]", "not an IPv6 address"),
            ("https://", "has no host"),
            ("https://2130706433", "neither a DNS name"),
            ("https://-bad.com", "neither a DNS name"),
        ] {
            let e = HostPattern::parse(text).expect_err(text);
            assert!(e.message.contains(wanted), "{text}: {}", e.message);
            assert!(!e.help.is_empty());
        }
    }

    #[test]
    fn private_hosts_take_precedence_and_are_allowed_by_themselves() {
        let outbound = Outbound {
            allowed_hosts: vec![p("http://*:*")],
            private_hosts: vec![p("http://localhost:8080")],
            ..Outbound::default()
        };
        assert_eq!(
            outbound.reach("http", "localhost", 8080),
            Some(Reach::Private)
        );
        assert_eq!(
            outbound.reach("http", "localhost", 8081),
            Some(Reach::Public)
        );
        assert_eq!(outbound.reach("https", "localhost", 8080), None);
        let only_private = Outbound {
            private_hosts: vec![p("http://localhost:8080")],
            ..Outbound::default()
        };
        assert_eq!(
            only_private.reach("http", "localhost", 8080),
            Some(Reach::Private)
        );
        assert_eq!(Outbound::default().reach("https", "example.com", 443), None);
    }
}
