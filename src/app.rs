//! Turns a validated [`Config`] into running Pingora services: the SCIM proxy on every
//! listener, the admin listener, and the health-check background service.

use std::sync::Arc;

use pingora::apps::http_app::HttpServer;
use pingora::proxy::http_proxy_service_with_name;
use pingora::server::configuration::Opt;
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use pingora::apps::HttpServerOptions;

use crate::admin::Admin;
use crate::cache::Cache;
use crate::config::{Config, Listener, Protocol};
use crate::h2c::H2cGate;
use crate::keys::KeyHasher;
use crate::proxy::Scimitar;
use crate::ratelimit::{Housekeeping, Limiter, RedisStore};
use crate::routing::Router;
use crate::tls::listener::HandshakeStats;
use crate::tls::rotate::{Rotation, Watched, Watcher};
use crate::upstream::{HealthService, Pool};

/// How long an h2c listener waits for a connection's first bytes before treating it as an
/// (idle) HTTP/1 connection.
const H2C_PREFACE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Builds the pools (static discovery resolves once, before any service starts).
pub fn build_pools(cfg: &Config) -> Result<Vec<Arc<Pool>>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start setup runtime: {e}"))?;
    cfg.upstreams
        .iter()
        .map(|u| {
            rt.block_on(Pool::build(u.clone()))
                .map(Arc::new)
                .map_err(|e| format!("upstreams.{}: {e}", u.name))
        })
        .collect()
}

/// The rate limiter; with `store: redis` it connects lazily, from the first decision on.
pub fn build_limiter(cfg: &Config) -> Result<Limiter, String> {
    let redis = match &cfg.rate_limits.redis {
        Some(r) => Some(Arc::new(RedisStore::new(r.clone())?)),
        None => None,
    };
    Ok(Limiter::new(cfg.rate_limits.policies.clone(), redis))
}

/// Boots Pingora with the config and never returns while the server runs.
pub fn run(mut opt: Opt, cfg: Config) -> Result<(), String> {
    // The SCIM config file is ours; Pingora gets its settings from the `server` section.
    opt.conf = None;
    let pools = build_pools(&cfg)?;
    let limiter = Arc::new(build_limiter(&cfg)?);
    let Config {
        server: server_conf,
        listeners,
        admin,
        tenancy,
        routes,
        key_secret,
        cache,
        ..
    } = cfg;
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    server.bootstrap();

    let hasher = KeyHasher::new(&key_secret);
    let cache = cache.map(|c| Arc::new(Cache::new(c, hasher.derive(0xca))));
    // Client-certificate headers are removed from every request on every listener (a client on
    // a plaintext listener must not be able to claim an identity either).
    let mut client_cert_headers: Vec<http::HeaderName> = Vec::new();
    for h in listeners
        .iter()
        .filter_map(|l| l.tls.as_ref()?.forward_client_cert.clone())
    {
        // Listeners that share a header name strip it once.
        if !client_cert_headers.contains(&h) {
            client_cert_headers.push(h);
        }
    }
    let app = || Scimitar {
        router: Router::new(routes.clone()),
        pools: pools.clone(),
        tenancy: tenancy.clone(),
        limiter: limiter.clone(),
        hasher,
        cache: cache.clone(),
        client_cert_headers: client_cert_headers.clone(),
    };
    let edge = Edge::new(&listeners);
    let describe = |l: &Listener| {
        log::info!(
            "listener {} on {} ({}{})",
            l.name,
            l.address,
            if l.tls.is_some() { "https" } else { "http" },
            if l.http2 { ", HTTP/2" } else { "" }
        );
    };
    let is_h2c = |l: &Listener| l.protocol == Protocol::Http && l.tls.is_none() && l.http2;
    let main: Vec<_> = listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.protocol == Protocol::Http && !is_h2c(l))
        .collect();
    if !main.is_empty() {
        let mut proxy = http_proxy_service_with_name(&server.configuration, app(), "scimitar");
        for (i, l) in main {
            match &l.tls {
                None => proxy.add_tcp(&l.address),
                Some(tls) => {
                    let settings = crate::tls::listener::settings(&l.name, tls, Some(l.http2), edge.stats[i].clone())?;
                    proxy.add_tls_with_settings(&l.address, None, settings);
                }
            }
            describe(l);
        }
        server.add_service(proxy);
    }
    // h2c is a per-service switch in Pingora, and its preface peek has no deadline: h2c
    // listeners get a gate in front of two copies of the proxy (HTTP/1 and h2c).
    let h2c: Vec<_> = listeners.iter().filter(|l| is_h2c(l)).collect();
    if !h2c.is_empty() {
        let mut o = HttpServerOptions::default();
        o.h2c = true;
        let mut h2 = pingora::proxy::http_proxy(&server.configuration, app());
        h2.server_options = Some(o);
        let gate = H2cGate {
            h1: Arc::new(pingora::proxy::http_proxy(&server.configuration, app())),
            h2c: Arc::new(h2),
            wait: H2C_PREFACE_WAIT,
        };
        let mut svc = Service::new("scimitar-h2c".to_string(), gate);
        for l in h2c {
            svc.add_tcp(&l.address);
            describe(l);
        }
        server.add_service(svc);
    }

    let mut l4 = Vec::new();
    for (l, handshakes) in listeners.iter().zip(edge.stats.iter()) {
        if let Some((svc, stats)) = crate::l4::service(l, &pools, handshakes.clone())? {
            log::info!("tcp listener {} on {} → upstream {}", l.name, l.address, stats.pool);
            l4.push(stats);
            server.add_service(svc);
        }
    }

    if let Some(a) = admin {
        let admin_app = Admin {
            pools: pools.clone(),
            limiter: limiter.clone(),
            cache,
            edge: edge.clone(),
            l4,
        };
        let mut svc = Service::new("admin".to_string(), HttpServer::new_app(admin_app));
        svc.add_tcp(&a.address);
        log::info!("admin on {}", a.address);
        server.add_service(svc);
    }
    server.add_service(background_service("health checks", HealthService { pools }));
    server.add_service(background_service(
        "certificate rotation",
        Watcher(edge.rotation.clone()),
    ));
    if !limiter.policies.is_empty() {
        let hk = Housekeeping {
            limiter,
            every: std::time::Duration::from_secs(10),
        };
        server.add_service(background_service("rate limit housekeeping", hk));
    }
    server.run_forever()
}

/// The listeners as the admin page shows them: each with its handshake counters, and the
/// certificate rotation shared by the watcher and `POST /tls/reload`.
#[derive(Clone)]
pub struct Edge {
    pub listeners: Arc<[Listener]>,
    /// Indexed like `listeners`.
    pub stats: Arc<[Arc<HandshakeStats>]>,
    pub rotation: Arc<Rotation>,
}

impl Edge {
    pub fn new(listeners: &[Listener]) -> Self {
        let rotation = Rotation {
            listeners: listeners
                .iter()
                .filter_map(|l| Some(Arc::new(Watched::new(&l.name, l.tls.clone()?))))
                .collect(),
        };
        Edge {
            listeners: listeners.into(),
            stats: listeners.iter().map(|_| Arc::default()).collect(),
            rotation: Arc::new(rotation),
        }
    }
}
