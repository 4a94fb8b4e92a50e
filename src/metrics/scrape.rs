//! Series read at scrape time from atomics that already exist for the admin page: server
//! health and ejections, `max_conns` waits, overload queues, the cache, Redis fallbacks,
//! certificate expiry, layer-4 listeners, and the opt-in tenant series. Nothing here runs on
//! the request path; each scrape builds these families afresh from the live objects.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts};

use super::page::Tenants;
use crate::cache::Cache;
use crate::config::Listener;
use crate::ratelimit::Limiter;
use crate::upstream::Pool;

/// The objects a scrape reads (what the admin listener holds).
pub struct Live<'a> {
    pub pools: &'a [Arc<Pool>],
    pub limiter: &'a Limiter,
    pub cache: Option<&'a Cache>,
    pub listeners: &'a [Listener],
    pub l4: &'a [Arc<crate::l4::Stats>],
    /// HTTP listeners' client counters, indexed like `listeners`.
    pub inbound: &'a [Arc<crate::inbound::Stats>],
}

/// Collects families built here; a family that cannot be built (a bug) is skipped and logged.
#[derive(Default)]
struct Out(Vec<MetricFamily>);

impl Out {
    fn counters(&mut self, name: &str, help: &str, labels: &[&str], rows: &[(Vec<&str>, u64)]) {
        self.family(name, IntCounterVec::new(Opts::new(name, help), labels), rows, |c, n| {
            c.inc_by(n)
        });
    }

    fn gauges(&mut self, name: &str, help: &str, labels: &[&str], rows: &[(Vec<&str>, f64)]) {
        self.family(name, GaugeVec::new(Opts::new(name, help), labels), rows, |g, v| {
            g.set(v)
        });
    }

    fn int_gauges(&mut self, name: &str, help: &str, labels: &[&str], rows: &[(Vec<&str>, i64)]) {
        self.family(name, IntGaugeVec::new(Opts::new(name, help), labels), rows, |g, v| {
            g.set(v)
        });
    }

    /// A fresh family with one series per row, set by `set`.
    fn family<T: MetricVecBuilder, V: Copy>(
        &mut self,
        name: &str,
        vec: prometheus::Result<MetricVec<T>>,
        rows: &[(Vec<&str>, V)],
        set: impl Fn(&T::M, V),
    ) {
        let r = vec.and_then(|v| {
            for (vals, n) in rows {
                set(&v.get_metric_with_label_values(vals)?, *n);
            }
            Ok(v.collect())
        });
        match r {
            // A family without a single series says nothing; leave it out.
            Ok(f) => self.0.extend(f.into_iter().filter(|f| !f.get_metric().is_empty())),
            Err(e) => log::error!("metric {name}: {e}"),
        }
    }
}

pub fn families(live: &Live<'_>, tenants: &Tenants) -> Vec<MetricFamily> {
    let mut out = Out::default();
    upstreams(&mut out, live.pools);
    limits_and_cache(&mut out, live);
    certificates(&mut out, live.listeners);
    l4(&mut out, live.l4);
    clients(&mut out, live.listeners, live.inbound);
    if tenants.label.load(Relaxed) {
        let counts = tenants.counts();
        let rows = |f: fn(&super::page::TenantCount) -> u64| -> Vec<(Vec<&str>, u64)> {
            counts.iter().map(|c| (vec![c.tenant.as_str()], f(c))).collect()
        };
        out.counters(
            "scimitar_tenant_requests_total",
            "Requests by tenant (up to metrics.max_tenants tenants, each from its first 2xx answer; the rest are `other`)",
            &["tenant"],
            &rows(|c| c.requests),
        );
        out.counters(
            "scimitar_tenant_rejected_requests_total",
            "Requests refused by a rate limit or shed, by tenant",
            &["tenant"],
            &rows(|c| c.rejected),
        );
    }
    out.0
}

