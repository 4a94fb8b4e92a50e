//! Hostile and malformed requests against a real listener, one table row per case: the status
//! (or a silent close), whether anything reached the upstream, and exactly what did. Rows marked
//! "Pingora" pin a decision Pingora 0.9.1 makes on its own, so an upgrade that changes it fails
//! here first.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::recorder::{Recorded, Recorder};
use common::*;

/// What the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// This status, with a SCIM error body when it is 4xx/5xx.
    Status(u16),
    /// Closed without a byte.
    Closed,
}

/// What the upstream gets.
enum Upstream {
    Nothing,
    /// One request; the check sees exactly what arrived.
    One(fn(&Recorded)),
}

struct Row {
    name: &'static str,
    request: Vec<u8>,
    answer: Answer,
    upstream: Upstream,
}

fn row(name: &'static str, request: impl AsRef<[u8]>, answer: Answer, upstream: Upstream) -> Row {
    Row {
        name,
        request: request.as_ref().to_vec(),
        answer,
        upstream,
    }
}

/// Sends raw bytes, half-closes nothing, and reads whatever comes back until the proxy closes.
fn exchange_raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // A refusal may come before the whole request is written; that is fine.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => {
                assert!(
                    matches!(e.kind(), std::io::ErrorKind::ConnectionReset),
                    "no answer and no close within 10 s ({e}); got {:?}",
                    String::from_utf8_lossy(&out)
                );
                break;
            }
        }
    }
    out
}

const H: &str = "Host: scim.test\r\nConnection: close\r\n";

fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\n{H}\r\n")
}

fn post(headers: &str, body: &str) -> String {
    format!("POST /scim/v2/Users HTTP/1.1\r\n{H}Content-Type: application/scim+json\r\n{headers}\r\n{body}")
}

