//! Shared integration-test harness: real processes and real sockets on 127.0.0.1.
//!
//! - [`Proxy`]: the `scimitar` binary cargo built for these tests, on ports picked here.
//! - [`ScimServer`]: a real scim2-server (PyPI) from the venv `make test` prepares.
//! - [`TestUpstream`]: a small in-process HTTP server for failure cases (die mid-request,
//!   stall, answer a fixed status) that counts what reached it.
//! - [`nginx::Nginx`]: Debian's nginx on a config a test wrote (the nginx drop-in tests).
//! - [`http`]: a blocking HTTP/1.1 client that returns status, headers and body.
//!
//! Every child process is killed on drop, so a failing test leaves nothing running.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod nginx;
pub mod recorder;
pub mod tcp;
pub mod tls;
pub mod upstream;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use client::{http, Response};
pub use upstream::{Behavior, BlackHole, TestUpstream};

/// A loopback port for a process a test is about to start, never handed out twice in a run.
///
/// Binding port 0 and closing it again is not enough: the kernel hands the same ephemeral port
/// to the next `bind(0)` in a parallel test, and the loser of the race then finds *another*
/// test's listener on "its" port (seen in CI as a 404 from the wrong proxy). So ports come from
/// below the ephemeral range (which also keeps outgoing connections off them), each claimed by a
/// lock file that parallel test threads and processes respect, and checked bindable.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000; // 20000..32000, under Linux's default ephemeral 32768..60999
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let dir = std::env::temp_dir().join("scimitar-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    // Start each process somewhere different so concurrent runs rarely even meet on a lock.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        let lock = dir.join(port.to_string());
        let claimed = match std::fs::OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(_) => true,
            // A claim older than a test run may be taken over.
            Err(_) => {
                std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(1800))
                    && std::fs::write(&lock, b"").is_ok()
            }
        };
        if claimed && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}

/// Polls until something accepts TCP connections on `addr`, or panics after `limit`.
pub fn wait_for_port(addr: SocketAddr, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listening on {addr} after {limit:?}");
}

/// Polls `f` every 50 ms until it returns true or `limit` passes; returns the final answer.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python venv with scim2-server and scim2-tester (`make venv` creates it).
pub fn venv_bin(tool: &str) -> PathBuf {
    let venv = std::env::var("SCIMITAR_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join(".venv"));
    let p = venv.join("bin").join(tool);
    assert!(
        p.exists(),
        "{} is missing: run `make venv` (or `make test`) first",
        p.display()
    );
    p
}

pub struct Reaper(Child);

impl Reaper {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Sends a signal by name (`TERM`, `HUP`, …).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -s {sig} {}", self.pid());
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it is still up.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real scim2-server process.
pub struct ScimServer {
    pub addr: SocketAddr,
    _child: Reaper,
    extra: Vec<String>,
    /// Where `--debug` writes each request's WSGI environment, when recording.
    record: Option<PathBuf>,
}

impl ScimServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_full(extra, None)
    }

    /// A scim2-server that appends every request it starts handling to `log` (`--debug`: the
    /// WSGI environment, `HTTP_X_REQUEST_ID` included), before any of it is applied. That is
    /// the upstream's own ledger of what reached it, which survives a kill; [`ledger`] reads it.
    pub fn start_recording(log: &std::path::Path) -> Self {
        Self::start_full(&[], Some(log.to_path_buf()))
    }

    fn start_full(extra: &[&str], record: Option<PathBuf>) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = Self::spawn(addr, &extra, record.as_deref());
        ScimServer {
            addr,
            _child: child,
            extra,
            record,
        }
    }

    fn spawn(addr: SocketAddr, extra: &[String], record: Option<&std::path::Path>) -> Reaper {
        let mut cmd = Command::new(venv_bin("scim2-server"));
        cmd.args(["--hostname", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(log) = record {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("scim2-server request log");
            // The environment is logged with every request: keep it to what Python needs.
            cmd.arg("--debug")
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .stderr(file);
        }
        let child = Reaper(cmd.spawn().expect("spawn scim2-server"));
        wait_for_port(addr, Duration::from_secs(20));
        child
    }

    /// Sends a signal by name (`STOP`, `CONT`, …).
    pub fn signal(&self, sig: &str) {
        self._child.signal(sig);
    }

    /// SIGKILL, as a crash would: the in-memory data is gone and the port refuses connections.
    pub fn kill(&mut self) {
        let _ = self._child.0.kill();
        let _ = self._child.0.wait();
    }

    /// A fresh, empty scim2-server on the same port (its socketserver sets SO_REUSEADDR, so
    /// the old connections in TIME_WAIT do not block the bind); a recording one appends to the
    /// same log.
    pub fn restart(&mut self) {
        self.kill();
        self._child = Self::spawn(self.addr, &self.extra, self.record.as_deref());
    }
}

/// The `X-Request-Id`s of the requests a recording [`ScimServer`] started handling, in order,
/// one entry per time a request reached it.
pub fn ledger(log: &std::path::Path) -> Vec<String> {
    const KEY: &str = "'HTTP_X_REQUEST_ID': '";
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find(KEY)? + KEY.len()..];
            Some(rest[..rest.find('\'')?].to_string())
        })
        .collect()
}