fn upstreams(out: &mut Out, pools: &[Arc<Pool>]) {
    let mut up = Vec::new();
    let mut ejections = Vec::new();
    for p in pools {
        for s in p.servers.iter() {
            let addr = s.addr.to_string();
            let in_rotation = s.is_healthy() && !s.is_ejected(crate::upstream::now_ms());
            up.push((p.name(), addr.clone(), i64::from(in_rotation)));
            ejections.push((p.name(), addr, s.ejections()));
        }
    }
    out.int_gauges(
        "scimitar_upstream_backend_up",
        "1 when the server is in rotation (passing its health check and not passively ejected)",
        &["upstream", "backend"],
        &up.iter()
            .map(|(p, b, v)| (vec![*p, b.as_str()], *v))
            .collect::<Vec<_>>(),
    );
    out.counters(
        "scimitar_upstream_backend_ejections_total",
        "Times a server was passively ejected after consecutive failures",
        &["upstream", "backend"],
        &ejections
            .iter()
            .map(|(p, b, v)| (vec![*p, b.as_str()], *v))
            .collect::<Vec<_>>(),
    );
    let capped: Vec<&Arc<Pool>> = pools.iter().filter(|p| p.caps_servers()).collect();
    out.counters(
        "scimitar_upstream_max_conns_waits_total",
        "Requests that waited for a slot on a server at its max_conns",
        &["upstream"],
        &capped
            .iter()
            .map(|p| (vec![p.name()], p.slot_waits.load(Relaxed)))
            .collect::<Vec<_>>(),
    );
    out.counters(
        "scimitar_upstream_max_conns_timeouts_total",
        "Requests refused (503) because their server stayed at max_conns for the whole wait",
        &["upstream"],
        &capped
            .iter()
            .map(|p| (vec![p.name()], p.slot_timeouts.load(Relaxed)))
            .collect::<Vec<_>>(),
    );
    let queues: Vec<(Vec<&str>, i64)> = pools
        .iter()
        .filter_map(|p| Some((vec![p.name()], p.admission.as_ref()?.waiting() as i64)))
        .collect();
    out.int_gauges(
        "scimitar_upstream_queue_waiting",
        "Requests waiting in a pool's overload queue (max_inflight)",
        &["upstream"],
        &queues,
    );
}

fn limits_and_cache(out: &mut Out, live: &Live<'_>) {
    if let Some(r) = &live.limiter.redis {
        out.counters(
            "scimitar_ratelimit_redis_fallbacks_total",
            "Rate-limit decisions made locally because Redis was unreachable or slow",
            &[],
            &[(vec![], r.fallbacks.load(Relaxed))],
        );
        out.int_gauges(
            "scimitar_ratelimit_redis_up",
            "1 while the shared rate-limit store is in use",
            &[],
            &[(vec![], i64::from(r.is_up()))],
        );
    }
    if let Some(c) = live.cache {
        let s = &c.stats;
        out.counters(
            "scimitar_cache_lookups_total",
            "Response cache lookups, by result",
            &["result"],
            &[
                (vec!["hit"], s.hits.load(Relaxed)),
                (vec!["miss"], s.misses.load(Relaxed)),
            ],
        );
        out.counters(
            "scimitar_cache_stores_total",
            "Answers stored in the response cache (fill: a read's miss; write_through: a write's answer)",
            &["kind"],
            &[
                (vec!["fill"], s.stores.load(Relaxed)),
                (vec!["write_through"], s.seeded.load(Relaxed)),
            ],
        );
        out.counters(
            "scimitar_cache_invalidations_total",
            "Cache invalidations by writes",
            &[],
            &[(vec![], s.invalidations.load(Relaxed))],
        );
    }
}