fn rows() -> Vec<Row> {
    use Answer::*;
    use Upstream::*;
    let long_target = format!("/scim/v2/Users?filter={}", "a".repeat(9 << 10));
    let big_header = format!(
        "GET /scim/v2/Users HTTP/1.1\r\n{H}X-Big: {}\r\n\r\n",
        "b".repeat(70 << 10)
    );
    let many_headers = format!(
        "GET /scim/v2/Users HTTP/1.1\r\n{H}{}\r\n",
        (0..300).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
    );
    let mut client_hello = vec![0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03];
    client_hello.extend_from_slice(&[0x5a; 64]);
    let garbage: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    vec![
        row(
            "baseline",
            get("/scim/v2/Users"),
            Status(200),
            One(|r| {
                assert_eq!(r.request_line(), "GET /scim/v2/Users HTTP/1.1");
                assert!(r.body.is_empty());
            }),
        ),
        // Framing: the smuggling patterns.
        row(
            "CL and TE together",
            post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
            Status(400),
            Nothing,
        ),
        row(
            "two different Content-Lengths",
            post("Content-Length: 2\r\nContent-Length: 3\r\n", "{}x"),
            Status(400),
            Nothing,
        ),
        row(
            "equal duplicate Content-Lengths",
            post("Content-Length: 2\r\nContent-Length: 2\r\n", "{}"),
            Status(200),
            One(|r| {
                assert_eq!(r.header_values("content-length"), ["2"], "forwarded once");
                assert_eq!(r.body, b"{}");
            }),
        ),
        row(
            "Content-Length list `2, 2`",
            post("Content-Length: 2, 2\r\n", "{}"),
            Status(200),
            One(|r| {
                assert_eq!(r.header_values("content-length"), ["2"]);
                assert_eq!(r.body, b"{}");
            }),
        ),
        row(
            "Content-Length `+2`",
            post("Content-Length: +2\r\n", "{}"),
            Status(400),
            Nothing,
        ),
        row(
            "Content-Length hex",
            post("Content-Length: 0x2\r\n", "{}"),
            Status(400),
            Nothing,
        ),
        row(
            "lone chunked",
            post("Transfer-Encoding: chunked\r\n", "2\r\n{}\r\n0\r\n\r\n"),
            Status(200),
            One(|r| {
                assert!(r.chunked, "re-framed chunked, no Content-Length invented");
                assert!(r.header_values("content-length").is_empty());
                assert_eq!(r.body, b"{}");
            }),
        ),
        row(
            "TE `gzip, chunked`",
            post("Transfer-Encoding: gzip, chunked\r\n", "2\r\n{}\r\n0\r\n\r\n"),
            Status(501),
            Nothing,
        ),
        row(
            "TE chunked on two lines",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            Status(501),
            Nothing,
        ),
        row(
            "TE `chunked, identity`",
            post("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"),
            Status(501),
            Nothing,
        ),
        row(
            "TE `xchunked`",
            post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"),
            Status(501),
            Nothing,
        ),
        row(
            "TE with a space before the colon",
            post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"),
            Status(400),
            Nothing,
        ),
        row(
            "HTTP/1.0 with TE",
            "POST /scim/v2/Users HTTP/1.0\r\nHost: scim.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            Status(400),
            Nothing,
        ),
        row(
            "chunk size over 16 hex digits (Pingora)",
            post("Transfer-Encoding: chunked\r\n", "10000000000000000\r\n{}\r\n0\r\n\r\n"),
            Status(400),
            Nothing,
        ),
        row(
            "empty chunk-size line (Pingora: taken as the last chunk)",
            post("Transfer-Encoding: chunked\r\n", "\r\n\r\n"),
            Status(200),
            One(|r| assert!(r.body.is_empty(), "nothing of the body was made up: {:?}", r.body)),
        ),
        row(
            "chunk extension with a bare LF (Pingora: skipped with the extension)",
            post("Transfer-Encoding: chunked\r\n", "2;a=b\nc\r\n{}\r\n0\r\n\r\n"),
            Status(200),
            One(|r| assert_eq!(r.body, b"{}")),
        ),
        // Header syntax.
        row(
            "obs-fold",
            format!("GET /scim/v2/Users HTTP/1.1\r\n{H}X-A: a\r\n b\r\n\r\n"),
            Status(400),
            Nothing,
        ),
        row(
            "space before colon",
            format!("GET /scim/v2/Users HTTP/1.1\r\n{H}X-A : a\r\n\r\n"),
            Status(400),
            Nothing,
        ),
        row(
            "bare LF line ends (accepted, forwarded with CRLF)",
            "GET /scim/v2/Users HTTP/1.1\nHost: scim.test\nConnection: close\n\n",
            Status(200),
            One(|r| assert_eq!(r.request_line(), "GET /scim/v2/Users HTTP/1.1")),
        ),
        row(
            "NUL in a header value",
            format!("GET /scim/v2/Users HTTP/1.1\r\n{H}X-A: a\0b\r\n\r\n"),
            Status(400),
            Nothing,
        ),
        row(
            "control byte in a header value",
            format!("GET /scim/v2/Users HTTP/1.1\r\n{H}X-A: a\x07b\r\n\r\n"),
            Status(400),
            Nothing,
        ),
        row(
            "bare CR in a header value",
            format!("GET /scim/v2/Users HTTP/1.1\r\n{H}X-A: a\rb\r\n\r\n"),
            Status(400),
            Nothing,
        ),
        row(
            "no Host on HTTP/1.1",
            "GET /scim/v2/Users HTTP/1.1\r\nConnection: close\r\n\r\n",
            Status(400),
            Nothing,
        ),
        row(
            "two Hosts",
            format!("GET /scim/v2/Users HTTP/1.1\r\nHost: a.test\r\n{H}\r\n"),
            Status(400),
            Nothing,
        ),
        row(
            "HTTP/1.0 without Host (allowed)",
            "GET /scim/v2/Users HTTP/1.0\r\n\r\n",
            Status(200),
            One(|r| {
                assert_eq!(r.request_line(), "GET /scim/v2/Users HTTP/1.1", "upstream speaks 1.1");
                assert_eq!(r.header_values("host").len(), 1, "the proxy names the server");
            }),
        ),
        // The request target.
        row(
            "NUL in the target",
            b"GET /scim/v2/Us\0ers HTTP/1.1\r\nHost: scim.test\r\n\r\n",
            Status(400),
            Nothing,
        ),
        row(
            "control byte in the target",
            b"GET /scim/v2/Us\x01ers HTTP/1.1\r\nHost: scim.test\r\n\r\n",
            Status(400),
            Nothing,
        ),
        row(
            "space in the target",
            format!("GET /scim/v2/Us ers HTTP/1.1\r\n{H}\r\n"),
            Status(400),
            Nothing,
        ),
        row("target without a leading /", get("scim/v2/Users"), Status(400), Nothing),
        row(
            "absolute-form naming another host",
            get("http://evil.test/scim/v2/Users"),
            Status(400),
            Nothing,
        ),
        row(
            "absolute-form naming the Host",
            get("http://scim.test/scim/v2/Users"),
            Status(200),
            One(|r| {
                assert_eq!(r.request_line(), "GET /scim/v2/Users HTTP/1.1", "origin-form upstream");
            }),
        ),
        row("`*` outside OPTIONS", get("*"), Status(400), Nothing),
        row("request line over 8 KiB", get(&long_target), Status(414), Nothing),
        row("head over 64 KiB", big_header, Status(431), Nothing),
        row("300 header fields", many_headers, Status(431), Nothing),
        row(
            "`..` inside the base path is resolved",
            get("/scim/v2/Groups/../Users"),
            Status(200),
            One(|r| {
                assert_eq!(r.request_line(), "GET /scim/v2/Users HTTP/1.1");
            }),
        ),
        row(
            "`%2e%2e` is resolved like `..`",
            get("/scim/v2/Groups/%2e%2E/Users"),
            Status(200),
            One(|r| {
                assert_eq!(r.request_line(), "GET /scim/v2/Users HTTP/1.1");
            }),
        ),
        row(
            "`..` out of the base path finds no route",
            get("/scim/v2/../../admin/Users"),
            Status(404),
            Nothing,
        ),
        row(
            "`..` above the root",
            get("/scim/v2/../../../etc/passwd"),
            Status(400),
            Nothing,
        ),
        row(
            "`%2f` in the path",
            get("/scim/v2/Users/a%2f..%2f..%2fx"),
            Status(400),
            Nothing,
        ),
        row(
            "`%5C` in the path",
            get("/scim/v2/Users/a%5C..%5Cx"),
            Status(400),
            Nothing,
        ),
        row(
            "backslash in the path",
            get("/scim/v2/Users/a\\..\\x"),
            Status(400),
            Nothing,
        ),
        row(
            "invalid percent-encoding",
            get("/scim/v2/Users/%zz"),
            Status(400),
            Nothing,
        ),
        row(
            "truncated percent-encoding",
            get("/scim/v2/Users/a%4"),
            Status(400),
            Nothing,
        ),
        // Path (matrix) parameters: Tomcat and Spring strip them and serve `/Bulk;v=1` as
        // `/Bulk`, past a route that refuses the bulk class.
        row(
            "`;` path parameter on Bulk",
            format!("POST /scim/v2/Bulk;v=1 HTTP/1.1\r\n{H}Content-Length: 2\r\n\r\n{{}}"),
            Status(400),
            Nothing,
        ),
        row("`;` ending a segment", get("/scim/v2/Users;"), Status(400), Nothing),
        row("`%3B` in the path", get("/scim/v2/Users%3B"), Status(400), Nothing),
        row(
            "`%3b` in the path",
            get("/scim/v2/Users/1%3bjsessionid=x"),
            Status(400),
            Nothing,
        ),
        row(
            "`;` in the query is the upstream's",
            get("/scim/v2/Users?filter=a;b"),
            Status(200),
            One(|r| assert_eq!(r.request_line(), "GET /scim/v2/Users?filter=a;b HTTP/1.1")),
        ),
        row(
            "raw quote in the query",
            get("/scim/v2/Users?filter=userName eq \"x\""),
            Status(400),
            Nothing,
        ),
        row(
            "fragment is not forwarded (Pingora)",
            get("/scim/v2/Users#frag"),
            Status(200),
            One(|r| {
                assert_eq!(r.request_line(), "GET /scim/v2/Users HTTP/1.1");
            }),
        ),
        // Not HTTP/1.x at all.
        row("HTTP/0.9", "GET /scim/v2/Users\r\n\r\n", Status(505), Nothing),
        row(
            "HTTP/1.2",
            format!("GET /scim/v2/Users HTTP/1.2\r\n{H}\r\n"),
            Status(505),
            Nothing,
        ),
        row(
            "HTTP/2 preface on an HTTP/1 listener",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            Status(505),
            Nothing,
        ),
        row("TLS ClientHello on plaintext", client_hello, Status(400), Nothing),
        row("random bytes", garbage, Status(400), Nothing),
        row(
            "CONNECT",
            format!("CONNECT scim.test:443 HTTP/1.1\r\n{H}\r\n"),
            Status(405),
            Nothing,
        ),
        // Pingora: a request pipelined behind the first is never parsed (pipelining is off).
        row(
            "pipelined second request (Pingora: dropped)",
            format!(
                "{}GET /scim/v2/Groups HTTP/1.1\r\n{H}\r\n",
                get("/scim/v2/Users").replace("Connection: close\r\n", "")
            ),
            Status(200),
            One(|r| assert_eq!(r.request_line(), "GET /scim/v2/Users HTTP/1.1")),
        ),
        row("silence", "", Closed, Nothing),
    ]
}

