//! Turns a validated [`Config`] into running Pingora services: the SCIM proxy on every
//! listener, the admin listener, the background services, and scimitar's signal handling.

use std::sync::Arc;

use pingora::apps::http_app::HttpServer;
use pingora::server::configuration::Opt;
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use pingora::apps::HttpServerOptions;

use std::sync::atomic::Ordering::Relaxed;

use pingora::server::RunArgs;

use crate::admin::Admin;
use crate::config::{Config, Listener, Protocol};
use crate::inbound::Gate;
use crate::proxy::Scimitar;
use crate::ratelimit::Housekeeping;
use crate::reload::Reloader;
use crate::runtime::{Live, Loaded};
use crate::shutdown::{Claimed, Hooks};
use crate::tls::listener::HandshakeStats;
use crate::tls::rotate::{Rotation, Watched, Watcher};
use crate::upstream::HealthService;

/// How long an h2c listener waits for a connection's first bytes before treating it as an
/// (idle) HTTP/1 connection.
const H2C_PREFACE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Boots Pingora with the config and returns when the server stops (normally the process
/// exits first, from [`crate::shutdown`]). `path` is the file SIGHUP and `POST /reload` read
/// again.
pub fn run(mut opt: Opt, mut cfg: Config, path: String, signals: Claimed) -> Result<(), String> {
    // The SCIM config file is ours; Pingora gets its settings from the `server` section.
    opt.conf = None;
    let loaded = Loaded {
        generation: 1,
        hash: cfg.hash,
        at_unix: crate::tls::certs::now_unix(),
    };
    let live = Live::new(crate::runtime::build_blocking(&cfg, None, loaded)?);
    apply_observability(&cfg);
    if let Some(m) = crate::metrics::get() {
        m.config_active(cfg.hash);
    }
    if let Some(a) = &cfg.access_log {
        crate::accesslog::init(a)?;
    }
    let edge = Edge::new(&cfg.listeners);
    // Before the server section moves to Pingora: reloads compare against it.
    let reloader = Arc::new(Reloader::new(path, live.clone(), edge.clone(), &cfg));
    let mut pingora_conf = std::mem::take(&mut cfg.server);
    if pingora_conf.working_directory.is_none() {
        // `-d` would change to `/`, and relative paths in the file (certificates the watcher
        // re-reads, the access log) would stop resolving; stay where we were started.
        pingora_conf.working_directory = std::env::current_dir().ok();
    }
    let mut server = Server::new_with_opt_and_conf(opt, pingora_conf);
    server.bootstrap();

    let listeners = &cfg.listeners;
    let app = || Scimitar { live: live.clone() };
    let describe = |l: &Listener| {
        log::info!(
            "listener {} on {} ({}{})",
            l.name,
            l.address,
            if l.tls.is_some() { "https" } else { "http" },
            if l.http2 { ", HTTP/2" } else { "" }
        );
    };
    // All HTTP listeners are one service (one runtime) with the gate in front of the proxy;
    // the gate counts each connection against its listener. h2c is a per-proxy switch in
    // Pingora, so h2c listeners get a second, h2c-enabled copy.
    let mut options = HttpServerOptions::default();
    options.h2_idle_timeout = Some(cfg.client.keepalive_timeout);
    let proxy = |h2c: bool| {
        let mut p = pingora::proxy::http_proxy(&server.configuration, app());
        let mut o = options.clone();
        o.h2c = h2c;
        p.server_options = Some(o);
        Arc::new(p)
    };
    let h1 = proxy(false);
    let is_h2c = |l: &Listener| l.protocol == Protocol::Http && l.tls.is_none() && l.http2;
    let h2c = listeners.iter().any(is_h2c).then(|| proxy(true));
    let http: Vec<(usize, &Listener)> = listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.protocol == Protocol::Http)
        .collect();
    if !http.is_empty() {
        let mut ports = Vec::new();
        for (i, l) in &http {
            let addr = l
                .address
                .parse()
                .map_err(|e| format!("listener {}: address {}: {e}", l.name, l.address))?;
            ports.push(crate::inbound::Port {
                addr,
                stats: edge.inbound[*i].clone(),
                h2c: is_h2c(l),
            });
        }
        let gate = Gate {
            h1,
            h2c,
            h2c_wait: H2C_PREFACE_WAIT,
            live: live.clone(),
            ports,
        };
        let mut svc = Service::new("scimitar".to_string(), gate);
        for (i, l) in http {
            match &l.tls {
                None => svc.add_tcp(&l.address),
                Some(tls) => {
                    let settings = crate::tls::listener::settings(&l.name, tls, Some(l.http2), edge.stats[i].clone())?;
                    svc.add_tls_with_settings(&l.address, None, settings);
                }
            }
            describe(l);
        }
        server.add_service(svc);
    }

    let mut l4 = Vec::new();
    for (l, handshakes) in listeners.iter().zip(edge.stats.iter()) {
        if let Some((svc, stats)) = crate::l4::service(l, &live, handshakes.clone())? {
            log::info!("tcp listener {} on {} → upstream {}", l.name, l.address, stats.pool);
            l4.push(stats);
            server.add_service(svc);
        }
    }

    if let Some(a) = &cfg.admin {
        let admin_app = Admin {
            live: live.clone(),
            edge: edge.clone(),
            l4: l4.clone(),
            reloader: reloader.clone(),
            token_sha256: a.token_sha256,
            started: std::time::Instant::now(),
        };
        let mut svc = Service::new("admin".to_string(), HttpServer::new_app(admin_app));
        svc.add_tcp(&a.address);
        log::info!("admin on {}", a.address);
        server.add_service(svc);
    }
    server.add_service(background_service(
        "health checks",
        HealthService { live: live.clone() },
    ));
    server.add_service(background_service(
        "certificate rotation",
        Watcher(edge.rotation.clone()),
    ));
    let hk = Housekeeping {
        live,
        every: std::time::Duration::from_secs(10),
    };
    server.add_service(background_service("rate limit housekeeping", hk));

    let hooks = Hooks {
        reloader,
        timeout: cfg.shutdown_timeout,
        l4_open: Box::new(move || l4.iter().map(|s| s.open.load(Relaxed) as usize).sum()),
        before_exit: Box::new(|| {
            crate::accesslog::flush_and_stop();
        }),
        reopen_logs: Box::new(crate::accesslog::reopen),
    };
    let (watch, signals) = crate::shutdown::install(signals, hooks, server.watch_execution_phase());
    server.add_service(background_service("signals", signals));
    server.run(RunArgs {
        shutdown_signal: Box::new(watch),
    });
    Ok(())
}

/// The observability settings a reload may change too: tenant tracking (and its metric
/// label) and the proxies whose `X-Forwarded-For` the access log believes.
pub fn apply_observability(cfg: &Config) {
    crate::metrics::configure(&cfg.metrics, cfg.tenancy != crate::config::Tenancy::None);
    crate::clientip::configure(cfg.trusted_proxies.clone(), cfg.real_ip_header.clone());
}

/// The listeners as the admin page shows them: each with its handshake counters, and the
/// certificate rotation shared by the watcher and `POST /tls/reload`.
#[derive(Clone)]
pub struct Edge {
    pub listeners: Arc<[Listener]>,
    /// Indexed like `listeners`.
    pub stats: Arc<[Arc<HandshakeStats>]>,
    /// Client-side counters of HTTP listeners, indexed like `listeners`.
    pub inbound: Arc<[Arc<crate::inbound::Stats>]>,
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
            inbound: listeners
                .iter()
                .map(|l| Arc::new(crate::inbound::Stats::new(l.max_connections)))
                .collect(),
            rotation: Arc::new(rotation),
        }
    }
}
