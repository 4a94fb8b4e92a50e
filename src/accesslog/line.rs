//! One request as one JSON object, written by hand into a pre-sized buffer (a generic
//! serializer would allocate per field). Fields always appear, in this order; an unknown value
//! is `null`. Strings are escaped per RFC 8259: `"`, `\` and control characters, and each byte
//! that is not UTF-8 becomes `\u00XX` (its Latin-1 reading), so every line parses as JSON.

use std::net::{IpAddr, SocketAddr};

/// The fields of every line, in the order they are written.
pub const FIELDS: [&str; 25] = [
    "ts",
    "request_id",
    "client_ip",
    "method",
    "path",
    "status",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "upstream",
    "backend",
    "upstream_status",
    "upstream_ms",
    "tenant",
    "credential",
    "endpoint",
    "operation",
    "attempts",
    "cache",
    "rate_limit",
    "tls_version",
    "sni",
    "http_version",
    "user_agent",
    "error",
];

/// Sized for a typical line, so most lines never regrow.
pub const LINE_CAPACITY: usize = 640;

/// A policy's verdict on this request, as logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit<'a> {
    /// No policy counted this request.
    None,
    Allowed,
    Limited(&'a str),
}

/// Everything a line says. Headers are never logged whole, so no credential can leak: only
/// `User-Agent`, and the query through [`super::redact`].
pub struct Record<'a> {
    pub unix_ms: u64,
    pub request_id: Option<&'a [u8]>,
    pub client_ip: Option<IpAddr>,
    pub method: &'a str,
    pub path: &'a [u8],
    pub query: Option<&'a [u8]>,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_us: u64,
    pub upstream: Option<&'a str>,
    pub backend: Option<SocketAddr>,
    pub upstream_status: Option<u16>,
    pub upstream_us: Option<u64>,
    pub tenant: Option<&'a [u8]>,
    /// The name of the route's `auth.tokens` entry the request matched (never the token).
    pub credential: Option<&'a str>,
    /// A metrics label value (plain word, written unescaped), like `operation`.
    pub endpoint: &'static str,
    pub operation: &'static str,
    pub attempts: usize,
    /// hit, miss, store, bypass or `-`.
    pub cache: &'static str,
    pub rate_limit: RateLimit<'a>,
    pub tls_version: Option<&'a str>,
    pub sni: Option<&'a str>,
    pub http_version: &'static str,
    pub user_agent: Option<&'a [u8]>,
    pub error: Option<&'a str>,
}

