//! The byte pump between a client and its server: `copy_bidirectional` (which already turns
//! an EOF on one side into a `shutdown` — a FIN, or close_notify then FIN over TLS — on the
//! other, and flushes Pingora's buffered writer on the way) raced against an idle watchdog.
//!
//! Server shutdown is deliberately not in the race: like nginx stream and HAProxy, an
//! established connection drains through Pingora's grace period (`grace_period_seconds`, during
//! which a graceful upgrade's new process already takes new connections) and is closed when
//! the runtime stops. TCP has no request boundary to stop at, and cutting every connection at
//! the start of each reload would turn reloads into outages for long-lived clients.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use pingora::protocols::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Copy buffer per direction: 8 KiB (tokio's default) costs twice the syscalls on bulk
/// transfers; 32 KiB matches what HAProxy and nginx stream use by default on Linux.
const BUF: usize = 32 * 1024;

/// How a forwarded connection ended.
#[derive(Debug)]
pub enum End {
    /// Both directions reached EOF and were shut down.
    Closed,
    /// No byte either way for the idle timeout.
    Idle,
    /// A reset, a broken pipe, TLS without close_notify, …: a close, just not a clean one.
    Error(io::Error),
}

/// When a byte last moved, in milliseconds since the connection started (an atomic, so both
/// directions stamp it through shared references).
pub(super) struct Activity {
    /// Set once; `last_ms` counts from it.
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    pub(super) fn stamp(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Relaxed))
    }

    /// Resolves once nothing moved for `limit`. It sleeps to the deadline the last stamp
    /// implies and re-checks, so a busy connection costs one timer per `limit`, not per byte.
    pub(super) async fn idle(&self, limit: Duration) {
        loop {
            let deadline = self.last() + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One side of the connection: counts what is read from it and stamps activity on every byte
/// read or written (a write counts too, so a slow reader draining a large reply is not idle).
struct Tracked<'a> {
    io: &'a mut Stream,
    read: &'a AtomicU64,
    clock: &'a Activity,
}

impl AsyncRead for Tracked<'_> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut *self.io).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            self.read.fetch_add(n as u64, Relaxed);
            self.clock.stamp();
        }
        r
    }
}

impl AsyncWrite for Tracked<'_> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut *self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            if *n > 0 {
                self.clock.stamp();
            }
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }
}

/// Counters the pump adds to as bytes move.
pub struct Counters<'a> {
    pub to_server: &'a AtomicU64,
    pub to_client: &'a AtomicU64,
}

/// Forwards until both sides closed or the connection went idle.
pub async fn forward(client: &mut Stream, server: &mut Stream, idle: Duration, counters: Counters<'_>) -> End {
    let clock = Activity::new();
    let mut c = Tracked {
        io: client,
        read: counters.to_server,
        clock: &clock,
    };
    let mut s = Tracked {
        io: server,
        read: counters.to_client,
        clock: &clock,
    };
    tokio::select! {
        r = tokio::io::copy_bidirectional_with_sizes(&mut c, &mut s, BUF, BUF) => match r {
            Ok(_) => End::Closed,
            Err(e) => End::Error(e),
        },
        _ = clock.idle(idle) => End::Idle,
    }
}
