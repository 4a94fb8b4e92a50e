//! `upstream` blocks and `proxy_pass` targets → `upstreams`.
//!
//! nginx sets timeouts and retries per location, scimitar per pool: each distinct set of
//! location settings over one nginx upstream becomes its own pool (`scim`, `scim-2`, …), so no
//! location silently gets another's timeouts. A `proxy_pass http://host:port` with no upstream
//! block becomes a generated one-server pool.

use std::time::Duration;

use super::emit::{Entry, Item, Node};
use super::scope::{self, Chain};
use super::{Cx, Kind, Note};
use crate::nginx::Directive;

/// What a location's `proxy_pass` resolved to.
#[derive(Debug, Clone)]
pub struct Target {
    /// The scimitar pool name.
    pub pool: String,
    /// nginx's `$proxy_host`: what nginx sends as `Host` unless told otherwise.
    pub proxy_host: String,
    /// The URI part of `proxy_pass` (`/api/` in `http://pool/api/`), if any.
    pub uri: Option<String>,
    /// Affinity key sources from the upstream's `hash`, for each route using the pool.
    pub affinity: Option<Vec<String>>,
}

/// One nginx upstream (or proxy_pass address) as scimitar pool settings, before the
/// per-location settings.
struct Base {
    key: String,
    name: String,
    proxy_host: String,
    notes: Vec<String>,
    /// `servers`, `selection`, `passive` (without count_5xx), `max_conns`, `keepalive`.
    entries: Vec<Entry>,
    passive: Option<Node>,
    idle: Option<(Duration, String)>,
    servers: usize,
    affinity: Option<Vec<String>>,
}

/// A pool as emitted: a base plus one location's settings.
struct Pool {
    base: usize,
    name: String,
    /// The per-location settings, comments stripped: equal settings share a pool.
    settings: Node,
    entries: Vec<Entry>,
    notes: Vec<String>,
}

pub(crate) struct Pools<'a> {
    blocks: Vec<&'a Directive>,
    bases: Vec<Base>,
    pools: Vec<Pool>,
}

impl<'a> Pools<'a> {
    /// Knows the http block's `upstream` blocks; nothing is consumed until a location uses one.
    pub fn collect(_cx: &mut Cx, h: &'a Directive) -> Pools<'a> {
        Pools {
            blocks: h.find("upstream").collect(),
            bases: Vec::new(),
            pools: Vec::new(),
        }
    }

    /// The pool for a location's `proxy_pass` (`chain` ends at the location); `Err` with the
    /// reason when it cannot be expressed.
    pub fn target(&mut self, cx: &mut Cx, pass: &Directive, chain: &Chain) -> Result<Target, String> {
        let url = pass.arg(0).ok_or("`proxy_pass` without an address")?;
        if url.contains('$') {
            return Err("the address is built from variables at request time; scimitar's pools are fixed".into());
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("`{url}` is not an http:// or https:// address"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            other => return Err(format!("`{other}://`: scimitar proxies HTTP and HTTPS only")),
        };
        let (hostport, uri) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(rest[i..].to_string())),
            None => (rest, None),
        };
        if hostport.starts_with("unix:") {
            return Err("scimitar connects to TCP servers only, not unix sockets".into());
        }
        let base = match self.blocks.iter().position(|b| b.arg(0) == Some(hostport)) {
            Some(i) => self.block_base(cx, i)?,
            None => self.direct_base(cx, pass, hostport, tls)?,
        };
        let settings_entries = location_settings(cx, &self.bases[base], chain, tls, hostport);
        let settings = Node::Map(settings_entries.clone()).bare();
        let pool = match self.pools.iter().position(|p| p.base == base && p.settings == settings) {
            Some(p) => p,
            None => {
                let same_base = self.pools.iter().filter(|p| p.base == base).count();
                let b = &self.bases[base];
                let name = if same_base == 0 {
                    b.name.clone()
                } else {
                    format!("{}-{}", b.name, same_base + 1)
                };
                let mut notes = Vec::new();
                if same_base > 0 {
                    notes.insert(
                        0,
                        format!(
                            "pool `{}` again, with the timeouts/retries of the location at {} (scimitar sets them per pool; health and ejections count per pool)",
                            b.name,
                            cx.place(chain.innermost().unwrap_or(pass))
                        ),
                    );
                }
                self.pools.push(Pool {
                    base,
                    name,
                    settings,
                    entries: settings_entries,
                    notes,
                });
                self.pools.len() - 1
            }
        };
        let b = &self.bases[base];
        Ok(Target {
            pool: self.pools[pool].name.clone(),
            proxy_host: b.proxy_host.clone(),
            uri,
            affinity: b.affinity.clone(),
        })
    }

