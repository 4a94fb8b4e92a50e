//! Clients that take too long or too much: each is cut off by its `client` timeout or limit,
//! the proxy's file descriptors come back down, and a normal client is served throughout.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::client::{exchange, try_http};
use common::recorder::Recorder;
use common::*;

fn proxy(client: &str, listener: &str, upstream: SocketAddr) -> Proxy {
    Proxy::start_with_listeners(
        listener,
        &format!(
            "client:\n{client}upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: r\n",
            pool_yaml("r", &[upstream], "    timeouts: {connect: 1s, read: 10s}\n")
        ),
    )
}

fn fds(px: &mut Proxy) -> usize {
    let pid = px.process().pid();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Client connections the proxy still holds open on its listener: sockets on its port that are
/// established or half-closed by the client (what a process holds; a socket the proxy closed
/// lingers in FIN_WAIT/TIME_WAIT without a descriptor), from /proc/net/tcp.
fn held_clients(px: &Proxy) -> usize {
    let port = format!(":{:04X}", px.addr.port());
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&port) && (f[3] == "01" || f[3] == "08")
        })
        .count()
}

/// Reads until the proxy closes; what it sent, and how long that took.
fn until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "not closed within {limit:?} ({e}); got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    (out, start.elapsed())
}

/// The status of an answer, from its status line alone (`raw` may be the first bytes only).
fn status_of(raw: &[u8]) -> u16 {
    String::from_utf8_lossy(raw)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A normal client keeps being served (fast) while `busy` is set; returns how many it got.
fn bystander(addr: SocketAddr, busy: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut served = 0;
        while busy.load(SeqCst) {
            let t = Instant::now();
            let r = http(addr, "GET", "/scim/v2/Users", &[], None);
            assert_eq!(r.status, 200, "a normal client during the attack: {}", r.text());
            assert!(t.elapsed() < Duration::from_secs(2), "slow answer: {:?}", t.elapsed());
            served += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        served
    })
}

