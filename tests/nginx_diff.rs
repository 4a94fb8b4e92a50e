//! The drop-in promise, tested side by side: nginx runs an nginx config, scimitar runs what
//! `scimitar import nginx` made of the same file, each in front of its own fresh scim2-server
//! replicas, and the same request matrix goes through both — for every fixture of
//! tests/fixtures/nginx that Debian's nginx 1.22 can run, over TLS (and mTLS) where the fixture
//! listens so. Every row says whether the two must give the same status or differ on purpose
//! (and how); the proxy's own answers from scimitar must be SCIM errors.
//!
//! Needs nginx (`make test` installs Debian's); without it the test says so and passes only
//! when `SCIMITAR_REQUIRE_NGINX` is unset.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::client::try_http;
use common::nginx::Nginx;
use common::tls::{curl, resolve, TlsClient};
use common::{free_port, http, scratch_dir, Proxy, Response, ScimServer};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nginx");
const TOKEN: &str = "Bearer diff-idp-token";

/// What a row expects of the two proxies.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Both answer this status (the upstream's answer, or the same refusal).
    Same(u16),
    /// Both answer this status, and scimitar's is its own SCIM error body (nginx's is HTML or
    /// text).
    SameScimBody(u16),
    /// A documented difference (README, "Coming from nginx"): each proxy's status.
    Differ { nginx: u16, scimitar: u16 },
}

struct Row {
    name: &'static str,
    /// Another Authorization header than the fixture's.
    token: Option<&'static str>,
    method: &'static str,
    /// `{uid}` and `{gid}` are replaced by the ids this side's creates returned.
    path: &'static str,
    body: Body,
    expect: Expect,
}

#[derive(Clone, Copy)]
enum Body {
    None,
    Json(&'static str),
    /// A JSON-ish body of this many bytes (for the size limits).
    Sized(usize),
}

/// How the rows' client connects to the fixture's first listener.
#[derive(Clone, Copy, PartialEq)]
enum Tls {
    Plain,
    /// HTTPS, trusting the fixture certificate (self-signed, certs/README) for scim.example.com.
    Server,
    /// HTTPS with the fixture certificate as the client's, too (the fixtures' mTLS trusts it).
    Mutual,
}

/// One nginx config of tests/fixtures/nginx and what to send through it.
struct Fixture {
    /// Relative to tests/fixtures/nginx; the whole directory is copied (includes, certs) and the
    /// addresses are substituted in every `.conf` of the copy.
    file: &'static str,
    /// Every address the fixture listens on, each replaced by a free port on each side; the rows
    /// go to the first.
    listen: &'static [&'static str],
    tls: Tls,
    /// The Authorization header of the rows (a fixture may check it).
    token: &'static str,
    /// The fixture's upstream addresses, by replica: every address in a group is replaced by the
    /// same fresh scim2-server (replicas share no state, so a round-robin pool over two of them
    /// would make the two proxies' answers depend on their turn order, not their behaviour).
    replicas: &'static [&'static [&'static str]],
    /// A scim2-server tenant the replicas serve SCIM under (/TENANT/v2; None: /v2): fixtures
    /// without a proxy_pass URI part expect their SCIM servers at the public path, /scim/v2.
    upstream_prefix: Option<&'static str>,
    /// An address nothing listens on.
    dead: Option<&'static str>,
    /// The import's exit code: 1 when it dropped something that changes request handling (the
    /// test then accepts it with `--allow-partial`, as an operator would after reading the report).
    import_exit: i32,
    rows: &'static [Row],
}

const USER: &str = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"diff.alice"}"#;
const USER_PUT: &str =
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"diff.alice","displayName":"Alice"}"#;
const DEACTIVATE: &str = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}"#;
const GROUP: &str = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"diff-group"}"#;
const ADD_MEMBER: &str = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"{uid}"}]}]}"#;
const SEARCH: &str = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"count":5}"#;
const BULK: &str = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[{"method":"POST","path":"/Users","bulkId":"b1","data":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"diff.bulk"}}]}"#;

use Body::{Json, Sized};
use Expect::{Differ, Same, SameScimBody};

