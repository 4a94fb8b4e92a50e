//! An upstream that records the exact bytes of every request it receives (head as sent, body
//! de-chunked when chunked) and answers each with `200 {}`. For tests that must show what the
//! proxy forwarded, byte for byte, or that it forwarded nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Request line and header lines, without line ends.
    pub lines: Vec<String>,
    pub body: Vec<u8>,
    /// The body came chunked (else by Content-Length, or there was none).
    pub chunked: bool,
}

impl Recorded {
    pub fn request_line(&self) -> &str {
        self.lines.first().map(String::as_str).unwrap_or("")
    }

    /// Every value of header `name`, in order.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.lines
            .iter()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }
}

pub struct Recorder {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
}

impl Recorder {
    pub fn start() -> Self {
        Self::start_answering("")
    }

    /// Like [`Recorder::start`], its `200 {}` answers carrying `extra` too (header lines, each
    /// ending in `\r\n`), for tests of what the proxy does to an upstream's answer.
    pub fn start_answering(extra: &str) -> Self {
        let answer: Arc<str> =
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/scim+json\r\nContent-Length: 2\r\n{extra}\r\n{{}}")
                .into();
        let l = TcpListener::bind("127.0.0.1:0").expect("bind recorder");
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st2.load(SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        let (s3, st3, a3) = (s2.clone(), st2.clone(), answer.clone());
                        std::thread::spawn(move || serve(c, &s3, &st3, &a3));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Recorder { addr, seen, stop }
    }

    pub fn count(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }

    pub fn since(&self, n: usize) -> Vec<Recorded> {
        self.seen
            .lock()
            .map(|s| s[n.min(s.len())..].to_vec())
            .unwrap_or_default()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
    }
}

fn serve(c: TcpStream, seen: &Mutex<Vec<Recorded>>, stop: &AtomicBool, answer: &str) {
    let _ = c.set_nonblocking(false);
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut out) = c.try_clone() else { return };
    let mut r = BufReader::new(c);
    while !stop.load(SeqCst) {
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            match r.read_line(&mut l) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = l.trim_end_matches(['\r', '\n']).to_string();
            if l.is_empty() {
                break;
            }
            lines.push(l);
        }
        let mut rec = Recorded {
            lines,
            body: Vec::new(),
            chunked: false,
        };
        if rec
            .header_values("transfer-encoding")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("chunked"))
        {
            rec.chunked = true;
            loop {
                let mut size = String::new();
                if r.read_line(&mut size).unwrap_or(0) == 0 {
                    return;
                }
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).unwrap_or(0);
                let mut chunk = vec![0u8; n + 2];
                if r.read_exact(&mut chunk).is_err() {
                    return;
                }
                if n == 0 {
                    break;
                }
                rec.body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = rec
            .header_values("content-length")
            .first()
            .and_then(|v| v.parse::<usize>().ok())
        {
            rec.body = vec![0u8; n];
            if r.read_exact(&mut rec.body).is_err() {
                return;
            }
        }
        if let Ok(mut s) = seen.lock() {
            s.push(rec);
        }
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
