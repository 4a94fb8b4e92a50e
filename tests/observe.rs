//! Metrics and the access log, end to end: a known mix of SCIM requests through scimitar to a
//! real scim2-server moves exactly the expected series; the access log holds one JSON line per
//! request with no credential in it; a stalled log writer drops lines instead of stalling
//! requests; SIGUSR1 reopens the log file after a rotation.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use scimitar::accesslog::FIELDS;

const USER: &str =
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bjensen","name":{"givenName":"Barbara"}}"#;
/// What Entra ID sends to disable a user: `"False"` as a string, `Replace` capitalised.
const ENTRA_DISABLE: &str = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}"#;

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits for the log to hold `n` lines (the writer flushes at least once a second).
fn wait_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let ok = eventually(Duration::from_secs(5), || lines(path).len() >= n);
    let got = lines(path);
    assert!(ok, "wanted {n} lines in {}, have {}", path.display(), got.len());
    got
}

/// The series whose value changed between two scrapes, with the change.
fn moved(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d != 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

#[test]
fn a_known_mix_moves_exactly_the_expected_series() {
    let scim = ScimServer::start();
    let dir = scratch_dir("observe-mix");
    let log = dir.join("access.log");
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /v2\n    upstream: scim\n    rate_limits: [discovery]\nrate_limits:\n  policies:\n    discovery: {{key: [client_ip], rate: 1/m, burst: 3, classes: [discovery]}}\naccess_log: {{path: {}}}\n",
        pool_yaml("scim", &[scim.addr], ""),
        log.display()
    ));
    let before = px.metrics();
    assert_eq!(
        before.get(r#"scimitar_requests_in_flight{upstream="scim"}"#),
        Some(&0.0)
    );

    let r = px.send("POST", "/v2/Users", &[], Some(USER));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(px.get(&format!("/v2/Users/{id}")).status, 200);
    assert_eq!(px.get("/v2/Users").status, 200);
    assert_eq!(px.get("/v2/Users?filter=userName%20eq%20%22bjensen%22").status, 200);
    let r = px.send("PATCH", &format!("/v2/Users/{id}"), &[], Some(ENTRA_DISABLE));
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(px.send("DELETE", &format!("/v2/Users/{id}"), &[], None).status, 204);
    assert_eq!(px.get("/v2/Users/no-such-user").status, 404);
    let burst: Vec<u16> = (0..5).map(|_| px.get("/v2/ServiceProviderConfig").status).collect();
    assert_eq!(burst, [200, 200, 200, 429, 429]);
    assert_eq!(px.get("/elsewhere").status, 404, "no route");

    let after = px.metrics();
    let d = moved(&before, &after);
    let req = |e: &str, o: &str, c: &str, u: &str| {
        format!(r#"scimitar_requests_total{{code="{c}",endpoint="{e}",operation="{o}",upstream="{u}"}}"#)
    };
    let backend = scim.addr.to_string();
    let mut want: BTreeMap<String, f64> = [
        (req("users", "create", "2xx", "scim"), 1.0),
        (req("users", "get", "2xx", "scim"), 1.0),
        (req("users", "list", "2xx", "scim"), 2.0),
        // The Entra PATCH and the DELETE: a deprovisioning each.
        (req("users", "deprovision", "2xx", "scim"), 2.0),
        (req("users", "get", "4xx", "scim"), 1.0),
        (req("service_provider_config", "discovery", "2xx", "scim"), 3.0),
        (req("service_provider_config", "discovery", "4xx", "scim"), 2.0),
        (req("other", "other", "4xx", ""), 1.0),
        (
            r#"scimitar_rejected_requests_total{policy="discovery",reason="rate_limit",upstream=""}"#.into(),
            2.0,
        ),
        (
            r#"scimitar_rejected_requests_total{policy="",reason="no_route",upstream=""}"#.into(),
            1.0,
        ),
        // Answers from the server: the 429s never reached it.
        (
            format!(r#"scimitar_upstream_responses_total{{backend="{backend}",code="2xx",upstream="scim"}}"#),
            9.0,
        ),
        (
            format!(r#"scimitar_upstream_responses_total{{backend="{backend}",code="4xx",upstream="scim"}}"#),
            1.0,
        ),
        (
            r#"scimitar_upstream_response_duration_seconds_count{upstream="scim"}"#.into(),
            10.0,
        ),
        (
            r#"scimitar_upstream_response_duration_seconds_bucket{upstream="scim",le="+Inf"}"#.into(),
            10.0,
        ),
    ]
    .into_iter()
    .collect();
    // Each request is timed under its own endpoint, operation and pool.
    let timed = [
        ("users", "create", "scim", 1.0),
        ("users", "get", "scim", 2.0),
        ("users", "list", "scim", 2.0),
        ("users", "deprovision", "scim", 2.0),
        ("service_provider_config", "discovery", "scim", 5.0),
        ("other", "other", "", 1.0),
    ];
    for (e, o, u, n) in timed {
        let l = format!(r#"endpoint="{e}",operation="{o}",upstream="{u}""#);
        want.insert(format!("scimitar_request_duration_seconds_count{{{l}}}"), n);
        want.insert(
            format!(r#"scimitar_request_duration_seconds_bucket{{{l},le="+Inf"}}"#),
            n,
        );
        let sum = d
            .get(&format!("scimitar_request_duration_seconds_sum{{{l}}}"))
            .copied()
            .unwrap_or(0.0);
        assert!(sum > 0.0 && sum < 10.0, "{l}: duration sum {sum}");
    }
    let sum = d
        .get(r#"scimitar_upstream_response_duration_seconds_sum{upstream="scim"}"#)
        .copied()
        .unwrap_or(0.0);
    assert!(sum > 0.0 && sum < 10.0, "upstream duration sum {sum}");
    // Finite buckets and sums depend on timing; every other series that moved is listed.
    let exact: BTreeMap<String, f64> = d
        .into_iter()
        .filter(|(k, _)| {
            let timing = k.contains("_sum{") || (k.contains("_bucket{") && !k.contains(r#"le="+Inf""#));
            // Whether the last client's close has been seen yet is a race, and so is whether
            // the harness's readiness probe (a bare connect) was counted before `before`.
            let racy =
                k.starts_with("scimitar_client_connections{") || k.starts_with("scimitar_client_connections_total{");
            !timing && !racy
        })
        .collect();
    assert_eq!(exact, want);
    // One connection per request (the test client closes each), maybe plus the probe.
    let total = |m: &BTreeMap<String, f64>| {
        m.get(r#"scimitar_client_connections_total{listener="main"}"#)
            .copied()
            .unwrap_or(0.0)
    };
    let conns = total(&after) - total(&before);
    assert!((13.0..=14.0).contains(&conns), "client connections: {conns}");
    assert_eq!(after.get(r#"scimitar_requests_in_flight{upstream="scim"}"#), Some(&0.0));
    assert_eq!(
        after.get(&format!(
            r#"scimitar_upstream_backend_up{{backend="{backend}",upstream="scim"}}"#
        )),
        Some(&1.0)
    );
    assert_eq!(
        after.get(&format!(
            r#"scimitar_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        Some(&1.0)
    );
    assert!(after.get("scimitar_config_hash").is_some_and(|h| *h > 0.0));

    // The status page's traffic section counts the same requests.
    let traffic = &px.status()["traffic"];
    let endpoint = |name: &str| {
        traffic["endpoints"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["endpoint"] == name))
            .cloned()
            .unwrap_or_default()
    };
    let users = endpoint("users");
    assert_eq!(
        (users["requests"].as_u64(), users["errors"].as_u64()),
        (Some(7), Some(0))
    );
    assert_eq!(users["latency_count"], users["requests"]);
    let spc = endpoint("service_provider_config");
    assert_eq!((spc["requests"].as_u64(), spc["rejected"].as_u64()), (Some(5), Some(2)));
    assert_eq!(traffic["tenants"]["tracked"], false, "no tenancy configured");
    // Refusals the proxy made are listed, newest first: the no-route 404, then the two 429s.
    let errors: Vec<(u64, &str)> = traffic["recent_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["status"].as_u64().unwrap(), e["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            (404, "/elsewhere"),
            (429, "/v2/ServiceProviderConfig"),
            (429, "/v2/ServiceProviderConfig")
        ]
    );

    // The access log saw the same mix: one line per request, the deprovisions among them.
    let got = wait_lines(&log, 13);
    assert_eq!(got.len(), 13);
    let ops: Vec<&str> = got.iter().map(|l| l["operation"].as_str().unwrap()).collect();
    assert_eq!(ops.iter().filter(|o| **o == "deprovision").count(), 2, "{ops:?}");
    let limited: Vec<&serde_json::Value> = got.iter().filter(|l| l["status"] == 429).collect();
    assert_eq!(limited.len(), 2);
    for l in &limited {
        assert_eq!(l["rate_limit"], "limited:discovery");
        assert_eq!(l["error"], "rate_limit");
        assert_eq!(l["upstream_status"], serde_json::Value::Null);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn access_log_lines_hold_no_secret_and_believe_only_trusted_proxies() {
    let up = TestUpstream::start("u", Behavior::Echo);
    let dir = scratch_dir("observe-log");
    let log = dir.join("access.log");
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /{{tenant}}/scim/v2\n    upstream: p\ntrusted_proxies: [127.0.0.1/32]\naccess_log: {{path: {}}}\n",
        pool_yaml("p", &[up.addr], ""),
        log.display()
    ));
    let secrets = [
        ("Authorization", "Bearer tok-SECRET-bearer-7f3a"),
        ("X-API-Key", "key-SECRET-xapi-91c2"),
        ("Cookie", "session=cookie-SECRET-55d0"),
    ];
    let target =
        "/acme/scim/v2/Users?filter=userName%20eq%20%22filter-SECRET-bjensen%22&access_token=qs-SECRET-0b1e&count=5";
    // From a trusted proxy (127.0.0.1): the client is the rightmost untrusted hop.
    let r = px.send(
        "GET",
        target,
        &[
            secrets[0],
            secrets[1],
            secrets[2],
            ("X-Forwarded-For", "6.6.6.6, 203.0.113.9"),
            ("User-Agent", "Azure AD \"SCIM\" client"),
        ],
        None,
    );
    assert_eq!(r.status, 200);
    // From an untrusted peer (127.0.0.2): its X-Forwarded-For is not believed.
    let mut s = common::tcp::connect_from(Ipv4Addr::new(127, 0, 0, 2), px.addr);
    let r = common::client::exchange(
        &mut s,
        &px.addr.to_string(),
        "POST",
        "/acme/scim/v2/Users?password=pw-SECRET-77aa",
        &[("X-Forwarded-For", "198.51.100.1"), secrets[0]],
        Some(USER),
        true,
    )
    .unwrap();
    assert_eq!(r.status, 200);

    let got = wait_lines(&log, 2);
    assert_eq!(got.len(), 2, "one line per request");
    for l in &got {
        let keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
        for f in FIELDS {
            assert!(keys.contains(&f), "{f} missing from {l}");
        }
        assert_eq!(keys.len(), FIELDS.len(), "{l}");
        assert_eq!(l["upstream"], "p");
        assert_eq!(l["backend"], up.addr.to_string());
        assert_eq!(l["tenant"], "acme");
        assert_eq!(l["attempts"], 1);
        assert_eq!(l["upstream_status"], 200);
        assert_eq!(l["http_version"], "HTTP/1.1");
        assert!(l["request_id"].as_str().is_some_and(|id| id.len() == 32));
        assert!(
            l["ts"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 24),
            "{l}"
        );
    }
    let (get, post) = (&got[0], &got[1]);
    assert_eq!(get["client_ip"], "203.0.113.9");
    assert_eq!(
        get["path"],
        r#"/acme/scim/v2/Users?filter=userName eq "***"&access_token=***&count=5"#
    );
    assert_eq!(
        (get["endpoint"].as_str(), get["operation"].as_str()),
        (Some("users"), Some("list"))
    );
    assert_eq!(get["user_agent"], "Azure AD \"SCIM\" client");
    assert_eq!(post["client_ip"], "127.0.0.2");
    assert_eq!(post["path"], "/acme/scim/v2/Users?password=***");
    assert_eq!(post["bytes_in"], USER.len());
    assert_eq!(post["operation"], "create");

    let text = std::fs::read_to_string(&log).unwrap();
    for needle in [
        "SECRET",
        "tok-",
        "Bearer",
        "key-SECRET",
        "cookie-",
        "session=",
        "qs-SECRET",
        "pw-SECRET",
        "bjensen",
    ] {
        assert!(!text.contains(needle), "`{needle}` leaked into the access log:\n{text}");
    }
    // The debug line on `scimitar::access` (on in these tests) shows the target redacted too.
    let shown = r#"GET /acme/scim/v2/Users?filter=userName eq "***"&access_token=***&count=5 "#;
    assert!(
        eventually(Duration::from_secs(5), || px.log().contains(shown)),
        "no redacted debug line:\n{}",
        px.log()
    );
    let errors = px.log();
    for needle in ["SECRET", "bjensen"] {
        assert!(
            !errors.contains(needle),
            "`{needle}` leaked into the error log:\n{errors}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stalled_log_writer_drops_lines_instead_of_stalling_requests() {
    let up = TestUpstream::start("u", Behavior::Echo);
    // The log goes to a pipe nobody reads: once it and the writer's buffer are full, the
    // writer blocks for good, the small queue fills, and every further line must be dropped.
    let (px, _unread) = Proxy::start_piped(&format!(
        "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: p\naccess_log: {{path: stdout, queue: 4}}\n",
        pool_yaml("p", &[up.addr], "")
    ));
    let long_agent = "a".repeat(2000);
    let start = std::time::Instant::now();
    for _ in 0..300 {
        let r = px.send("GET", "/scim/v2/Users", &[("User-Agent", &long_agent)], None);
        assert_eq!(r.status, 200);
    }
    let took = start.elapsed();
    let dropped = px.metrics()["scimitar_access_log_dropped_total"];
    assert!(dropped >= 100.0, "{dropped} lines dropped of 300 (~2 KB each)");
    assert!(took < Duration::from_secs(60), "requests were not held up: {took:?}");
    // Requests still flow at once while the writer stays stuck.
    let t = std::time::Instant::now();
    assert_eq!(px.get("/scim/v2/Users").status, 200);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(px.metrics()["scimitar_access_log_dropped_total"] > dropped);
}

#[test]
fn sigusr1_reopens_the_log_after_rotation() {
    let up = TestUpstream::start("u", Behavior::Echo);
    let dir = scratch_dir("observe-rotate");
    let log = dir.join("access.log");
    let rotated: PathBuf = dir.join("access.log.1");
    let mut px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: p\naccess_log: {{path: {}}}\n",
        pool_yaml("p", &[up.addr], ""),
        log.display()
    ));
    assert_eq!(px.get("/scim/v2/Users/before").status, 200);
    wait_lines(&log, 1);
    std::fs::rename(&log, &rotated).unwrap();
    px.process().signal("USR1");
    // The flag is taken before the next line is written.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(px.get("/scim/v2/Users/after").status, 200);
    let new = wait_lines(&log, 1);
    assert_eq!(new.len(), 1);
    assert_eq!(new[0]["path"], "/scim/v2/Users/after");
    let old = lines(&rotated);
    assert_eq!(old.len(), 1);
    assert_eq!(old[0]["path"], "/scim/v2/Users/before");
    // The process is still serving (SIGUSR1 did not end it).
    assert_eq!(px.get("/scim/v2/Users/again").status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_scan_of_made_up_tenants_takes_no_row_of_the_tenant_table() {
    let ok = TestUpstream::start("ok", Behavior::Echo);
    let gone = TestUpstream::start("gone", Behavior::Status(404));
    let locked = TestUpstream::start("locked", Behavior::Status(401));
    let px = Proxy::start(&format!(
        "upstreams:\n{}{}{}routes:\n  - base_path: /{{tenant}}/scim/v2\n    upstream: ok\n    max_body: {{default: 1KiB}}\n  - base_path: /{{tenant}}/gone/v2\n    upstream: gone\n  - base_path: /{{tenant}}/locked/v2\n    upstream: locked\nmetrics: {{tenant_label: true, max_tenants: 3}}\n",
        pool_yaml("ok", &[ok.addr], ""),
        pool_yaml("gone", &[gone.addr], ""),
        pool_yaml("locked", &[locked.addr], ""),
    ));
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096));
    for i in 0..10 {
        let name = format!("scan-{i}-{}", std::process::id());
        let sent = [
            ("GET", format!("/{name}/locked/v2/Users"), None, 401),
            ("GET", format!("/{name}/gone/v2/Users"), None, 404),
            // Refused by the proxy itself, before any upstream.
            ("POST", format!("/{name}/scim/v2/Users"), Some(big.as_str()), 413),
            // A 2xx, but discovery answers the same whoever asks.
            ("GET", format!("/{name}/scim/v2/ServiceProviderConfig"), None, 200),
        ];
        for (method, target, body, status) in sent {
            assert_eq!(px.send(method, &target, &[], body).status, status, "{method} {target}");
        }
    }
    let tenants = |px: &Proxy| px.status()["traffic"]["tenants"]["top_requests"].clone();
    assert_eq!(tenants(&px), serde_json::json!([{"tenant": "other", "requests": 40}]));

    // Every row is still free: three real tenants get one each from their first 2xx on.
    for name in ["acme", "globex", "initech"] {
        assert_eq!(px.get(&format!("/{name}/scim/v2/Users")).status, 200);
    }
    assert_eq!(
        px.get("/acme/locked/v2/Users").status,
        401,
        "a known tenant's 401 is its own"
    );
    assert_eq!(
        tenants(&px),
        serde_json::json!([
            {"tenant": "other", "requests": 40},
            {"tenant": "acme", "requests": 2},
            {"tenant": "globex", "requests": 1},
            {"tenant": "initech", "requests": 1},
        ])
    );
    let series: Vec<String> = px
        .metrics()
        .into_iter()
        .filter(|(k, _)| k.starts_with("scimitar_tenant_requests_total"))
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    assert_eq!(
        series,
        [
            r#"scimitar_tenant_requests_total{tenant="acme"} 2"#,
            r#"scimitar_tenant_requests_total{tenant="globex"} 1"#,
            r#"scimitar_tenant_requests_total{tenant="initech"} 1"#,
            r#"scimitar_tenant_requests_total{tenant="other"} 40"#,
        ]
    );
}
