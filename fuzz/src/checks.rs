//! The invariants that both the libFuzzer targets (`fuzz/fuzz_targets/`) and the property tests
//! (`tests/properties.rs`) check. One copy, included by path from both, so an input the fuzzer
//! finds replays under plain `cargo test` from its corpus file (`corpus_replays` there) without
//! the test suite ever building the fuzz crate or libFuzzer.
//!
//! Each `check_*` panics, with the input in the message, when scimitar breaks an invariant.

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::OnceLock;

use pingora::protocols::http::ServerSession;
use scimitar::config::{self, reader::expand_env, Problem};
use scimitar::inbound::head::{inspect, Limits, Verdict};
use scimitar::metrics::deprovision::deprovisions;
use scimitar::routing::{BasePath, NoRoute, Route, Router};
use scimitar::scim::path::{decode, escapes_root, needs_normalizing, normalize, path_only, seg_eq, segments, Span};
use scimitar::scim::{EndpointClass, Method, Operation, ResourceType};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

/// The base paths the checks route under: a plain one and a tenant template, unfiltered, so any
/// path below either must classify (never `Filtered`).
pub const PLAIN_BASE: &str = "/scim/v2";
pub const TENANT_BASE: &str = "/{tenant}/api/scim";

pub fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let route = |name: &str, base: &str| match BasePath::parse(base) {
            Ok(b) => Route::new(name, b, 0),
            Err(e) => panic!("base path {base}: {e}"),
        };
        Router::new(vec![route("plain", PLAIN_BASE), route("tenant", TENANT_BASE)])
    })
}

