//! Property tests for what scimitar decides from untrusted text: the request path (normalising,
//! routing, classifying), the config file, request bodies (deprovisioning), and HTTP/1 heads
//! (the edge's verdict, then Pingora's parser). A fixed number of cases each, so the run is
//! deterministic in length (about 10 s in a debug build); a failure's seed is written to
//! `tests/properties.regressions` and replayed first on every later run.
//!
//! Each property was checked against a deliberately broken function (a `..` that does not pop,
//! `%2E` not taken for a dot, PATCH classified as a replace, problem places without their
//! parents, `"False"` not read as false, the edge passing a malformed header, …): it fails.
//!
//! The invariants themselves live in `fuzz/src/checks.rs`, shared with the libFuzzer targets of
//! `make fuzz`; `corpus_replays` runs every committed corpus file through them, so a crash the
//! fuzzer found stays a test here.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use checks::{pct_decode, router, PLAIN_BASE};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use scimitar::inbound::head::{path_verdict, Verdict};
use scimitar::routing::NoRoute;
use scimitar::scim::path::{decode, needs_normalizing, normalize, path_only, segments};
use scimitar::scim::{EndpointClass as C, Method, Operation as O};
use serde_json::{json, Value as Json};
use serde_yaml::{Mapping, Value as Yaml};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Paths

/// Segments that exercise the normaliser: dot segments in every encoding, near-misses that are
/// not dot segments, broken escapes, encoded slashes, SCIM names, and arbitrary text.
fn segment() -> impl Strategy<Value = String> {
    let tricky = prop::sample::select(vec![
        "", ".", "..", "%2e", "%2E", "%2e%2e", ".%2E", "%2e.", "%2E%2e", "...", "a..b", ".a", "%252e", "%2f", "%2F",
        "%", "%z", "%zz", "%4", "%2", ".search", "Users", "%55sers", "Groups", "scim", "v2", "api",
    ]);
    prop_oneof![
        4 => tricky.prop_map(String::from),
        3 => "[a-zA-Z0-9._~%:-]{1,6}",
        1 => "[^/?#]{0,4}",
    ]
}

fn raw_path() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(segment(), 0..10), any::<bool>()).prop_map(|(lead, segs, trail)| {
        let mut p = segs.join("/");
        if lead {
            p.insert(0, '/');
        }
        if trail {
            p.push('/');
        }
        p
    })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn normalize_resolves_every_dot_and_empty_segment(p in raw_path()) {
        let n = normalize(&p);
        prop_assert!(n.starts_with('/'), "{n:?}");
        prop_assert!(!n.contains("//"), "{n:?}");
        let segs: Vec<&str> = segments(&n).map(|s| s.of(&n)).collect();
        for s in &segs {
            prop_assert!(!checks::is_dot_segment(s), "{p:?} → {n:?} keeps {s:?}");
        }
        prop_assert_eq!(&segs, &checks::model_segments(&p), "{:?} → {:?}", p, n);
        // The trailing slash is the client's: kept when its last segment ended in one (or was
        // a dot segment, which names a directory), and `/` for an empty result.
        let last = p.rsplit('/').next().unwrap_or("");
        let dir = segs.is_empty() || p.ends_with('/') || checks::is_dot_segment(last);
        prop_assert_eq!(n.ends_with('/'), dir, "{:?} → {:?}", p, n);
    }

    #[test]
    fn normalize_is_idempotent_and_needed_exactly_when_it_changes_the_path(p in raw_path()) {
        let n = normalize(&p);
        prop_assert_eq!(&normalize(&n), &n);
        prop_assert!(!needs_normalizing(&n), "{n:?}");
        prop_assert_eq!(needs_normalizing(&p), n != p, "{:?} → {:?}", p, n);
        if !needs_normalizing(&p) {
            prop_assert_eq!(&n, &p);
        }
    }

    #[test]
    fn segments_are_the_non_empty_parts(p in raw_path()) {
        let got: Vec<&str> = segments(&p).map(|s| s.of(&p)).collect();
        let want: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn segment_comparison_and_decoding_match_the_reference(
        seg in segment(),
        lit in prop::sample::select(vec!["Users", "Groups", ".search", "v2", "scim", "%", "a"]),
        text in "\\PC{0,8}",
        upper in any::<bool>(),
    ) {
        checks::check_seg_eq(&seg, lit);
        checks::check_seg_eq(&encode_all(lit, upper), lit);
        checks::check_seg_eq(&lit.to_ascii_lowercase(), lit);
        // decode agrees with the reference wherever the result is text.
        if let Ok(want) = String::from_utf8(pct_decode(&seg)) {
            prop_assert_eq!(decode(&seg), want);
        }
        let encoded = encode_all(&text, upper);
        prop_assert_eq!(decode(&encoded), text.as_str());
    }

    #[test]
    fn any_method_and_target_routes_without_breaking_an_invariant(
        method in prop_oneof![prop::sample::select(Method::NAMES.to_vec()).prop_map(String::from), "\\PC{0,7}"],
        target in prop_oneof![
            raw_path().prop_map(|p| format!("{PLAIN_BASE}/{p}")),
            raw_path().prop_map(|p| format!("/acme/api/scim/{p}")),
            raw_path(),
            "\\PC{0,40}",
        ],
    ) {
        checks::check_path_and_route(&method, &target);
    }
}

