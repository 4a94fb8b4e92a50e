//! The per-request work scimitar adds must not allocate on the common path: routing and
//! classification, key hashing, a rate-limit decision for a known key, the edge credential
//! check, the real client IP, and the access log's query redaction. Counted with a
//! global allocator, so this is exact, not timed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use scimitar::keys::{Facts, KeyHasher, KeySource};
use scimitar::ratelimit::{LocalGcra, Rate};
use scimitar::scim::path::{needs_normalizing, path_only};
use scimitar::scim::{EndpointClass, Method};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(|a| a.get());
    f();
    ALLOCS.with(|a| a.get()) - before
}

#[path = "fixtures/router.rs"]
mod fixtures;
use fixtures::router;

#[test]
fn routing_and_classification_do_not_allocate() {
    let r = router();
    let lines = [
        (
            Method::Get,
            "/scim/v2/Users/2819c223-7f76-453a-919d-413861904646?attributes=userName",
        ),
        (Method::Post, "/scim/v2/Users"),
        (Method::Patch, "/acme/scim/v2/Groups/g1"),
        (Method::Post, "/scim/v2/Bulk"),
        (Method::Post, "/scim/v2/Users/.search"),
        (Method::Get, "/scim/v2/%55sers/abc"),
        (Method::Get, "/nowhere"),
    ];
    let n = allocations(|| {
        for (m, t) in lines {
            let p = path_only(t);
            assert!(!needs_normalizing(p));
            let _ = std::hint::black_box(r.find(m, p));
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn key_hashing_does_not_allocate() {
    let h = KeyHasher::new("s");
    let headers = http::HeaderMap::new();
    let facts = Facts {
        tenant: Some(b"acme"),
        authorization: Some(b"Bearer abc"),
        client_ip: Some("127.0.0.1".parse().unwrap()),
        headers: &headers,
        id: Some(b"u1"),
        class: EndpointClass::UsersWrite,
        client_cert: None,
    };
    let sources = [
        KeySource::Token,
        KeySource::Tenant,
        KeySource::ClientIp,
        KeySource::Class,
    ];
    let n = allocations(|| {
        std::hint::black_box(h.first_present(&sources, &facts));
        std::hint::black_box(h.combined(&sources, &facts));
    });
    assert_eq!(n, 0);
}

#[test]
fn redacting_a_query_allocates_only_its_output() {
    let q = b"access_token=a&Authorization=b&X-Amz-Signature=c&count=5&startIndex=1&attributes=userName";
    let mut out = Vec::with_capacity(256);
    let n = allocations(|| {
        scimitar::accesslog::redact::query(q, &mut out);
        std::hint::black_box(scimitar::accesslog::redact::is_secret(b"Client_Assertion"));
    });
    assert_eq!(n, 0);
    assert_eq!(
        out,
        b"access_token=***&Authorization=***&X-Amz-Signature=***&count=5&startIndex=1&attributes=userName"
    );
}

#[test]
fn a_rate_limit_decision_for_a_known_key_does_not_allocate() {
    let l = LocalGcra::new(Rate::parse("1000/s").unwrap(), 1000);
    l.check(7); // first sight of a key creates its state
    let n = allocations(|| {
        for _ in 0..100 {
            std::hint::black_box(l.check(7));
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn selecting_a_server_does_not_allocate() {
    use scimitar::config::{PoolConfig, Selection, ServerAddr};
    use scimitar::upstream::Pool;
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for selection in [Selection::RoundRobin, Selection::Consistent] {
        let servers = (0..3)
            .map(|i| ServerAddr {
                address: std::net::SocketAddr::from(([127, 0, 0, 1], 18081 + i)),
                weight: 1,
            })
            .collect();
        let pool = rt
            .block_on(Pool::build(PoolConfig::new("p", servers, selection)))
            .unwrap();
        let n = allocations(|| {
            for k in 0..100u64 {
                let pick = pool.select(&k.to_le_bytes(), 0).unwrap();
                // A retry skips the first pick, still without allocating.
                std::hint::black_box(pool.select(&k.to_le_bytes(), 1 << pick.index).unwrap());
            }
        });
        assert_eq!(n, 0, "{selection:?}");
    }
}

#[test]
fn a_cache_key_and_a_hit_do_not_allocate() {
    use scimitar::cache::{Cache, CacheConfig, KeyParts};
    let cache = Cache::new(CacheConfig::default(), (1, 2));
    let parts = KeyParts {
        route: 0,
        authorization: Some(b"Bearer t"),
        host: Some(b"scim.example"),
        tenant_header: None,
        path: "/scim/v2/Users/1",
        query: None,
        accept: None,
        accept_encoding: None,
        key_headers: &[],
        headers: None,
        client_cert: None,
    };
    let key = cache.key(&parts);
    let header = pingora::http::ResponseHeader::build(200, None).unwrap();
    assert!(cache.put(
        key,
        header,
        bytes::Bytes::from_static(b"{}"),
        std::time::Duration::from_secs(60),
        Default::default()
    ));
    let now = std::time::Instant::now();
    let n = allocations(|| {
        let k = cache.key(&parts);
        assert!(cache.get(k, now).is_some());
    });
    assert_eq!(n, 0, "computing the key and finding a live entry allocate nothing");
}

#[test]
fn the_edge_credential_check_does_not_allocate() {
    use scimitar::edgeauth::{Credential, Reason, RouteAuth};
    let credentials = (0..50)
        .map(|i| Credential {
            name: format!("idp-{i}"),
            sha256: scimitar::token::digest(format!("token-{i}").as_bytes()),
            tenant: (i == 7).then(|| "acme".to_string()),
        })
        .collect();
    let auth = RouteAuth::new("scim".into(), credentials).unwrap();
    let with = |v: &'static str| {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static(v));
        h
    };
    let (ok, bound, wrong, none) = (
        with("Bearer token-42"),
        with("Bearer token-7"),
        with("Bearer token-x"),
        http::HeaderMap::new(),
    );
    let n = allocations(|| {
        assert_eq!(auth.check(&ok, Some(b"globex")), Ok(42));
        assert_eq!(auth.check(&bound, Some(b"acme")), Ok(7));
        assert_eq!(auth.check(&bound, Some(b"globex")), Err(Reason::Tenant));
        assert_eq!(auth.check(&wrong, None), Err(Reason::Invalid));
        assert_eq!(auth.check(&none, None), Err(Reason::Missing));
        std::hint::black_box(auth.refusal(Reason::Invalid));
    });
    assert_eq!(n, 0);
}

#[test]
fn finding_the_real_client_ip_does_not_allocate() {
    use scimitar::clientip::{configure, real_client_ip, Cidr};
    let peer: std::net::IpAddr = "10.0.0.1".parse().unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-real-ip", http::HeaderValue::from_static("198.51.100.7"));
    configure(
        vec![Cidr::parse("10.0.0.0/8").unwrap()],
        http::HeaderName::from_static("x-real-ip"),
    );
    real_client_ip(peer, &headers); // the thread's first load registers it with the ArcSwap
    let n = allocations(|| {
        assert_eq!(
            real_client_ip(peer, &headers),
            "198.51.100.7".parse::<std::net::IpAddr>().unwrap()
        );
    });
    assert_eq!(n, 0);
}

#[test]
fn header_rules_of_fixed_values_and_lone_variables_do_not_allocate() {
    use scimitar::header_rules::{Fields, RuleSet, Template, Vars};
    let t = |s: &str| Template::parse(s).unwrap();
    let n = http::HeaderName::from_static;
    let rules = RuleSet {
        remove: vec![n("server"), n("x-powered-by")],
        set: vec![
            (n("strict-transport-security"), t("max-age=63072000")),
            (n("x-request-host"), t("$host")),
            (n("x-trace"), t("$request_id")),
            (n("x-proto"), t("$scheme")),
        ],
        add: vec![(n("x-frame-options"), t("DENY"))],
    };
    let mut req = pingora::http::RequestHeader::build("GET", b"/scim/v2/Users", None).unwrap();
    // As Pingora's parser leaves request values: views of one shared buffer (a clone counts a
    // reference).
    req.insert_header("Host", http::HeaderValue::from_static("scim.example"))
        .unwrap();
    let id = http::HeaderValue::from_static("abc");
    let vars = Vars {
        req: &req,
        peer: None,
        tls: true,
        request_id: Some(&id),
        tenant: None,
    };
    let mut headers = http::HeaderMap::with_capacity(32);
    headers.insert(n("server"), http::HeaderValue::from_static("up"));
    let n = allocations(|| {
        rules.apply(&mut headers, &vars).unwrap();
        headers.remove_field(&http::header::CONTENT_TYPE);
    });
    assert_eq!(
        n, 0,
        "literal values are ready at load; lone variables reuse the request's"
    );
    assert_eq!(headers["x-request-host"], "scim.example");
    assert!(!headers.contains_key("server"));
}
