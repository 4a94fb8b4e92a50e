//! Getting a connected server for a client: select, hold a `max_conns` slot, connect; on a
//! connect failure, mark the server (passive ejection) and try the next one. No client byte
//! has been read yet, so unlike HTTP there is no replay question: every retry is safe.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

use pingora::connectors::TransportConnector;
use pingora::protocols::Stream;
use tokio::sync::OwnedSemaphorePermit;

use super::Stats;
use crate::upstream::{bit, Pool};

/// A connected server, with its `max_conns` slot held for the connection's life.
pub struct Upstream {
    pub stream: Stream,
    pub addr: SocketAddr,
    _slot: Option<OwnedSemaphorePermit>,
}

/// Connects to a server of `pool` for `key`, within `retries + 1` attempts. The peer is the
/// pool's own template, so a TLS pool's SNI, verification, trust anchors and client
/// certificate apply here exactly as they do to HTTP requests.
pub async fn connect(pool: &Pool, connector: &TransportConnector, key: &[u8], st: &Stats) -> Option<Upstream> {
    let mut tried = 0u64;
    for _ in 0..pool.config.retries.saturating_add(1) {
        let Ok(pick) = pool.select(key, tried) else {
            log::warn!(
                "listener {}: no healthy server left in upstream {}; closing the client",
                st.name,
                pool.name()
            );
            return None;
        };
        let Some((pick, slot)) = pool.take_slot(pick, key, tried).await else {
            log::warn!(
                "listener {}: server {} of upstream {} stayed at its max_conns for {:?}; closing the client",
                st.name,
                pick.addr,
                pool.name(),
                pool.config.conn_wait
            );
            return None;
        };
        tried |= bit(pick.index);
        let peer = pool.peer(pick);
        match connector.new_stream(&*peer).await {
            Ok(stream) => {
                pool.success(pick.index);
                return Some(Upstream {
                    stream,
                    addr: pick.addr,
                    _slot: slot,
                });
            }
            Err(e) => {
                st.connect_failures.fetch_add(1, Relaxed);
                pool.failure(pick.index);
                log::warn!("listener {}: cannot connect to {}: {e}", st.name, pick.addr);
            }
        }
    }
    None
}