/// A path (matrix) parameter, raw or percent-encoded.
fn path_parameter() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![";", ";v=1", "%3B", "%3b", "%3Bjsessionid=x"])
}

proptest! {
    #![proptest_config(config(1000))]

    /// Servers that strip `;…` from a segment (Tomcat, Spring) would serve another endpoint
    /// than the one routed: what the edge passes holds no `;` once decoded, a `;` or `%3B`
    /// anywhere in any path is refused, and in the query it changes nothing.
    #[test]
    fn the_edge_passes_no_path_parameter(
        p in raw_path(),
        semi in path_parameter(),
        at in any::<prop::sample::Index>(),
    ) {
        let target = format!("/{p}");
        let verdict = path_verdict(target.as_bytes());
        if verdict == Verdict::Complete {
            prop_assert!(!pct_decode(&target).contains(&b';'), "{:?} passed", target);
        }
        let mut i = 1 + at.index(target.len());
        while !target.is_char_boundary(i) {
            i += 1;
        }
        let with = format!("{}{semi}{}", &target[..i], &target[i..]);
        prop_assert!(
            matches!(path_verdict(with.as_bytes()), Verdict::Refuse(_)),
            "{:?} passed",
            with
        );
        let query = format!("{target}?filter=a{semi}");
        prop_assert_eq!(path_verdict(query.as_bytes()), verdict, "{:?}", query);
    }
}

/// Every byte as `%XX`.
fn encode_all(s: &str, upper: bool) -> String {
    s.bytes()
        .map(|b| {
            if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Classification of canonical SCIM requests

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ep {
    Root,
    Users,
    Groups,
    Me,
    Bulk,
    Spc,
    ResourceTypes,
    Schemas,
    Custom,
}

impl Ep {
    fn name(self) -> &'static str {
        match self {
            Ep::Root => "",
            Ep::Users => "Users",
            Ep::Groups => "Groups",
            Ep::Me => "Me",
            Ep::Bulk => "Bulk",
            Ep::Spc => "ServiceProviderConfig",
            Ep::ResourceTypes => "ResourceTypes",
            Ep::Schemas => "Schemas",
            Ep::Custom => "Devices",
        }
    }
    /// Endpoints addressed as `/Type/{id}` in RFC 7644 (discovery: `/Schemas/{urn}`).
    fn has_ids(self) -> bool {
        matches!(
            self,
            Ep::Users | Ep::Groups | Ep::ResourceTypes | Ep::Schemas | Ep::Custom
        )
    }
}

#[derive(Debug, Clone)]
enum Tail {
    None,
    Id(String),
    Search,
}

/// The expected view from the README's table: (operation, class).
fn expected(m: Method, ep: Ep, tail: &Tail) -> (O, C) {
    let read = matches!(m, Method::Get | Method::Head);
    let has_id = matches!(tail, Tail::Id(_));
    let class = match ep {
        Ep::Users if read => C::UsersRead,
        Ep::Users => C::UsersWrite,
        Ep::Groups if read => C::GroupsRead,
        Ep::Groups => C::GroupsWrite,
        Ep::Me => C::Me,
        Ep::Bulk => C::Bulk,
        Ep::Spc | Ep::ResourceTypes | Ep::Schemas if read => C::Discovery,
        _ => C::Other,
    };
    if let Tail::Search = tail {
        return if m == Method::Post {
            (O::Search, C::Search)
        } else {
            (O::Other, class)
        };
    }
    let op = match ep {
        Ep::Root => O::Other,
        Ep::Spc | Ep::ResourceTypes | Ep::Schemas if read => O::Discovery,
        Ep::Spc | Ep::ResourceTypes | Ep::Schemas => O::Other,
        Ep::Bulk if m == Method::Post && !has_id => O::Bulk,
        Ep::Bulk => O::Other,
        Ep::Me if has_id => O::Other,
        Ep::Me => match m {
            Method::Get | Method::Head => O::Get,
            Method::Post => O::Create,
            Method::Put => O::Replace,
            Method::Patch => O::Patch,
            Method::Delete => O::Delete,
            _ => O::Other,
        },
        Ep::Users | Ep::Groups | Ep::Custom => match (m, has_id) {
            (Method::Get | Method::Head, false) => O::List,
            (Method::Post, false) => O::Create,
            (Method::Get | Method::Head, true) => O::Get,
            (Method::Put, true) => O::Replace,
            (Method::Patch, true) => O::Patch,
            (Method::Delete, true) => O::Delete,
            _ => O::Other,
        },
    };
    (op, class)
}

/// An id or tenant as the client means it: any text that is not itself a dot segment or the
/// `.search` action once decoded.
fn name_text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z0-9-]{1,12}", "\\PC{1,10}", "[./%?#a]{1,5}"].prop_filter("not a path action", |s| {
        !(s == "." || s == ".." || s.eq_ignore_ascii_case(".search"))
    })
}

