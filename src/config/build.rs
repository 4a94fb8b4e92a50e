//! Walks the parsed YAML into [`Config`], checking every key and cross-reference.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use pingora::server::configuration::ServerConf;
use serde_yaml::{Mapping, Value};

use super::reader::{self as r, join, Problems};
use super::*;
use crate::affinity::Affinity;
use crate::cache::{CacheConfig, RouteCache};
use crate::keys::KeySource;
use crate::overload::OverloadConfig;
use crate::ratelimit::{Policy, Rate, RedisConfig};
use crate::routing::{BasePath, Route};
use crate::scim::{EndpointClass, Method};

pub const TOP: &[&str] = &[
    "server",
    "listeners",
    "admin",
    "tenancy",
    "upstreams",
    "routes",
    "rate_limits",
    "redis",
    "key_secret",
    "cache",
    "shutdown_timeout",
    "access_log",
    "metrics",
    "trusted_proxies",
    "real_ip_header",
    "client",
];
pub const POOL: &[&str] = &[
    "servers",
    "selection",
    "health_check",
    "passive",
    "timeouts",
    "keepalive",
    "retries",
    "preserve_host",
    "max_inflight",
    "max_conns",
    "queue",
    "queue_timeout",
    "tenant_share",
    "tls",
];
pub const HEALTH: &[&str] = &[
    "type",
    "path",
    "interval",
    "timeout",
    "expect_status",
    "rise",
    "fall",
    "host",
];
pub const LISTENER: &[&str] = &[
    "name",
    "address",
    "protocol",
    "tls",
    "http2",
    "upstream",
    "idle_timeout",
    "max_connections",
    "queue_timeout",
];
pub const PASSIVE: &[&str] = &["max_fails", "eject_for", "count_5xx"];
pub const TIMEOUTS: &[&str] = &["connect", "read", "write", "idle"];
pub const ROUTE: &[&str] = &[
    "name",
    "base_path",
    "classes",
    "methods",
    "upstream",
    "max_body",
    "affinity",
    "rate_limits",
    "cache",
    "auth",
    "headers",
    "upstream_base_path",
    "return",
];
pub const CACHE: &[&str] = &["max_size", "max_entry"];
pub const ROUTE_CACHE: &[&str] = &[
    "discovery",
    "resources",
    "write_through",
    "ignore_cache_control",
    "key_headers",
];
pub const AFFINITY: &[&str] = &["key", "pin_after_write"];
pub const LIMITS: &[&str] = &["store", "policies"];
pub const POLICY: &[&str] = &["key", "rate", "burst", "classes"];
pub const REDIS: &[&str] = &["url", "timeout", "prefix", "backoff"];

/// nginx's `client_max_body_size` default, so a drop-in replacement behaves the same.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;

/// Under Kubernetes' default 30 s termination grace once the pod's preStop has run, and
/// systemd's 90 s `TimeoutStopSec`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

pub fn build(root: &Value) -> Result<Config, Problems> {
    let mut p = Problems::default();
    let empty = Mapping::new();
    let top = match root {
        Value::Null => &empty,
        v => r::map(&mut p, "", v, TOP).unwrap_or(&empty),
    };

    let upstreams = upstreams(&mut p, top);
    let server = server(&mut p, r::get(top, "server"), &upstreams);
    let admin = r::get(top, "admin").and_then(|v| admin(&mut p, v));
    let admin_addr = admin.as_ref().and_then(|a| a.address.parse().ok());
    let listeners = listeners(&mut p, top, &upstreams, admin_addr);
    let tenancy_v = r::get(top, "tenancy");
    let rate_limits = rate_limits(&mut p, top);
    // Headers that carry a verified client certificate: no key or header rule may use them.
    let forwarded: Vec<&str> = listeners
        .iter()
        .filter_map(|l| l.tls.as_ref()?.forward_client_cert.as_ref())
        .map(|h| h.as_str())
        .collect();
    let guarded = super::headers::Guarded::new(forwarded.clone(), tenancy_v);
    let routes = routes(&mut p, top, &upstreams, &rate_limits, &guarded);
    let key_secret = r::opt(&mut p, top, "", "key_secret", "scimitar".to_string(), r::string);
    let tenancy = tenancy(&mut p, tenancy_v, &routes);
    super::auth::tenants(&mut p, &routes, &tenancy);
    super::headers::check_tenant(&mut p, &routes, &tenancy);
    let cache = cache(&mut p, top, &routes);
    let shutdown_timeout = r::opt(
        &mut p,
        top,
        "",
        "shutdown_timeout",
        DEFAULT_SHUTDOWN_TIMEOUT,
        r::duration,
    );
    // scimitar ends a graceful stop itself (after the drain or at `shutdown_timeout`); Pingora's
    // own grace period (default 300 s, not interruptible) only backs that up.
    let server = server.map(|mut s| {
        if s.grace_period_seconds.is_some_and(|g| g < shutdown_timeout.as_secs()) {
            p.warn(
                "server.grace_period_seconds",
                "is shorter than shutdown_timeout, so Pingora tears down requests still in flight first; \
                 remove it (scimitar sets it from shutdown_timeout)",
            );
        }
        s.grace_period_seconds.get_or_insert(shutdown_timeout.as_secs() + 5);
        s.graceful_shutdown_timeout_seconds.get_or_insert(1);
        s
    });
    let access_log = r::get(top, "access_log").and_then(|v| super::observe::access_log(&mut p, v));
    let metrics = super::observe::metrics(&mut p, r::get(top, "metrics"));
    let trusted_proxies = super::observe::trusted_proxies(&mut p, r::get(top, "trusted_proxies"));
    let real_ip_header = super::observe::real_ip_header(&mut p, top, &trusted_proxies);
    let client = super::client::client(&mut p, r::get(top, "client"));

    // A client-certificate header is removed before the proxy forwards, but keys are read
    // before that: keying on it would key on whatever the client wrote there.
    let spoofable = |k: &[KeySource]| {
        k.iter()
            .any(|s| matches!(s, KeySource::Header(h) if forwarded.contains(&h.as_str())))
    };
    for (i, r) in routes.iter().enumerate() {
        if r.affinity.as_ref().is_some_and(|a| spoofable(&a.sources)) {
            p.add(
                &join(&r::index("routes", i), "affinity.key"),
                "keys on the client-certificate header, which clients can write; use `client_cert`",
            );
        }
    }
    for pol in &rate_limits.policies {
        if spoofable(&pol.key) {
            p.add(
                &join(&join("rate_limits.policies", &pol.name), "key"),
                "keys on the client-certificate header, which clients can write; use `client_cert`",
            );
        }
    }

    match (p.is_empty(), server) {
        (true, Some(server)) => Ok(Config {
            server,
            listeners,
            admin,
            tenancy,
            upstreams,
            routes,
            rate_limits,
            key_secret,
            cache,
            shutdown_timeout,
            client,
            access_log,
            metrics,
            trusted_proxies,
            real_ip_header,
            warnings: p.1,
            source: Arc::new(root.clone()),
            hash: 0,
        }),
        _ => Err(p),
    }
}

