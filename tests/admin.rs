//! The admin listener's operations: readiness, the optional token, `/config` with secrets
//! masked, and the routes' methods. (`-t` refusing an admin address that a public listener
//! shares is in tests/cli.rs; the status page in a real browser is tests/status_page.rs.)

mod common;

use std::time::Duration;

use common::*;

fn routes(pool: &str) -> String {
    format!("routes:\n  - base_path: /v2\n    upstream: {pool}\n")
}

/// scimitar with `admin.token_sha256` set for `token`, and a pool nobody listens on.
fn with_token(token: &[u8]) -> Proxy {
    let digest = scimitar::admin::hash_token(token);
    let unused = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    Proxy::start_with_admin(
        &format!("  token_sha256: {digest}\n"),
        &format!("upstreams:\n{}{}", pool_yaml("p", &[unused], ""), routes("p")),
    )
}

#[test]
fn readyz_turns_503_naming_the_pool_once_its_only_server_fails_its_check() {
    let scim = ScimServer::start();
    let hc = "    health_check: {path: /v2/ServiceProviderConfig, interval: 100ms, timeout: 200ms, rise: 1, fall: 1}\n";
    let px = Proxy::start(&format!(
        "upstreams:\n{}{}",
        pool_yaml("only", &[scim.addr], hc),
        routes("only")
    ));
    let ready = http(px.admin, "GET", "/readyz", &[], None);
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["ready"], true);

    drop(scim);
    let mut last = None;
    let turned = eventually(Duration::from_secs(5), || {
        let r = http(px.admin, "GET", "/readyz", &[], None);
        let done = r.status == 503;
        last = Some(r);
        done
    });
    let last = last.expect("at least one answer");
    assert!(turned, "still {} after 5 s: {}", last.status, last.text());
    assert_eq!(last.json()["ready"], false);
    assert_eq!(last.json()["pools_without_healthy_server"], serde_json::json!(["only"]));
    // Alive is not ready: the process still answers its liveness probe.
    assert_eq!(http(px.admin, "GET", "/healthz", &[], None).status, 200);
}

#[test]
fn with_a_token_every_path_but_the_probes_needs_it() {
    let px = with_token(b"s3cret");
    for path in ["/", "/status", "/status.json", "/config"] {
        let r = http(px.admin, "GET", path, &[], None);
        assert_eq!(r.status, 401, "{path} without a token");
        let challenges: Vec<&str> = r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(challenges.iter().any(|c| c.starts_with("Bearer")), "{challenges:?}");
        let wrong = http(px.admin, "GET", path, &[("Authorization", "Bearer s3cre")], None);
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        let right = http(px.admin, "GET", path, &[("Authorization", "Bearer s3cret")], None);
        assert_eq!(right.status, 200, "{path} with the token");
    }
    let r = http(
        px.admin,
        "POST",
        "/tls/reload",
        &[("Authorization", "Bearer nope")],
        None,
    );
    assert_eq!(r.status, 401);
    // What a browser sends after its login prompt: any user name, the token as password.
    let basic = http(
        px.admin,
        "GET",
        "/status.json",
        &[("Authorization", "Basic b3BzOnMzY3JldA==")],
        None,
    );
    assert_eq!(basic.status, 200);
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(
            http(px.admin, "GET", probe, &[], None).status,
            200,
            "{probe} stays open"
        );
    }
}