/// Appends the line (with its newline) to `out`. Keys and the punctuation around them are
/// written as literal chunks (one copy each, of a length known at compile time): measured, a
/// generic key writer cost ~70 instructions a field, a quarter of the whole line.
pub fn encode(r: &Record<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"ts\":\"");
    crate::timefmt::write_rfc3339_ms(out, r.unix_ms);
    out.extend_from_slice(b"\",\"request_id\":");
    opt_str(out, r.request_id);
    out.extend_from_slice(b",\"client_ip\":");
    match r.client_ip {
        Some(ip) => {
            out.push(b'"');
            out.extend_from_slice(crate::proxy::policy::ip_text(ip, &mut [0; 45]));
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"method\":");
    // An HTTP method is a token (RFC 9110 §9.1): nothing in it needs escaping.
    quoted(out, r.method.as_bytes());
    out.extend_from_slice(b",\"path\":\"");
    escape(r.path, out);
    if let Some(q) = r.query {
        out.push(b'?');
        let mut redacted = Vec::with_capacity(q.len() + 8);
        super::redact::query(q, &mut redacted);
        escape(&redacted, out);
    }
    out.extend_from_slice(b"\",\"status\":");
    uint(out, u64::from(r.status));
    out.extend_from_slice(b",\"bytes_in\":");
    uint(out, r.bytes_in);
    out.extend_from_slice(b",\"bytes_out\":");
    uint(out, r.bytes_out);
    out.extend_from_slice(b",\"duration_ms\":");
    ms(out, r.duration_us);
    out.extend_from_slice(b",\"upstream\":");
    opt_str(out, r.upstream.map(str::as_bytes));
    out.extend_from_slice(b",\"backend\":");
    match r.backend {
        Some(a) => {
            out.push(b'"');
            let mut buf = [0; 45];
            let ip = crate::proxy::policy::ip_text(a.ip(), &mut buf);
            if a.is_ipv6() {
                out.push(b'[');
                out.extend_from_slice(ip);
                out.push(b']');
            } else {
                out.extend_from_slice(ip);
            }
            out.push(b':');
            uint(out, u64::from(a.port()));
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"upstream_status\":");
    match r.upstream_status {
        Some(s) => uint(out, u64::from(s)),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"upstream_ms\":");
    match r.upstream_us {
        Some(us) => ms(out, us),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"tenant\":");
    opt_str(out, r.tenant);
    out.extend_from_slice(b",\"credential\":");
    opt_str(out, r.credential.map(str::as_bytes));
    out.extend_from_slice(b",\"endpoint\":");
    quoted(out, r.endpoint.as_bytes());
    out.extend_from_slice(b",\"operation\":");
    quoted(out, r.operation.as_bytes());
    out.extend_from_slice(b",\"attempts\":");
    uint(out, r.attempts as u64);
    out.extend_from_slice(b",\"cache\":");
    quoted(out, r.cache.as_bytes());
    out.extend_from_slice(b",\"rate_limit\":");
    match r.rate_limit {
        RateLimit::None => out.extend_from_slice(b"\"-\""),
        RateLimit::Allowed => out.extend_from_slice(b"\"allowed\""),
        RateLimit::Limited(p) => {
            out.extend_from_slice(b"\"limited:");
            escape(p.as_bytes(), out);
            out.push(b'"');
        }
    }
    out.extend_from_slice(b",\"tls_version\":");
    opt_str(out, r.tls_version.map(str::as_bytes));
    out.extend_from_slice(b",\"sni\":");
    opt_str(out, r.sni.map(str::as_bytes));
    out.extend_from_slice(b",\"http_version\":");
    quoted(out, r.http_version.as_bytes());
    out.extend_from_slice(b",\"user_agent\":");
    opt_str(out, r.user_agent);
    out.extend_from_slice(b",\"error\":");
    opt_str(out, r.error.map(str::as_bytes));
    out.extend_from_slice(b"}\n");
}

/// A value from a closed set of plain words (labels, versions): written without the escape
/// check, which costs more than the copy for words this short.
fn quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(s);
    out.push(b'"');
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    escape(s, out);
    out.push(b'"');
}

