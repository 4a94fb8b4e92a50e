//! Pools under failure: spread, affinity stability, health checks, retries, and the rule that
//! a request which may have reached an upstream is never replayed unless it is safe.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

fn routes(pool: &str) -> String {
    format!("routes:\n  - base_path: /scim/v2\n    upstream: {pool}\n")
}

#[test]
fn round_robin_spreads_evenly() {
    let ups: Vec<TestUpstream> = (0..3)
        .map(|i| TestUpstream::start(&format!("u{i}"), Behavior::Echo))
        .collect();
    let addrs: Vec<_> = ups.iter().map(|u| u.addr).collect();
    let px = Proxy::start(&format!(
        "upstreams:\n{}{}",
        pool_yaml("p", &addrs, "    selection: round_robin\n"),
        routes("p")
    ));
    for _ in 0..30 {
        assert_eq!(px.get("/scim/v2/Users").status, 200);
    }
    let hits: Vec<usize> = ups.iter().map(|u| u.hits()).collect();
    assert_eq!(hits, [10, 10, 10]);
}

#[test]
fn consistent_hashing_keeps_each_tenant_on_one_server() {
    let ups: Vec<TestUpstream> = (0..3)
        .map(|i| TestUpstream::start(&format!("u{i}"), Behavior::Echo))
        .collect();
    let addrs: Vec<_> = ups.iter().map(|u| u.addr).collect();
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /{{tenant}}/scim/v2\n    upstream: p\n",
        pool_yaml("p", &addrs, "    selection: consistent\n")
    ));
    let mut home: HashMap<String, String> = HashMap::new();
    for round in 0..4 {
        for t in 0..24 {
            let tenant = format!("tenant{t}");
            let server = px.get(&format!("/{tenant}/scim/v2/Users")).json()["server"]
                .as_str()
                .unwrap()
                .to_string();
            let first = home.entry(tenant.clone()).or_insert_with(|| server.clone());
            assert_eq!(*first, server, "{tenant} moved in round {round}");
        }
    }
    let used: std::collections::HashSet<_> = home.values().collect();
    assert_eq!(used.len(), 3, "24 tenants spread over all three servers: {home:?}");
}

#[test]
fn a_dead_server_leaves_rotation_within_the_health_check_window_and_returns() {
    let mut a = TestUpstream::start("a", Behavior::Echo);
    let b = TestUpstream::start("b", Behavior::Echo);
    let hc = "    selection: round_robin\n    health_check:\n      path: /scim/v2/ServiceProviderConfig\n      interval: 200ms\n      timeout: 200ms\n      rise: 2\n      fall: 2\n    passive: {max_fails: 0}\n    retries: 0\n";
    let px = Proxy::start(&format!(
        "upstreams:\n{}{}",
        pool_yaml("p", &[a.addr, b.addr], hc),
        routes("p")
    ));
    assert!(
        eventually(Duration::from_secs(5), || a.hits() > 0 && b.hits() > 0),
        "probes reach both"
    );

    a.kill();
    // fall 2 × 200 ms interval (+ probe timeout): out well within 2 s.
    assert!(
        eventually(Duration::from_secs(2), || !px.server_healthy(0, a.addr)),
        "a left rotation"
    );
    let before = b.hits();
    for _ in 0..20 {
        let r = px.get("/scim/v2/Users");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["server"], "b");
    }
    assert!(b.hits() >= before + 20);

    a.restart();
    assert!(
        eventually(Duration::from_secs(3), || px.server_healthy(0, a.addr)),
        "a came back"
    );
    let mut saw_a = false;
    for _ in 0..10 {
        saw_a |= px.get("/scim/v2/Users").json()["server"] == "a";
    }
    assert!(saw_a, "a takes traffic again after recovering");
}

#[test]
fn connect_failures_are_retried_on_another_server_for_every_method() {
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let live = TestUpstream::start("live", Behavior::Echo);
    let px = Proxy::start(&format!(
        "upstreams:\n{}{}",
        pool_yaml(
            "p",
            &[dead, live.addr],
            "    selection: round_robin\n    passive: {max_fails: 0}\n    retries: 1\n"
        ),
        routes("p")
    ));
    for (i, method) in ["POST", "PATCH", "GET", "PUT", "DELETE", "POST"].iter().enumerate() {
        let path = if *method == "POST" {
            "/scim/v2/Users".to_string()
        } else {
            format!("/scim/v2/Users/u{i}")
        };
        let r = px.send(method, &path, &[], Some("{}"));
        assert_eq!(r.status, 200, "{method}: {}", r.text());
        assert_eq!(r.json()["server"], "live");
    }
    assert_eq!(live.hits(), 6, "each request reached the live server exactly once");
}

