//! The reloadable part of the proxy: routes, pools, policies, cache and keys, built from a
//! [`Config`] into one immutable [`Runtime`] snapshot and published through [`Live`].
//!
//! A request takes one snapshot when it starts (`Live::load_full`, an `Arc` clone) and keeps it
//! to the end, so it finishes on the config it started with even if a reload lands meanwhile.
//! A reload builds the next snapshot *next to* the current one, carrying over state for what
//! did not change (an unchanged pool keeps its health, ejections, pins and overload queue; an
//! unchanged policy keeps its counters; an unchanged cache keeps its entries), then swaps it in.

use std::fmt::Debug;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::cache::Cache;
use crate::config::{Config, PoolConfig, Tenancy};
use crate::keys::KeyHasher;
use crate::ratelimit::{Limiter, PolicyState, RedisStore};
use crate::routing::Router;
use crate::upstream::Pool;

/// Everything a request reads from the config, as one snapshot.
pub struct Runtime {
    pub router: Router,
    pub pools: Vec<Arc<Pool>>,
    pub tenancy: Tenancy,
    pub limiter: Arc<Limiter>,
    pub hasher: KeyHasher,
    /// The response cache, when any route caches.
    pub cache: Option<Arc<Cache>>,
    /// Headers that carry a verified client certificate upstream; whatever a client sends in
    /// them is removed from every request.
    pub client_cert_headers: Vec<http::HeaderName>,
    /// Timeouts and size limits for HTTP clients (read by each new request head).
    pub client: crate::config::client::ClientLimits,
    /// Each route's edge credential series, indexed like the routes (`None`: no `auth`).
    pub auth_counters: Vec<Option<crate::edgeauth::Counters>>,
    /// Which load of the file this is, and what it contained.
    pub loaded: Loaded,
    /// The file as loaded (after `${ENV}` expansion), for the admin `GET /config`.
    pub source: Arc<serde_yaml::Value>,
    /// What the next reload compares against (kept as built, before moves into the runtime).
    pub(crate) basis: Basis,
}

/// Identity of the loaded configuration, for `/status.json` and metrics.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    /// 1 for the file read at start, +1 per successful reload.
    pub generation: u64,
    /// SipHash of the file's bytes (as read, before `${ENV}` expansion): two instances with
    /// the same hash run the same file.
    pub hash: u64,
    pub at_unix: i64,
}

impl Loaded {
    /// The hash as `/status.json` and reload reports show it.
    pub fn hash_hex(&self) -> String {
        format!("{:016x}", self.hash)
    }
}

/// The parts of the previous config a reload needs to decide what carries over.
pub(crate) struct Basis {
    routes: String,
    pool_names: Vec<String>,
    cache: String,
    key_secret: String,
    redis: String,
}

/// Whether two config values are the same. The config types hold Pingora and OpenSSL types
/// without `PartialEq`; their derived `Debug` output covers every field, and this runs only
/// on a reload, never per request.
pub(crate) fn same<T: Debug + ?Sized>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// The snapshot the proxy serves from, swapped atomically by a reload.
pub struct Live {
    current: ArcSwap<Runtime>,
    /// Bumped after each swap, so background services (health checks, limiter housekeeping)
    /// follow the new pools and policies.
    pub swapped: tokio::sync::watch::Sender<u64>,
}

impl Live {
    pub fn new(rt: Runtime) -> Arc<Self> {
        let (swapped, _) = tokio::sync::watch::channel(rt.loaded.generation);
        Arc::new(Live {
            current: ArcSwap::from_pointee(rt),
            swapped,
        })
    }

    /// The current snapshot, to keep for a whole request.
    #[inline]
    pub fn load_full(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// The current snapshot, for a short look (no await while holding it).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Runtime>> {
        self.current.load()
    }

    pub fn store(&self, rt: Runtime) {
        let generation = rt.loaded.generation;
        self.current.store(Arc::new(rt));
        self.swapped.send_replace(generation);
    }
}

/// Builds pools in a setup runtime (static discovery resolves once, before anything serves).
async fn build_pool(cfg: &PoolConfig, prev: Option<&Runtime>) -> Result<Arc<Pool>, String> {
    if let Some(old) = prev.and_then(|r| r.pools.iter().find(|p| p.name() == cfg.name)) {
        if same(&old.config, cfg) {
            // Unchanged: the very same pool, with its health, ejections, pins and queue.
            return Ok(old.clone());
        }
        if let Some(p) = Pool::rebuild(cfg.clone(), old) {
            return Ok(Arc::new(p));
        }
    }
    let pool = Pool::build(cfg.clone())
        .await
        .map_err(|e| format!("upstreams.{}: {e}", cfg.name))?;
    if let Some(old) = prev.and_then(|r| r.pools.iter().find(|p| p.name() == cfg.name)) {
        pool.settle_from(old).await;
    }
    Ok(Arc::new(pool))
}