/// Reference: the bytes of a segment with every valid `%XX` decoded (a malformed escape stays
/// literal, as the proxy documents), written independently of `scim::path`.
pub fn pct_decode(seg: &str) -> Vec<u8> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let pair = b.get(i + 1..i + 3).filter(|p| p.iter().all(u8::is_ascii_hexdigit));
        if let (b'%', Some(pair)) = (b[i], pair) {
            let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(digit(pair[0]) * 16 + digit(pair[1]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Reference: a segment the upstream would take for `.` or `..` once it percent-decodes.
pub fn is_dot_segment(seg: &str) -> bool {
    matches!(pct_decode(seg).as_slice(), b"." | b"..")
}

/// Reference: the non-empty, non-dot segments of `p` resolved by a stack, RFC 3986 §5.2.4 with
/// `..` clamped at the root.
pub fn model_segments(p: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for s in p.split('/').filter(|s| !s.is_empty()) {
        match pct_decode(s).as_slice() {
            b"." => {}
            b".." => {
                out.pop();
            }
            _ => out.push(s),
        }
    }
    out
}

/// Reference: `..` segments climb above the root somewhere along `p`.
pub fn model_escapes_root(p: &str) -> bool {
    let mut depth = 0usize;
    for s in p.split('/').filter(|s| !s.is_empty()) {
        match pct_decode(s).as_slice() {
            b"." => {}
            b".." if depth == 0 => return true,
            b".." => depth -= 1,
            _ => depth += 1,
        }
    }
    false
}

/// Normalisation and routing of one request target, as `request_filter` does it.
pub fn check_path_and_route(method: &str, target: &str) {
    let raw = path_only(target);
    let needs = needs_normalizing(raw);
    let norm = normalize(raw);
    let ctx = format!("{method} {target:?} → {norm:?}");
    assert!(norm.starts_with('/'), "{ctx}: not absolute");
    assert!(!norm.contains("//"), "{ctx}: empty segment left");
    let kept: Vec<&str> = segments(&norm).map(|s| s.of(&norm)).collect();
    assert_eq!(kept, model_segments(raw), "{ctx}: segments differ from the reference");
    assert_eq!(escapes_root(raw), model_escapes_root(raw), "{ctx}: escapes_root");
    assert_eq!(normalize(&norm), norm, "{ctx}: not idempotent");
    assert!(!needs_normalizing(&norm), "{ctx}: output still needs normalizing");
    // Normalising is needed exactly when it changes something: the proxy skips the rewrite
    // whenever `needs_normalizing` says no, so a false "no" would forward a dot segment.
    assert_eq!(needs, norm != raw, "{ctx}: needs_normalizing disagrees with normalize");

    let path = if needs { norm.as_str() } else { raw };
    for s in segments(path) {
        let seg = span_text(path, s, &ctx);
        assert!(!seg.is_empty() && !seg.contains('/'), "{ctx}: segment {seg:?}");
        let _ = decode(seg);
    }

    let m = Method::parse(method);
    let found = router().find(m, path);
    let rm = match found {
        Ok(rm) => rm,
        Err(NoRoute::NotScim) => return,
        Err(NoRoute::Filtered) => panic!("{ctx}: filtered by a route without filters"),
    };
    let v = rm.view;
    if let Some(t) = rm.tenant {
        span_text(path, t, &ctx);
    }
    if let Some(id) = v.id {
        let id = span_text(path, id, &ctx);
        assert!(!id.is_empty(), "{ctx}: empty id");
    }
    if let ResourceType::Custom(s) = v.resource {
        span_text(path, s, &ctx);
    }
    // The replay rules are the proxy's promise not to duplicate a user: a POST that is not a
    // search and every PATCH must never be replay-safe.
    if v.op == Operation::Search {
        assert_eq!(m, Method::Post, "{ctx}: search without POST");
        assert_eq!(v.class, EndpointClass::Search, "{ctx}");
    }
    if (m == Method::Post && v.op != Operation::Search) || m == Method::Patch {
        assert!(!v.op.replay_safe(), "{ctx}: {m:?} classified replay-safe as {:?}", v.op);
    }
    if matches!(v.class, EndpointClass::UsersRead | EndpointClass::GroupsRead) {
        assert!(matches!(m, Method::Get | Method::Head), "{ctx}: read class for {m:?}");
    }
}

fn span_text<'a>(path: &'a str, s: Span, ctx: &str) -> &'a str {
    match path.get(s.start as usize..s.end as usize) {
        Some(t) => t,
        None => panic!("{ctx}: span {s:?} is not a slice of the path"),
    }
}

/// A fuzz input for the path target: `METHOD SP target`, or a bare target sent as GET.
pub fn check_path_input(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match text.split_once(' ') {
        Some((m, t)) => check_path_and_route(m, t),
        None => check_path_and_route("GET", &text),
    }
}

/// The environment `${VAR}` references see in the config checks.
pub fn env(name: &str) -> Option<String> {
    match name {
        "PORT" => Some("8080".into()),
        "HOST" => Some("127.0.0.1".into()),
        _ => None,
    }
}

/// The config's text after `${VAR}` expansion, as YAML, when it parses.
pub fn parsed(text: &str) -> Option<Yaml> {
    serde_yaml::from_str(&expand_env(text, env).ok()?).ok()
}

/// Loading a config resolves upstream host names and reads certificate files. An input that
/// would send a DNS query (a `host:port` that is neither an IP nor `localhost`) or read a
/// device or pseudo-file (`/dev/zero` never ends) is not loaded: the checks stay on this machine
/// and bounded in time.
pub fn safe_to_load(text: &str) -> bool {
    let Some(doc) = parsed(text) else {
        return true;
    };
    let upstreams = match &doc {
        Yaml::Mapping(m) => m.get("upstreams"),
        _ => None,
    };
    let resolves = |s: &str| {
        s.contains(':') && s.parse::<SocketAddr>().is_err() && s.rsplit_once(':').is_none_or(|(h, _)| h != "localhost")
    };
    if upstreams.is_some_and(|u| any_string(u, &mut |s| resolves(s))) {
        return false;
    }
    !any_string(&doc, &mut |s| {
        ["/dev", "/proc", "/sys"].iter().any(|p| s.contains(p))
            || (s.len() < 4096 && std::fs::metadata(s.trim()).is_ok_and(|m| !m.is_file() && !m.is_dir()))
    })
}

fn any_string(v: &Yaml, f: &mut impl FnMut(&str) -> bool) -> bool {
    match v {
        Yaml::String(s) => f(s),
        Yaml::Sequence(items) => items.iter().any(|x| any_string(x, f)),
        Yaml::Mapping(m) => m.iter().any(|(k, x)| any_string(k, f) || any_string(x, f)),
        Yaml::Tagged(t) => any_string(&t.value, f),
        _ => false,
    }
}

/// True when the problem's place is a line (syntax, `${VAR}`) or a key path whose every step
/// but the last exists in `doc` (the last may be a key the file left out: "missing; …").
/// Keys may hold dots themselves (`max_body.users.write`), so each step takes the longest
/// run of dotted parts that names a key.
pub fn names_a_place(problem: &Problem, doc: Option<&Yaml>) -> bool {
    let at = problem.at.as_str();
    if at.starts_with("line ") {
        return true;
    }
    !at.is_empty() && doc.is_some_and(|d| resolves(d, at))
}

fn resolves(cur: &Yaml, rest: &str) -> bool {
    if rest.is_empty() {
        return true;
    }
    let ends = rest.match_indices('.').map(|(i, _)| i).chain([rest.len()]);
    let mut ends: Vec<usize> = ends.collect();
    ends.reverse();
    for end in ends {
        let step = &rest[..end];
        let (key, indices) = match step.find('[') {
            Some(b) if step.ends_with(']') => (&step[..b], &step[b..]),
            _ => (step, ""),
        };
        let Some(mut next) = cur.as_mapping().and_then(|m| m.get(key)) else {
            continue;
        };
        let mut ok = true;
        for idx in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            match idx.parse::<usize>().ok().and_then(|n| next.as_sequence()?.get(n)) {
                Some(x) => next = x,
                None => ok = false,
            }
        }
        if ok && resolves(next, rest.get(end + 1..).unwrap_or("")) {
            return true;
        }
    }
    // The last step may name a key the file does not have.
    !rest.contains(['.', '['])
}

