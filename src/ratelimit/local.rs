//! The per-process GCRA limiter: `governor`'s keyed limiter with state snapshots, so each
//! decision also says how much burst is left and exactly when the next request fits.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::{Decision, Rate};

type Keyed<C> = RateLimiter<u64, DefaultKeyedStateStore<u64>, C, StateInformationMiddleware>;

pub struct LocalGcra<C: Clock + Clone = DefaultClock> {
    limiter: Keyed<C>,
    clock: C,
}

fn quota(rate: Rate, burst: u32) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    let period = rate.period().max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl LocalGcra<DefaultClock> {
    pub fn new(rate: Rate, burst: u32) -> Self {
        Self::with_clock(rate, burst, DefaultClock::default())
    }
}

impl<C: Clock + Clone> LocalGcra<C> {
    pub fn with_clock(rate: Rate, burst: u32, clock: C) -> Self {
        let limiter = RateLimiter::dashmap_with_clock(quota(rate, burst), clock.clone())
            .with_middleware::<StateInformationMiddleware>();
        LocalGcra { limiter, clock }
    }

    pub fn check(&self, key: u64) -> Decision {
        match self.limiter.check_key(&key) {
            Ok(snapshot) => Decision {
                allowed: true,
                retry_after: Duration::ZERO,
                remaining: snapshot.remaining_burst_capacity(),
            },
            Err(not_until) => Decision {
                allowed: false,
                retry_after: not_until.wait_time_from(self.clock.now()),
                remaining: 0,
            },
        }
    }

    /// Drops keys whose state has fully replenished (they carry no information).
    pub fn evict_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    pub fn keys(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limiter(rate: &str, burst: u32) -> (LocalGcra<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (
            LocalGcra::with_clock(Rate::parse(rate).unwrap(), burst, clock.clone()),
            clock,
        )
    }

    #[test]
    fn burst_then_sustained_rate_with_exact_retry_after() {
        let (l, clock) = limiter("10/m", 3);
        let seen: Vec<(bool, u32)> = (0..4).map(|_| l.check(1)).map(|d| (d.allowed, d.remaining)).collect();
        assert_eq!(seen, [(true, 2), (true, 1), (true, 0), (false, 0)]);
        let refused = l.check(1);
        assert_eq!(refused.retry_after, Duration::from_secs(6), "one period at 10/m");
        assert_eq!(refused.retry_after_secs(), 6);
        clock.advance(Duration::from_millis(2500));
        let d = l.check(1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(3500));
        assert_eq!(d.retry_after_secs(), 4, "rounded up");
        clock.advance(Duration::from_millis(3500));
        assert!(l.check(1).allowed, "admitted exactly when Retry-After said");
        assert!(!l.check(1).allowed);
    }

    #[test]
    fn keys_are_independent() {
        let (l, _) = limiter("1/s", 1);
        assert!(l.check(1).allowed);
        assert!(!l.check(1).allowed);
        assert!(l.check(2).allowed, "another tenant has its own budget");
    }

    #[test]
    fn idle_keys_are_evicted() {
        let (l, clock) = limiter("100/s", 5);
        for k in 0..10_000u64 {
            l.check(k);
        }
        assert_eq!(l.keys(), 10_000);
        clock.advance(Duration::from_secs(1));
        l.evict_idle();
        assert_eq!(l.keys(), 0, "fully replenished keys are dropped");
    }
}
