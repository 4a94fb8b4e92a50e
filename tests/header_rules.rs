//! Per-route header rules, `upstream_base_path` and `return`, through the real proxy: exactly
//! which headers reached the upstream (a recording one), which the client got on proxied and
//! proxy-made answers, which path the upstream saw, and what a `return` route answers.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use common::recorder::{Recorded, Recorder};
use common::*;

/// One request from 127.0.0.1 with `host` as its Host header.
fn send_as(px: &Proxy, host: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut s = std::net::TcpStream::connect(px.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    common::client::exchange(&mut s, host, method, target, headers, None, true).expect("exchange")
}

/// The one request the recorder got since `before`.
fn one_since(rec: &Recorder, before: usize) -> Recorded {
    let got = rec.since(before);
    assert_eq!(got.len(), 1, "exactly one request upstream: {got:#?}");
    got.into_iter().next().expect("one request")
}

/// Every value of a header in an answer, in order.
fn all(r: &Response, name: &str) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

const REQUEST_RULES: &str = r#"    headers:
      request:
        set:
          X-Tenant: $tenant
          X-Real-IP: $remote_addr
          X-Trace: "$request_id@$scheme"
          X-Replace: fixed
          Host: $host
          X-Drop: ""
        add: {X-Via: scimitar, X-Key-Echo: $http_x_api_key}
        remove: [X-Debug]
"#;

#[test]
fn request_rules_decide_what_reaches_the_upstream() {
    let rec = Recorder::start();
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /{{tenant}}/scim/v2\n    upstream: r\n{REQUEST_RULES}  - base_path: /plain/v2\n    upstream: r\ntrusted_proxies: [127.0.0.1/32]\n",
        pool_yaml("r", &[rec.addr], "")
    ));
    let client = [
        ("X-Replace", "from-client"),
        ("X-Via", "lb"),
        ("X-Debug", "1"),
        ("X-Drop", "1"),
        ("X-Api-Key", "k1"),
        ("X-Forwarded-For", "198.51.100.7"),
        ("X-Request-Id", "req-1"),
    ];
    let before = rec.count();
    let r = send_as(&px, "Scim.Example.com:8443", "GET", "/acme/scim/v2/Users", &client);
    assert_eq!(r.status, 200, "{}", r.text());
    let up = one_since(&rec, before);
    let h = |n: &str| up.header_values(n);
    assert_eq!(h("x-tenant"), ["acme"], "$tenant from the path");
    assert_eq!(h("x-real-ip"), ["198.51.100.7"], "$remote_addr behind a trusted proxy");
    assert_eq!(h("x-trace"), ["req-1@http"], "$request_id and $scheme");
    assert_eq!(h("x-replace"), ["fixed"], "set replaces the client's field");
    assert_eq!(h("x-via"), ["lb", "scimitar"], "add appends another field");
    assert_eq!(h("x-key-echo"), ["k1"], "$http_<name>");
    assert!(h("x-debug").is_empty(), "remove removes");
    assert!(h("x-drop").is_empty(), "an empty set removes");
    assert_eq!(
        h("host"),
        ["scim.example.com"],
        "Host set by a rule wins over preserve_host"
    );
    assert_eq!(
        h("x-forwarded-for"),
        ["198.51.100.7, 127.0.0.1"],
        "the proxy's own headers keep their rules"
    );
    assert_eq!(h("x-request-id"), ["req-1"]);

    // An untrusted peer's X-Forwarded-For is not believed for $remote_addr.
    let before = rec.count();
    let mut s = common::tcp::connect_from(Ipv4Addr::new(127, 0, 0, 2), px.addr);
    let r = common::client::exchange(
        &mut s,
        "scim.example.com",
        "GET",
        "/acme/scim/v2/Users",
        &[
            ("X-Forwarded-For", "198.51.100.7"),
            ("X_Forwarded_For", "6.6.6.6"),
            ("x_request_id", "forged"),
        ],
        None,
        true,
    )
    .expect("exchange");
    assert_eq!(r.status, 200);
    let up = one_since(&rec, before);
    assert_eq!(up.header_values("x-real-ip"), ["127.0.0.2"]);
    assert_eq!(
        up.header_values("x-forwarded-for"),
        ["127.0.0.2"],
        "with trusted_proxies set, an untrusted peer's chain is dropped, not passed on"
    );
    // Underscore spellings of headers the proxy writes: WSGI/Rack/PHP read them as ours.
    for alias in ["x_forwarded_for", "x_request_id"] {
        assert!(up.header_values(alias).is_empty(), "{alias} reached the upstream");
    }
    assert!(
        up.header_values("x-key-echo").is_empty(),
        "an absent header adds nothing"
    );

    // A route without rules forwards the client's headers as they were.
    let before = rec.count();
    let r = send_as(&px, "scim.example.com", "GET", "/plain/v2/Users", &client);
    assert_eq!(r.status, 200);
    let up = one_since(&rec, before);
    assert_eq!(up.header_values("x-replace"), ["from-client"]);
    assert_eq!(up.header_values("x-debug"), ["1"]);
    assert_eq!(up.header_values("x-via"), ["lb"]);
    assert!(up.header_values("x-tenant").is_empty());
}

