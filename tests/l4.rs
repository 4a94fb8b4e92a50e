//! `protocol: tcp` listeners end to end: real scimitar, real sockets on 127/8. Bytes both ways,
//! half-close, balancing and stickiness, dead servers, idle timeout, max_connections, resets,
//! TLS termination, and the `/status` counters.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::tcp::{closed_within, connect, connect_from, noise, read_line, reset, Mode, TcpServer, TlsEchoServer};
use common::*;

const WAIT: Duration = Duration::from_secs(10);

struct L4 {
    px: Proxy,
    addr: SocketAddr,
}

impl L4 {
    /// scimitar with a `tcp` listener forwarding to pool `p` over `servers`. `pool_extra` and
    /// `listener_extra` are YAML lines for the pool (4 spaces) and the listener (4 spaces).
    fn start(servers: &[SocketAddr], pool_extra: &str, listener_extra: &str) -> Self {
        Self::start_tls(servers, pool_extra, listener_extra, None)
    }

    fn start_tls(servers: &[SocketAddr], pool_extra: &str, listener_extra: &str, tls: Option<&str>) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let tls = tls.map(|t| format!("    tls:\n{t}")).unwrap_or_default();
        let extra = format!(
            "  - name: tcp\n    address: \"{addr}\"\n    protocol: tcp\n    upstream: p\n{listener_extra}{tls}"
        );
        let body = format!(
            "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: p\n",
            pool_yaml("p", servers, pool_extra)
        );
        let px = Proxy::start_with_listeners(&extra, &body);
        wait_for_port(addr, WAIT);
        let l4 = L4 { px, addr };
        // wait_for_port's probe was a connection too (a plaintext one reaches the app; on TLS
        // it fails the handshake); let it finish before anything is counted.
        let probed = if tls.is_empty() { 1 } else { 0 };
        assert!(
            eventually(WAIT, || {
                let st = l4.status();
                let probe_done = st["forwarded"].as_u64().unwrap() + st["no_server"].as_u64().unwrap() >= probed;
                probe_done && st["active"] == 0 && st["queued"] == 0
            }),
            "{}",
            l4.status()
        );
        l4
    }

    fn status(&self) -> serde_json::Value {
        self.px.status()["l4"][0].clone()
    }

    fn stat(&self, key: &str) -> u64 {
        self.status()[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no l4 counter {key}"))
    }
}

/// Writes `data` from a second thread while this one reads the echo, so neither side's
/// socket buffer can fill up and deadlock the exchange.
fn echo_through(s: TcpStream, data: &[u8]) -> Vec<u8> {
    let mut w = s.try_clone().unwrap();
    let out = data.to_vec();
    let writer = std::thread::spawn(move || {
        w.write_all(&out).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut r = s;
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    got
}

fn ping(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

/// A loopback address nothing listens on (connects are refused at once).
fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

#[test]
fn an_http_exchange_with_a_real_scim_server_passes_through_unchanged() {
    let scim = ScimServer::start();
    let l4 = L4::start(&[scim.addr], "", "");
    let user = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"l4user"}"#;
    let r = http(l4.addr, "POST", "/v2/Users", &[], Some(user));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    // Raw bytes: the Host the client sent (the tcp listener) is what the server built its
    // Location from.
    assert_eq!(
        r.header("location").unwrap(),
        format!("http://{}/v2/Users/{id}", l4.addr)
    );
    let r = http(l4.addr, "GET", &format!("/v2/Users/{id}"), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["userName"], "l4user");
    // No HTTP proxy in the way: none of the headers scimitar's HTTP side adds.
    assert!(r.header("x-request-id").is_none(), "{:?}", r.headers);
}

#[test]
fn a_mebibyte_of_binary_comes_back_byte_for_byte_and_is_counted() {
    let echo = TcpServer::start(Mode::Echo);
    let l4 = L4::start(&[echo.addr], "", "");
    let before = l4.status();
    let data = noise(1 << 20, 42);
    let got = echo_through(connect(l4.addr), &data);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "echoed bytes differ");
    assert!(eventually(WAIT, || l4.stat("active") == 0));
    let after = l4.status();
    let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    assert_eq!(delta("bytes_to_server"), 1 << 20, "{after}");
    assert_eq!(delta("bytes_to_client"), 1 << 20, "{after}");
    assert_eq!(delta("accepted"), 1);
    assert_eq!(delta("forwarded"), 1);
    assert_eq!(after["errors"], 0, "{after}");
    assert_eq!(after["pool"], "p");
}

#[test]
fn a_half_close_reaches_the_server_and_its_reply_still_comes_back() {
    let srv = TcpServer::start(Mode::ReplyAfterEof);
    let l4 = L4::start(&[srv.addr], "", "");
    let eofs = srv.eofs.load(std::sync::atomic::Ordering::SeqCst);
    let mut c = connect(l4.addr);
    c.write_all(&[7u8; 1000]).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "got 1000 bytes");
    assert_eq!(srv.eofs.load(std::sync::atomic::Ordering::SeqCst), eofs + 1);
}

