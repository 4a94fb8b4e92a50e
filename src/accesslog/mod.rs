//! The JSON access log: one object per request (JSON Lines), to a file or standard output.
//!
//! - [`line`]: the record and its hand-written JSON encoding (fixed field order).
//! - [`redact`]: what of the query may be logged (credentials never; SCIM filter values not).
//! - [`writer`]: the bounded queue and the std thread that owns the file.
//!
//! The request path encodes a line and hands it over without waiting: when the writer falls
//! behind, lines are dropped and counted (`scimitar_access_log_dropped_total`). `SIGUSR1`
//! ([`crate::shutdown`] owns the signals) calls [`reopen`], for logrotate's `create` +
//! `postrotate kill -USR1`; the exit path calls [`flush_and_stop`].

pub mod line;
pub mod redact;
pub mod writer;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub use line::{encode, RateLimit, Record, FIELDS, LINE_CAPACITY};
use writer::{FileSink, Sink, Stdout, Writer};

/// Lines held for the writer by default (≈ 10 MB of typical lines).
pub const DEFAULT_QUEUE: usize = 16_384;
/// How long shutdown waits for queued lines to be written.
pub const STOP_LIMIT: Duration = Duration::from_secs(2);

/// The `access_log` config section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub destination: Destination,
    /// Lines that may wait for the writer; more are dropped.
    pub queue: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    /// An absolute path (made so when the config is read, since a daemon changes directory).
    File(PathBuf),
}

static LOG: OnceLock<Writer> = OnceLock::new();

/// Opens the destination and sets up the writer (its thread starts with the first line).
/// Once per process; the log's settings do not change on reload.
pub fn init(cfg: &AccessLogConfig) -> Result<(), String> {
    let sink: Box<dyn Sink> = match &cfg.destination {
        Destination::Stdout => Box::new(Stdout),
        Destination::File(p) => Box::new(
            FileSink::open(p.clone())
                .map_err(|e| format!("access_log.path: cannot open {} for appending: {e}", p.display()))?,
        ),
    };
    let dropped = crate::metrics::get().map(|m| m.access_log_dropped.clone());
    let w = Writer::new(sink, cfg.queue, Default::default(), dropped);
    LOG.set(w)
        .map_err(|_| "access_log: the access log is already set up".to_string())
}

/// Whether lines are wanted at all (so the request path can skip building them).
pub fn enabled() -> bool {
    LOG.get().is_some()
}

/// Hands one finished line to the writer; never blocks.
pub fn log(line: Vec<u8>) {
    if let Some(w) = LOG.get() {
        w.log(line);
    }
}

/// Reopens the file before the next write (what SIGUSR1 does).
pub fn reopen() {
    if let Some(w) = LOG.get() {
        w.reopen();
    }
}

/// Writes out what is queued and stops the writer, within [`STOP_LIMIT`]. For the shutdown
/// path; safe to call more than once, and without an access log. Returns whether every queued
/// line was written.
pub fn flush_and_stop() -> bool {
    LOG.get().is_none_or(|w| w.flush_and_stop(STOP_LIMIT))
}