/// Builds the snapshot for `cfg`, carrying state over from `prev` where nothing changed.
/// `cfg` keeps the listener, admin and server sections (only the caller's start-up path
/// uses them); everything reloadable is cloned out of it.
pub async fn build(cfg: &Config, prev: Option<&Runtime>, loaded: Loaded) -> Result<Runtime, String> {
    let mut pools = Vec::with_capacity(cfg.upstreams.len());
    for u in &cfg.upstreams {
        pools.push(build_pool(u, prev).await?);
    }
    let basis = Basis {
        routes: format!("{:?}", cfg.routes),
        pool_names: cfg.upstreams.iter().map(|u| u.name.clone()).collect(),
        cache: format!("{:?}", cfg.cache),
        key_secret: cfg.key_secret.clone(),
        redis: format!("{:?}", cfg.rate_limits.redis),
    };
    let old = prev.map(|r| (&r.basis, r));

    let redis = match (&cfg.rate_limits.redis, old) {
        (None, _) => None,
        (Some(_), Some((b, r))) if b.redis == basis.redis => r.limiter.redis.clone(),
        (Some(c), _) => Some(Arc::new(RedisStore::new(c.clone())?)),
    };
    let policies = cfg
        .rate_limits
        .policies
        .iter()
        .map(|p| {
            // A policy whose definition (and key secret) did not change keeps its counters.
            let kept = old.and_then(|(b, r)| {
                let s = r.limiter.policies.iter().find(|s| s.policy.name == p.name)?;
                (b.key_secret == basis.key_secret && same(&s.policy, p)).then(|| s.clone())
            });
            kept.unwrap_or_else(|| Arc::new(PolicyState::new(p.clone())))
        })
        .collect();
    let limiter = Arc::new(Limiter { policies, redis });

    let hasher = KeyHasher::new(&cfg.key_secret);
    // Cache keys hold route indices and the key secret: entries carry over only when the
    // routes (and the pools they name), the secret and the cache bounds are all unchanged.
    let cache = match (&cfg.cache, old) {
        (None, _) => None,
        (Some(_), Some((b, r)))
            if b.routes == basis.routes
                && b.pool_names == basis.pool_names
                && b.cache == basis.cache
                && b.key_secret == basis.key_secret =>
        {
            r.cache.clone()
        }
        (Some(c), _) => Some(Arc::new(Cache::new(c.clone(), hasher.derive(0xca)))),
    };

    // Client-certificate headers are removed from every request on every listener (a client on
    // a plaintext listener must not be able to claim an identity either). Listeners are fixed
    // at start, so the headers they write are too: a reload that renames one (which needs a
    // restart to apply) must not stop stripping the name still in use. The set only grows.
    let mut client_cert_headers: Vec<http::HeaderName> =
        prev.map(|r| r.client_cert_headers.clone()).unwrap_or_default();
    for h in cfg
        .listeners
        .iter()
        .filter_map(|l| l.tls.as_ref()?.forward_client_cert.clone())
    {
        // Listeners that share a header name strip it once.
        if !client_cert_headers.contains(&h) {
            client_cert_headers.push(h);
        }
    }
    Ok(Runtime {
        router: Router::new(cfg.routes.clone()),
        auth_counters: crate::edgeauth::Counters::for_routes(&cfg.routes),
        pools,
        tenancy: cfg.tenancy.clone(),
        limiter,
        hasher,
        cache,
        client_cert_headers,
        client: cfg.client,
        loaded,
        source: cfg.source.clone(),
        basis,
    })
}

/// Runs [`build`] to completion outside any async context (start-up, the SIGHUP thread).
pub fn build_blocking(cfg: &Config, prev: Option<&Runtime>, loaded: Loaded) -> Result<Runtime, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start setup runtime: {e}"))?;
    rt.block_on(build(cfg, prev, loaded))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
listeners: [{name: main, address: "127.0.0.1:18080"}]
upstreams:
  a:
    servers: ["127.0.0.1:18001", "127.0.0.1:18002"]
    health_check: {path: /scim/v2/ServiceProviderConfig, interval: 1s}
  b:
    servers: ["127.0.0.1:18003"]
rate_limits:
  policies:
    per-tenant: {key: tenant, rate: 10/s, burst: 5}
    per-token: {key: token, rate: 10/s, burst: 5}
routes:
  - {base_path: "/{tenant}/scim/v2", upstream: a, cache: {discovery: 5m}, rate_limits: [per-tenant, per-token]}