#[test]
fn round_robin_spreads_connections_over_both_servers() {
    let a = TcpServer::start(Mode::NameThenEcho("a".into()));
    let b = TcpServer::start(Mode::NameThenEcho("b".into()));
    let l4 = L4::start(&[a.addr, b.addr], "    selection: round_robin\n", "");
    let mut seen = std::collections::HashMap::new();
    for i in 0..10u8 {
        let mut c = connect(l4.addr);
        *seen.entry(read_line(&mut c)).or_insert(0) += 1;
        ping(&mut c, &[i; 3]);
    }
    assert_eq!(seen.get("a"), Some(&5), "{seen:?}");
    assert_eq!(seen.get("b"), Some(&5), "{seen:?}");
}

#[test]
fn consistent_selection_keeps_each_client_ip_on_one_server() {
    let names = ["a", "b", "c"];
    let servers: Vec<TcpServer> = names
        .iter()
        .map(|n| TcpServer::start(Mode::NameThenEcho(n.to_string())))
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let l4 = L4::start(&addrs, "    selection: consistent\n", "");
    let mut home = std::collections::HashMap::new();
    for round in 0..3 {
        for last in 2..14u8 {
            let ip = Ipv4Addr::new(127, 0, 0, last);
            let mut c = connect_from(ip, l4.addr);
            let name = read_line(&mut c);
            assert!(names.contains(&name.as_str()), "{name:?}");
            let first = home.entry(ip).or_insert_with(|| name.clone());
            assert_eq!(*first, name, "{ip} moved in round {round}");
        }
    }
    let used: std::collections::HashSet<_> = home.values().collect();
    assert!(used.len() >= 2, "12 client IPs all landed on one server: {home:?}");
}

#[test]
fn a_refused_connect_moves_on_to_the_next_server() {
    let echo = TcpServer::start(Mode::Echo);
    let dead = dead_addr();
    let l4 = L4::start(&[dead, echo.addr], "    selection: round_robin\n    retries: 1\n", "");
    for i in 0..6u8 {
        let mut c = connect(l4.addr);
        ping(&mut c, &[i; 4]);
    }
    let st = l4.status();
    assert!(st["connect_failures"].as_u64().unwrap() >= 1, "{st}");
    assert_eq!(st["no_server"], 0, "{st}");
    // Passive ejection: the dead server was marked failing in the shared pool.
    let pool = &l4.px.status()["pools"][0]["servers"][0];
    assert_eq!(pool["address"], dead.to_string());
    let marked = pool["consecutive_failures"].as_u64().unwrap() >= 1 || pool["ejected_ms"].as_u64().unwrap() > 0;
    assert!(marked, "{pool}");
}

#[test]
fn a_tcp_health_check_takes_a_dead_server_out_before_any_client_pays_for_it() {
    let echo = TcpServer::start(Mode::Echo);
    let dead = dead_addr();
    let l4 = L4::start(
        &[dead, echo.addr],
        "    selection: round_robin\n    health_check:\n      type: tcp\n      interval: 100ms\n      timeout: 500ms\n      fall: 1\n",
        "",
    );
    assert!(
        eventually(WAIT, || !l4.px.server_healthy(0, dead)),
        "{}",
        l4.px.status()
    );
    assert!(l4.px.server_healthy(0, echo.addr));
    let failures = l4.stat("connect_failures");
    for i in 0..6u8 {
        let mut c = connect(l4.addr);
        ping(&mut c, &[i; 4]);
    }
    assert_eq!(l4.stat("connect_failures"), failures, "{}", l4.status());
}

