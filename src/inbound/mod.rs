//! The client side of each HTTP listener, in front of Pingora's HTTP/1 handling: connection
//! caps, the request-head deadline, keep-alive idling, and refusing bad heads in SCIM.
//!
//! Pingora 0.9.1 times a request head per read, not as a whole (a byte a minute holds a
//! connection), never times out an idle keep-alive connection after its first request, has no
//! connection cap, and answers parser errors with an empty 400. So [`Gate`] reads each head
//! itself — against a whole-head deadline and size limits, judged by [`head::inspect`] — and
//! hands the bytes to Pingora's parser as a pre-read prefix (no copy); refusals are answered
//! here. Between requests it owns the keep-alive loop, so an idle connection is closed after
//! `client.keepalive_timeout`. HTTP/2 connections go to Pingora as they are (its own idle
//! timeout applies).
//!
//! - [`head`]: the pure verdict on a request head.

pub mod head;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use self::head::{Limits, Reason, Refusal, Verdict};
use crate::config::client::ClientLimits;
use crate::h2c::{sniff, Sniff};
use crate::runtime::Live;
use crate::scim::error::ScimError;

/// How long a refusal may take to write, and how long the connection then lingers reading
/// (so the client's unread bytes do not turn our answer into a reset).
const REFUSAL_WRITE: Duration = Duration::from_secs(2);
const LINGER: Duration = Duration::from_secs(1);
/// The first allocation for a head: most SCIM request heads (with a JWT bearer) fit.
const HEAD_BUF: usize = 4096;

/// One HTTP listener's client counters, for `/status.json` and `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    pub max_connections: Option<usize>,
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    /// Connections closed idle after `client.keepalive_timeout`.
    pub idle_closed: AtomicU64,
    /// Heads refused, by [`Reason`] (indexed by `Reason::index`).
    pub refused: [AtomicU64; Reason::ALL.len()],
}

impl Stats {
    pub fn new(max_connections: Option<usize>) -> Self {
        Stats {
            max_connections,
            ..Default::default()
        }
    }

    /// Counts a connection in, unless the listener is full.
    fn enter(self: &Arc<Self>) -> Option<Open> {
        let now = self.open.fetch_add(1, Relaxed) + 1;
        if self.max_connections.is_some_and(|m| now > m as u64) {
            self.open.fetch_sub(1, Relaxed);
            return None;
        }
        self.accepted.fetch_add(1, Relaxed);
        Some(Open(self.clone()))
    }

    fn refused(&self, r: Reason) {
        self.refused[r.index()].fetch_add(1, Relaxed);
    }
}

