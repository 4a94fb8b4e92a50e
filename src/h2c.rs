//! Prior-knowledge h2c listeners without Pingora's stall. With `h2c` on, Pingora reads exactly
//! 24 bytes to look for the HTTP/2 preface, with no deadline: an HTTP/1 request shorter than
//! that (`GET / HTTP/1.0` and two line ends, as load-balancer probes send) waits forever, and
//! any client can hold a connection by sending a few bytes.
//!
//! [`H2cGate`] looks first: it reads until the bytes stop matching the preface (an HTTP/1
//! request diverges at its first byte), match all of it, or a deadline passes, puts them back,
//! and hands the connection to an HTTP/1 service or to the h2c one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::io::AsyncReadExt;

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    H2,
    H1,
    /// A preface that stopped half-way (or an error): nothing to serve.
    Close,
}

/// The decision for `seen` bytes so far; `None` while they could still become the preface.
pub fn classify(seen: &[u8], timed_out: bool) -> Option<Sniff> {
    if seen.len() >= PREFACE.len() {
        return Some(if seen[..PREFACE.len()] == PREFACE[..] {
            Sniff::H2
        } else {
            Sniff::H1
        });
    }
    if !PREFACE.starts_with(seen) {
        return Some(Sniff::H1);
    }
    match (timed_out, seen.is_empty()) {
        // Silent (an idle keep-alive connection): HTTP/1 handles it as on any h1 listener.
        (true, true) => Some(Sniff::H1),
        (true, false) => Some(Sniff::Close),
        (false, _) => None,
    }
}

/// Hands each connection of an h2c listener to `h1` or `h2c` (the same proxy, built twice:
/// Pingora's h2c switch is per service).
pub struct H2cGate<A> {
    pub h1: Arc<A>,
    pub h2c: Arc<A>,
    /// How long the first bytes may take.
    pub wait: Duration,
}

async fn sniff(stream: &mut L4Stream, wait: Duration) -> Sniff {
    let mut buf = [0u8; 24];
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + wait;
    let verdict = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf[n..])).await {
            Ok(Ok(0)) | Ok(Err(_)) => break Sniff::Close,
            Ok(Ok(k)) => {
                n += k;
                if let Some(v) = classify(&buf[..n], false) {
                    break v;
                }
            }
            Err(_) => break classify(&buf[..n], true).unwrap_or(Sniff::Close),
        }
    };
    stream.rewind(&buf[..n]);
    verdict
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for H2cGate<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        // Only Pingora's own TCP stream can be read and rewound here; anything else (none on a
        // plaintext listener today) gets Pingora's own handling.
        if !stream.as_any().is::<L4Stream>() {
            return self.h2c.process_new(stream, shutdown).await;
        }
        let Ok(mut l4) = stream.into_any().downcast::<L4Stream>() else {
            return None;
        };
        let verdict = sniff(&mut l4, self.wait).await;
        let stream: Stream = l4;
        match verdict {
            Sniff::H2 => self.h2c.process_new(stream, shutdown).await,
            Sniff::H1 => self.h1.process_new(stream, shutdown).await,
            Sniff::Close => None,
        }
    }

    async fn cleanup(&self) {
        self.h1.cleanup().await;
        self.h2c.cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_is_known_at_its_first_byte_and_h2_at_the_whole_preface() {
        assert_eq!(classify(b"G", false), Some(Sniff::H1));
        assert_eq!(classify(b"GET / HTTP/1.0\r\n\r\n", false), Some(Sniff::H1));
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n", false), None, "could still be h2");
        assert_eq!(classify(PREFACE, false), Some(Sniff::H2));
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nxx", false), Some(Sniff::H2));
        assert_eq!(classify(b"PRI * HTTP/1.1\r\n", false), Some(Sniff::H1));
    }

    #[test]
    fn a_deadline_closes_half_a_preface_and_hands_silence_to_http1() {
        assert_eq!(classify(b"PRI * HT", true), Some(Sniff::Close));
        assert_eq!(classify(b"", true), Some(Sniff::H1));
    }
}
