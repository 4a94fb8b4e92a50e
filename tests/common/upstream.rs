//! An in-process HTTP/1.1 upstream for failure cases. It counts every request that reached
//! it (after the full request was read), so tests can prove a POST arrived exactly once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Behavior {
    /// 200 with a JSON echo of the request: `{"server", "method", "target", "headers"}`.
    Echo,
    /// Read the whole request, then close the connection without a byte of answer.
    CloseAfterRequest,
    /// Read the request, then wait this long before echoing.
    Stall(Duration),
    /// Answer every request with this status and a small JSON body.
    Status(u16),
    /// Send a 200 header promising 100 bytes, 10 of them, then close: an answer cut mid-way.
    CutMidAnswer,
}

/// A recorded request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

pub struct TestUpstream {
    pub addr: SocketAddr,
    pub name: String,
    pub hits: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Requests being answered right now, and the most ever at once.
    pub active: Arc<(AtomicUsize, AtomicUsize)>,
    behavior: Behavior,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestUpstream {
    pub fn start(name: &str, behavior: Behavior) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test upstream");
        let addr = listener.local_addr().expect("addr");
        let mut u = TestUpstream {
            addr,
            name: name.to_string(),
            hits: Arc::new(AtomicUsize::new(0)),
            seen: Arc::new(Mutex::new(Vec::new())),
            active: Arc::new((AtomicUsize::new(0), AtomicUsize::new(0))),
            behavior,
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        u.serve(listener);
        u
    }

    fn serve(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = self.stop.clone();
        let hits = self.hits.clone();
        let seen = self.seen.clone();
        let behavior = self.behavior.clone();
        let name = self.name.clone();
        let active = self.active.clone();
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (stop, hits, seen, behavior, name, active) = (
                            stop.clone(),
                            hits.clone(),
                            seen.clone(),
                            behavior.clone(),
                            name.clone(),
                            active.clone(),
                        );
                        std::thread::spawn(move || {
                            let ctx = Shared {
                                stop: &stop,
                                hits: &hits,
                                seen: &seen,
                                active: &active,
                            };
                            handle(s, &ctx, &behavior, &name)
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }

    pub fn hits(&self) -> usize {
        self.hits.load(SeqCst)
    }

    /// The most requests this upstream was ever answering at the same time.
    pub fn max_concurrent(&self) -> usize {
        self.active.1.load(SeqCst)
    }

    /// Stops accepting and closes the port: connects are refused from now on.
    pub fn kill(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.stop = Arc::new(AtomicBool::new(false));
        let listener = TcpListener::bind(self.addr).expect("rebind test upstream");
        self.serve(listener);
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Shared<'a> {
    stop: &'a AtomicBool,
    hits: &'a AtomicUsize,
    seen: &'a Mutex<Vec<Seen>>,
    active: &'a (AtomicUsize, AtomicUsize),
}

fn handle(stream: TcpStream, sh: &Shared<'_>, behavior: &Behavior, name: &str) {
    let Shared {
        stop,
        hits,
        seen,
        active,
    } = *sh;
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(mut out) = stream.try_clone() else { return };
    let mut r = BufReader::new(stream);
    // Keep-alive loop: the proxy reuses upstream connections.
    while !stop.load(SeqCst) {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let mut body = vec![0u8; len];
        let _ = r.get_mut().set_read_timeout(Some(Duration::from_secs(5)));
        if r.read_exact(&mut body).is_err() {
            return;
        }
        hits.fetch_add(1, SeqCst);
        let now = active.0.fetch_add(1, SeqCst) + 1;
        active.1.fetch_max(now, SeqCst);
        let rec = Seen {
            method: method.clone(),
            target: target.clone(),
            headers: headers.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        if let Ok(mut s) = seen.lock() {
            s.push(rec);
        }
        let (status, payload) = match behavior {
            Behavior::CloseAfterRequest => {
                active.0.fetch_sub(1, SeqCst);
                return;
            }
            Behavior::CutMidAnswer => {
                active.0.fetch_sub(1, SeqCst);
                let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/scim+json\r\nContent-Length: 100\r\n\r\n{\"id\":\"1\",");
                let _ = out.flush();
                std::thread::sleep(Duration::from_millis(50));
                return;
            }
            Behavior::Stall(d) => {
                std::thread::sleep(*d);
                (200, echo(name, &method, &target, &headers))
            }
            Behavior::Echo => (200, echo(name, &method, &target, &headers)),
            Behavior::Status(s) => (*s, format!("{{\"server\":\"{name}\",\"status\":{s}}}")),
        };
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{payload}",
            payload.len()
        );
        // The request is over once its answer is ready: a proxy may (rightly) send the next one
        // the moment the last byte arrives, possibly before this thread runs again.
        active.0.fetch_sub(1, SeqCst);
        let written = out.write_all(resp.as_bytes());
        if written.is_err() {
            return;
        }
        let _ = r.get_mut().set_read_timeout(Some(Duration::from_millis(200)));
    }
}

fn echo(name: &str, method: &str, target: &str, headers: &[(String, String)]) -> String {
    let h: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::json!({"server": name, "method": method, "target": target, "headers": h}).to_string()
}

/// An upstream that accepts connections and never answers: every accepted socket is kept open
/// (and never read), so the proxy sees neither a refusal nor a close — only silence, the way a
/// hung process or a firewall that drops replies looks. Counts the connections it accepted.
pub struct BlackHole {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<TcpStream>>>,
}

impl BlackHole {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind black hole");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(SeqCst) {
                match listener.accept() {
                    Ok((c, _)) => {
                        a.fetch_add(1, SeqCst);
                        held.push(c);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            held
        });
        BlackHole {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(SeqCst)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            drop(t.join());
        }
    }
}