/// Two listen addresses that cannot both be bound: one port, and the same IP or a wildcard
/// (`0.0.0.0`, `[::]`) on either side.
fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn socket(p: &mut Problems, path: &str, v: &Value) -> Option<SocketAddr> {
    let s = r::string(p, path, v)?;
    s.parse::<SocketAddr>()
        .map_err(|_| {
            p.add(
                path,
                format!("`{s}` is not an IP:port address; write e.g. `127.0.0.1:8080` or `[::1]:8080`"),
            )
        })
        .ok()
}

/// Upstream server addresses may be host names; they are resolved once, here, because
/// resolving on the request path (or panicking in `HttpPeer::new`) is not an option.
fn server_address(p: &mut Problems, path: &str, v: &Value) -> Option<SocketAddr> {
    let s = r::string(p, path, v)?;
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    if !s.contains(':') {
        p.add(path, format!("`{s}` has no port; write `{s}:PORT`"));
        return None;
    }
    match s.to_socket_addrs().map(|mut it| it.next()) {
        Ok(Some(a)) => Some(a),
        _ => {
            p.add(
                path,
                format!("cannot resolve `{s}`; use an IP:port or a resolvable host:port"),
            );
            None
        }
    }
}

fn server(p: &mut Problems, v: Option<&Value>, pools: &[PoolConfig]) -> Option<ServerConf> {
    // The allowed keys are ServerConf's own fields, read off its serialised default, so a typo
    // in a Pingora setting is caught here even though Pingora itself would ignore it.
    let allowed: Vec<String> = match serde_yaml::to_value(ServerConf::default()) {
        Ok(Value::Mapping(m)) => m.keys().filter_map(|k| k.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    };
    let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
    let given = match v {
        Some(v) => r::map(p, "server", v, &allowed)?.clone(),
        None => Mapping::new(),
    };
    let mut conf: ServerConf = match serde_yaml::from_value(Value::Mapping(given.clone())) {
        Ok(c) => c,
        Err(e) => {
            p.add(
                "server",
                format!("{e}; see Pingora's ServerConf for each setting's type"),
            );
            return None;
        }
    };
    if !given.contains_key("threads") {
        // Pingora defaults to one thread per service; an edge proxy should use the machine.
        conf.threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    }
    if !given.contains_key("work_stealing") {
        // One runtime per thread, like nginx workers: measured ~7% less CPU per request than
        // Pingora's default work-stealing runtime (benches/README.md).
        conf.work_stealing = false;
    }
    if !given.contains_key("upstream_keepalive_pool_size") {
        let wanted: usize = pools.iter().map(|u| u.keepalive * u.servers.len()).sum();
        conf.upstream_keepalive_pool_size = conf.upstream_keepalive_pool_size.max(wanted);
    }
    if conf.threads == 0 {
        p.add("server.threads", "must be at least 1");
    }
    if !given.contains_key("max_retries") {
        let most = pools.iter().map(|u| u.retries + 1).max().unwrap_or(1);
        conf.max_retries = most.max(1);
    }
    Some(conf)
}

/// The `admin` section: its address, and the digest of its bearer token.
fn admin(p: &mut Problems, v: &Value) -> Option<Admin> {
    let m = r::map(p, "admin", v, &["address", "token_sha256"])?;
    let token_sha256 = r::get(m, "token_sha256").and_then(|v| {
        let at = "admin.token_sha256";
        let hex = r::string(p, at, v)?;
        crate::token::parse_hex(&hex).map_err(|e| p.add(at, e)).ok()
    });
    let address = r::req(p, m, "admin", "address", "give e.g. `127.0.0.1:9090`", socket)?;
    Some(Admin {
        address: address.to_string(),
        token_sha256,
    })
}

fn listeners(p: &mut Problems, top: &Mapping, pools: &[PoolConfig], admin: Option<SocketAddr>) -> Vec<Listener> {
    let mut out = Vec::new();
    let Some(list) = r::req(
        p,
        top,
        "",
        "listeners",
        "add e.g. `listeners: [{name: main, address: \"0.0.0.0:8080\"}]`",
        r::list,
    ) else {
        return out;
    };
    if list.is_empty() {
        p.add("listeners", "empty; add at least one listener");
    }
    let mut seen: Vec<SocketAddr> = Vec::new();
    let mut names = HashSet::new();
    for (i, v) in list.iter().enumerate() {
        let at = r::index("listeners", i);
        let Some(m) = r::map(p, &at, v, LISTENER) else {
            continue;
        };
        let name = r::opt(p, m, &at, "name", format!("listener{i}"), r::string);
        if !names.insert(name.clone()) {
            p.add(&join(&at, "name"), format!("`{name}` names another listener too"));
        }
        let address = r::req(p, m, &at, "address", "give e.g. `0.0.0.0:8080`", socket);
        if let Some(a) = address {
            if let Some(b) = seen.iter().find(|b| same_port(a, **b)) {
                p.add(&join(&at, "address"), format!("{a} overlaps another listener's {b}"));
            }
            // The admin listener must not answer on a public address (and both cannot bind).
            if let Some(b) = admin.filter(|b| same_port(a, *b)) {
                p.add(
                    "admin.address",
                    format!(
                        "{b} overlaps {}.address ({a}); give the admin listener a port of its own, on a private address",
                        at
                    ),
                );
            }
            seen.push(a);
        }
        let protocol = r::opt(p, m, &at, "protocol", Protocol::Http, |p, path, v| {
            r::choice(
                p,
                path,
                v,
                "protocol",
                &[("http", Protocol::Http), ("tcp", Protocol::Tcp)],
            )
        });
        let tls = r::get(m, "tls").and_then(|v| super::tls::listener_tls(p, &join(&at, "tls"), &name, v));
        let tls_given = r::get(m, "tls").is_some();
        let http2 = r::opt(p, m, &at, "http2", tls_given && protocol == Protocol::Http, r::boolean);
        let mut max_connections = None;
        let tcp = match protocol {
            Protocol::Http => {
                max_connections = r::get(m, "max_connections")
                    .and_then(|v| r::uint(p, &join(&at, "max_connections"), v, 1, 1 << 24))
                    .map(|n| n as usize);
                for k in ["upstream", "idle_timeout", "queue_timeout"] {
                    if r::get(m, k).is_some() {
                        p.add(&join(&at, k), "only applies to `protocol: tcp` listeners; remove it");
                    }
                }
                None
            }
            Protocol::Tcp => tcp_listener(p, &at, m, pools, tls.as_ref()),
        };
        if protocol == Protocol::Tcp && http2 {
            p.add(
                &join(&at, "http2"),
                "a `protocol: tcp` listener forwards bytes, not HTTP; remove it",
            );
        }
        if let Some(a) = address {
            out.push(Listener {
                name,
                address: a.to_string(),
                protocol,
                tls: tls.map(Arc::new),
                http2,
                tcp,
                max_connections,
            });
        }
    }
    out
}

fn tcp_listener(
    p: &mut Problems,
    at: &str,
    m: &Mapping,
    pools: &[PoolConfig],
    tls: Option<&crate::tls::ListenerTls>,
) -> Option<TcpListener> {
    if tls.is_some_and(|t| t.forward_client_cert.is_some()) {
        p.add(
            &join(at, "tls.forward_client_cert"),
            "a `protocol: tcp` listener has no HTTP headers to carry it; remove it",
        );
    }
    let upstream = r::req(
        p,
        m,
        at,
        "upstream",
        "name the pool from `upstreams` this listener forwards to",
        |p, path, v| pool_ref(p, path, v, pools),
    );
    let idle_timeout = r::opt(p, m, at, "idle_timeout", Duration::from_secs(600), r::duration);
    if idle_timeout.is_zero() {
        p.add(&join(at, "idle_timeout"), "must be more than 0");
    }
    let max_connections = r::get(m, "max_connections")
        .and_then(|v| r::uint(p, &join(at, "max_connections"), v, 1, 10_000_000))
        .map(|n| n as usize);
    let queue_timeout = r::get(m, "queue_timeout").and_then(|v| r::duration(p, &join(at, "queue_timeout"), v));
    if queue_timeout.is_some() && max_connections.is_none() {
        p.add(
            &join(at, "queue_timeout"),
            "only applies with `max_connections`; set it or remove this key",
        );
    }
    if let Some(u) = upstream.and_then(|i| pools.get(i)) {
        if u.tls.as_ref().is_some_and(|t| t.http2) {
            p.add(
                &join(at, "upstream"),
                format!(
                    "pool `{}` speaks HTTP/2 (`tls.http2`); a tcp listener needs a plain byte pool",
                    u.name
                ),
            );
        }
    }
    Some(TcpListener {
        upstream: upstream?,
        idle_timeout,
        max_connections,
        queue_timeout,
    })
}

/// A pool named by a route or a tcp listener, as its index; an unknown name lists the known.
fn pool_ref(p: &mut Problems, path: &str, v: &Value, pools: &[PoolConfig]) -> Option<usize> {
    let s = r::string(p, path, v)?;
    let idx = pools.iter().position(|u| u.name == s);
    if idx.is_none() {
        let names: Vec<&str> = pools.iter().map(|u| u.name.as_str()).collect();
        p.add(
            path,
            format!("no pool named `{s}` in upstreams (defined: {})", names.join(", ")),
        );
    }
    idx
}

fn tenancy(p: &mut Problems, v: Option<&Value>, routes: &[Route]) -> Tenancy {
    let templated = routes.iter().any(|r| r.base.has_tenant());
    let Some(v) = v else {
        return if templated { Tenancy::Path } else { Tenancy::None };
    };
    let Some(m) = r::map(p, "tenancy", v, &["source", "header"]) else {
        return Tenancy::None;
    };
    let source = r::opt(p, m, "tenancy", "source", "path".to_string(), r::string);
    let header = r::get(m, "header").and_then(|h| r::string(p, "tenancy.header", h));
    match source.as_str() {
        "none" => Tenancy::None,
        "path" => {
            if !templated {
                p.add(
                    "tenancy.source",
                    "`path` needs a `{tenant}` segment in some route's base_path, e.g. `/{tenant}/scim/v2`",
                );
            }
            if header.is_some() {
                p.add(
                    "tenancy.header",
                    "only used with `source: header`; remove it or change source",
                );
            }
            Tenancy::Path
        }
        "header" => {
            if templated {
                p.add(
                    "tenancy.source",
                    "`header` conflicts with `{tenant}` in a route's base_path; use one tenant source",
                );
            }
            match header {
                Some(h) if http::HeaderName::from_bytes(h.as_bytes()).is_ok() => {
                    Tenancy::Header(h.to_ascii_lowercase())
                }
                Some(h) => {
                    p.add("tenancy.header", format!("`{h}` is not a valid header name"));
                    Tenancy::None
                }
                None => {
                    p.add(
                        "tenancy.header",
                        "missing; name the header that carries the tenant, e.g. `X-Tenant-Id`",
                    );
                    Tenancy::None
                }
            }
        }
        other => {
            p.add(
                "tenancy.source",
                format!("`{other}` is not a tenant source; use path, header or none"),
            );
            Tenancy::None
        }
    }
}

fn upstreams(p: &mut Problems, top: &Mapping) -> Vec<PoolConfig> {
    let mut out = Vec::new();
    let Some(v) = r::get(top, "upstreams") else {
        p.add(
            "upstreams",
            "missing; define at least one pool, e.g. `upstreams: {scim: {servers: [{address: \"127.0.0.1:8000\"}]}}`",
        );
        return out;
    };
    let Value::Mapping(pools) = v else {
        p.add("upstreams", "expected a mapping of pool name → pool");
        return out;
    };
    for (k, v) in pools {
        let Some(name) = k.as_str() else {
            p.add("upstreams", "pool names must be strings");
            continue;
        };
        if let Some(pool) = pool(p, &join("upstreams", name), name, v) {
            out.push(pool);
        }
    }
    if pools.is_empty() {
        p.add("upstreams", "empty; define at least one pool");
    }
    out
}

fn pool(p: &mut Problems, at: &str, name: &str, v: &Value) -> Option<PoolConfig> {
    let m = r::map(p, at, v, POOL)?;
    let servers = r::req(
        p,
        m,
        at,
        "servers",
        "list the pool's servers, e.g. `[{address: \"127.0.0.1:8000\"}]`",
        r::list,
    )
    .map(|list| servers(p, &join(at, "servers"), list))
    .unwrap_or_default();
    let selection = r::opt(p, m, at, "selection", Selection::RoundRobin, |p, path, v| {
        let options = [
            ("round_robin", Selection::RoundRobin),
            ("consistent", Selection::Consistent),
        ];
        r::choice(p, path, v, "selection", &options)
    });
    let health_check = r::get(m, "health_check").and_then(|v| health(p, &join(at, "health_check"), v));
    let passive = r::get(m, "passive")
        .and_then(|v| passive(p, &join(at, "passive"), v))
        .unwrap_or_default();
    let timeouts = timeouts(p, at, m);
    let d = PoolConfig::new(name, Vec::new(), selection);
    let keepalive = r::opt(p, m, at, "keepalive", d.keepalive as u64, |p, path, v| {
        r::uint(p, path, v, 0, 65_536)
    }) as usize;
    let retries = r::opt(p, m, at, "retries", d.retries as u64, |p, path, v| {
        r::uint(p, path, v, 0, 16)
    }) as usize;
    let preserve_host = r::opt(p, m, at, "preserve_host", d.preserve_host, r::boolean);
    let overload = overload(p, at, m);
    let max_conns = r::get(m, "max_conns")
        .and_then(|v| r::uint(p, &join(at, "max_conns"), v, 1, 1_000_000))
        .map(|n| n as usize);
    let conn_wait = r::opt(p, m, at, "queue_timeout", d.conn_wait, r::duration);
    let tls = r::get(m, "tls").and_then(|v| super::tls::upstream_tls(p, &join(at, "tls"), v));
    // Returned even with no valid server, so routes naming this pool do not also fail.
    Some(PoolConfig {
        name: name.to_string(),
        servers,
        selection,
        health_check,
        passive,
        timeouts,
        keepalive,
        retries,
        preserve_host,
        overload,
        max_conns,
        conn_wait,
        tls,
    })
}

fn overload(p: &mut Problems, at: &str, m: &Mapping) -> Option<OverloadConfig> {
    if r::get(m, "max_inflight").is_none() {
        for k in ["queue", "tenant_share"] {
            if r::get(m, k).is_some() {
                p.add(
                    &join(at, k),
                    "only applies with `max_inflight`; set it or remove this key",
                );
            }
        }
        if r::get(m, "queue_timeout").is_some() && r::get(m, "max_conns").is_none() {
            p.add(
                &join(at, "queue_timeout"),
                "only applies with `max_inflight` or `max_conns`; set one or remove this key",
            );
        }
    }
    let max = r::get(m, "max_inflight").and_then(|v| r::uint(p, &join(at, "max_inflight"), v, 1, 1_000_000))?;
    let queue = r::opt(p, m, at, "queue", 100, |p, path, v| r::uint(p, path, v, 0, 1_000_000)) as usize;
    let queue_timeout = r::opt(p, m, at, "queue_timeout", Duration::from_secs(2), r::duration);
    let tenant_share = r::get(m, "tenant_share").and_then(|v| {
        let path = join(at, "tenant_share");
        match v.as_f64() {
            Some(f) if f > 0.0 && f <= 1.0 => Some(f),
            _ => {
                p.add(&path, "must be a fraction above 0 and at most 1, e.g. `0.5`");
                None
            }
        }
    });
    Some(OverloadConfig {
        max_inflight: max as usize,
        queue,
        queue_timeout,
        tenant_share,
    })
}

fn servers(p: &mut Problems, at: &str, list: &[Value]) -> Vec<ServerAddr> {
    if list.is_empty() {
        p.add(at, "empty; a pool needs at least one server");
    }
    let mut out: Vec<ServerAddr> = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let sat = r::index(at, i);
        let (address, weight) = match v {
            // Shorthand: `- 127.0.0.1:8000`
            Value::String(_) => (server_address(p, &sat, v), 1),
            _ => {
                let Some(m) = r::map(p, &sat, v, &["address", "weight"]) else {
                    continue;
                };
                let a = r::req(p, m, &sat, "address", "give the server's `IP:port`", server_address);
                let w = r::opt(p, m, &sat, "weight", 1, |p, path, v| r::uint(p, path, v, 1, 1000));
                (a, w as usize)
            }
        };
        if let Some(address) = address {
            if out.iter().any(|s| s.address == address) {
                p.add(
                    &sat,
                    format!("{address} is listed twice in this pool; raise its weight instead"),
                );
                continue;
            }
            out.push(ServerAddr { address, weight });
        }
    }
    out
}