/// diff/scim-diff.conf: every SCIM operation on the SCIM location (two replicas kept apart by a
/// consistent hash on the credential), then the edges: paths outside every location, the body
/// limits (server-wide and the Bulk location's own), a `return`, a dead upstream.
#[rustfmt::skip]
const DIFF: Fixture = Fixture {
    file: "diff/scim-diff.conf",
    listen: &["127.0.0.1:18300"],
    tls: Tls::Plain,
    token: TOKEN,
    replicas: &[&["127.0.0.1:18301"], &["127.0.0.1:18302"]],
    upstream_prefix: None,
    dead: Some("127.0.0.1:18309"),
    import_exit: 0,
    rows: &[
        row("discovery: ServiceProviderConfig", "GET", "/scim/v2/ServiceProviderConfig", Body::None, Same(200)),
        row("discovery: Schemas", "GET", "/scim/v2/Schemas", Body::None, Same(200)),
        row("discovery: ResourceTypes", "GET", "/scim/v2/ResourceTypes", Body::None, Same(200)),
        row("create user", "POST", "/scim/v2/Users", Json(USER), Same(201)),
        row("read the user back", "GET", "/scim/v2/Users/{uid}", Body::None, Same(200)),
        row("filter by userName", "GET", "/scim/v2/Users?filter=userName%20eq%20%22diff.alice%22", Body::None, Same(200)),
        row("replace user", "PUT", "/scim/v2/Users/{uid}", Json(USER_PUT), Same(200)),
        row("deactivate user (PATCH)", "PATCH", "/scim/v2/Users/{uid}", Json(DEACTIVATE), Same(204)),
        row("create the same userName again", "POST", "/scim/v2/Users", Json(USER), Same(409)),
        row("search users", "POST", "/scim/v2/Users/.search", Json(SEARCH), Same(200)),
        row("search everything", "POST", "/scim/v2/.search", Json(SEARCH), Same(200)),
        row("create group", "POST", "/scim/v2/Groups", Json(GROUP), Same(201)),
        row("add member", "PATCH", "/scim/v2/Groups/{gid}", Json(ADD_MEMBER), Same(204)),
        row("read group", "GET", "/scim/v2/Groups/{gid}", Body::None, Same(200)),
        row("bulk create (under the Bulk limit)", "POST", "/scim/v2/Bulk", Json(BULK), Same(200)),
        row("delete group", "DELETE", "/scim/v2/Groups/{gid}", Body::None, Same(204)),
        row("delete user", "DELETE", "/scim/v2/Users/{uid}", Body::None, Same(204)),
        row("read the deleted user (upstream's 404)", "GET", "/scim/v2/Users/{uid}", Body::None, Same(404)),
        row("a path under the SCIM location that is no endpoint", "GET", "/scim/v2/Widgets", Body::None, Same(404)),
        row("outside every location", "GET", "/elsewhere", Body::None, SameScimBody(404)),
        row("another SCIM version's path", "GET", "/scim/v3/Users", Body::None, SameScimBody(404)),
        row("body over client_max_body_size", "POST", "/scim/v2/Users", Sized(20 * 1024), SameScimBody(413)),
        row("Bulk body over its location's limit", "POST", "/scim/v2/Bulk", Sized(3 * 1024), SameScimBody(413)),
        row("a location that returns 410", "GET", "/retired/v2/Users", Body::None, SameScimBody(410)),
        row("an upstream nobody listens on", "GET", "/gone/v2/Users", Body::None, SameScimBody(502)),
    ],
};

/// scim-routes.conf: a location per SCIM endpoint with its own server and settings, proxy_pass
/// URI parts, `return` statuses, and locations scimitar does not carry over.
#[rustfmt::skip]
const ROUTES: Fixture = Fixture {
    file: "scim-routes.conf",
    listen: &["127.0.0.1:18402"],
    tls: Tls::Plain,
    token: TOKEN,
    replicas: &[&["127.0.0.1:18301", "127.0.0.1:18302"], &["127.0.0.1:18303"]],
    upstream_prefix: None,
    dead: None,
    import_exit: 1,
    rows: &[
        row("ServiceProviderConfig (its own cached location)", "GET", "/scim/v2/ServiceProviderConfig", Body::None, Same(200)),
        row("again, from the cache", "GET", "/scim/v2/ServiceProviderConfig", Body::None, Same(200)),
        row("Schemas (the general location)", "GET", "/scim/v2/Schemas", Body::None, Same(200)),
        row("create user (the Users server)", "POST", "/scim/v2/Users", Json(USER), Same(201)),
        row("read the user back", "GET", "/scim/v2/Users/{uid}", Body::None, Same(200)),
        row("deactivate user", "PATCH", "/scim/v2/Users/{uid}", Json(DEACTIVATE), Same(204)),
        row("create group (the pool)", "POST", "/scim/v2/Groups", Json(GROUP), Same(201)),
        row("read group", "GET", "/scim/v2/Groups/{gid}", Body::None, Same(200)),
        row("delete group", "DELETE", "/scim/v2/Groups/{gid}", Body::None, Same(204)),
        row("delete user", "DELETE", "/scim/v2/Users/{uid}", Body::None, Same(204)),
        row("Bulk is refused (return 403)", "POST", "/scim/v2/Bulk", Json(BULK), SameScimBody(403)),
        row("maintenance (return 503 with text)", "GET", "/maintenance/now", Body::None, SameScimBody(503)),
        row("files: not carried over", "GET", "/static/logo.png", Body::None, SameScimBody(404)),
        // Reported by the import: scimitar's `return` answers errors in SCIM, not a 200 text.
        row("return 200 \"ok\": not carried over", "GET", "/health", Body::None, Differ { nginx: 200, scimitar: 404 }),
    ],
};

/// scim-basic.conf: TLS + HTTP/2, a weighted pool, a per-token rate limit with a burst, the
/// default 1m body limit and the Bulk location's 4m.
#[rustfmt::skip]
const BASIC: Fixture = Fixture {
    file: "scim-basic.conf",
    listen: &["127.0.0.1:18443"],
    tls: Tls::Server,
    token: TOKEN,
    // One replica behind both servers of the weighted pool: nginx's and scimitar's weighted
    // round robin need not take the same turns, and a user created on one replica is not on
    // the other.
    replicas: &[&["127.0.0.1:18301", "127.0.0.1:18302"]],
    upstream_prefix: Some("scim"),
    dead: None,
    import_exit: 0,
    rows: &[
        row("discovery over TLS", "GET", "/scim/v2/ServiceProviderConfig", Body::None, Same(200)),
        row("create user", "POST", "/scim/v2/Users", Json(USER), Same(201)),
        row("read the user back", "GET", "/scim/v2/Users/{uid}", Body::None, Same(200)),
        row("deactivate user", "PATCH", "/scim/v2/Users/{uid}", Json(DEACTIVATE), Same(204)),
        row("search users", "POST", "/scim/v2/Users/.search", Json(SEARCH), Same(200)),
        row("bulk create", "POST", "/scim/v2/Bulk", Json(BULK), Same(200)),
        row("delete user", "DELETE", "/scim/v2/Users/{uid}", Body::None, Same(204)),
        row("outside every location", "GET", "/elsewhere", Body::None, SameScimBody(404)),
    ],
};

