//! The one YAML file → a validated runtime model, once. The request path never sees YAML.
//!
//! Pipeline: read file → expand `${ENV}` → parse YAML → [`build`] walks the tree, collecting
//! every problem with its place in the file → [`Config`].

mod auth;
mod build;
pub mod client;
mod headers;
mod observe;
pub mod reader;
mod rewrite;
mod tls;
pub mod units;

use std::net::SocketAddr;
use std::time::Duration;

use pingora::server::configuration::ServerConf;

pub use build::DEFAULT_MAX_BODY;
/// The keys each section accepts, as the builder checks them (the property tests generate
/// configs from these lists, so they cannot drift from what a file may hold).
pub mod keys {
    pub use super::auth::{AUTH, AUTH_TOKEN};
    pub use super::build::{
        AFFINITY, CACHE, HEALTH, LIMITS, LISTENER, PASSIVE, POLICY, POOL, REDIS, ROUTE, ROUTE_CACHE, TIMEOUTS, TOP,
    };
    /// Headers no rule may touch (the nginx import drops rules on them too).
    pub use super::headers::HOP_BY_HOP;
    pub use super::headers::{HEADERS, HEADER_RULES};
    pub use super::observe::{ACCESS_LOG, METRICS};
}
pub use reader::{Problem, Problems};

use crate::routing::Route;

/// A loaded, validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Pingora's own settings, passed through from the `server` section.
    pub server: ServerConf,
    pub listeners: Vec<Listener>,
    pub admin: Option<Admin>,
    pub tenancy: Tenancy,
    pub upstreams: Vec<PoolConfig>,
    pub routes: Vec<Route>,
    pub rate_limits: RateLimits,
    /// Secret for the keyed hash of affinity and limit keys (tokens are never kept raw).
    pub key_secret: String,
    /// The response cache's bounds; `Some` when any route caches.
    pub cache: Option<crate::cache::CacheConfig>,
    /// Longest a graceful stop (SIGTERM) waits for requests in flight.
    pub shutdown_timeout: Duration,
    /// Timeouts and size limits for clients of the HTTP listeners.
    pub client: client::ClientLimits,
    /// The JSON access log; `None` (the default) writes none.
    pub access_log: Option<crate::accesslog::AccessLogConfig>,
    pub metrics: crate::metrics::MetricsConfig,
    /// Peers whose [`Self::real_ip_header`] is believed for the client address (keys, logs).
    pub trusted_proxies: Vec<crate::clientip::Cidr>,
    /// The header trusted proxies name the client in (`X-Forwarded-For` by default).
    pub real_ip_header: http::HeaderName,
    /// Not errors, but worth an operator's attention (a certificate close to expiry).
    pub warnings: Vec<Problem>,
    /// The file as loaded (after `${ENV}` expansion), for the admin `GET /config`; shared, so
    /// a reload can hand the admin listener a new one without copying the tree.
    pub source: std::sync::Arc<serde_yaml::Value>,
    /// SipHash of the file's text as read (before `${ENV}` expansion): two instances with the
    /// same hash run the same file (`/status.json`, metrics, reload reports).
    pub hash: u64,
}

/// The `rate_limits` section (and `redis` when the store is shared).
#[derive(Debug, Clone, Default)]
pub struct RateLimits {
    pub policies: Vec<crate::ratelimit::Policy>,
    pub redis: Option<crate::ratelimit::RedisConfig>,
}

/// What a listener speaks to its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (and HTTP/2 when enabled) through the SCIM proxy.
    Http,
    /// Raw TCP forwarded to a pool (layer 4).
    Tcp,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub address: String,
    pub protocol: Protocol,
    /// TLS termination; `None` is plaintext.
    pub tls: Option<std::sync::Arc<crate::tls::ListenerTls>>,
    /// HTTP/2: offered by ALPN on TLS listeners, prior-knowledge h2c on plaintext ones.
    pub http2: bool,
    /// Layer-4 settings, for `protocol: tcp`.
    pub tcp: Option<TcpListener>,
    /// HTTP listeners: connections served at once; more are answered 503 and closed.
    pub max_connections: Option<usize>,
}

/// A `protocol: tcp` listener's forwarding settings.
#[derive(Debug, Clone)]
pub struct TcpListener {
    /// Index of the pool in [`Config::upstreams`].
    pub upstream: usize,
    /// A connection with no byte either way for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more are accepted and wait for a slot (HAProxy-like
    /// queueing) up to `queue_timeout`, then are closed.
    pub max_connections: Option<usize>,
    /// How long a connection over `max_connections` waits; `None` is the pool's `queue_timeout`.
    pub queue_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub address: String,
    /// SHA-256 of the bearer token that every admin path but `/healthz` and `/readyz` requires
    /// (`None`: open). Only the digest is configured, so the file never holds the token.
    pub token_sha256: Option<[u8; 32]>,
}

