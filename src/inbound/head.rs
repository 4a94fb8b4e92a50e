//! What an HTTP/1 request head must be before Pingora parses it. Pure: bytes in, verdict out.
//!
//! Pingora 0.9.1 accepts several heads nginx refuses (CL together with TE, `gzip, chunked`,
//! a missing Host, a target without a leading `/`, control bytes it percent-encodes into the
//! target) and answers what it does refuse with an empty 400. This runs the same parser Pingora
//! uses (httparse, same limits) plus the checks nginx makes, so every refusal is decided here,
//! with a status that says what was wrong and a SCIM error body.

use std::mem::MaybeUninit;

/// Pingora's header count limit (`MAX_HEADERS`): more is a refusal either way.
const MAX_HEADERS: usize = 256;

/// Why a head was refused: the metric label, the status, and what the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Unparseable or ambiguous: a smuggling pattern, a bad byte, a missing Host (400).
    BadRequest,
    /// The request line is over `client.max_request_line` (414).
    LineTooLong,
    /// The head is over `client.max_request_head`, or has too many headers (431).
    HeadTooLarge,
    /// A transfer-coding other than a lone `chunked` (501).
    NotImplemented,
    /// An HTTP version other than 1.0 and 1.1, the HTTP/2 preface included (505).
    Version,
    /// TLS handshake bytes on a plaintext listener (400).
    TlsOnPlaintext,
    /// The head did not arrive within `client.header_timeout` (408).
    HeaderTimeout,
    /// The listener is at `max_connections` (503).
    OverCapacity,
    /// CONNECT: no tunnels through a SCIM proxy (405).
    Method,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::BadRequest,
        Reason::LineTooLong,
        Reason::HeadTooLarge,
        Reason::NotImplemented,
        Reason::Version,
        Reason::TlsOnPlaintext,
        Reason::HeaderTimeout,
        Reason::OverCapacity,
        Reason::Method,
    ];

    pub fn status(self) -> u16 {
        match self {
            Reason::BadRequest | Reason::TlsOnPlaintext => 400,
            Reason::LineTooLong => 414,
            Reason::HeadTooLarge => 431,
            Reason::NotImplemented => 501,
            Reason::Version => 505,
            Reason::HeaderTimeout => 408,
            Reason::OverCapacity => 503,
            Reason::Method => 405,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "bad_request",
            Reason::LineTooLong => "line_too_long",
            Reason::HeadTooLarge => "head_too_large",
            Reason::NotImplemented => "not_implemented",
            Reason::Version => "version",
            Reason::TlsOnPlaintext => "tls_on_plaintext",
            Reason::HeaderTimeout => "header_timeout",
            Reason::OverCapacity => "over_capacity",
            Reason::Method => "method",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A refusal: why, and the `detail` of the SCIM error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub detail: &'static str,
}

const fn refuse(reason: Reason, detail: &'static str) -> Verdict {
    Verdict::Refuse(Refusal { reason, detail })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not a whole head yet, nothing wrong so far.
    Partial,
    /// A whole head Pingora may have.
    Complete,
    Refuse(Refusal),
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_line: usize,
    pub max_head: usize,
    /// The listener is plaintext (TLS bytes there are a client configured for https).
    pub plaintext: bool,
}

/// Judges the bytes read so far. `fresh` is where this read's bytes start: a full parse runs
/// only when a line ended in them, so a client dribbling one byte at a time costs a scan of
/// its bytes, not a parse per byte.
pub fn inspect(buf: &[u8], fresh: usize, limits: &Limits) -> Verdict {
    // Empty lines before the request line are allowed (RFC 9112 §2.2); httparse skips them.
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buf.len());
    let head = &buf[start..];
    if head.is_empty() {
        return if buf.len() > limits.max_line {
            refuse(Reason::BadRequest, "empty lines instead of a request")
        } else {
            Verdict::Partial
        };
    }
    if limits.plaintext && head[0] == 0x16 {
        return refuse(
            Reason::TlsOnPlaintext,
            "a TLS handshake on a plaintext listener: use https:// for this port, or http:// here",
        );
    }
    if head.starts_with(b"PRI * HTTP/2") || b"PRI * HTTP/2".starts_with(head) && head.len() >= 5 {
        return refuse(
            Reason::Version,
            "HTTP/2 without TLS is served only on listeners with `http2: true`; use HTTP/1.1 or https://",
        );
    }
    let line_end = head.iter().position(|&b| b == b'\n');
    let line_len = line_end.unwrap_or(head.len());
    if line_len > limits.max_line {
        return refuse(
            Reason::LineTooLong,
            "the request line is longer than this listener accepts",
        );
    }
    let Some(line_end) = line_end else {
        // The method is the first thing on the line: garbage shows there at once, rather than
        // after the header timeout.
        let method = head.split(|&b| b == b' ').next().unwrap_or(head);
        if !method.iter().all(|&b| is_tchar(b)) {
            return refuse(
                Reason::BadRequest,
                "not an HTTP request: the method has a byte no method can have",
            );
        }
        return Verdict::Partial;
    };
    if !buf[fresh.min(buf.len())..].contains(&b'\n') {
        // No line finished in this read: the previous parse still stands.
        return over_size(buf.len(), limits);
    }
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Partial) => over_size(buf.len(), limits),
        Ok(httparse::Status::Complete(len)) => {
            if len > limits.max_head {
                return refuse(
                    Reason::HeadTooLarge,
                    "the request head is larger than this listener accepts",
                );
            }
            semantics(&req)
        }
        Err(e) => parse_error(e, &head[..line_end]),
    }
}