/// scim-basic.conf's body limits: the server's default 1m, the Bulk location's 4m. Bodies this
/// big outrun the socket buffers, so a proxy that refuses them must read the rest (nginx's
/// lingering close) for the client to see the 413; each row is sent three times.
#[rustfmt::skip]
const BASIC_BODIES: Fixture = Fixture {
    rows: &[
        row("body over the default client_max_body_size (1m)", "POST", "/scim/v2/Users", Sized(1536 * 1024), SameScimBody(413)),
        row("again", "POST", "/scim/v2/Users", Sized(1536 * 1024), SameScimBody(413)),
        row("again", "POST", "/scim/v2/Users", Sized(1536 * 1024), SameScimBody(413)),
        // Under the Bulk location's 4m the body reaches the replica, whose own limit is 1 MiB:
        // its SCIM 413 on both sides (see the test).
        row("the same size on Bulk (4m)", "POST", "/scim/v2/Bulk", Sized(1536 * 1024), Same(413)),
        row("Bulk body over its 4m", "POST", "/scim/v2/Bulk", Sized(5 * 1024 * 1024), SameScimBody(413)),
        row("again", "POST", "/scim/v2/Bulk", Sized(5 * 1024 * 1024), SameScimBody(413)),
        row("again", "POST", "/scim/v2/Bulk", Sized(5 * 1024 * 1024), SameScimBody(413)),
    ],
    ..BASIC
};

/// scim-headers.conf: mTLS, bearer tokens checked by a map + `if … return 401`, header rules
/// whose inheritance differs per location, rate limits by IP and tenant, a redirect-only server.
#[rustfmt::skip]
const HEADERS: Fixture = Fixture {
    file: "scim-headers.conf",
    // The TLS server the rows use, then the plain redirect-only server.
    listen: &["127.0.0.1:18446", "127.0.0.1:18403"],
    tls: Tls::Mutual,
    token: "Bearer okta-3f9c1e",
    // One replica for the round-robin pool (see BASIC).
    replicas: &[&["127.0.0.1:18301", "127.0.0.1:18302"]],
    upstream_prefix: Some("scim"),
    dead: None,
    import_exit: 1,
    rows: &[
        row("discovery with a known token and a client certificate", "GET", "/scim/v2/ServiceProviderConfig", Body::None, Same(200)),
        row("create user", "POST", "/scim/v2/Users", Json(USER), Same(201)),
        row("read the user back", "GET", "/scim/v2/Users/{uid}", Body::None, Same(200)),
        row("read it with the map's other token", "GET", "/scim/v2/Users/{uid}", Body::None, Same(200)).with_token("Bearer entra-77ab02"),
        row("deactivate user", "PATCH", "/scim/v2/Users/{uid}", Json(DEACTIVATE), Same(204)),
        row("create group", "POST", "/scim/v2/Groups", Json(GROUP), Same(201)),
        row("bulk (its own location, its own header rules)", "POST", "/scim/v2/Bulk", Json(BULK), Same(200)),
        row("a token the map does not know", "GET", "/scim/v2/Users/{uid}", Body::None, SameScimBody(401)).with_token("Bearer stolen"),
        row("an empty Authorization: the map's default", "GET", "/scim/v2/Schemas", Body::None, SameScimBody(401)).with_token(""),
        row("delete group", "DELETE", "/scim/v2/Groups/{gid}", Body::None, Same(204)),
        row("delete user", "DELETE", "/scim/v2/Users/{uid}", Body::None, Same(204)),
        row("outside every location, known token", "GET", "/elsewhere", Body::None, SameScimBody(404)),
    ],
};

/// scim-pool.conf: three selection methods, retries, a discovery cache in a regex location, a
/// proxy_pass URI part, a `return 200`, and a listener on IPv6 loopback too.
#[rustfmt::skip]
const POOL: Fixture = Fixture {
    file: "scim-pool.conf",
    listen: &["127.0.0.1:18401", "[::1]:18401"],
    tls: Tls::Plain,
    token: TOKEN,
    // One replica behind every server of every pool: nginx's hash, least_conn and ip_hash pick
    // servers by other functions than scimitar's (the import says ip_hash becomes a consistent
    // hash on tenant/token/IP), so only a shared replica makes the answers comparable. 18303 is
    // `down` / `backup`, never picked while the others answer.
    replicas: &[&["127.0.0.1:18301", "127.0.0.1:18302", "127.0.0.1:18303"]],
    upstream_prefix: Some("scim"),
    dead: None,
    import_exit: 1,
    rows: &[
        // Reported by the import: regex locations are not carried over (write the route by hand).
        row("discovery (a regex location)", "GET", "/scim/v2/ServiceProviderConfig", Body::None, Differ { nginx: 200, scimitar: 404 }),
        row("create user (the hash pool)", "POST", "/scim/v2/Users", Json(USER), Same(201)),
        row("read the user back", "GET", "/scim/v2/Users/{uid}", Body::None, Same(200)),
        row("replace user", "PUT", "/scim/v2/Users/{uid}", Json(USER_PUT), Same(200)),
        row("deactivate user", "PATCH", "/scim/v2/Users/{uid}", Json(DEACTIVATE), Same(204)),
        // Reported by the import: the route takes the Users endpoint class; .search is another.
        row("search under the Users location", "POST", "/scim/v2/Users/.search", Json(SEARCH), Differ { nginx: 200, scimitar: 404 }),
        // proxy_pass …/api/scim/v2/Groups: both send the replaced prefix, which the replica
        // does not serve.
        row("Groups through the URI part", "GET", "/scim/v2/Groups", Body::None, Same(404)),
        row("delete user", "DELETE", "/scim/v2/Users/{uid}", Body::None, Same(204)),
        // Reported by the import: `return 200` with a body is not expressible.
        row("return 200 \"ok\"", "GET", "/healthz", Body::None, Differ { nginx: 200, scimitar: 404 }),
        row("outside every location", "GET", "/elsewhere", Body::None, SameScimBody(404)),
    ],
};

