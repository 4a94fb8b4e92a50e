//! SCIM goodput load: an identity-provider-like sync through a proxy (benches/README.md).
//!
//! Each tenant is one thread with its own bearer token, syncing users one after another the
//! way Okta and Entra ID do: filter GET → POST → GET the new id → PATCH, with a share of
//! discovery reads. It behaves as those IdPs do when something fails:
//! - 429, and 503 with `Retry-After`, are throttling: the request waits out `Retry-After`
//!   (1 s when absent, at most 10 s) and goes again, at most 20 times;
//! - any other 5xx, or a transport error (reset, closed without an answer, 60 s without an
//!   answer — Entra ID's limit), is a **failed answer**: the IdP retries that step after a short
//!   backoff (0.25 s, then 0.5 s); a create is retried as a new POST. A step still failing after
//!   three attempts is a **failed operation** and the IdP moves on to its next user;
//! - a 404 on reading or patching the user it has just created is a read-your-writes miss, and
//!   the IdP creates the user again (at most three rounds); a 409 on a create makes it look the
//!   user up by `userName` and carry on with that one.
//!
//! Duplicates are counted two ways. Without `--creates`, every replica is listed directly after
//! the run and userNames present more than once are counted. With `--creates FILE` (the replicas
//! append one JSON line per create they applied, `{"externalId": …}` — benches/goodput.sh), each
//! POST the IdP sends carries its own attempt id in `externalId`, so creates applied at the
//! replicas — including replicas restarted since, whose memory is gone — are matched against
//! the 201s the IdP saw: an attempt applied twice was replayed by someone; an attempt applied
//! although the IdP got a failure is an ambiguous create (the IdP's retry makes a second copy).
//!
//! Usage: scim_sync BASE_URL TENANTS USERS_PER_TENANT DISCOVERY_EVERY [OPTIONS] [REPLICA_BASE_URL…]
//!   --stop-file F   stop starting new users once F exists (each tenant finishes its current one)
//!   --duration S    …or after S seconds (whichever comes first; default: no limit)
//!   --trace F       write one CSV line per request (`end_ms,latency_us,kind,status`, epoch
//!                   milliseconds; status 0 = transport error) and per completed sync (kind `sync`)
//!   --creates F     the replicas' log of applied creates (see above)
//! Prints one JSON line.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the IdP waits for an answer before it gives up on a request (Entra ID: ~60 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Backoff before the IdP's 2nd and 3rd attempt of a failed step.
const BACKOFF: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(500)];

struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
    /// Requests sent again on a new connection because a reused one closed without answering.
    reconnect_resends: u64,
    /// The subset of those that were POSTs (a resent POST could be applied twice).
    post_resends: u64,
}

struct Resp {
    status: u16,
    retry_after: Option<u64>,
    body: Vec<u8>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Self {
        Conn {
            addr,
            stream: None,
            reconnect_resends: 0,
            post_resends: 0,
        }
    }

