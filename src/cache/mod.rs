//! A response cache for the reads SCIM clients repeat: discovery documents and
//! `GET /Users/{id}` / `GET /Groups/{id}`.
//!
//! Why it cannot leak or go stale the ways operators fear:
//! - The key is a 128-bit keyed hash of the route, the credential (`Authorization`), `Host`,
//!   the tenant header, path and query, `Accept` and `Accept-Encoding`; an entry stores its
//!   full key and a lookup compares it, so one tenant never gets another's answer.
//! - Lists, filters and `.search` are never cached ([`rules::lookup`]).
//! - Every write through the proxy bumps generation counters for what it can change
//!   ([`rules::invalidates`]) when it starts and again when it ends; an entry records the
//!   counters it was filled under and is dead once any moved. A read that overlapped a write
//!   is therefore either not stored or dead on arrival.
//! - Writes that bypass this proxy are seen after the route's TTL at most.
//!
//! Storage is Pingora's TinyUFO (lock-free, weighted by size); counters are a fixed array
//! indexed by hash, so they never grow and a collision only invalidates more.

pub mod rules;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::http::ResponseHeader;
use siphasher::sip::SipHasher13;
use siphasher::sip128::{Hasher128, SipHasher13 as Sip128};
use std::hash::Hasher;
use tinyufo::TinyUfo;

pub use rules::{Kind, RouteCache, Scope, Scopes};

/// The top-level `cache` section: the store's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub max_size: u64,
    pub max_entry: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_size: 64 << 20,
            max_entry: 256 << 10,
        }
    }
}

const SLOTS: usize = 1 << 14;
/// Weight unit for TinyUFO (its weights are u16).
const UNIT: usize = 1024;

/// Generation counters read when an entry was filled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deps {
    slots: [u32; 3],
    gens: [u64; 3],
    n: u8,
}

/// A stored answer.
#[derive(Debug)]
pub struct Entry {
    key: u128,
    /// The answer's header as stored: status 200, hop-by-hop fields and the request id removed,
    /// `Content-Length` set.
    pub header: ResponseHeader,
    pub body: Bytes,
    pub stored: Instant,
    expires: Instant,
    deps: Deps,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stores: AtomicU64,
    pub seeded: AtomicU64,
    pub not_stored: AtomicU64,
    pub invalidations: AtomicU64,
}

/// What a cache key is made of, borrowed from the request.
pub struct KeyParts<'a> {
    pub route: usize,
    pub authorization: Option<&'a [u8]>,
    pub host: Option<&'a [u8]>,
    pub tenant_header: Option<&'a [u8]>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub accept: Option<&'a [u8]>,
    pub accept_encoding: Option<&'a [u8]>,
    /// The route's `key_headers` (credentials other than `Authorization`, e.g. `X-API-Key`),
    /// looked up in `headers`.
    pub key_headers: &'a [http::HeaderName],
    pub headers: Option<&'a http::HeaderMap>,
    /// The verified client certificate's fingerprint (mTLS): a credential like a token.
    pub client_cert: Option<&'a [u8]>,
}

impl KeyParts<'_> {
    fn key_header(&self, name: &http::HeaderName) -> Option<&[u8]> {
        self.headers?.get(name).map(|v| v.as_bytes())
    }

    /// Whether the request carries a credential the key includes.
    pub fn has_credential(&self) -> bool {
        self.authorization.is_some()
            || self.client_cert.is_some()
            || self.key_headers.iter().any(|n| self.key_header(n).is_some())
    }
}

pub struct Cache {
    store: TinyUfo<u64, Arc<Entry>>,
    gens: Box<[AtomicU64]>,
    k0: u64,
    k1: u64,
    pub config: CacheConfig,
    pub stats: Stats,
}

impl Deps {
    /// Sets the first counter's expected value (a write's own resource after its final bump).
    pub fn set_first(&mut self, gen: u64) {
        self.gens[0] = gen;
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("config", &self.config).finish()
    }
}

impl Cache {
    /// `keys`: a pair derived from the config's `key_secret` (see [`crate::keys::KeyHasher::derive`]).
    pub fn new(config: CacheConfig, keys: (u64, u64)) -> Self {
        let units = (config.max_size as usize / UNIT).max(1);
        // TinyUFO sizes its admission sketch by an expected entry count; SCIM resources are ~1–4 KB.
        let estimated = (config.max_size as usize / 2048).clamp(64, 1 << 20);
        Cache {
            store: TinyUfo::new(units, estimated),
            gens: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            k0: keys.0,
            k1: keys.1,
            config,
            stats: Stats::default(),
        }
    }

    pub fn key(&self, p: &KeyParts<'_>) -> u128 {
        let mut h = Sip128::new_with_keys(self.k0, self.k1);
        h.write_usize(p.route);
        // Each part is length-prefixed (with a marker for "absent") so parts cannot run together.
        let fixed = [
            p.authorization,
            p.host,
            p.tenant_header,
            Some(p.path.as_bytes()),
            p.query.map(str::as_bytes),
            p.accept,
            p.accept_encoding,
            p.client_cert,
        ];
        let extra = p.key_headers.iter().map(|n| p.key_header(n));
        for part in fixed.into_iter().chain(extra) {
            match part {
                Some(b) => {
                    h.write_usize(b.len());
                    h.write(b);
                }
                None => h.write_usize(usize::MAX),
            }
        }
        h.finish128().as_u128()
    }