/// The root is a mapping with non-empty string keys, the only shape in which every problem has
/// a key to name: the place of an empty key (`"": x`, or `? |` as the fuzzer wrote it) is
/// written as the empty path, like the document's own.
pub fn keyed_root(doc: Option<&Yaml>) -> bool {
    match doc {
        Some(Yaml::Mapping(m)) => m.keys().all(|k| k.as_str().is_some_and(|k| !k.is_empty())),
        Some(Yaml::Null) => true,
        _ => false,
    }
}

/// Loads config text: never a panic; a success is internally consistent; a failure lists
/// problems that each name a key (or a line), unless the document has no keys at all.
pub fn check_config(text: &str) {
    if !safe_to_load(text) {
        return;
    }
    match config::from_str_with_env(text, env) {
        Ok(cfg) => {
            assert!(!cfg.listeners.is_empty(), "{text:?}: loaded with no listener");
            assert!(!cfg.routes.is_empty(), "{text:?}: loaded with no route");
            for r in &cfg.routes {
                // A route either proxies to a pool or answers everything itself (`return`).
                match r.upstream {
                    Some(u) => assert!(u < cfg.upstreams.len(), "{text:?}: route {} → no pool", r.name),
                    None => assert!(
                        r.answer.is_some(),
                        "{text:?}: route {} has no pool and no answer",
                        r.name
                    ),
                }
                assert!(r.limits.iter().all(|&i| i < cfg.rate_limits.policies.len()), "{text:?}");
            }
            for l in &cfg.listeners {
                if let Some(t) = &l.tcp {
                    assert!(
                        t.upstream < cfg.upstreams.len(),
                        "{text:?}: listener {} → no pool",
                        l.name
                    );
                }
            }
        }
        Err(problems) => {
            assert!(!problems.0.is_empty(), "{text:?}: refused without a problem");
            let doc = parsed(text);
            for p in &problems.0 {
                assert!(!p.msg.is_empty(), "{text:?}: problem at {:?} says nothing", p.at);
                // Keys of any text (`.`, `a.b`) make the dotted place ambiguous to resolve, but
                // it must still be there.
                if keyed_root(doc.as_ref()) {
                    assert!(!p.at.is_empty(), "{text:?}: `{p}` names no key");
                }
            }
        }
    }
}

pub fn check_config_input(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_config(text);
    }
}

