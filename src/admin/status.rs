//! `GET /status.json`: every listener (TLS certificates and their expiry), every pool's servers
//! (active health, passive ejection, picks), overload and `max_conns` counters, rate-limit
//! policies and Redis, the cache and the layer-4 listeners — counters as totals since start,
//! so a reader (the status page) gets rates from two snapshots.

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{json, Value};

use super::Admin;
use crate::config::client::ClientLimits;
use crate::config::units::fmt_duration;
use crate::config::Protocol;
use crate::inbound::head::Reason;
use crate::upstream::Pool;

/// A TLS listener's certificates as served right now, with expiry, and its rotation record.
fn tls_status(
    tls: &crate::tls::ListenerTls,
    stats: &crate::tls::listener::HandshakeStats,
    rotation: Option<&crate::tls::rotate::Watched>,
) -> Value {
    let now = crate::tls::certs::now_unix();
    let m = tls.material.load();
    let certs: Vec<Value> = m
        .certs
        .entries
        .iter()
        .map(|e| {
            json!({
                "cert": e.spec.cert.display().to_string(),
                "names": e.names,
                "default": e.spec.default,
                "subject": e.subject,
                "not_after": e.not_after,
                "not_after_unix": e.not_after_unix,
                "days_left": e.days_left(now),
            })
        })
        .collect();
    let rot = rotation.and_then(|w| w.state.lock().ok().map(|s| s.clone()));
    json!({
        "min_version": format!("{:?}", tls.min_version),
        "client_auth": format!("{:?}", tls.client_auth).to_ascii_lowercase(),
        "client_ca": tls.client_ca.as_ref().map(|p| p.display().to_string()),
        "certificates": certs,
        "handshakes": stats.handshakes.load(Relaxed),
        "default_certificate_served": stats.default_served.load(Relaxed),
        "watch": tls.watch.map(fmt_duration),
        "reloads": rot.as_ref().map_or(0, |r| r.reloads),
        "last_reload_unix": rot.as_ref().and_then(|r| r.last_reload_unix),
        "last_reload_error": rot.and_then(|r| r.last_error),
    })
}

fn pool_status(p: &Pool) -> Value {
    let servers: Vec<Value> = p
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "address": s.addr.to_string(),
                "weight": p.config.servers[i].weight,
                "healthy": p.healthy(i),
                "ejected_ms": s.ejected_for_ms(),
                "ejections": s.ejections(),
                "consecutive_failures": s.consecutive_failures(),
                "picks": s.picks(),
                "active": p.active(i),
            })
        })
        .collect();
    json!({
        "name": p.name(),
        "selection": format!("{:?}", p.config.selection),
        "health_check": p.config.health_check.as_ref().map(|h| json!({
            "type": format!("{:?}", h.kind).to_ascii_lowercase(),
            "path": h.path, "interval": fmt_duration(h.interval), "rise": h.rise, "fall": h.fall,
        })),
        "servers": servers,
        "pins": p.pins.len(),
        "max_conns": p.config.max_conns,
        "max_conns_timeouts": p.slot_timeouts.load(Relaxed),
        "overload": p.admission.as_ref().map(|a| json!({
            "inflight": a.inflight(), "waiting": a.waiting(), "shed": a.shed.load(Relaxed),
        })),
    })
}

impl Admin {
    pub fn status(&self) -> Value {
        let rt = self.live.load_full();
        let pools: Vec<Value> = rt.pools.iter().map(|p| pool_status(p)).collect();
        let policies: Vec<Value> = rt
            .limiter
            .policies
            .iter()
            .map(|s| json!({"name": s.policy.name, "local_keys": s.local.keys()}))
            .collect();
        let redis = rt.limiter.redis.as_ref().map(|r| {
            json!({
                "up": r.is_up(),
                "shared_decisions": r.shared.load(Relaxed),
                "local_fallbacks": r.fallbacks.load(Relaxed),
            })
        });
        let cache = rt.cache.as_ref().map(|c| {
            let s = &c.stats;
            json!({
                "max_size": c.config.max_size,
                "max_entry": c.config.max_entry,
                "hits": s.hits.load(Relaxed),
                "misses": s.misses.load(Relaxed),
                "stores": s.stores.load(Relaxed),
                "seeded_by_writes": s.seeded.load(Relaxed),
                "not_stored": s.not_stored.load(Relaxed),
                "invalidations": s.invalidations.load(Relaxed),
            })
        });
        let listeners: Vec<Value> = self
            .edge
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let watched = self.edge.rotation.listeners.iter().find(|w| w.listener == l.name);
                let tls = match (&l.tls, self.edge.stats.get(i)) {
                    (Some(t), Some(st)) => tls_status(t, st, watched.map(|w| w.as_ref())),
                    _ => Value::Null,
                };
                let clients = self
                    .edge
                    .inbound
                    .get(i)
                    .filter(|_| l.protocol == Protocol::Http)
                    .map(|c| {
                        let refused: serde_json::Map<String, Value> = Reason::ALL
                            .iter()
                            .map(|r| (r.as_str().to_string(), json!(c.refused[r.index()].load(Relaxed))))
                            .collect();
                        json!({
                            "open": c.open.load(Relaxed),
                            "max_connections": c.max_connections,
                            "accepted": c.accepted.load(Relaxed),
                            "idle_closed": c.idle_closed.load(Relaxed),
                            "refused": refused,
                        })
                    });
                json!({
                    "name": l.name,
                    "address": l.address,
                    "protocol": format!("{:?}", l.protocol).to_ascii_lowercase(),
                    "http2": l.http2,
                    "tls": tls,
                    "clients": clients,
                })
            })
            .collect();
        let history = self.reloader.history.lock().map(|h| h.clone()).unwrap_or_default();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.started.elapsed().as_secs_f64(),
            "config": {
                "path": self.reloader.path,
                "generation": rt.loaded.generation,
                "hash": rt.loaded.hash_hex(),
                "loaded_unix": rt.loaded.at_unix,
                "reloads": history,
            },
            "in_flight": crate::shutdown::in_flight(),
            "client_limits": client_limits(&rt.client),
            "listeners": listeners,
            "pools": pools,
            "rate_limits": {"policies": policies, "redis": redis},
            "cache": cache,
            "l4": crate::l4::stats::status(&self.l4),
            "traffic": crate::metrics::status_json(),
        })
    }

    /// Ready when every pool has a server passing its active health check (a pool without
    /// one counts its servers healthy). Passive ejection is left out: a pool whose healthy
    /// servers are all ejected still serves (ejection is then ignored), so it is still ready.
    pub fn readiness(&self) -> (bool, Value) {
        let rt = self.live.load();
        let without: Vec<&str> = rt
            .pools
            .iter()
            .filter(|p| !(0..p.servers.len()).any(|i| p.healthy(i)))
            .map(|p| p.name())
            .collect();
        let ready = without.is_empty();
        (ready, json!({"ready": ready, "pools_without_healthy_server": without}))
    }
}

/// `client` as the config reference writes it (durations and sizes in the file's units).
fn client_limits(c: &ClientLimits) -> Value {
    json!({
        "header_timeout": fmt_duration(c.header_timeout),
        "keepalive_timeout": fmt_duration(c.keepalive_timeout),
        "keepalive_requests": c.keepalive_requests,
        "body_timeout": fmt_duration(c.body_timeout),
        "send_timeout": fmt_duration(c.send_timeout),
        "max_request_line": c.max_request_line,
        "max_request_head": c.max_request_head,
    })
}
