//! The edge credential check (a route's `auth`) and the real client IP behind trusted proxies,
//! end to end: the scimitar binary between a plain client and a recording upstream.

mod common;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::recorder::Recorder;
use common::*;

/// The digest `scimitar hash-token` prints for `token`, the way an operator makes one.
fn hash_token(token: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimitar"))
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run scimitar hash-token");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{token}\n").as_bytes())
        .expect("write the token");
    let out = child.wait_with_output().expect("hash-token output");
    assert!(out.status.success());
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(digest.len(), 64, "{digest}");
    digest
}

fn log_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let read = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(5), || read().len() >= n),
        "wanted {n} access-log lines"
    );
    read()
}

fn metric(px: &Proxy, series: &str) -> f64 {
    px.metrics().get(series).copied().unwrap_or(0.0)
}

const TOKEN_ACME: &str = "tok-ACME-4f1d9e0b7c";
const TOKEN_ALL: &str = "tok-ALL-0a8c33e6d2";

#[test]
fn a_route_with_auth_refuses_before_any_upstream_and_counts_each_refusal() {
    let up = Recorder::start();
    let dir = scratch_dir("edge-auth");
    let log = dir.join("access.log");
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - name: scim\n    base_path: /{{tenant}}/scim/v2\n    upstream: p\n    auth:\n      realm: scim-edge\n      tokens:\n        - {{name: entra-acme, sha256: {}, tenant: acme}}\n        - {{name: okta-all, sha256: {}}}\n  - name: open\n    base_path: /{{tenant}}/open/v2\n    upstream: p\naccess_log: {{path: {}}}\n",
        pool_yaml("p", &[up.addr], ""),
        hash_token(TOKEN_ACME),
        hash_token(TOKEN_ALL),
        log.display()
    ));
    let config = std::fs::read_to_string(px.config_path()).unwrap();
    for t in [TOKEN_ACME, TOKEN_ALL] {
        assert!(!config.contains(t), "the config file holds only digests");
    }
    let challenge = "Bearer realm=\"scim-edge\"";

    // No credential, a malformed one, another scheme, two fields: 401 with the bare challenge.
    let missing: [&[(&str, &str)]; 4] = [
        &[],
        &[("Authorization", "Bearer")],
        &[("Authorization", "Basic b2t0YTp0b2stQUxMLTBhOGMzM2U2ZDI=")],
        &[("Authorization", "Bearer x"), ("Authorization", "Bearer y")],
    ];
    for headers in missing {
        let r = px.send("GET", "/acme/scim/v2/Users", headers, None);
        let detail = r.assert_scim_error(401);
        assert!(detail.contains("bearer token"), "{detail}");
        assert_eq!(r.header("www-authenticate"), Some(challenge), "{headers:?}");
        assert!(r.header("x-request-id").is_some());
    }
    // A write with a body is refused too, before its body goes anywhere.
    let r = px.send("POST", "/acme/scim/v2/Users", &[], Some(r#"{"userName":"bjensen"}"#));
    r.assert_scim_error(401);
    // A token that is none of the route's: 401 saying so.
    let r = px.send(
        "GET",
        "/acme/scim/v2/Users",
        &[("Authorization", "Bearer tok-ALL-0a8c33e6d")],
        None,
    );
    r.assert_scim_error(401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"scim-edge\", error=\"invalid_token\"")
    );
    assert_eq!(up.count(), 0, "no refused request reached the upstream");

    // The right token passes, Authorization and all, on any tenant.
    let all = format!("Bearer {TOKEN_ALL}");
    let r = px.send("GET", "/globex/scim/v2/Users", &[("authorization", &all)], None);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.since(0);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].request_line(), "GET /globex/scim/v2/Users HTTP/1.1");
    assert_eq!(seen[0].header_values("authorization"), [all.as_str()]);

    // A tenant-bound token: good for its tenant, 403 on another.
    let acme = format!("bearer {TOKEN_ACME}");
    let r = px.send("GET", "/globex/scim/v2/Users", &[("Authorization", &acme)], None);
    let detail = r.assert_scim_error(403);
    assert!(detail.contains("tenant"), "{detail}");
    assert_eq!(up.count(), 1, "the other tenant's request did not reach the upstream");
    let r = px.send("GET", "/acme/scim/v2/Users", &[("Authorization", &acme)], None);
    assert_eq!(r.status, 200);
    assert_eq!(up.count(), 2);

    // A route without `auth` stays open.
    assert_eq!(px.get("/acme/open/v2/Users").status, 200);
    assert_eq!(up.count(), 3);

    let refused = |reason: &str| {
        metric(
            &px,
            &format!("scimitar_auth_refusals_total{{reason=\"{reason}\",route=\"scim\"}}"),
        )
    };
    assert_eq!(refused("missing"), 5.0);
    assert_eq!(refused("invalid"), 1.0);
    assert_eq!(refused("tenant"), 1.0);
    let accepted = |name: &str| {
        metric(
            &px,
            &format!("scimitar_auth_accepted_total{{credential=\"{name}\",route=\"scim\"}}"),
        )
    };
    assert_eq!(accepted("okta-all"), 1.0);
    assert_eq!(accepted("entra-acme"), 1.0);

    // The access log names the entry or the reason, never the token.
    let lines = log_lines(&log, 10);
    let errors: Vec<&str> = lines.iter().filter_map(|l| l["error"].as_str()).collect();
    assert_eq!(
        errors,
        [
            "auth_missing",
            "auth_missing",
            "auth_missing",
            "auth_missing",
            "auth_missing",
            "auth_invalid",
            "auth_tenant"
        ]
    );
    let credentials: Vec<&str> = lines.iter().filter_map(|l| l["credential"].as_str()).collect();
    assert_eq!(credentials, ["okta-all", "entra-acme"]);
    let text = std::fs::read_to_string(&log).unwrap() + &px.log();
    for t in [TOKEN_ACME, TOKEN_ALL, "tok-ALL-0a8c33e6d"] {
        assert!(!text.contains(t), "a token reached a log");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_client_ip_limit_behind_a_trusted_proxy_counts_each_real_client() {
    let up = Recorder::start();
    let dir = scratch_dir("real-ip");
    let log = dir.join("access.log");
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: p\n    rate_limits: [per-ip]\nrate_limits:\n  policies:\n    per-ip: {{key: client_ip, rate: 1/m, burst: 2}}\ntrusted_proxies: [127.0.0.1/32]\nreal_ip_header: X-Real-IP\naccess_log: {{path: {}}}\n",
        pool_yaml("p", &[up.addr], ""),
        log.display()
    ));
    let from = |peer: Ipv4Addr, headers: &[(&str, &str)]| {
        let mut s = common::tcp::connect_from(peer, px.addr);
        common::client::exchange(
            &mut s,
            &px.addr.to_string(),
            "GET",
            "/scim/v2/Users",
            headers,
            None,
            true,
        )
        .expect("exchange")
        .status
    };
    let proxy = Ipv4Addr::new(127, 0, 0, 1);
    let real = |ip: &'static str| [("X-Real-IP", ip)];

    // Two clients behind the same proxy: a budget each.
    let a: Vec<u16> = (0..3).map(|_| from(proxy, &real("198.51.100.1"))).collect();
    assert_eq!(a, [200, 200, 429]);
    let b: Vec<u16> = (0..3).map(|_| from(proxy, &real("198.51.100.2"))).collect();
    assert_eq!(b, [200, 200, 429]);
    // X-Forwarded-For is not the configured header: this request is the proxy's own (fresh).
    assert_eq!(from(proxy, &[("X-Forwarded-For", "198.51.100.1")]), 200);

    // An untrusted peer's header is ignored: whatever it claims, its budget is its own address's.
    let untrusted = Ipv4Addr::new(127, 0, 0, 2);
    let c: Vec<u16> = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .into_iter()
        .map(|ip| from(untrusted, &[("X-Real-IP", ip)]))
        .collect();
    assert_eq!(c, [200, 200, 429]);

    // The upstream's X-Forwarded-For is as before: the TCP peer appended.
    let seen = up.since(0);
    assert_eq!(seen.len(), 7);
    assert_eq!(seen[0].header_values("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen[0].header_values("x-real-ip"), ["198.51.100.1"]);
    assert_eq!(seen[4].header_values("x-forwarded-for"), ["198.51.100.1, 127.0.0.1"]);
    assert_eq!(seen[5].header_values("x-forwarded-for"), ["127.0.0.2"]);

    // The access log shows the real client.
    let ips: Vec<String> = log_lines(&log, 10)
        .iter()
        .map(|l| l["client_ip"].as_str().unwrap_or("-").to_string())
        .collect();
    assert_eq!(
        ips,
        [
            "198.51.100.1",
            "198.51.100.1",
            "198.51.100.1",
            "198.51.100.2",
            "198.51.100.2",
            "198.51.100.2",
            "127.0.0.1",
            "127.0.0.2",
            "127.0.0.2",
            "127.0.0.2"
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reload_swaps_the_tokens_and_drops_the_series_of_those_gone() {
    let up = Recorder::start();
    let body = |name: &str, token: &str| {
        format!(
            "upstreams:\n{}routes:\n  - name: scim\n    base_path: /scim/v2\n    upstream: p\n    auth: {{tokens: [{{name: {name}, sha256: {}}}]}}\n",
            pool_yaml("p", &[up.addr], ""),
            hash_token(token)
        )
    };
    let px = Proxy::start(&body("old-idp", "tok-OLD-5e2a"));
    let get = |token: &str| {
        let auth = format!("Bearer {token}");
        px.send("GET", "/scim/v2/Users", &[("Authorization", &auth)], None)
    };
    assert_eq!(get("tok-OLD-5e2a").status, 200);
    assert_eq!(get("tok-NEW-91bc").status, 401);
    let old = r#"scimitar_auth_accepted_total{credential="old-idp",route="scim"}"#;
    assert_eq!(px.metrics().get(old), Some(&1.0));

    std::fs::write(
        px.config_path(),
        px.config_text("", "", &body("new-idp", "tok-NEW-91bc")),
    )
    .unwrap();
    let r = http(px.admin, "POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.text());

    let r = get("tok-OLD-5e2a");
    r.assert_scim_error(401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"scim\", error=\"invalid_token\""),
        "the realm defaults to the route's name"
    );
    assert_eq!(get("tok-NEW-91bc").status, 200);
    assert_eq!(up.count(), 2);
    let m = px.metrics();
    assert_eq!(m.get(old), None, "a credential the file dropped stops being exported");
    assert_eq!(
        m.get(r#"scimitar_auth_accepted_total{credential="new-idp",route="scim"}"#),
        Some(&1.0)
    );
    assert_eq!(
        m.get(r#"scimitar_auth_refusals_total{reason="invalid",route="scim"}"#),
        Some(&2.0),
        "a route that stays keeps counting"
    );
}

#[test]
fn a_tenancy_header_sent_twice_or_under_another_spelling_is_refused_on_every_route() {
    let up = Recorder::start();
    let dir = scratch_dir("ambiguous-tenant");
    let log = dir.join("access.log");
    let px = Proxy::start(&format!(
        "upstreams:\n{}tenancy: {{source: header, header: X-Tenant}}\nroutes:\n  - name: scim\n    base_path: /scim/v2\n    upstream: p\n    auth:\n      tokens:\n        - {{name: entra-acme, sha256: {}, tenant: acme}}\n  - name: open\n    base_path: /open/v2\n    upstream: p\naccess_log: {{path: {}}}\n",
        pool_yaml("p", &[up.addr], ""),
        hash_token(TOKEN_ACME),
        log.display()
    ));
    let acme = format!("Bearer {TOKEN_ACME}");
    let auth = ("Authorization", acme.as_str());

    // The token's own tenant, once: served, and the upstream gets that one tenant.
    let r = px.send("GET", "/scim/v2/Users", &[auth, ("X-Tenant", "acme")], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.since(0)[0].header_values("x-tenant"), ["acme"]);
    let r = px.send("GET", "/scim/v2/Users", &[auth, ("X-Tenant", "globex")], None);
    r.assert_scim_error(403);

    // A second field, or an underscore spelling WSGI/Rack/PHP servers merge with it: a token
    // bound to acme would reach globex's data. Refused before auth, on every route.
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let ambiguous: [(&str, Headers, &str); 5] = [
        (
            "/scim/v2/Users",
            &[auth, ("X-Tenant", "acme"), ("X-Tenant", "globex")],
            "more than once",
        ),
        (
            "/scim/v2/Users",
            &[auth, ("X-Tenant", "acme"), ("x-tenant", "globex")],
            "more than once",
        ),
        (
            "/scim/v2/Users",
            &[auth, ("X-Tenant", "acme"), ("X_Tenant", "globex")],
            "`x_tenant` is the tenancy header",
        ),
        (
            "/scim/v2/Users",
            &[auth, ("X_TENANT", "globex")],
            "`x_tenant` is the tenancy header",
        ),
        (
            "/open/v2/Users",
            &[("X-Tenant", "acme"), ("X-Tenant", "globex")],
            "more than once",
        ),
    ];
    for (path, headers, why) in ambiguous {
        let r = px.send("GET", path, headers, None);
        let detail = r.assert_scim_error(400);
        assert!(detail.contains(why), "{headers:?}: {detail}");
        assert!(r.header("x-request-id").is_some());
    }
    assert_eq!(up.count(), 1, "no ambiguous request reached the upstream");
    assert_eq!(
        metric(
            &px,
            r#"scimitar_rejected_requests_total{policy="",reason="ambiguous_tenant",upstream=""}"#
        ),
        5.0
    );
    assert_eq!(
        metric(&px, r#"scimitar_auth_refusals_total{reason="tenant",route="scim"}"#),
        1.0,
        "refused before the credential check"
    );
    let lines = log_lines(&log, 7);
    assert_eq!(lines[0]["tenant"], "acme", "{:#?}", lines[0]);
    let refused: Vec<&serde_json::Value> = lines.iter().filter(|l| l["error"] == "ambiguous_tenant").collect();
    assert_eq!(refused.len(), 5, "{lines:#?}");
    assert!(
        refused.iter().all(|l| l["status"] == 400 && l["tenant"].is_null()),
        "logged without a tenant: {refused:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
