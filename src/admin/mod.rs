//! The admin listener: probes for orchestrators, the live status page and its JSON, the
//! effective config, and the certificate-reload trigger.
//!
//! | path | |
//! |---|---|
//! | `GET /healthz` | alive (always open) |
//! | `GET /readyz` | 200 when every pool has a healthy server, else 503 naming those without (open) |
//! | `GET /`, `GET /status` | the status page: one HTML file, inline CSS/JS, polls `status.json` |
//! | `GET /status.json` | listeners, pools, limits, cache, L4 counters ([`status`]) |
//! | `GET /config` | the serving file as JSON, secrets masked ([`redact`]) |
//! | `GET /metrics` | Prometheus text format ([`crate::metrics`]) |
//! | `POST /reload` | read the file again: apply it, or refuse it and say why |
//! | `POST /tls/reload` | reload every TLS listener's certificate files now |
//!
//! With `admin.token_sha256`, all but the probes need the token ([`auth`]). A POST that a
//! browser says comes from another site is refused with 403 ([`auth::cross_site`]).

mod auth;
mod redact;
mod status;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use once_cell::sync::Lazy;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::reload::Reloader;
use crate::runtime::Live;
use crate::tls::rotate::Outcome;

pub use crate::token::hash_hex as hash_token;

/// The status page, served as is: it has no external asset, so it works offline and behind
/// the strict Content-Security-Policy below.
const PAGE: &str = include_str!("status.html");

pub struct Admin {
    /// The config serving now (pools, policies, cache and the file itself follow reloads).
    pub live: Arc<Live>,
    pub reloader: Arc<Reloader>,
    pub edge: crate::app::Edge,
    /// Counters of every `protocol: tcp` listener.
    pub l4: Vec<Arc<crate::l4::Stats>>,
    /// SHA-256 of the admin token; `None` leaves every path open. Fixed at start, like the
    /// admin address (a reload reports an `admin` change as needing a restart).
    pub token_sha256: Option<[u8; 32]>,
    pub started: Instant,
}

fn reply(code: u16, content_type: &str, body: Vec<u8>) -> http::Response<Vec<u8>> {
    let mut r = http::Response::new(body);
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        h.insert(http::header::CONTENT_TYPE, v);
    }
    // Every answer is live state (or a secret-bearing config): never from a cache.
    h.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    let len = r.body().len();
    r.headers_mut().insert(http::header::CONTENT_LENGTH, len.into());
    r
}

fn json(code: u16, v: &serde_json::Value) -> http::Response<Vec<u8>> {
    reply(code, "application/json", v.to_string().into_bytes())
}

/// The page's policy allows exactly its own inline script and style (by hash) and fetches
/// to this origin: even a string that slipped into the DOM as markup could not run or load
/// anything.
static PAGE_CSP: Lazy<String> = Lazy::new(|| {
    let hash = |tag: &str| {
        let body = PAGE
            .split_once(&format!("<{tag}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{tag}>")))
            .map_or("", |(body, _)| body);
        format!(
            "'sha256-{}'",
            openssl::base64::encode_block(&openssl::sha::sha256(body.as_bytes()))
        )
    };
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash("script"),
        hash("style")
    )
});

fn page() -> http::Response<Vec<u8>> {
    let mut r = reply(200, "text/html; charset=utf-8", PAGE.as_bytes().to_vec());
    if let Ok(v) = http::HeaderValue::from_str(&PAGE_CSP) {
        r.headers_mut().insert(http::header::CONTENT_SECURITY_POLICY, v);
    }
    let h = r.headers_mut();
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        http::header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    );
    r
}

fn unauthorized() -> http::Response<Vec<u8>> {
    let mut r = reply(
        401,
        "text/plain",
        b"unauthorized: send Authorization: Bearer <admin token>\n".to_vec(),
    );
    for c in auth::CHALLENGES {
        r.headers_mut()
            .append(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static(c));
    }
    r
}

impl Admin {
    fn reload_tls(&self) -> http::Response<Vec<u8>> {
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
        json(if ok { 200 } else { 422 }, &serde_json::json!({"listeners": results}))
    }
}

impl Admin {
    /// The Prometheus text exposition, read from the config serving now.
    fn metrics(&self) -> Vec<u8> {
        let Some(m) = crate::metrics::get() else {
            return b"# metrics are off (see the error log)\n".to_vec();
        };
        let rt = self.live.load_full();
        m.encode(&crate::metrics::scrape::Live {
            pools: &rt.pools,
            limiter: &rt.limiter,
            cache: rt.cache.as_deref(),
            listeners: &self.edge.listeners,
            l4: &self.l4,
            inbound: &self.edge.inbound,
        })
    }
}

/// Paths and the one method each answers.
const ROUTES: &[(&str, &str)] = &[
    ("/healthz", "GET"),
    ("/readyz", "GET"),
    ("/", "GET"),
    ("/status", "GET"),
    ("/status.json", "GET"),
    ("/config", "GET"),
    ("/metrics", "GET"),
    ("/reload", "POST"),
    ("/tls/reload", "POST"),
];

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        let path = req.uri.path();
        let Some((_, method)) = ROUTES.iter().find(|(p, _)| *p == path) else {
            return reply(
                404,
                "text/plain",
                b"not found; try /, /status.json, /readyz or /config\n".to_vec(),
            );
        };
        if req.method.as_str() != *method {
            let mut r = reply(
                405,
                "text/plain",
                format!("{path} answers {method} only\n").into_bytes(),
            );
            if let Ok(v) = http::HeaderValue::from_str(method) {
                r.headers_mut().insert(http::header::ALLOW, v);
            }
            return r;
        }
        if req.method == http::Method::POST {
            if let Some(why) = auth::cross_site(&req.headers) {
                return reply(
                    403,
                    "text/plain",
                    format!("cross-site request refused: {why}\n").into_bytes(),
                );
            }
        }
        // The probes stay open: orchestrators' health checks rarely carry credentials, and
        // they say nothing an attacker could use.
        let probe = path == "/healthz" || path == "/readyz";
        if !probe && !auth::allowed(self.token_sha256.as_ref(), req.headers.get(http::header::AUTHORIZATION)) {
            return unauthorized();
        }
        match path {
            "/healthz" => reply(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let (ready, body) = self.readiness();
                json(if ready { 200 } else { 503 }, &body)
            }
            "/" | "/status" => page(),
            "/status.json" => json(200, &self.status()),
            "/config" => json(200, &redact::redacted(&self.live.load().source)),
            "/metrics" => reply(200, crate::metrics::CONTENT_TYPE, self.metrics()),
            "/reload" => {
                // 200 when the new file serves, 422 when it was refused (the old one still serves).
                let report = self.reloader.reload("POST /reload").await;
                let body = serde_json::to_value(&report).unwrap_or_default();
                json(if report.ok { 200 } else { 422 }, &body)
            }
            _ => self.reload_tls(),
        }
    }
}