#[test]
fn a_post_whose_upstream_dies_mid_request_is_never_replayed() {
    let closer = TestUpstream::start("closer", Behavior::CloseAfterRequest);
    let other = TestUpstream::start("other", Behavior::CloseAfterRequest);
    let px = Proxy::start(&format!(
        "upstreams:\n{}{}",
        pool_yaml(
            "p",
            &[closer.addr, other.addr],
            "    selection: round_robin\n    passive: {max_fails: 0}\n    retries: 1\n"
        ),
        routes("p")
    ));
    let user = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"once"}"#;
    let detail = px
        .send("POST", "/scim/v2/Users", &[], Some(user))
        .assert_scim_error(502);
    assert!(!detail.is_empty());
    assert_eq!(
        closer.hits() + other.hits(),
        1,
        "exactly one create reached the upstreams"
    );

    for (method, path) in [("PATCH", "/scim/v2/Users/x"), ("POST", "/scim/v2/Bulk")] {
        let before = closer.hits() + other.hits();
        px.send(method, path, &[], Some("{}")).assert_scim_error(502);
        assert_eq!(closer.hits() + other.hits(), before + 1, "{method} {path} sent once");
    }

    // A GET (safe) and a PUT (idempotent) go to the other server after the first one fails.
    for (method, body) in [("GET", None), ("PUT", Some(user))] {
        let before = closer.hits() + other.hits();
        px.send(method, "/scim/v2/Users/x", &[], body).assert_scim_error(502);
        assert_eq!(closer.hits() + other.hits(), before + 2, "{method} was retried once");
    }
}

#[test]
fn an_answer_cut_mid_way_is_not_retried_onto_another_server() {
    // The client already has a 200 header and part of the body; another server's answer
    // cannot follow it on the same response, so a GET that fails there is not retried.
    let a = TestUpstream::start("a", Behavior::CutMidAnswer);
    let b = TestUpstream::start("b", Behavior::CutMidAnswer);
    let px = Proxy::start(&format!(
        "upstreams:\n{}{}",
        pool_yaml(
            "p",
            &[a.addr, b.addr],
            "    selection: round_robin\n    passive: {max_fails: 0}\n    retries: 1\n"
        ),
        routes("p")
    ));
    let r = common::client::try_http(px.addr, "GET", "/scim/v2/Users/1", &[], None);
    if let Ok(r) = &r {
        assert_eq!(r.status, 200, "the header the client already has");
        assert!(
            r.body.len() < 100,
            "the body is cut, not completed from elsewhere: {}",
            r.text()
        );
    }
    assert_eq!(a.hits() + b.hits(), 1, "one server saw the GET");
}

#[test]
fn a_pool_with_no_healthy_server_answers_503_with_retry_after() {
    let dead1 = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dead2 = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let hc = "    health_check:\n      path: /health\n      interval: 1s\n      timeout: 200ms\n      rise: 1\n      fall: 1\n";
    let px = Proxy::start(&format!(
        "upstreams:\n{}{}",
        pool_yaml("p", &[dead1, dead2], hc),
        routes("p")
    ));
    assert!(eventually(Duration::from_secs(4), || !px.server_healthy(0, dead1)
        && !px.server_healthy(0, dead2)));
    let r = px.get("/scim/v2/Users");
    let detail = r.assert_scim_error(503);
    assert!(detail.contains("no healthy server"), "{detail}");
    assert_eq!(r.header("retry-after"), Some("1"), "Retry-After is the probe interval");
}

#[test]
fn a_stalled_upstream_gives_a_scim_504() {
    let slow = TestUpstream::start("slow", Behavior::Stall(Duration::from_secs(3)));
    let px = Proxy::start(&format!(
        "upstreams:\n{}{}",
        pool_yaml("p", &[slow.addr], "    timeouts: {read: 300ms}\n    retries: 0\n"),
        routes("p")
    ));
    let detail = px.get("/scim/v2/Users").assert_scim_error(504);
    assert!(detail.contains("in time"), "{detail}");
}

#[test]
fn consecutive_5xx_eject_a_server_when_configured() {
    let bad = TestUpstream::start("bad", Behavior::Status(503));
    let good = TestUpstream::start("good", Behavior::Echo);
    let px = Proxy::start(&format!(
        "upstreams:\n{}{}",
        pool_yaml(
            "p",
            &[bad.addr, good.addr],
            "    selection: round_robin\n    passive: {max_fails: 2, eject_for: 30s, count_5xx: true}\n"
        ),
        routes("p")
    ));
    // 4xx never counts: the upstream's own 503s do, and after two the server is out.
    for _ in 0..20 {
        px.get("/scim/v2/Users");
    }
    assert_eq!(bad.hits(), 2, "ejected after two consecutive 503s");
    assert_eq!(good.hits(), 18);
    let s = px.status();
    assert!(s["pools"][0]["servers"][0]["ejected_ms"].as_u64().unwrap() > 20_000);
}
