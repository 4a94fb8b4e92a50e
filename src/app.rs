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
use crate::config::Config;
use crate::proxy::Scimitar;
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

/// Boots Pingora with the config and never returns while the server runs.
pub fn run(mut opt: Opt, cfg: Config) -> Result<(), String> {
    // The SCIM config file is ours; Pingora gets its settings from the `server` section.
    opt.conf = None;
    let pools = build_pools(&cfg)?;
    let Config {
        server: server_conf,
        listeners,
        admin,
        tenancy,
        routes,
        ..
    } = cfg;
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    server.bootstrap();

    let app = Scimitar {
        router: Router::new(routes),
        pools: pools.clone(),
        tenancy,
    };
    let mut proxy = http_proxy_service_with_name(&server.configuration, app, "scimitar");
    for l in &listeners {
        proxy.add_tcp(&l.address);
        log::info!("listener {} on {}", l.name, l.address);
    }
    server.add_service(proxy);

    if let Some(a) = admin {
        let mut svc = Service::new("admin".to_string(), HttpServer::new_app(Admin { pools: pools.clone() }));
        svc.add_tcp(&a.address);
        log::info!("admin on {}", a.address);
        server.add_service(svc);
    }
    server.add_service(background_service("health checks", HealthService { pools }));
    server.run_forever()
}