fn certificates(out: &mut Out, listeners: &[Listener]) {
    let mut rows: Vec<(String, String, f64)> = Vec::new();
    for l in listeners {
        let Some(tls) = &l.tls else { continue };
        let material = tls.material.load();
        for e in &material.certs.entries {
            rows.push((
                l.name.clone(),
                e.spec.cert.display().to_string(),
                e.not_after_unix as f64,
            ));
        }
    }
    out.gauges(
        "scimitar_tls_certificate_not_after_seconds",
        "Expiry (Unix time) of each certificate a TLS listener serves now",
        &["listener", "cert"],
        &rows
            .iter()
            .map(|(l, c, v)| (vec![l.as_str(), c.as_str()], *v))
            .collect::<Vec<_>>(),
    );
}

fn clients(out: &mut Out, listeners: &[Listener], stats: &[Arc<crate::inbound::Stats>]) {
    use crate::inbound::head::Reason;
    let http: Vec<(&str, &crate::inbound::Stats)> = listeners
        .iter()
        .zip(stats)
        .filter(|(l, _)| l.protocol == crate::config::Protocol::Http)
        .map(|(l, s)| (l.name.as_str(), s.as_ref()))
        .collect();
    out.int_gauges(
        "scimitar_client_connections",
        "Client connections open now on an HTTP listener",
        &["listener"],
        &http
            .iter()
            .map(|(n, s)| (vec![*n], s.open.load(Relaxed) as i64))
            .collect::<Vec<_>>(),
    );
    out.counters(
        "scimitar_client_connections_total",
        "Client connections accepted by an HTTP listener (over max_connections not included)",
        &["listener"],
        &http
            .iter()
            .map(|(n, s)| (vec![*n], s.accepted.load(Relaxed)))
            .collect::<Vec<_>>(),
    );
    out.counters(
        "scimitar_client_idle_closed_total",
        "Client connections closed after client.keepalive_timeout (or header_timeout) without a byte",
        &["listener"],
        &http
            .iter()
            .map(|(n, s)| (vec![*n], s.idle_closed.load(Relaxed)))
            .collect::<Vec<_>>(),
    );
    let mut refused = Vec::new();
    for (n, s) in &http {
        for r in Reason::ALL {
            refused.push((vec![*n, r.as_str()], s.refused[r.index()].load(Relaxed)));
        }
    }
    out.counters(
        "scimitar_client_refusals_total",
        "Requests or connections refused at the edge before routing, by reason (bad_request, line_too_long, head_too_large, not_implemented, version, tls_on_plaintext, header_timeout, over_capacity, method)",
        &["listener", "reason"],
        &refused,
    );
}

fn l4(out: &mut Out, stats: &[Arc<crate::l4::Stats>]) {
    let rows = |f: fn(&crate::l4::Stats) -> u64| -> Vec<(Vec<&str>, u64)> {
        stats.iter().map(|s| (vec![s.name.as_str()], f(s))).collect()
    };
    out.counters(
        "scimitar_l4_connections_total",
        "Connections accepted by protocol: tcp listeners",
        &["listener"],
        &rows(|s| s.accepted.load(Relaxed)),
    );
    out.int_gauges(
        "scimitar_l4_active_connections",
        "Connections being forwarded now",
        &["listener"],
        &stats
            .iter()
            .map(|s| (vec![s.name.as_str()], s.active.load(Relaxed) as i64))
            .collect::<Vec<_>>(),
    );
    let mut bytes = Vec::new();
    for s in stats {
        bytes.push((vec![s.name.as_str(), "to_server"], s.bytes_to_server.load(Relaxed)));
        bytes.push((vec![s.name.as_str(), "to_client"], s.bytes_to_client.load(Relaxed)));
    }
    out.counters(
        "scimitar_l4_bytes_total",
        "Bytes forwarded, by direction",
        &["listener", "direction"],
        &bytes,
    );
    out.counters(
        "scimitar_l4_failures_total",
        "Clients closed without a server (none reachable) or refused at max_connections",
        &["listener", "reason"],
        &stats
            .iter()
            .flat_map(|s| {
                [
                    (vec![s.name.as_str(), "no_server"], s.no_server.load(Relaxed)),
                    (vec![s.name.as_str(), "refused"], s.refused.load(Relaxed)),
                ]
            })
            .collect::<Vec<_>>(),
    );
}
