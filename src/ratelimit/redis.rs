//! Fleet-wide limits: one atomic GCRA script per decision on a shared Redis, using Redis's
//! clock so every instance agrees. When Redis is unreachable or slow the caller falls back to
//! its local limiter; the outage is logged once, counted, and Redis is tried again after a
//! short backoff, so shared limits resume by themselves.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Decision, Policy};
use crate::upstream::now_ms;

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    /// Longest a decision may wait for Redis before the local limiter answers instead.
    pub timeout: Duration,
    pub prefix: String,
    /// How long to use local limits after a Redis failure before trying Redis again.
    pub backoff: Duration,
}

/// GCRA with capacity `burst`: the theoretical arrival time (TAT) advances one emission
/// interval per admitted request; a request is refused when it would push TAT more than
/// `burst` intervals ahead of now. Times are microseconds from Redis `TIME`.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2]) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead > capacity then
  return {0, ahead - capacity, 0}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(ahead / 1000) + 1)
return {1, 0, math.floor((capacity - ahead) / interval)}
"#;

pub struct RedisStore {
    cfg: RedisConfig,
    /// `cfg.url` as the log shows it: the password (user part or `?pass=`) masked, since the
    /// error log is read by more people, and kept longer, than the config file.
    shown_url: String,
    client: redis::Client,
    script: redis::Script,
    conn: Mutex<Option<ConnectionManager>>,
    connecting: AtomicBool,
    up: AtomicBool,
    retry_at_ms: AtomicU64,
    /// Decisions made locally because Redis could not answer.
    pub fallbacks: AtomicU64,
    /// Decisions Redis made.
    pub shared: AtomicU64,
}

impl RedisStore {
    pub fn new(cfg: RedisConfig) -> Result<Self, String> {
        let client = redis::Client::open(cfg.url.as_str()).map_err(|e| format!("redis.url: {e}"))?;
        Ok(RedisStore {
            shown_url: crate::accesslog::redact::url(&cfg.url, "***").into_owned(),
            cfg,
            client,
            script: redis::Script::new(GCRA),
            conn: Mutex::new(None),
            connecting: AtomicBool::new(false),
            up: AtomicBool::new(true),
            retry_at_ms: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            shared: AtomicU64::new(0),
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed) && self.conn.lock().map(|c| c.is_some()).unwrap_or(false)
    }

    /// Opens the connection in the background; decisions meanwhile are local.
    pub fn connect(self: &std::sync::Arc<Self>) {
        if self.connecting.swap(true, Relaxed) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(this.cfg.timeout.max(Duration::from_millis(200))))
                .set_response_timeout(Some(this.cfg.timeout))
                .set_number_of_retries(1);
            let res = tokio::time::timeout(
                Duration::from_secs(2),
                ConnectionManager::new_with_config(this.client.clone(), cfg),
            )
            .await;
            match res {
                Ok(Ok(c)) => {
                    if let Ok(mut slot) = this.conn.lock() {
                        *slot = Some(c);
                    }
                }
                Ok(Err(e)) => this.down(&format!("connect: {e}")),
                Err(_) => this.down("connect: timed out"),
            }
            this.connecting.store(false, Relaxed);
        });
    }

    fn down(&self, why: &str) {
        self.retry_at_ms
            .store(now_ms() + self.cfg.backoff.as_millis() as u64, Relaxed);
        if self.up.swap(false, Relaxed) {
            log::warn!(
                "redis {}: {why}; rate limits fall back to local until it is back",
                self.shown_url
            );
        }
    }

    /// The shared decision, or `None` when the caller should decide locally.
    pub async fn check(self: &std::sync::Arc<Self>, p: &Policy, key: u64) -> Option<Decision> {
        let d = self.try_check(p, key).await;
        match d {
            Some(_) => self.shared.fetch_add(1, Relaxed),
            None => self.fallbacks.fetch_add(1, Relaxed),
        };
        d
    }

    async fn try_check(self: &std::sync::Arc<Self>, p: &Policy, key: u64) -> Option<Decision> {
        if now_ms() < self.retry_at_ms.load(Relaxed) {
            return None;
        }
        let conn = self.conn.lock().ok()?.clone();
        let Some(mut conn) = conn else {
            self.connect();
            return None;
        };
        let redis_key = format!("{}:{}:{key:016x}", self.cfg.prefix, p.name);
        let interval_us = p.rate.period().as_micros().max(1) as u64;
        let mut inv = self.script.key(redis_key);
        inv.arg(interval_us).arg(p.burst.max(1));
        let res: Result<redis::RedisResult<(i64, i64, i64)>, _> =
            tokio::time::timeout(self.cfg.timeout, inv.invoke_async(&mut conn)).await;
        match res {
            Ok(Ok((allowed, wait_us, remaining))) => {
                if !self.up.swap(true, Relaxed) {
                    log::warn!("redis {}: reachable again; shared rate limits resumed", self.shown_url);
                }
                Some(Decision {
                    allowed: allowed == 1,
                    retry_after: Duration::from_micros(wait_us.max(0) as u64),
                    remaining: remaining.clamp(0, i64::from(u32::MAX)) as u32,
                })
            }
            Ok(Err(e)) => {
                if let Ok(mut slot) = self.conn.lock() {
                    *slot = None;
                }
                self.down(&e.to_string());
                None
            }
            Err(_) => {
                self.down("no answer within redis.timeout");
                None
            }
        }
    }
}