fn health(p: &mut Problems, at: &str, v: &Value) -> Option<HealthCheck> {
    let m = r::map(p, at, v, HEALTH)?;
    let kind = r::opt(p, m, at, "type", ProbeKind::Http, |p, path, v| {
        r::choice(
            p,
            path,
            v,
            "health check type",
            &[("http", ProbeKind::Http), ("tcp", ProbeKind::Tcp)],
        )
    });
    let path = match kind {
        ProbeKind::Http => r::req(
            p,
            m,
            at,
            "path",
            "give the probe path, e.g. `/scim/v2/ServiceProviderConfig` (or `type: tcp` for a connect check)",
            r::string,
        )?,
        ProbeKind::Tcp => {
            for k in ["path", "expect_status", "host"] {
                if r::get(m, k).is_some() {
                    p.add(&join(at, k), "only applies to `type: http` checks; remove it");
                }
            }
            "/".to_string()
        }
    };
    if !path.starts_with('/') {
        p.add(&join(at, "path"), format!("`{path}` must start with `/`"));
    }
    let interval = r::opt(p, m, at, "interval", Duration::from_secs(5), r::duration);
    let timeout = r::opt(p, m, at, "timeout", Duration::from_secs(2), r::duration);
    if interval.is_zero() {
        p.add(&join(at, "interval"), "must be more than 0");
    }
    if timeout.is_zero() {
        p.add(&join(at, "timeout"), "must be more than 0");
    }
    let expect_status = r::opt(p, m, at, "expect_status", vec![200], |p, path, v| {
        let list = r::list(p, path, v)?;
        let codes: Vec<u16> = list
            .iter()
            .enumerate()
            .filter_map(|(i, c)| r::uint(p, &r::index(path, i), c, 100, 599).map(|c| c as u16))
            .collect();
        if codes.is_empty() {
            p.add(path, "list at least one status, e.g. `[200]`");
        }
        Some(codes)
    });
    let rise = r::opt(p, m, at, "rise", 2, |p, path, v| r::uint(p, path, v, 1, 100)) as usize;
    let fall = r::opt(p, m, at, "fall", 2, |p, path, v| r::uint(p, path, v, 1, 100)) as usize;
    let host = r::get(m, "host").and_then(|v| r::string(p, &join(at, "host"), v));
    Some(HealthCheck {
        kind,
        path,
        interval,
        timeout,
        expect_status,
        rise,
        fall,
        host,
    })
}

