//! Rate limits: named GCRA policies (`rate: 600/m`, `burst: 180`) keyed on request sources,
//! applied per route. Locally each policy is a `governor` keyed limiter; with
//! `store: redis` the decision is one atomic Lua script on a shared Redis, falling back to the
//! local limiter (logged and counted) while Redis is unreachable.

mod local;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::keys::KeySource;
pub use local::LocalGcra;
pub use redis::{RedisConfig, RedisStore};

/// `count` requests per `window`, e.g. `600/m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub window: Duration,
}

impl Rate {
    /// Parses `20/s`, `600/m`, `1000/h`, also `5/10s`.
    pub fn parse(s: &str) -> Result<Rate, String> {
        let (n, w) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not a rate; write e.g. `20/s`, `600/m`"))?;
        let count: u32 = n
            .trim()
            .parse()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| format!("`{n}` in `{s}` must be a whole number above 0"))?;
        let w = w.trim();
        let window = match w {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => {
                crate::config::units::parse_duration(w).map_err(|e| format!("window of `{s}`: {e}; or use s, m, h"))?
            }
        };
        if window.is_zero() {
            return Err(format!("`{s}` has an empty window"));
        }
        Ok(Rate { count, window })
    }

    /// Time between two requests at the sustained rate (GCRA's emission interval).
    pub fn period(&self) -> Duration {
        self.window / self.count
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub key: Vec<KeySource>,
    pub rate: Rate,
    pub burst: u32,
    /// Endpoint classes this policy counts (bitmask; 0 = all).
    pub classes: u16,
}

/// One limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Until the next request would be allowed (zero when allowed).
    pub retry_after: Duration,
    /// Requests left in the burst after this one.
    pub remaining: u32,
}

impl Decision {
    /// Whole seconds for `Retry-After`, rounded up so a client that waits exactly that long
    /// is admitted.
    pub fn retry_after_secs(&self) -> u64 {
        crate::scim::error::retry_after_secs(self.retry_after)
    }
}

/// The IETF httpapi `RateLimit-Policy` item for a policy.
pub fn policy_item(p: &Policy) -> String {
    format!("\"{}\";q={};w={}", p.name, p.rate.count, p.rate.window.as_secs().max(1))
}

/// The `RateLimit` item: `r` requests left, `t` seconds until the burst is whole again.
pub fn limit_item(p: &Policy, d: &Decision) -> String {
    let mut s = String::new();
    write_limit_item(&mut s, p, d);
    s
}

/// Written by hand rather than with `write!`: this runs on every limited request.
pub fn write_limit_item(out: &mut String, p: &Policy, d: &Decision) {
    let used = p.burst.saturating_sub(d.remaining);
    let t = (p.rate.period() * used).as_secs_f64().ceil() as u64;
    out.push('"');
    out.push_str(&p.name);
    out.push_str("\";r=");
    push_u64(out, u64::from(d.remaining));
    out.push_str(";t=");
    push_u64(out, t);
}

fn push_u64(out: &mut String, n: u64) {
    for d in crate::text::decimal(n, &mut [0; 20]) {
        out.push(char::from(*d));
    }
}

pub struct PolicyState {
    pub policy: Policy,
    pub local: LocalGcra,
    /// This policy's `RateLimit-Policy` item, built once.
    pub item: String,
    /// Its refusals (`scimitar_rejected_requests_total{reason="rate_limit"}`); `None` when
    /// metrics are off.
    pub rejected: Option<prometheus::IntCounter>,
}

/// Every policy of the config, and the shared store when there is one.
pub struct Limiter {
    /// Shared with the next config's limiter when a reload leaves the policy unchanged.
    pub policies: Vec<Arc<PolicyState>>,
    pub redis: Option<Arc<RedisStore>>,
}