    fn block_base(&mut self, cx: &mut Cx, i: usize) -> Result<usize, String> {
        let block = self.blocks[i];
        let key = format!("block:{i}");
        if let Some(b) = self.bases.iter().position(|b| b.key == key) {
            return if self.bases[b].servers == 0 {
                Err(format!(
                    "upstream `{}` has no server scimitar can use",
                    self.bases[b].name
                ))
            } else {
                Ok(b)
            };
        }
        let base = upstream_block(cx, block, key);
        let usable = base.servers > 0;
        let name = base.name.clone();
        self.bases.push(base);
        if usable {
            Ok(self.bases.len() - 1)
        } else {
            Err(format!("upstream `{name}` has no server scimitar can use"))
        }
    }

    fn direct_base(&mut self, cx: &mut Cx, pass: &Directive, hostport: &str, tls: bool) -> Result<usize, String> {
        let address = with_port(hostport, if tls { 443 } else { 80 })?;
        let key = format!("direct:{address}:{tls}");
        if let Some(b) = self.bases.iter().position(|b| b.key == key) {
            return Ok(b);
        }
        let mut name: String = address
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        name = name.trim_matches('_').to_string();
        while self.blocks.iter().any(|b| b.arg(0) == Some(name.as_str())) || self.bases.iter().any(|b| b.name == name) {
            name.push('_');
        }
        let mut server = Node::map();
        server.set("address", Node::str(address));
        let entries = vec![Entry {
            notes: vec![],
            key: "servers".into(),
            value: Node::List(vec![Item {
                notes: vec![],
                value: server,
            }]),
        }];
        self.bases.push(Base {
            key,
            name,
            proxy_host: hostport.to_string(),
            notes: vec![format!("{} (no upstream block: a pool of one server)", cx.from(pass))],
            entries,
            passive: None,
            idle: None,
            servers: 1,
            affinity: None,
        });
        Ok(self.bases.len() - 1)
    }

    /// The `upstreams` section.
    pub fn emit(self, _cx: &mut Cx) -> Vec<Entry> {
        self.pools
            .into_iter()
            .map(|p| {
                let b = &self.bases[p.base];
                let mut notes = if p.name == b.name { b.notes.clone() } else { Vec::new() };
                notes.extend(p.notes);
                let mut entries = b.entries.clone();
                if let Some(passive) = pool_passive(b, &p.entries) {
                    entries.push(passive);
                }
                entries.extend(p.entries.into_iter().filter(|e| e.key != "count_5xx"));
                Entry {
                    notes,
                    key: p.name,
                    value: Node::Map(entries),
                }
            })
            .collect()
    }
}

/// `passive` from the upstream's servers, with `count_5xx` from the location's
/// `proxy_next_upstream`.
fn pool_passive(b: &Base, settings: &[Entry]) -> Option<Entry> {
    let count = settings.iter().find(|e| e.key == "count_5xx");
    let mut node = b.passive.clone();
    if let Some(c) = count {
        let n = node.get_or_insert_with(Node::map);
        n.set_noted(c.notes.clone(), "count_5xx", c.value.clone());
    }
    node.map(|value| Entry {
        notes: vec![],
        key: "passive".into(),
        value,
    })
}

/// `host:port` with nginx's default port added; IPv6 stays bracketed.
fn with_port(hostport: &str, default: u16) -> Result<String, String> {
    if hostport.is_empty() {
        return Err("an address without a host".into());
    }
    if hostport.starts_with('[') {
        return Ok(if hostport.contains("]:") {
            hostport.to_string()
        } else {
            format!("{hostport}:{default}")
        });
    }
    match hostport.rsplit_once(':') {
        Some((_, p)) if p.parse::<u16>().is_ok() => Ok(hostport.to_string()),
        Some(_) => Err(format!("`{hostport}` has a port that is not a number")),
        None => Ok(format!("{hostport}:{default}")),
    }
}