/// Percent-encodes what must be (`/`, `%`, `?`, `#`, non-ASCII, controls, space) and, where
/// `extra` says so, any other byte too, in either hex case.
fn encode(s: &str, extra: &[bool], upper: bool) -> String {
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        let must = !b.is_ascii_graphic() || matches!(b, b'/' | b'%' | b'?' | b'#');
        if must || extra.get(i).copied().unwrap_or(false) {
            out.push_str(&if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            });
        } else {
            out.push(b as char);
        }
    }
    out
}

/// How a client may spell the same request differently: endpoint-name casing and encoding,
/// `//`, `./`, `x/../` between segments, a trailing slash, a query.
#[derive(Debug, Clone)]
struct Spelling {
    flips: Vec<bool>,
    encodes: Vec<bool>,
    upper_hex: bool,
    /// Per gap between segments: 0 plain, 1 `//`, 2 `/./`, 3 `/x/../`, 4 `/%2e/`.
    gaps: Vec<u8>,
    trailing: bool,
    query: bool,
}

fn spelling() -> impl Strategy<Value = Spelling> {
    (
        prop::collection::vec(any::<bool>(), 24),
        prop::collection::vec(prop::bool::weighted(0.2), 24),
        any::<bool>(),
        prop::collection::vec(
            prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8), 1 => Just(4u8)],
            8,
        ),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(flips, encodes, upper_hex, gaps, trailing, query)| Spelling {
            flips,
            encodes,
            upper_hex,
            gaps,
            trailing,
            query,
        })
}

impl Spelling {
    /// An endpoint name in any case and encoding: both are documented to match.
    fn name(&self, n: &str) -> String {
        let mut out = String::new();
        for (i, c) in n.chars().enumerate() {
            let c = if self.flips[i % self.flips.len()] { flip(c) } else { c };
            if self.encodes[i % self.encodes.len()] {
                out.push_str(&encode(&c.to_string(), &[true], self.upper_hex));
            } else {
                out.push(c);
            }
        }
        out
    }

    /// A base-path literal: its case is significant, its encoding is not.
    fn base(&self, n: &str) -> String {
        let extra: Vec<bool> = (0..n.len())
            .map(|i| self.encodes[(i + 7) % self.encodes.len()])
            .collect();
        encode(n, &extra, self.upper_hex)
    }

    fn join(&self, segs: &[String]) -> String {
        let mut out = String::new();
        for (i, s) in segs.iter().enumerate() {
            out.push_str(match self.gaps[i % self.gaps.len()] {
                1 => "//",
                2 => "/./",
                3 => "/x/../",
                4 => "/%2e/",
                _ => "/",
            });
            out.push_str(s);
        }
        if self.trailing {
            out.push('/');
        }
        if self.query {
            out.push_str("?filter=userName%20eq%20%22a/../b%22#frag");
        }
        out
    }
}

fn flip(c: char) -> char {
    if c.is_ascii_uppercase() {
        c.to_ascii_lowercase()
    } else {
        c.to_ascii_uppercase()
    }
}

fn endpoint() -> impl Strategy<Value = (Ep, Tail)> {
    let ep = prop::sample::select(vec![
        Ep::Root,
        Ep::Users,
        Ep::Groups,
        Ep::Me,
        Ep::Bulk,
        Ep::Spc,
        Ep::ResourceTypes,
        Ep::Schemas,
        Ep::Custom,
    ]);
    (ep, prop_oneof![Just(0u8), Just(1u8), Just(2u8)], name_text()).prop_map(|(ep, t, id)| {
        let tail = match t {
            1 if ep.has_ids() => Tail::Id(id),
            2 if ep != Ep::Spc => Tail::Search,
            _ => Tail::None,
        };
        (ep, tail)
    })
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
        Method::Other,
    ])
}

/// A routed request with its spans decoded out of the (normalised) path.
struct Routed {
    view: scimitar::scim::ScimView,
    tenant: Option<String>,
    id: Option<String>,
    resource: String,
}

