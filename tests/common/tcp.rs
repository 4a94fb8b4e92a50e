//! Raw-TCP test servers and clients for the layer-4 tests: a threaded server that echoes
//! (optionally saying its name first, or answering only after the client's EOF), clients
//! bound to any 127/8 source address, and a reset (SO_LINGER 0) helper.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Every blocking read or write in these helpers gives up after this, so a hung proxy fails
/// a test instead of hanging it.
pub const IO_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub enum Mode {
    /// Echo every byte back; after the client's EOF, finish and close.
    Echo,
    /// Write `NAME\n` on accept, then echo.
    NameThenEcho(String),
    /// Read until the client's EOF, then answer `got N bytes` and close: proves the FIN
    /// reached the server and the reply still travels back over the half-open connection.
    ReplyAfterEof,
}

pub struct TcpServer {
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    /// Connections open right now.
    pub open: Arc<AtomicUsize>,
    /// Connections on which the server read EOF from the client.
    pub eofs: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpServer {
    pub fn start(mode: Mode) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind tcp test server");
        let addr = l.local_addr().expect("addr");
        l.set_nonblocking(true).expect("nonblocking");
        let mut s = TcpServer {
            addr,
            accepted: Arc::default(),
            open: Arc::default(),
            eofs: Arc::default(),
            stop: Arc::default(),
            thread: None,
        };
        let (accepted, open, eofs, stop) = (s.accepted.clone(), s.open.clone(), s.eofs.clone(), s.stop.clone());
        s.thread = Some(std::thread::spawn(move || {
            while !stop.load(SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        accepted.fetch_add(1, SeqCst);
                        open.fetch_add(1, SeqCst);
                        let (open, eofs, mode) = (open.clone(), eofs.clone(), mode.clone());
                        std::thread::spawn(move || {
                            let _ = serve(c, &mode, &eofs);
                            open.fetch_sub(1, SeqCst);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
        s
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(SeqCst)
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut c: TcpStream, mode: &Mode, eofs: &AtomicUsize) -> std::io::Result<()> {
    c.set_nonblocking(false)?;
    c.set_read_timeout(Some(IO_LIMIT))?;
    c.set_write_timeout(Some(IO_LIMIT))?;
    let mut buf = vec![0u8; 64 * 1024];
    match mode {
        Mode::ReplyAfterEof => {
            let mut n = 0;
            loop {
                match c.read(&mut buf)? {
                    0 => break,
                    k => n += k,
                }
            }
            eofs.fetch_add(1, SeqCst);
            c.write_all(format!("got {n} bytes").as_bytes())?;
        }
        Mode::Echo | Mode::NameThenEcho(_) => {
            if let Mode::NameThenEcho(name) = mode {
                c.write_all(format!("{name}\n").as_bytes())?;
            }
            loop {
                match c.read(&mut buf)? {
                    0 => {
                        eofs.fetch_add(1, SeqCst);
                        break;
                    }
                    k => c.write_all(&buf[..k])?,
                }
            }
        }
    }
    c.shutdown(std::net::Shutdown::Write)
}

/// A client connection to `to` from source address `from` (any 127/8 address works on Linux),
/// with [`IO_LIMIT`] on reads and writes.
pub fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(from, 0)).into())
        .expect("bind client source");
    sock.connect_timeout(&to.into(), Duration::from_secs(2))
        .expect("connect");
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_LIMIT)).expect("timeout");
    s.set_write_timeout(Some(IO_LIMIT)).expect("timeout");
    s
}

pub fn connect(to: SocketAddr) -> TcpStream {
    connect_from(Ipv4Addr::LOCALHOST, to)
}

/// Reads one `\n`-terminated line, byte by byte (so nothing after it is consumed).
pub fn read_line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while out.len() < 1024 {
        match s.read(&mut b) {
            Ok(1) if b[0] == b'\n' => break,
            Ok(1) => out.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the peer closed: a read returns EOF or an error (a reset) within `limit`; `false`
/// when the read times out with the connection still open, or data arrives.
pub fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut b = [0u8; 1];
    let r = s.read(&mut b);
    s.set_read_timeout(Some(IO_LIMIT)).expect("timeout");
    match r {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

/// Closes with a reset (RST) instead of a FIN.
pub fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(s);
}

/// `n` pseudo-random bytes (xorshift64*), the same for the same seed.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(n);
    v
}

/// A TLS echo server (OpenSSL), for pools that speak TLS to their servers: `client_ca`
/// makes it require a client certificate signed by that CA.
pub struct TlsEchoServer {
    pub addr: SocketAddr,
    pub handshakes: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TlsEchoServer {
    pub fn start(cert: &std::path::Path, key: &std::path::Path, client_ca: Option<&std::path::Path>) -> Self {
        use openssl::ssl::{SslAcceptor, SslMethod, SslVerifyMode};
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
        b.set_certificate_chain_file(cert).expect("cert");
        b.set_private_key_file(key, openssl::ssl::SslFiletype::PEM)
            .expect("key");
        if let Some(ca) = client_ca {
            b.set_ca_file(ca).expect("client CA");
            b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        }
        let acceptor = Arc::new(b.build());
        let l = TcpListener::bind("127.0.0.1:0").expect("bind tls test server");
        let addr = l.local_addr().expect("addr");
        l.set_nonblocking(true).expect("nonblocking");
        let handshakes: Arc<AtomicUsize> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let (hs, st) = (handshakes.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        let (acceptor, hs) = (acceptor.clone(), hs.clone());
                        std::thread::spawn(move || {
                            let _ = c.set_nonblocking(false);
                            let _ = c.set_read_timeout(Some(IO_LIMIT));
                            let Ok(mut s) = acceptor.accept(c) else { return };
                            hs.fetch_add(1, SeqCst);
                            let mut buf = vec![0u8; 16 * 1024];
                            while let Ok(n @ 1..) = s.read(&mut buf) {
                                if s.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = s.shutdown();
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TlsEchoServer {
            addr,
            handshakes,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TlsEchoServer {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
