//! The real client address behind trusted proxies: the configured header (`real_ip_header`,
//! `X-Forwarded-For` by default) is believed only when the TCP peer is one of
//! `trusted_proxies`, and then only up to the first hop that is not trusted (read right to
//! left, as nginx's `real_ip_recursive on` does) — anything left of that hop was written by
//! the client and could be forged.
//!
//! [`real_client_ip`] is the one entry point: `client_ip` keys (affinity, rate limits), the
//! access log and header rules' `$remote_addr` all call it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderName;
use once_cell::sync::Lazy;

pub const DEFAULT_HEADER: HeaderName = HeaderName::from_static("x-forwarded-for");

/// `trusted_proxies` and `real_ip_header` of the config in force (replaced whole on reload).
struct RealIp {
    trusted: Vec<Cidr>,
    header: HeaderName,
}

static REAL_IP: Lazy<ArcSwap<RealIp>> = Lazy::new(|| {
    ArcSwap::from_pointee(RealIp {
        trusted: Vec::new(),
        header: DEFAULT_HEADER,
    })
});

/// Whether any proxy is trusted: without one, a request reads this flag and nothing else.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Sets the trusted proxies and the header they write (at start, and by a reload).
pub fn configure(trusted: Vec<Cidr>, header: HeaderName) {
    let active = !trusted.is_empty();
    REAL_IP.store(Arc::new(RealIp { trusted, header }));
    ACTIVE.store(active, Ordering::Release);
}

/// The client behind `peer` (the TCP peer's address), read from the request's `headers` with
/// the configured trusted proxies and header. Without `trusted_proxies` this is `peer`, at the
/// cost of one atomic load.
pub fn real_client_ip(peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
    if !ACTIVE.load(Ordering::Acquire) {
        return peer;
    }
    let cfg = REAL_IP.load();
    if cfg.trusted.is_empty() {
        return peer;
    }
    let values = headers.get_all(&cfg.header).iter().map(|v| v.as_bytes());
    client_ip(peer, values, &cfg.trusted)
}

/// Whether the `X-Forwarded-For` chain a request came with is passed on (with the peer
/// appended). Without `trusted_proxies` it always is (a proxy that was told of no load balancer
/// cannot tell); with them, only from a trusted peer: anything else is the client's own writing,
/// and an upstream reading the leftmost entry would believe it.
pub fn keeps_chain_from(peer: IpAddr) -> bool {
    if !ACTIVE.load(Ordering::Acquire) {
        return true;
    }
    let cfg = REAL_IP.load();
    cfg.trusted.is_empty() || trusted(peer, &cfg.trusted)
}

/// An IPv4 or IPv6 network, `10.0.0.0/8` or `2001:db8::/32` (a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/len` or `addr`; the error says what to write instead.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP network; write e.g. `10.0.0.0/8` or `2001:db8::/32`"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`{s}`: the prefix length must be 0 to {max}")),
            },
        };
        let c = Cidr { net, prefix };
        if c.masked(net) != net {
            return Err(format!(
                "`{s}` has host bits set; write the network, `{}/{prefix}`",
                c.masked(net)
            ));
        }
        Ok(c)
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(a) => {
                let m = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => {
                let m = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & m).into())
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // A v4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && self.masked(ip) == self.net
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

fn trusted(ip: IpAddr, proxies: &[Cidr]) -> bool {
    proxies.iter().any(|c| c.contains(ip))
}

/// One hop of the header: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(item: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(item).ok()?.trim();
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