impl PolicyState {
    pub fn new(policy: Policy) -> Self {
        PolicyState {
            local: LocalGcra::new(policy.rate, policy.burst),
            item: policy_item(&policy),
            rejected: crate::metrics::get().and_then(|m| m.rate_limited(&policy.name).ok()),
            policy,
        }
    }
}

impl Limiter {
    pub fn new(policies: Vec<Policy>, redis: Option<Arc<RedisStore>>) -> Self {
        Limiter {
            policies: policies.into_iter().map(|p| Arc::new(PolicyState::new(p))).collect(),
            redis,
        }
    }

    pub async fn check(&self, index: usize, key: u64) -> Option<Decision> {
        let state = self.policies.get(index)?;
        if let Some(r) = &self.redis {
            if let Some(d) = r.check(&state.policy, key).await {
                return Some(d);
            }
        }
        Some(state.local.check(key))
    }
}

/// Evicts idle limiter keys so memory stays bounded with millions of distinct keys, for the
/// policies of the config serving now.
pub struct Housekeeping {
    pub live: Arc<crate::runtime::Live>,
    pub every: Duration,
}

#[async_trait]
impl BackgroundService for Housekeeping {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut swapped = self.live.swapped.subscribe();
        let mut tick = tokio::time::interval(self.every);
        // Connect to the shared store at start-up (and after a reload, which may bring a new
        // one) rather than on the first decision, so the first requests count fleet-wide.
        let connect = || {
            if let Some(r) = self.live.load().limiter.redis.as_ref().filter(|r| !r.is_up()) {
                r.connect();
            }
        };
        connect();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    for p in &self.live.load().limiter.policies {
                        p.local.evict_idle();
                    }
                }
                r = swapped.changed() => match r {
                    Ok(()) => connect(),
                    Err(_) => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(Rate::parse("20/s").unwrap().period(), Duration::from_millis(50));
        assert_eq!(Rate::parse("600/m").unwrap().period(), Duration::from_millis(100));
        assert_eq!(Rate::parse("10/m").unwrap().period(), Duration::from_secs(6));
        assert_eq!(Rate::parse("5/10s").unwrap().period(), Duration::from_secs(2));
        assert!(Rate::parse("20").unwrap_err().contains("not a rate"));
        assert!(Rate::parse("0/s").unwrap_err().contains("above 0"));
        assert!(Rate::parse("5/fortnight").is_err());
    }

    #[test]
    fn retry_after_rounds_up() {
        let d = |ms| Decision {
            allowed: false,
            retry_after: Duration::from_millis(ms),
            remaining: 0,
        };
        assert_eq!(d(1).retry_after_secs(), 1);
        assert_eq!(d(1000).retry_after_secs(), 1);
        assert_eq!(d(1001).retry_after_secs(), 2);
        assert_eq!(d(5999).retry_after_secs(), 6);
        assert_eq!(d(0).retry_after_secs(), 1, "never tell a client to retry at once");
    }

    #[test]
    fn header_items_follow_the_draft() {
        let p = Policy {
            name: "tenant-writes".into(),
            key: vec![KeySource::Tenant],
            rate: Rate::parse("600/m").unwrap(),
            burst: 180,
            classes: 0,
        };
        assert_eq!(policy_item(&p), "\"tenant-writes\";q=600;w=60");
        let d = Decision {
            allowed: true,
            retry_after: Duration::ZERO,
            remaining: 170,
        };
        assert_eq!(limit_item(&p, &d), "\"tenant-writes\";r=170;t=1");
        let full = Decision { remaining: 180, ..d };
        assert_eq!(limit_item(&p, &full), "\"tenant-writes\";r=180;t=0");
        let empty = Decision { remaining: 0, ..d };
        assert_eq!(limit_item(&p, &empty), "\"tenant-writes\";r=0;t=18");
        let slow = Policy {
            rate: Rate::parse("1/h").unwrap(),
            burst: 100_000,
            ..p
        };
        assert_eq!(limit_item(&slow, &empty), "\"tenant-writes\";r=0;t=360000000");
    }
}
