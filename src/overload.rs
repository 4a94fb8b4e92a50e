//! Overload protection per pool: at most `max_inflight` requests at the upstreams, a bounded
//! queue (`queue`, `queue_timeout`) in front of that, and shedding with 503 + `Retry-After`
//! beyond it — so a burst waits briefly or is refused instead of piling onto the servers.
//! Optional fairness: when the pool is full, a tenant already holding `tenant_share` of the
//! slots is shed rather than queued ahead of other tenants.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use pingora_limits::inflight::{Guard, Inflight};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone, PartialEq)]
pub struct OverloadConfig {
    pub max_inflight: usize,
    pub queue: usize,
    pub queue_timeout: Duration,
    /// Largest share (0–1] of `max_inflight` one tenant may hold while the pool is full.
    pub tenant_share: Option<f64>,
}

/// Holding this is holding an in-flight slot; dropping it frees the slot.
pub struct Permit {
    _slot: OwnedSemaphorePermit,
    _tenant: Option<Guard>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    QueueFull,
    QueueTimeout,
    TenantShare,
}

impl Shed {
    pub fn detail(self) -> &'static str {
        match self {
            Shed::QueueFull => "the upstream pool is at capacity and its queue is full",
            Shed::QueueTimeout => "the upstream pool stayed at capacity for the whole queue timeout",
            Shed::TenantShare => "this tenant already holds its share of the upstream pool",
        }
    }
}

pub struct Admission {
    cfg: OverloadConfig,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    tenants: Inflight,
    tenant_cap: isize,
    pub shed: AtomicU64,
}

impl Admission {
    pub fn new(cfg: OverloadConfig) -> Self {
        let tenant_cap = cfg
            .tenant_share
            .map(|s| ((cfg.max_inflight as f64 * s).ceil() as isize).max(1))
            .unwrap_or(isize::MAX);
        Admission {
            slots: Arc::new(Semaphore::new(cfg.max_inflight)),
            waiting: AtomicUsize::new(0),
            tenants: Inflight::new(),
            tenant_cap,
            shed: AtomicU64::new(0),
            cfg,
        }
    }

    pub fn inflight(&self) -> usize {
        self.cfg.max_inflight - self.slots.available_permits()
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(Relaxed)
    }

    /// `Retry-After` for a shed request: the queue timeout, at least a second.
    pub fn retry_after_secs(&self) -> u64 {
        crate::scim::error::retry_after_secs(self.cfg.queue_timeout)
    }

    /// The fast path: a free slot, taken without waiting. `None` means call [`Self::admit`].
    pub fn try_admit(&self, tenant: Option<u64>) -> Option<Permit> {
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        Some(self.granted(slot, tenant))
    }

    pub async fn admit(&self, tenant: Option<u64>) -> Result<Permit, Shed> {
        let r = self.admit_inner(tenant).await;
        if r.is_err() {
            self.shed.fetch_add(1, Relaxed);
        }
        r
    }

    async fn admit_inner(&self, tenant: Option<u64>) -> Result<Permit, Shed> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(self.granted(slot, tenant));
        }
        if let Some(t) = tenant {
            let (_peek, held) = self.tenants.incr(t, 0);
            if held >= self.tenant_cap {
                return Err(Shed::TenantShare);
            }
        }
        if self.waiting.fetch_add(1, Relaxed) >= self.cfg.queue {
            self.waiting.fetch_sub(1, Relaxed);
            return Err(Shed::QueueFull);
        }
        let r = tokio::time::timeout(self.cfg.queue_timeout, self.slots.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Relaxed);
        match r {
            Ok(Ok(slot)) => Ok(self.granted(slot, tenant)),
            _ => Err(Shed::QueueTimeout),
        }
    }

    fn granted(&self, slot: OwnedSemaphorePermit, tenant: Option<u64>) -> Permit {
        Permit {
            _slot: slot,
            _tenant: tenant
                .filter(|_| self.tenant_cap != isize::MAX)
                .map(|t| self.tenants.incr(t, 1).0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adm(max: usize, queue: usize, ms: u64, share: Option<f64>) -> Arc<Admission> {
        Arc::new(Admission::new(OverloadConfig {
            max_inflight: max,
            queue,
            queue_timeout: Duration::from_millis(ms),
            tenant_share: share,
        }))
    }

    #[tokio::test]
    async fn full_pool_queues_then_sheds() {
        let a = adm(2, 1, 50, None);
        let p1 = a.admit(None).await.unwrap();
        let _p2 = a.admit(None).await.unwrap();
        assert_eq!(a.inflight(), 2);
        // One may wait; it times out because nothing frees a slot.
        assert_eq!(a.admit(None).await.err(), Some(Shed::QueueTimeout));
        // While one waits, the next finds the queue full at once.
        let a2 = a.clone();
        let waiter = tokio::spawn(async move { a2.admit(None).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(a.waiting(), 1);
        assert_eq!(a.admit(None).await.err(), Some(Shed::QueueFull));
        drop(p1);
        assert!(waiter.await.unwrap(), "a freed slot goes to the queued request");
        assert_eq!(a.shed.load(Relaxed), 2);
    }

    #[tokio::test]
    async fn a_tenant_over_its_share_is_shed_while_others_may_queue() {
        let a = adm(4, 10, 50, Some(0.5));
        let _held: Vec<Permit> = futures_join(&a, Some(1), 2).await;
        let _other: Vec<Permit> = futures_join(&a, Some(2), 2).await;
        assert_eq!(a.admit(Some(1)).await.err(), Some(Shed::TenantShare));
        assert_eq!(a.admit(Some(3)).await.err(), Some(Shed::QueueTimeout), "others queue");
    }

    #[tokio::test]
    async fn share_only_applies_when_the_pool_is_full() {
        let a = adm(4, 0, 10, Some(0.25));
        let held: Vec<Permit> = futures_join(&a, Some(1), 4).await;
        assert_eq!(held.len(), 4, "work-conserving: free slots are never refused");
    }

    async fn futures_join(a: &Admission, t: Option<u64>, n: usize) -> Vec<Permit> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(a.admit(t).await.unwrap());
        }
        v
    }
}