/// scim-includes/nginx.conf: the server, upstream and limits come from included files (a glob, a
/// snippet relative to the main file, a glob matching nothing); TLS without HTTP/2.
#[rustfmt::skip]
const INCLUDES: Fixture = Fixture {
    file: "scim-includes/nginx.conf",
    listen: &["127.0.0.1:18445"],
    tls: Tls::Server,
    token: TOKEN,
    // One replica for the weighted pool (see BASIC).
    replicas: &[&["127.0.0.1:18301", "127.0.0.1:18302"]],
    upstream_prefix: Some("scim"),
    dead: None,
    import_exit: 0,
    rows: &[
        row("discovery (the snippet's proxy_pass)", "GET", "/scim/v2/ResourceTypes", Body::None, Same(200)),
        row("create user", "POST", "/scim/v2/Users", Json(USER), Same(201)),
        row("read the user back", "GET", "/scim/v2/Users/{uid}", Body::None, Same(200)),
        row("bulk create (the exact Bulk location)", "POST", "/scim/v2/Bulk", Json(BULK), Same(200)),
        row("delete user", "DELETE", "/scim/v2/Users/{uid}", Body::None, Same(204)),
        row("outside every location", "GET", "/elsewhere", Body::None, SameScimBody(404)),
    ],
};

/// scim-edge.conf: quoting and escapes, `rewrite`, a regex location behind an optional client
/// certificate, a limit keyed on a map, header rules with escapes, a catch-all `return 404` with a
/// SCIM JSON text. Most of it is reported as not carried over; the rows say where that shows.
#[rustfmt::skip]
const EDGE: Fixture = Fixture {
    file: "scim-edge.conf",
    listen: &["127.0.0.1:18444"],
    // `ssl_verify_client optional`: the rows come without a client certificate.
    tls: Tls::Server,
    token: TOKEN,
    replicas: &[&["127.0.0.1:18301"]],
    upstream_prefix: Some("scim"),
    dead: None,
    import_exit: 1,
    rows: &[
        // Reported by the import: `rewrite ^/scim/v2/(.*)$ /api/scim/$1` is not carried over, so
        // nginx asks the replica for /api/scim/… (its 404) and scimitar for the path as sent.
        row("discovery through the rewrite", "GET", "/scim/v2/ServiceProviderConfig", Body::None, Differ { nginx: 404, scimitar: 200 }),
        row("create user through the rewrite", "POST", "/scim/v2/Users", Json(USER), Differ { nginx: 404, scimitar: 201 }),
        // Reported by the import: the regex location (and its `if` on the client certificate)
        // is not carried over; nginx refuses a client without one, scimitar's SCIM location
        // passes the request to the replica, which knows no such id.
        row("a resource by id without a client certificate", "GET", "/scim/v2/Users/0123abcd-0000", Body::None, Differ { nginx: 403, scimitar: 404 }),
        // The catch-all's own text is SCIM JSON: both answer 404 in SCIM (the test checks the
        // bodies; the import reports the text becomes scimitar's own error body).
        row("outside the SCIM location: the catch-all return 404", "GET", "/elsewhere", Body::None, Same(404)),
    ],
};

// Not run side by side: scim-modules.conf needs nginx built with Lua and njs (Debian's 1.22 has
// neither, and the import drops them anyway); scim-modern.conf needs nginx >= 1.25.1 (`http2 on;`)
// and TLS replicas on 18311/18312; scim-scripting.conf sends every request through auth_request
// to an auxiliary service (18309) the import drops with everything else in that location, and
// scim-secrets.conf's translation reads its credentials from environment variables: both are
// the translator's and the import's own tests (every row would be a reported difference).

const fn row(name: &'static str, method: &'static str, path: &'static str, body: Body, expect: Expect) -> Row {
    Row {
        name,
        token: None,
        method,
        path,
        body,
        expect,
    }
}

impl Row {
    const fn with_token(self, token: &'static str) -> Row {
        Row {
            token: Some(token),
            ..self
        }
    }
}

/// One proxy with its replicas (kept alive as long as the side is).
struct Side {
    addr: SocketAddr,
    /// Every listener, in the order of `Fixture::listen`.
    addrs: Vec<SocketAddr>,
    tls: Tls,
    token: &'static str,
    _replicas: Vec<ScimServer>,
    _nginx: Option<Nginx>,
    _scimitar: Option<Proxy>,
}

/// Copies tests/fixtures/nginx into `dir` with the fixture's fixed addresses replaced in every
/// `.conf` (an include may hold any of them): the listeners, the replicas, the dead port. Returns
/// the fixture's main file in the copy.
fn write_fixture(fx: &Fixture, dir: &Path, listen: &[SocketAddr], replicas: &[ScimServer], dead: u16) -> PathBuf {
    let substitute = |text: String| {
        let mut text = text;
        for (fixed, real) in fx.listen.iter().zip(listen) {
            text = text.replace(fixed, &real.to_string());
        }
        for (group, server) in fx.replicas.iter().zip(replicas) {
            for a in *group {
                text = text.replace(a, &server.addr.to_string());
            }
        }
        if let Some(d) = fx.dead {
            text = text.replace(d, &format!("127.0.0.1:{dead}"));
        }
        text
    };
    copy_tree(Path::new(FIXTURES), dir, &substitute);
    dir.join(fx.file)
}

