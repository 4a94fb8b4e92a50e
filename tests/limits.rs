//! Rate limits (429 + exact Retry-After + RateLimit headers), overload shedding, body limits
//! before upstream contact, and limits shared by two scimitar processes through Redis.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// These tests measure rates and concurrency: run them one at a time so one's load cannot
/// skew another's timing.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn limited_proxy(up: &TestUpstream, policies: &str, route_extra: &str, top_extra: &str) -> Proxy {
    Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /{{tenant}}/scim/v2\n    upstream: p\n{route_extra}rate_limits:\n{top_extra}  policies:\n{policies}",
        pool_yaml("p", &[up.addr], "")
    ))
}

#[test]
fn a_burst_beyond_the_limit_gets_exactly_the_expected_429s() {
    let _serial = serial();
    let up = TestUpstream::start("u", Behavior::Echo);
    let px = limited_proxy(
        &up,
        "    tenant-writes: {key: [tenant], rate: 10/m, burst: 5}\n",
        "    rate_limits: [tenant-writes]\n",
        "",
    );
    let mut ok = 0;
    let mut limited = Vec::new();
    for i in 0..8 {
        let r = px.send("POST", "/acme/scim/v2/Users", &[], Some("{}"));
        assert_eq!(
            r.header("ratelimit-policy"),
            Some("\"tenant-writes\";q=10;w=60"),
            "on every answer"
        );
        match r.status {
            200 => {
                ok += 1;
                let want = format!("\"tenant-writes\";r={};t=", 4 - i);
                assert!(
                    r.header("ratelimit").unwrap().starts_with(&want),
                    "{:?}",
                    r.header("ratelimit")
                );
            }
            429 => limited.push(r),
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(limited.len(), 3);
    assert_eq!(up.hits(), 5, "refused requests never reach the upstream");
    for r in &limited {
        let detail = r.assert_scim_error(429);
        assert!(detail.contains("tenant-writes"), "{detail}");
        // One token every 6 s at 10/m; a few ms have passed, so exactly 6 (rounded up).
        let ra: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert_eq!(ra, 6);
        assert!(r.header("ratelimit").unwrap().starts_with("\"tenant-writes\";r=0;"));
    }

    // Another tenant has its own budget.
    let others: Vec<u16> = (0..6)
        .map(|_| px.send("POST", "/globex/scim/v2/Users", &[], Some("{}")).status)
        .collect();
    assert_eq!(others, [200, 200, 200, 200, 200, 429]);
}

#[test]
fn endpoint_classes_have_separate_budgets() {
    let _serial = serial();
    let up = TestUpstream::start("u", Behavior::Echo);
    let px = limited_proxy(
        &up,
        "    bulk: {key: [tenant], rate: 1/m, burst: 1, classes: [bulk]}\n    reads: {key: [tenant, class], rate: 100/s, burst: 100, classes: [users.read]}\n",
        "    rate_limits: [bulk, reads]\n",
        "",
    );
    assert_eq!(px.send("POST", "/acme/scim/v2/Bulk", &[], Some("{}")).status, 200);
    let r = px.send("POST", "/acme/scim/v2/Bulk", &[], Some("{}"));
    r.assert_scim_error(429);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 59);
    for _ in 0..20 {
        let r = px.get("/acme/scim/v2/Users");
        assert_eq!(r.status, 200, "reads are not charged to the bulk budget");
        assert_eq!(r.header("ratelimit-policy"), Some("\"reads\";q=100;w=1"));
    }
}

#[test]
fn a_full_pool_queues_briefly_then_sheds_with_503() {
    let _serial = serial();
    let up = TestUpstream::start("slow", Behavior::Stall(Duration::from_millis(700)));
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: p\n",
        pool_yaml(
            "p",
            &[up.addr],
            "    max_inflight: 2\n    queue: 2\n    queue_timeout: 3s\n"
        )
    ));
    let addr = px.addr;
    let rs = concurrently(8, move |_| http(addr, "GET", "/scim/v2/Users", &[], None));
    let ok = rs.iter().filter(|r| r.status == 200).count();
    let shed: Vec<&Response> = rs.iter().filter(|r| r.status == 503).collect();
    assert_eq!((ok, shed.len()), (4, 4), "2 in flight + 2 queued served, the rest shed");
    for r in shed {
        let d = r.assert_scim_error(503);
        assert!(d.contains("queue is full"), "{d}");
        assert!(
            r.header("x-request-id").is_some(),
            "proxy-made answers carry the request id"
        );
        assert_eq!(r.header("retry-after"), Some("3"));
    }
    assert_eq!(up.max_concurrent(), 2, "the upstream never saw more than max_inflight");
    assert_eq!(up.hits(), 4);
    let s = px.status();
    assert_eq!(s["pools"][0]["overload"]["shed"], 4);
}