fn opt_str(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn uint(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(crate::text::decimal(n, &mut [0; 20]));
}

/// Microseconds as milliseconds with three decimals (`12.345`).
fn ms(out: &mut Vec<u8>, us: u64) {
    uint(out, us / 1000);
    let frac = us % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// JSON string content for `s` (without the quotes). Most values are printable ASCII without
/// `"` or `\`: those are checked eight bytes at a time and copied whole.
pub fn escape(s: &[u8], out: &mut Vec<u8>) {
    if plain(s) {
        out.extend_from_slice(s);
        return;
    }
    for chunk in s.utf8_chunks() {
        escape_valid(chunk.valid().as_bytes(), out);
        for b in chunk.invalid() {
            push_u(out, *b);
        }
    }
}

/// Whether every byte is printable ASCII other than `"` and `\` (nothing to escape).
fn plain(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Per byte: is it zero? (exact as to whether any byte of the word is).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut words = s.chunks_exact(8);
    for w in &mut words {
        let Ok(bytes) = <[u8; 8]>::try_from(w) else {
            return false;
        };
        let x = u64::from_ne_bytes(bytes);
        let special = x.wrapping_sub(ONES * 0x20) & !x & HIGH // a byte below 0x20
            | zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | zero(x ^ (ONES * 0x7f))
            | x & HIGH; // not ASCII: the slow path checks UTF-8
        if special != 0 {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

fn escape_valid(s: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        if esc.is_empty() {
            push_u(out, b);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

fn push_u(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record<'static> {
        Record {
            unix_ms: 1_700_000_000_123,
            request_id: Some(b"abc"),
            client_ip: Some("203.0.113.7".parse().unwrap()),
            method: "PATCH",
            path: b"/scim/v2/Users/42",
            query: Some(b"filter=userName%20eq%20%22bjensen%22&access_token=SECRET"),
            status: 200,
            bytes_in: 120,
            bytes_out: 512,
            duration_us: 12_345,
            upstream: Some("scim"),
            backend: Some("[::1]:8001".parse().unwrap()),
            upstream_status: Some(200),
            upstream_us: Some(9_001),
            tenant: Some(b"acme"),
            credential: Some("entra-acme"),
            endpoint: "users",
            operation: "deprovision",
            attempts: 1,
            cache: "-",
            rate_limit: RateLimit::Limited("per-ip"),
            tls_version: Some("TLSv1.3"),
            sni: Some("scim.example"),
            http_version: "HTTP/1.1",
            user_agent: Some(b"Azure AD \"SCIM\"\x01\xff"),
            error: None,
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_fields_in_order() {
        let mut out = Vec::with_capacity(LINE_CAPACITY);
        encode(&record(), &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let text = String::from_utf8_lossy(&out);
        let at: Vec<usize> = FIELDS
            .iter()
            .map(|k| text.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "fixed order: {text}");
        assert_eq!(v.as_object().unwrap().len(), FIELDS.len());
        assert_eq!(v["ts"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["client_ip"], "203.0.113.7");
        assert_eq!(
            v["path"],
            r#"/scim/v2/Users/42?filter=userName eq "***"&access_token=***"#
        );
        assert_eq!(v["duration_ms"], 12.345);
        assert_eq!(v["upstream_ms"], 9.001);
        assert_eq!(v["backend"], "[::1]:8001");
        assert_eq!(v["rate_limit"], "limited:per-ip");
        assert_eq!(v["credential"], "entra-acme");
        assert_eq!(v["user_agent"], "Azure AD \"SCIM\"\u{1}\u{ff}");
        assert_eq!(v["error"], serde_json::Value::Null);
        assert!(!text.contains("SECRET"));
    }

    #[test]
    fn escaping() {
        let mut out = Vec::new();
        escape("a\"b\\c\n\t\r\x00\x7fé€".as_bytes(), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#"a\"b\\c\n\t\r\u0000\u007fé€"#);
        let mut out = Vec::new();
        escape(b"ok\xc3(\xff", &mut out);
        assert_eq!(out, br"ok\u00c3(\u00ff".to_vec());
        let s = format!("\"{}\"", String::from_utf8(out).unwrap());
        assert_eq!(serde_json::from_str::<String>(&s).unwrap(), "ok\u{c3}(\u{ff}");
    }

    #[test]
    fn the_fast_path_sends_every_special_byte_to_the_slow_one() {
        for b in 0..=255u8 {
            let want = (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
            for at in [0, 3, 7, 8, 12, 15, 16] {
                let mut s = vec![b'a'; 17];
                s[at] = b;
                assert_eq!(plain(&s), want, "byte {b:#x} at {at}");
            }
        }
        assert!(plain(b""));
        assert!(plain(b"/scim/v2/Users/2819c223-7f76-453a-919d-413861904646"));
    }

    #[test]
    fn nulls_and_numbers() {
        let mut r = record();
        r.request_id = None;
        r.client_ip = None;
        r.query = None;
        r.backend = None;
        r.upstream_status = None;
        r.upstream_us = None;
        r.rate_limit = RateLimit::None;
        r.credential = None;
        r.duration_us = 7;
        r.bytes_out = u64::MAX;
        let mut out = Vec::new();
        encode(&r, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["request_id"], serde_json::Value::Null);
        assert_eq!(v["path"], "/scim/v2/Users/42");
        assert_eq!(v["duration_ms"], 0.007);
        assert_eq!(v["bytes_out"], u64::MAX);
        assert_eq!(v["rate_limit"], "-");
        assert_eq!(v["credential"], serde_json::Value::Null);
    }
}