fn copy_tree(from: &Path, to: &Path, substitute: &dyn Fn(String) -> String) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read fixtures") {
        let e = e.expect("dir entry");
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst, substitute);
        } else if src.extension().is_some_and(|x| x == "conf") {
            let text = std::fs::read_to_string(&src).expect("read fixture");
            std::fs::write(&dst, substitute(text)).expect("write fixture");
        } else {
            std::fs::copy(&src, &dst).expect("copy fixture file");
        }
    }
}

/// A free port on each of the fixture's listen addresses (IPv4 or IPv6 loopback).
fn listeners(fx: &Fixture) -> Vec<SocketAddr> {
    fx.listen
        .iter()
        .map(|l| {
            let mut a: SocketAddr = l.parse().expect("a fixture listens on ip:port");
            a.set_port(free_port());
            a
        })
        .collect()
}

fn replicas(fx: &Fixture) -> Vec<ScimServer> {
    let args: &[&str] = match fx.upstream_prefix {
        Some(tenant) => &["--tenant", tenant],
        None => &[],
    };
    fx.replicas.iter().map(|_| ScimServer::start_with(args)).collect()
}

fn nginx_side(fx: &Fixture, dead: u16) -> Side {
    let replicas = replicas(fx);
    let addrs = listeners(fx);
    let dir = scratch_dir("nginx-diff");
    let conf = write_fixture(fx, &dir, &addrs, &replicas, dead);
    let nginx = Nginx::start(&conf, &dir, addrs[0]);
    for a in &addrs[1..] {
        common::wait_for_port(*a, Duration::from_secs(5));
    }
    Side {
        addr: addrs[0],
        addrs,
        tls: fx.tls,
        token: fx.token,
        _replicas: replicas,
        _nginx: Some(nginx),
        _scimitar: None,
    }
}

/// `scimitar import nginx` of the fixture, then the pid file, upgrade socket and admin listener
/// a parallel test run needs (the only keys the test adds; nothing the import wrote is changed).
fn scimitar_side(fx: &Fixture, dead: u16) -> Side {
    let replicas = replicas(fx);
    let addrs = listeners(fx);
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = scratch_dir("import-diff");
    let conf = write_fixture(fx, &dir, &addrs, &replicas, dead);
    let out = dir.join("scimitar.yaml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scimitar"));
    cmd.args(["import", "nginx"]).arg(&conf).arg("-o").arg(&out);
    if fx.import_exit == 1 {
        cmd.arg("--allow-partial");
        let strict = Command::new(env!("CARGO_BIN_EXE_scimitar"))
            .args(["import", "nginx"])
            .arg(&conf)
            .output()
            .expect("run scimitar import");
        assert_eq!(strict.status.code(), Some(1), "{}: something is dropped", fx.file);
    }
    let run = cmd.output().expect("run scimitar import");
    let report = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{}: import report:\n{report}", fx.file);
    let yaml = std::fs::read_to_string(&out).expect("import wrote its output");
    let text = with_test_process_keys(&yaml, &dir, admin);
    let proxy = Proxy::start_text(addrs[0], admin, &text);
    Side {
        addr: addrs[0],
        addrs,
        tls: fx.tls,
        token: fx.token,
        _replicas: replicas,
        _nginx: None,
        _scimitar: Some(proxy),
    }
}

fn with_test_process_keys(yaml: &str, dir: &Path, admin: SocketAddr) -> String {
    let mut v: serde_yaml::Value = serde_yaml::from_str(yaml).expect("the import's output is YAML");
    let top = v.as_mapping_mut().expect("a mapping at the top");
    let mut server = top
        .get("server")
        .and_then(|s| s.as_mapping())
        .cloned()
        .unwrap_or_default();
    server.insert("pid_file".into(), dir.join("scimitar.pid").display().to_string().into());
    server.insert(
        "upgrade_sock".into(),
        dir.join("upgrade.sock").display().to_string().into(),
    );
    top.insert("server".into(), server.into());
    assert!(top.get("admin").is_none(), "nginx has no admin listener to translate");
    let mut a = serde_yaml::Mapping::new();
    a.insert("address".into(), admin.to_string().into());
    top.insert("admin".into(), a.into());
    serde_yaml::to_string(&v).expect("YAML")
}

/// One request with the IdP's credential; `{uid}` in a JSON body becomes `uid`.
fn send(side: &Side, method: &str, path: &str, body: Body, uid: &str) -> Response {
    send_as(side, side.token, method, path, body, uid)
}

fn send_as(side: &Side, token: &str, method: &str, path: &str, body: Body, uid: &str) -> Response {
    let headers = [("Authorization", token), ("Content-Type", "application/scim+json")];
    let body = match body {
        Body::None => None,
        Body::Json(j) => Some(j.replace("{uid}", uid)),
        Body::Sized(n) => Some(format!("{{\"pad\":\"{}\"}}", "x".repeat(n))),
    };
    let answer = match side.tls {
        Tls::Plain => try_http(side.addr, method, path, &headers, body.as_deref()),
        _ => tls_client(side.tls).request(side.addr, method, path, &headers, body.as_deref()),
    };
    // No answer at all is status 0 in a row's report, with the error as its text.
    answer.unwrap_or_else(|e| Response {
        version: String::new(),
        status: 0,
        headers: Vec::new(),
        body: format!("no answer: {e}").into_bytes(),
    })
}

