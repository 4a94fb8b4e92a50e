//! Operating scimitar: hot reload (SIGHUP, `POST /reload`) under load, a refused reload, and
//! every way to stop — SIGTERM idle and with a request in flight, SIGINT and a second SIGTERM,
//! repeated stops under traffic with a bounded log, and a binary upgrade under load.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::client::{http, try_http};
use common::upstream::{Behavior, TestUpstream};
use common::{eventually, pool_yaml, Proxy};

/// Two echo pools and a route to `to`.
fn body(a: &TestUpstream, b: &TestUpstream, to: &str) -> String {
    format!(
        "upstreams:\n{}{}routes:\n  - base_path: /scim/v2\n    upstream: {to}\n",
        pool_yaml("a", &[a.addr], ""),
        pool_yaml("b", &[b.addr], ""),
    )
}

fn served_by(p: &Proxy) -> String {
    let r = p.get("/scim/v2/Users");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["server"].as_str().unwrap_or_default().to_string()
}

fn generation(p: &Proxy) -> u64 {
    p.status()["config"]["generation"].as_u64().unwrap_or(0)
}

/// Clients that keep sending (keep-alive off, so each request is a new connection) until
/// stopped, counting answers that were not 200.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: std::net::SocketAddr, clients: usize, method: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    let t0 = Instant::now();
                    // Bounded by count and time whatever happens.
                    for _ in 0..20_000 {
                        if stop.load(SeqCst) || t0.elapsed() > Duration::from_secs(60) {
                            break;
                        }
                        let body = (method == "POST").then_some(r#"{"userName":"x"}"#);
                        let hdrs = [("content-type", "application/scim+json")];
                        match try_http(addr, method, "/scim/v2/Users", &hdrs, body) {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, SeqCst);
                            }
                            Ok(r) => failed.lock().unwrap().push(format!("{} {}", r.status, r.text())),
                            Err(e) => failed.lock().unwrap().push(format!("error: {e}")),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.ok.load(SeqCst), failed)
    }
}

#[test]
fn reload_under_load_moves_the_route_without_a_failed_request() {
    let a = TestUpstream::start("a", Behavior::Echo);
    let b = TestUpstream::start("b", Behavior::Echo);
    let p = Proxy::start(&body(&a, &b, "a"));
    assert_eq!(served_by(&p), "a");
    assert_eq!(generation(&p), 1);

    let load = Load::start(p.addr, 4, "POST");
    std::thread::sleep(Duration::from_millis(300));
    let text = p.config_text("", "", &body(&a, &b, "b"));
    std::fs::write(p.config_path(), text).unwrap();
    let r = http(p.admin, "POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["generation"], 2);
    assert_eq!(report["needs_restart"].as_array().map(Vec::len), Some(0), "{report}");
    let a_before = a.hits();
    std::thread::sleep(Duration::from_millis(300));
    let (ok, failed) = load.finish();

    assert!(failed.is_empty(), "requests failed across the reload: {failed:?}");
    assert!(ok > 20, "the load ran ({ok} requests)");
    assert_eq!(served_by(&p), "b", "new requests follow the new route");
    assert!(b.hits() > 5, "pool b took the traffic after the reload");
    // Requests that started on the old config may finish on a; none start there any more.
    let settled = a.hits();
    assert!(
        settled - a_before <= 4,
        "a took {} requests after the swap",
        settled - a_before
    );
    std::thread::sleep(Duration::from_millis(100));
    p.get("/scim/v2/Users");
    assert_eq!(a.hits(), settled);
    let s = p.status();
    assert_eq!(s["config"]["generation"], 2);
    assert_eq!(s["config"]["reloads"]["succeeded"], 1);
}

#[test]
fn a_broken_config_is_refused_and_the_old_one_keeps_serving() {
    let a = TestUpstream::start("a", Behavior::Echo);
    let b = TestUpstream::start("b", Behavior::Echo);
    let mut p = Proxy::start(&body(&a, &b, "a"));
    let good = std::fs::read_to_string(p.config_path()).unwrap();
    let hash = p.status()["config"]["hash"].clone();

    // A route to a pool that does not exist, and a typo'd key.
    let broken = good
        .replace("upstream: a", "upstream: nowhere")
        .replace("routes:", "routez:");
    std::fs::write(p.config_path(), broken).unwrap();
    let r = http(p.admin, "POST", "/reload", &[], None);
    assert_eq!(r.status, 422, "{}", r.text());
    let report = r.json();
    assert_eq!(report["ok"], false);
    let errors = report["errors"].to_string();
    assert!(errors.contains("routez"), "the error names the key: {errors}");
    assert_eq!(report["generation"], 1);
    assert_eq!(served_by(&p), "a", "the old config still serves");

    // SIGHUP with the same broken file: refused, counted, and the process lives on.
    p.process().signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || p.status()["config"]["reloads"]["failed"]
            == 2),
        "SIGHUP reload was refused and counted"
    );
    assert!(
        p.process().wait_exit(Duration::from_millis(200)).is_none(),
        "SIGHUP killed the process"
    );
    assert_eq!(served_by(&p), "a");
    assert_eq!(p.status()["config"]["hash"], hash);
    assert!(p.log().contains("reload (SIGHUP) refused"), "the refusal is logged");

    // A YAML syntax error too.
    std::fs::write(p.config_path(), "listeners: [\n").unwrap();
    let r = http(p.admin, "POST", "/reload", &[], None);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("YAML"), "{}", r.text());
    assert_eq!(served_by(&p), "a");
}