fn passive(p: &mut Problems, at: &str, v: &Value) -> Option<Passive> {
    let m = r::map(p, at, v, PASSIVE)?;
    let d = Passive::default();
    Some(Passive {
        max_fails: r::opt(p, m, at, "max_fails", d.max_fails.into(), |p, path, v| {
            r::uint(p, path, v, 0, 1000)
        }) as u32,
        eject_for: r::opt(p, m, at, "eject_for", d.eject_for, r::duration),
        count_5xx: r::opt(p, m, at, "count_5xx", d.count_5xx, r::boolean),
    })
}

fn timeouts(p: &mut Problems, at: &str, pool: &Mapping) -> Timeouts {
    let mut t = Timeouts::default();
    let Some(v) = r::get(pool, "timeouts") else { return t };
    let at = join(at, "timeouts");
    let Some(m) = r::map(p, &at, v, TIMEOUTS) else { return t };
    for (key, slot) in [
        ("connect", &mut t.connect),
        ("read", &mut t.read),
        ("write", &mut t.write),
        ("idle", &mut t.idle),
    ] {
        *slot = r::opt(p, m, &at, key, *slot, r::duration);
        if slot.is_zero() && key != "idle" {
            p.add(&join(&at, key), "must be more than 0");
        }
    }
    t
}