/// One nginx `upstream { … }` → its scimitar settings, consuming what it translates.
fn upstream_block(cx: &mut Cx, block: &Directive, key: String) -> Base {
    cx.take(block);
    let name = block.arg(0).unwrap_or("upstream").to_string();
    let mut servers: Vec<Item> = Vec::new();
    let mut addresses: Vec<String> = Vec::new();
    let mut passive: Vec<(Option<u64>, Option<Duration>, &Directive)> = Vec::new();
    let mut max_conns: Vec<(u64, &Directive)> = Vec::new();
    let mut entries = Vec::new();
    let mut selection: Option<Entry> = None;
    let mut affinity = None;
    let mut keepalive = None;
    let mut idle = None;
    for d in block.children() {
        match d.name.as_str() {
            "server" => {
                let Some(addr) = d.arg(0) else { continue };
                if addr.starts_with("unix:") {
                    cx.drop(d, true, "scimitar connects to TCP servers only, not unix sockets");
                    continue;
                }
                if scope::flag(d, "backup") {
                    cx.drop(
                        d,
                        true,
                        "scimitar has no backup servers: this one would take traffic all the time, so it is left out (nginx uses it only when every other server is down)",
                    );
                    continue;
                }
                if scope::flag(d, "down") {
                    cx.take(d);
                    continue;
                }
                let address = match with_port(addr, 80) {
                    Ok(a) => a,
                    Err(why) => {
                        cx.drop(d, true, why);
                        continue;
                    }
                };
                cx.take(d);
                let weight = scope::param(d, "weight")
                    .and_then(|w| w.parse::<u64>().ok())
                    .unwrap_or(1);
                if let Some(i) = addresses.iter().position(|a| *a == address) {
                    // scimitar refuses a server listed twice: the same share as a summed weight.
                    if let Some(Item { value, .. }) = servers.get_mut(i) {
                        let w = match value.get("weight") {
                            Some(Node::Int(w)) => *w,
                            _ => 1,
                        };
                        if let Some(slot) = value.get_mut("weight") {
                            *slot = Node::Int(w.saturating_add(weight).min(1000));
                        } else {
                            value.set("weight", Node::Int(w.saturating_add(weight).min(1000)));
                        }
                    }
                    cx.differs(d, "listed twice: one server with the weights added");
                    continue;
                }
                let mut s = Node::map();
                s.set("address", Node::str(address.clone()));
                if weight != 1 {
                    s.set("weight", Node::Int(weight.clamp(1, 1000)));
                }
                servers.push(Item {
                    notes: vec![cx.from(d)],
                    value: s,
                });
                addresses.push(address);
                let mf = scope::param(d, "max_fails").and_then(|v| v.parse::<u64>().ok());
                let ft = scope::param(d, "fail_timeout").and_then(scope::time);
                passive.push((mf, ft, d));
                if let Some(n) = scope::param(d, "max_conns").and_then(|v| v.parse::<u64>().ok()) {
                    if n > 0 {
                        max_conns.push((n, d));
                    }
                }
                for p in ["slow_start", "route", "service", "drain"] {
                    if scope::param(d, p).is_some() || scope::flag(d, p) {
                        cx.note(Note::new(
                            d,
                            Kind::Dropped { handling: false },
                            format!("`{p}`: an NGINX Plus server parameter scimitar does not have"),
                        ));
                    }
                }
                if scope::flag(d, "resolve") {
                    cx.note(Note::new(
                        d,
                        Kind::Dropped { handling: false },
                        "`resolve`: scimitar resolves host names once, at start and reload",
                    ));
                }
            }
            "keepalive" => {
                if let Some(n) = d.arg(0).and_then(|n| n.parse::<u64>().ok()) {
                    cx.take(d);
                    keepalive = Some(Entry {
                        notes: vec![
                            cx.from(d),
                            "nginx caches this many idle connections per worker for the whole upstream; scimitar per server".into(),
                        ],
                        key: "keepalive".into(),
                        value: Node::Int(n.min(65_536)),
                    });
                }
            }
            "keepalive_timeout" => match d.arg(0).and_then(scope::time).and_then(scope::bounded) {
                Some(t) => {
                    cx.take(d);
                    idle = Some((t, cx.from(d)));
                }
                None => cx.drop(d, false, "zero, over a year or unreadable; scimitar keeps its default"),
            },
            "keepalive_requests" | "keepalive_time" => {
                cx.drop(
                    d,
                    false,
                    "scimitar closes idle upstream connections after `timeouts.idle`, not after a count or age",
                );
            }
            "zone" => cx.take(d),
            "least_conn" => {
                cx.differs(
                    d,
                    "scimitar has no least-connections balancing: weighted round robin; `max_conns` per server or the pool's `max_inflight` keep a slow server from piling up requests",
                );
            }
            "random" => cx.differs(d, "weighted round robin instead of random picks"),
            "ip_hash" => {
                cx.differs(
                    d,
                    "consistent hashing keyed on the tenant, else the token, else the client IP: IdPs send from a few egress IPs, so an IP hash would put most tenants on one or two servers",
                );
                selection = Some(Entry {
                    notes: vec![
                        cx.from(d),
                        "keyed on the tenant, else the bearer token, else the client IP (not the IP alone: an IdP's few egress addresses would load one or two servers)".into(),
                    ],
                    key: "selection".into(),
                    value: Node::str("consistent"),
                });
            }
            "hash" => {
                let (key, why) = hash_key(d.arg(0).unwrap_or_default());
                let mut notes = vec![cx.from(d)];
                match &key {
                    Some(k) => notes.push(format!(
                        "routes on this pool keep a key on one server: affinity key {}",
                        k.join(", ")
                    )),
                    None => notes.push("keyed on the tenant, else the bearer token, else the client IP".into()),
                }
                match (&why, scope::flag(d, "consistent")) {
                    (Some(w), _) => cx.differs(d, w.clone()),
                    (None, false) => cx.differs(
                        d,
                        "Ketama consistent hashing, as with `consistent`: the same key stays on the same server, but fewer keys move when a server comes or goes",
                    ),
                    (None, true) => cx.take(d),
                }
                affinity = key;
                selection = Some(Entry {
                    notes,
                    key: "selection".into(),
                    value: Node::str("consistent"),
                });
            }
            _ => {}
        }
    }
    let count = servers.len();
    if count > 0 {
        entries.push(Entry {
            notes: vec![],
            key: "servers".into(),
            value: Node::List(servers),
        });
    }
    entries.extend(selection);
    let passive = passive_node(cx, &passive);
    if let Some((n, d)) = max_conns.first() {
        let all_same = max_conns.iter().all(|(m, _)| m == n) && max_conns.len() == count;
        let least = max_conns.iter().map(|(m, _)| *m).min().unwrap_or(*n);
        if !all_same {
            cx.differs(
                d,
                format!("scimitar's `max_conns` is one value for every server of a pool: {least} (the lowest given)"),
            );
        }
        entries.push(Entry {
            notes: vec![
                cx.from(d),
                "over it a request waits in the proxy up to queue_timeout (nginx tries the next server or answers 502)"
                    .into(),
            ],
            key: "max_conns".into(),
            value: Node::Int(least.min(1_000_000)),
        });
    }
    entries.extend(keepalive);
    Base {
        key,
        proxy_host: name.clone(),
        name,
        notes: vec![cx.from(block)],
        entries,
        passive,
        idle,
        servers: count,
        affinity,
    }
}