#[test]
fn sighup_reloads_and_listener_changes_are_reported_as_needing_a_restart() {
    let a = TestUpstream::start("a", Behavior::Echo);
    let b = TestUpstream::start("b", Behavior::Echo);
    let mut p = Proxy::start(&body(&a, &b, "a"));
    // Move the route, and the main listener to another port in the same edit.
    let other = common::free_port();
    let text = std::fs::read_to_string(p.config_path())
        .unwrap()
        .replace("upstream: a", "upstream: b")
        .replace(&p.addr.to_string(), &format!("127.0.0.1:{other}"));
    std::fs::write(p.config_path(), text).unwrap();
    p.process().signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || generation(&p) == 2),
        "SIGHUP applied the new file"
    );
    assert!(
        p.process().wait_exit(Duration::from_millis(100)).is_none(),
        "SIGHUP killed the process"
    );
    assert_eq!(served_by(&p), "b", "the route moved");
    let last = &p.status()["config"]["reloads"]["last"];
    assert_eq!(
        last["needs_restart"],
        serde_json::json!(["listeners.main: changed"]),
        "{last}"
    );
    // Not half-applied: the old address still serves, the new one is not bound.
    assert!(std::net::TcpStream::connect(("127.0.0.1", other)).is_err());
}

/// The server section without test shortcuts: scimitar's own shutdown defaults apply.
const DEFAULTS: &str = "";

#[test]
fn sigterm_on_an_idle_proxy_exits_within_two_seconds() {
    let a = TestUpstream::start("a", Behavior::Echo);
    let b = TestUpstream::start("b", Behavior::Echo);
    let mut p = Proxy::start_full(DEFAULTS, "", &body(&a, &b, "a"));
    assert_eq!(served_by(&p), "a");
    let t0 = Instant::now();
    p.process().signal("TERM");
    let status = p.process().wait_exit(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
    assert!(p.log().contains("nothing in flight"), "{}", p.log());
}

#[test]
fn sigterm_lets_a_slow_request_finish_then_exits_right_after() {
    let slow = TestUpstream::start("slow", Behavior::Stall(Duration::from_millis(1500)));
    let b = TestUpstream::start("b", Behavior::Echo);
    let mut p = Proxy::start_full(DEFAULTS, "", &body(&slow, &b, "a"));
    let addr = p.addr;
    let req = std::thread::spawn(move || {
        let r = try_http(addr, "POST", "/scim/v2/Users", &[], Some("{}"));
        (r.map(|r| r.status), Instant::now())
    });
    assert!(eventually(Duration::from_secs(3), || slow.active.0.load(SeqCst) == 1));
    p.process().signal("TERM");
    // New connections are refused while the slow one drains.
    assert!(eventually(Duration::from_secs(2), || std::net::TcpStream::connect(
        addr
    )
    .is_err()));
    let status = p.process().wait_exit(Duration::from_secs(10));
    let exited = Instant::now();
    let (answer, answered) = req.join().unwrap();
    assert_eq!(answer.ok(), Some(200), "the request in flight completed");
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    assert!(
        exited.duration_since(answered) < Duration::from_millis(800),
        "exited {:?} after the last answer",
        exited.duration_since(answered)
    );
}

#[test]
fn sigint_or_a_second_sigterm_exits_at_once() {
    for second in ["INT", "TERM"] {
        let slow = TestUpstream::start("slow", Behavior::Stall(Duration::from_secs(20)));
        let b = TestUpstream::start("b", Behavior::Echo);
        let mut p = Proxy::start_full(DEFAULTS, "", &body(&slow, &b, "a"));
        let addr = p.addr;
        std::thread::spawn(move || try_http(addr, "GET", "/scim/v2/Users", &[], None));
        assert!(eventually(Duration::from_secs(3), || slow.active.0.load(SeqCst) == 1));
        p.process().signal("TERM");
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            p.process().wait_exit(Duration::from_millis(10)).is_none(),
            "SIGTERM waits for the request in flight"
        );
        let t0 = Instant::now();
        p.process().signal(second);
        let status = p.process().wait_exit(Duration::from_secs(3));
        assert!(status.is_some(), "SIG{second} after SIGTERM did not end the process");
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "SIG{second} took {:?}",
            t0.elapsed()
        );
    }
}

