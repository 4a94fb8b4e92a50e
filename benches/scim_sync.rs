//! SCIM goodput load: an identity-provider-like sync through a proxy (benches/README.md).
//!
//! Each tenant is one thread with its own bearer token, syncing users one after another the
//! way Okta and Entra ID do: filter GET → POST → GET the new id → PATCH, with a share of
//! discovery reads. 429/503 are honoured via `Retry-After` (as IdPs do); a GET of a just-created
//! user that answers 404 is a read-your-writes miss, and the IdP's answer to it — creating the
//! user again — is what produces duplicates. After the run every replica is listed directly and
//! userNames present more than once are counted.
//!
//! Usage: scim_sync BASE_URL TENANTS USERS_PER_TENANT DISCOVERY_EVERY [REPLICA_BASE_URL…]
//! Prints one JSON line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

struct Resp {
    status: u16,
    retry_after: Option<u64>,
    body: Vec<u8>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Self {
        Conn { addr, stream: None }
    }

    fn request(&mut self, method: &str, path: &str, token: &str, body: Option<&str>) -> std::io::Result<Resp> {
        for attempt in 0..2 {
            if self.stream.is_none() {
                let s = TcpStream::connect(self.addr)?;
                s.set_read_timeout(Some(Duration::from_secs(70)))?;
                s.set_nodelay(true)?;
                self.stream = Some(BufReader::new(s));
            }
            match self.try_request(method, path, token, body) {
                Ok(r) => return Ok(r),
                // A kept-alive connection the server closed: reconnect once. Only for requests
                // that never got any answer, which is what an idle close looks like.
                Err(e) if attempt == 0 && e.kind() == std::io::ErrorKind::UnexpectedEof => self.stream = None,
                Err(e) => {
                    self.stream = None;
                    return Err(e);
                }
            }
        }
        Err(std::io::Error::other("unreachable"))
    }

    fn try_request(&mut self, method: &str, path: &str, token: &str, body: Option<&str>) -> std::io::Result<Resp> {
        let Some(r) = self.stream.as_mut() else {
            return Err(std::io::Error::other("no connection"));
        };
        let b = body.unwrap_or("");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{b}",
            self.addr,
            b.len()
        );
        r.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let (mut len, mut chunked, mut close, mut retry_after) = (None, false, line.starts_with("HTTP/1.0"), None);
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                match k.as_str() {
                    "content-length" => len = v.parse::<usize>().ok(),
                    "transfer-encoding" => chunked = v.contains("chunked"),
                    "connection" => close = v.eq_ignore_ascii_case("close"),
                    "retry-after" => retry_after = v.parse().ok(),
                    _ => {}
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                r.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = len {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        } else {
            r.read_to_end(&mut body)?;
            close = true;
        }
        if close {
            self.stream = None;
        }
        Ok(Resp {
            status,
            retry_after,
            body,
        })
    }
}

#[derive(Default)]
struct Tally {
    syncs: u64,
    requests: u64,
    errors: u64,
    throttled: u64,
    ryw_misses: u64,
    latencies_us: Vec<u64>,
}

/// Sends one request as an IdP would: wait out 429/503 `Retry-After` (bounded), count the rest.
fn call(c: &mut Conn, t: &mut Tally, method: &str, path: &str, token: &str, body: Option<&str>) -> Option<Resp> {
    for _ in 0..20 {
        let start = Instant::now();
        let r = c.request(method, path, token, body);
        t.requests += 1;
        t.latencies_us.push(start.elapsed().as_micros() as u64);
        match r {
            Ok(r) if matches!(r.status, 429 | 503) => {
                t.throttled += 1;
                std::thread::sleep(Duration::from_millis(r.retry_after.unwrap_or(1).min(5) * 1000 / 4));
            }
            Ok(r) => return Some(r),
            Err(_) => {
                t.errors += 1;
                return None;
            }
        }
    }
    t.errors += 1;
    None
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or(serde_json::Value::Null)
}