/// Where a request's tenant comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenancy {
    None,
    /// The `{tenant}` segment of a route's base path.
    Path,
    /// A request header (lower-cased name).
    Header(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    RoundRobin,
    Consistent,
}

#[derive(Debug, Clone)]
pub struct ServerAddr {
    pub address: SocketAddr,
    pub weight: usize,
}

/// How an active health check probes a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// An HTTP GET of `path` (over TLS when the pool speaks TLS).
    Http,
    /// A TCP connect (for pools behind `protocol: tcp` listeners).
    Tcp,
}

#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub kind: ProbeKind,
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Statuses that count as healthy.
    pub expect_status: Vec<u16>,
    pub rise: usize,
    pub fall: usize,
    /// Host header for the probe; the server's address when unset.
    pub host: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Passive {
    /// Consecutive failures that eject a server; 0 turns passive ejection off.
    pub max_fails: u32,
    pub eject_for: Duration,
    /// Whether 502/503/504 answers from the server count as failures (a 4xx never does).
    pub count_5xx: bool,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
    pub idle: Duration,
}

impl Default for Passive {
    /// nginx's `max_fails=1 fail_timeout=10s` is too twitchy for SCIM servers that restart
    /// workers; three in a row is a real failure.
    fn default() -> Self {
        Passive {
            max_fails: 3,
            eject_for: Duration::from_secs(10),
            count_5xx: false,
        }
    }
}

impl Default for Timeouts {
    /// `read` stays under the 60 s after which Entra ID gives up and re-POSTs, so the IdP sees
    /// our 504 rather than its own timeout.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            read: Duration::from_secs(55),
            write: Duration::from_secs(30),
            idle: Duration::from_secs(30),
        }
    }
}

impl PoolConfig {
    /// A pool with every optional setting at its default (as an empty YAML pool would get).
    pub fn new(name: &str, servers: Vec<ServerAddr>, selection: Selection) -> Self {
        PoolConfig {
            name: name.to_string(),
            servers,
            selection,
            health_check: None,
            passive: Passive::default(),
            timeouts: Timeouts::default(),
            keepalive: 128,
            retries: 2,
            preserve_host: true,
            overload: None,
            max_conns: None,
            conn_wait: Duration::from_secs(2),
            tls: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub name: String,
    pub servers: Vec<ServerAddr>,
    pub selection: Selection,
    pub health_check: Option<HealthCheck>,
    pub passive: Passive,
    pub timeouts: Timeouts,
    /// Idle upstream connections kept for reuse; 0 closes each after use.
    pub keepalive: usize,
    /// Further servers tried after the first fails (within the rules of replay safety).
    pub retries: usize,
    /// Pass the client's Host header upstream (so `Location` URLs stay right).
    pub preserve_host: bool,
    /// Concurrency cap and queue; `None` means unlimited.
    pub overload: Option<crate::overload::OverloadConfig>,
    /// Requests at once per server (nginx `max_conns`, HAProxy `maxconn`); more wait for a
    /// slot on their server up to `conn_wait` (the pool's `queue_timeout`).
    pub max_conns: Option<usize>,
    pub conn_wait: Duration,
    /// TLS to the servers; `None` is plaintext.
    pub tls: Option<crate::tls::UpstreamTls>,
}

/// Loads and validates a config file; on failure every problem is listed.
pub fn load(path: &str) -> Result<Config, Problems> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut p = Problems::default();
        p.add("", format!("cannot read config file {path}: {e}"));
        p
    })?;
    from_str(&text)
}

/// Validates config text with the process environment for `${VAR}` references.
pub fn from_str(text: &str) -> Result<Config, Problems> {
    from_str_with_env(text, |k| std::env::var(k).ok())
}

pub fn from_str_with_env(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, Problems> {
    let expanded = reader::expand_env(text, env)?;
    let value: serde_yaml::Value = serde_yaml::from_str(&expanded).map_err(|e| {
        let mut p = Problems::default();
        let at = e
            .location()
            .map(|l| format!("line {} column {}", l.line(), l.column()))
            .unwrap_or_default();
        p.add(&at, format!("YAML syntax error: {e}"));
        p
    })?;
    let mut cfg = build::build(&value)?;
    cfg.hash = hash_text(text);
    Ok(cfg)
}

fn hash_text(text: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x5c17_a11e, 0x00c0_ff1e);
    h.write(text.as_bytes());
    h.finish()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_headers;
#[cfg(test)]
mod tests_observe;
#[cfg(test)]
mod tests_tls;