#[test]
fn stopping_by_any_signal_under_traffic_is_bounded_and_quiet() {
    let a = TestUpstream::start("a", Behavior::Echo);
    let b = TestUpstream::start("b", Behavior::Echo);
    // SIGQUIT with no new process to take the sockets costs Pingora ~10 s of retries and
    // hand-over wait before the drain, so it runs once.
    for (round, sig) in ["TERM", "INT", "QUIT", "TERM", "INT", "TERM", "INT"]
        .into_iter()
        .enumerate()
    {
        let mut p = Proxy::start_full(DEFAULTS, "", &body(&a, &b, "a"));
        let load = Load::start(p.addr, 3, "GET");
        let admin = p.admin;
        let stop_admin = Arc::new(AtomicBool::new(false));
        let s2 = stop_admin.clone();
        let poller = std::thread::spawn(move || {
            for _ in 0..2000 {
                if s2.load(SeqCst) {
                    break;
                }
                let _ = try_http(admin, "GET", "/status.json", &[], None);
            }
        });
        std::thread::sleep(Duration::from_millis(150 + 50 * round as u64));
        let t0 = Instant::now();
        p.process().signal(sig);
        // SIGQUIT tries for 5 s to hand the sockets over (nobody takes them here) and waits
        // 5 s more for the taker to start, then drains.
        let limit = if sig == "QUIT" { 16 } else { 3 };
        let status = p.process().wait_exit(Duration::from_secs(limit));
        stop_admin.store(true, SeqCst);
        let _ = poller.join();
        let (ok, failed) = load.finish();
        assert!(
            status.is_some(),
            "round {round}: SIG{sig} did not end the process in {limit}s"
        );
        // Bounded by the traffic: at most a few lines per request (its access line, Pingora's
        // connection-pool noise) plus start-up and stop.
        let log = p.log();
        let lines = log.lines().count();
        let requests = ok + failed.len();
        assert!(
            lines < 3 * requests + 200,
            "round {round}: SIG{sig}: {lines} log lines for {requests} requests: {}",
            &log[log.len().saturating_sub(2000)..]
        );
        assert!(
            log.matches("Accept() failed").count() < 5,
            "round {round}: accept loop spun on SIG{sig}"
        );
        eprintln!("round {round}: SIG{sig} exit in {:?}", t0.elapsed());
    }
}