/// Routes a target as `request_filter` does: path only, normalised when needed.
fn route(m: Method, target: &str) -> Result<Routed, NoRoute> {
    let raw = path_only(target);
    let n = normalize(raw);
    let path = if needs_normalizing(raw) { n.as_str() } else { raw };
    let r = router().find(m, path)?;
    let text = |s: scimitar::scim::path::Span| decode(s.of(path)).into_owned();
    Ok(Routed {
        view: r.view,
        tenant: r.tenant.map(text),
        id: r.view.id.map(text),
        resource: decode(r.view.resource.name(path)).into_owned(),
    })
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn canonical_scim_paths_classify_as_the_readme_says_in_any_spelling(
        m in method(),
        (ep, tail) in endpoint(),
        tenant in prop::option::of(name_text()),
        sp in spelling(),
        tenant_extra in prop::collection::vec(prop::bool::weighted(0.2), 16),
    ) {
        let mut segs: Vec<String> = match &tenant {
            None => vec![sp.base("scim"), sp.base("v2")],
            Some(t) => vec![encode(t, &tenant_extra, sp.upper_hex), sp.base("api"), sp.base("scim")],
        };
        if ep != Ep::Root {
            segs.push(sp.name(ep.name()));
        }
        match &tail {
            Tail::Id(id) => segs.push(encode(id, &tenant_extra, !sp.upper_hex)),
            Tail::Search => segs.push(sp.name(".search")),
            Tail::None => {}
        }
        let target = sp.join(&segs);
        let got = route(m, &target).map_err(|e| TestCaseError::fail(format!("{target}: {e:?}")))?;
        let (op, class) = expected(m, ep, &tail);
        prop_assert_eq!(got.view.op, op, "{:?} {}", m, target);
        prop_assert_eq!(got.view.class, class, "{:?} {}", m, target);
        prop_assert_eq!(got.tenant, tenant, "{:?} {}", m, target);
        let want_id = match &tail {
            Tail::Id(id) => Some(id.clone()),
            _ => None,
        };
        prop_assert_eq!(got.id, want_id, "{:?} {}", m, target);
        if ep == Ep::Custom {
            prop_assert!(got.resource.eq_ignore_ascii_case(ep.name()), "{}: {}", target, got.resource);
        } else {
            prop_assert_eq!(got.resource, ep.name(), "{:?} {}", m, target);
        }
    }

    #[test]
    fn a_base_path_in_another_case_is_not_scim_however_encoded(
        m in method(),
        (ep, _) in endpoint(),
        sp in spelling(),
        which in 0usize..5,
        tenant in prop::bool::ANY,
    ) {
        // Flip one letter of a base-path literal; encoding it (or not) must not bring it back.
        let literals: Vec<&str> = if tenant { vec!["api", "scim"] } else { vec!["scim", "v2"] };
        let letters: Vec<(usize, usize)> = literals
            .iter()
            .enumerate()
            .flat_map(|(li, l)| l.char_indices().filter(|(_, c)| c.is_ascii_alphabetic()).map(move |(ci, _)| (li, ci)))
            .collect();
        let (li, ci) = letters[which % letters.len()];
        let mut segs: Vec<String> = if tenant { vec!["acme".to_string()] } else { vec![] };
        for (i, l) in literals.iter().enumerate() {
            let mut s: String = l.to_string();
            if i == li {
                let c = s.remove(ci);
                s.insert(ci, flip(c));
            }
            segs.push(sp.base(&s));
        }
        if ep != Ep::Root {
            segs.push(sp.name(ep.name()));
        }
        let target = sp.join(&segs);
        prop_assert_eq!(route(m, &target).err(), Some(NoRoute::NotScim), "{}", target);
    }
}

// ---------------------------------------------------------------------------------------------
// Config

const DURATIONS: &[&str] = &[
    "5s",
    "250ms",
    "1m",
    "2h",
    "1.5s",
    "0s",
    "-1s",
    "5 s",
    "soon",
    "${UNSET:-5s}",
];
const SIZES: &[&str] = &["1MiB", "4MiB", "64KiB", "0", "1e9", "lots", "100GiB"];
const ADDRESSES: &[&str] = &[
    "127.0.0.1:8080",
    "127.0.0.1:9090",
    "[::1]:8081",
    "0.0.0.0:8080",
    "localhost:8000",
    "127.0.0.1",
    "127.0.0.1:99999",
    "${HOST}:${PORT}",
    "nohost",
];
const BASES: &[&str] = &[
    "/scim/v2",
    "/{tenant}/scim/v2",
    "/v2",
    "scim/v2",
    "/{org}/v2",
    "/a/../b",
    "/x/{tenant}/{tenant}",
];
const POOLS: &[&str] = &["scim", "other", "missing"];
const POLICIES: &[&str] = &["per-tenant", "global", "missing"];

fn pick(words: &'static [&'static str]) -> BoxedStrategy<Yaml> {
    prop::sample::select(words)
        .prop_map(|w| Yaml::String(w.to_string()))
        .boxed()
}

/// Any value of the wrong (or right) type: the builder must name the key it found it under.
fn odd() -> BoxedStrategy<Yaml> {
    prop_oneof![
        Just(Yaml::Null),
        any::<bool>().prop_map(Yaml::Bool),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(2),
            Just(100),
            Just(65_536),
            Just(-1),
            any::<i64>()
        ]
        .prop_map(|n| Yaml::Number(n.into())),
        Just(Yaml::Number(1.5f64.into())),
        "[a-z0-9:/._ -]{0,12}".prop_map(Yaml::String),
        Just(Yaml::Sequence(vec![])),
        Just(Yaml::Mapping(Mapping::new())),
        Just(Yaml::Sequence(vec![Yaml::String("x".into()), Yaml::Number(3.into())])),
    ]
    .boxed()
}

fn uint() -> BoxedStrategy<Yaml> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(16),
        Just(100),
        Just(10_000_000),
        Just(u64::MAX)
    ]
    .prop_map(|n| Yaml::Number(n.into()))
    .boxed()
}

fn strings_of(words: &'static [&'static str]) -> BoxedStrategy<Yaml> {
    prop::collection::vec(pick(words), 0..3)
        .prop_map(Yaml::Sequence)
        .boxed()
}