    fn request(&mut self, method: &str, path: &str, token: &str, body: Option<&str>) -> std::io::Result<Resp> {
        for attempt in 0..2 {
            let reused = self.stream.is_some();
            if !reused {
                let s = TcpStream::connect(self.addr)?;
                s.set_read_timeout(Some(CLIENT_TIMEOUT))?;
                s.set_write_timeout(Some(CLIENT_TIMEOUT))?;
                s.set_nodelay(true)?;
                self.stream = Some(BufReader::new(s));
            }
            match self.try_request(method, path, token, body) {
                Ok(r) => return Ok(r),
                // A kept-alive connection the server closed while idle: send again on a new
                // one, once. Only when the connection was reused and no byte of an answer came
                // back, which is what an idle close looks like (HTTP clients do the same).
                Err(e) if attempt == 0 && reused && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.stream = None;
                    self.reconnect_resends += 1;
                    if method == "POST" {
                        self.post_resends += 1;
                    }
                }
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
            if r.read_line(&mut h)? == 0 {
                return Err(std::io::Error::other("connection closed in the answer's head"));
            }
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

/// What a request was for (the trace's `kind` column).
#[derive(Clone, Copy)]
enum Kind {
    Discovery,
    Filter,
    Create,
    Read,
    Patch,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Discovery => "discovery",
            Kind::Filter => "filter",
            Kind::Create => "create",
            Kind::Read => "read",
            Kind::Patch => "patch",
        }
    }
}

/// What the IdP saw for one POST (one attempt id).
#[derive(Clone, Copy, PartialEq)]
enum CreateSeen {
    Created,
    Conflict,
    Failed,
    Refused,
}

struct Record {
    end_ms: u64,
    latency_us: u64,
    kind: Option<Kind>, // None: a completed sync
    status: u16,
}

#[derive(Default)]
struct Tally {
    syncs: u64,
    requests: u64,
    errors: u64,
    failed_ops: u64,
    idp_retries: u64,
    throttled: u64,
    ryw_misses: u64,
    conflicts: u64,
    records: Vec<Record>,
    creates: Vec<(String, CreateSeen)>,
    reconnect_resends: u64,
    post_resends: u64,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sends one request as an IdP would: waits out 429/503 `Retry-After` (bounded); `None` is a
/// failed answer (transport error or a 5xx that is not throttling), counted in `errors`.
fn call(
    c: &mut Conn,
    t: &mut Tally,
    kind: Kind,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> Option<Resp> {
    for _ in 0..20 {
        let start = Instant::now();
        let r = c.request(method, path, token, body);
        t.requests += 1;
        t.records.push(Record {
            end_ms: epoch_ms(),
            latency_us: start.elapsed().as_micros() as u64,
            kind: Some(kind),
            status: r.as_ref().map(|r| r.status).unwrap_or(0),
        });
        match r {
            Ok(r) if r.status == 429 || (r.status == 503 && r.retry_after.is_some()) => {
                t.throttled += 1;
                let secs = r.retry_after.unwrap_or(1).clamp(1, 10);
                std::thread::sleep(Duration::from_secs(secs));
            }
            Ok(r) if r.status >= 500 => {
                t.errors += 1;
                return None;
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

/// A step the IdP retries after a failed answer (backoff, then again, three attempts in all);
/// `None` is a failed operation.
fn step(
    c: &mut Conn,
    t: &mut Tally,
    kind: Kind,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> Option<Resp> {
    for attempt in 0..=BACKOFF.len() {
        if attempt > 0 {
            t.idp_retries += 1;
            std::thread::sleep(BACKOFF[attempt - 1]);
        }
        if let Some(r) = call(c, t, kind, method, path, token, body) {
            return Some(r);
        }
    }
    t.failed_ops += 1;
    None
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or(serde_json::Value::Null)
}

struct Tenant<'a> {
    base: &'a str,
    token: String,
    id: usize,
    discovery_every: usize,
    ops: usize,
}

impl Tenant<'_> {
    /// Every `discovery_every`-th call site reads a discovery document, as IdPs do now and then.
    fn discovery(&mut self, c: &mut Conn, t: &mut Tally) {
        self.ops += 1;
        let every = self.discovery_every;
        if every == 0 || self.ops % every != 0 {
            return;
        }
        let doc = if self.ops % (2 * every) == 0 {
            "Schemas"
        } else {
            "ServiceProviderConfig"
        };
        let path = format!("{}/{doc}", self.base);
        if let Some(r) = step(c, t, Kind::Discovery, "GET", &path, &self.token, None) {
            if r.status != 200 {
                t.errors += 1;
                t.failed_ops += 1;
            }
        }
    }

    /// The id of the user named `name`, if the server has one (the IdP's matching step).
    fn lookup(&self, c: &mut Conn, t: &mut Tally, name: &str) -> Result<Option<String>, ()> {
        let filter = format!("{}/Users?filter=userName%20eq%20%22{name}%22", self.base);
        let r = step(c, t, Kind::Filter, "GET", &filter, &self.token, None).ok_or(())?;
        if r.status != 200 {
            t.errors += 1;
            t.failed_ops += 1;
            return Err(());
        }
        let v = json(&r.body);
        Ok(v["Resources"][0]["id"].as_str().map(str::to_string))
    }

    /// POSTs the user, each attempt with its own id in `externalId`; the new (or, after a 409,
    /// the existing) user's id.
    fn create(&self, c: &mut Conn, t: &mut Tally, name: &str, u: usize, round: usize) -> Option<String> {
        for attempt in 0..=BACKOFF.len() {
            if attempt > 0 {
                t.idp_retries += 1;
                std::thread::sleep(BACKOFF[attempt - 1]);
            }
            let aid = format!("t{}-u{u}-r{round}-a{attempt}", self.id);
            let user = format!(
                r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"{name}","externalId":"{aid}","active":true,"emails":[{{"value":"{name}","type":"work","primary":true}}]}}"#
            );
            let path = format!("{}/Users", self.base);
            match call(c, t, Kind::Create, "POST", &path, &self.token, Some(&user)) {
                Some(r) if r.status == 201 => {
                    t.creates.push((aid, CreateSeen::Created));
                    return json(&r.body)["id"].as_str().map(str::to_string);
                }
                Some(r) if r.status == 409 => {
                    t.creates.push((aid, CreateSeen::Conflict));
                    t.conflicts += 1;
                    match self.lookup(c, t, name) {
                        Ok(Some(id)) => return Some(id),
                        Ok(None) => continue,
                        Err(()) => return None,
                    }
                }
                Some(_) => {
                    t.creates.push((aid, CreateSeen::Refused));
                    t.errors += 1;
                    t.failed_ops += 1;
                    return None;
                }
                None => t.creates.push((aid, CreateSeen::Failed)),
            }
        }
        t.failed_ops += 1;
        None
    }

    /// One user: match, create, read back, patch. True when it was synced.
    fn sync_user(&mut self, c: &mut Conn, t: &mut Tally, u: usize) -> bool {
        let name = format!("t{}-u{u}@example.com", self.id);
        self.discovery(c, t);
        match self.lookup(c, t, &name) {
            Ok(None) => {}
            Ok(Some(_)) | Err(()) => return false, // already there: an IdP would not create it
        }
        // A 404 on the user just created makes the IdP create it again (up to three rounds).
        for round in 0..3 {
            let Some(id) = self.create(c, t, &name, u, round) else {
                return false;
            };
            self.discovery(c, t);
            let path = format!("{}/Users/{id}", self.base);
            let Some(g) = step(c, t, Kind::Read, "GET", &path, &self.token, None) else {
                return false;
            };
            if g.status == 404 {
                t.ryw_misses += 1;
                continue;
            }
            if g.status != 200 {
                t.errors += 1;
                t.failed_ops += 1;
                return false;
            }
            let patch = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Synced"}]}"#;
            let Some(p) = step(c, t, Kind::Patch, "PATCH", &path, &self.token, Some(patch)) else {
                return false;
            };
            match p.status {
                200 | 204 => return true,
                404 => t.ryw_misses += 1,
                _ => {
                    t.errors += 1;
                    t.failed_ops += 1;
                    return false;
                }
            }
        }
        t.failed_ops += 1;
        false
    }
}

fn sync_tenant(addr: SocketAddr, base: &str, tenant: usize, users: usize, every: usize, stop: &AtomicBool) -> Tally {
    let mut c = Conn::new(addr);
    let mut t = Tally::default();
    let mut ten = Tenant {
        base,
        token: format!("tenant-{tenant}-token"),
        id: tenant,
        discovery_every: every,
        ops: 0,
    };
    for u in 0..users {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if ten.sync_user(&mut c, &mut t, u) {
            t.syncs += 1;
            t.records.push(Record {
                end_ms: epoch_ms(),
                latency_us: 0,
                kind: None,
                status: 0,
            });
        }
    }
    t.reconnect_resends = c.reconnect_resends;
    t.post_resends = c.post_resends;
    t
}

fn parse_base(url: &str) -> Option<(SocketAddr, String)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    Some((host.parse().ok()?, format!("/{path}").trim_end_matches('/').to_string()))
}

fn duplicates(replicas: &[String]) -> u64 {
    let mut names = HashMap::<String, u64>::new();
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

/// Creates applied at the replicas (their log) against what the IdP saw for each attempt.
fn creates_report(log: &str, seen: &[(String, CreateSeen)]) -> serde_json::Value {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut applied = HashMap::<String, u64>::new();
    let mut total = 0u64;
    for line in text.lines() {
        if let Some(aid) = json(line.as_bytes())["externalId"].as_str() {
            *applied.entry(aid.to_string()).or_default() += 1;
            total += 1;
        }
    }
    let outcome: HashMap<&str, CreateSeen> = seen.iter().map(|(a, s)| (a.as_str(), *s)).collect();
    let answered = seen.iter().filter(|(_, s)| *s == CreateSeen::Created).count() as u64;
    let replayed: u64 = applied.values().map(|n| n.saturating_sub(1)).sum();
    let applied_after_failure = applied
        .keys()
        .filter(|a| outcome.get(a.as_str()) == Some(&CreateSeen::Failed))
        .count() as u64;
    let unknown = applied.keys().filter(|a| !outcome.contains_key(a.as_str())).count() as u64;
    let answered_not_applied = seen
        .iter()
        .filter(|(a, s)| *s == CreateSeen::Created && !applied.contains_key(a))
        .count() as u64;
    serde_json::json!({
        "creates_applied": total, "creates_answered": answered,
        "creates_failed": seen.iter().filter(|(_, s)| *s == CreateSeen::Failed).count(),
        "duplicates_replayed": replayed, "applied_after_failed_answer": applied_after_failure,
        "applied_unknown_attempt": unknown, "answered_not_applied": answered_not_applied,
    })
}

struct Opts {
    stop_file: Option<String>,
    duration: Option<Duration>,
    trace: Option<String>,
    creates: Option<String>,
    replicas: Vec<String>,
}

fn parse_opts(args: &[String]) -> Opts {
    let mut o = Opts {
        stop_file: None,
        duration: None,
        trace: None,
        creates: None,
        replicas: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--stop-file" => o.stop_file = Some(val()),
            "--duration" => o.duration = val().parse().ok().map(Duration::from_secs_f64),
            "--trace" => o.trace = Some(val()),
            "--creates" => o.creates = Some(val()),
            _ => o.replicas.push(a.clone()),
        }
    }
    o
}

fn write_trace(path: &str, records: &[Record]) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in records {
        let kind = r.kind.map(Kind::name).unwrap_or("sync");
        writeln!(w, "{},{},{kind},{}", r.end_ms, r.latency_us, r.status)?;
    }
    w.flush()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: scim_sync BASE_URL TENANTS USERS_PER_TENANT DISCOVERY_EVERY [--stop-file F] [--duration S] [--trace F] [--creates F] [REPLICA_BASE_URL...]");
        std::process::exit(2);
    }
    let Some((addr, base)) = parse_base(&args[1]) else {
        eprintln!("BASE_URL must look like http://127.0.0.1:8080/v2");
        std::process::exit(2);
    };
    let tenants: usize = args[2].parse().unwrap_or(10);
    let users: usize = args[3].parse().unwrap_or(20);
    let every: usize = args[4].parse().unwrap_or(0);
    let opts = parse_opts(&args[5..]);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let start_ms = epoch_ms();
    let handles: Vec<_> = (0..tenants)
        .map(|t| {
            let base = base.clone();
            let stop = stop.clone();
            std::thread::spawn(move || sync_tenant(addr, &base, t, users, every, &stop))
        })
        .collect();
    if opts.stop_file.is_some() || opts.duration.is_some() {
        while !handles.iter().all(|h| h.is_finished()) {
            let timed_out = opts.duration.is_some_and(|d| start.elapsed() >= d);
            let stopped = opts
                .stop_file
                .as_ref()
                .is_some_and(|f| std::path::Path::new(f).exists());
            if timed_out || stopped {
                stop.store(true, Ordering::Relaxed);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut total = Tally::default();
    for h in handles {
        if let Ok(t) = h.join() {
            total.syncs += t.syncs;
            total.requests += t.requests;
            total.errors += t.errors;
            total.failed_ops += t.failed_ops;
            total.idp_retries += t.idp_retries;
            total.throttled += t.throttled;
            total.ryw_misses += t.ryw_misses;
            total.conflicts += t.conflicts;
            total.reconnect_resends += t.reconnect_resends;
            total.post_resends += t.post_resends;
            total.records.extend(t.records);
            total.creates.extend(t.creates);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mut lat: Vec<u64> = total
        .records
        .iter()
        .filter(|r| r.kind.is_some())
        .map(|r| r.latency_us)
        .collect();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        lat[((lat.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0
    };
    if let Some(path) = &opts.trace {
        total.records.sort_by_key(|r| r.end_ms);
        if let Err(e) = write_trace(path, &total.records) {
            eprintln!("scim_sync: cannot write {path}: {e}");
        }
    }
    let mut out = serde_json::json!({
        "syncs": total.syncs, "seconds": secs, "syncs_per_s": total.syncs as f64 / secs,
        "requests": total.requests, "errors": total.errors, "failed_ops": total.failed_ops,
        "idp_retries": total.idp_retries, "throttled": total.throttled,
        "read_your_writes_misses": total.ryw_misses, "conflicts": total.conflicts,
        "client_resends": total.reconnect_resends, "client_post_resends": total.post_resends,
        "p50_ms": pct(0.5), "p99_ms": pct(0.99), "start_ms": start_ms, "end_ms": epoch_ms(),
    });
    match &opts.creates {
        Some(log) => {
            if let (Some(o), serde_json::Value::Object(c)) = (out.as_object_mut(), creates_report(log, &total.creates))
            {
                o.extend(c);
            }
        }
        None => out["duplicates"] = duplicates(&opts.replicas).into(),
    }
    println!("{out}");
}
