//! Hot reload (SIGHUP and `POST /reload`): read and validate the file, reload certificates,
//! build the next [`Runtime`] beside the current one, and swap it in — or keep serving the old
//! one and say why.
//!
//! What Pingora cannot change in a running process (listeners, the admin listener, the
//! `server` section) is compared with what the process started with and reported as "needs
//! restart"; the rest of the file is applied. Nothing is half-applied: a listener change is
//! not applied at all until a restart or a binary upgrade (`-u`).

use std::sync::{Arc, Mutex};

use crate::app::Edge;
use crate::config::{Config, Listener};
use crate::runtime::{self, Live, Loaded};
use crate::tls::certs::now_unix;
use crate::tls::rotate::Outcome;

/// The outcome of one reload, as `POST /reload` returns it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub ok: bool,
    /// The generation serving after this reload (unchanged when it failed).
    pub generation: u64,
    /// Hex SipHash of the file that is serving.
    pub config_hash: String,
    /// Why the new file was refused; empty on success.
    pub errors: Vec<String>,
    /// Changes in the file that take effect only after a restart (or `-u` upgrade).
    pub needs_restart: Vec<String>,
    /// Configuration warnings of the new file (e.g. a certificate close to expiry).
    pub warnings: Vec<String>,
}

/// Reload history for `/status.json` and metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct History {
    pub succeeded: u64,
    pub failed: u64,
    pub last: Option<Report>,
    pub last_unix: Option<i64>,
}

pub struct Reloader {
    pub path: String,
    pub live: Arc<Live>,
    pub edge: Edge,
    /// How the restart-only parts of the file looked at start.
    fixed: Fixed,
    /// One reload at a time (SIGHUP and `POST /reload` may race).
    busy: tokio::sync::Mutex<()>,
    pub history: Mutex<History>,
}

/// The parts of the config only a restart applies, rendered for comparison.
struct Fixed {
    listeners: Vec<(String, String)>,
    admin: String,
    /// Each `server` setting, rendered.
    server: Vec<(String, String)>,
    access_log: String,
    /// (listener, pool) of every `protocol: tcp` listener.
    tcp_pools: Vec<(String, String)>,
}

/// Pingora's settings one by one, so a change names the setting.
fn server_settings(c: &pingora::server::configuration::ServerConf) -> Vec<(String, String)> {
    match serde_yaml::to_value(c) {
        Ok(serde_yaml::Value::Mapping(m)) => m
            .into_iter()
            .map(|(k, v)| {
                let v = serde_yaml::to_string(&v).unwrap_or_default();
                (k.as_str().unwrap_or_default().to_string(), v.trim().to_string())
            })
            .collect(),
        _ => vec![(String::new(), format!("{c:?}"))],
    }
}

/// A listener as a comparable description: its pool by name (indices shift when pools are
/// added or reordered, which a reload applies).
fn describe(l: &Listener, cfg: &Config) -> String {
    let tcp = l.tcp.as_ref().map(|t| {
        let pool = cfg.upstreams.get(t.upstream).map_or("?", |u| u.name.as_str());
        format!(
            "tcp upstream={pool} idle={:?} max={:?} queue={:?}",
            t.idle_timeout, t.max_connections, t.queue_timeout
        )
    });
    // The TLS block without its loaded material (which differs on every load); new file
    // contents under the same paths are applied by the reload's certificate check.
    let tls = l.tls.as_ref().map(|t| {
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            t.certificates,
            t.min_version,
            t.ciphers,
            t.ciphersuites,
            t.client_ca,
            t.client_auth,
            t.forward_client_cert,
            t.watch
        )
    });
    format!(
        "{} {:?} http2={} max_connections={:?} tls={tls:?} {tcp:?}",
        l.address, l.protocol, l.http2, l.max_connections
    )
}

impl Fixed {
    fn of(cfg: &Config) -> Self {
        Fixed {
            listeners: cfg
                .listeners
                .iter()
                .map(|l| (l.name.clone(), describe(l, cfg)))
                .collect(),
            admin: format!("{:?}", cfg.admin),
            server: server_settings(&cfg.server),
            tcp_pools: cfg
                .listeners
                .iter()
                .filter_map(|l| {
                    let u = cfg.upstreams.get(l.tcp.as_ref()?.upstream)?;
                    Some((l.name.clone(), u.name.clone()))
                })
                .collect(),
            // The writer thread owns its file and queue for the life of the process.
            access_log: format!("{:?}", cfg.access_log),
        }
    }