const RESPONSE_RULES: &str = r#"    headers:
      response:
        set: {Strict-Transport-Security: "max-age=63072000", X-Frame-Options: DENY}
        add: {X-Served-By: "scimitar $request_id"}
        remove: [Server, X-Powered-By]
"#;

/// The route's response rules are on this answer.
#[track_caller]
fn has_response_rules(r: &Response) {
    assert_eq!(
        all(r, "strict-transport-security"),
        ["max-age=63072000"],
        "{} {:?}",
        r.status,
        r.headers
    );
    assert_eq!(all(r, "x-frame-options"), ["DENY"], "{:?}", r.headers);
    let id = r.header("x-request-id").expect("request id");
    assert_eq!(all(r, "x-served-by"), [format!("scimitar {id}")]);
    assert!(
        r.header("server").is_none() && r.header("x-powered-by").is_none(),
        "{:?}",
        r.headers
    );
}

#[test]
fn response_rules_are_on_every_answer_of_the_route() {
    let rec = Recorder::start_answering("Server: upstream/1.0\r\nX-Powered-By: py\r\nX-Frame-Options: SAMEORIGIN\r\n");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let px = Proxy::start(&format!(
        "upstreams:\n{}{}routes:\n\
         \x20 - base_path: /scim/v2\n    classes: [bulk]\n    return: {{status: 404, detail: no Bulk here}}\n{RESPONSE_RULES}\
         \x20 - base_path: /scim/v2\n    classes: [discovery]\n    upstream: r\n    cache: {{discovery: 1m}}\n{RESPONSE_RULES}\
         \x20 - base_path: /scim/v2\n    upstream: r\n    max_body: 1KiB\n    rate_limits: [one]\n{RESPONSE_RULES}\
         \x20 - base_path: /dead/v2\n    upstream: dead\n{RESPONSE_RULES}\
         \x20 - base_path: /locked/v2\n    upstream: r\n    auth: {{tokens: [{{name: a, sha256: {}}}]}}\n{RESPONSE_RULES}\
         \x20 - base_path: /bare/v2\n    upstream: r\n\
         rate_limits:\n  policies:\n    one: {{key: [client_ip], rate: 1/m, burst: 1}}\n",
        pool_yaml("r", &[rec.addr], ""),
        pool_yaml("dead", &[dead_addr], "    retries: 0\n"),
        "0".repeat(64),
    ));

    // The upstream's answer: its Server and X-Powered-By hidden, X-Frame-Options replaced.
    let r = px.get("/scim/v2/Users");
    assert_eq!(r.status, 200, "{}", r.text());
    has_response_rules(&r);
    // The proxy's own answers of the route carry them too (nginx's `add_header … always`).
    let big = "x".repeat(2048);
    let r = px.send("POST", "/scim/v2/Users", &[], Some(&big));
    r.assert_scim_error(413);
    has_response_rules(&r);
    let r = px.get("/scim/v2/Users");
    r.assert_scim_error(429);
    assert!(r.header("retry-after").is_some());
    has_response_rules(&r);
    let r = px.send("POST", "/scim/v2/Bulk", &[], Some("{}"));
    assert_eq!(r.assert_scim_error(404), "no Bulk here");
    has_response_rules(&r);
    let r = px.get("/locked/v2/Users");
    r.assert_scim_error(401);
    assert!(r.header("www-authenticate").is_some());
    has_response_rules(&r);
    let r = px.get("/dead/v2/Users");
    assert!(matches!(r.status, 502 | 503), "{} {}", r.status, r.text());
    has_response_rules(&r);
    // A cache hit: the stored answer is the upstream's, the rules apply again on the way out.
    let r = px.get("/scim/v2/ServiceProviderConfig");
    assert_eq!(r.status, 200);
    has_response_rules(&r);
    let r = px.get("/scim/v2/ServiceProviderConfig");
    assert_eq!(r.header("x-cache"), Some("HIT"), "{:?}", r.headers);
    has_response_rules(&r);

    // Another route's answers, and answers made before any route matched, carry none.
    let r = px.get("/bare/v2/Users");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("server"), Some("upstream/1.0"));
    assert_eq!(all(&r, "x-frame-options"), ["SAMEORIGIN"]);
    assert!(r.header("strict-transport-security").is_none());
    let r = px.get("/nowhere/Users");
    r.assert_scim_error(404);
    assert!(r.header("strict-transport-security").is_none());
}