fn over_size(len: usize, limits: &Limits) -> Verdict {
    if len > limits.max_head {
        refuse(
            Reason::HeadTooLarge,
            "the request head is larger than this listener accepts",
        )
    } else {
        Verdict::Partial
    }
}

fn parse_error(e: httparse::Error, line: &[u8]) -> Verdict {
    use httparse::Error as E;
    match e {
        E::TooManyHeaders => refuse(Reason::HeadTooLarge, "more than 256 header fields"),
        E::Version | E::Token if is_http09(line) => refuse(Reason::Version, "HTTP/0.9 is not served; send HTTP/1.1"),
        E::Version => {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
            if version.starts_with(b"HTTP/") && line.split(|&b| b == b' ').count() == 3 {
                refuse(Reason::Version, "only HTTP/1.0 and HTTP/1.1 are served on this listener")
            } else {
                refuse(
                    Reason::BadRequest,
                    "malformed request line: a space, control or non-ASCII byte in the target, or a bad version",
                )
            }
        }
        E::HeaderName => refuse(
            Reason::BadRequest,
            "malformed header field: a space before the colon, a folded line (obs-fold) or a byte not allowed in a name",
        ),
        E::HeaderValue => refuse(
            Reason::BadRequest,
            "a header value holds a byte that is not allowed (NUL, CR or another control character)",
        ),
        E::Token => refuse(
            Reason::BadRequest,
            "malformed request line: a space, control or non-ASCII byte in the method or target",
        ),
        E::NewLine | E::Status => refuse(Reason::BadRequest, "malformed line ending in the request head"),
    }
}

/// `GET /path` and nothing more: an HTTP/0.9 request line.
fn is_http09(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), None) => !m.is_empty() && m.iter().all(|&b| is_tchar(b)) && t.first() == Some(&b'/'),
        _ => false,
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The checks on a parsed head that httparse leaves to its caller.
fn semantics(req: &httparse::Request<'_, '_>) -> Verdict {
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return refuse(Reason::BadRequest, "incomplete request line");
    };
    if method == "CONNECT" {
        return refuse(
            Reason::Method,
            "CONNECT is not served: this is a SCIM proxy, not a tunnel",
        );
    }
    let mut hosts = 0usize;
    let mut host: &[u8] = b"";
    let mut length: Option<u64> = None;
    let mut te_lines = 0usize;
    let mut te_chunked = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            host = h.value;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = match content_length(h.value) {
                Ok(n) => n,
                Err(why) => return refuse(Reason::BadRequest, why),
            };
            if length.is_some_and(|l| l != n) {
                return refuse(Reason::BadRequest, DIFFERENT_LENGTHS);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_lines += 1;
            te_chunked = trim(h.value).eq_ignore_ascii_case(b"chunked");
        }
    }
    if te_lines > 0 {
        if minor == 0 {
            return refuse(Reason::BadRequest, "Transfer-Encoding in an HTTP/1.0 request");
        }
        if length.is_some() {
            return refuse(
                Reason::BadRequest,
                "both Content-Length and Transfer-Encoding: the body's length is ambiguous",
            );
        }
        if te_lines > 1 || !te_chunked {
            return refuse(
                Reason::NotImplemented,
                "only `Transfer-Encoding: chunked` is supported; send the body uncompressed",
            );
        }
    }
    match hosts {
        0 if minor == 1 => return refuse(Reason::BadRequest, "an HTTP/1.1 request needs a Host header"),
        0 | 1 => {}
        _ => return refuse(Reason::BadRequest, "more than one Host header"),
    }
    if host.contains(&b'@') {
        return refuse(Reason::BadRequest, "a Host with user information");
    }
    target_verdict(method, target.as_bytes(), host)
}

