//! Active health checks: Pingora's `HttpHealthCheck` (path, expected statuses, the pool's TLS)
//! or `TcpHealthCheck` (a connect, for layer-4 pools) configured from YAML with rise/fall, run by
//! one background service for all pools.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::lb::health_check::{HealthCheck as HealthCheckTrait, HealthObserve, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{BackendIter, BackendSelection};
use pingora::lb::{Backend, LoadBalancer};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::{Error, ErrorType};

use super::{Pool, ServerState};
use crate::config::{HealthCheck, PoolConfig, ProbeKind};
use crate::runtime::Live;

/// Builds the checker for one pool. `None` when the pool has no `health_check`.
pub fn checker(pool: &PoolConfig, servers: Arc<[ServerState]>) -> Option<Box<dyn HealthCheckTrait + Send + Sync>> {
    let cfg: &HealthCheck = pool.health_check.as_ref()?;
    let observer = Box::new(Mirror {
        pool: pool.name.clone(),
        servers,
    });
    if cfg.kind == ProbeKind::Tcp {
        let mut tc = TcpHealthCheck::new();
        tc.consecutive_success = cfg.rise;
        tc.consecutive_failure = cfg.fall;
        tc.peer_template.options.connection_timeout = Some(cfg.timeout);
        tc.peer_template.options.total_connection_timeout = Some(cfg.timeout);
        tc.health_changed_callback = Some(observer);
        return Some(tc);
    }
    let host = cfg.host.clone().unwrap_or_else(|| "localhost".to_string());
    let mut hc = HttpHealthCheck::new(&host, false);
    let mut req = RequestHeader::build("GET", cfg.path.as_bytes(), None).ok()?;
    req.insert_header("host", &host).ok()?;
    req.insert_header("user-agent", "scimitar-health-check").ok()?;
    hc.req = req;
    hc.consecutive_success = cfg.rise;
    hc.consecutive_failure = cfg.fall;
    // The probe speaks to a server the way requests do: same TLS, trust anchors, client cert.
    if let Some(tls) = &pool.tls {
        crate::tls::upstream::apply(&mut hc.peer_template, tls, &pool.name);
    }
    hc.peer_template.options.connection_timeout = Some(cfg.timeout);
    hc.peer_template.options.total_connection_timeout = Some(cfg.timeout);
    hc.peer_template.options.read_timeout = Some(cfg.timeout);
    hc.peer_template.options.write_timeout = Some(cfg.timeout);
    let expect = cfg.expect_status.clone();
    hc.validator = Some(Box::new(move |resp| {
        let code = resp.status.as_u16();
        if expect.contains(&code) {
            Ok(())
        } else {
            Error::e_explain(
                ErrorType::CustomCode("unexpected health check status", code),
                "status not in expect_status",
            )
        }
    }));
    hc.health_changed_callback = Some(observer);
    Some(Box::new(hc))
}

pub fn attach<S>(lb: &mut LoadBalancer<S>, pool: &PoolConfig, servers: Arc<[ServerState]>)
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    if let Some(hc) = checker(pool, servers) {
        lb.set_health_check(hc);
    }
}

/// Mirrors every health flip into the pool's [`ServerState`] (what selection reads) and logs it.
struct Mirror {
    pool: String,
    servers: Arc<[ServerState]>,
}

#[async_trait]
impl HealthObserve for Mirror {
    async fn observe(&self, target: &Backend, healthy: bool) {
        if let Some(s) = self.servers.iter().find(|s| target.addr.as_inet() == Some(&s.addr)) {
            s.set_healthy(healthy);
        }
        if healthy {
            log::warn!("upstream {}: server {} is healthy again", self.pool, target.addr);
        } else {
            log::warn!(
                "upstream {}: server {} failed its health check and left rotation",
                self.pool,
                target.addr
            );
        }
    }
}

/// Runs every pool's health checks on its own interval until shutdown, following reloads: a
/// pool that carried over keeps its task (and its checker's counts), a new one gets a task,
/// and a removed one's task stops.
pub struct HealthService {
    pub live: Arc<Live>,
}

fn spawn_checks(pool: Arc<Pool>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            pool.run_health_check().await;
        }
    })
}

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Keyed by the pool's allocation: a reload that keeps a pool keeps the same `Arc`.
        let mut tasks: Vec<(Arc<Pool>, tokio::task::JoinHandle<()>)> = Vec::new();
        let mut swapped = self.live.swapped.subscribe();
        loop {
            let rt = self.live.load_full();
            let wanted: Vec<&Arc<Pool>> = rt.pools.iter().filter(|p| p.config.health_check.is_some()).collect();
            tasks.retain(|(p, t)| {
                let keep = wanted.iter().any(|w| Arc::ptr_eq(w, p));
                if !keep {
                    t.abort();
                }
                keep
            });
            for p in wanted {
                if !tasks.iter().any(|(q, _)| Arc::ptr_eq(p, q)) {
                    let every = p
                        .config
                        .health_check
                        .as_ref()
                        .map_or(Duration::from_secs(5), |h| h.interval);
                    tasks.push((p.clone(), spawn_checks(p.clone(), every)));
                }
            }
            drop(rt);
            tokio::select! {
                r = swapped.changed() => if r.is_err() { break },
                _ = shutdown.changed() => break,
            }
        }
        for (_, t) in tasks {
            t.abort();
        }
    }
}
