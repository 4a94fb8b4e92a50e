//! Read-your-writes across replicas that share no state: scim2-tester through scimitar in
//! front of three independent scim2-server processes passes with token affinity and fails
//! with plain round robin; and a write pins its key to the server that took it.

mod common;

use std::time::Duration;

use common::*;

fn proxy_over(servers: &[std::net::SocketAddr], pool_extra: &str, route_extra: &str) -> Proxy {
    Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /v2\n    upstream: scim\n{route_extra}",
        pool_yaml("scim", servers, pool_extra)
    ))
}

#[test]
fn conformance_across_independent_replicas_needs_affinity() {
    let replicas: Vec<ScimServer> = (0..3).map(|_| ScimServer::start()).collect();
    let addrs: Vec<_> = replicas.iter().map(|s| s.addr).collect();
    let round_robin = proxy_over(&addrs, "    selection: round_robin\n", "");
    let affinity = proxy_over(
        &addrs,
        "    selection: consistent\n",
        "    affinity: {key: [token, tenant, client_ip], pin_after_write: 30s}\n",
    );
    let r = scim2_tester(
        &[
            format!("http://{}/v2", round_robin.addr),
            format!("http://{}/v2", affinity.addr),
        ],
        Some("idp-job-42"),
    );
    let (rr, aff) = (&r[0], &r[1]);
    println!(
        "scim2-tester over 3 independent replicas, round robin: {} of {} passed, {} failed",
        rr["success"], rr["total"], rr["failed"]
    );
    println!(
        "scim2-tester over 3 independent replicas, token affinity: {} of {} passed, {} failed",
        aff["success"], aff["total"], aff["failed"]
    );
    assert!(aff["total"].as_u64().unwrap() >= 100, "{aff}");
    assert_eq!(aff["failed"], 0, "affinity keeps every check on one replica: {aff}");
    assert!(
        rr["failed"].as_u64().unwrap() >= 20,
        "round robin over replicas without shared state must break read-your-writes: {rr}"
    );
}

#[test]
fn a_write_pins_its_key_to_the_server_that_took_it_while_the_ring_changes() {
    let mut a = TestUpstream::start("a", Behavior::Echo);
    let mut b = TestUpstream::start("b", Behavior::Echo);
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: p\n    affinity: {{key: [token], pin_after_write: 4s}}\n",
        pool_yaml(
            "p",
            &[a.addr, b.addr],
            "    selection: consistent\n    health_check: {path: /hc, interval: 100ms, timeout: 100ms, rise: 1, fall: 1}\n    passive: {max_fails: 0}\n"
        )
    ));
    let server_for = |token: &str, method: &str| -> String {
        let auth = format!("Bearer {token}");
        let r = px.send(
            method,
            "/scim/v2/Users",
            &[("Authorization", auth.as_str())],
            Some("{}"),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["server"].as_str().unwrap().to_string()
    };
    // Find a token whose ring home is `a`, and one more that also lives on `a`.
    let homed_on_a: Vec<String> = (0..200)
        .map(|i| format!("tok{i}"))
        .filter(|t| server_for(t, "GET") == "a")
        .take(2)
        .collect();
    assert_eq!(homed_on_a.len(), 2);
    let (writer, reader) = (&homed_on_a[0], &homed_on_a[1]);
    for _ in 0..5 {
        assert_eq!(server_for(writer, "GET"), "a", "same key, same server");
    }

    a.kill();
    assert!(eventually(Duration::from_secs(3), || !px.server_healthy(0, a.addr)));
    assert_eq!(
        server_for(writer, "POST"),
        "b",
        "the write fails over to b, and pins there"
    );
    let pinned_at = std::time::Instant::now();
    a.restart();
    assert!(eventually(Duration::from_secs(3), || px.server_healthy(0, a.addr)));

    assert_eq!(
        server_for(reader, "GET"),
        "a",
        "an unpinned key is back on its ring home"
    );
    for _ in 0..5 {
        assert_eq!(server_for(writer, "GET"), "b", "the writer reads its own write on b");
    }
    // A write while a is home again still goes to the pin, but does not renew it: a key that
    // keeps writing must not stay away from its home for as long as it writes.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(server_for(writer, "POST"), "b", "within the window, the pin holds");
    let wrote_at = std::time::Instant::now();
    std::thread::sleep((pinned_at + Duration::from_millis(4300)).saturating_duration_since(std::time::Instant::now()));
    assert!(
        wrote_at.elapsed() < Duration::from_secs(4),
        "a renewed pin would still hold now"
    );
    assert_eq!(
        server_for(writer, "GET"),
        "a",
        "after the first write's pin window the ring decides again"
    );
    b.kill();
}

#[test]
fn every_instance_with_the_same_config_makes_the_same_choice() {
    let ups: Vec<TestUpstream> = (0..3)
        .map(|i| TestUpstream::start(&format!("u{i}"), Behavior::Echo))
        .collect();
    let addrs: Vec<_> = ups.iter().map(|u| u.addr).collect();
    let conf = format!(
        "key_secret: fleet-secret\nupstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: p\n    affinity: {{key: [token]}}\n",
        pool_yaml("p", &addrs, "    selection: consistent\n")
    );
    let (p1, p2) = (Proxy::start(&conf), Proxy::start(&conf));
    let mut used = std::collections::HashSet::new();
    for i in 0..30 {
        let auth = format!("Bearer token-{i}");
        let h = [("Authorization", auth.as_str())];
        let a = p1.send("GET", "/scim/v2/Users", &h, None).json()["server"].clone();
        let b = p2.send("GET", "/scim/v2/Users", &h, None).json()["server"].clone();
        assert_eq!(a, b, "token-{i}: both instances pick the same server");
        used.insert(a.to_string());
    }
    assert_eq!(used.len(), 3, "tokens spread over the pool");
    // The raw credential never shows up in the proxy's own log.
    assert!(!p1.log().contains("token-1"));
}