fn cert(file: &str) -> PathBuf {
    Path::new(FIXTURES).join("certs").join(file)
}

/// The fixtures' certificate is self-signed for scim.example.com: it is the client's trust
/// anchor, and (for mTLS) the client's own certificate, which the fixtures' client CA is.
fn tls_client(tls: Tls) -> TlsClient {
    let c = TlsClient::new("scim.example.com", &cert("scim.crt"));
    match tls {
        Tls::Mutual => c.with_cert(&(cert("scim.crt"), cert("scim.key"))),
        _ => c,
    }
}

/// Runs a fixture's rows on one side, in order.
fn run_rows(side: &Side, rows: &[Row]) -> Vec<Response> {
    let (mut uid, mut gid) = (String::new(), String::new());
    let mut answers = Vec::new();
    for r in rows {
        let path = r.path.replace("{uid}", &uid).replace("{gid}", &gid);
        let a = send_as(side, r.token.unwrap_or(side.token), r.method, &path, r.body, &uid);
        if a.status == 201 && r.path.ends_with("/Users") {
            uid = a.json()["id"].as_str().unwrap_or_default().to_string();
        }
        if a.status == 201 && r.path.ends_with("/Groups") {
            gid = a.json()["id"].as_str().unwrap_or_default().to_string();
        }
        answers.push(a);
    }
    answers
}

/// Both sides of a fixture, its rows run on each, every disagreement listed.
fn compare(fx: &Fixture) -> Option<(Side, Side)> {
    if !nginx_available() {
        return None;
    }
    let dead = free_port();
    let nginx = nginx_side(fx, dead);
    let scimitar = scimitar_side(fx, dead);
    let got_nginx = run_rows(&nginx, fx.rows);
    let got_scimitar = run_rows(&scimitar, fx.rows);
    let mut wrong = Vec::new();
    for ((r, n), s) in fx.rows.iter().zip(&got_nginx).zip(&got_scimitar) {
        let (want_n, want_s) = match r.expect {
            Same(s) | SameScimBody(s) => (s, s),
            Differ { nginx, scimitar } => (nginx, scimitar),
        };
        if n.status != want_n || s.status != want_s {
            wrong.push(format!(
                "{}: {} {} → nginx {} (want {want_n}), scimitar {} (want {want_s}); scimitar said {}",
                r.name,
                r.method,
                r.path,
                n.status,
                s.status,
                s.text()
            ));
            continue;
        }
        if let SameScimBody(st) = r.expect {
            // The documented difference: scimitar's own answers are SCIM errors, never HTML.
            s.assert_scim_error(st);
            assert_ne!(
                n.header("content-type"),
                Some("application/scim+json"),
                "{}: nginx answers this itself, not in SCIM (the reason for this row's SCIM check)",
                r.name
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "{}: rows where the proxies disagree:\n{}",
        fx.file,
        wrong.join("\n")
    );
    Some((nginx, scimitar))
}

fn nginx_available() -> bool {
    if common::nginx::binary().is_some() {
        return true;
    }
    assert!(
        std::env::var_os("SCIMITAR_REQUIRE_NGINX").is_none(),
        "nginx is required (SCIMITAR_REQUIRE_NGINX is set) but not installed"
    );
    eprintln!("nginx is not installed: the differential test is skipped (make test installs it)");
    false
}

#[test]
fn scim_diff_answers_as_nginx_does() {
    let Some((nginx, scimitar)) = compare(&DIFF) else {
        return;
    };
    // The server-level `add_header … always`, inherited by every location, on proxied answers.
    for side in [&nginx, &scimitar] {
        let a = send(side, "GET", "/scim/v2/ServiceProviderConfig", Body::None, "");
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    }

    // The dead upstream again: nginx ignores max_fails in a pool of one server and tries it every
    // time; scimitar ejects it after 3 failures but, with every server of the pool ejected, tries
    // anyway (a pool-wide blip must not become a pool-wide outage) — so both keep answering 502,
    // scimitar's in SCIM. (Only an active `health_check`, which nginx OSS has no directive for,
    // would turn it into a 503 with Retry-After.)
    for i in 0..3 {
        let n = send(&nginx, "GET", "/gone/v2/Users", Body::None, "");
        let s = send(&scimitar, "GET", "/gone/v2/Users", Body::None, "");
        assert_eq!(n.status, 502, "nginx, dead upstream, try {}", i + 2);
        s.assert_scim_error(502);
    }

    burst_past_the_rate_limit(&nginx, &scimitar);
}

#[test]
fn scim_routes_answers_as_nginx_does() {
    let Some((_nginx, scimitar)) = compare(&ROUTES) else {
        return;
    };
    let m = send(&scimitar, "GET", "/maintenance/now", Body::None, "");
    assert_eq!(
        m.assert_scim_error(503),
        "down for maintenance",
        "the return's text is the detail"
    );
}

/// `limit_req zone=idp burst=4 nodelay` at 1r/s: the same requests pass on both; the rest get
/// nginx's 503 (an outage to an IdP) and scimitar's 429 with Retry-After (a throttle).
fn burst_past_the_rate_limit(nginx: &Side, scimitar: &Side) {
    let burst = |side: &Side| -> Vec<Response> {
        (0..10)
            .map(|_| send(side, "GET", "/limited/v2/Users", Body::None, ""))
            .collect()
    };
    let (n, s) = (burst(nginx), burst(scimitar));
    let passed = |a: &[Response]| a.iter().filter(|r| r.status == 200).count();
    assert_eq!(passed(&n), 5, "nginx: 1 + burst 4 pass: {:?}", statuses(&n));
    assert_eq!(
        passed(&s),
        passed(&n),
        "scimitar lets as many through: {:?}",
        statuses(&s)
    );
    for r in n.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 503, "nginx's limit_req_status default");
    }
    for r in s.iter().filter(|r| r.status != 200) {
        r.assert_scim_error(429);
        let after: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!((1..=5).contains(&after), "Retry-After in seconds, ~1/rate: {after}");
    }
}