fn target_verdict(method: &str, target: &[u8], host: &[u8]) -> Verdict {
    if std::str::from_utf8(target).is_err() {
        return refuse(Reason::BadRequest, "the request target is not valid UTF-8");
    }
    let path_and_query = if target.first() == Some(&b'/') {
        target
    } else if target == b"*" {
        if method == "OPTIONS" {
            return Verdict::Complete;
        }
        return refuse(Reason::BadRequest, "`*` is a target only for OPTIONS");
    } else if let Some(rest) = strip_scheme(target) {
        // Absolute-form (RFC 9112 §3.2.2): the authority must be the Host the client sent.
        let end = rest
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() || authority.contains(&b'@') {
            return refuse(Reason::BadRequest, "absolute-form target without a plain host");
        }
        // Byte for byte, as Pingora compares them next: a case difference would pass here
        // and get Pingora's empty 400 instead of ours.
        if authority != host {
            return refuse(
                Reason::BadRequest,
                "absolute-form target names another host than the Host header",
            );
        }
        &rest[end..]
    } else {
        return refuse(Reason::BadRequest, "the request target must start with `/`");
    };
    path_verdict(path_and_query)
}

fn strip_scheme(t: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&t[scheme.len()..]);
        }
    }
    None
}

/// The path may not hide a `/` or `\` behind percent-encoding or climb above the root, since
/// an upstream that decodes differently from our router would see another path than we routed;
/// every `%` must start an escape; bytes the `http` crate refuses are refused here first.
/// No `;`, raw or encoded, either: SCIM has no path (matrix) parameters, and servers that strip
/// them (Tomcat, Spring) serve `/Bulk;v=1` as `/Bulk`, past routes that filter on the class.
pub fn path_verdict(pq: &[u8]) -> Verdict {
    let path_end = pq.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(pq.len());
    let (path, rest) = pq.split_at(path_end);
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b'%' => {
                let (Some(&h), Some(&l)) = (path.get(i + 1), path.get(i + 2)) else {
                    return refuse(Reason::BadRequest, "a `%` in the path that does not start an escape");
                };
                if !h.is_ascii_hexdigit() || !l.is_ascii_hexdigit() {
                    return refuse(Reason::BadRequest, "a `%` in the path that does not start an escape");
                }
                if matches!((h, l.to_ascii_lowercase()), (b'2', b'f') | (b'5', b'c')) {
                    return refuse(Reason::BadRequest, "an encoded `/` or `\\` in the path");
                }
                if (h, l.to_ascii_lowercase()) == (b'3', b'b') {
                    return refuse(Reason::BadRequest, PATH_PARAMETER);
                }
                i += 3;
                continue;
            }
            b'\\' => return refuse(Reason::BadRequest, "a `\\` in the path"),
            b';' => return refuse(Reason::BadRequest, PATH_PARAMETER),
            b'<' | b'>' | b'`' => return refuse(Reason::BadRequest, "a byte in the path that must be percent-encoded"),
            _ => {}
        }
        i += 1;
    }
    if rest.iter().any(|&b| matches!(b, b'"' | b'<' | b'>')) {
        return refuse(Reason::BadRequest, "a byte in the query that must be percent-encoded");
    }
    // Valid UTF-8 was checked on the whole target.
    let path = std::str::from_utf8(path).unwrap_or("");
    if crate::scim::path::escapes_root(path) {
        return refuse(Reason::BadRequest, "the path climbs above the root with `..`");
    }
    Verdict::Complete
}

const PATH_PARAMETER: &str = "a `;` (or `%3B`) in the path: SCIM uses no path (matrix) parameters, and servers that strip them would serve another endpoint than the one routed";

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

const DIFFERENT_LENGTHS: &str = "two different Content-Length values";