#[test]
fn upstream_base_path_replaces_the_matched_prefix() {
    let rec = Recorder::start();
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n\
         \x20 - base_path: /scim/v2\n    upstream: r\n    upstream_base_path: /v2\n\
         \x20 - base_path: /{{tenant}}/scim/v2\n    upstream: r\n    upstream_base_path: /api/v2/\n\
         \x20 - base_path: /t/{{tenant}}/v2\n    upstream: r\n    upstream_base_path: /{{tenant}}/v2\n\
         \x20 - base_path: /keep/v2\n    upstream: r\n",
        pool_yaml("r", &[rec.addr], "")
    ));
    for (target, upstream) in [
        ("/scim/v2/Users/2819c223", "/v2/Users/2819c223"),
        (
            "/scim/v2/Users?filter=userName%20eq%20%22bjensen%22&count=1",
            "/v2/Users?filter=userName%20eq%20%22bjensen%22&count=1",
        ),
        ("/scim/v2//Groups/./g1?x=1", "/v2/Groups/g1?x=1"),
        ("/scim/v2", "/v2"),
        // The whole matched prefix goes, the `{tenant}` segment with it (nginx's proxy_pass).
        ("/acme/scim/v2/Groups?count=2", "/api/v2/Groups?count=2"),
        ("/acme/scim/v2", "/api/v2/"),
        // … unless the upstream base path puts it back.
        ("/t/acme/v2/Users?startIndex=1", "/acme/v2/Users?startIndex=1"),
        ("/keep/v2/Users?a=b", "/keep/v2/Users?a=b"),
    ] {
        let before = rec.count();
        let r = px.get(target);
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        let up = one_since(&rec, before);
        assert_eq!(up.request_line(), format!("GET {upstream} HTTP/1.1"), "{target}");
    }
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn return_routes_answer_without_the_upstream() {
    let rec = Recorder::start();
    let log = scratch_dir("hdr-return").join("access.log");
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n\
         \x20 - name: no-bulk\n    base_path: /scim/v2\n    classes: [bulk]\n    return: 403\n\
         \x20 - base_path: /scim/v2\n    methods: [DELETE]\n    return: {{status: 410, detail: deletes are off}}\n\
         \x20 - base_path: /scim/v2\n    classes: [discovery]\n    return: 204\n\
         \x20 - base_path: /scim/v2\n    upstream: r\n\
         access_log: {{path: {}}}\n",
        pool_yaml("r", &[rec.addr], ""),
        log.display()
    ));
    let before = rec.count();
    let r = px.send("POST", "/scim/v2/Bulk", &[], Some("{}"));
    assert_eq!(r.assert_scim_error(403), "Forbidden");
    assert!(r.header("x-request-id").is_some());
    let r = px.send("DELETE", "/scim/v2/Users/1", &[], None);
    assert_eq!(r.assert_scim_error(410), "deletes are off");
    let r = px.get("/scim/v2/ServiceProviderConfig");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty() && r.header("content-type").is_none(), "{r:?}");
    assert_eq!(rec.count(), before, "the upstream is never touched");
    // The route filters still decide: anything else is proxied.
    assert_eq!(px.get("/scim/v2/Users").status, 200);
    assert_eq!(rec.count(), before + 1);

    let m = px.metrics();
    assert_eq!(
        m.get(r#"scimitar_rejected_requests_total{policy="",reason="return",upstream=""}"#),
        Some(&3.0),
        "{m:#?}"
    );
    assert!(eventually(Duration::from_secs(5), || lines(&log).len() >= 4));
    let got = lines(&log);
    let statuses: Vec<(u64, String)> = got
        .iter()
        .map(|l| {
            (
                l["status"].as_u64().unwrap_or(0),
                l["error"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (403, "return".to_string()),
            (410, "return".to_string()),
            (204, "return".to_string()),
            (200, "-".to_string())
        ]
    );
    assert!(
        got[..3].iter().all(|l| l["upstream"].is_null() && l["attempts"] == 0),
        "{got:#?}"
    );

    // A path parameter does not take Bulk past its route: servers that strip `;…` (Tomcat,
    // Spring) would serve it as /Bulk. The edge refuses it before routing.
    let before = rec.count();
    for target in ["/scim/v2/Bulk;v=1", "/scim/v2/Bulk%3B", "/scim/v2/Bulk;"] {
        let r = px.send("POST", target, &[], Some("{}"));
        let detail = r.assert_scim_error(400);
        assert!(detail.contains("matrix"), "{target}: {detail}");
    }
    assert_eq!(rec.count(), before, "nothing reached the upstream");
}

#[test]
fn locations_under_the_upstream_base_path_point_back_through_the_proxy() {
    let plain = ScimServer::start();
    let tenants = ScimServer::start_with(&["--tenant", "acme"]);
    let px = Proxy::start(&format!(
        "upstreams:\n{}{}routes:\n\
         \x20 - base_path: /scim/v2\n    upstream: plain\n    upstream_base_path: /v2\n\
         \x20 - base_path: /t/{{tenant}}/scim\n    upstream: tenants\n    upstream_base_path: /{{tenant}}/v2\n",
        pool_yaml("plain", &[plain.addr], ""),
        pool_yaml("tenants", &[tenants.addr], ""),
    ));
    let scim = [("Content-Type", "application/scim+json")];
    for (base, upstream_base, user) in [("/scim/v2", "/v2", "bjensen"), ("/t/acme/scim", "/acme/v2", "jsmith")] {
        let body = format!(r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"{user}"}}"#);
        let mut s = std::net::TcpStream::connect(px.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let target = format!("{base}/Users");
        let r = common::client::exchange(&mut s, "scim.example", "POST", &target, &scim, Some(&body), true)
            .expect("exchange");
        assert_eq!(r.status, 201, "{base}: {}", r.text());
        let id = r.json()["id"].as_str().expect("id").to_string();
        // The IdP keeps this URL as the user's: it must lead through the proxy's base path.
        let location = format!("http://scim.example{base}/Users/{id}");
        assert_eq!(r.header("location"), Some(location.as_str()), "{base}: {:?}", r.headers);
        assert_eq!(r.header("content-location"), Some(location.as_str()), "{base}");
        // The body is the upstream's own (documented): meta.location keeps its path.
        assert_eq!(
            r.json()["meta"]["location"],
            format!("http://scim.example{upstream_base}/Users/{id}"),
            "{base}"
        );
        let got = send_as(&px, "scim.example", "GET", &format!("{base}/Users/{id}"), &[]);
        assert_eq!(got.status, 200, "{base}: {}", got.text());
        assert_eq!(got.json()["userName"], user);
    }

    // Only under the prefix, at a segment boundary, and only on routes that have one.
    let rec =
        Recorder::start_answering("Location: http://up.internal:9000/v2/Users/1\r\nContent-Location: /v2x/Users/1\r\n");
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n\
         \x20 - base_path: /scim/v2\n    upstream: r\n    upstream_base_path: /v2\n\
         \x20 - base_path: /keep/v2\n    upstream: r\n",
        pool_yaml("r", &[rec.addr], "")
    ));
    let r = px.get("/scim/v2/Users/1");
    assert_eq!(r.header("location"), Some("http://up.internal:9000/scim/v2/Users/1"));
    assert_eq!(r.header("content-location"), Some("/v2x/Users/1"));
    let r = px.get("/keep/v2/Users/1");
    assert_eq!(r.header("location"), Some("http://up.internal:9000/v2/Users/1"));
}