#[test]
fn binary_upgrade_under_load_loses_no_request() {
    let a = TestUpstream::start("a", Behavior::Echo);
    let b = TestUpstream::start("b", Behavior::Echo);
    let mut p = Proxy::start_full(DEFAULTS, "", &body(&a, &b, "a"));
    let old_pid = p.process().pid();
    let load = Load::start(p.addr, 4, "POST");
    std::thread::sleep(Duration::from_millis(300));

    // The new process first (it waits for the sockets), then SIGQUIT to the old one.
    let new = p.spawn(&["-u"], "upgraded.log");
    std::thread::sleep(Duration::from_millis(500));
    let mut old = p.adopt(new).expect("old process");
    old.signal("QUIT");
    let status = old.wait_exit(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "old process exit: {status:?}");
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failed) = load.finish();

    assert!(
        failed.is_empty(),
        "{} requests failed across the upgrade: {failed:?}",
        failed.len()
    );
    assert!(ok > 50, "the load ran ({ok} requests)");
    assert_ne!(p.process().pid(), old_pid);
    assert_eq!(served_by(&p), "a", "the new process serves");
    // Pingora logs its wait for the sockets at ERROR ("No incoming socket transfer"), and a
    // race in its upstream connection pool under concurrency ("failed to acquire reusable
    // stream", seen without any upgrade too); any other error line would be news.
    let upgraded = std::fs::read_to_string(p.dir.join("upgraded.log")).unwrap_or_default();
    let errors: Vec<&str> = upgraded
        .lines()
        .filter(|l| l.contains("ERROR"))
        .filter(|l| !l.contains("No incoming socket transfer") && !l.contains("failed to acquire reusable stream"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn a_daemonised_proxy_still_reloads_on_sighup_and_stops_on_sigterm() {
    let a = TestUpstream::start("a", Behavior::Echo);
    let b = TestUpstream::start("b", Behavior::Echo);
    let mut p = Proxy::start_full(DEFAULTS, "", &body(&a, &b, "a"));
    // Same config, daemonised (`-d` forks: handlers installed before the fork must still act).
    p.process().signal("TERM");
    assert!(p.process().wait_exit(Duration::from_secs(3)).is_some());
    let mut parent = p.spawn(&["-d"], "daemon.log");
    assert!(
        parent.wait_exit(Duration::from_secs(10)).is_some(),
        "the -d parent returns"
    );
    common::wait_for_port(p.addr, Duration::from_secs(20));
    let pid = std::fs::read_to_string(p.dir.join("scimitar.pid")).expect("pid file");
    let pid = pid.trim().to_string();
    // Not a child of the test: kill it if an assertion fails first.
    struct Guard(String);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill").args(["-9", &self.0]).status();
        }
    }
    let _guard = Guard(pid.clone());
    let alive = || {
        std::process::Command::new("kill")
            .args(["-0", &pid])
            .status()
            .is_ok_and(|s| s.success())
    };
    let kill = |sig: &str| {
        let ok = std::process::Command::new("kill").args(["-s", sig, &pid]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -s {sig} {pid}");
    };
    let text = std::fs::read_to_string(p.config_path())
        .unwrap()
        .replace("upstream: a", "upstream: b");
    std::fs::write(p.config_path(), text).unwrap();
    kill("HUP");
    assert!(eventually(Duration::from_secs(5), || generation(&p) == 2), "reloaded");
    assert!(alive(), "SIGHUP killed the daemon");
    assert_eq!(served_by(&p), "b");
    kill("TERM");
    assert!(
        eventually(Duration::from_secs(3), || !alive()),
        "SIGTERM did not stop the daemon"
    );
}

#[test]
fn a_reload_that_adds_a_server_keeps_a_dead_one_out_of_rotation() {
    let up = TestUpstream::start("up", Behavior::Echo);
    let added = TestUpstream::start("added", Behavior::Echo);
    let b = TestUpstream::start("b", Behavior::Echo);
    // A port nobody listens on: the health check fails at once.
    let dead: std::net::SocketAddr = ([127, 0, 0, 1], common::free_port()).into();
    let hc =
        "    health_check: {path: /scim/v2/ServiceProviderConfig, interval: 30s, timeout: 500ms, fall: 1, rise: 1}\n";
    let body = |servers: &[std::net::SocketAddr]| {
        format!(
            "upstreams:\n{}{}routes:\n  - base_path: /scim/v2\n    upstream: a\n",
            pool_yaml("a", servers, hc),
            pool_yaml("b", &[b.addr], ""),
        )
    };
    let p = Proxy::start(&body(&[up.addr, dead]));
    assert!(eventually(Duration::from_secs(5), || !p.server_healthy(0, dead)));

    // The server list changes, so the pool is built afresh; its checker would start out
    // believing every server healthy and, with a 30 s interval, keep the dead one in rotation.
    std::fs::write(
        p.config_path(),
        p.config_text("", "", &body(&[up.addr, dead, added.addr])),
    )
    .unwrap();
    let r = http(p.admin, "POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        !p.server_healthy(0, dead),
        "the dead server is out of rotation as the new pool serves"
    );
    assert!(p.server_healthy(0, up.addr) && p.server_healthy(0, added.addr));
    for _ in 0..6 {
        assert_eq!(p.get("/scim/v2/Users").status, 200);
    }
    assert!(added.hits() > 0, "the new server takes traffic");
}

#[test]
fn a_reload_may_not_remove_the_pool_of_a_running_tcp_listener() {
    let a = TestUpstream::start("a", Behavior::Echo);
    let b = TestUpstream::start("b", Behavior::Echo);
    let tcp = common::free_port();
    let listener = |pool: &str| {
        format!("  - name: tcp\n    address: \"127.0.0.1:{tcp}\"\n    protocol: tcp\n    upstream: {pool}\n")
    };
    let p = Proxy::start_full(DEFAULTS, &listener("b"), &body(&a, &b, "a"));
    // Re-point the tcp listener to pool a and drop pool b: the listener change needs a restart,
    // so the running listener would be left on a pool nobody health-checks any more.
    let only_a = format!(
        "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: a\n",
        pool_yaml("a", &[a.addr], "")
    );
    std::fs::write(p.config_path(), p.config_text("", &listener("a"), &only_a)).unwrap();
    let r = http(p.admin, "POST", "/reload", &[], None);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("still used by the running tcp listener `tcp`"),
        "{}",
        r.text()
    );
    assert_eq!(generation(&p), 1);
    // Keeping pool b makes the same edit acceptable (the listener change waits for a restart).
    let with_b = format!(
        "upstreams:\n{}{}routes:\n  - base_path: /scim/v2\n    upstream: a\n",
        pool_yaml("a", &[a.addr], ""),
        pool_yaml("b", &[b.addr], "")
    );
    std::fs::write(p.config_path(), p.config_text("", &listener("a"), &with_b)).unwrap();
    let r = http(p.admin, "POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["needs_restart"], serde_json::json!(["listeners.tcp: changed"]));
}