/// The length one `Content-Length` field states: plain digits, or a list of equal ones
/// (`5, 5`, which RFC 9110 §8.6 allows); the error says why not. The proxy also uses it to
/// forward one length for the duplicates the edge accepted.
pub fn content_length(v: &[u8]) -> Result<u64, &'static str> {
    let mut length = None;
    for part in v.split(|&b| b == b',') {
        let n = digits(trim(part)).ok_or("Content-Length is not a plain number")?;
        if length.is_some_and(|l| l != n) {
            return Err(DIFFERENT_LENGTHS);
        }
        length = Some(n);
    }
    length.ok_or("Content-Length is not a plain number")
}

/// A Content-Length as RFC 9110 writes it: digits only (no sign, no hex), within u64.
fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_line: 8192,
        max_head: 65536,
        plaintext: true,
    };

    fn verdict(bytes: &[u8]) -> Verdict {
        inspect(bytes, 0, &L)
    }

    fn reason(bytes: &[u8]) -> Option<Reason> {
        match verdict(bytes) {
            Verdict::Refuse(r) => Some(r.reason),
            _ => None,
        }
    }

    #[test]
    fn a_plain_request_is_complete_and_its_prefixes_partial() {
        let req = b"GET /scim/v2/Users HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(verdict(req), Verdict::Complete);
        for n in 0..req.len() {
            assert_eq!(verdict(&req[..n]), Verdict::Partial, "{n} bytes");
        }
        assert_eq!(verdict(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), Verdict::Complete);
    }

    #[test]
    fn each_framing_ambiguity_has_its_status() {
        let head = |h: &str| format!("POST /Users HTTP/1.1\r\nHost: a\r\n{h}\r\n");
        let r = |h: &str| reason(head(h).as_bytes());
        assert_eq!(
            r("Content-Length: 1\r\nTransfer-Encoding: chunked\r\n"),
            Some(Reason::BadRequest)
        );
        assert_eq!(
            r("Content-Length: 1\r\nContent-Length: 2\r\n"),
            Some(Reason::BadRequest)
        );
        assert_eq!(r("Content-Length: 1, 2\r\n"), Some(Reason::BadRequest));
        assert_eq!(r("Content-Length: 2\r\nContent-Length: 2\r\n"), None);
        assert_eq!(r("Content-Length: -1\r\n"), Some(Reason::BadRequest));
        assert_eq!(
            r("Content-Length: 99999999999999999999999\r\n"),
            Some(Reason::BadRequest)
        );
        assert_eq!(
            r("Transfer-Encoding: Chunked\r\n"),
            None,
            "codings are case-insensitive"
        );
        assert_eq!(r("Transfer-Encoding: gzip, chunked\r\n"), Some(Reason::NotImplemented));
        assert_eq!(r("Transfer-Encoding: identity\r\n"), Some(Reason::NotImplemented));
        assert_eq!(
            r("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            Some(Reason::NotImplemented)
        );
        assert_eq!(content_length(b" 5 ,5"), Ok(5), "the one length the upstream is given");
        assert!(content_length(b"").is_err() && content_length(b"5,").is_err() && content_length(b"5, 6").is_err());
        let old = b"POST /Users HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(reason(old), Some(Reason::BadRequest));
    }

    #[test]
    fn limits_give_414_and_431_before_the_head_is_complete() {
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000));
        assert_eq!(
            reason(&long.as_bytes()[..8300]),
            Some(Reason::LineTooLong),
            "no line end yet"
        );
        let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "b".repeat(70_000));
        assert_eq!(reason(big.as_bytes()), Some(Reason::HeadTooLarge));
        let many: String = (0..300).map(|i| format!("X{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert_eq!(reason(many.as_bytes()), Some(Reason::HeadTooLarge));
    }

    #[test]
    fn not_http1_is_named() {
        assert_eq!(reason(b"GET /x\r\n\r\n"), Some(Reason::Version), "HTTP/0.9");
        assert_eq!(reason(b"GET /x HTTP/2.0\r\n\r\n"), Some(Reason::Version));
        assert_eq!(reason(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Some(Reason::Version));
        assert_eq!(reason(&[0x16, 0x03, 0x01, 0x02, 0x00]), Some(Reason::TlsOnPlaintext));
        let tls = Limits { plaintext: false, ..L };
        assert!(matches!(inspect(&[0x16, 0x03, 0x01], 0, &tls), Verdict::Refuse(r) if r.reason == Reason::BadRequest));
        assert_eq!(
            reason(b"\x00\x01\x02garbage"),
            Some(Reason::BadRequest),
            "refused before any line end"
        );
        assert_eq!(
            reason(b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(Reason::Method)
        );
    }

    #[test]
    fn targets_that_could_route_one_way_and_reach_another() {
        let r = |t: &str| reason(format!("GET {t} HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes());
        assert_eq!(r("/scim/v2/Users/x"), None);
        assert_eq!(r("/scim/v2/Users/%41bc"), None, "an ordinary escape");
        assert_eq!(r("/scim/v2/Groups/../Users"), None, "resolved later, inside the root");
        assert_eq!(r("/scim/../../x"), Some(Reason::BadRequest));
        assert_eq!(r("/scim/v2/Users/a%2Fb"), Some(Reason::BadRequest));
        assert_eq!(r("/scim/v2/Users/a%5cb"), Some(Reason::BadRequest));
        assert_eq!(r("/scim/v2/Users/%g1"), Some(Reason::BadRequest));
        assert_eq!(r("/scim/v2/Users/%4"), Some(Reason::BadRequest));
        for semi in [
            "/scim/v2/Bulk;v=1",
            "/scim/v2/Bulk;",
            "/scim/v2/Bulk%3B",
            "/scim/v2/Bulk%3bv=1",
            "/scim/v2;x/Users",
        ] {
            assert_eq!(r(semi), Some(Reason::BadRequest), "{semi}");
        }
        assert!(
            matches!(path_verdict(b"/scim/v2/Bulk;v=1"), Verdict::Refuse(r) if r.detail.contains("matrix")),
            "the detail says why"
        );
        assert_eq!(
            r("/scim/v2/Users?filter=a;b%3B"),
            None,
            "a `;` in the query is the upstream's"
        );
        assert_eq!(r("/scim/v2/Users/%253B"), None, "an encoded `%`, not a `;`");
        assert_eq!(r("/scim/v2/Users?filter=a%20eq%20%22b%22"), None);
        assert_eq!(
            r("/scim/v2/Users?filter=%zz"),
            None,
            "the query is the upstream's to read"
        );
        assert_eq!(r("/x?a=\"b\""), Some(Reason::BadRequest));
        assert_eq!(r("scim/v2/Users"), Some(Reason::BadRequest));
        assert_eq!(r("http://a.test/scim"), None);
        assert_eq!(r("HTTP://a.test/scim"), None, "the scheme is case-insensitive");
        assert_eq!(
            r("http://A.TEST/scim"),
            Some(Reason::BadRequest),
            "the host must be the Host, byte for byte"
        );
        assert_eq!(r("http://b.test/scim"), Some(Reason::BadRequest));
        assert_eq!(r("http://u@a.test/scim"), Some(Reason::BadRequest));
        assert_eq!(r("*"), Some(Reason::BadRequest));
        assert_eq!(reason(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), None);
    }

    #[test]
    fn hosts_and_header_syntax() {
        assert_eq!(reason(b"GET / HTTP/1.1\r\n\r\n"), Some(Reason::BadRequest), "no Host");
        assert_eq!(reason(b"GET / HTTP/1.0\r\n\r\n"), None, "1.0 needs none");
        assert_eq!(
            reason(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Some(Reason::BadRequest)
        );
        assert_eq!(
            reason(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"),
            Some(Reason::BadRequest)
        );
        assert_eq!(reason(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"), Some(Reason::BadRequest));
        assert_eq!(
            reason(b"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n"),
            Some(Reason::BadRequest)
        );
        assert_eq!(
            reason(b"GET / HTTP/1.1\nHost: a\n\n"),
            None,
            "bare LF is allowed (RFC 9112 §2.2)"
        );
    }

    #[test]
    fn a_dribbled_head_is_parsed_once_per_line_and_ends_the_same() {
        let req = b"POST /Users HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut last = Verdict::Partial;
        for n in 1..=req.len() {
            last = inspect(&req[..n], n - 1, &L);
            if n < req.len() {
                assert!(
                    matches!(last, Verdict::Partial),
                    "{n}: {last:?} before the head is complete"
                );
            }
        }
        assert!(matches!(last, Verdict::Refuse(r) if r.reason == Reason::BadRequest));
    }
}