#[test]
fn every_hostile_request_gets_its_status_and_the_upstream_exactly_what_it_should() {
    let rec = Recorder::start();
    let log = scratch_dir("hostile").join("access.log");
    let px = Proxy::start_with_listeners(
        "",
        &format!(
            "client:\n  header_timeout: 2s\nupstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: r\naccess_log: {{path: {}}}\n",
            pool_yaml("r", &[rec.addr], ""),
            log.display()
        ),
    );
    let mut failures = Vec::new();
    for r in rows() {
        let before = rec.count();
        let raw = exchange_raw(px.addr, &r.request);
        let got = common::client::parse(&raw, false).ok();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match (r.answer, &got) {
                (Answer::Closed, None) => assert!(raw.is_empty(), "bytes without a head: {raw:?}"),
                (Answer::Closed, Some(resp)) => panic!("expected a silent close, got {}", resp.status),
                (Answer::Status(_), None) => panic!("expected an answer, got {:?}", String::from_utf8_lossy(&raw)),
                (Answer::Status(s), Some(resp)) if s >= 400 => {
                    resp.assert_scim_error(s);
                    assert_eq!(resp.header("connection"), Some("close"), "a refusal closes");
                }
                (Answer::Status(s), Some(resp)) => assert_eq!(resp.status, s, "{}", resp.text()),
            }
            let seen = rec.since(before);
            match &r.upstream {
                Upstream::Nothing => assert!(seen.is_empty(), "reached the upstream: {seen:?}"),
                Upstream::One(check) => {
                    assert_eq!(seen.len(), 1, "exactly one request upstream: {seen:?}");
                    check(&seen[0]);
                }
            }
        }));
        if let Err(e) = outcome {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {msg}", r.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}\n--- proxy log:\n{}",
        failures.len(),
        failures.join("\n"),
        px.log()
    );
    // Refusals are counted per listener and reason.
    let m = px.metrics();
    let refused = |reason: &str| {
        m.get(&format!(
            r#"scimitar_client_refusals_total{{listener="main",reason="{reason}"}}"#
        ))
        .copied()
        .unwrap_or(0.0)
    };
    assert!(refused("bad_request") >= 20.0, "{m:?}");
    assert_eq!(refused("not_implemented"), 4.0);
    assert_eq!(refused("line_too_long"), 1.0);
    assert_eq!(refused("head_too_large"), 2.0);
    // Every refusal at the edge is in the access log too, with its status and reason.
    let logged = eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["status"] == 501 && v["error"] == "not_implemented" && v["request_id"].is_string())
                .count()
                == 4
        })
    });
    assert!(
        logged,
        "edge refusals in the access log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn http2_streams_get_the_same_path_rules() {
    let rec = Recorder::start();
    let px = Proxy::start_with_listeners(
        "    http2: true\n",
        &format!(
            "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: r\n",
            pool_yaml("r", &[rec.addr], "")
        ),
    );
    let url = |p: &str| format!("http://{}{p}", px.addr);
    for (path, status) in [
        ("/scim/v2/Users", 200),
        ("/scim/v2/Users/a%2F..%2F..%2Fadmin", 400),
        ("/scim/v2/Users/a%5Cb", 400),
        ("/scim/v2/Users/%zz", 400),
        ("/scim/v2/../../../etc/passwd", 400),
        ("/scim/v2/Bulk;v=1", 400),
        ("/scim/v2/Users%3b", 400),
    ] {
        let before = rec.count();
        let r = common::tls::curl(&["--http2-prior-knowledge", "--path-as-is"], &url(path));
        assert_eq!((r.http_version.as_str(), r.status), ("2", status), "{path}: {}", r.body);
        if status == 400 {
            assert!(
                r.body.contains("urn:ietf:params:scim:api:messages:2.0:Error"),
                "{path}: {}",
                r.body
            );
            assert!(rec.since(before).is_empty(), "{path} reached the upstream");
        } else {
            assert_eq!(rec.since(before).len(), 1);
        }
    }
}