#[test]
fn max_conns_holds_requests_for_a_busy_server_instead_of_sending_them_on() {
    let _serial = serial();
    let a = TestUpstream::start("a", Behavior::Stall(Duration::from_millis(300)));
    let b = TestUpstream::start("b", Behavior::Stall(Duration::from_millis(300)));
    // Affinity pool: one token's requests wait for their own server, one at a time.
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: p\n    affinity: {{key: [token]}}\n",
        pool_yaml(
            "p",
            &[a.addr, b.addr],
            "    selection: consistent\n    max_conns: 1\n    queue_timeout: 5s\n"
        )
    ));
    let addr = px.addr;
    let rs = concurrently(4, move |_| {
        http(
            addr,
            "GET",
            "/scim/v2/Users/1",
            &[("authorization", "Bearer one")],
            None,
        )
    });
    assert!(rs.iter().all(|r| r.status == 200), "all served in turn: {rs:?}");
    assert_eq!(a.hits() + b.hits(), 4);
    assert_eq!(
        (a.max_concurrent().max(b.max_concurrent()), a.hits().min(b.hits())),
        (1, 0),
        "one server, one request at a time"
    );

    // Round robin: a full server's request goes to a free one; with both full and a short
    // wait, the rest get 503 + Retry-After rather than a pile-up.
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: p\n",
        pool_yaml("p", &[a.addr, b.addr], "    max_conns: 1\n    queue_timeout: 100ms\n")
    ));
    let (ha, hb) = (a.hits(), b.hits());
    let addr = px.addr;
    let rs = concurrently(4, move |_| http(addr, "GET", "/scim/v2/Users/1", &[], None));
    let ok = rs.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 2, "one per server: {rs:?}");
    assert_eq!((a.hits() - ha, b.hits() - hb), (1, 1));
    for r in rs.iter().filter(|r| r.status != 200) {
        let d = r.assert_scim_error(503);
        assert!(d.contains("max_conns"), "{d}");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert_eq!(px.status()["pools"][0]["max_conns_timeouts"], 2);
}

#[test]
fn oversized_bodies_get_413_before_any_upstream_contact() {
    let _serial = serial();
    let up = TestUpstream::start("u", Behavior::Echo);
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: p\n    max_body: {{default: 64KiB, bulk: 1KiB}}\n",
        pool_yaml("p", &[up.addr], "")
    ));
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096));
    let d = px
        .send("POST", "/scim/v2/Bulk", &[], Some(&body))
        .assert_scim_error(413);
    assert!(d.contains("1024 bytes"), "{d}");
    assert_eq!(up.hits(), 0);
    assert_eq!(
        px.send("POST", "/scim/v2/Users", &[], Some(&body)).status,
        200,
        "64 KiB for users"
    );
    assert_eq!(up.hits(), 1);
}

/// Drives both proxies for `dur` from 3 threads each and returns (admitted, elapsed).
fn hammer(proxies: &[std::net::SocketAddr], dur: Duration) -> (usize, Duration) {
    let admitted = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut threads = Vec::new();
    for &addr in proxies {
        for _ in 0..3 {
            let (admitted, errors, stop) = (admitted.clone(), errors.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(SeqCst) && n < 20_000 {
                    n += 1;
                    match client::try_http(addr, "GET", "/acme/scim/v2/Users", &[], None) {
                        Ok(r) if r.status == 200 => {
                            admitted.fetch_add(1, SeqCst);
                        }
                        Ok(r) if r.status == 429 => {}
                        _ => {
                            errors.fetch_add(1, SeqCst);
                        }
                    }
                }
            }));
        }
    }
    std::thread::sleep(dur);
    stop.store(true, SeqCst);
    for t in threads {
        let _ = t.join();
    }
    assert_eq!(errors.load(SeqCst), 0, "only 200s and 429s");
    (admitted.load(SeqCst), start.elapsed())
}

const SHARED: &str = "    per-tenant: {key: [tenant], rate: 50/s, burst: 5}\n";

#[test]
fn two_proxies_sharing_redis_hold_the_combined_limit() {
    let _serial = serial();
    let redis = RedisServer::start();
    let up = TestUpstream::start("u", Behavior::Echo);
    let store = format!("  store: redis\nredis: {{url: \"{}\", timeout: 200ms}}\n", redis.url());
    // `redis:` is a top-level section: close rate_limits' policies first.
    let mk = |store: &str| {
        Proxy::start(&format!(
            "upstreams:\n{}routes:\n  - base_path: /{{tenant}}/scim/v2\n    upstream: p\n    rate_limits: [per-tenant]\nrate_limits:\n  policies:\n{SHARED}{store}",
            pool_yaml("p", &[up.addr], "")
        ))
    };
    let (p1, p2) = (mk(&store), mk(&store));
    let (admitted, elapsed) = hammer(&[p1.addr, p2.addr], Duration::from_secs(2));
    let expected = 50.0 * elapsed.as_secs_f64() + 5.0;
    println!("shared limit 50/s over {elapsed:?} on two proxies: admitted {admitted}, expected {expected:.0}");
    let ratio = admitted as f64 / expected;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "combined admitted rate within 10%: {ratio:.3}"
    );
    assert!(
        p1.status()["rate_limits"]["redis"]["shared_decisions"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        p2.status()["rate_limits"]["redis"]["shared_decisions"]
            .as_u64()
            .unwrap()
            > 0
    );

    // The same load on two proxies with local limits admits about twice as much: the test
    // above would notice if the proxies were not sharing.
    let (l1, l2) = (mk(""), mk(""));
    let (local_admitted, elapsed) = hammer(&[l1.addr, l2.addr], Duration::from_secs(2));
    let local_expected = 50.0 * elapsed.as_secs_f64() + 5.0;
    println!(
        "local limits on two proxies: admitted {local_admitted} ({:.2}× one limit)",
        local_admitted as f64 / local_expected
    );
    assert!(local_admitted as f64 > 1.6 * local_expected);
}