#[test]
fn idle_timeout_closes_a_silent_connection_while_an_active_one_survives() {
    let echo = TcpServer::start(Mode::Echo);
    let l4 = L4::start(&[echo.addr], "", "    idle_timeout: 1s\n");
    let mut silent = connect(l4.addr);
    let mut active = connect(l4.addr);
    ping(&mut silent, b"hi");
    let t0 = Instant::now();
    // 12 × 200 ms: over twice the idle timeout, with traffic every fifth of it (a scheduling
    // stall on a busy machine must not make the active one look idle).
    for i in 0..12u8 {
        std::thread::sleep(Duration::from_millis(200));
        ping(&mut active, &[i]);
    }
    assert!(closed_within(&mut silent, WAIT), "the silent connection is still open");
    assert!(t0.elapsed() >= Duration::from_secs(1));
    ping(&mut active, b"still here");
    assert!(l4.stat("idle_closed") >= 1, "{}", l4.status());
    drop(active);
    assert!(eventually(WAIT, || l4.stat("active") == 0), "{}", l4.status());
}

#[test]
fn max_connections_queues_one_more_then_refuses_it_and_serves_it_when_a_slot_frees() {
    let echo = TcpServer::start(Mode::Echo);
    let l4 = L4::start(&[echo.addr], "", "    max_connections: 2\n    queue_timeout: 1s\n");
    let mut c1 = connect(l4.addr);
    let mut c2 = connect(l4.addr);
    ping(&mut c1, b"1");
    ping(&mut c2, b"2");

    // A third waits (not served: no echo) and is closed once the 1 s wait is over.
    let mut c3 = connect(l4.addr);
    c3.write_all(b"3").unwrap();
    assert!(eventually(WAIT, || l4.stat("queued") == 1), "{}", l4.status());
    c3.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut b = [0u8; 1];
    assert!(
        c3.read(&mut b).is_err(),
        "the third connection was served while two were open"
    );
    assert!(closed_within(&mut c3, WAIT), "the third connection was never closed");
    assert_eq!(l4.stat("refused"), 1);
    // The probe of L4::start, c1 and c2 (the count lags the kernel's accept by a poll).
    assert!(eventually(WAIT, || echo.accepted() >= 3));
    assert_eq!(echo.accepted(), 3, "a refused client reached the server");

    // A fourth waits too, and gets the slot the moment one closes.
    let mut c4 = connect(l4.addr);
    c4.write_all(b"4").unwrap();
    assert!(eventually(WAIT, || l4.stat("queued") == 1), "{}", l4.status());
    drop(c1);
    let mut back = [0u8; 1];
    c4.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"4");
    assert_eq!(l4.stat("refused"), 1);
    ping(&mut c2, b"2");
}

#[test]
fn a_connection_waiting_for_a_server_is_open_though_not_yet_active() {
    let echo = TcpServer::start(Mode::Echo);
    let l4 = L4::start(&[echo.addr], "    max_conns: 1\n    queue_timeout: 5s\n", "");
    assert_eq!(l4.stat("open"), 0, "{}", l4.status());
    let mut c1 = connect(l4.addr);
    ping(&mut c1, b"1");
    // The second waits inside the connect for the server's only slot: not queued for the
    // listener, not forwarding, but held all the same.
    let mut c2 = connect(l4.addr);
    c2.write_all(b"2").unwrap();
    assert!(eventually(WAIT, || l4.stat("open") == 2), "{}", l4.status());
    let st = l4.status();
    assert_eq!(
        (st["active"].as_u64(), st["queued"].as_u64()),
        (Some(1), Some(0)),
        "{st}"
    );

    drop(c1);
    let mut back = [0u8; 1];
    c2.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"2");
    assert!(eventually(WAIT, || l4.stat("open") == 1), "{}", l4.status());
    drop(c2);
    assert!(eventually(WAIT, || l4.stat("open") == 0), "{}", l4.status());
    assert_eq!(l4.stat("active"), 0);
}