    /// What differs between the start-up file and `cfg`, one line per change.
    fn changes(&self, cfg: &Config) -> Vec<String> {
        let new = Fixed::of(cfg);
        let mut out = Vec::new();
        for (name, d) in &new.listeners {
            match self.listeners.iter().find(|(n, _)| n == name) {
                None => out.push(format!("listeners.{name}: new listener")),
                Some((_, old)) if old != d => out.push(format!("listeners.{name}: changed")),
                _ => {}
            }
        }
        for (name, _) in &self.listeners {
            if !new.listeners.iter().any(|(n, _)| n == name) {
                out.push(format!("listeners.{name}: removed"));
            }
        }
        if self.admin != new.admin {
            out.push("admin: changed".into());
        }
        for (k, v) in &new.server {
            match self.server.iter().find(|(o, _)| o == k) {
                Some((_, old)) if old == v => {}
                Some((_, old)) => out.push(format!("server.{k}: {old} → {v}")),
                None => out.push(format!("server.{k}: {v}")),
            }
        }
        if self.access_log != new.access_log {
            out.push("access_log: changed".into());
        }
        out
    }
}

impl Reloader {
    pub fn new(path: String, live: Arc<Live>, edge: Edge, started: &Config) -> Self {
        Reloader {
            path,
            live,
            edge,
            fixed: Fixed::of(started),
            busy: tokio::sync::Mutex::new(()),
            history: Mutex::new(History::default()),
        }
    }

    /// Reads, validates and applies the file. Never panics and never leaves a mix of old and
    /// new routing: either the whole new snapshot serves, or the old one still does.
    pub async fn reload(&self, trigger: &str) -> Report {
        let _one = self.busy.lock().await;
        let current = self.live.load_full();
        let mut report = Report {
            generation: current.loaded.generation,
            config_hash: current.loaded.hash_hex(),
            ..Report::default()
        };
        match self.try_reload(&current, &mut report).await {
            Ok(()) => {
                report.ok = true;
                log::info!(
                    "reload ({trigger}): configuration {} generation {} serving{}",
                    report.config_hash,
                    report.generation,
                    if report.needs_restart.is_empty() {
                        String::new()
                    } else {
                        format!("; needs restart: {}", report.needs_restart.join(", "))
                    }
                );
            }
            Err(errors) => {
                report.errors = errors;
                log::error!(
                    "reload ({trigger}) refused, previous configuration still serving: {}",
                    report.errors.join("; ")
                );
            }
        }
        crate::metrics::config_loaded(self.live.load().loaded.hash, report.ok);
        if let Ok(mut h) = self.history.lock() {
            if report.ok {
                h.succeeded += 1;
            } else {
                h.failed += 1;
            }
            h.last = Some(report.clone());
            h.last_unix = Some(now_unix());
        }
        report
    }

    async fn try_reload(&self, current: &runtime::Runtime, report: &mut Report) -> Result<(), Vec<String>> {
        // The same loader as start-up: the same problems, worded the same way.
        let cfg = crate::config::load(&self.path).map_err(|p| p.0.iter().map(|p| p.to_string()).collect::<Vec<_>>())?;
        report.warnings = cfg.warnings.iter().map(|w| w.to_string()).collect();
        report.needs_restart = self.fixed.changes(&cfg);
        // A running tcp listener follows its pool by name; only a restart re-points it, so the
        // pool must stay (its health checks would stop and the listener would keep stale state).
        let gone: Vec<String> = self
            .fixed
            .tcp_pools
            .iter()
            .filter(|(_, pool)| !cfg.upstreams.iter().any(|u| &u.name == pool))
            .map(|(l, pool)| {
                format!("upstreams.{pool}: still used by the running tcp listener `{l}`; keep it until a restart")
            })
            .collect();
        if !gone.is_empty() {
            return Err(gone);
        }

        let loaded = Loaded {
            generation: current.loaded.generation + 1,
            hash: cfg.hash,
            at_unix: now_unix(),
        };
        let next = runtime::build(&cfg, Some(current), loaded).await.map_err(|e| vec![e])?;
        // Certificates last before the swap (they apply as they load): a file that does not
        // load refuses the whole reload, and the new snapshot is dropped unserved.
        let refused: Vec<String> = self
            .edge
            .rotation
            .check_all(true)
            .into_iter()
            .filter_map(|(name, o)| match o {
                Outcome::Refused(e) => Some(format!("listeners.{name}.tls: {e}")),
                _ => None,
            })
            .collect();
        if !refused.is_empty() {
            return Err(refused);
        }

        let pools: Vec<(&str, Vec<String>)> = next
            .pools
            .iter()
            .map(|p| (p.name(), p.servers.iter().map(|s| s.addr.to_string()).collect()))
            .collect();
        let policies: Vec<&str> = next.limiter.policies.iter().map(|p| p.policy.name.as_str()).collect();
        if let Some(m) = crate::metrics::get() {
            // Series of pools, servers and policies the new file dropped stop being exported.
            m.retain(&pools, &policies);
            m.auth.retain(&crate::edgeauth::Counters::live(&next.router.routes));
        }
        crate::app::apply_observability(&cfg);
        self.live.store(next);
        report.generation = loaded.generation;
        report.config_hash = loaded.hash_hex();
        Ok(())
    }
}