/// `max_fails` / `fail_timeout` (nginx defaults 1 and 10s) → `passive`, when any server sets
/// them; scimitar has one setting per pool.
fn passive_node(cx: &mut Cx, servers: &[(Option<u64>, Option<Duration>, &Directive)]) -> Option<Node> {
    let explicit: Vec<_> = servers.iter().filter(|(m, t, _)| m.is_some() || t.is_some()).collect();
    let first = explicit.first()?;
    let value = |(m, t, _): &(Option<u64>, Option<Duration>, &Directive)| {
        (
            m.unwrap_or(1),
            t.and_then(scope::bounded).unwrap_or(Duration::from_secs(10)),
        )
    };
    let (max_fails, eject_for) = value(first);
    for s in servers {
        if value(s) != (max_fails, eject_for) {
            cx.differs(
                s.2,
                format!(
                    "scimitar's passive ejection is one setting per pool: max_fails {max_fails}, eject_for {}",
                    scope::fmt_time(eject_for)
                ),
            );
        }
    }
    let mut p = Node::map();
    p.set_noted(
        vec![
            format!("from {}: max_fails/fail_timeout", cx.place(first.2)),
            "scimitar counts consecutive failures and ejects for eject_for; nginx counts failures within fail_timeout"
                .into(),
        ],
        "max_fails",
        Node::Int(max_fails.min(1000)),
    );
    p.set("eject_for", Node::str(scope::fmt_time(eject_for)));
    Some(p)
}

