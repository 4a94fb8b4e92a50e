//! Signals and a stop that ends: scimitar owns every signal instead of Pingora's defaults.
//!
//! | signal | scimitar |
//! |---|---|
//! | SIGHUP | reload the config file ([`crate::reload`]); never kills the process |
//! | SIGUSR1 | reopen the access log (logrotate) |
//! | SIGTERM | stop accepting, let requests in flight finish, exit as soon as none is left or when `shutdown_timeout` runs out |
//! | SIGQUIT | binary upgrade: hand the listeners to the new process (`-u`), then drain as SIGTERM |
//! | SIGINT, or a second SIGTERM/SIGQUIT | exit at once |
//!
//! Why not Pingora's: with its defaults SIGTERM sleeps a 300 s grace period that nothing ends
//! early (a second signal is swallowed), SIGHUP has no handler so the OS default kills the
//! process, and its fast shutdown drops runtimes without telling the accept loops, which can
//! then spin on "context is being shutdown" errors (seen: 940 MB of log in ten seconds). Here
//! the process exits itself — after the drain, or at the deadline — before Pingora ever tears
//! runtimes down, and a watchdog makes the exit unconditional.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};

use crate::reload::Reloader;

/// Requests between `new_ctx` and the end of `logging`, on every HTTP service.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Counts one request in flight for as long as it lives (a field of the request context).
pub struct InFlight(());

impl InFlight {
    #[inline]
    pub fn start() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight(())
    }
}

impl Drop for InFlight {
    #[inline]
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// HTTP requests in flight right now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// What the signal thread needs to act on its own.
pub struct Hooks {
    pub reloader: Arc<Reloader>,
    /// The longest a graceful stop waits for requests (and layer-4 connections) in flight.
    pub timeout: Duration,
    /// Layer-4 connections open right now (they count as in flight for a graceful stop).
    pub l4_open: Box<dyn Fn() -> usize + Send + Sync>,
    /// Run once before the process exits (flush the access log); must be bounded.
    pub before_exit: Box<dyn Fn() + Send + Sync>,
    /// SIGUSR1.
    pub reopen_logs: Box<dyn Fn() + Send + Sync>,
}

/// Pingora's side: the shutdown kind our signal thread decided on.
pub struct Watch(tokio::sync::watch::Receiver<Option<Kind>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Terminate,
    Upgrade,
}

#[async_trait]
impl ShutdownSignalWatch for Watch {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.clone();
        let got = rx.wait_for(Option::is_some).await.map(|k| *k);
        let kind = match got {
            Ok(k) => k,
            // The signal thread is gone: nothing can ask for a stop any more.
            Err(_) => std::future::pending().await,
        };
        match kind {
            Some(Kind::Upgrade) => ShutdownSignal::GracefulUpgrade,
            _ => ShutdownSignal::GracefulTerminate,
        }
    }
}

static EXITING: AtomicBool = AtomicBool::new(false);

/// Flushes, logs and ends the process. Only the first caller runs the hooks; a watchdog ends
/// the process even if a hook hangs.
fn exit(hooks: &Hooks, code: i32, why: &str) -> ! {
    if !EXITING.swap(true, Ordering::SeqCst) {
        // The watchdog first: a log write to a stalled stderr or a stuck flush must not keep
        // the process up. It aborts rather than exits, as `exit` may already be running (and
        // hung) on this thread.
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_secs(3));
            std::process::abort();
        });
        log::info!("{why}; exiting");
        (hooks.before_exit)();
    }
    std::process::exit(code)
}

