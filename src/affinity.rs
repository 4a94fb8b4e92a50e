//! Session affinity: a route's key (first present of its sources) picks a server on the pool's
//! Ketama ring, and after a write the key stays pinned to the server that took it for
//! `pin_after_write`, even if the ring's view changes meanwhile (a server recovering or
//! leaving) — as long as that server stays healthy. That is what makes read-your-writes hold
//! across replicas that do not share state.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use crate::keys::KeySource;

/// The ring key of a consistent pool whose route has no affinity policy: the tenant when there
/// is one, else the credential (one IdP job), else the client address.
pub const DEFAULT_KEY: [KeySource; 3] = [KeySource::Tenant, KeySource::Token, KeySource::ClientIp];

#[derive(Debug, Clone)]
pub struct Affinity {
    pub sources: Vec<KeySource>,
    pub pin_after_write: Option<Duration>,
}

/// Keys are already uniform 64-bit hashes: hashing them again is wasted work.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, (u32, u64), BuildHasherDefault<PassThrough>>;

const SHARDS: usize = 16;

/// key hash → (server index, pinned until in ms), sharded so concurrent requests rarely meet
/// on one lock, and bounded: a full shard first drops expired pins, then refuses new ones
/// (a lost pin only means falling back to the ring).
pub struct PinTable {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl PinTable {
    pub fn new(capacity: usize) -> Self {
        PinTable {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: (capacity / SHARDS).max(1),
        }
    }

    fn shard(&self, key: u64) -> &Mutex<Shard> {
        &self.shards[(key >> 60) as usize % SHARDS]
    }

    /// The pinned server index, if the pin is still live at `now_ms`.
    pub fn get(&self, key: u64, now_ms: u64) -> Option<usize> {
        let shard = self.shard(key).lock().ok()?;
        match shard.get(&key) {
            Some((idx, until)) if *until > now_ms => Some(*idx as usize),
            _ => None,
        }
    }

    pub fn put(&self, key: u64, index: usize, until_ms: u64, now_ms: u64) {
        let Ok(mut shard) = self.shard(key).lock() else { return };
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, (_, until)| *until > now_ms);
            if shard.len() >= self.per_shard {
                return;
            }
        }
        shard.insert(key, (index as u32, until_ms));
    }

    pub fn len(&self) -> usize {
        self.shards.iter().filter_map(|s| s.lock().ok().map(|s| s.len())).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_key_prefers_tenant_then_token_then_ip() {
        use crate::keys::{Facts, KeyHasher};
        let h = KeyHasher::new("s");
        let headers = http::HeaderMap::new();
        let facts = |tenant: Option<&'static [u8]>, auth: Option<&'static [u8]>| Facts {
            tenant,
            authorization: auth,
            client_ip: "10.1.2.3".parse().ok(),
            headers: &headers,
            id: None,
            class: crate::scim::EndpointClass::UsersRead,
            client_cert: None,
        };
        let only = |s: KeySource, f: &Facts<'_>| h.first_present(&[s], f);
        let all = facts(Some(b"acme"), Some(b"Bearer x"));
        assert_eq!(h.first_present(&DEFAULT_KEY, &all), only(KeySource::Tenant, &all));
        let no_tenant = facts(None, Some(b"Bearer x"));
        assert_eq!(
            h.first_present(&DEFAULT_KEY, &no_tenant),
            only(KeySource::Token, &no_tenant)
        );
        let empty_tenant = facts(Some(b""), None);
        assert_eq!(
            h.first_present(&DEFAULT_KEY, &empty_tenant),
            only(KeySource::ClientIp, &empty_tenant)
        );
    }

    #[test]
    fn pins_expire() {
        let t = PinTable::new(1024);
        t.put(42, 1, 1_000, 0);
        assert_eq!(t.get(42, 999), Some(1));
        assert_eq!(t.get(42, 1_000), None);
        assert_eq!(t.get(7, 0), None);
    }

    #[test]
    fn a_full_table_drops_expired_pins_first_and_stays_bounded() {
        let t = PinTable::new(SHARDS * 4);
        let key = |i: u64| i << 60 | i; // all in distinct shards... spread evenly
        for i in 0..(SHARDS as u64 * 4) {
            t.put(key(i % 16) + (i << 8), 0, 100, 0);
        }
        assert_eq!(t.len(), SHARDS * 4);
        // Everything is live: a new key in a full shard is refused, nothing grows.
        t.put(key(3) + (999 << 8), 0, 100, 50);
        assert_eq!(t.len(), SHARDS * 4);
        // Once expired, the shard makes room.
        t.put(key(3) + (999 << 8), 2, 500, 200);
        assert_eq!(t.get(key(3) + (999 << 8), 201), Some(2));
        assert!(t.len() < SHARDS * 4);
    }
}