/// `hash KEY` → affinity key sources, and a difference worth reporting.
fn hash_key(key: &str) -> (Option<Vec<String>>, Option<String>) {
    let vars = scope::variables(key);
    let literal_rest = {
        let mut s = key.to_string();
        for v in &vars {
            s = s.replace(&format!("${{{v}}}"), "").replace(&format!("${v}"), "");
        }
        s
    };
    let mut sources = Vec::new();
    for v in &vars {
        match super::limits::key_source(v) {
            Some(s) => sources.push(s),
            None => {
                return (
                    None,
                    Some(format!(
                    "`${v}` has no scimitar key source; keyed on the tenant, else the bearer token, else the client IP"
                )),
                )
            }
        }
    }
    if sources.is_empty() {
        return (
            None,
            Some("a constant key; keyed on the tenant, else the bearer token, else the client IP".into()),
        );
    }
    let why = if sources.len() > 1 || !literal_rest.is_empty() {
        Some("a composite key: scimitar's affinity takes the first of these sources the request has".to_string())
    } else {
        None
    };
    (Some(sources), why)
}

/// The location's timeouts, retries, 5xx counting and upstream TLS (`chain` ends at the
/// location), as pool entries.
fn location_settings(cx: &mut Cx, base: &Base, chain: &Chain, tls: bool, hostport: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut timeouts = Node::map();
    for (nginx, key) in [
        ("proxy_connect_timeout", "connect"),
        ("proxy_read_timeout", "read"),
        ("proxy_send_timeout", "write"),
    ] {
        let Some(d) = chain.scalar(nginx) else { continue };
        match d.arg(0).and_then(scope::time).and_then(scope::bounded) {
            Some(t) => {
                cx.take(d);
                timeouts.set_noted(vec![cx.from(d)], key, Node::str(scope::fmt_time(t)));
            }
            None => cx.drop(d, false, "zero, over a year or unreadable; scimitar keeps its default"),
        }
    }
    if let Some((t, from)) = &base.idle {
        timeouts.set_noted(vec![from.clone()], "idle", Node::str(scope::fmt_time(*t)));
    }
    if !timeouts.is_empty() {
        let mut notes = vec![];
        if ["connect", "read", "write"].iter().any(|k| timeouts.get(k).is_none()) {
            notes.push("unset ones keep scimitar's defaults (connect 2s, read 55s — under Entra ID's 60s — write 30s), not nginx's 60s".into());
        }
        entries.push(Entry {
            notes,
            key: "timeouts".into(),
            value: timeouts,
        });
    }
    let (retries, retry_notes, count_5xx) = retries(cx, chain, base.servers);
    entries.push(Entry {
        notes: retry_notes,
        key: "retries".into(),
        value: Node::Int(retries),
    });
    if let Some(c) = count_5xx {
        entries.push(c);
    }
    if tls {
        entries.push(upstream_tls(cx, chain, hostport));
    }
    entries
}

