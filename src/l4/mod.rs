//! Layer-4 listeners (`protocol: tcp`): raw TCP — or TLS terminated here — forwarded byte for
//! byte to a pool, with the HTTP side's pools, selection, health checks and passive ejection.
//!
//! - [`connect`]: pick a server (client IP as the key) and connect, trying the next server on
//!   a connect failure; nothing has been sent yet, so any retry is safe.
//! - [`forward`]: the bidirectional copy with half-close and idle timeout.
//! - [`stats`]: per-listener counters for `/status`.
//!
//! Pingora 0.9.1 has no L4 proxy, only [`ServerApp`]: one `process_new` per accepted (and, with
//! `tls`, already terminated) connection, which owns it until it returns.

pub mod connect;
pub mod forward;
pub mod stats;

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::connectors::TransportConnector;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use pingora::services::listening::Service;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Listener;
use crate::runtime::Live;
use crate::tls::listener::HandshakeStats;
use crate::upstream::Pool;
use forward::{Counters, End};
pub use stats::Stats;

/// A tcp listener's service and the counters it shares with the admin page.
pub type Built = (Service<TcpProxy>, Arc<Stats>);

/// One `protocol: tcp` listener's forwarding logic.
pub struct TcpProxy {
    /// The pool as started; a reload that changes it is followed through `live` by name.
    pool: Arc<Pool>,
    live: Arc<Live>,
    idle_timeout: Duration,
    /// `max_connections`: a permit per forwarded connection.
    limit: Option<Arc<Semaphore>>,
    /// How long a connection waits for a `max_connections` permit.
    queue_timeout: Duration,
    connector: TransportConnector,
    pub stats: Arc<Stats>,
}

/// The service for a `protocol: tcp` listener (plaintext or TLS-terminating), and its
/// counters for the admin page. `handshakes` is the listener's entry in the edge's TLS
/// counters (shown with its certificates). `Ok(None)` for any other listener.
pub fn service(l: &Listener, live: &Arc<Live>, handshakes: Arc<HandshakeStats>) -> Result<Option<Built>, String> {
    let Some(tcp) = &l.tcp else {
        return Ok(None);
    };
    let pool = live
        .load()
        .pools
        .get(tcp.upstream)
        .cloned()
        .ok_or_else(|| format!("listener {}: its upstream pool is missing", l.name))?;
    let handshakes = l.tls.as_ref().map(|_| handshakes);
    let stats = Arc::new(Stats {
        name: l.name.clone(),
        address: l.address.clone(),
        pool: pool.name().to_string(),
        tls: handshakes.clone(),
        max_connections: tcp.max_connections,
        ..Stats::default()
    });
    let app = TcpProxy {
        queue_timeout: tcp.queue_timeout.unwrap_or(pool.config.conn_wait),
        pool,
        live: live.clone(),
        idle_timeout: tcp.idle_timeout,
        limit: tcp.max_connections.map(|n| Arc::new(Semaphore::new(n))),
        connector: TransportConnector::new(None),
        stats: stats.clone(),
    };
    let mut svc = Service::new(format!("tcp {}", l.name), app);
    match (&l.tls, handshakes) {
        (Some(tls), Some(hs)) => {
            // No ALPN: the bytes inside are not HTTP, and a client offering some must not be
            // told one was chosen.
            let settings = crate::tls::listener::settings(&l.name, tls, None, hs)?;
            svc.add_tls_with_settings(&l.address, None, settings);
        }
        _ => svc.add_tcp(&l.address),
    }
    Ok(Some((svc, stats)))
}

/// The selection key: the client's IP octets, so a consistent pool keeps a client on one
/// server and a round-robin pool ignores it. Empty when the address is unknown (a Unix
/// socket), which a consistent pool maps to one fixed server.
fn client_key(s: &Stream) -> ([u8; 16], usize) {
    let mut key = [0u8; 16];
    let ip = s
        .get_socket_digest()
        .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
    let len = match ip {
        Some(IpAddr::V4(v4)) => {
            key[..4].copy_from_slice(&v4.octets());
            4
        }
        Some(IpAddr::V6(v6)) => {
            key.copy_from_slice(&v6.octets());
            16
        }
        None => 0,
    };
    (key, len)
}

impl TcpProxy {
    /// A `max_connections` slot, waiting up to `queue_timeout` for one; `Err(())` when the
    /// wait ran out or shutdown began (a queued client is better off reconnecting to the
    /// process that replaces this one). `Ok(None)` when the listener has no limit.
    async fn admit(&self, shutdown: &mut ShutdownWatch) -> Result<Option<OwnedSemaphorePermit>, ()> {
        let Some(sem) = &self.limit else {
            return Ok(None);
        };
        if let Ok(p) = sem.clone().try_acquire_owned() {
            return Ok(Some(p));
        }
        let _queued = stats::Gauge::up(&self.stats.queued);
        tokio::select! {
            r = tokio::time::timeout(self.queue_timeout, sem.clone().acquire_owned()) => match r {
                Ok(Ok(p)) => Ok(Some(p)),
                _ => Err(()),
            },
            _ = shutdown.changed() => Err(()),
        }
    }

    async fn serve(&self, mut client: Stream, mut shutdown: ShutdownWatch) {
        let st = &self.stats;
        // Up first and down last (on every return), so no moment of the connection escapes it.
        let _open = stats::Gauge::up(&st.open);
        st.accepted.fetch_add(1, Relaxed);
        let Ok(_listener_slot) = self.admit(&mut shutdown).await else {
            st.refused.fetch_add(1, Relaxed);
            log::warn!(
                "listener {}: at max_connections for {:?}; closing a client",
                st.name,
                self.queue_timeout
            );
            return;
        };
        let (key, len) = client_key(&client);
        // The pool of the config serving now (its health and ejections), by name.
        let current = self.live.load().pools.iter().find(|p| p.name() == st.pool).cloned();
        let pool = current.as_ref().unwrap_or(&self.pool);
        let Some(mut up) = connect::connect(pool, &self.connector, &key[..len], st).await else {
            st.no_server.fetch_add(1, Relaxed);
            return;
        };
        // Up before `forwarded` counts it: whoever sees it counted and `active` at 0 knows it ended.
        let _active = stats::Gauge::up(&st.active);
        st.forwarded.fetch_add(1, Relaxed);
        let counters = Counters {
            to_server: &st.bytes_to_server,
            to_client: &st.bytes_to_client,
        };
        match forward::forward(&mut client, &mut up.stream, self.idle_timeout, counters).await {
            End::Closed => {}
            End::Idle => {
                st.idle_closed.fetch_add(1, Relaxed);
                log::debug!(
                    "listener {}: closing a connection idle for {:?}",
                    st.name,
                    self.idle_timeout
                );
            }
            End::Error(e) => {
                st.errors.fetch_add(1, Relaxed);
                log::debug!("listener {}: connection to {} ended: {e}", st.name, up.addr);
            }
        }
    }
}

#[async_trait]
impl ServerApp for TcpProxy {
    async fn process_new(self: &Arc<Self>, client: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        self.serve(client, shutdown.clone()).await;
        // A forwarded connection is never handed back for reuse: its bytes belong to one server.
        None
    }
}

#[cfg(test)]
mod tests;
