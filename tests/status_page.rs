//! The admin status page in a real headless Chromium (Debian's `chromium`, driven over the
//! DevTools protocol by `headless_chrome`): it renders every pool and server with its health,
//! its numbers move with traffic, it escapes what it shows, and it loads nothing from off the
//! machine. Every wait is on the page's `data-refresh-count` marker, bounded in time.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::Network;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

use common::*;

/// The page polls this often (seconds) so the test sees several refreshes quickly.
const REFRESH: &str = "0.25";
/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(8);

/// Chromium, or `None` when `SCIMITAR_SKIP_BROWSER=1`. A missing browser fails the test:
/// `make deps` installs it, and CI must run this test.
fn launch() -> Option<Browser> {
    if std::env::var("SCIMITAR_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("status page browser test skipped (SCIMITAR_SKIP_BROWSER=1)");
        return None;
    }
    let path = headless_chrome::browser::default_executable().unwrap_or_else(|e| {
        panic!("no Chromium for the status page test ({e}): run `make deps` (it apt-installs chromium), or set SCIMITAR_SKIP_BROWSER=1 to skip it")
    });
    let args: Vec<&std::ffi::OsStr> = [
        // Nothing but loopback: every other host name fails to resolve, and no proxy is used.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--no-proxy-server",
        "--disable-component-update",
        "--disable-domain-reliability",
        "--no-default-browser-check",
    ]
    .iter()
    .map(std::ffi::OsStr::new)
    .collect();
    let opts = LaunchOptions {
        path: Some(path),
        headless: true,
        // CI runs as root, where Chromium's sandbox refuses to start.
        sandbox: false,
        window_size: Some((1280, 1000)),
        idle_browser_timeout: Duration::from_secs(30),
        args,
        ..LaunchOptions::default()
    };
    Some(Browser::new(opts).expect("launch chromium"))
}

/// Evaluates `expr` (which must yield a JSON string) in the page.
fn eval_json(tab: &Tab, expr: &str) -> Value {
    let v = tab.evaluate(expr, false).expect("evaluate in the page").value;
    match v {
        Some(Value::String(s)) => serde_json::from_str(&s).expect("JSON from the page"),
        other => panic!("{expr} gave {other:?}"),
    }
}

fn refreshes(tab: &Tab) -> u64 {
    eval_json(tab, "JSON.stringify(Number(document.body.dataset.refreshCount))")
        .as_u64()
        .unwrap_or(0)
}

/// Waits until the page has refreshed at least `n` times, then returns the count.
fn wait_refreshes(tab: &Tab, n: u64) -> u64 {
    let start = Instant::now();
    loop {
        let c = refreshes(tab);
        if c >= n {
            return c;
        }
        if start.elapsed() > WAIT {
            let banner = eval_json(
                tab,
                "JSON.stringify(document.querySelector('[data-testid=\"fetch-error\"]').textContent)",
            );
            panic!("page refreshed {c} times, not {n}, within {WAIT:?}; banner: {banner}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Refreshes until `ok` holds for what the page shows (re-read after each refresh).
fn wait_until(tab: &Tab, what: &str, read: impl Fn(&Tab) -> Value, ok: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let seen = refreshes(tab);
        let v = read(tab);
        if ok(&v) {
            return v;
        }
        assert!(start.elapsed() < WAIT, "{what}: page still shows {v}");
        wait_refreshes(tab, seen + 1);
    }
}

/// Every server row: pool, address, health and the counters shown.
fn servers(tab: &Tab) -> Value {
    eval_json(
        tab,
        r#"JSON.stringify([...document.querySelectorAll('[data-testid="server"]')].map(r => ({
            pool: r.dataset.pool, address: r.dataset.address,
            health: r.querySelector('[data-testid="health"]').dataset.health,
            picks: Number(r.querySelector('[data-testid="picks"]').textContent)})))"#,
    )
}

fn row<'a>(rows: &'a Value, pool: &str, address: &str) -> &'a Value {
    rows.as_array()
        .and_then(|a| a.iter().find(|r| r["pool"] == pool && r["address"] == address))
        .unwrap_or_else(|| panic!("no row for {pool}/{address} in {rows}"))
}