/// Waits for requests and layer-4 connections in flight to end (or the deadline), then exits.
/// Started once the listeners have stopped accepting.
fn drain(hooks: &Hooks, started: Instant) -> ! {
    let deadline = started + hooks.timeout;
    let mut quiet = 0;
    loop {
        let busy = in_flight() + (hooks.l4_open)();
        // Twice idle in a row: a request read just as the listeners closed gets counted.
        quiet = if busy == 0 { quiet + 1 } else { 0 };
        if quiet >= 2 {
            exit(hooks, 0, "graceful stop: nothing in flight");
        }
        if Instant::now() >= deadline {
            log::warn!(
                "graceful stop: shutdown_timeout ({:?}) ran out with {busy} request(s)/connection(s) in flight",
                hooks.timeout
            );
            exit(hooks, 0, "graceful stop: deadline");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Installs the handlers (before Pingora starts, so no signal finds the default action) and
/// returns what Pingora's main loop waits on, and the service that starts acting on them.
/// The threads start from that service, i.e. after `-d` has forked: threads do not survive a
/// fork, but the handlers and their queue do, so no signal is lost in between.
pub fn install(
    signals: Claimed,
    hooks: Hooks,
    phases: tokio::sync::broadcast::Receiver<pingora::server::ExecutionPhase>,
) -> (Watch, SignalService) {
    let signals = signals.0;
    let (tx, rx) = tokio::sync::watch::channel(None);
    let parts = Parts {
        signals,
        hooks,
        phases,
        tx,
    };
    (Watch(rx), SignalService(Mutex::new(Some(parts))))
}

/// Every signal scimitar handles, claimed from the OS; they queue until [`install`]'s threads
/// run.
pub struct Claimed(signal_hook::iterator::Signals);

/// Claims the signals first thing in `main`: before the config is read, before Pingora's
/// bootstrap (which, with `-u`, waits seconds for the old process's sockets), so a SIGHUP or
/// a logrotate SIGUSR1 at any moment of start-up is queued instead of killing the process.
pub fn claim() -> Result<Claimed, String> {
    signal_hook::iterator::Signals::new([SIGHUP, SIGUSR1, SIGTERM, SIGINT, SIGQUIT])
        .map(Claimed)
        .map_err(|e| format!("cannot install signal handlers: {e}"))
}

struct Parts {
    signals: signal_hook::iterator::Signals,
    hooks: Hooks,
    phases: tokio::sync::broadcast::Receiver<pingora::server::ExecutionPhase>,
    tx: tokio::sync::watch::Sender<Option<Kind>>,
}

/// Starts the signal and drain threads once Pingora runs (see [`install`]).
pub struct SignalService(Mutex<Option<Parts>>);

#[async_trait]
impl pingora::services::background::BackgroundService for SignalService {
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        let parts = self.0.lock().ok().and_then(|mut p| p.take());
        if let Some(p) = parts {
            if let Err(e) = spawn_threads(p) {
                log::error!("{e}; signals other than SIGKILL will not be handled");
            }
        }
    }
}

fn spawn_threads(parts: Parts) -> Result<(), String> {
    let Parts {
        mut signals,
        hooks,
        mut phases,
        tx,
    } = parts;
    let hooks = Arc::new(hooks);
    let stopping = AtomicBool::new(false);

    // The drain starts when Pingora has broadcast the stop (the listeners no longer accept):
    // right away for SIGTERM, after the hand-over for an upgrade.
    {
        let hooks = hooks.clone();
        std::thread::Builder::new()
            .name("scimitar-drain".into())
            .spawn(move || loop {
                match phases.blocking_recv() {
                    // The timeout counts from here: for an upgrade, after the hand-over.
                    Ok(pingora::server::ExecutionPhase::ShutdownStarted) => drain(&hooks, Instant::now()),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            })
            .map_err(|e| format!("cannot start the drain thread: {e}"))?;
    }

    std::thread::Builder::new()
        .name("scimitar-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                match sig {
                    SIGHUP => {
                        let reloader = hooks.reloader.clone();
                        // Off this thread: a slow reload must not delay a stop signal.
                        let _ = std::thread::Builder::new()
                            .name("scimitar-reload".into())
                            .spawn(
                                move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                                    Ok(rt) => {
                                        rt.block_on(reloader.reload("SIGHUP"));
                                    }
                                    Err(e) => log::error!("reload (SIGHUP): cannot start a runtime: {e}"),
                                },
                            );
                    }
                    SIGUSR1 => (hooks.reopen_logs)(),
                    SIGINT => exit(&hooks, 0, "SIGINT received"),
                    SIGTERM | SIGQUIT => {
                        if stopping.swap(true, Ordering::SeqCst) {
                            exit(&hooks, 0, "second stop signal received");
                        }
                        let kind = if sig == SIGQUIT { Kind::Upgrade } else { Kind::Terminate };
                        log::info!(
                            "{} received: draining (up to {:?}); send SIGINT to stop at once",
                            if sig == SIGQUIT { "SIGQUIT" } else { "SIGTERM" },
                            hooks.timeout
                        );
                        tx.send_replace(Some(kind));
                    }
                    _ => {}
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}
