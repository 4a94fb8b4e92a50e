//! Prometheus metrics, served as text at `GET /metrics` on the admin listener, and the
//! traffic section of the admin status page.
//!
//! - [`labels`]: the closed label sets (endpoint, operation, status class).
//! - [`pool`]: a pool's handles, resolved once per pool ([`PoolMetrics`]); a request only adds.
//! - [`deprovision`]: whether a PATCH/PUT body of a User sets `active` to false.
//! - [`page`]: per-endpoint totals, tenants (bounded), recent errors for `/status.json`.
//! - [`scrape`]: values that already live in atomics elsewhere (server health, cache, Redis,
//!   certificates, L4) become series only when scraped, so the request path pays nothing.
//!
//! The registry is scimitar's own (not the `prometheus` crate's default one), created by the
//! first [`get`] and shared by every pool table, so series survive config reloads.

pub mod auth;
pub mod deprovision;
pub mod labels;
pub mod page;
pub mod pool;
pub mod scrape;

use std::collections::HashMap;

use once_cell::sync::Lazy;
use prometheus::core::Collector;
use prometheus::{Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

pub use labels::{Code, Endpoint, Op};
pub use page::{RecentError, Seen};
pub use pool::{InFlight, PoolMetrics, Retry};

/// OpenTelemetry's HTTP server duration buckets, plus 30 s for Bulk requests.
pub const BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0,
];

/// `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Why the proxy answered a request itself instead of passing it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No route matched (404).
    NoRoute,
    /// Over the route's `max_body` (413).
    TooLarge,
    /// A rate-limit policy (by index in the limiter) refused it (429).
    RateLimited(usize),
    /// The pool was full and its queue too (503).
    Shed,
    /// The route's edge credential check refused it (401 or 403).
    Auth(crate::edgeauth::Reason),
    /// A `return` route answered it itself.
    Returned,
    /// The tenancy header named more than one tenant (400).
    AmbiguousTenant,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NoRoute => "no_route",
            Refusal::TooLarge => "too_large",
            Refusal::RateLimited(_) => "rate_limit",
            Refusal::Shed => "shed",
            Refusal::Auth(crate::edgeauth::Reason::Missing) => "auth_missing",
            Refusal::Auth(crate::edgeauth::Reason::Invalid) => "auth_invalid",
            Refusal::Auth(crate::edgeauth::Reason::Tenant) => "auth_tenant",
            Refusal::Returned => "return",
            Refusal::AmbiguousTenant => "ambiguous_tenant",
        }
    }

    /// Counts as "rejected" on the status page (load refusals, not client mistakes).
    pub fn is_rejection(self) -> bool {
        matches!(self, Refusal::RateLimited(_) | Refusal::Shed)
    }
}

