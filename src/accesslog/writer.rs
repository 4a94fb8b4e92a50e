//! The writer: a bounded queue of finished lines and one std thread that owns the file. The
//! request path only `try_send`s: a full queue drops the line and counts it, it never waits.
//! The thread drains the queue into a 64 KiB buffer, writes it out when full or every second,
//! reopens the file when asked (SIGUSR1, for logrotate), and flushes what is queued on stop.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Buffered bytes that trigger a write.
const BUFFER: usize = 64 * 1024;
/// Longest a line waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often an idle writer looks for lines, a reopen or a stop. Polling (rather than
/// blocking on the queue) means a request never pays for waking the writer.
const POLL: Duration = Duration::from_millis(10);

/// Where lines go: a file (reopened by path) or standard output.
pub trait Sink: Write + Send + 'static {
    /// Opens the destination again (the file was rotated away); a no-op for streams.
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A log file opened for appending (created if missing), so several writers and
/// `copytruncate` never leave holes.
pub struct FileSink {
    path: PathBuf,
    file: File,
}

impl FileSink {
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let file = Self::open_file(&path)?;
        Ok(FileSink { path, file })
    }

    fn open_file(path: &PathBuf) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new().append(true).create(true).mode(0o640).open(path)
    }
}

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Sink for FileSink {
    fn reopen(&mut self) -> io::Result<()> {
        self.file = Self::open_file(&self.path)?;
        Ok(())
    }
}

pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stdout().lock().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

impl Sink for Stdout {}

/// What the request path and the control functions share with the thread.
struct Control {
    reopen: Arc<AtomicBool>,
    stop: AtomicBool,
    done: Mutex<bool>,
    done_cv: Condvar,
}

/// What the thread takes when it starts: the queue's receiving end and the sink.
type ThreadHalf = (Receiver<Vec<u8>>, Box<dyn Sink>);

pub struct Writer {
    tx: SyncSender<Vec<u8>>,
    /// The thread's half, until the thread starts (see [`Writer::start`]).
    pending: Mutex<Option<ThreadHalf>>,
    started: OnceLock<()>,
    control: Arc<Control>,
    dropped: AtomicU64,
    /// The `scimitar_access_log_dropped_total` counter, when metrics are on.
    dropped_metric: Option<prometheus::IntCounter>,
}

impl Writer {
    /// A writer with room for `queue` lines. The thread starts with the first line (or
    /// [`Writer::start`]): Pingora may fork to daemonize after the config is loaded, and a
    /// thread started before that would be left behind in the parent.
    pub fn new(
        sink: Box<dyn Sink>,
        queue: usize,
        reopen: Arc<AtomicBool>,
        dropped: Option<prometheus::IntCounter>,
    ) -> Self {
        let (tx, rx) = sync_channel(queue.max(1));
        Writer {
            tx,
            pending: Mutex::new(Some((rx, sink))),
            started: OnceLock::new(),
            control: Arc::new(Control {
                reopen,
                stop: AtomicBool::new(false),
                done: Mutex::new(false),
                done_cv: Condvar::new(),
            }),
            dropped: AtomicU64::new(0),
            dropped_metric: dropped,
        }
    }

