//! Certificate rotation without a restart. Pingora freezes a listener's acceptor at start-up,
//! so what changes lives behind the resolver's `ArcSwap`: a watcher polls the files' stamps
//! and, when one moves (or on an explicit trigger), loads the whole set again and swaps it in.
//! A set that does not load — a half-written file, a key that does not fit — is refused with
//! the reason logged, and handshakes keep the previous certificates.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::certs::{now_unix, Material};
use super::ListenerTls;

/// (modified time, status-change time, size, inode) of a file (following symlinks, so a
/// Kubernetes `..data` flip shows), or `None` when it cannot be read. The change time catches
/// in-place rewrites that keep the modified time (`cp -p`, `rsync -t --inplace`).
type Stamp = Option<(i128, i128, u64, u64)>;

fn stamp(p: &PathBuf) -> Stamp {
    let m = std::fs::metadata(p).ok()?;
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    Some((
        ns(m.mtime(), m.mtime_nsec()),
        ns(m.ctime(), m.ctime_nsec()),
        m.len(),
        m.ino(),
    ))
}

#[derive(Debug, Default, Clone)]
pub struct RotationState {
    stamps: Vec<Stamp>,
    /// Successful loads after the first one.
    pub reloads: u64,
    pub last_reload_unix: Option<i64>,
    /// Why the latest attempt was refused, until one succeeds.
    pub last_error: Option<String>,
}

/// One TLS listener's files and what became of the last look at them.
pub struct Watched {
    pub listener: String,
    pub tls: Arc<ListenerTls>,
    files: Vec<PathBuf>,
    pub state: Mutex<RotationState>,
}

/// What one check did for one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Reloaded,
    Refused(String),
}

impl Watched {
    pub fn new(listener: &str, tls: Arc<ListenerTls>) -> Self {
        let files = Material::files(&tls.certificates, tls.client_ca.as_deref());
        let stamps = files.iter().map(stamp).collect();
        Watched {
            listener: listener.to_string(),
            tls,
            files,
            state: Mutex::new(RotationState {
                stamps,
                ..Default::default()
            }),
        }
    }

    /// Reloads when a file changed since the last look, or always with `force`.
    pub fn check(&self, force: bool) -> Outcome {
        let stamps: Vec<Stamp> = self.files.iter().map(stamp).collect();
        let Ok(mut st) = self.state.lock() else {
            return Outcome::Unchanged;
        };
        if !force && stamps == st.stamps {
            return Outcome::Unchanged;
        }
        // Remember these stamps either way: a refused set is retried when a file moves again,
        // not logged every tick.
        st.stamps = stamps;
        match Material::load(&self.tls.certificates, self.tls.client_ca.as_deref()) {
            Ok(m) => {
                self.tls.material.store(Arc::new(m));
                st.reloads += 1;
                st.last_reload_unix = Some(now_unix());
                st.last_error = None;
                log::info!("listener {}: TLS certificates reloaded", self.listener);
                Outcome::Reloaded
            }
            Err(e) => {
                log::warn!(
                    "listener {}: new TLS files refused, still serving the previous certificates: {e}",
                    self.listener
                );
                st.last_error = Some(e.clone());
                Outcome::Refused(e)
            }
        }
    }
}

/// Every TLS listener's rotation; shared by the watcher service and the admin trigger.
#[derive(Default)]
pub struct Rotation {
    pub listeners: Vec<Arc<Watched>>,
}

impl Rotation {
    /// Checks every listener; `force` reloads even unchanged files (the explicit trigger).
    pub fn check_all(&self, force: bool) -> Vec<(String, Outcome)> {
        self.listeners
            .iter()
            .map(|w| (w.listener.clone(), w.check(force)))
            .collect()
    }

    /// The shortest watch interval, if any listener watches its files.
    fn every(&self) -> Option<Duration> {
        self.listeners.iter().filter_map(|w| w.tls.watch).min()
    }
}

/// Polls the files of listeners that watch them.
pub struct Watcher(pub Arc<Rotation>);

#[async_trait]
impl BackgroundService for Watcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(every) = self.0.every() else { return };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    for w in self.0.listeners.iter().filter(|w| w.tls.watch.is_some()) {
                        w.check(false);
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