/// Reference for deprovisioning, from the module's documented rules, on serde_json alone.
pub fn deprovisions_reference(patch: bool, body: &[u8]) -> bool {
    fn get<'a>(o: &'a serde_json::Map<String, Json>, name: &str) -> Option<&'a Json> {
        o.get(name)
            .or_else(|| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
    }
    fn falsy(v: Option<&Json>) -> bool {
        match v {
            Some(Json::Bool(b)) => !b,
            Some(Json::String(s)) => s.eq_ignore_ascii_case("false"),
            _ => false,
        }
    }
    let Ok(Json::Object(doc)) = serde_json::from_slice::<Json>(body) else {
        return false;
    };
    if !patch {
        return falsy(get(&doc, "active"));
    }
    let Some(Json::Array(ops)) = get(&doc, "Operations") else {
        return false;
    };
    ops.iter().filter_map(Json::as_object).any(|op| {
        let kind = get(op, "op").and_then(Json::as_str).unwrap_or("").to_ascii_lowercase();
        if kind != "replace" && kind != "add" {
            return false;
        }
        match get(op, "path") {
            None => matches!(get(op, "value"), Some(Json::Object(v)) if falsy(get(v, "active"))),
            Some(Json::String(p)) => {
                let p = p.trim().to_ascii_lowercase();
                let bare = p
                    .strip_prefix("urn:ietf:params:scim:schemas:core:2.0:user:")
                    .unwrap_or(&p);
                bare == "active" && falsy(get(op, "value"))
            }
            Some(_) => false,
        }
    })
}

/// Body inspection agrees with the reference for a PUT and a PATCH of these bytes.
pub fn check_body(body: &[u8]) {
    for patch in [false, true] {
        assert_eq!(
            deprovisions(patch, body),
            deprovisions_reference(patch, body),
            "patch={patch} body={:?}",
            String::from_utf8_lossy(body)
        );
    }
}

/// The edge's limits at their defaults (`client.max_request_line`, `client.max_request_head`),
/// on a plaintext listener.
pub const EDGE: Limits = Limits {
    max_line: 8 << 10,
    max_head: 64 << 10,
    plaintext: true,
};

/// Bytes on a plaintext HTTP/1 connection as scimitar receives them: the edge
/// (`inbound::head::inspect`) judges the head, Pingora's own parser reads what the edge passes
/// (head, then body), and the parsed target is classified both ways scimitar might see it,
/// Pingora's `uri.path()` and the raw target it forwards.
///
/// The edge promises to refuse everything Pingora would (so every refusal is a SCIM answer):
/// a head it passes must parse. And judging the bytes in two reads must pass the same heads as
/// judging them in one (its `fresh` shortcut skips the parse when no line ended).
pub fn check_http1(bytes: &[u8]) {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    }
    let ctx = || String::from_utf8_lossy(bytes).into_owned();
    let verdict = inspect(bytes, 0, &EDGE);
    let split = bytes.len() / 2;
    if inspect(&bytes[..split], 0, &EDGE) == Verdict::Partial {
        let two_reads = inspect(bytes, split, &EDGE);
        assert_eq!(
            two_reads == Verdict::Complete,
            verdict == Verdict::Complete,
            "{:?}: in two reads {two_reads:?}, in one {verdict:?}",
            ctx()
        );
    }
    RT.with(|rt| {
        rt.block_on(async {
            let mut s = ServerSession::new_http1(Box::new(Cursor::new(bytes.to_vec())));
            let parsed = s.read_request().await;
            if verdict == Verdict::Complete {
                assert!(
                    matches!(parsed, Ok(true)),
                    "{:?}: the edge passes it, Pingora refuses it: {:?}",
                    ctx(),
                    parsed.as_ref().map_err(|e| e.to_string())
                );
            }
            if !matches!(parsed, Ok(true)) {
                return;
            }
            let req = s.req_header();
            let method = req.method.as_str().to_string();
            check_path_and_route(&method, req.uri.path());
            if let Ok(raw) = std::str::from_utf8(req.raw_path()) {
                let raw = raw.to_string();
                check_path_and_route(&method, &raw);
            }
            // The body parser is bounded by the input: each call consumes bytes or ends.
            for _ in 0..=bytes.len() {
                match s.read_request_body().await {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        })
    });
}

/// `seg_eq` agrees with the reference decoding: equal ignoring ASCII case once decoded.
pub fn check_seg_eq(seg: &str, literal: &str) {
    let want = pct_decode(seg).eq_ignore_ascii_case(literal.as_bytes());
    assert_eq!(seg_eq(seg, literal), want, "seg_eq({seg:?}, {literal:?})");
}