/// The plausible value for a key, by name, shared by every section that uses the name.
fn value_for(key: &str) -> BoxedStrategy<Yaml> {
    match key {
        "interval" | "timeout" | "connect" | "read" | "write" | "idle" | "eject_for" | "queue_timeout"
        | "pin_after_write" | "discovery" | "resources" | "shutdown_timeout" | "idle_timeout" | "backoff" => {
            pick(DURATIONS)
        }
        "max_size" | "max_entry" => pick(SIZES),
        "max_body" => prop_oneof![pick(SIZES), section(&["default", "bulk", "users.write", "bluk"], 2)].boxed(),
        "address" => pick(ADDRESSES),
        "servers" => prop::collection::vec(prop_oneof![pick(ADDRESSES), section(&["address", "weight"], 1)], 0..3)
            .prop_map(Yaml::Sequence)
            .boxed(),
        "keepalive"
        | "retries"
        | "max_inflight"
        | "queue"
        | "max_conns"
        | "rise"
        | "fall"
        | "max_fails"
        | "weight"
        | "burst"
        | "max_connections"
        | "max_tenants"
        | "threads"
        | "grace_period_seconds" => uint(),
        "preserve_host"
        | "count_5xx"
        | "http2"
        | "write_through"
        | "ignore_cache_control"
        | "tenant_label"
        | "work_stealing"
        | "default" => prop_oneof![any::<bool>().prop_map(Yaml::Bool), pick(&["true", "yes"])].boxed(),
        "tenant_share" => prop_oneof![Just(0.5f64), Just(0.0), Just(2.0)]
            .prop_map(|f| Yaml::Number(f.into()))
            .boxed(),
        "selection" => pick(&["round_robin", "consistent", "hash"]),
        "protocol" => pick(&["http", "tcp", "udp"]),
        "type" => pick(&["http", "tcp", "icmp"]),
        "path" => pick(&[
            "/scim/v2/ServiceProviderConfig",
            "healthz",
            "stdout",
            "/nonexistent/dir/a.log",
            "",
        ]),
        "expect_status" => prop::collection::vec(prop_oneof![Just(200u64), Just(204), Just(99), Just(600)], 0..3)
            .prop_map(|v| Yaml::Sequence(v.into_iter().map(|n| Yaml::Number(n.into())).collect()))
            .boxed(),
        "base_path" => pick(BASES),
        "upstream" => pick(POOLS),
        "classes" => strings_of(&["users.read", "bulk", "search", "discovery", "nonsense"]),
        "methods" => strings_of(&["GET", "post", "PATCH", "FETCH"]),
        "rate_limits" => strings_of(POLICIES),
        "key" => prop_oneof![
            strings_of(&["token", "tenant", "client_ip", "header:X-Api-Key", "class", "cookie"]),
            pick(&["tenant", "bogus"])
        ]
        .boxed(),
        "rate" => pick(&["20/s", "600/m", "0/s", "x/s", "5"]),
        "store" => pick(&["local", "redis", "memcached"]),
        "url" => pick(&["redis://127.0.0.1:6379", "http://x", "unix:///tmp/r.sock"]),
        "prefix" | "name" | "host" | "key_secret" => pick(&["main", "scimitar", "x", ""]),
        "source" => pick(&["path", "header", "none", "cookie"]),
        "header" => pick(&["X-Tenant-Id", "bad header", ""]),
        "token_sha256" => pick(&["00", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]),
        "key_headers" => strings_of(&["X-Api-Key", "bad header"]),
        "cert" | "key_file" | "ca" => pick(&["/nonexistent/cert.pem", ""]),
        "trusted_proxies" => strings_of(&["10.0.0.0/8", "2001:db8::/32", "127.0.0.1", "300.0.0.0/8"]),
        "real_ip_header" => pick(&["X-Real-IP", "X-Forwarded-For", "bad header"]),
        "realm" => pick(&["scim", "a\"b", ""]),
        "sha256" => pick(&[
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
            "not-a-digest",
        ]),
        "tenant" => pick(&["acme", ""]),
        "upstream_base_path" => pick(&["/v2", "/{tenant}/v2", "/", "v2", "/a//b", "/{org}"]),
        "status" => prop_oneof![Just(403u64), Just(204), Just(200), Just(301), Just(101), Just(700)]
            .prop_map(|n| Yaml::Number(n.into()))
            .boxed(),
        "return" => prop_oneof![value_for("status"), section(&["status", "detail"], 1)].boxed(),
        "detail" => pick(&["gone", ""]),
        "remove" => strings_of(&["Server", "Host", "X-Request-Id", "Connection", "bad header"]),
        "set" | "add" => prop::collection::vec(
            (
                prop::sample::select(&["X-Real-IP", "Host", "X-Forwarded-For", "Content-Length", "bad header"][..]),
                pick(&[
                    "$remote_addr",
                    "$tenant",
                    "$http_x_a-$host",
                    "$nope",
                    "$",
                    "${host",
                    "",
                    "$$x",
                ]),
            ),
            0..3,
        )
        .prop_map(|kv| {
            let mut m = Mapping::new();
            for (k, v) in kv {
                m.insert(Yaml::String(k.to_string()), v);
            }
            Yaml::Mapping(m)
        })
        .boxed(),
        _ => odd(),
    }
}

