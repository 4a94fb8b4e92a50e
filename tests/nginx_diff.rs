//! The drop-in promise, tested side by side: nginx runs an nginx config, scimitar runs what
//! `scimitar import nginx` made of the same file, each in front of its own two fresh
//! scim2-server replicas, and the same request matrix goes through both. Every row says whether
//! the two must give the same status or differ on purpose (and how); the proxy's own answers
//! from scimitar must be SCIM errors.
//!
//! Needs nginx (`make test` installs Debian's); without it the test says so and passes only
//! when `SCIMITAR_REQUIRE_NGINX` is unset.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use common::nginx::Nginx;
use common::{free_port, http, scratch_dir, Proxy, Response, ScimServer};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nginx/diff/scim-diff.conf");
const TOKEN: &str = "Bearer diff-idp-token";

/// What a row expects of the two proxies.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Both answer this status (the upstream's answer, or the same refusal).
    Same(u16),
    /// Both answer this status, and scimitar's is its own SCIM error body (nginx's is HTML).
    SameScimBody(u16),
}

struct Row {
    name: &'static str,
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

const USER: &str = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"diff.alice"}"#;
const USER_PUT: &str =
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"diff.alice","displayName":"Alice"}"#;
const DEACTIVATE: &str = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}"#;
const GROUP: &str = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"diff-group"}"#;
const ADD_MEMBER: &str = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"{uid}"}]}]}"#;
const SEARCH: &str = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"count":5}"#;
const BULK: &str = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[{"method":"POST","path":"/Users","bulkId":"b1","data":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"diff.bulk"}}]}"#;

/// Every SCIM operation on the SCIM location, then the edges: paths outside every location, the
/// body limits (server-wide and the Bulk location's own), a `return`, a dead upstream.
const MATRIX: &[Row] = &[
    row(
        "discovery: ServiceProviderConfig",
        "GET",
        "/scim/v2/ServiceProviderConfig",
        Body::None,
        Expect::Same(200),
    ),
    row(
        "discovery: Schemas",
        "GET",
        "/scim/v2/Schemas",
        Body::None,
        Expect::Same(200),
    ),
    row(
        "discovery: ResourceTypes",
        "GET",
        "/scim/v2/ResourceTypes",
        Body::None,
        Expect::Same(200),
    ),
    row(
        "create user",
        "POST",
        "/scim/v2/Users",
        Body::Json(USER),
        Expect::Same(201),
    ),
    row(
        "read the user back",
        "GET",
        "/scim/v2/Users/{uid}",
        Body::None,
        Expect::Same(200),
    ),
    row(
        "filter by userName",
        "GET",
        "/scim/v2/Users?filter=userName%20eq%20%22diff.alice%22",
        Body::None,
        Expect::Same(200),
    ),
    row(
        "replace user",
        "PUT",
        "/scim/v2/Users/{uid}",
        Body::Json(USER_PUT),
        Expect::Same(200),
    ),
    row(
        "deactivate user (PATCH)",
        "PATCH",
        "/scim/v2/Users/{uid}",
        Body::Json(DEACTIVATE),
        Expect::Same(204),
    ),
    row(
        "create the same userName again",
        "POST",
        "/scim/v2/Users",
        Body::Json(USER),
        Expect::Same(409),
    ),
    row(
        "search users",
        "POST",
        "/scim/v2/Users/.search",
        Body::Json(SEARCH),
        Expect::Same(200),
    ),
    row(
        "search everything",
        "POST",
        "/scim/v2/.search",
        Body::Json(SEARCH),
        Expect::Same(200),
    ),
    row(
        "create group",
        "POST",
        "/scim/v2/Groups",
        Body::Json(GROUP),
        Expect::Same(201),
    ),
    row(
        "add member",
        "PATCH",
        "/scim/v2/Groups/{gid}",
        Body::Json(ADD_MEMBER),
        Expect::Same(204),
    ),
    row(
        "read group",
        "GET",
        "/scim/v2/Groups/{gid}",
        Body::None,
        Expect::Same(200),
    ),
    row(
        "bulk create (under the Bulk limit)",
        "POST",
        "/scim/v2/Bulk",
        Body::Json(BULK),
        Expect::Same(200),
    ),
    row(
        "delete group",
        "DELETE",
        "/scim/v2/Groups/{gid}",
        Body::None,
        Expect::Same(204),
    ),
    row(
        "delete user",
        "DELETE",
        "/scim/v2/Users/{uid}",
        Body::None,
        Expect::Same(204),
    ),
    row(
        "read the deleted user (upstream's 404)",
        "GET",
        "/scim/v2/Users/{uid}",
        Body::None,
        Expect::Same(404),
    ),
    row(
        "a path under the SCIM location that is no endpoint",
        "GET",
        "/scim/v2/Widgets",
        Body::None,
        Expect::Same(404),
    ),
    row(
        "outside every location",
        "GET",
        "/elsewhere",
        Body::None,
        Expect::SameScimBody(404),
    ),
    row(
        "another SCIM version's path",
        "GET",
        "/scim/v3/Users",
        Body::None,
        Expect::SameScimBody(404),
    ),
    row(
        "body over client_max_body_size",
        "POST",
        "/scim/v2/Users",
        Body::Sized(20 * 1024),
        Expect::SameScimBody(413),
    ),
    row(
        "Bulk body over its location's limit",
        "POST",
        "/scim/v2/Bulk",
        Body::Sized(3 * 1024),
        Expect::SameScimBody(413),
    ),
    row(
        "a location that returns 410",
        "GET",
        "/retired/v2/Users",
        Body::None,
        Expect::SameScimBody(410),
    ),
    row(
        "an upstream nobody listens on",
        "GET",
        "/gone/v2/Users",
        Body::None,
        Expect::SameScimBody(502),
    ),
];

