//! Passive ejection: a server that fails `max_fails` times in a row (connect errors, timeouts,
//! optionally 502/503/504) leaves rotation for `eject_for`, like nginx's `max_fails`/
//! `fail_timeout`. Lock-free: two atomics per server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;

static EPOCH: Lazy<Instant> = Lazy::new(Instant::now);

/// Milliseconds since process start; `0` is reserved for "not ejected".
pub fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64 + 1
}

#[derive(Debug)]
pub struct ServerState {
    pub addr: SocketAddr,
    fails: AtomicU32,
    ejected_until: AtomicU64,
    picks: AtomicU64,
    /// Times this server was ejected (for the status page; written only on an ejection).
    ejections: AtomicU64,
    /// Active health, mirrored from the health checker's observer (servers start healthy, as
    /// in Pingora).
    healthy: AtomicBool,
}

impl ServerState {
    pub fn new(addr: SocketAddr) -> Self {
        ServerState {
            addr,
            fails: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            picks: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
        }
    }

    /// Takes over the passive record (failures, ejection, counters) of the same server in the
    /// pool a reload replaced. Active health is measured again instead (see
    /// `Pool::settle_health`): a copied "down" would never hear the checker's "up".
    pub fn carry_from(&self, old: &ServerState) {
        self.fails.store(old.fails.load(Relaxed), Relaxed);
        self.ejected_until.store(old.ejected_until.load(Relaxed), Relaxed);
        self.picks.store(old.picks.load(Relaxed), Relaxed);
        self.ejections.store(old.ejections.load(Relaxed), Relaxed);
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    /// Mirrors the active check. A server that comes back up (the check saw it down, then up
    /// again) also leaves a passive ejection: it was ejected for the failures that took it
    /// down, and keeping it out for the rest of `eject_for` after it proved healthy only piles
    /// its share onto the others (seen in a rolling restart: one replica took every tenant).
    pub fn set_healthy(&self, healthy: bool) {
        let was = self.healthy.swap(healthy, Relaxed);
        if healthy && !was && self.ejected_until.load(Relaxed) != 0 {
            self.fails.store(0, Relaxed);
            self.ejected_until.store(0, Relaxed);
        }
    }

    /// Whether this server was ever ejected (so the clock need not be read otherwise).
    pub fn was_ejected(&self) -> bool {
        self.ejected_until.load(Relaxed) != 0
    }

    /// Healthy on the active check and not passively ejected.
    pub fn in_rotation(&self, now: u64) -> bool {
        self.is_healthy() && !self.is_ejected(now)
    }

    pub fn is_ejected(&self, now: u64) -> bool {
        let until = self.ejected_until.load(Relaxed);
        until != 0 && now < until
    }

    /// Counts a failure; returns true when this failure ejected the server.
    pub fn failure(&self, max_fails: u32, eject_for: Duration) -> bool {
        if max_fails == 0 {
            return false;
        }
        // Requests that were already in flight when the server was ejected fail too; they
        // neither extend the ejection nor count as another one.
        if self.was_ejected() && self.is_ejected(now_ms()) {
            return false;
        }
        let n = self.fails.fetch_add(1, Relaxed) + 1;
        if n >= max_fails {
            self.fails.store(0, Relaxed);
            let until = now_ms() + eject_for.as_millis() as u64;
            self.ejected_until.store(until, Relaxed);
            self.ejections.fetch_add(1, Relaxed);
            return true;
        }
        false
    }

    pub fn success(&self) {
        // Read before writing so the common case does not bounce the cache line between cores.
        if self.fails.load(Relaxed) != 0 {
            self.fails.store(0, Relaxed);
        }
    }

    pub fn selected(&self) {
        self.picks.fetch_add(1, Relaxed);
    }

    pub fn picks(&self) -> u64 {
        self.picks.load(Relaxed)
    }

    pub fn ejections(&self) -> u64 {
        self.ejections.load(Relaxed)
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.fails.load(Relaxed)
    }

    /// Milliseconds of ejection left, 0 when in rotation.
    pub fn ejected_for_ms(&self) -> u64 {
        self.ejected_until.load(Relaxed).saturating_sub(now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejects_after_consecutive_failures_only() {
        let s = ServerState::new("127.0.0.1:1".parse().unwrap());
        assert!(!s.failure(3, Duration::from_secs(10)));
        assert!(!s.failure(3, Duration::from_secs(10)));
        s.success();
        assert!(!s.failure(3, Duration::from_secs(10)), "a success resets the count");
        assert!(!s.failure(3, Duration::from_secs(10)));
        assert!(s.failure(3, Duration::from_secs(10)));
        assert!(s.is_ejected(now_ms()));
        assert_eq!(s.ejections(), 1);
        assert!(!s.is_ejected(now_ms() + 10_001), "ejection ends by itself");
    }

    #[test]
    fn failures_during_an_ejection_do_not_eject_again() {
        let s = ServerState::new("127.0.0.1:1".parse().unwrap());
        let d = Duration::from_secs(10);
        assert!(!s.failure(2, d) && s.failure(2, d), "the second failure ejects");
        let until = s.ejected_for_ms();
        for _ in 0..5 {
            assert!(!s.failure(2, d), "in-flight failures after the ejection");
        }
        assert_eq!(s.ejections(), 1);
        assert!(s.ejected_for_ms() <= until, "not extended");
    }

    #[test]
    fn coming_back_up_on_the_active_check_ends_an_ejection() {
        let s = ServerState::new("127.0.0.1:1".parse().unwrap());
        let d = Duration::from_secs(10);
        assert!(s.failure(1, d));
        s.set_healthy(true);
        assert!(s.is_ejected(now_ms()), "a check that never saw it down changes nothing");
        s.set_healthy(false);
        s.set_healthy(true);
        assert!(!s.is_ejected(now_ms()), "down then up again: back in rotation");
        assert_eq!(s.ejections(), 1, "the count of ejections stays");
    }

    #[test]
    fn zero_max_fails_disables_ejection() {
        let s = ServerState::new("127.0.0.1:1".parse().unwrap());
        for _ in 0..100 {
            assert!(!s.failure(0, Duration::from_secs(10)));
        }
        assert!(!s.is_ejected(now_ms()));
    }
}
