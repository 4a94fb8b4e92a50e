//! A deliberately plain HTTP/1.1 client: one request per connection, raw bytes in and out,
//! so tests see exactly what the proxy sent.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts this is a SCIM error body with `status` as a string, and returns the detail.
    pub fn assert_scim_error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "status; body: {}", self.text());
        assert_eq!(self.header("content-type"), Some("application/scim+json"));
        let v = self.json();
        assert_eq!(v["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
        assert_eq!(v["status"], status.to_string(), "SCIM status is a string");
        v["detail"].as_str().unwrap_or_default().to_string()
    }
}

pub fn http(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: Option<&str>) -> Response {
    try_http(addr, method, target, headers, body).unwrap_or_else(|e| panic!("{method} {target} via {addr}: {e}"))
}

pub fn try_http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    exchange(&mut s, &addr.to_string(), method, target, headers, body, true)
}

/// One request on an open stream (plain or TLS). With `close`, the request asks the server to
/// close and the answer is read to EOF; without, the answer is read by its framing and the
/// connection stays usable.
pub fn exchange<S: Read + Write>(
    s: &mut S,
    host: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    close: bool,
) -> std::io::Result<Response> {
    let conn = if close { "Connection: close\r\n" } else { "" };
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n{conn}");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            req.push_str("Content-Type: application/scim+json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes())?;
    s.flush()?;
    let mut raw = Vec::new();
    if close {
        read_until_close(s, &mut raw)?;
    } else {
        read_framed(s, &mut raw, method == "HEAD")?;
    }
    parse(&raw, method == "HEAD")
}

/// Reads to EOF; a TLS peer that closes without close_notify still ends the answer.
fn read_until_close<S: Read>(s: &mut S, raw: &mut Vec<u8>) -> std::io::Result<()> {
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if !raw.is_empty() && e.kind() != std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Reads one answer by Content-Length (or chunked framing) without waiting for a close.
fn read_framed<S: Read>(s: &mut S, raw: &mut Vec<u8>, head: bool) -> std::io::Result<()> {
    let mut buf = [0u8; 16384];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head_text = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let body = raw.len() - end - 4;
            if head {
                return Ok(());
            }
            if let Some(len) = head_text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                if body >= len {
                    return Ok(());
                }
            } else if head_text.contains("transfer-encoding: chunked") {
                if raw.ends_with(b"0\r\n\r\n") {
                    return Ok(());
                }
            } else {
                return read_until_close(s, raw);
            }
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// A raw answer as a [`Response`] (a chunked body de-chunked unless `head`).
pub fn parse(raw: &[u8], head: bool) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head_text = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty"))?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(status_line))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked && !head {
        body = dechunk(&body);
    }
    let version = status_line.split(' ').next().unwrap_or_default().to_string();
    Ok(Response {
        version,
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = nl + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}