/// Holds a connection's place in [`Stats::open`] for as long as the connection lives.
struct Open(Arc<Stats>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// One HTTP listener as the gate knows it.
pub struct Port {
    /// The listener's address; a wildcard IP matches any local address on its port.
    pub addr: std::net::SocketAddr,
    pub stats: Arc<Stats>,
    /// Plaintext with `http2: true`: prior-knowledge HTTP/2 beside HTTP/1.
    pub h2c: bool,
}

impl Port {
    fn matches(&self, local: std::net::SocketAddr) -> bool {
        self.addr.port() == local.port() && (self.addr.ip().is_unspecified() || self.addr.ip() == local.ip())
    }
}

/// The HTTP listeners, as one Pingora service (one runtime of `server.threads` threads, as
/// before the gate): HTTP/1 through the head gate, HTTP/2 (ALPN, or prior knowledge on an h2c
/// listener) straight to Pingora. Each connection is counted against the listener it came in on.
pub struct Gate<A> {
    pub h1: Arc<A>,
    /// The h2c-enabled copy of the proxy, when any listener is h2c.
    pub h2c: Option<Arc<A>>,
    /// Longest an h2c listener waits for the first bytes to tell HTTP/2 from HTTP/1 (and never
    /// longer than `client.header_timeout`).
    pub h2c_wait: Duration,
    pub live: Arc<Live>,
    pub ports: Vec<Port>,
}

/// What reading a request head came to.
enum Read {
    Head(BytesMut),
    /// Nothing to answer: the client left, or we are stopping.
    Close,
    /// Nothing arrived within the wait.
    Idle,
    /// Refused; the instant its head began, for the access log.
    Refuse(Refusal, Instant),
}

impl<A: HttpServerApp + ServerApp + Send + Sync + 'static> Gate<A> {
    /// The listener this connection came in on.
    fn port(&self, stream: &Stream) -> Option<&Port> {
        let local = stream.get_socket_digest()?.local_addr()?.as_inet().copied();
        match local {
            Some(l) => self.ports.iter().find(|p| p.matches(l)),
            None => None,
        }
        .or_else(|| self.ports.first())
    }

    async fn serve_h1(&self, port: &Port, mut stream: Stream, shutdown: &ShutdownWatch, accepted: Instant) {
        let plaintext = stream.get_ssl_digest().is_none();
        let mut stop = shutdown.clone();
        let mut served = 0u32;
        loop {
            let limits = self.live.load().client;
            let first = served == 0;
            let read = read_head(&mut stream, &limits, plaintext, first, accepted, &mut stop).await;
            let buf = match read {
                Read::Head(b) => b,
                Read::Close => return,
                Read::Idle => {
                    port.stats.idle_closed.fetch_add(1, Relaxed);
                    return;
                }
                Read::Refuse(r, since) => {
                    port.stats.refused(r.reason);
                    log::debug!("client {}: {} {}", peer(&stream), r.reason.status(), r.detail);
                    answer(&mut stream, r, since).await;
                    return;
                }
            };
            served += 1;
            let mut session = ServerSession::new_http1(stream);
            if let ServerSession::H1(h1) = &mut session {
                h1.set_pipelined_prefix(buf);
            }
            // Pingora decides keep-alive from the request once parsed (and turns it off for a
            // stop); the last request `keepalive_requests` allows answers `Connection: close`.
            // The idle wait between requests is ours (`read_head`), not Pingora's.
            if served >= limits.keepalive_requests {
                session.set_keepalive_reuses_remaining(Some(0));
            }
            session.set_read_timeout(Some(limits.body_timeout));
            session.set_write_timeout(Some(limits.send_timeout));
            let Some(reused) = self.h1.process_new_http(session, shutdown).await else {
                return;
            };
            stream = reused.consume().0;
        }
    }
}

#[async_trait]
impl<A: HttpServerApp + ServerApp + Send + Sync + 'static> ServerApp for Gate<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let accepted = Instant::now();
        let port = self.port(&stream)?;
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        let Some(_open) = port.stats.enter() else {
            port.stats.refused(Reason::OverCapacity);
            if !h2 {
                let mut stream = stream;
                answer(
                    &mut stream,
                    Refusal {
                        reason: Reason::OverCapacity,
                        detail: "this listener is at its connection limit; retry shortly",
                    },
                    accepted,
                )
                .await;
            }
            return None;
        };
        if h2 {
            return self.h1.process_new(stream, shutdown).await;
        }
        let mut stream = stream;
        if let (true, Some(h2c)) = (port.h2c, &self.h2c) {
            // Only Pingora's own TCP stream can be read and rewound; h2c listeners have no TLS.
            if stream.as_any().is::<L4Stream>() {
                let Ok(mut l4) = stream.into_any().downcast::<L4Stream>() else {
                    return None;
                };
                let wait = self.h2c_wait.min(self.live.load().client.header_timeout);
                match sniff(&mut l4, wait).await {
                    Sniff::H2 => return h2c.process_new(l4, shutdown).await,
                    Sniff::H1 => stream = l4,
                    Sniff::Close => return None,
                }
            }
        }
        self.serve_h1(port, stream, shutdown, accepted).await;
        None
    }

    async fn cleanup(&self) {
        self.h1.cleanup().await;
        if let Some(h2c) = &self.h2c {
            h2c.cleanup().await;
        }
    }
}