fn sync_tenant(addr: SocketAddr, base: &str, tenant: usize, users: usize, discovery_every: usize) -> Tally {
    let mut c = Conn::new(addr);
    let mut t = Tally::default();
    let token = format!("tenant-{tenant}-token");
    let mut ops = 0usize;
    for u in 0..users {
        let name = format!("t{tenant}-u{u}@example.com");
        let mut discovery = |c: &mut Conn, t: &mut Tally| {
            ops += 1;
            if discovery_every > 0 && ops % discovery_every == 0 {
                let path = if ops % (2 * discovery_every) == 0 {
                    "Schemas"
                } else {
                    "ServiceProviderConfig"
                };
                if let Some(r) = call(c, t, "GET", &format!("{base}/{path}"), &token, None) {
                    if r.status != 200 {
                        t.errors += 1;
                    }
                }
            }
        };
        discovery(&mut c, &mut t);
        let filter = format!("{base}/Users?filter=userName%20eq%20%22{name}%22");
        let Some(r) = call(&mut c, &mut t, "GET", &filter, &token, None) else {
            continue;
        };
        if r.status != 200 {
            t.errors += 1;
            continue;
        }
        let found = json(&r.body)["totalResults"].as_u64().unwrap_or(0);
        if found > 0 {
            continue; // already there: an IdP would not create it
        }
        let user = format!(
            r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"{name}","active":true,"emails":[{{"value":"{name}","type":"work","primary":true}}]}}"#
        );
        let mut id = None;
        // Create, then read back; a 404 on read makes the IdP create again (up to twice).
        for _ in 0..3 {
            let Some(r) = call(&mut c, &mut t, "POST", &format!("{base}/Users"), &token, Some(&user)) else {
                break;
            };
            if r.status != 201 {
                t.errors += 1;
                break;
            }
            let new_id = json(&r.body)["id"].as_str().unwrap_or_default().to_string();
            discovery(&mut c, &mut t);
            let Some(g) = call(&mut c, &mut t, "GET", &format!("{base}/Users/{new_id}"), &token, None) else {
                break;
            };
            if g.status == 200 {
                id = Some(new_id);
                break;
            }
            t.ryw_misses += 1;
        }
        let Some(id) = id else { continue };
        let patch = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Synced"}]}"#;
        match call(
            &mut c,
            &mut t,
            "PATCH",
            &format!("{base}/Users/{id}"),
            &token,
            Some(patch),
        ) {
            Some(r) if matches!(r.status, 200 | 204) => t.syncs += 1,
            Some(_) => t.errors += 1,
            None => {}
        }
    }
    t
}

fn parse_base(url: &str) -> Option<(SocketAddr, String)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    Some((host.parse().ok()?, format!("/{path}").trim_end_matches('/').to_string()))
}

fn duplicates(replicas: &[String]) -> u64 {
    let mut names = std::collections::HashMap::<String, u64>::new();
    for url in replicas {
        let Some((addr, base)) = parse_base(url) else { continue };
        let mut c = Conn::new(addr);
        let mut start = 1;
        let page = |start: usize| format!("{base}/Users?startIndex={start}&count=500&attributes=userName");
        while let Ok(r) = c.request("GET", &page(start), "x", None) {
            let v = json(&r.body);
            let res = v["Resources"].as_array().cloned().unwrap_or_default();
            for u in &res {
                if let Some(n) = u["userName"].as_str() {
                    *names.entry(n.to_string()).or_default() += 1;
                }
            }
            if res.len() < 500 {
                break;
            }
            start += 500;
        }
    }
    names.values().map(|n| n.saturating_sub(1)).sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: scim_sync BASE_URL TENANTS USERS_PER_TENANT DISCOVERY_EVERY [REPLICA_BASE_URL...]");
        std::process::exit(2);
    }
    let Some((addr, base)) = parse_base(&args[1]) else {
        eprintln!("BASE_URL must look like http://127.0.0.1:8080/v2");
        std::process::exit(2);
    };
    let tenants: usize = args[2].parse().unwrap_or(10);
    let users: usize = args[3].parse().unwrap_or(20);
    let every: usize = args[4].parse().unwrap_or(0);
    let start = Instant::now();
    let handles: Vec<_> = (0..tenants)
        .map(|t| {
            let base = base.clone();
            std::thread::spawn(move || sync_tenant(addr, &base, t, users, every))
        })
        .collect();
    let mut total = Tally::default();
    for h in handles {
        if let Ok(t) = h.join() {
            total.syncs += t.syncs;
            total.requests += t.requests;
            total.errors += t.errors;
            total.throttled += t.throttled;
            total.ryw_misses += t.ryw_misses;
            total.latencies_us.extend(t.latencies_us);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        let l = &total.latencies_us;
        if l.is_empty() {
            return 0.0;
        }
        l[((l.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0
    };
    let dups = duplicates(&args[5..]);
    println!(
        "{}",
        serde_json::json!({
            "syncs": total.syncs, "seconds": secs, "syncs_per_s": total.syncs as f64 / secs,
            "requests": total.requests, "errors": total.errors, "throttled": total.throttled,
            "read_your_writes_misses": total.ryw_misses, "duplicates": dups,
            "p50_ms": pct(0.5), "p99_ms": pct(0.99),
        })
    );
}
