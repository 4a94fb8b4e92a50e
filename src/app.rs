//! Turns a validated [`Config`] into running Pingora services: the SCIM proxy on every
//! listener, the admin listener, and the health-check background service.

use std::sync::Arc;

use pingora::apps::http_app::HttpServer;
use pingora::proxy::http_proxy_service_with_name;
use pingora::server::configuration::Opt;
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::Admin;
use crate::cache::Cache;
use crate::config::Config;
use crate::keys::KeyHasher;
use crate::proxy::Scimitar;
use crate::ratelimit::{Housekeeping, Limiter, RedisStore};
use crate::routing::Router;
use crate::upstream::{HealthService, Pool};

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
    let app = Scimitar {
        router: Router::new(routes),
        pools: pools.clone(),
        tenancy,
        limiter: limiter.clone(),
        hasher,
        cache: cache.clone(),
    };
    let mut proxy = http_proxy_service_with_name(&server.configuration, app, "scimitar");
    for l in &listeners {
        proxy.add_tcp(&l.address);
        log::info!("listener {} on {}", l.name, l.address);
    }
    server.add_service(proxy);

    if let Some(a) = admin {
        let admin_app = Admin {
            pools: pools.clone(),
            limiter: limiter.clone(),
            cache,
        };
        let mut svc = Service::new("admin".to_string(), HttpServer::new_app(admin_app));
        svc.add_tcp(&a.address);
        log::info!("admin on {}", a.address);
        server.add_service(svc);
    }
    server.add_service(background_service("health checks", HealthService { pools }));
    if !limiter.policies.is_empty() {
        let hk = Housekeeping {
            limiter,
            every: std::time::Duration::from_secs(10),
        };
        server.add_service(background_service("rate limit housekeeping", hk));
    }
    server.run_forever()
}