#[test]
fn the_status_page_shows_pools_and_moves_with_traffic() {
    let Some(browser) = launch() else {
        return;
    };
    let started = Instant::now();
    let scim = [ScimServer::start(), ScimServer::start()];
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    // A pool name with markup in it: the page must show it as text.
    let spare = "<b data-testid=\"injected\">spare</b>";
    let hc =
        |path: &str| format!("    health_check: {{path: {path}, interval: 100ms, timeout: 200ms, rise: 1, fall: 1}}\n");
    let px = Proxy::start(&format!(
        "upstreams:\n{}{}routes:\n  - base_path: /v2\n    upstream: scim\n",
        pool_yaml(
            "scim",
            &[scim[0].addr, scim[1].addr],
            &format!("    selection: round_robin\n{}", hc("/v2/ServiceProviderConfig"))
        ),
        pool_yaml(&format!("'{spare}'"), &[dead], &hc("/")),
    ));

    let tab = browser.new_tab().expect("a tab");
    // Every request the page makes, as Chromium is about to send it.
    let urls = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = urls.clone();
    tab.call_method(Network::Enable {
        max_total_buffer_size: None,
        max_resource_buffer_size: None,
        max_post_data_size: None,
        report_direct_socket_traffic: None,
        enable_durable_messages: None,
    })
    .expect("Network.enable");
    tab.add_event_listener(Arc::new(move |e: &Event| {
        if let Event::NetworkRequestWillBeSent(r) = e {
            if let Ok(mut v) = seen.lock() {
                v.push(r.params.request.url.clone());
            }
        }
    }))
    .expect("request listener");
    let origin = format!("http://{}/", px.admin);
    tab.navigate_to(&format!("{origin}?refresh={REFRESH}"))
        .and_then(|t| t.wait_until_navigated())
        .expect("open the status page");
    wait_refreshes(&tab, 1);

    // Every pool and server of /status.json is on the page, with its health.
    let rows = wait_until(&tab, "the dead server shown down", servers, |rows| {
        rows.as_array().is_some_and(|a| a.iter().any(|r| r["health"] == "down"))
    });
    let status = px.status();
    for pool in status["pools"].as_array().expect("pools") {
        let name = pool["name"].as_str().expect("pool name");
        for s in pool["servers"].as_array().expect("servers") {
            let want = if s["healthy"] == true { "up" } else { "down" };
            let r = row(&rows, name, s["address"].as_str().expect("address"));
            assert_eq!(r["health"], want, "{name}/{} in {rows}", s["address"]);
        }
    }
    assert_eq!(rows.as_array().map(Vec::len), Some(3), "{rows}");
    assert_eq!(row(&rows, "scim", &scim[0].addr.to_string())["health"], "up");
    assert_eq!(row(&rows, spare, &dead.to_string())["health"], "down");
    let headings = eval_json(
        &tab,
        r#"JSON.stringify({names: [...document.querySelectorAll('[data-testid="pool"] h3')].map(h => h.textContent),
            injected: document.querySelectorAll('[data-testid="injected"]').length})"#,
    );
    assert_eq!(
        headings["names"],
        serde_json::json!(["scim", spare]),
        "pool names as text"
    );
    assert_eq!(headings["injected"], 0, "a pool name became markup");
    // The client limits in force and the listener's client connections are shown.
    let edge = eval_json(
        &tab,
        r#"JSON.stringify({limits: document.querySelector('[data-testid="client-limits"]').textContent,
            open: document.querySelector('[data-testid="listener"] [data-testid="clients-open"]').textContent})"#,
    );
    let limits = edge["limits"].as_str().unwrap_or_default();
    assert!(
        limits.contains("keep-alive 1m") && limits.contains("head 64.0 KiB"),
        "{edge}"
    );
    assert!(edge["open"].as_str().is_some_and(|o| o.ends_with(" open")), "{edge}");

    // Traffic through the proxy moves the numbers the page shows.
    let before: u64 = [0, 1]
        .iter()
        .map(|&i| {
            row(&rows, "scim", &scim[i].addr.to_string())["picks"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    let sent = 6;
    for i in 0..sent {
        let r = if i % 2 == 0 {
            let body = format!(r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"page{i}"}}"#);
            px.send(
                "POST",
                "/v2/Users",
                &[("Content-Type", "application/scim+json")],
                Some(&body),
            )
        } else {
            px.get("/v2/Users")
        };
        assert!(r.status < 300, "request {i}: {} {}", r.status, r.text());
    }
    let rows = wait_until(&tab, "picks counted", servers, |rows| {
        let picks: u64 = [0, 1]
            .iter()
            .map(|&i| {
                row(rows, "scim", &scim[i].addr.to_string())["picks"]
                    .as_u64()
                    .unwrap_or(0)
            })
            .sum();
        picks >= before + sent
    });
    // Health checks are not picks: the page shows exactly what /status.json counts.
    let status = px.status();
    for i in 0..2 {
        let a = scim[i].addr.to_string();
        let want = status["pools"][0]["servers"][i]["picks"].as_u64();
        assert_eq!(row(&rows, "scim", &a)["picks"].as_u64(), want, "{a}");
    }

    // Endpoint traffic, when /status.json carries it; "no traffic data" when it does not.
    if status.get("traffic").is_some_and(|t| !t.is_null()) {
        let shown = wait_until(
            &tab,
            "users requests counted",
            |tab| {
                eval_json(
                    tab,
                    r#"JSON.stringify(Number((document.querySelector('[data-testid="endpoint"][data-endpoint="users"] [data-testid="requests"]') || {}).textContent))"#,
                )
            },
            |v| v.as_u64().is_some_and(|n| n >= sent),
        );
        eprintln!("users requests shown: {shown}");
    } else {
        let text = eval_json(
            &tab,
            r#"JSON.stringify(document.querySelector('[data-testid="no-traffic"]').textContent)"#,
        );
        assert_eq!(text, "no traffic data");
    }

    // The page loads nothing from elsewhere: no absolute src/href in it, and every request
    // Chromium sent went to the admin listener.
    let html = http(px.admin, "GET", "/", &[], None).text();
    for attr in ["src", "href"] {
        for quote in ["\"", "'", ""] {
            for scheme in ["http:", "https:", "//"] {
                let bad = format!("{attr}={quote}{scheme}");
                assert!(!html.to_ascii_lowercase().contains(&bad), "the page has {bad}");
            }
        }
    }
    let urls = urls.lock().map(|u| u.clone()).unwrap_or_default();
    assert!(urls.iter().any(|u| u.contains("status.json")), "{urls:?}");
    let elsewhere: Vec<&String> = urls.iter().filter(|u| !u.starts_with(&origin)).collect();
    assert!(elsewhere.is_empty(), "requests off the admin listener: {elsewhere:?}");
    eprintln!(
        "status page test: {} refreshes, {} requests, {:?}",
        refreshes(&tab),
        urls.len(),
        started.elapsed()
    );
}