const fn row(name: &'static str, method: &'static str, path: &'static str, body: Body, expect: Expect) -> Row {
    Row {
        name,
        method,
        path,
        body,
        expect,
    }
}

/// One proxy with its replicas (kept alive as long as the side is).
struct Side {
    addr: SocketAddr,
    _replicas: [ScimServer; 2],
    _nginx: Option<Nginx>,
    _scimitar: Option<Proxy>,
}

/// The fixture with its fixed addresses replaced: the listener, the two replicas, the dead port.
fn fixture_for(listen: SocketAddr, replicas: &[ScimServer; 2], dead: u16) -> String {
    let text = std::fs::read_to_string(FIXTURE).expect("fixture");
    text.replace("127.0.0.1:18300", &listen.to_string())
        .replace("127.0.0.1:18301", &replicas[0].addr.to_string())
        .replace("127.0.0.1:18302", &replicas[1].addr.to_string())
        .replace("127.0.0.1:18309", &format!("127.0.0.1:{dead}"))
}

fn nginx_side(dead: u16) -> Side {
    let replicas = [ScimServer::start(), ScimServer::start()];
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = scratch_dir("nginx-diff");
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, fixture_for(addr, &replicas, dead)).expect("write nginx.conf");
    let nginx = Nginx::start(&conf, &dir, addr);
    Side {
        addr,
        _replicas: replicas,
        _nginx: Some(nginx),
        _scimitar: None,
    }
}

