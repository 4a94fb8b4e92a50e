//! Prior-knowledge h2c listeners without Pingora's stall. With `h2c` on, Pingora reads exactly
//! 24 bytes to look for the HTTP/2 preface, with no deadline: an HTTP/1 request shorter than
//! that (`GET / HTTP/1.0` and two line ends, as load-balancer probes send) waits forever, and
//! any client can hold a connection by sending a few bytes.
//!
//! [`sniff`] looks first: it reads until the bytes stop matching the preface (an HTTP/1
//! request diverges at its first byte), match all of it, or a deadline passes, and puts them
//! back; the listener's [`crate::inbound::Gate`] then hands the connection to HTTP/1 or h2c.

use std::time::Duration;

use pingora::protocols::l4::stream::Stream as L4Stream;
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

pub async fn sniff(stream: &mut L4Stream, wait: Duration) -> Sniff {
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