#[test]
fn config_shows_the_loaded_file_with_secrets_masked() {
    let unused = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    // The Redis store connects on the first decision only, so no Redis is needed here.
    let body = format!(
        "upstreams:\n{}{}    rate_limits: [per-ip]\nrate_limits:\n  store: redis\n  policies:\n    per-ip: {{key: client_ip, rate: 100/s}}\nredis:\n  url: \"redis://scimitar:hunter2@127.0.0.1:{}/0\"\nkey_secret: correct-horse-battery\n",
        pool_yaml("p", &[unused], "    keepalive: 7\n"),
        routes("p"),
        free_port()
    );
    let px = Proxy::start(&body);
    let r = http(px.admin, "GET", "/config", &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let text = r.text();
    assert!(!text.contains("hunter2") && !text.contains("correct-horse"), "{text}");
    let c = r.json();
    assert_eq!(c["key_secret"], "[redacted]");
    assert!(
        c["redis"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("redis://scimitar:[redacted]@127.0.0.1:")),
        "{}",
        c["redis"]
    );
    assert_eq!(c["upstreams"]["p"]["keepalive"], 7);
    assert_eq!(c["upstreams"]["p"]["servers"][0]["address"], unused.to_string());
    assert_eq!(c["rate_limits"]["policies"]["per-ip"]["key"], "client_ip");
    assert_eq!(c["admin"]["address"], px.admin.to_string());

    // After a reload, /config shows the file that serves now.
    let path = px.dir.join("scimitar.yaml");
    let file = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, file.replace("keepalive: 7", "keepalive: 9")).unwrap();
    let r = http(px.admin, "POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    let c = http(px.admin, "GET", "/config", &[], None).json();
    assert_eq!(c["upstreams"]["p"]["keepalive"], 9);
    assert_eq!(c["key_secret"], "[redacted]");
}

#[test]
fn the_page_is_html_its_data_json_and_other_methods_are_refused() {
    let unused = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let px = Proxy::start(&format!("upstreams:\n{}{}", pool_yaml("p", &[unused], ""), routes("p")));
    for path in ["/", "/status"] {
        let r = http(px.admin, "GET", path, &[], None);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"), "{csp}");
        assert!(r.text().contains("data-refresh-count"));
    }
    let s = http(px.admin, "GET", "/status.json", &[], None);
    assert_eq!(s.header("content-type"), Some("application/json"));
    assert_eq!(s.json()["pools"][0]["name"], "p");
    assert!(s.json()["uptime_seconds"].as_f64().is_some());

    let r = http(px.admin, "POST", "/status.json", &[], Some("{}"));
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    let r = http(px.admin, "GET", "/tls/reload", &[], None);
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    assert_eq!(http(px.admin, "GET", "/nope", &[], None).status, 404);
}

#[test]
fn a_post_a_browser_says_is_cross_site_is_refused_even_with_the_token() {
    let px = with_token(b"s3cret");
    // What a browser attaches once its login prompt has been answered: Basic ops:s3cret.
    let basic = ("Authorization", "Basic b3BzOnMzY3JldA==");
    let reloads = || {
        let r = http(px.admin, "GET", "/metrics", &[basic], None);
        assert_eq!(r.status, 200);
        let s = parse_exposition(&r.text());
        s.get(r#"scimitar_config_reloads_total{result="success"}"#)
            .copied()
            .unwrap_or(0.0)
    };
    let before = reloads();
    let elsewhere = format!("http://evil.example:{}", px.admin.port());
    for (path, headers) in [
        ("/reload", vec![basic, ("Sec-Fetch-Site", "cross-site")]),
        ("/reload", vec![basic, ("Sec-Fetch-Site", "same-site")]),
        ("/reload", vec![basic, ("Origin", elsewhere.as_str())]),
        ("/reload", vec![basic, ("Origin", "null")]),
        ("/tls/reload", vec![basic, ("Sec-Fetch-Site", "cross-site")]),
    ] {
        let r = http(px.admin, "POST", path, &headers, None);
        assert_eq!(r.status, 403, "{path} {headers:?}: {}", r.text());
        assert!(r.text().starts_with("cross-site request refused"), "{}", r.text());
    }
    assert_eq!(reloads(), before, "a refused POST reloads nothing");

    let here = format!("http://{}", px.admin);
    let r = http(
        px.admin,
        "POST",
        "/reload",
        &[basic, ("Sec-Fetch-Site", "same-origin"), ("Origin", here.as_str())],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(reloads(), before + 1.0);
    // A GET changes nothing, and another site's page cannot read its answer (no CORS headers).
    let r = http(
        px.admin,
        "GET",
        "/status.json",
        &[basic, ("Sec-Fetch-Site", "cross-site")],
        None,
    );
    assert_eq!(r.status, 200);
}