/// A mapping of some of `keys`, each with its plausible value (or, one time in eight, any
/// value), and now and then a misspelt key. `depth` bounds the nested sections.
fn section(keys: &'static [&'static str], depth: u32) -> BoxedStrategy<Yaml> {
    let entry =
        (prop::sample::select(keys), 0u8..8, prop::bool::weighted(0.05)).prop_flat_map(move |(k, odds, typo)| {
            let key = if typo && k.len() > 2 {
                format!("{}{}", &k[..1], &k[2..])
            } else {
                k.to_string()
            };
            let v = if odds == 0 { odd() } else { nested(k, depth) };
            v.prop_map(move |v| (key.clone(), v))
        });
    prop::collection::vec(entry, 0..keys.len().min(6) + 1)
        .prop_map(|entries| {
            let mut m = Mapping::new();
            for (k, v) in entries {
                m.insert(Yaml::String(k), v);
            }
            Yaml::Mapping(m)
        })
        .boxed()
}

fn named(names: &'static [&'static str], inner: BoxedStrategy<Yaml>) -> BoxedStrategy<Yaml> {
    prop::collection::vec((prop::sample::select(names), inner), 0..3)
        .prop_map(|entries| {
            let mut m = Mapping::new();
            for (k, v) in entries {
                m.insert(Yaml::String(k.to_string()), v);
            }
            Yaml::Mapping(m)
        })
        .boxed()
}

fn list_of(inner: BoxedStrategy<Yaml>) -> BoxedStrategy<Yaml> {
    prop::collection::vec(inner, 0..3).prop_map(Yaml::Sequence).boxed()
}

use scimitar::config::keys;

fn nested(key: &str, depth: u32) -> BoxedStrategy<Yaml> {
    if depth == 0 {
        return value_for(key);
    }
    let d = depth - 1;
    match (key, depth) {
        ("upstreams", _) => named(POOLS, section(keys::POOL, d)),
        ("listeners", _) => list_of(section(keys::LISTENER, d)),
        ("routes", _) => list_of(section(keys::ROUTE, d)),
        ("health_check", _) => section(keys::HEALTH, d),
        ("passive", _) => section(keys::PASSIVE, d),
        ("timeouts", _) => section(keys::TIMEOUTS, d),
        ("tls", _) => section(
            &[
                "cert",
                "key",
                "certificates",
                "client_ca",
                "ca",
                "http2",
                "sni",
                "verify",
            ],
            d,
        ),
        ("affinity", _) => section(keys::AFFINITY, d),
        ("auth", _) => section(keys::AUTH, d),
        ("tokens", _) => list_of(section(keys::AUTH_TOKEN, d)),
        ("headers", _) => section(keys::HEADERS, d),
        ("request" | "response", _) => section(keys::HEADER_RULES, d),
        // At the top (depth 4) `cache` and `rate_limits` are sections; in a route, a route's cache
        // and a list of policy names.
        ("cache", 4) => section(keys::CACHE, d),
        ("cache", _) => section(keys::ROUTE_CACHE, d),
        ("rate_limits", 4) => section(keys::LIMITS, d),
        ("policies", _) => named(POLICIES, section(keys::POLICY, d)),
        ("redis", _) => section(keys::REDIS, d),
        ("tenancy", _) => section(&["source", "header"], d),
        ("admin", _) => section(&["address", "token_sha256"], d),
        ("access_log", _) => section(keys::ACCESS_LOG, d),
        ("metrics", _) => section(keys::METRICS, d),
        ("server", _) => section(
            &[
                "threads",
                "work_stealing",
                "grace_period_seconds",
                "max_retries",
                "thread",
            ],
            d,
        ),
        _ => value_for(key),
    }
}

/// A whole config file: a tree from the grammar above, written as YAML, then sometimes damaged
/// as text (a line dropped, doubled, mis-indented, its value replaced by an unset `${VAR}`).
fn config_text() -> impl Strategy<Value = String> {
    (section(keys::TOP, 4), 0u8..6, any::<prop::sample::Index>()).prop_map(|(tree, damage, at)| {
        let text = serde_yaml::to_string(&tree).unwrap_or_default();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.is_empty() {
            return text;
        }
        let i = at.index(lines.len());
        match damage {
            0 => {
                lines.remove(i);
            }
            1 => lines.insert(i, lines[i].clone()),
            2 => lines[i].insert(0, '\t'),
            3 => {
                if let Some((k, _)) = lines[i].split_once(':') {
                    lines[i] = format!("{k}: ${{UNSET}}");
                }
            }
            _ => {}
        }
        lines.join("\n")
    })
}