fn routes(
    p: &mut Problems,
    top: &Mapping,
    pools: &[PoolConfig],
    limits: &RateLimits,
    guarded: &super::headers::Guarded,
) -> Vec<Route> {
    let mut out = Vec::new();
    let Some(list) = r::req(
        p,
        top,
        "",
        "routes",
        "add e.g. `routes: [{base_path: /scim/v2, upstream: scim}]`",
        r::list,
    ) else {
        return out;
    };
    if list.is_empty() {
        p.add("routes", "empty; add at least one route");
    }
    let mut names = HashMap::new();
    for (i, v) in list.iter().enumerate() {
        let at = r::index("routes", i);
        let Some(m) = r::map(p, &at, v, ROUTE) else { continue };
        let name = r::opt(p, m, &at, "name", at.clone(), r::string);
        unique_route_name(p, &mut names, &at, &name, r::get(m, "name").is_some());
        let base = r::req(
            p,
            m,
            &at,
            "base_path",
            "give the SCIM base path, e.g. `/scim/v2` or `/{tenant}/scim/v2`",
            |p, path, v| {
                let s = r::string(p, path, v)?;
                BasePath::parse(&s).map_err(|e| p.add(path, e)).ok()
            },
        );
        let classes = r::opt(p, m, &at, "classes", 0u16, class_bits);
        let methods = r::opt(p, m, &at, "methods", 0u16, |p, path, v| {
            let mut bits = 0;
            for (mat, s) in r::strings(p, path, v)? {
                let up = s.to_ascii_uppercase();
                if Method::NAMES.contains(&up.as_str()) {
                    bits |= Method::parse(&up).bit();
                } else {
                    p.add(
                        &mat,
                        format!("`{s}` is not a method; use one of {}", Method::NAMES.join(", ")),
                    );
                }
            }
            Some(bits)
        });
        let answer = r::get(m, "return").and_then(|v| super::rewrite::answer(p, &join(&at, "return"), v));
        let upstream = if r::get(m, "return").is_some() {
            super::rewrite::return_only(p, &at, m);
            None
        } else {
            r::req(
                p,
                m,
                &at,
                "upstream",
                "name the pool from `upstreams` that serves this route (or give it a `return`)",
                |p, path, v| pool_ref(p, path, v, pools),
            )
        };
        let upstream_base = r::get(m, "upstream_base_path")
            .and_then(|v| super::rewrite::upstream_base_path(p, &join(&at, "upstream_base_path"), v, base.as_ref()));
        let headers =
            r::get(m, "headers").and_then(|v| super::headers::route_headers(p, &join(&at, "headers"), v, guarded));
        let max_body = r::opt(p, m, &at, "max_body", [DEFAULT_MAX_BODY; 9], max_body);
        let affinity = r::get(m, "affinity").and_then(|v| affinity(p, &join(&at, "affinity"), v));
        if let (Some(_), Some(u)) = (&affinity, upstream.and_then(|i| pools.get(i))) {
            if u.selection != Selection::Consistent {
                p.add(
                    &join(&at, "affinity"),
                    format!(
                        "needs a consistent-hash pool; set `upstreams.{}.selection: consistent`",
                        u.name
                    ),
                );
            }
        }
        let limits_v = r::opt(p, m, &at, "rate_limits", Vec::new(), |p, path, v| {
            let mut idx = Vec::new();
            for (nat, name) in r::strings(p, path, v)? {
                match limits.policies.iter().position(|x| x.name == name) {
                    Some(i) => idx.push(i),
                    None => {
                        let names: Vec<&str> = limits.policies.iter().map(|x| x.name.as_str()).collect();
                        p.add(
                            &nat,
                            format!(
                                "no policy `{name}` in rate_limits.policies (defined: {})",
                                names.join(", ")
                            ),
                        );
                    }
                }
            }
            Some(idx)
        });
        let route_cache = r::get(m, "cache").and_then(|v| route_cache(p, &join(&at, "cache"), v));
        let auth = r::get(m, "auth").and_then(|v| super::auth::route_auth(p, &join(&at, "auth"), &name, v));
        if let (Some(base), true) = (base, upstream.is_some() || answer.is_some()) {
            out.push(Route {
                name,
                base,
                classes,
                methods,
                upstream,
                max_body,
                affinity,
                limits: limits_v,
                cache: route_cache,
                auth,
                headers,
                upstream_base,
                answer,
            });
        }
    }
    out
}