#[test]
fn a_client_reset_closes_its_server_side_and_breaks_nothing() {
    let echo = TcpServer::start(Mode::Echo);
    let l4 = L4::start(&[echo.addr], "", "");
    let mut c = connect(l4.addr);
    ping(&mut c, b"before");
    assert!(eventually(WAIT, || l4.stat("active") == 1));
    reset(c);
    assert!(eventually(WAIT, || l4.stat("active") == 0), "{}", l4.status());
    // The server's side of it was closed too, not left dangling.
    assert!(eventually(WAIT, || echo.open.load(std::sync::atomic::Ordering::SeqCst) == 0));
    let mut c = connect(l4.addr);
    ping(&mut c, b"after");
    let st = l4.status();
    assert!(st["errors"].as_u64().unwrap() >= 1, "{st}");
}

#[test]
fn a_tls_listener_terminates_and_forwards_plaintext() {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    use scimitar::tls::testing::{Ca, Leaf};

    let dir = scratch_dir("l4tls");
    let ca = Ca::new("l4 test CA").unwrap();
    let (crt, key) = ca
        .write_leaf(&dir, "edge", &Leaf::server("edge.test", &["edge.test"]))
        .unwrap();
    let ca_pem = ca.write_ca(&dir, "ca").unwrap();
    let srv = TcpServer::start(Mode::ReplyAfterEof);
    let tls = format!("      cert: \"{}\"\n      key: \"{}\"\n", crt.display(), key.display());
    let l4 = L4::start_tls(&[srv.addr], "", "", Some(&tls));

    let mut b = SslConnector::builder(SslMethod::tls()).unwrap();
    b.set_ca_file(&ca_pem).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    let connector = b.build();
    let tcp = connect(l4.addr);
    let mut s = connector.connect("edge.test", tcp).unwrap();
    let msg = b"plaintext at the server";
    s.write_all(msg).unwrap();
    // close_notify is the TLS half-close; the server gets a FIN and still answers.
    s.shutdown().unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    // The server counted the plaintext, not TLS records.
    assert_eq!(reply, format!("got {} bytes", msg.len()));
    let st = l4.status();
    assert_eq!(st["tls"], true);
    assert!(st["handshakes"].as_u64().unwrap() >= 1, "{st}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_layer_4_example_config_passes_the_check() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimitar"))
        .arg("-t")
        .arg("-c")
        .arg(repo().join("conf/l4-example.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("test is successful"), "{text}");
}

#[test]
fn a_tls_pool_is_spoken_tls_with_its_sni_ca_and_client_certificate() {
    use scimitar::tls::testing::{Ca, Leaf};

    let dir = scratch_dir("l4up");
    let ca = Ca::new("l4 upstream CA").unwrap();
    let ca_pem = ca.write_ca(&dir, "ca").unwrap();
    let (crt, key) = ca
        .write_leaf(&dir, "backend", &Leaf::server("backend.test", &["backend.test"]))
        .unwrap();
    let (ccrt, ckey) = ca.write_leaf(&dir, "client", &Leaf::client("scimitar", &[])).unwrap();
    let srv = TlsEchoServer::start(&crt, &key, Some(&ca_pem));
    let pool_tls = |sni: &str| {
        format!(
            "    tls:\n      sni: {sni}\n      ca: \"{}\"\n      cert: \"{}\"\n      key: \"{}\"\n",
            ca_pem.display(),
            ccrt.display(),
            ckey.display()
        )
    };

    let good = L4::start(&[srv.addr], &pool_tls("backend.test"), "");
    let mut c = connect(good.addr);
    ping(&mut c, b"over tls upstream");
    assert!(srv.handshakes.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    // A name the certificate does not carry fails verification: a connect failure, and the
    // client is closed without a byte.
    let bad = L4::start_tls(&[srv.addr], &pool_tls("other.test"), "", None);
    let mut c = connect(bad.addr);
    assert!(closed_within(&mut c, WAIT));
    assert!(bad.stat("connect_failures") >= 1, "{}", bad.status());
    let _ = std::fs::remove_dir_all(&dir);
}