pub struct Metrics {
    pub registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream_duration: HistogramVec,
    in_flight: IntGaugeVec,
    upstream_responses: IntCounterVec,
    connect_errors: IntCounterVec,
    retries: IntCounterVec,
    rejected: IntCounterVec,
    reloads: IntCounterVec,
    config_hash: Gauge,
    config_success: Gauge,
    pub access_log_dropped: IntCounter,
    no_route: IntCounter,
    returned: IntCounter,
    ambiguous_tenant: IntCounter,
    /// The table of requests no route took (`upstream=""`).
    unrouted: Option<PoolMetrics>,
    pub page: page::Page,
    pub auth: auth::AuthMetrics,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let v = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(v.clone()))?;
    Ok(v)
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<HistogramVec> {
    let v = HistogramVec::new(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()), labels)?;
    r.register(Box::new(v.clone()))?;
    Ok(v)
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<Gauge> {
    let g = Gauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    /// A fresh registry with every family (tests make their own; the proxy uses [`get`]).
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new("scimitar_build_info", "1, labelled with the running version"),
            &["version"],
        )?;
        r.register(Box::new(build.clone()))?;
        build.get_metric_with_label_values(&[env!("CARGO_PKG_VERSION")])?.set(1);
        let in_flight = IntGaugeVec::new(
            Opts::new("scimitar_requests_in_flight", "Requests being served, by pool"),
            &["upstream"],
        )?;
        r.register(Box::new(in_flight.clone()))?;
        let access_log_dropped = IntCounter::new(
            "scimitar_access_log_dropped_total",
            "Access log lines dropped because the writer's queue was full",
        )?;
        r.register(Box::new(access_log_dropped.clone()))?;
        let rejected = counter_vec(
            &r,
            "scimitar_rejected_requests_total",
            "Requests the proxy refused itself: reason rate_limit (by policy), shed (by pool), too_large (by pool), no_route, return (a `return` route), ambiguous_tenant (the tenancy header twice or under an underscore spelling)",
            &["reason", "upstream", "policy"],
        )?;
        let no_route = rejected.get_metric_with_label_values(&["no_route", "", ""])?;
        let returned = rejected.get_metric_with_label_values(&["return", "", ""])?;
        let ambiguous_tenant = rejected.get_metric_with_label_values(&["ambiguous_tenant", "", ""])?;
        let mut m = Metrics {
            requests: counter_vec(
                &r,
                "scimitar_requests_total",
                "Requests by endpoint, operation, status class of the answer sent, and pool",
                &["endpoint", "operation", "code", "upstream"],
            )?,
            duration: histogram_vec(
                &r,
                "scimitar_request_duration_seconds",
                "Time from the request's arrival to the end of its answer",
                &["endpoint", "operation", "upstream"],
            )?,
            upstream_duration: histogram_vec(
                &r,
                "scimitar_upstream_response_duration_seconds",
                "Time from the first upstream attempt to the upstream's answer header (retries included)",
                &["upstream"],
            )?,
            in_flight,
            upstream_responses: counter_vec(
                &r,
                "scimitar_upstream_responses_total",
                "Answer headers received from each server, by status class (every attempt)",
                &["upstream", "backend", "code"],
            )?,
            connect_errors: counter_vec(
                &r,
                "scimitar_upstream_connect_errors_total",
                "Failed connections to each server",
                &["upstream", "backend"],
            )?,
            retries: counter_vec(
                &r,
                "scimitar_upstream_retries_total",
                "Requests sent to another server, by reason",
                &["upstream", "reason"],
            )?,
            rejected,
            reloads: counter_vec(
                &r,
                "scimitar_config_reloads_total",
                "Configuration reloads, by result",
                &["result"],
            )?,
            config_hash: gauge(
                &r,
                "scimitar_config_hash",
                "Hash of the configuration in force (its low 53 bits, exact as a float)",
            )?,
            config_success: gauge(
                &r,
                "scimitar_config_last_reload_success_timestamp_seconds",
                "When the configuration in force was loaded (Unix time)",
            )?,
            access_log_dropped,
            no_route,
            returned,
            ambiguous_tenant,
            unrouted: None,
            page: page::Page::default(),
            auth: auth::AuthMetrics::new(&r)?,
            registry: r,
        };
        m.unrouted = Some(PoolMetrics::unrouted(&m)?);
        for result in ["success", "failure"] {
            m.reloads.get_metric_with_label_values(&[result])?;
        }
        Ok(m)
    }

    /// A rate-limit policy's refusal counter (`reason="rate_limit"`).
    pub fn rate_limited(&self, policy: &str) -> prometheus::Result<IntCounter> {
        self.rejected.get_metric_with_label_values(&["rate_limit", "", policy])
    }

    /// Counts one finished request: its pool's table (or the unrouted one), the refusal if the
    /// proxy made one, and the status page's totals.
    pub fn record(&self, pool: Option<&PoolMetrics>, r: &Request<'_>) {
        let seconds = r.micros as f64 / 1e6;
        if let Some(t) = pool.or(self.unrouted.as_ref()) {
            t.request(r.endpoint, r.op, Code::of(r.status), seconds);
        }
        match (r.refusal, pool) {
            (Some(Refusal::NoRoute), _) => self.no_route.inc(),
            (Some(Refusal::Returned), _) => self.returned.inc(),
            (Some(Refusal::AmbiguousTenant), _) => self.ambiguous_tenant.inc(),
            (Some(Refusal::TooLarge), Some(p)) => p.too_large(),
            (Some(Refusal::Shed), Some(p)) => p.shed(),
            _ => {}
        }
        self.page.record(&Seen {
            endpoint: r.endpoint,
            status: r.status,
            rejected: r.refusal.is_some_and(Refusal::is_rejection),
            micros: r.micros,
            tenant: r.tenant,
            vouched: r.vouched,
        });
    }

    /// The text exposition: the registry plus what is read from the live objects now.
    pub fn encode(&self, live: &scrape::Live<'_>) -> Vec<u8> {
        let mut families = self.registry.gather();
        families.extend(scrape::families(live, &self.page.tenants));
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = String::with_capacity(64 * 1024);
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, &mut out) {
            log::error!("cannot encode metrics: {e}");
        }
        out.into_bytes()
    }

    /// A reload's outcome. On success `hash` becomes the one in force.
    pub fn config_loaded(&self, hash: u64, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        if let Ok(c) = self.reloads.get_metric_with_label_values(&[result]) {
            c.inc();
        }
        if ok {
            self.config_active(hash);
        }
    }

    /// The configuration in force (at start, and after each successful reload).
    pub fn config_active(&self, hash: u64) {
        self.config_hash.set((hash & ((1 << 53) - 1)) as f64);
        self.config_success
            .set(crate::timefmt::unix_ms(std::time::SystemTime::now()) as f64 / 1000.0);
    }

    /// Drops the series of pools, servers and rate-limit policies that are gone after a reload
    /// (`pools`: each live pool with its server addresses; `policies`: live policy names).
    pub fn retain(&self, pools: &[(&str, Vec<String>)], policies: &[&str]) {
        let live_pool = |v: &str| v.is_empty() || pools.iter().any(|(p, _)| *p == v);
        let live_backend = |p: &str, b: &str| pools.iter().any(|(n, bs)| *n == p && bs.iter().any(|x| x == b));
        let pool_of = |l: &HashMap<&str, &str>| !live_pool(l.get("upstream").copied().unwrap_or(""));
        prune(&self.requests, pool_of);
        prune(&self.duration, pool_of);
        prune(&self.upstream_duration, pool_of);
        prune(&self.in_flight, pool_of);
        prune(&self.retries, pool_of);
        let backend_gone = |l: &HashMap<&str, &str>| {
            let (p, b) = (
                l.get("upstream").copied().unwrap_or(""),
                l.get("backend").copied().unwrap_or(""),
            );
            !live_backend(p, b)
        };
        prune(&self.upstream_responses, backend_gone);
        prune(&self.connect_errors, backend_gone);
        prune(&self.rejected, |l| {
            let policy = l.get("policy").copied().unwrap_or("");
            pool_of(l) || (!policy.is_empty() && !policies.contains(&policy))
        });
    }
}