"#;

    fn build_from(text: &str, prev: Option<&Runtime>) -> Runtime {
        let cfg = crate::config::from_str_with_env(text, |_| None).expect("valid config");
        let loaded = Loaded {
            generation: prev.map_or(1, |p| p.loaded.generation + 1),
            hash: cfg.hash,
            at_unix: 0,
        };
        build_blocking(&cfg, prev, loaded).expect("runtime")
    }

    #[test]
    fn a_reload_keeps_the_state_of_what_did_not_change() {
        let first = build_from(BASE, None);
        let same = build_from(BASE, Some(&first));
        assert!(
            Arc::ptr_eq(&first.pools[0], &same.pools[0]),
            "unchanged pool: the same pool"
        );
        assert!(Arc::ptr_eq(&first.limiter.policies[0], &same.limiter.policies[0]));
        assert!(Arc::ptr_eq(first.cache.as_ref().unwrap(), same.cache.as_ref().unwrap()));

        // A timeout change rebuilds the pool but keeps its servers' health state and pins, and
        // its exported counters continue.
        same.pools[0]
            .slot_waits
            .fetch_add(3, std::sync::atomic::Ordering::Relaxed);
        let timeouts = BASE.replace("interval: 1s}", "interval: 1s}\n    timeouts: {read: 5s}");
        let t = build_from(&timeouts, Some(&same));
        assert_eq!(t.pools[0].slot_waits.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert!(!Arc::ptr_eq(&same.pools[0], &t.pools[0]));
        assert!(Arc::ptr_eq(&same.pools[0].servers, &t.pools[0].servers));
        assert!(Arc::ptr_eq(&same.pools[0].pins, &t.pools[0].pins));
        assert!(Arc::ptr_eq(&same.pools[1], &t.pools[1]), "the other pool is untouched");

        // New servers: a fresh pool. A changed policy: fresh counters; the other one keeps its.
        let servers = timeouts
            .replace("\"127.0.0.1:18002\"]", "\"127.0.0.1:18004\"]")
            .replace("{key: tenant, rate: 10/s", "{key: tenant, rate: 20/s");
        let s = build_from(&servers, Some(&t));
        assert!(!Arc::ptr_eq(&t.pools[0].servers, &s.pools[0].servers));
        assert!(!Arc::ptr_eq(&t.limiter.policies[0], &s.limiter.policies[0]));
        assert!(Arc::ptr_eq(&t.limiter.policies[1], &s.limiter.policies[1]));
        assert!(
            Arc::ptr_eq(t.cache.as_ref().unwrap(), s.cache.as_ref().unwrap()),
            "routes, pools and secret unchanged: cached answers stay valid"
        );

        // Routes that change may map a cached key to another route: the cache starts empty.
        let routes = servers.replace("upstream: a, cache", "upstream: b, cache");
        let r = build_from(&routes, Some(&s));
        assert!(!Arc::ptr_eq(s.cache.as_ref().unwrap(), r.cache.as_ref().unwrap()));
        // A new key secret re-keys every limit: counters start over.
        let secret = build_from(&format!("{routes}key_secret: other\n"), Some(&r));
        assert!(!Arc::ptr_eq(&r.limiter.policies[1], &secret.limiter.policies[1]));
        assert_eq!(secret.loaded.generation, 6);
    }

    #[test]
    fn new_upstream_client_certificate_files_rebuild_the_pool() {
        use crate::tls::testing::{Ca, Leaf};
        let dir = std::env::temp_dir().join(format!("scimitar-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Ca::new("upstream test CA").unwrap();
        let ca_path = ca.write_ca(&dir, "ca.pem").unwrap();
        let (cert, key) = ca.write_leaf(&dir, "client", &Leaf::client("scimitar", &[])).unwrap();
        let text = BASE.replace(
            "    servers: [\"127.0.0.1:18003\"]",
            &format!(
                "    servers: [\"127.0.0.1:18003\"]\n    tls: {{sni: scim.test, ca: {}, cert: {}, key: {}}}",
                ca_path.display(),
                cert.display(),
                key.display()
            ),
        );
        let first = build_from(&text, None);
        let same = build_from(&text, Some(&first));
        assert!(Arc::ptr_eq(&first.pools[1], &same.pools[1]));
        // Same paths, new contents (a renewed client certificate): the pool must pick it up.
        ca.write_leaf(&dir, "client", &Leaf::client("scimitar-renewed", &[]))
            .unwrap();
        let renewed = build_from(&text, Some(&same));
        assert!(
            !Arc::ptr_eq(&same.pools[1], &renewed.pools[1]),
            "renewed certificate ignored"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