/// `scimitar import nginx` of the fixture, then the pid file, upgrade socket and admin listener
/// a parallel test run needs (the only keys the test adds; nothing the import wrote is changed).
fn scimitar_side(dead: u16) -> Side {
    let replicas = [ScimServer::start(), ScimServer::start()];
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = scratch_dir("import-diff");
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, fixture_for(addr, &replicas, dead)).expect("write nginx.conf");
    let out = dir.join("scimitar.yaml");
    let run = Command::new(env!("CARGO_BIN_EXE_scimitar"))
        .args(["import", "nginx"])
        .arg(&conf)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run scimitar import");
    let report = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        run.status.code(),
        Some(0),
        "the fixture translates without dropping anything that changes request handling:\n{report}"
    );
    let yaml = std::fs::read_to_string(&out).expect("import wrote its output");
    let text = with_test_process_keys(&yaml, &dir, admin);
    let proxy = Proxy::start_text(addr, admin, &text);
    Side {
        addr,
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
    let headers = [("Authorization", TOKEN), ("Content-Type", "application/scim+json")];
    let body = match body {
        Body::None => None,
        Body::Json(j) => Some(j.replace("{uid}", uid)),
        Body::Sized(n) => Some(format!("{{\"pad\":\"{}\"}}", "x".repeat(n))),
    };
    http(side.addr, method, path, &headers, body.as_deref())
}

/// Runs the matrix on one side: the statuses, and the answers (for their bodies).
fn run_matrix(side: &Side) -> Vec<Response> {
    let (mut uid, mut gid) = (String::new(), String::new());
    let mut answers = Vec::new();
    for r in MATRIX {
        let path = r.path.replace("{uid}", &uid).replace("{gid}", &gid);
        let a = send(side, r.method, &path, r.body, &uid);
        if a.status == 201 && r.path == "/scim/v2/Users" {
            uid = a.json()["id"].as_str().unwrap_or_default().to_string();
        }
        if a.status == 201 && r.path == "/scim/v2/Groups" {
            gid = a.json()["id"].as_str().unwrap_or_default().to_string();
        }
        answers.push(a);
    }
    answers
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
fn the_translation_answers_the_request_matrix_as_nginx_does() {
    if !nginx_available() {
        return;
    }
    let dead = free_port();
    let nginx = nginx_side(dead);
    let scimitar = scimitar_side(dead);
    let got_nginx = run_matrix(&nginx);
    let got_scimitar = run_matrix(&scimitar);

    let mut wrong = Vec::new();
    for ((r, n), s) in MATRIX.iter().zip(&got_nginx).zip(&got_scimitar) {
        let want = match r.expect {
            Expect::Same(s) | Expect::SameScimBody(s) => s,
        };
        if n.status != want || s.status != want {
            wrong.push(format!(
                "{}: {} {} → nginx {}, scimitar {} (want {want}); scimitar said {}",
                r.name,
                r.method,
                r.path,
                n.status,
                s.status,
                s.text()
            ));
            continue;
        }
        if want < 300 {
            // The server-level `add_header … always`, inherited by every location.
            for (who, a) in [("nginx", n), ("scimitar", s)] {
                assert_eq!(a.header("x-content-type-options"), Some("nosniff"), "{}: {who}", r.name);
            }
        }
        if let Expect::SameScimBody(st) = r.expect {
            // The documented difference: scimitar's own answers are SCIM errors, never HTML.
            s.assert_scim_error(st);
            assert!(
                n.header("content-type").is_some_and(|c| c.starts_with("text/html")),
                "{}: nginx answers its own {st} in HTML (the reason for this row's SCIM check)",
                r.name
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "rows where the proxies disagree:\n{}",
        wrong.join("\n")
    );

    // A dead upstream a second time: nginx ignores max_fails for a pool of one server and tries
    // it again (502); scimitar ejected it and says when to come back (503 + Retry-After), which
    // an IdP honours instead of counting a failure.
    let n = send(&nginx, "GET", "/gone/v2/Users", Body::None, "");
    let s = send(&scimitar, "GET", "/gone/v2/Users", Body::None, "");
    assert_eq!(n.status, 502, "nginx, dead upstream again");
    s.assert_scim_error(503);
    assert!(s.header("retry-after").is_some(), "scimitar's 503 says when to retry");

    burst_past_the_rate_limit(&nginx, &scimitar);
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