/// What [`Metrics::record`] needs of a finished request.
pub struct Request<'a> {
    pub endpoint: Endpoint,
    pub op: Op,
    /// Final status sent downstream; 0 when none was.
    pub status: u16,
    pub micros: u64,
    pub refusal: Option<Refusal>,
    pub tenant: Option<&'a [u8]>,
    /// The upstream answered this request 2xx, outside discovery: its tenant is real, and may
    /// take a row of the tenant table ([`page::Tenants::record`]).
    pub vouched: bool,
}

/// Removes the children of `vec` whose labels `dead` says are gone.
fn prune<T: prometheus::core::MetricVecBuilder>(
    vec: &prometheus::core::MetricVec<T>,
    dead: impl Fn(&HashMap<&str, &str>) -> bool,
) {
    for family in vec.collect() {
        for m in family.get_metric() {
            let labels: HashMap<&str, &str> = m.get_label().iter().map(|l| (l.name(), l.value())).collect();
            if dead(&labels) {
                let _ = vec.remove(&labels);
            }
        }
    }
}

static GLOBAL: Lazy<Option<Metrics>> = Lazy::new(|| match Metrics::new() {
    Ok(m) => Some(m),
    Err(e) => {
        log::error!("metrics are off: {e}");
        None
    }
});

/// The process's metrics; `None` only if the families could not be built (a bug the unit
/// tests catch), in which case the proxy runs without them rather than not at all.
pub fn get() -> Option<&'static Metrics> {
    GLOBAL.as_ref()
}

/// The table for a pool (see [`PoolMetrics::new`]); `None` when metrics are off.
pub fn pool(name: &str, backends: &[String]) -> Option<PoolMetrics> {
    let m = get()?;
    PoolMetrics::new(m, name, backends)
        .map_err(|e| log::error!("metrics for upstream {name}: {e}"))
        .ok()
}

/// Called by the reload code with each reload's outcome.
pub fn config_loaded(hash: u64, ok: bool) {
    if let Some(m) = get() {
        m.config_loaded(hash, ok);
    }
}

/// The `"traffic"` section of the admin status document.
pub fn status_json() -> serde_json::Value {
    get().map_or(serde_json::Value::Null, |m| m.page.json())
}

/// Tenant tracking for the page and the opt-in `tenant` label (at start and on reload).
pub fn configure(cfg: &MetricsConfig, tenancy: bool) {
    if let Some(m) = get() {
        m.page.tenants.configure(tenancy, cfg.tenant_label, cfg.max_tenants);
    }
}

/// The `metrics` config section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Per-tenant series (`scimitar_tenant_*`), off by default: tenants are many.
    pub tenant_label: bool,
    /// Tenants tracked by name; later ones are counted as `other`.
    pub max_tenants: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            tenant_label: false,
            max_tenants: 100,
        }
    }
}

#[cfg(test)]
mod tests;
