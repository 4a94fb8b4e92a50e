//! The `client` section: how long and how much a client may take before the proxy cuts it off
//! (nginx's `client_header_timeout`, `keepalive_timeout`, `client_body_timeout`,
//! `send_timeout`, `large_client_header_buffers`, `keepalive_requests`).

use std::time::Duration;

use serde_yaml::Value;

use super::reader::{self as r, Problems};

const CLIENT: &[&str] = &[
    "header_timeout",
    "keepalive_timeout",
    "keepalive_requests",
    "body_timeout",
    "send_timeout",
    "max_request_line",
    "max_request_head",
];

/// The `http` crate refuses a request target this long or longer, so a longer line could only
/// end in a 400 from below us instead of our 414.
const LINE_CEILING: u64 = 65_534;
/// Pingora's own ceiling on a request head.
const HEAD_CEILING: u64 = 1_048_575;

/// Limits on what one client connection may take; reloadable (each new request reads them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// The whole request head: from accept for a connection's first request, from its first
    /// byte for later ones. Past it: 408 and close.
    pub header_timeout: Duration,
    /// Idle time allowed between requests on a kept-alive connection; then it is closed.
    pub keepalive_timeout: Duration,
    /// Requests served on one connection before it is closed (spreads clients over instances).
    pub keepalive_requests: u32,
    /// The whole request body, from the end of the head. Past it: 408 and close.
    pub body_timeout: Duration,
    /// One write to a client that has stopped reading; then the connection is closed.
    pub send_timeout: Duration,
    /// Longer request lines get 414.
    pub max_request_line: usize,
    /// Larger request heads (request line and headers) get 431.
    pub max_request_head: usize,
}

impl Default for ClientLimits {
    /// nginx's defaults in spirit: a minute for each wait (keep-alive 60 s rather than 75 s),
    /// an 8 KiB request line, and a head large enough for the JWT bearer tokens IdPs send.
    fn default() -> Self {
        ClientLimits {
            header_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(60),
            keepalive_requests: 1000,
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_request_line: 8 << 10,
            max_request_head: 64 << 10,
        }
    }
}

pub fn client(p: &mut Problems, v: Option<&Value>) -> ClientLimits {
    let d = ClientLimits::default();
    let Some(m) = v.and_then(|v| r::map(p, "client", v, CLIENT)) else {
        return d;
    };
    let at = "client";
    let positive = |p: &mut Problems, path: &str, v: &Value| {
        let t = r::duration(p, path, v)?;
        if t.is_zero() {
            p.add(path, "must be more than 0 (a zero timeout would cut every client off)");
            return None;
        }
        Some(t)
    };
    let size = |lo: u64, hi: u64| {
        move |p: &mut Problems, path: &str, v: &Value| {
            let n = r::size(p, path, v)?;
            if !(lo..=hi).contains(&n) {
                p.add(path, format!("must be between {lo} and {hi} bytes"));
                return None;
            }
            Some(n as usize)
        }
    };
    let limits = ClientLimits {
        header_timeout: r::opt(p, m, at, "header_timeout", d.header_timeout, positive),
        keepalive_timeout: r::opt(p, m, at, "keepalive_timeout", d.keepalive_timeout, positive),
        keepalive_requests: r::opt(p, m, at, "keepalive_requests", d.keepalive_requests, |p, path, v| {
            r::uint(p, path, v, 1, u32::MAX as u64).map(|n| n as u32)
        }),
        body_timeout: r::opt(p, m, at, "body_timeout", d.body_timeout, positive),
        send_timeout: r::opt(p, m, at, "send_timeout", d.send_timeout, positive),
        max_request_line: r::opt(
            p,
            m,
            at,
            "max_request_line",
            d.max_request_line,
            size(256, LINE_CEILING),
        ),
        max_request_head: r::opt(
            p,
            m,
            at,
            "max_request_head",
            d.max_request_head,
            size(1024, HEAD_CEILING),
        ),
    };
    if limits.max_request_line > limits.max_request_head {
        p.add(
            "client.max_request_line",
            format!(
                "is larger than client.max_request_head ({} bytes); the line is part of the head",
                limits.max_request_head
            ),
        );
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> (ClientLimits, Vec<String>) {
        let v: Value = serde_yaml::from_str(yaml).expect("yaml");
        let mut p = Problems::default();
        let c = client(&mut p, Some(&v));
        (c, p.0.iter().map(|x| x.to_string()).collect())
    }

    #[test]
    fn absent_keys_take_nginx_like_defaults() {
        let mut p = Problems::default();
        assert_eq!(client(&mut p, None), ClientLimits::default());
        let (c, errs) = parse("{header_timeout: 10s, max_request_head: 16KiB}");
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert_eq!(c.max_request_head, 16 << 10);
        assert_eq!(c.keepalive_timeout, Duration::from_secs(60));
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let (_, errs) = parse("{header_timeout: 0s, max_request_line: 100, keepalive_requests: 0, idle: 5s}");
        let all = errs.join("\n");
        assert!(all.contains("client.header_timeout: must be more than 0"), "{all}");
        assert!(all.contains("client.max_request_line: must be between 256"), "{all}");
        assert!(all.contains("client.keepalive_requests"), "{all}");
        assert!(all.contains("client.idle: unknown key"), "{all}");
        let (_, errs) = parse("{max_request_line: 32KiB, max_request_head: 16KiB}");
        assert!(errs[0].contains("larger than client.max_request_head"), "{errs:?}");
    }
}