/// Per-route series (`scimitar_auth_*`) and the access log tell routes apart by name: two
/// routes with one name would merge or lose each other's series. `names`: name → the place
/// of the first route with it.
fn unique_route_name(p: &mut Problems, names: &mut HashMap<String, String>, at: &str, name: &str, written: bool) {
    let Some(first) = names.get(name) else {
        names.insert(name.to_string(), at.to_string());
        return;
    };
    // A name left out defaults to the route's own place, so one of the two was written.
    let (here, other) = if written {
        (at, first.as_str())
    } else {
        (first.as_str(), at)
    };
    p.add(
        &join(here, "name"),
        format!("`{name}` also names {other}; give each route its own name (metrics and the access log tell routes apart by it)"),
    );
}

/// `max_body: 1MiB`, or per class: `max_body: {default: 1MiB, bulk: 4MiB}`.
fn max_body(p: &mut Problems, path: &str, v: &Value) -> Option<[u64; 9]> {
    if !v.is_mapping() {
        return r::size(p, path, v).map(|n| [n; 9]);
    }
    let mut keys: Vec<&str> = vec!["default"];
    keys.extend(EndpointClass::ALL.iter().map(|c| c.as_str()));
    let m = r::map(p, path, v, &keys)?;
    let default = r::opt(p, m, path, "default", DEFAULT_MAX_BODY, r::size);
    let mut out = [default; 9];
    for c in EndpointClass::ALL {
        if let Some(n) = r::get(m, c.as_str()).and_then(|x| r::size(p, &join(path, c.as_str()), x)) {
            out[c as usize] = n;
        }
    }
    Some(out)
}

