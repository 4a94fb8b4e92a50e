//! Upstream pools: server selection (weighted round robin or Ketama), active HTTP health checks
//! from pingora-load-balancing, and passive ejection after consecutive failures.
//!
//! A [`Pool`] is built once from [`crate::config::PoolConfig`]. Per-server state lives in a
//! slice indexed by position: atomics only, no lock and no allocation on the request path.

mod health;
mod passive;
mod select;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use pingora::lb::selection::RoundRobin;
use pingora::lb::{discovery, Backend, Backends, LoadBalancer};
use pingora::upstreams::peer::HttpPeer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::affinity::PinTable;
use crate::config::PoolConfig;
use crate::overload::Admission;
pub use health::HealthService;
pub use passive::{now_ms, ServerState};
pub use select::Selector;

/// Pins kept per pool at most (each ~24 bytes): bounded whatever the number of clients.
const PIN_CAPACITY: usize = 1 << 20;

/// Pingora's load balancer, kept for what it does well: static discovery and active health
/// checks. Selection itself is ours ([`Selector`]), on a mirror of the health it reports.
type Checker = Arc<LoadBalancer<RoundRobin>>;

/// Why a pool could not give a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoServer {
    /// Every server is failing its health check (or was already tried for this request).
    NoneHealthy,
}

/// A server is at its `max_conns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// One selection: which server (by index) to send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub index: usize,
    pub addr: SocketAddr,
}

pub struct Pool {
    pub config: PoolConfig,
    checker: Checker,
    selector: Selector,
    /// Per-server state, shared with the health observer that mirrors active health into it.
    pub servers: Arc<[ServerState]>,
    /// Read-your-writes pins (affinity key → server index).
    pub pins: Arc<PinTable>,
    pub admission: Option<Arc<Admission>>,
    /// Peer settings shared by every server of the pool; only the address differs.
    template: HttpPeer,
    /// Per-server request slots (`max_conns`), indexed like `servers`.
    slots: Option<Arc<[Arc<Semaphore>]>>,
    /// Requests refused because their server stayed full for the whole wait.
    pub slot_timeouts: AtomicU64,
    /// Requests that had to wait for a slot on their server (`max_conns`).
    pub slot_waits: AtomicU64,
    /// This pool's request metrics, resolved once; `None` when metrics are off.
    pub metrics: Option<crate::metrics::PoolMetrics>,
}

/// What a reloaded pool takes over from its predecessor.
struct Carried {
    checker: Checker,
    servers: Arc<[ServerState]>,
    pins: Arc<PinTable>,
    slots: Option<Arc<[Arc<Semaphore>]>>,
    admission: Option<Arc<Admission>>,
}

/// The backends of a pool, as pingora-load-balancing wants them (for its health checker).
pub fn backends(cfg: &PoolConfig) -> Backends {
    let set: BTreeSet<Backend> = cfg
        .servers
        .iter()
        .map(|s| Backend {
            addr: pingora::protocols::l4::socket::SocketAddr::Inet(s.address),
            weight: s.weight,
            ext: Default::default(),
        })
        .collect();
    Backends::new(discovery::Static::new(set))
}

impl Pool {
    /// Builds a pool: static discovery needs one `update()`, then the health check (if any) is
    /// attached with an observer that mirrors each health flip into [`ServerState`];
    /// [`HealthService`] runs the checks.
    pub async fn build(config: PoolConfig) -> pingora::Result<Self> {
        let servers: Arc<[ServerState]> = config.servers.iter().map(|s| ServerState::new(s.address)).collect();
        let mut lb = LoadBalancer::<RoundRobin>::from_backends(backends(&config));
        lb.update().await?;
        health::attach(&mut lb, &config, servers.clone());
        let parts = Carried {
            checker: Arc::new(lb),
            servers,
            pins: Arc::new(PinTable::new(PIN_CAPACITY)),
            slots: None,
            admission: None,
        };
        Ok(Self::assemble(config, parts))
    }

    /// The pool for a reloaded `config` that keeps this pool's servers: when the server list,
    /// health check and TLS are unchanged, the health checker, per-server state (active health,
    /// ejections, pick counts) and pins carry over, and so do the `max_conns` slots and the
    /// overload queue when their settings are unchanged (requests in flight hold those).
    /// `None` when the servers changed: the caller builds a fresh pool.
    pub fn rebuild(config: PoolConfig, old: &Pool) -> Option<Self> {
        use crate::runtime::same;
        let o = &old.config;
        if !same(&o.servers, &config.servers)
            || !same(&o.health_check, &config.health_check)
            || !same(&o.tls, &config.tls)
        {
            return None;
        }
        let parts = Carried {
            checker: old.checker.clone(),
            servers: old.servers.clone(),
            pins: old.pins.clone(),
            slots: (o.max_conns == config.max_conns).then(|| old.slots.clone()).flatten(),
            admission: same(&o.overload, &config.overload)
                .then(|| old.admission.clone())
                .flatten(),
        };
        let pool = Self::assemble(config, parts);
        pool.carry_counters(old);
        Some(pool)
    }