/// The client's address: the peer itself unless it is a trusted proxy; then the rightmost
/// hop that is not trusted (`headers`: every value of the client-address header, in order; an
/// `X-Real-IP` holds one address, an `X-Forwarded-For` a comma list).
/// An unreadable hop ends the walk at the last good one, since nothing further left can be
/// believed either.
pub fn client_ip<'a>(peer: IpAddr, headers: impl DoubleEndedIterator<Item = &'a [u8]>, proxies: &[Cidr]) -> IpAddr {
    if !trusted(peer, proxies) {
        return peer;
    }
    let mut ip = peer;
    for value in headers.rev() {
        for item in value.rsplit(|b| *b == b',') {
            if item.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_hop(item) {
                Some(hop) => {
                    ip = hop;
                    if !trusted(hop, proxies) {
                        return hop;
                    }
                }
                None => return ip,
            }
        }
    }
    ip
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| Cidr::parse(s).unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_matches_v4_and_v6() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "v4-mapped peers");
        assert!(!c.contains(ip("::1")));
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::2")));
        assert_eq!(Cidr::parse(" 192.168.0.0/16 ").unwrap().to_string(), "192.168.0.0/16");
    }

    #[test]
    fn bad_networks_are_explained() {
        assert!(Cidr::parse("10.0.0.1/8").unwrap_err().contains("`10.0.0.0/8`"));
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(Cidr::parse("::/129").unwrap_err().contains("0 to 128"));
        assert!(Cidr::parse("example.com/8").unwrap_err().contains("not an IP network"));
        assert!(Cidr::parse("10.0.0.0/x").is_err());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let t = cidrs(&["10.0.0.0/8", "::1"]);
        let xff = |v: &'static [&'static str]| v.iter().map(|s| s.as_bytes());
        // An untrusted peer's header is ignored.
        assert_eq!(client_ip(ip("203.0.113.9"), xff(&["1.2.3.4"]), &t), ip("203.0.113.9"));
        // A trusted peer: the rightmost untrusted hop, skipping trusted ones.
        assert_eq!(
            client_ip(ip("10.0.0.1"), xff(&["6.6.6.6, 1.2.3.4, 10.0.0.7"]), &t),
            ip("1.2.3.4")
        );
        // Several header lines are one list.
        assert_eq!(
            client_ip(ip("10.0.0.1"), xff(&["6.6.6.6", "1.2.3.4", "10.9.9.9"]), &t),
            ip("1.2.3.4")
        );
        // Ports and brackets.
        assert_eq!(client_ip(ip("::1"), xff(&["[2001:db8::5]:443"]), &t), ip("2001:db8::5"));
        assert_eq!(client_ip(ip("::1"), xff(&["1.2.3.4:5678"]), &t), ip("1.2.3.4"));
        // No header, or only trusted hops: the leftmost known address.
        assert_eq!(client_ip(ip("10.0.0.1"), xff(&[]), &t), ip("10.0.0.1"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), xff(&["10.0.0.2, 10.0.0.3"]), &t),
            ip("10.0.0.2")
        );
        // Garbage stops the walk at the last readable hop.
        assert_eq!(
            client_ip(ip("10.0.0.1"), xff(&["1.2.3.4, nonsense, 10.0.0.3"]), &t),
            ip("10.0.0.3")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), xff(&[" , 1.2.3.4 ,"]), &t), ip("1.2.3.4"));
        // No trusted proxies: always the peer.
        assert_eq!(client_ip(ip("10.0.0.1"), xff(&["1.2.3.4"]), &[]), ip("10.0.0.1"));
    }

    #[test]
    fn the_configured_header_names_the_client_of_a_trusted_peer() {
        // The one test that sets the process-wide settings (others use `client_ip`).
        let peer = ip("10.0.0.1");
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, http::HeaderValue::from_static(v));
            }
            h
        };
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4"), ("x-forwarded-for", "10.0.0.9")]);
        let real = headers(&[("x-real-ip", "198.51.100.7"), ("x-forwarded-for", "1.2.3.4")]);
        let real_list = headers(&[("x-real-ip", "6.6.6.6, 198.51.100.8")]);

        configure(Vec::new(), DEFAULT_HEADER);
        assert_eq!(real_client_ip(peer, &xff), peer, "no trusted proxies: the peer");

        configure(cidrs(&["10.0.0.0/8"]), DEFAULT_HEADER);
        assert_eq!(real_client_ip(peer, &xff), ip("1.2.3.4"), "every field, from the right");
        assert_eq!(real_client_ip(peer, &real), ip("1.2.3.4"), "X-Real-IP is not read");
        assert_eq!(
            real_client_ip(ip("203.0.113.1"), &xff),
            ip("203.0.113.1"),
            "untrusted peer"
        );

        configure(cidrs(&["10.0.0.0/8"]), HeaderName::from_static("x-real-ip"));
        assert_eq!(real_client_ip(peer, &real), ip("198.51.100.7"), "a single address");
        assert_eq!(real_client_ip(peer, &real_list), ip("198.51.100.8"), "or a list");
        assert_eq!(real_client_ip(peer, &xff), peer, "X-Forwarded-For is not read");
        assert_eq!(real_client_ip(ip("203.0.113.1"), &real), ip("203.0.113.1"));

        configure(Vec::new(), DEFAULT_HEADER);
    }
}