/// `proxy_next_upstream` and `_tries` → `retries` (and `count_5xx` for `http_50x`).
fn retries(cx: &mut Cx, chain: &Chain, servers: usize) -> (u64, Vec<String>, Option<Entry>) {
    let most = servers.saturating_sub(1).min(16) as u64;
    let mut retries = most;
    let mut notes = vec![];
    let mut count_5xx = None;
    match chain.scalar("proxy_next_upstream") {
        Some(d) => {
            cx.take(d);
            notes.push(cx.from(d));
            let words: Vec<&str> = d.args.iter().map(|a| a.as_str()).collect();
            if words.contains(&"off") {
                retries = 0;
            }
            if !words.contains(&"error") && !words.contains(&"off") {
                cx.differs(
                    d,
                    "scimitar always retries a connect failure (nothing was sent), with or without `error`",
                );
            }
            let statuses: Vec<&str> = words.iter().copied().filter(|w| w.starts_with("http_")).collect();
            if !statuses.is_empty() {
                cx.note(Note::new(
                    d,
                    Kind::Dropped { handling: true },
                    format!(
                        "`{}`: scimitar passes an upstream's own answer through and retries only when none came (connect failure, reset, timeout){}",
                        statuses.join(" "),
                        if statuses.iter().any(|s| matches!(*s, "http_502" | "http_503" | "http_504")) {
                            "; `passive.count_5xx` now ejects a server that keeps answering 502/503/504"
                        } else {
                            ""
                        }
                    ),
                ));
                if statuses
                    .iter()
                    .any(|s| matches!(*s, "http_502" | "http_503" | "http_504"))
                {
                    count_5xx = Some(Entry {
                        notes: vec![cx.from(d)],
                        key: "count_5xx".into(),
                        value: Node::Bool(true),
                    });
                }
            }
            if words.contains(&"non_idempotent") {
                cx.differs(
                    d,
                    "`non_idempotent` refused on purpose: scimitar never replays a POST create, PATCH or Bulk once it may have reached a server (a replay creates duplicate users); it retries them only after a failed connect",
                );
                notes.push(
                    "non_idempotent is refused on purpose: a replayed POST or PATCH can create duplicate users".into(),
                );
            }
        }
        None => notes.push("nginx's default: each server once, on connect errors and timeouts".into()),
    }
    if let Some(d) = chain.scalar("proxy_next_upstream_tries") {
        cx.take(d);
        notes.push(cx.from(d));
        if let Some(n) = d.arg(0).and_then(|n| n.parse::<u64>().ok()).filter(|n| *n > 0) {
            retries = retries.min(n - 1);
        }
    }
    notes.push("after a request may have reached a server only GET, HEAD, .search, PUT and DELETE are retried; a POST create, PATCH or Bulk never".into());
    (retries, notes, count_5xx)
}

/// `proxy_pass https://…` → `tls`, from `proxy_ssl_*` (nginx does not verify by default).
fn upstream_tls(cx: &mut Cx, chain: &Chain, hostport: &str) -> Entry {
    let mut t = Node::map();
    let mut notes = Vec::new();
    let verify = chain.scalar("proxy_ssl_verify").is_some_and(|d| d.arg(0) == Some("on"));
    let host = hostport
        .rsplit_once(':')
        .filter(|(_, p)| p.parse::<u16>().is_ok())
        .map_or(hostport, |(h, _)| h);
    let sni = chain.scalar("proxy_ssl_name").and_then(|d| d.arg(0)).unwrap_or(host);
    let send_sni = chain
        .scalar("proxy_ssl_server_name")
        .is_some_and(|d| d.arg(0) == Some("on"));
    for n in ["proxy_ssl_verify", "proxy_ssl_name", "proxy_ssl_server_name"] {
        if let Some(d) = chain.scalar(n) {
            cx.take(d);
            notes.push(cx.from(d));
        }
    }
    if (verify || send_sni) && !sni.contains('$') {
        t.set("sni", Node::str(sni));
    }
    t.set("verify", Node::Bool(verify));
    if !verify {
        notes.push("nginx does not verify upstream certificates by default (proxy_ssl_verify off); set `verify: true` and `sni`".into());
    }
    if let Some(d) = chain.scalar("proxy_ssl_trusted_certificate") {
        cx.take(d);
        if let Some(p) = d.arg(0) {
            t.set_noted(
                vec![cx.from(d)],
                "ca",
                Node::str(scope::resolve(cx.base(), p).display().to_string()),
            );
        }
    }
    let cert = chain.scalar("proxy_ssl_certificate");
    let key = chain.scalar("proxy_ssl_certificate_key");
    if let (Some(c), Some(k)) = (cert, key) {
        cx.take(c);
        cx.take(k);
        if let (Some(cp), Some(kp)) = (c.arg(0), k.arg(0)) {
            t.set_noted(
                vec![cx.from(c)],
                "cert",
                Node::str(scope::resolve(cx.base(), cp).display().to_string()),
            );
            t.set_noted(
                vec![cx.from(k)],
                "key",
                Node::str(scope::resolve(cx.base(), kp).display().to_string()),
            );
        }
    }
    Entry {
        notes,
        key: "tls".into(),
        value: t,
    }
}
