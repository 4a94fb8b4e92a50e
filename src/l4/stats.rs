//! Per-listener counters for `/status`: relaxed atomics bumped on the data path, read only by
//! the admin page, so no connection ever waits on a lock for them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::tls::listener::HandshakeStats;

#[derive(Debug, Default)]
pub struct Stats {
    pub name: String,
    pub address: String,
    pub pool: String,
    pub tls: Option<Arc<HandshakeStats>>,
    pub max_connections: Option<usize>,
    /// Connections this listener holds right now, from accept to close: queued for a
    /// `max_connections` slot, waiting for or connecting to a server, or forwarding. What a
    /// shutdown drain waits for (`active` misses those still being set up).
    pub open: AtomicU64,
    /// Connections being forwarded right now (not those waiting for a `max_connections` slot).
    pub active: AtomicU64,
    /// Connections waiting for a `max_connections` slot.
    pub queued: AtomicU64,
    pub accepted: AtomicU64,
    /// Connections that got a server and had their bytes forwarded.
    pub forwarded: AtomicU64,
    pub bytes_to_server: AtomicU64,
    pub bytes_to_client: AtomicU64,
    /// Connect attempts that failed (each one a server tried, so one client can count twice).
    pub connect_failures: AtomicU64,
    /// Clients closed because no server could be reached (every attempt failed, none healthy,
    /// or every server at its `max_conns` for the whole wait).
    pub no_server: AtomicU64,
    /// Clients closed because the listener stayed at `max_connections` for the whole wait.
    pub refused: AtomicU64,
    pub idle_closed: AtomicU64,
    /// Connections that ended on an I/O error (a reset, TLS without close_notify) instead of
    /// two clean EOFs.
    pub errors: AtomicU64,
}

impl Stats {
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "address": self.address,
            "pool": self.pool,
            "tls": self.tls.is_some(),
            "handshakes": self.tls.as_ref().map(|t| t.handshakes.load(Relaxed)),
            "max_connections": self.max_connections,
            "open": self.open.load(Relaxed),
            "active": self.active.load(Relaxed),
            "queued": self.queued.load(Relaxed),
            "accepted": self.accepted.load(Relaxed),
            "forwarded": self.forwarded.load(Relaxed),
            "bytes_to_server": self.bytes_to_server.load(Relaxed),
            "bytes_to_client": self.bytes_to_client.load(Relaxed),
            "connect_failures": self.connect_failures.load(Relaxed),
            "no_server": self.no_server.load(Relaxed),
            "refused": self.refused.load(Relaxed),
            "idle_closed": self.idle_closed.load(Relaxed),
            "errors": self.errors.load(Relaxed),
        })
    }
}

/// The `"l4"` list of `/status`.
pub fn status(all: &[Arc<Stats>]) -> serde_json::Value {
    serde_json::Value::Array(all.iter().map(|s| s.status()).collect())
}

/// Holds a gauge up for as long as it lives, so every exit path (errors included) brings it
/// back down.
pub struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    pub fn up(g: &'a AtomicU64) -> Self {
        g.fetch_add(1, Relaxed);
        Gauge(g)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}
