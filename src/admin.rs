//! The admin listener: `/healthz` for orchestrators, `/status` (JSON) with every listener (TLS
//! certificates and their expiry) and every pool's servers, their active health, passive
//! ejection and pick counts, and `POST /tls/reload` to reload certificates now.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use std::sync::atomic::Ordering::Relaxed;

use crate::config::units::fmt_duration;
use crate::reload::Reloader;
use crate::runtime::Live;
use crate::tls::rotate::Outcome;

pub struct Admin {
    /// The config serving now (pools, policies, cache follow reloads).
    pub live: Arc<Live>,
    pub reloader: Arc<Reloader>,
    pub edge: crate::app::Edge,
    /// Counters of every `protocol: tcp` listener.
    pub l4: Vec<Arc<crate::l4::Stats>>,
}

/// A TLS listener's certificates as served right now, with expiry, and its rotation record.
fn tls_status(
    tls: &crate::tls::ListenerTls,
    stats: &crate::tls::listener::HandshakeStats,
    rotation: Option<&crate::tls::rotate::Watched>,
) -> serde_json::Value {
    let now = crate::tls::certs::now_unix();
    let m = tls.material.load();
    let certs: Vec<serde_json::Value> = m
        .certs
        .entries
        .iter()
        .map(|e| {
            serde_json::json!({
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
    serde_json::json!({
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

impl Admin {
    pub fn status(&self) -> serde_json::Value {
        let rt = self.live.load_full();
        let pools: Vec<serde_json::Value> = rt
            .pools
            .iter()
            .map(|p| {
                let servers: Vec<serde_json::Value> = p
                    .servers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        serde_json::json!({
                            "address": s.addr.to_string(),
                            "weight": p.config.servers[i].weight,
                            "healthy": p.healthy(i),
                            "ejected_ms": s.ejected_for_ms(),
                            "consecutive_failures": s.consecutive_failures(),
                            "picks": s.picks(),
                            "active": p.active(i),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "name": p.name(),
                    "selection": format!("{:?}", p.config.selection),
                    "health_check": p.config.health_check.as_ref().map(|h| serde_json::json!({
                        "path": h.path, "interval": fmt_duration(h.interval), "rise": h.rise, "fall": h.fall,
                    })),
                    "servers": servers,
                    "pins": p.pins.len(),
                    "max_conns": p.config.max_conns,
                    "max_conns_timeouts": p.slot_timeouts.load(Relaxed),
                    "overload": p.admission.as_ref().map(|a| serde_json::json!({
                        "inflight": a.inflight(), "waiting": a.waiting(), "shed": a.shed.load(Relaxed),
                    })),
                })
            })
            .collect();
        let policies: Vec<serde_json::Value> = rt
            .limiter
            .policies
            .iter()
            .map(|s| serde_json::json!({"name": s.policy.name, "local_keys": s.local.keys()}))
            .collect();
        let redis = rt.limiter.redis.as_ref().map(|r| {
            serde_json::json!({
                "up": r.is_up(),
                "shared_decisions": r.shared.load(Relaxed),
                "local_fallbacks": r.fallbacks.load(Relaxed),
            })
        });
        let cache = rt.cache.as_ref().map(|c| {
            let s = &c.stats;
            serde_json::json!({
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
        let listeners: Vec<serde_json::Value> = self
            .edge
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let watched = self.edge.rotation.listeners.iter().find(|w| w.listener == l.name);
                let tls = match (&l.tls, self.edge.stats.get(i)) {
                    (Some(t), Some(st)) => tls_status(t, st, watched.map(|w| w.as_ref())),
                    _ => serde_json::Value::Null,
                };
                serde_json::json!({
                    "name": l.name,
                    "address": l.address,
                    "protocol": format!("{:?}", l.protocol).to_ascii_lowercase(),
                    "http2": l.http2,
                    "tls": tls,
                })
            })
            .collect();
        let history = self.reloader.history.lock().map(|h| h.clone()).unwrap_or_default();
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "config": {
                "path": self.reloader.path,
                "generation": rt.loaded.generation,
                "hash": format!("{:016x}", rt.loaded.hash),
                "loaded_unix": rt.loaded.at_unix,
                "reloads": history,
            },
            "in_flight": crate::shutdown::in_flight(),
            "listeners": listeners,
            "pools": pools,
            "rate_limits": {"policies": policies, "redis": redis},
            "cache": cache,
            "l4": crate::l4::stats::status(&self.l4),
        })
    }
}

fn reply(code: u16, content_type: &str, body: Vec<u8>) -> http::Response<Vec<u8>> {
    let mut r = http::Response::new(body);
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = r.body().len();
    r.headers_mut().insert(http::header::CONTENT_LENGTH, len.into());
    r
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let post = session.req_header().method == http::Method::POST;
        match session.req_header().uri.path() {
            "/healthz" => reply(200, "text/plain", b"ok\n".to_vec()),
            "/reload" if post => {
                // 200 when the new file serves, 422 when it was refused (the old one still serves).
                let report = self.reloader.reload("POST /reload").await;
                let body = serde_json::to_vec(&report).unwrap_or_default();
                reply(if report.ok { 200 } else { 422 }, "application/json", body)
            }
            "/tls/reload" if post => {
                // The explicit rotation trigger: reload every TLS listener's files now.
                let results: Vec<serde_json::Value> = self
                    .edge
                    .rotation
                    .check_all(true)
                    .into_iter()
                    .map(|(name, outcome)| match outcome {
                        Outcome::Refused(e) => serde_json::json!({"listener": name, "reloaded": false, "error": e}),
                        _ => serde_json::json!({"listener": name, "reloaded": true}),
                    })
                    .collect();
                let ok = results.iter().all(|r| r["reloaded"] == true);
                let body = serde_json::json!({"listeners": results}).to_string().into_bytes();
                reply(if ok { 200 } else { 422 }, "application/json", body)
            }
            "/status" => reply(200, "application/json", self.status().to_string().into_bytes()),
            _ => reply(404, "text/plain", b"not found; try /healthz or /status\n".to_vec()),
        }
    }
}