/// A real redis-server on a fresh port, without persistence. `kill` and `restart` (same port)
/// simulate an outage.
pub struct RedisServer {
    pub port: u16,
    child: Option<Reaper>,
    dir: PathBuf,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut r = RedisServer {
            port: free_port(),
            child: None,
            dir: scratch_dir("redis"),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        drop(self.child.take());
    }

    /// Stops the process with SIGSTOP until the guard drops (SIGCONT): its port still accepts
    /// connections (the kernel completes the handshakes) but nothing is ever answered — a
    /// stall, unlike [`RedisServer::kill`]'s refusal. Drop the guard before the server (declare
    /// it after): a stopped process still dies on SIGKILL, so cleanup holds either way.
    pub fn stall(&self) -> Stalled {
        let pid = self.child.as_ref().expect("redis-server is running").pid();
        let stalled = Stalled(pid);
        stalled.send("STOP");
        stalled
    }

    pub fn restart(&mut self) {
        self.kill();
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&bin)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin} ({e}); `make test` installs redis-server"));
        self.child = Some(Reaper(child));
        wait_for_port(SocketAddr::from(([127, 0, 0, 1], self.port)), Duration::from_secs(10));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A process stopped by SIGSTOP; continued on drop, also when a test fails.
pub struct Stalled(u32);

impl Stalled {
    fn send(&self, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, &self.0.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -s {sig} {}", self.0);
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-s", "CONT", &self.0.to_string()]).status();
    }
}

/// Sends `n` requests at once (one thread each) and returns the responses in order.
pub fn concurrently(n: usize, f: impl Fn(usize) -> Response + Send + Sync + 'static) -> Vec<Response> {
    let f = std::sync::Arc::new(f);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let f = f.clone();
            std::thread::spawn(move || f(i))
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("request thread")).collect()
}

/// Runs scim2-tester's `check_server()` against each base URL (tests/py/conformance.py) and
/// returns its JSON summary per URL: total, success, skipped, failed, failures.
pub fn scim2_tester(urls: &[String], token: Option<&str>) -> Vec<serde_json::Value> {
    scim2_tester_with(urls, token, None)
}

/// [`scim2_tester`], trusting the CA bundle `ca` for `https://` URLs.
pub fn scim2_tester_with(urls: &[String], token: Option<&str>, ca: Option<&std::path::Path>) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(venv_bin("python"));
    if let Some(t) = token {
        cmd.env("SCIM_TOKEN", t);
    }
    if let Some(ca) = ca {
        cmd.env("SCIM_CA", ca);
    }
    let out = cmd
        .arg(repo().join("tests/py/conformance.py"))
        .args(urls)
        .output()
        .expect("run scim2-tester");
    assert!(
        out.status.success(),
        "scim2-tester failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON result line"))
        .collect()
}

/// The scimitar binary running with a generated config.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: PathBuf,
    child: Option<Reaper>,
}

pub fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scimitar-test-{}-{tag}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

impl Proxy {
    /// Starts scimitar with `body` (the `upstreams`, `routes`, … sections); `server`,
    /// `listeners` and `admin` are filled in here with fresh ports.
    pub fn start(body: &str) -> Self {
        Self::start_with_listeners("", body)
    }

    /// Like [`Proxy::start`], with more listeners after the plaintext `main` one: `extra` is
    /// YAML list items (`  - name: ..`) on ports the caller picked with [`free_port`].
    pub fn start_with_listeners(extra: &str, body: &str) -> Self {
        Self::start_full("", extra, body)
    }

    /// Like [`Proxy::start`], with more `admin` keys (indented lines, e.g.
    /// `"  token_sha256: …\n"`): the body follows `admin.address` in the file, so they extend
    /// the admin section.
    pub fn start_with_admin(admin: &str, body: &str) -> Self {
        Self::start_full("", "", &format!("{admin}{body}"))
    }

    /// The config text [`Proxy::start_full`] writes (and a reload test rewrites).
    pub fn config_text(&self, server: &str, extra: &str, body: &str) -> String {
        format!(
            "server:\n  threads: 2\n  pid_file: {d}/scimitar.pid\n  upgrade_sock: {d}/upgrade.sock\n{server}listeners:\n  - name: main\n    address: \"{addr}\"\n{extra}admin:\n  address: \"{admin}\"\n{body}",
            d = self.dir.display(),
            addr = self.addr,
            admin = self.admin,
        )
    }