fn statuses(a: &[Response]) -> Vec<u16> {
    a.iter().map(|r| r.status).collect()
}

#[test]
fn scim_basic_answers_as_nginx_does() {
    let Some((nginx, scimitar)) = compare(&BASIC) else {
        return;
    };
    // `listen … ssl http2`: a real HTTP/2 client gets h2 from both.
    for side in [&nginx, &scimitar] {
        let c = curl(
            &[
                "--http2",
                "--cacert",
                &cert("scim.crt").display().to_string(),
                "--resolve",
                &resolve("scim.example.com", side.addr),
                "-H",
                &format!("Authorization: {TOKEN}"),
            ],
            &format!("https://scim.example.com:{}/scim/v2/ResourceTypes", side.addr.port()),
        );
        assert_eq!((c.http_version.as_str(), c.status), ("2", 200), "{}", c.body);
    }
    token_burst(&nginx, &scimitar, 10.0, 21);
}

#[test]
fn scim_basic_refuses_big_bodies_as_nginx_does() {
    let Some((nginx, scimitar)) = compare(&BASIC_BODIES) else {
        return;
    };
    // The 1.5 MiB Bulk body passed both proxies' limits: the 413 is the replica's.
    for side in [&nginx, &scimitar] {
        let a = send(side, "POST", "/scim/v2/Bulk", Sized(1536 * 1024), "");
        assert!(
            a.assert_scim_error(413).contains("maxPayloadSize"),
            "the replica's limit"
        );
    }
    // Over HTTP/2 (curl sends no Expect: 100-continue there) both answer the 413.
    let big = scratch_dir("big-body").join("body.json");
    std::fs::write(&big, format!("{{\"pad\":\"{}\"}}", "x".repeat(1536 * 1024))).expect("write body");
    for side in [&nginx, &scimitar] {
        let c = curl(
            &[
                "--http2",
                "--cacert",
                &cert("scim.crt").display().to_string(),
                "--resolve",
                &resolve("scim.example.com", side.addr),
                "-H",
                &format!("Authorization: {TOKEN}"),
                "-H",
                "Content-Type: application/scim+json",
                "--data-binary",
                &format!("@{}", big.display()),
            ],
            &format!("https://scim.example.com:{}/scim/v2/Users", side.addr.port()),
        );
        assert_eq!((c.http_version.as_str(), c.status), ("2", 413), "{}", c.body);
    }
}