    /// Hands a line to the writer, or drops and counts it when the queue is full (or the
    /// writer stopped). Never blocks.
    pub fn log(&self, line: Vec<u8>) {
        if self.started.get().is_none() {
            self.start();
        }
        let sent = !self.control.stop.load(Relaxed) && self.tx.try_send(line).is_ok();
        if !sent {
            self.dropped.fetch_add(1, Relaxed);
            if let Some(c) = &self.dropped_metric {
                c.inc();
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Starts the thread if it has not started yet.
    pub fn start(&self) {
        self.started.get_or_init(|| {
            let taken = self.pending.lock().unwrap_or_else(|p| p.into_inner()).take();
            let Some((rx, sink)) = taken else { return };
            let control = self.control.clone();
            let spawned = std::thread::Builder::new()
                .name("access-log".into())
                .spawn(move || run(rx, sink, &control));
            if let Err(e) = spawned {
                log::error!("access log: cannot start the writer thread: {e}; lines will be dropped");
                self.mark_done();
            }
        });
    }

    /// Asks the thread to reopen its file before the next write.
    pub fn reopen(&self) {
        self.control.reopen.store(true, Relaxed);
    }

    /// Writes out everything queued so far and stops the thread, waiting at most `limit`.
    /// Idempotent; later lines are dropped (and counted). Returns whether the writer finished.
    pub fn flush_and_stop(&self, limit: Duration) -> bool {
        self.start();
        self.control.stop.store(true, Relaxed);
        let deadline = Instant::now() + limit;
        let mut done = self.control.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            done = match self.control.done_cv.wait_timeout(done, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    fn mark_done(&self) {
        mark_done(&self.control);
    }
}

fn mark_done(control: &Control) {
    *control.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
    control.done_cv.notify_all();
}

fn run(rx: Receiver<Vec<u8>>, sink: Box<dyn Sink>, control: &Control) {
    let mut out = BufWriter::with_capacity(BUFFER, sink);
    let mut last_flush = Instant::now();
    let mut dirty = false;
    let report = |what: &str, e: io::Error| log::error!("access log: cannot {what}: {e}");
    loop {
        if control.reopen.swap(false, Relaxed) {
            // Lines written before the signal belong in the old (rotated) file.
            if let Err(e) = out.flush() {
                report("write", e);
            }
            if let Err(e) = out.get_mut().reopen() {
                report("reopen the file (still writing to the old one)", e);
            }
        }
        let stopping = control.stop.load(Relaxed);
        let mut got = false;
        let mut gone = false;
        loop {
            match rx.try_recv() {
                Ok(line) => {
                    got = true;
                    if let Err(e) = out.write_all(&line) {
                        report("write", e);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            }
        }
        dirty |= got;
        if stopping || gone {
            if let Err(e) = out.flush() {
                report("write", e);
            }
            break;
        }
        if dirty && last_flush.elapsed() >= FLUSH_EVERY {
            if let Err(e) = out.flush() {
                report("write", e);
            }
            dirty = false;
            last_flush = Instant::now();
        }
        if !got {
            std::thread::sleep(POLL);
        }
    }
    // Closed before "done": a line sent from now on fails and is counted as dropped.
    drop(rx);
    mark_done(control);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A sink that blocks every write until released, and records what it got.
    struct Stuck {
        gate: Arc<(Mutex<bool>, Condvar)>,
        got: Arc<Mutex<Vec<u8>>>,
        reopened: Arc<AtomicU64>,
    }

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (open, cv) = &*self.gate;
            let mut g = open.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
            self.got.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink for Stuck {
        fn reopen(&mut self) -> io::Result<()> {
            self.reopened.fetch_add(1, Relaxed);
            Ok(())
        }
    }

    type Gate = Arc<(Mutex<bool>, Condvar)>;

    fn stuck() -> (Stuck, Gate, Arc<Mutex<Vec<u8>>>, Arc<AtomicU64>) {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let got = Arc::new(Mutex::new(Vec::new()));
        let reopened = Arc::new(AtomicU64::new(0));
        let s = Stuck {
            gate: gate.clone(),
            got: got.clone(),
            reopened: reopened.clone(),
        };
        (s, gate, got, reopened)
    }

    fn open(gate: &(Mutex<bool>, Condvar)) {
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
    }

    #[test]
    fn a_stuck_writer_makes_lines_drop_not_wait() {
        let (sink, gate, got, _) = stuck();
        let counter = prometheus::IntCounter::new("t_dropped", "t").unwrap();
        let w = Writer::new(Box::new(sink), 4, Arc::default(), Some(counter.clone()));
        // A line bigger than the buffer makes the thread write at once, and get stuck there.
        w.log(vec![b'x'; BUFFER + 1]);
        std::thread::sleep(Duration::from_millis(100));
        let start = Instant::now();
        for i in 0..1000 {
            w.log(format!("{i}\n").into_bytes());
        }
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "log() never waits for the writer"
        );
        assert_eq!(w.dropped(), 1000 - 4, "the queue holds 4 lines; the rest are dropped");
        assert_eq!(counter.get(), 996);
        open(&gate);
        assert!(w.flush_and_stop(Duration::from_secs(2)));
        let text = got.lock().unwrap().clone();
        assert_eq!(
            text.len(),
            BUFFER + 1 + "0\n1\n2\n3\n".len(),
            "the queued lines were written"
        );
        assert!(text.ends_with(b"0\n1\n2\n3\n"));
    }

    #[test]
    fn stop_is_bounded_and_idempotent() {
        let (sink, gate, _, _) = stuck();
        let w = Writer::new(Box::new(sink), 8, Arc::default(), None);
        w.log(vec![b'x'; BUFFER + 1]);
        let start = Instant::now();
        assert!(
            !w.flush_and_stop(Duration::from_millis(200)),
            "a stuck write cannot finish"
        );
        assert!(start.elapsed() < Duration::from_secs(1));
        open(&gate);
        assert!(w.flush_and_stop(Duration::from_secs(2)));
        assert!(w.flush_and_stop(Duration::from_millis(1)), "already stopped");
        w.log(b"late\n".to_vec());
        assert_eq!(w.dropped(), 1, "lines after the stop are dropped and counted");
    }

    #[test]
    fn reopen_happens_before_the_next_line() {
        let (sink, gate, got, reopened) = stuck();
        open(&gate);
        let flag = Arc::new(AtomicBool::new(false));
        let w = Writer::new(Box::new(sink), 8, flag.clone(), None);
        w.log(b"a\n".to_vec());
        // The signal handler's side: only the flag is set.
        flag.store(true, Relaxed);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            while flag.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            tx.send(()).unwrap();
        });
        rx.recv_timeout(Duration::from_secs(2))
            .expect("the writer took the reopen");
        assert_eq!(reopened.load(Relaxed), 1);
        w.log(b"b\n".to_vec());
        assert!(w.flush_and_stop(Duration::from_secs(2)));
        assert_eq!(&*got.lock().unwrap(), b"a\nb\n");
    }

    #[test]
    fn file_sink_appends_and_reopens_by_path() {
        let dir = std::env::temp_dir().join(format!("scimitar-alog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        std::fs::write(&path, "old\n").unwrap();
        let mut s = FileSink::open(path.clone()).unwrap();
        s.write_all(b"one\n").unwrap();
        std::fs::rename(&path, dir.join("access.log.1")).unwrap();
        s.write_all(b"two\n").unwrap();
        s.reopen().unwrap();
        s.write_all(b"three\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("access.log.1")).unwrap(),
            "old\none\ntwo\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