    /// Counters exported as Prometheus counters continue across a reload that rebuilds the
    /// pool (a drop to 0 would read as a counter reset).
    fn carry_counters(&self, old: &Pool) {
        self.slot_waits.fetch_add(old.slot_waits.load(Relaxed), Relaxed);
        self.slot_timeouts.fetch_add(old.slot_timeouts.load(Relaxed), Relaxed);
    }

    fn assemble(config: PoolConfig, parts: Carried) -> Self {
        let mut template = HttpPeer::new(SocketAddr::from(([127, 0, 0, 1], 0)), false, String::new());
        if let Some(tls) = &config.tls {
            crate::tls::upstream::apply(&mut template, tls, &config.name);
        }
        let t = &config.timeouts;
        template.options.connection_timeout = Some(t.connect);
        template.options.total_connection_timeout = Some(t.connect);
        template.options.read_timeout = Some(t.read);
        template.options.write_timeout = Some(t.write);
        // keepalive 0 → do not pool the connection at all.
        template.options.idle_timeout = Some(if config.keepalive == 0 {
            std::time::Duration::ZERO
        } else {
            t.idle
        });
        let slots = parts.slots.or_else(|| {
            config
                .max_conns
                .map(|n| config.servers.iter().map(|_| Arc::new(Semaphore::new(n))).collect())
        });
        let addrs: Vec<String> = config.servers.iter().map(|s| s.address.to_string()).collect();
        Pool {
            slots,
            slot_timeouts: AtomicU64::new(0),
            slot_waits: AtomicU64::new(0),
            metrics: crate::metrics::pool(&config.name, &addrs),
            admission: parts
                .admission
                .or_else(|| config.overload.clone().map(|o| Arc::new(Admission::new(o)))),
            pins: parts.pins,
            selector: Selector::new(config.selection, &config.servers),
            checker: parts.checker,
            config,
            servers: parts.servers,
            template,
        }
    }

    /// For a pool a reload built afresh (its server list changed): takes over the passive
    /// record of servers it shares with `old`, and runs `fall` health-check passes before it
    /// serves, so a server known to be down is not put back into rotation by the new checker's
    /// optimistic start. Bounded by `fall` × the check's timeout.
    pub async fn settle_from(&self, old: &Pool) {
        self.carry_counters(old);
        for s in self.servers.iter() {
            if let Some(o) = old.servers.iter().find(|o| o.addr == s.addr) {
                s.carry_from(o);
            }
        }
        if let Some(hc) = &self.config.health_check {
            for _ in 0..hc.fall.max(1) {
                self.run_health_check().await;
            }
        }
    }