/// A config that must load: one or two pools, routes over them, listeners on distinct ports.
fn valid_config() -> impl Strategy<Value = (String, usize)> {
    (1usize..3, 1usize..4, 1usize..3, prop::sample::select(vec!["round_robin", "consistent"])).prop_map(
        |(pools, routes, listeners, selection)| {
            let mut t = String::from("listeners:\n");
            for l in 0..listeners {
                t += &format!("  - {{name: l{l}, address: \"127.0.0.1:{}\"}}\n", 18080 + l);
            }
            t += "upstreams:\n";
            for p in 0..pools {
                t += &format!(
                    "  p{p}:\n    selection: {selection}\n    servers: [\"127.0.0.1:{}\", {{address: \"[::1]:{}\", weight: 3}}]\n",
                    19000 + p,
                    19100 + p
                );
            }
            t += "routes:\n";
            for r in 0..routes {
                t += &format!("  - {{base_path: /r{r}/scim/v2, upstream: p{}, max_body: 2MiB}}\n", r % pools);
            }
            (t, routes)
        },
    )
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn config_from_the_grammar_loads_or_names_the_key_at_fault(text in config_text()) {
        // The grammar always writes a mapping with string keys, so every problem has a place.
        let doc = checks::parsed(&text);
        prop_assume!(checks::safe_to_load(&text));
        match scimitar::config::from_str_with_env(&text, checks::env) {
            Ok(_) => {}
            Err(problems) => {
                prop_assert!(!problems.0.is_empty());
                for p in &problems.0 {
                    // serde_yaml gives no location for a second document in the file: the one
                    // syntax error that names neither a key nor a line.
                    if doc.is_none() && p.msg.contains("more than one document") {
                        continue;
                    }
                    // Damage can leave a root that is not a mapping (a dropped first line
                    // turns `key:\n- a` into a list): the problem is the whole document.
                    if !checks::keyed_root(doc.as_ref()) && p.at.is_empty() {
                        continue;
                    }
                    prop_assert!(checks::names_a_place(p, doc.as_ref()), "`{}` names no key in\n{}", p, text);
                }
            }
        }
        checks::check_config(&text);
    }

    #[test]
    fn config_text_of_any_shape_never_panics(text in prop_oneof!["\\PC{0,60}", "[a-z_:{}\\[\\]\\-\n $#\"'&*!|>0-9.]{0,120}"]) {
        checks::check_config(&text);
    }

    #[test]
    fn a_valid_config_loads_with_every_route((text, routes) in valid_config()) {
        let cfg = scimitar::config::from_str_with_env(&text, checks::env)
            .map_err(|p| TestCaseError::fail(format!("{text}\n{:?}", p.0)))?;
        prop_assert_eq!(cfg.routes.len(), routes);
    }
}

/// Found by `make fuzz` (config, corpus `crash-empty-root-key`): a root key that is the empty
/// string, written `? |`. It is refused as an unknown key, but its place renders as the empty
/// path, the document's own, so the check asks a place only of roots without such a key.
#[test]
fn config_with_an_empty_root_key_is_refused() {
    for text in ["? | ", "\"\": x\n"] {
        let problems = match scimitar::config::from_str_with_env(text, checks::env) {
            Ok(_) => panic!("{text:?} loaded"),
            Err(p) => p.0,
        };
        assert!(
            problems
                .iter()
                .any(|p| p.at == "(top level)" && p.msg.starts_with("an empty key")),
            "the problem says where and what: {problems:?}"
        );
        checks::check_config(text);
    }
}

// ---------------------------------------------------------------------------------------------
// Body inspection