#[test]
fn requests_keep_flowing_when_redis_dies_and_sharing_resumes_when_it_returns() {
    let _serial = serial();
    let mut redis = RedisServer::start();
    let up = TestUpstream::start("u", Behavior::Echo);
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /{{tenant}}/scim/v2\n    upstream: p\n    rate_limits: [per-tenant]\nrate_limits:\n  store: redis\n  policies:\n{SHARED}redis: {{url: \"{}\", timeout: 100ms, backoff: 300ms}}\n",
        pool_yaml("p", &[up.addr], ""),
        redis.url()
    ));
    let redis_stats = || px.status()["rate_limits"]["redis"].clone();
    assert!(eventually(Duration::from_secs(5), || {
        px.get("/acme/scim/v2/Users");
        redis_stats()["shared_decisions"].as_u64().unwrap() > 0
    }));

    redis.kill();
    let (admitted, elapsed) = hammer(&[px.addr], Duration::from_secs(1));
    println!("redis down: {admitted} admitted in {elapsed:?} on local limits");
    assert!(admitted > 0, "requests keep flowing");
    let expected = 50.0 * elapsed.as_secs_f64() + 5.0;
    assert!(
        (admitted as f64) < 1.2 * expected,
        "the local limit still applies: {admitted}"
    );
    let s = redis_stats();
    assert!(s["local_fallbacks"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["up"], false);

    redis.restart();
    let before = redis_stats()["shared_decisions"].as_u64().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            px.get("/acme/scim/v2/Users");
            redis_stats()["shared_decisions"].as_u64().unwrap() > before
        }),
        "shared limits resume once Redis is back: {}",
        redis_stats()
    );
    assert!(px.log().contains("fall back to local"), "the outage is logged");
}

#[test]
fn an_unreachable_redis_is_logged_without_its_password() {
    let up = TestUpstream::start("u", Behavior::Echo);
    // Nothing listens there: the first decision's connect fails and the outage is logged.
    let port = free_port();
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /{{tenant}}/scim/v2\n    upstream: p\n    rate_limits: [per-tenant]\nrate_limits:\n  store: redis\n  policies:\n{SHARED}redis: {{url: \"redis://scimitar:hunter2@127.0.0.1:{port}/0?password=hunter3\", timeout: 100ms}}\n",
        pool_yaml("p", &[up.addr], ""),
    ));
    let logged = eventually(Duration::from_secs(5), || {
        px.get("/acme/scim/v2/Users");
        px.log().contains("fall back to local")
    });
    let log = px.log();
    assert!(logged, "the outage is logged:\n{log}");
    assert!(
        log.contains(&format!("redis redis://scimitar:***@127.0.0.1:{port}/0?password=***:")),
        "{log}"
    );
    assert!(!log.contains("hunter2") && !log.contains("hunter3"), "{log}");
}

#[test]
fn a_tenant_over_its_share_of_a_full_pool_is_shed_while_another_waits() {
    let _serial = serial();
    let up = TestUpstream::start("slow", Behavior::Stall(Duration::from_millis(800)));
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /{{tenant}}/scim/v2\n    upstream: p\n",
        pool_yaml(
            "p",
            &[up.addr],
            "    max_inflight: 2\n    queue: 10\n    queue_timeout: 3s\n    tenant_share: 0.5\n"
        )
    ));
    let addr = px.addr;
    // acme fills the pool: free slots are never refused, whatever the share.
    let busy =
        std::thread::spawn(move || concurrently(2, move |_| http(addr, "GET", "/acme/scim/v2/Users", &[], None)));
    assert!(eventually(Duration::from_secs(2), || px.status()["pools"][0]
        ["overload"]["inflight"]
        == 2));
    // The pool is full: acme already holds more than half, globex holds nothing.
    let more_acme = std::thread::spawn(move || http(addr, "GET", "/acme/scim/v2/Users", &[], None));
    let globex = std::thread::spawn(move || http(addr, "GET", "/globex/scim/v2/Users", &[], None));
    let more_acme = more_acme.join().unwrap();
    let d = more_acme.assert_scim_error(503);
    assert!(d.contains("share"), "{d}");
    assert_eq!(
        globex.join().unwrap().status,
        200,
        "the other tenant queued and was served"
    );
    assert!(busy.join().unwrap().iter().all(|r| r.status == 200));
}