    /// The counter slot for a scope in a tenant. Tenants and ids are percent-decoded and
    /// compared case-insensitively here, so every spelling of one resource shares its counter
    /// (two resources sharing one only invalidates more).
    pub fn slot(&self, tenant: &[u8], scope: Scope, id: &[u8]) -> u32 {
        let mut h = SipHasher13::new_with_keys(self.k1, self.k0);
        feed_folded(&mut h, tenant);
        match scope {
            Scope::Resource(t) => {
                h.write_u8(1);
                h.write_u8(t);
                feed_folded(&mut h, id);
            }
            Scope::Family(t) => {
                h.write_u8(2);
                h.write_u8(t);
            }
            Scope::Tenant => h.write_u8(3),
        }
        (h.finish() as usize % SLOTS) as u32
    }

    pub fn slots(&self, tenant: &[u8], scopes: Scopes, id: &[u8]) -> ([u32; 3], u8) {
        let mut out = [0u32; 3];
        let mut n = 0u8;
        for (o, s) in out.iter_mut().zip(scopes.iter()) {
            *o = self.slot(tenant, s, id);
            n += 1;
        }
        (out, n)
    }

    fn gen(&self, slot: u32) -> u64 {
        self.gens.get(slot as usize).map_or(0, |g| g.load(Relaxed))
    }

    /// The counters' current values, to tag a fill with.
    pub fn snapshot(&self, slots: [u32; 3], n: u8) -> Deps {
        let mut d = Deps { slots, gens: [0; 3], n };
        for (g, s) in d.gens.iter_mut().zip(&slots).take(n as usize) {
            *g = self.gen(*s);
        }
        d
    }

    pub fn still_valid(&self, d: &Deps) -> bool {
        (0..d.n as usize).all(|i| self.gen(d.slots[i]) == d.gens[i])
    }

    /// Marks everything depending on these slots stale; returns the new value of the first.
    pub fn bump(&self, slots: [u32; 3], n: u8) -> u64 {
        self.stats.invalidations.fetch_add(1, Relaxed);
        let mut first = 0;
        for (i, s) in slots.iter().take(n as usize).enumerate() {
            if let Some(g) = self.gens.get(*s as usize) {
                let v = g.fetch_add(1, Relaxed) + 1;
                if i == 0 {
                    first = v;
                }
            }
        }
        first
    }

    /// The end-of-write bump for a write that may seed the cache: succeeds (and bumps) only if
    /// no other write touched the resource since this one's start bump left it at `seen`.
    pub fn bump_if_unchanged(&self, slot: u32, seen: u64) -> bool {
        self.gens
            .get(slot as usize)
            .is_some_and(|g| g.compare_exchange(seen, seen + 1, Relaxed, Relaxed).is_ok())
    }

    /// A live entry for `key`, if any.
    pub fn get(&self, key: u128, now: Instant) -> Option<Arc<Entry>> {
        let hit = self
            .store
            .get(&(key as u64))
            .filter(|e| e.key == key && now < e.expires && self.still_valid(&e.deps));
        let counter = if hit.is_some() {
            &self.stats.hits
        } else {
            &self.stats.misses
        };
        counter.fetch_add(1, Relaxed);
        hit
    }

    /// Stores an answer unless its dependencies moved since `deps` was taken.
    pub fn put(&self, key: u128, mut header: ResponseHeader, body: Bytes, ttl: Duration, deps: Deps) -> bool {
        if body.len() as u64 > self.config.max_entry
            || !self.still_valid(&deps)
            || prepare(&mut header, body.len()).is_err()
        {
            self.stats.not_stored.fetch_add(1, Relaxed);
            return false;
        }
        let now = Instant::now();
        let weight = (body.len() + 512).div_ceil(UNIT).min(u16::MAX as usize) as u16;
        let entry = Arc::new(Entry {
            key,
            header,
            body,
            stored: now,
            expires: now + ttl,
            deps,
        });
        // force_put: a reader waiting on this fill should find it, even if TinyLFU would
        // rather keep an older entry.
        self.store.force_put(key as u64, entry, weight);
        self.stats.stores.fetch_add(1, Relaxed);
        true
    }
}

/// Percent-decoded, ASCII-lower-cased bytes, then a terminator.
fn feed_folded(h: &mut SipHasher13, bytes: &[u8]) {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let decoded = match (
            b,
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                i += 3;
                hi << 4 | lo
            }
            _ => {
                i += 1;
                b
            }
        };
        h.write_u8(decoded.to_ascii_lowercase());
    }
    h.write_u8(0xff);
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "x-request-id",
];

/// Turns an upstream answer's header into the stored form.
fn prepare(h: &mut ResponseHeader, len: usize) -> pingora::Result<()> {
    // Headers the upstream declared hop-by-hop in `Connection` go too.
    let listed: Vec<http::HeaderName> = h
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|n| http::HeaderName::from_bytes(n.trim_ascii()).ok())
        .collect();
    for name in &listed {
        h.remove_header(name);
    }
    for name in HOP_BY_HOP {
        h.remove_header(name);
    }
    if h.status == http::StatusCode::CREATED {
        // A created resource is stored as the GET of it would answer.
        h.remove_header("location");
        h.set_status(200)?;
    }
    h.set_version(http::Version::HTTP_11);
    h.set_content_length(len)
}

#[cfg(test)]
mod tests;