fn key_sources(p: &mut Problems, path: &str, v: &Value) -> Option<Vec<KeySource>> {
    // A single source may be written without the list.
    let items = match v {
        Value::Sequence(_) => r::strings(p, path, v).unwrap_or_default(),
        other => r::string(p, path, other)
            .map(|s| vec![(path.to_string(), s)])
            .unwrap_or_default(),
    };
    let mut out = Vec::new();
    for (at, s) in items {
        match KeySource::parse(&s) {
            Ok(k) => out.push(k),
            Err(e) => p.add(&at, e),
        }
    }
    if out.is_empty() {
        p.add(path, "list at least one key source, e.g. `[token, tenant]`");
        return None;
    }
    Some(out)
}

/// The store's bounds; present whenever a route caches (defaults when the section is absent).
fn cache(p: &mut Problems, top: &Mapping, routes: &[Route]) -> Option<CacheConfig> {
    let d = CacheConfig::default();
    let cfg = match r::get(top, "cache") {
        None => d,
        Some(v) => {
            let m = r::map(p, "cache", v, CACHE)?;
            let max_size = r::opt(p, m, "cache", "max_size", d.max_size, r::size);
            let max_entry = r::opt(p, m, "cache", "max_entry", d.max_entry, r::size);
            if max_entry > max_size || max_entry == 0 {
                p.add(
                    "cache.max_entry",
                    format!("must be between 1 byte and cache.max_size ({max_size} bytes)"),
                );
            }
            if max_entry > 64 << 20 {
                p.add(
                    "cache.max_entry",
                    "at most 64MiB; SCIM answers that large should not be cached",
                );
            }
            CacheConfig { max_size, max_entry }
        }
    };
    routes.iter().any(|r| r.cache.is_some()).then_some(cfg)
}

fn route_cache(p: &mut Problems, at: &str, v: &Value) -> Option<RouteCache> {
    let m = r::map(p, at, v, ROUTE_CACHE)?;
    let ttl = |p: &mut Problems, key: &str| {
        r::get(m, key)
            .and_then(|v| r::duration(p, &join(at, key), v))
            .filter(|d| !d.is_zero())
    };
    let c = RouteCache {
        discovery: ttl(p, "discovery"),
        resources: ttl(p, "resources"),
        write_through: r::opt(p, m, at, "write_through", false, r::boolean),
        ignore_cache_control: r::opt(p, m, at, "ignore_cache_control", false, r::boolean),
        key_headers: r::opt(p, m, at, "key_headers", Vec::new(), |p, path, v| {
            let mut out = Vec::new();
            for (jat, name) in r::strings(p, path, v)? {
                match http::HeaderName::from_bytes(name.trim().as_bytes()) {
                    Ok(n) => out.push(n),
                    Err(_) => p.add(&jat, format!("`{name}` is not a valid header name")),
                }
            }
            Some(out)
        }),
    };
    if c.write_through && c.resources.is_none() {
        p.add(
            &join(at, "write_through"),
            "seeds resource entries, so it needs `resources: <ttl>` (e.g. `resources: 30s`)",
        );
    }
    if c.discovery.is_none() && c.resources.is_none() {
        p.add(
            at,
            "caches nothing; set `discovery: 5m` and/or `resources: 30s`, or remove it",
        );
        return None;
    }
    Some(c)
}