/// Reads one request head. A connection's first head has `header_timeout` from accept; a
/// later one may idle for `keepalive_timeout` (a stop ends the wait), then has
/// `header_timeout` from its first byte.
async fn read_head(
    stream: &mut Stream,
    limits: &ClientLimits,
    plaintext: bool,
    first: bool,
    accepted: Instant,
    stop: &mut ShutdownWatch,
) -> Read {
    let judge = Limits {
        max_line: limits.max_request_line,
        max_head: limits.max_request_head,
        plaintext,
    };
    let mut buf = BytesMut::with_capacity(HEAD_BUF);
    let mut started = first;
    let mut began = if first { accepted } else { Instant::now() };
    let mut deadline = if first {
        accepted + limits.header_timeout
    } else {
        Instant::now() + limits.keepalive_timeout
    };
    loop {
        if buf.len() == buf.capacity() {
            // Bounded: `inspect` refuses a head past `max_head`, and a read adds at most this.
            buf.reserve(HEAD_BUF);
        }
        let before = buf.len();
        let n = tokio::select! {
            biased;
            r = stream.read_buf(&mut buf) => r,
            _ = tokio::time::sleep_until(deadline) => {
                // Silence is closed without an answer (as nginx does); a head begun and not
                // finished is told why.
                return if buf.is_empty() {
                    Read::Idle
                } else {
                    Read::Refuse(
                        Refusal {
                            reason: Reason::HeaderTimeout,
                            detail: "the request head did not arrive in time",
                        },
                        began,
                    )
                };
            }
            _ = stop.changed(), if !started => return Read::Close,
        };
        match n {
            Ok(0) | Err(_) => return Read::Close,
            Ok(_) => {}
        }
        if !started {
            started = true;
            began = Instant::now();
            deadline = began + limits.header_timeout;
        }
        match head::inspect(&buf, before, &judge) {
            Verdict::Partial => {}
            Verdict::Complete => return Read::Head(buf),
            Verdict::Refuse(r) => return Read::Refuse(r, began),
        }
    }
}

/// Writes a refusal as a SCIM error and closes, lingering briefly so the client reads it.
async fn answer(stream: &mut Stream, r: Refusal, since: Instant) {
    let status = r.reason.status();
    let mut err = ScimError::new(status, r.detail);
    if r.reason == Reason::OverCapacity {
        err = err.retry_after(1);
    }
    let body = err.body();
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let id = crate::proxy::request_id::generate();
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    out.extend_from_slice(b"Content-Type: application/scim+json\r\n");
    out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(b"Cache-Control: no-store\r\nConnection: close\r\nX-Request-Id: ");
    out.extend_from_slice(&id);
    out.extend_from_slice(b"\r\n");
    if let Some(s) = err.retry_after {
        out.extend_from_slice(format!("Retry-After: {s}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    log_refusal(stream, &r, &id, out.len(), since);
    // A refusal over capacity holds no place in `open`: it must not hold the descriptor long.
    let (write, linger) = if r.reason == Reason::OverCapacity {
        (Duration::from_millis(200), Duration::ZERO)
    } else {
        (REFUSAL_WRITE, LINGER)
    };
    let written = tokio::time::timeout(write, async {
        stream.write_all(&out).await?;
        stream.flush().await?;
        // On TLS this writes close_notify, which a client that stopped reading can stall.
        pingora::protocols::Shutdown::shutdown(&mut **stream).await;
        Ok::<(), std::io::Error>(())
    })
    .await;
    if !matches!(written, Ok(Ok(()))) || linger.is_zero() {
        return;
    }
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(linger, async {
        let mut total = 0usize;
        while total < 1 << 16 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// An access-log line for a refusal, so the log holds every answer the proxy gave. The head
/// was not accepted, so nothing of it (method, target, headers) is trusted enough to log.
fn log_refusal(stream: &Stream, r: &Refusal, id: &[u8], bytes_out: usize, since: Instant) {
    use crate::accesslog::line::{encode, RateLimit, Record};
    if !crate::accesslog::enabled() {
        return;
    }
    let ssl = stream.get_ssl_digest();
    let record = Record {
        unix_ms: crate::timefmt::unix_ms(std::time::SystemTime::now()),
        request_id: Some(id),
        client_ip: stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip())),
        method: "-",
        path: b"-",
        query: None,
        status: r.reason.status(),
        bytes_in: 0,
        bytes_out: bytes_out as u64,
        duration_us: since.elapsed().as_micros() as u64,
        upstream: None,
        backend: None,
        upstream_status: None,
        upstream_us: None,
        tenant: None,
        credential: None,
        endpoint: "-",
        operation: "-",
        attempts: 0,
        cache: "-",
        rate_limit: RateLimit::None,
        tls_version: ssl.as_ref().map(|t| &*t.version),
        sni: None,
        http_version: "-",
        user_agent: None,
        error: Some(r.reason.as_str()),
    };
    let mut line = Vec::with_capacity(320);
    encode(&record, &mut line);
    crate::accesslog::log(line);
}

fn peer(stream: &Stream) -> String {
    stream
        .get_socket_digest()
        .and_then(|d| d.peer_addr().map(|a| a.to_string()))
        .unwrap_or_else(|| "-".into())
}