#[test]
fn scim_headers_answers_as_nginx_does() {
    let Some((nginx, scimitar)) = compare(&HEADERS) else {
        return;
    };
    // The location's own add_header replaces the http level's (nginx's inheritance): the SCIM
    // location answers with its Server and without HSTS, the Bulk location (no add_header of its
    // own) with HSTS.
    for side in [&nginx, &scimitar] {
        let a = send(side, "GET", "/scim/v2/ServiceProviderConfig", Body::None, "");
        assert_eq!(a.status, 200);
        let servers: Vec<&str> = a
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("server"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(servers.contains(&"scimitar"), "add_header Server: {servers:?}");
        assert_eq!(a.header("strict-transport-security"), None, "{:?}", a.headers);
        let b = send(side, "POST", "/scim/v2/Bulk", Json(BULK), "");
        assert_eq!(b.status, 200);
        assert_eq!(b.header("strict-transport-security"), Some("max-age=63072000"));
        // The token check's 401 on Bulk carries it too (nginx: the server-level `if` answers
        // with the server's headers; scimitar: the Bulk route's `auth` with the route's).
        let r = send_as(side, "Bearer stolen", "POST", "/scim/v2/Bulk", Json(BULK), "");
        assert_eq!(r.status, 401);
        assert_eq!(r.header("strict-transport-security"), Some("max-age=63072000"));
    }

    // ssl_verify_client on: without a client certificate neither lets a request through. nginx
    // finishes the handshake and answers 400 itself; scimitar refuses the handshake with TLS
    // 1.3's certificate_required alert.
    let bare = |side: &Side| {
        tls_client(Tls::Server).request(
            side.addr,
            "GET",
            "/scim/v2/ServiceProviderConfig",
            &[("Authorization", side.token)],
            None,
        )
    };
    let n = bare(&nginx).expect("nginx answers after the handshake");
    assert_eq!(n.status, 400, "{}", n.text());
    assert!(n.text().contains("No required SSL certificate"), "{}", n.text());
    match bare(&scimitar) {
        Ok(r) => panic!(
            "scimitar answered a client without a certificate: {} {}",
            r.status,
            r.text()
        ),
        Err(e) => assert!(e.to_string().contains("certificate required"), "{e}"),
    }

    tenant_burst_on_bulk(&nginx, &scimitar);

    // The redirect-only server: nginx redirects to https; the import reports it does not listen
    // there (no location of that server was translated, and scimitar's routes would answer).
    let r = http(nginx.addrs[1], "GET", "/scim/v2/Users", &[], None);
    assert_eq!(r.status, 301);
    assert!(r.header("location").is_some_and(|l| l.starts_with("https://")));
    assert!(
        try_http(scimitar.addrs[1], "GET", "/scim/v2/Users", &[], None).is_err(),
        "scimitar does not listen on the redirect server's port"
    );
}

#[test]
fn scim_pool_answers_as_nginx_does() {
    let Some((nginx, scimitar)) = compare(&POOL) else {
        return;
    };
    // The second listen line, on IPv6 loopback, serves the same locations on both.
    for side in [&nginx, &scimitar] {
        let r = http(
            side.addrs[1],
            "GET",
            "/scim/v2/Users",
            &[("Authorization", TOKEN)],
            None,
        );
        assert_eq!(r.status, 200, "[::1] listener: {}", r.text());
    }
}

#[test]
fn scim_includes_answers_as_nginx_does() {
    let Some((nginx, scimitar)) = compare(&INCLUDES) else {
        return;
    };
    token_burst(&nginx, &scimitar, 10.0, 21);
}

#[test]
fn scim_edge_answers_as_nginx_does() {
    let Some((nginx, scimitar)) = compare(&EDGE) else {
        return;
    };
    for side in [&nginx, &scimitar] {
        let a = send(side, "GET", "/elsewhere", Body::None, "");
        assert_eq!(a.header("content-type"), Some("application/scim+json"), "default_type");
        assert_eq!(a.json()["status"], "404");
        // The server's `add_header … always` lines, on the catch-all's 404 too; the quoted CSP
        // value keeps its `;` and quotes.
        assert_eq!(a.header("x-frame-options"), Some("DENY"));
        assert_eq!(
            a.header("content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'")
        );
    }
    // X-Escapes has no `always`: nginx leaves it off a 404, scimitar adds it to every answer (the
    // import reports it), with the escapes of nginx's quoted string read (`\t` is a tab).
    let n = send(&nginx, "GET", "/elsewhere", Body::None, "");
    assert_eq!(n.header("x-escapes"), None);
    let s = send(&scimitar, "GET", "/scim/v2/ServiceProviderConfig", Body::None, "");
    assert_eq!(s.header("x-escapes"), Some("quote \" backslash \\ tab\tend"));
}

/// The Bulk location's `limit_req zone=per_tenant burst=5` (20r/s, keyed on X-Tenant-Id, status
/// 429): twelve requests of one tenant at once. nginx passes 1 + 5 (the 5 paced, as without
/// `nodelay`), scimitar 6 at once (the import reports the pacing as a difference); the rest get
/// 429 from both. What the rate refills while the requests arrive may pass too.
fn tenant_burst_on_bulk(nginx: &Side, scimitar: &Side) {
    const TRIES: usize = 12;
    for side in [nginx, scimitar] {
        let (addr, token) = (side.addr, side.token);
        let start = Instant::now();
        let a = common::concurrently(TRIES, move |_| {
            tls_client(Tls::Mutual)
                .request(
                    addr,
                    "POST",
                    "/scim/v2/Bulk",
                    &[
                        ("Authorization", token),
                        ("Content-Type", "application/scim+json"),
                        ("X-Tenant-Id", "tenant-burst"),
                    ],
                    Some(BULK),
                )
                .expect("an answer")
        });
        // nginx's paced requests finish late: count the window the requests arrived in only.
        let secs = start.elapsed().as_secs_f64().min(0.5);
        let passed = a.iter().filter(|r| r.status == 200).count();
        let most = 6 + (20.0 * secs).ceil() as usize;
        assert!(
            (6..=most).contains(&passed) && passed < TRIES,
            "6..={most} of {TRIES} pass: {:?}",
            statuses(&a)
        );
        assert!(
            a.iter().all(|r| r.status == 200 || r.status == 429),
            "{:?}",
            statuses(&a)
        );
    }
}

/// `limit_req zone=idp burst=20 nodelay` keyed on the Authorization header at `rate`/s: a fresh
/// token's burst passes on both (`admitted` requests at once, plus what the rate refills while
/// they are sent); past it nginx answers 503 (limit_req_status's default) and scimitar 429 with
/// Retry-After, as the import reports.
fn token_burst(nginx: &Side, scimitar: &Side, rate: f64, admitted: usize) {
    const TRIES: usize = 40;
    let burst = |side: &Side| -> (Vec<Response>, f64) {
        let mut conn = tls_client(side.tls).connect(side.addr).expect("connect");
        let start = Instant::now();
        let answers = (0..TRIES)
            .map(|_| {
                conn.request(
                    "GET",
                    "/scim/v2/ResourceTypes",
                    &[("Authorization", "Bearer burst")],
                    None,
                )
                .expect("request on a kept-alive connection")
            })
            .collect();
        (answers, start.elapsed().as_secs_f64())
    };
    for (side, refused) in [(nginx, 503), (scimitar, 429)] {
        let (a, secs) = burst(side);
        let passed = a.iter().filter(|r| r.status == 200).count();
        let most = admitted + (rate * secs).ceil() as usize + 1;
        assert!(
            (admitted..=most).contains(&passed) && passed < TRIES,
            "{admitted}..={most} of {TRIES} pass in {secs:.2}s: {:?}",
            statuses(&a)
        );
        for r in a.iter().filter(|r| r.status != 200) {
            assert_eq!(r.status, refused, "{:?}", statuses(&a));
        }
        if refused == 429 {
            a.iter().filter(|r| r.status != 200).for_each(|r| {
                r.assert_scim_error(429);
                assert!(r.header("retry-after").is_some());
            });
        }
    }
}