#[test]
fn slowloris_heads_and_bodies_are_cut_off_at_their_deadline() {
    let rec = Recorder::start();
    let px = proxy("  header_timeout: 2s\n  body_timeout: 2s\n", "", rec.addr);
    let busy = Arc::new(AtomicBool::new(true));
    let normal = bystander(px.addr, busy.clone());

    // A byte every 300 ms in the head: every read is quick, the whole head is not.
    let head = b"GET /scim/v2/Users HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut s = TcpStream::connect(px.addr).expect("connect");
    let start = Instant::now();
    let mut cut = false;
    for b in head {
        if s.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if start.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let (raw, _) = until_closed(&mut s, Duration::from_secs(5));
    let took = start.elapsed();
    assert!(cut || !raw.is_empty(), "the dribbling client was never cut off");
    assert_eq!(status_of(&raw), 408, "{}", String::from_utf8_lossy(&raw));
    assert!(String::from_utf8_lossy(&raw).contains("urn:ietf:params:scim:api:messages:2.0:Error"));
    assert!(
        took < Duration::from_secs(5),
        "cut off after {took:?}, header_timeout is 2 s"
    );

    // A byte every 300 ms in the body.
    let before = rec.count();
    let mut s = TcpStream::connect(px.addr).expect("connect");
    s.write_all(b"POST /scim/v2/Users HTTP/1.1\r\nHost: a\r\nContent-Type: application/scim+json\r\nContent-Length: 100\r\n\r\n")
        .expect("head");
    let start = Instant::now();
    for _ in 0..40 {
        if s.write_all(b"x").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        let mut probe = [0u8; 1];
        s.set_nonblocking(true).expect("nb");
        let answered = !matches!(s.peek(&mut probe), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock);
        s.set_nonblocking(false).expect("blocking");
        if answered {
            break;
        }
    }
    let (raw, _) = until_closed(&mut s, Duration::from_secs(5));
    let took = start.elapsed();
    assert_eq!(status_of(&raw), 408, "{}", String::from_utf8_lossy(&raw));
    assert!(
        took < Duration::from_secs(5),
        "body cut off after {took:?}, body_timeout is 2 s"
    );
    let posts: Vec<_> = rec
        .since(before)
        .into_iter()
        .filter(|r| r.request_line().starts_with("POST"))
        .collect();
    assert!(posts.is_empty(), "a half-sent body never completes upstream: {posts:?}");

    busy.store(false, SeqCst);
    assert!(
        normal.join().expect("bystander") >= 5,
        "the normal client kept being served"
    );
    let m = px.metrics();
    assert_eq!(
        m.get(r#"scimitar_client_refusals_total{listener="main",reason="header_timeout"}"#),
        Some(&1.0)
    );
}

#[test]
fn idle_keepalive_connections_are_closed_and_fds_come_back() {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            let l = t.lines().find(|l| l.starts_with("Max open files"))?.to_string();
            l.split_whitespace().nth(3)?.parse::<u64>().ok()
        })
        .unwrap_or(u64::MAX);
    assert!(
        soft >= 4500,
        "this test holds 2,000 connections (both ends on this machine): raise `ulimit -n` to 4500 or more (`make test` raises it to the hard limit, here {soft})"
    );
    let rec = Recorder::start();
    let mut px = proxy("  keepalive_timeout: 5s\n", "", rec.addr);
    let base = fds(&mut px);

    // One request each, then silence: 2,000 idle keep-alive connections.
    let request = b"GET /scim/v2/Users HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut idle = Vec::new();
    let start = Instant::now();
    for i in 0..2000 {
        let mut s = TcpStream::connect(px.addr).unwrap_or_else(|e| panic!("connect {i}: {e}"));
        s.write_all(request).expect("request");
        idle.push(s);
    }
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).expect("answer");
        assert_eq!(status_of(&buf[..n]), 200);
    }
    let opened = start.elapsed();
    let peak = fds(&mut px);
    assert!(
        peak >= base + 1500,
        "2,000 connections should hold fds: {base} → {peak}"
    );
    let r = http(px.addr, "GET", "/scim/v2/Users", &[], None);
    assert_eq!(r.status, 200, "a new client while 2,000 idle: {}", r.text());

    // The proxy closes every one of them after keepalive_timeout.
    let mut closed = 0;
    for s in &mut idle {
        let (rest, _) = until_closed(s, Duration::from_secs(15));
        assert!(rest.is_empty(), "an idle connection got bytes: {rest:?}");
        closed += 1;
    }
    assert_eq!(closed, 2000);
    assert!(
        start.elapsed() > Duration::from_secs(5),
        "closed before keepalive_timeout (opened in {opened:?})"
    );
    drop(idle);
    // What stays above the start is the pool of idle upstream connections, not clients.
    let settled = eventually(Duration::from_secs(5), || {
        held_clients(&px) == 0 && fds(&mut px) + 1800 < peak
    });
    assert!(
        settled,
        "fds did not come back: base {base}, peak {peak}, now {} ({} client sockets)",
        fds(&mut px),
        held_clients(&px)
    );
    let m = px.metrics();
    assert!(
        m.get(r#"scimitar_client_idle_closed_total{listener="main"}"#)
            .copied()
            .unwrap_or(0.0)
            >= 2000.0
    );
    assert_eq!(m.get(r#"scimitar_client_connections{listener="main"}"#), Some(&0.0));
    let r = http(px.addr, "GET", "/scim/v2/Users", &[], None);
    assert_eq!(r.status, 200);
}

/// An upstream that answers `/big` with `size` bytes of filler and anything else with `{}`.
fn big_upstream(size: usize) -> (SocketAddr, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    l.set_nonblocking(true).expect("nb");
    std::thread::spawn(move || {
        while !st.load(SeqCst) {
            let Ok((mut c, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            std::thread::spawn(move || {
                let _ = c.set_nonblocking(false);
                let mut buf = [0u8; 4096];
                let n = c.read(&mut buf).unwrap_or(0);
                let size = if String::from_utf8_lossy(&buf[..n]).contains("/big ") {
                    size
                } else {
                    2
                };
                let head =
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/scim+json\r\nContent-Length: {size}\r\n\r\n");
                let _ = c.write_all(head.as_bytes());
                if size == 2 {
                    let _ = c.write_all(b"{}");
                    return;
                }
                let chunk = vec![b' '; 64 << 10];
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if c.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    (addr, stop)
}

#[test]
fn a_client_that_never_reads_is_dropped_at_send_timeout() {
    let (up, stop) = big_upstream(256 << 20);
    let mut px = proxy("  send_timeout: 1s\n", "", up);
    let base = fds(&mut px);
    let mut s = TcpStream::connect(px.addr).expect("connect");
    s.write_all(b"GET /scim/v2/Users/big HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("request");
    // Never read. The proxy fills the socket buffers, its writes stall, and it gives up.
    let gone = eventually(Duration::from_secs(20), || {
        px.metrics()
            .get(r#"scimitar_client_connections{listener="main"}"#)
            .is_some_and(|v| *v == 0.0)
    });
    assert!(gone, "the proxy still holds the client that never reads");
    assert!(
        eventually(Duration::from_secs(5), || held_clients(&px) == 0
            && fds(&mut px) <= base + 3),
        "fds: base {base}, now {} ({} client sockets)",
        fds(&mut px),
        held_clients(&px)
    );
    let r = http(px.addr, "GET", "/scim/v2/Groups", &[], None);
    assert_eq!((r.status, r.text().as_str()), (200, "{}"), "a new client is served");
    stop.store(true, SeqCst);
    drop(s);
}

#[test]
fn over_max_connections_new_clients_get_503_and_existing_ones_keep_working() {
    let rec = Recorder::start();
    // A second listener without a cap: each connection counts against its own listener.
    let other = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let px = proxy(
        "",
        &format!("    max_connections: 4\n  - name: other\n    address: \"{other}\"\n"),
        rec.addr,
    );
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(px.addr).expect("connect");
            let r = exchange(&mut s, "a", "GET", "/scim/v2/Users", &[], None, false).expect("served");
            assert_eq!(r.status, 200);
            s
        })
        .collect();
    let mut extra = TcpStream::connect(px.addr).expect("the kernel still accepts");
    let _ = extra.write_all(b"GET /scim/v2/Users HTTP/1.1\r\nHost: a\r\n\r\n");
    let (raw, _) = until_closed(&mut extra, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(status_of(&raw), 503, "{text}");
    assert!(
        text.contains("Retry-After: 1") && text.contains("connection limit"),
        "{text}"
    );
    for s in &mut held {
        let r = exchange(s, "a", "GET", "/scim/v2/Users", &[], None, false).expect("still served");
        assert_eq!(r.status, 200, "an existing connection keeps working");
    }
    assert_eq!(
        http(other, "GET", "/scim/v2/Users", &[], None).status,
        200,
        "the other listener has room"
    );
    drop(held);
    let served = eventually(Duration::from_secs(5), || {
        try_http(px.addr, "GET", "/scim/v2/Users", &[], None).is_ok_and(|r| r.status == 200)
    });
    assert!(served, "room again once the held connections closed");
    let st = px.status();
    let main = &st["listeners"][0]["clients"];
    assert_eq!(main["max_connections"], 4);
    // The extra client, and maybe a retry above before the held closes were seen.
    assert!(main["refused"]["over_capacity"].as_u64() >= Some(1), "{main}");
    assert_eq!(st["client_limits"]["keepalive_timeout"], "1m");
    assert_eq!(st["client_limits"]["max_request_head"], 65536);
}

#[test]
fn a_connection_serves_keepalive_requests_then_closes() {
    let rec = Recorder::start();
    let px = proxy("  keepalive_requests: 3\n", "", rec.addr);
    let mut s = TcpStream::connect(px.addr).expect("connect");
    for i in 1..=3 {
        let r = exchange(&mut s, "a", "GET", "/scim/v2/Users", &[], None, false).expect("served");
        assert_eq!(r.status, 200);
        let close = r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        assert_eq!(close, i == 3, "request {i}: Connection: {:?}", r.header("connection"));
    }
    let (rest, _) = until_closed(&mut s, Duration::from_secs(5));
    assert!(rest.is_empty(), "closed after the third answer");
}