/// `active` in any ASCII case.
fn any_case(word: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), word.len()).prop_map(move |f| {
        word.chars()
            .zip(f)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

fn active_value() -> impl Strategy<Value = Json> {
    prop_oneof![
        any::<bool>().prop_map(Json::Bool),
        any_case("false").prop_map(Json::String),
        any_case("true").prop_map(Json::String),
        Just(json!(0)),
        Just(json!(null)),
        Just(json!("no")),
        Just(json!({"active": false})),
    ]
}

/// A PATCH operation or PUT-like resource where `active` may or may not be set false.
fn operation() -> impl Strategy<Value = Json> {
    let op = prop_oneof![
        any_case("replace"),
        any_case("add"),
        any_case("remove"),
        Just("move".to_string())
    ];
    let path = prop_oneof![
        any_case("active").prop_map(Some),
        (
            any_case("urn:ietf:params:scim:schemas:core:2.0:user:"),
            any_case("active")
        )
            .prop_map(|(u, a)| Some(u + &a)),
        Just(Some("displayName".to_string())),
        Just(Some("inactive".to_string())),
        Just(Some("emails[type eq \"work\"].active".to_string())),
        Just(None),
    ];
    let value = prop_oneof![
        active_value(),
        (any_case("active"), active_value()).prop_map(|(k, v)| json!({ k: v, "displayName": "x" })),
        Just(json!({"name": {"active": false}})),
        Just(json!([{"active": false}])),
    ];
    (
        any_case("op"),
        op,
        any_case("path"),
        path,
        any_case("value"),
        value,
        prop::bool::weighted(0.9),
    )
        .prop_map(|(op_key, op, path_key, path, value_key, value, with_value)| {
            let mut o = serde_json::Map::new();
            o.insert(op_key, Json::String(op));
            if let Some(p) = path {
                o.insert(path_key, Json::String(p));
            }
            if with_value {
                o.insert(value_key, value);
            }
            Json::Object(o)
        })
}

fn body_doc() -> impl Strategy<Value = Json> {
    prop_oneof![
        (
            any_case("operations"),
            prop::collection::vec(operation(), 0..4),
            any::<bool>()
        )
            .prop_map(|(k, ops, schema)| {
                let mut o = serde_json::Map::new();
                if schema {
                    o.insert(
                        "schemas".into(),
                        json!(["urn:ietf:params:scim:api:messages:2.0:PatchOp"]),
                    );
                }
                o.insert(k, Json::Array(ops));
                Json::Object(o)
            }),
        (any_case("active"), active_value()).prop_map(|(k, v)| json!({"userName": "bjensen", k: v})),
        operation().prop_map(|o| json!({"Operations": o})),
        operation().prop_map(|o| json!([o])),
    ]
}

/// JSON text for a document, in a spelling chosen by `style`: compact, pretty, or with every
/// string character written as a `\uXXXX` escape where `escapes` says so (all are the same
/// document to a JSON parser).
fn write_json(v: &Json, style: u8, escapes: &[bool], n: &mut usize) -> String {
    match v {
        Json::Object(o) => {
            let items: Vec<String> = o
                .iter()
                .map(|(k, x)| {
                    let k = write_json(&Json::String(k.clone()), style, escapes, n);
                    format!("{k}:{}", write_json(x, style, escapes, n))
                })
                .collect();
            if style == 1 {
                format!("{{\n  {}\n}}", items.join(",\n  "))
            } else {
                format!("{{{}}}", items.join(","))
            }
        }
        Json::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(|x| write_json(x, style, escapes, n))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Json::String(s) if style == 2 => {
            let mut out = String::from("\"");
            for c in s.chars() {
                *n += 1;
                if escapes[*n % escapes.len()] && (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    let quoted = serde_json::to_string(&c.to_string()).unwrap_or_default();
                    out.push_str(&quoted[1..quoted.len() - 1]);
                }
            }
            out.push('"');
            out
        }
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn deprovisioning_agrees_with_the_serde_json_reference(
        doc in body_doc(),
        style in 0u8..3,
        escapes in prop::collection::vec(prop::bool::weighted(0.3), 7),
    ) {
        let text = write_json(&doc, style, &escapes, &mut 0);
        prop_assert_eq!(serde_json::from_str::<Json>(&text).ok(), Some(doc));
        checks::check_body(text.as_bytes());
    }

    #[test]
    fn deprovisioning_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        cut in any::<prop::sample::Index>(),
        doc in body_doc(),
    ) {
        checks::check_body(&bytes);
        // Truncated and spliced JSON: near-misses of real bodies.
        let text = serde_json::to_vec(&doc).unwrap_or_default();
        let i = cut.index(text.len() + 1);
        checks::check_body(&text[..i]);
        let mut spliced = text[..i].to_vec();
        spliced.extend_from_slice(&bytes);
        checks::check_body(&spliced);
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1 heads through Pingora's parser

fn http1_head() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec![
        "GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "CONNECT", "get", "G\0T",
    ]);
    let target = prop_oneof![
        raw_path().prop_map(|p| format!("{PLAIN_BASE}/{p}")),
        raw_path(),
        Just("http://other.example/scim/v2/Users".to_string()),
        Just("*".to_string()),
        "[ -~]{0,30}",
    ];
    let version = prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "http/1.1", ""]);
    let header = prop::sample::select(vec![
        "Host: a",
        "Content-Length: 5",
        "Content-Length: 05",
        "Content-Length: -1",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: gzip, chunked",
        " folded",
        "Bad Name: v",
        "X_Under: v",
        "X: a\0b",
    ]);
    let eol = prop::sample::select(vec!["\r\n", "\n"]);
    let body = prop::sample::select(vec!["", "hello", "5\r\nhello\r\n0\r\n\r\n", "\r\n", "zz\r\n"]);
    (method, target, version, prop::collection::vec(header, 0..4), eol, body).prop_map(|(m, t, v, hs, eol, b)| {
        let mut s = format!("{m} {t} {v}{eol}");
        for h in hs {
            s += h;
            s += eol;
        }
        s += eol;
        s += b;
        s.into_bytes()
    })
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn http1_heads_parse_and_classify_without_breaking_an_invariant(head in http1_head()) {
        checks::check_http1(&head);
    }
}

// ---------------------------------------------------------------------------------------------
// Corpus replay

/// Every committed corpus file of `make fuzz` (seeds and the inputs of past crashes) through
/// its target's checks: a crash the fuzzer found stays fixed without building the fuzz crate.
#[test]
fn corpus_replays() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    type Check = fn(&[u8]);
    let targets: [(&str, Check); 4] = [
        ("path_route", checks::check_path_input),
        ("config", checks::check_config_input),
        ("body", checks::check_body),
        ("http1_head", checks::check_http1),
    ];
    for (target, check) in targets {
        let dir = root.join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut n = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&bytes));
            assert!(outcome.is_ok(), "{target}: {} fails its checks", path.display());
            n += 1;
        }
        assert!(n > 0, "{target}: empty corpus");
    }
}