    /// Like [`Proxy::start_with_listeners`], with `server` as extra lines of the `server`
    /// section (indented already; empty keeps scimitar's own shutdown defaults).
    pub fn start_full(server: &str, extra: &str, body: &str) -> Self {
        let mut p = Proxy {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            admin: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir: scratch_dir("proxy"),
            child: None,
        };
        std::fs::write(p.config_path(), p.config_text(server, extra, body)).expect("write config");
        p.child = Some(p.spawn(&[], "scimitar.log"));
        wait_for_port(p.addr, Duration::from_secs(20));
        wait_for_port(p.admin, Duration::from_secs(5));
        p
    }

    /// Starts scimitar on a whole config file's text that listens on `addr` and has its admin
    /// listener on `admin` (for configs a test did not assemble from parts, such as the output
    /// of `scimitar import nginx`).
    pub fn start_text(addr: SocketAddr, admin: SocketAddr, text: &str) -> Self {
        let mut p = Proxy {
            addr,
            admin,
            dir: scratch_dir("proxy"),
            child: None,
        };
        std::fs::write(p.config_path(), text).expect("write config");
        p.child = Some(p.spawn(&[], "scimitar.log"));
        wait_for_port(p.addr, Duration::from_secs(20));
        wait_for_port(p.admin, Duration::from_secs(5));
        p
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("scimitar.yaml")
    }

    /// Another scimitar process on this proxy's config file (`args` e.g. `["-u"]` for a binary
    /// upgrade), logging to `log` in the proxy's directory.
    pub fn spawn(&self, args: &[&str], log: &str) -> Reaper {
        Reaper(self.spawn_with_stdout(args, log, Stdio::null()))
    }

    fn spawn_with_stdout(&self, args: &[&str], log: &str, stdout: Stdio) -> Child {
        let log = std::fs::File::create(self.dir.join(log)).expect("log file");
        Command::new(env!("CARGO_BIN_EXE_scimitar"))
            .arg("-c")
            .arg(self.config_path())
            .args(args)
            .env("RUST_LOG", "info,scimitar::access=debug")
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .expect("spawn scimitar")
    }

    /// Like [`Proxy::start`], with scimitar's standard output on a pipe the caller holds (and
    /// may leave unread, to stall a writer on it).
    pub fn start_piped(body: &str) -> (Self, std::process::ChildStdout) {
        let mut p = Proxy {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            admin: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir: scratch_dir("proxy"),
            child: None,
        };
        std::fs::write(p.config_path(), p.config_text("", "", body)).expect("write config");
        let mut child = p.spawn_with_stdout(&[], "scimitar.log", Stdio::piped());
        let out = child.stdout.take().expect("piped stdout");
        p.child = Some(Reaper(child));
        wait_for_port(p.addr, Duration::from_secs(20));
        wait_for_port(p.admin, Duration::from_secs(5));
        (p, out)
    }

    /// The admin `/metrics` exposition as `name{labels}` → value (comment lines skipped).
    pub fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        let r = http(self.admin, "GET", "/metrics", &[], None);
        assert_eq!(r.status, 200, "admin /metrics");
        assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
        parse_exposition(&r.text())
    }

    /// The running process (panics when it was taken).
    pub fn process(&mut self) -> &mut Reaper {
        self.child.as_mut().expect("scimitar process")
    }

    /// Replaces the running process (after a binary upgrade the new one serves).
    pub fn adopt(&mut self, r: Reaper) -> Option<Reaper> {
        self.child.replace(r)
    }

    pub fn get(&self, path: &str) -> Response {
        http(self.addr, "GET", path, &[], None)
    }

    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Response {
        http(self.addr, method, path, headers, body)
    }

    /// The admin `/status.json` document.
    pub fn status(&self) -> serde_json::Value {
        let r = http(self.admin, "GET", "/status.json", &[], None);
        assert_eq!(r.status, 200, "admin /status.json");
        serde_json::from_slice(&r.body).expect("status JSON")
    }

    /// Health of one server as the admin page reports it.
    pub fn server_healthy(&self, pool: usize, server: SocketAddr) -> bool {
        let s = self.status();
        s["pools"][pool]["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["address"] == server.to_string())
            .and_then(|v| v["healthy"].as_bool())
            .unwrap_or(false)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("scimitar.log")).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        drop(self.child.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Prometheus text format: every line that is not a comment is `name{labels} value`; the
/// label block may hold spaces inside quoted values, so the value is what follows the last space.
pub fn parse_exposition(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not `series value`: {l}"));
            let v = match v {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {l}")),
            };
            (k.to_string(), v)
        })
        .collect()
}

/// YAML for one pool named `name` over `servers`, with extra pool keys indented already.
pub fn pool_yaml(name: &str, servers: &[SocketAddr], extra: &str) -> String {
    let mut s = format!("  {name}:\n    servers:\n");
    for a in servers {
        s.push_str(&format!("      - address: \"{a}\"\n"));
    }
    s.push_str(extra);
    s
}