    /// One active health-check pass over every server (run by [`HealthService`]).
    pub async fn run_health_check(&self) {
        self.checker.backends().run_health_check(true).await;
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Picks a server for `key`, skipping servers in `tried` (a bitmask of indices) and, while
    /// any other is available, servers passively ejected. When every healthy server is
    /// ejected, ejection is ignored (as Envoy's panic threshold does): a pool-wide blip must not
    /// turn into a pool-wide outage.
    pub fn select(&self, key: &[u8], tried: u64) -> Result<Pick, NoServer> {
        // The clock is read only if some server was ever ejected.
        let mut now = 0;
        let mut eligible = |i: usize, respect_ejection: bool| {
            let s = &self.servers[i];
            if tried & bit(i) != 0 || !s.is_healthy() {
                return false;
            }
            if !respect_ejection || !s.was_ejected() {
                return true;
            }
            if now == 0 {
                now = passive::now_ms();
            }
            !s.is_ejected(now)
        };
        let index = self
            .selector
            .pick(key, |i| eligible(i, true))
            .or_else(|| self.selector.pick(key, |i| eligible(i, false)))
            .ok_or(NoServer::NoneHealthy)?;
        self.servers[index].selected();
        Ok(Pick {
            index,
            addr: self.servers[index].addr,
        })
    }

    /// The server the ring gives `key` now (healthy and not ejected), without counting a pick:
    /// whether a pinned request is a detour from the key's home. `None` on round-robin pools.
    pub fn ring_home(&self, key: &[u8]) -> Option<usize> {
        if !matches!(self.selector, select::Selector::Ketama { .. }) {
            return None;
        }
        let now = passive::now_ms();
        self.selector.pick(key, |i| self.servers[i].in_rotation(now))
    }

    /// The pinned server, if it is still a good choice: healthy, not ejected, not yet tried.
    pub fn pinned(&self, index: usize, tried: u64) -> Option<Pick> {
        let s = self.servers.get(index)?;
        if tried & bit(index) != 0 || !s.in_rotation(passive::now_ms()) {
            return None;
        }
        s.selected();
        Some(Pick { index, addr: s.addr })
    }

    /// A request slot on a server, taken without waiting: `Err(Full)` when the server is at
    /// `max_conns`; `Ok(None)` when the pool has no cap.
    pub fn try_slot(&self, index: usize) -> Result<Option<OwnedSemaphorePermit>, Full> {
        match self.slots.as_ref().and_then(|s| s.get(index)) {
            None => Ok(None),
            Some(sem) => sem.clone().try_acquire_owned().map(Some).map_err(|_| Full),
        }
    }

    /// Waits up to the pool's `queue_timeout` for a slot on a server.
    pub async fn wait_slot(&self, index: usize) -> Option<OwnedSemaphorePermit> {
        let sem = self.slots.as_ref()?.get(index)?.clone();
        self.slot_waits.fetch_add(1, Relaxed);
        match tokio::time::timeout(self.config.conn_wait, sem.acquire_owned()).await {
            Ok(Ok(p)) => Some(p),
            _ => {
                self.slot_timeouts.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// A slot on the picked server, or on another one: a round-robin pool first tries its
    /// other servers (not yet `tried`) without waiting, while a consistent pool waits for the
    /// picked one (it holds the key's writes, or a client's stickiness). The pick that got the
    /// slot comes back with it; `None` when the wait ran out. For capped pools only.
    pub async fn take_slot(&self, pick: Pick, key: &[u8], tried: u64) -> Option<(Pick, Option<OwnedSemaphorePermit>)> {
        if let Ok(slot) = self.try_slot(pick.index) {
            return Some((pick, slot));
        }
        if self.config.selection == crate::config::Selection::RoundRobin {
            // Each turn sets one more bit of at most 64, so this ends.
            let mut full = tried | bit(pick.index);
            while let Ok(other) = self.select(key, full) {
                if let Ok(slot) = self.try_slot(other.index) {
                    return Some((other, slot));
                }
                full |= bit(other.index);
            }
        }
        self.wait_slot(pick.index).await.map(|s| (pick, Some(s)))
    }

    /// Requests at a server right now, when the pool caps them.
    pub fn active(&self, index: usize) -> Option<usize> {
        let sem = self.slots.as_ref()?.get(index)?;
        Some(
            self.config
                .max_conns
                .unwrap_or(0)
                .saturating_sub(sem.available_permits()),
        )
    }

    pub fn caps_servers(&self) -> bool {
        self.slots.is_some()
    }

    /// The peer to connect to for a pick, with the pool's timeouts.
    pub fn peer(&self, pick: Pick) -> Box<HttpPeer> {
        let mut p = Box::new(self.template.clone());
        p._address = pingora::protocols::l4::socket::SocketAddr::Inet(pick.addr);
        p
    }

    /// Records a transport failure (connect error, timeout) or a counted 5xx.
    pub fn failure(&self, index: usize) {
        let p = &self.config.passive;
        if let Some(s) = self.servers.get(index) {
            if s.failure(p.max_fails, p.eject_for) {
                log::warn!(
                    "upstream {}: server {} ejected for {:?} after {} consecutive failures",
                    self.config.name,
                    s.addr,
                    p.eject_for,
                    p.max_fails
                );
            }
        }
    }

    pub fn success(&self, index: usize) {
        if let Some(s) = self.servers.get(index) {
            s.success();
        }
    }

    /// Active health as last seen by the health checker.
    pub fn healthy(&self, index: usize) -> bool {
        self.servers.get(index).is_some_and(|s| s.is_healthy())
    }

    /// Seconds a client should wait before retrying when the pool has nothing healthy.
    pub fn retry_after_secs(&self) -> u64 {
        let hc = self.config.health_check.as_ref().map(|h| h.interval);
        let wait = hc.unwrap_or(self.config.passive.eject_for);
        crate::scim::error::retry_after_secs(wait)
    }
}

/// Bit for server index `i` in a "tried" mask; pools over 64 servers share bits, which only
/// makes a retry skip a server it did not need to.
pub fn bit(i: usize) -> u64 {
    1u64 << (i % 64)
}

#[cfg(test)]
mod tests;