fn affinity(p: &mut Problems, at: &str, v: &Value) -> Option<Affinity> {
    let m = r::map(p, at, v, AFFINITY)?;
    let sources = r::req(
        p,
        m,
        at,
        "key",
        "list the key sources in order, e.g. `[token, tenant, client_ip]`",
        key_sources,
    )?;
    let pin_after_write = r::get(m, "pin_after_write").and_then(|v| r::duration(p, &join(at, "pin_after_write"), v));
    Some(Affinity {
        sources,
        pin_after_write: pin_after_write.filter(|d| !d.is_zero()),
    })
}

fn rate_limits(p: &mut Problems, top: &Mapping) -> RateLimits {
    let mut out = RateLimits::default();
    let redis_cfg = r::get(top, "redis").and_then(|v| redis(p, v));
    let Some(v) = r::get(top, "rate_limits") else {
        return out;
    };
    let Some(m) = r::map(p, "rate_limits", v, LIMITS) else {
        return out;
    };
    let store = r::opt(p, m, "rate_limits", "store", "local".to_string(), r::string);
    match store.as_str() {
        "local" => {}
        "redis" => {
            if redis_cfg.is_none() && r::get(top, "redis").is_none() {
                p.add(
                    "rate_limits.store",
                    "`redis` needs a top-level `redis: {url: redis://HOST:6379}` section",
                );
            }
            out.redis = redis_cfg;
        }
        other => p.add(
            "rate_limits.store",
            format!("`{other}` is not a store; use local or redis"),
        ),
    }
    let Some(pv) = r::get(m, "policies") else {
        p.add(
            "rate_limits.policies",
            "missing; name at least one policy, e.g. `policies: {per-tenant: {key: [tenant], rate: 20/s, burst: 40}}`",
        );
        return out;
    };
    let Some(policies) = pv.as_mapping() else {
        p.add("rate_limits.policies", "expected a mapping of policy name → policy");
        return out;
    };
    for (k, v) in policies {
        let Some(name) = k.as_str() else { continue };
        let at = join("rate_limits.policies", name);
        let Some(pm) = r::map(p, &at, v, POLICY) else { continue };
        let key = r::req(
            p,
            pm,
            &at,
            "key",
            "list the key sources, e.g. `[tenant, class]`",
            key_sources,
        );
        let rate = r::req(
            p,
            pm,
            &at,
            "rate",
            "give a rate such as `20/s` or `600/m`",
            |p, path, v| {
                let s = r::string(p, path, v)?;
                Rate::parse(&s).map_err(|e| p.add(path, e)).ok()
            },
        );
        let burst = r::opt(p, pm, &at, "burst", 0, |p, path, v| r::uint(p, path, v, 1, 1_000_000)) as u32;
        let classes = r::opt(p, pm, &at, "classes", 0u16, class_bits);
        if let (Some(key), Some(rate)) = (key, rate) {
            out.policies.push(Policy {
                name: name.to_string(),
                key,
                rate,
                // Default burst: one second's worth at the sustained rate, at least 1.
                burst: if burst == 0 {
                    ((rate.count as u64 * 1000 / rate.window.as_millis().max(1) as u64) as u32).max(1)
                } else {
                    burst
                },
                classes,
            });
        }
    }
    out
}

fn class_bits(p: &mut Problems, path: &str, v: &Value) -> Option<u16> {
    let mut bits = 0;
    for (cat, s) in r::strings(p, path, v)? {
        match EndpointClass::parse(&s) {
            Some(c) => bits |= c.bit(),
            None => {
                let known: Vec<&str> = EndpointClass::ALL.iter().map(|c| c.as_str()).collect();
                p.add(
                    &cat,
                    format!("`{s}` is not an endpoint class; use one of {}", known.join(", ")),
                );
            }
        }
    }
    Some(bits)
}

fn redis(p: &mut Problems, v: &Value) -> Option<RedisConfig> {
    let m = r::map(p, "redis", v, REDIS)?;
    let url = r::req(p, m, "redis", "url", "give e.g. `redis://127.0.0.1:6379`", r::string)?;
    if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://")) {
        p.add(
            "redis.url",
            format!("`{url}` must start with redis://, rediss:// or unix://"),
        );
    }
    Some(RedisConfig {
        url,
        timeout: r::opt(p, m, "redis", "timeout", Duration::from_millis(50), r::duration),
        prefix: r::opt(p, m, "redis", "prefix", "scimitar".to_string(), r::string),
        backoff: r::opt(p, m, "redis", "backoff", Duration::from_secs(1), r::duration),
    })
}
