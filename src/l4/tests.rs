//! The pump on real loopback sockets, in-process: half-close, idle, reset.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use pingora::protocols::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};

use super::forward::{forward, Activity, Counters, End};

const LIMIT: Duration = Duration::from_secs(5);

/// A connected pair: the test's end, and the proxy's end as a Pingora stream.
async fn pair() -> (TcpStream, Stream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (b, _) = l.accept().await.unwrap();
    (a, Box::new(pingora::protocols::l4::stream::Stream::from(b)))
}

struct Rig {
    client: TcpStream,
    server: TcpStream,
    to_server: &'static AtomicU64,
    to_client: &'static AtomicU64,
    task: tokio::task::JoinHandle<End>,
}

async fn rig(idle: Duration) -> Rig {
    let (client, mut c) = pair().await;
    let (server, mut s) = pair().await;
    let to_server: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
    let to_client: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
    let task = tokio::spawn(async move {
        let counters = Counters { to_server, to_client };
        forward(&mut c, &mut s, idle, counters).await
    });
    Rig {
        client,
        server,
        to_server,
        to_client,
        task,
    }
}

async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    timeout(LIMIT, s.read_to_end(&mut v)).await.unwrap().unwrap();
    v
}

#[tokio::test]
async fn half_close_propagates_and_the_other_direction_keeps_flowing() {
    let mut r = rig(Duration::from_secs(30)).await;
    r.client.write_all(b"hello").await.unwrap();
    r.client.shutdown().await.unwrap();
    // The server sees the client's bytes, then EOF…
    assert_eq!(read_to_end(&mut r.server).await, b"hello");
    // …and can still answer over the open direction.
    r.server.write_all(b"bye").await.unwrap();
    r.server.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut r.client).await, b"bye");
    let end = timeout(LIMIT, r.task).await.unwrap().unwrap();
    assert!(matches!(end, End::Closed), "{end:?}");
    assert_eq!(r.to_server.load(Relaxed), 5);
    assert_eq!(r.to_client.load(Relaxed), 3);
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let mut r = rig(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    let end = timeout(LIMIT, r.task).await.unwrap().unwrap();
    assert!(matches!(end, End::Idle), "{end:?}");
    assert!(t0.elapsed() >= Duration::from_millis(200));
    // Both ends see the close.
    let mut buf = [0u8; 1];
    assert_eq!(timeout(LIMIT, r.client.read(&mut buf)).await.unwrap().unwrap_or(0), 0);
    assert_eq!(timeout(LIMIT, r.server.read(&mut buf)).await.unwrap().unwrap_or(0), 0);
}

#[tokio::test]
async fn traffic_keeps_a_connection_alive_past_the_idle_timeout() {
    let mut r = rig(Duration::from_millis(300)).await;
    let mut buf = [0u8; 1];
    // 8 × 100 ms = 800 ms of traffic, well past 300 ms, in both directions by turns.
    for i in 0..8u8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if i % 2 == 0 {
            r.client.write_all(&[i]).await.unwrap();
            timeout(LIMIT, r.server.read_exact(&mut buf)).await.unwrap().unwrap();
        } else {
            r.server.write_all(&[i]).await.unwrap();
            timeout(LIMIT, r.client.read_exact(&mut buf)).await.unwrap().unwrap();
        }
        assert_eq!(buf[0], i);
        assert!(!r.task.is_finished(), "closed while active, at step {i}");
    }
    let end = timeout(LIMIT, r.task).await.unwrap().unwrap();
    assert!(matches!(end, End::Idle), "{end:?}");
}

#[tokio::test]
async fn a_reset_ends_forwarding_without_a_panic() {
    let mut r = rig(Duration::from_secs(30)).await;
    r.client.write_all(b"x").await.unwrap();
    let mut buf = [0u8; 1];
    timeout(LIMIT, r.server.read_exact(&mut buf)).await.unwrap().unwrap();
    socket2::SockRef::from(&r.server)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(r.server);
    let end = timeout(LIMIT, r.task).await.unwrap().unwrap();
    assert!(matches!(end, End::Error(_) | End::Closed), "{end:?}");
}

#[tokio::test]
async fn idle_counts_from_the_last_stamp() {
    let a = Activity::new();
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.stamp();
    let stamped = Instant::now();
    timeout(LIMIT, a.idle(Duration::from_millis(150))).await.unwrap();
    // Measured from the stamp at ~100 ms, not from the start.
    assert!(
        stamped.elapsed() >= Duration::from_millis(140),
        "{:?}",
        stamped.elapsed()
    );
}

fn tcp_config(listener_extra: &str) -> Result<crate::config::Config, crate::config::Problems> {
    crate::config::from_str(&format!(
        "listeners:\n  - name: tcp\n    address: \"127.0.0.1:7000\"\n    protocol: tcp\n    upstream: p\n{listener_extra}upstreams:\n  p:\n    servers:\n      - address: \"127.0.0.1:7001\"\nroutes:\n  - base_path: /scim/v2\n    upstream: p\n"
    ))
}

#[test]
fn queue_timeout_belongs_to_max_connections() {
    let c = tcp_config("    max_connections: 5\n    queue_timeout: 250ms\n").unwrap();
    let tcp = c.listeners[0].tcp.as_ref().unwrap();
    assert_eq!(tcp.max_connections, Some(5));
    assert_eq!(tcp.queue_timeout, Some(Duration::from_millis(250)));
    let Err(problems) = tcp_config("    queue_timeout: 1s\n") else {
        panic!("queue_timeout without max_connections was accepted");
    };
    let p: Vec<String> = problems.0.iter().map(|p| p.to_string()).collect();
    let want = "listeners[0].queue_timeout: only applies with `max_connections`";
    assert!(p.iter().any(|l| l.starts_with(want)), "{p:?}");
}
