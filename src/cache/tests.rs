use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use pingora::http::ResponseHeader;

use super::rules::*;
use super::*;
use crate::routing::{BasePath, Route, Router};
use crate::scim::{Method, ScimView};

fn view(method: Method, path: &str) -> ScimView {
    let r = Router::new(vec![Route::new("r", BasePath::parse("/v2").expect("base"), 0)]);
    r.find(method, path).expect("route").view
}

fn all_on() -> RouteCache {
    RouteCache {
        discovery: Some(Duration::from_secs(300)),
        resources: Some(Duration::from_secs(30)),
        write_through: true,
        ignore_cache_control: false,
        key_headers: Vec::new(),
    }
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn only_discovery_and_resources_by_id_are_cacheable() {
    let c = all_on();
    let cases = [
        (Method::Get, "/v2/ServiceProviderConfig", Some(Kind::Discovery)),
        (
            Method::Get,
            "/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
            Some(Kind::Discovery),
        ),
        (Method::Get, "/v2/ResourceTypes", Some(Kind::Discovery)),
        (Method::Get, "/v2/Users/abc", Some(Kind::Resource(USERS))),
        (Method::Get, "/v2/Groups/g1", Some(Kind::Resource(GROUPS))),
        // Lists and filters: a stale empty result makes an IdP create a duplicate.
        (Method::Get, "/v2/Users", None),
        (Method::Post, "/v2/Users/.search", None),
        (Method::Head, "/v2/Users/abc", None),
        (Method::Get, "/v2/Me", None),
        (Method::Get, "/v2/Devices/d1", None),
        (Method::Patch, "/v2/Users/abc", None),
    ];
    for (m, p, want) in cases {
        assert_eq!(lookup(m, &view(m, p), &c).map(|x| x.0), want, "{m:?} {p}");
    }
    let discovery_only = RouteCache {
        discovery: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    assert_eq!(
        lookup(Method::Get, &view(Method::Get, "/v2/Users/abc"), &discovery_only),
        None
    );
}

#[test]
fn writes_invalidate_what_they_can_change() {
    let inv = |m, p| invalidates(m, &view(m, p)).iter().collect::<Vec<_>>();
    assert_eq!(inv(Method::Get, "/v2/Users/a"), vec![]);
    assert_eq!(inv(Method::Post, "/v2/.search"), vec![]);
    assert_eq!(inv(Method::Post, "/v2/Users"), vec![Scope::Family(USERS)]);
    assert_eq!(
        inv(Method::Patch, "/v2/Users/a"),
        vec![Scope::Resource(USERS), Scope::Family(USERS)]
    );
    assert_eq!(
        inv(Method::Delete, "/v2/Groups/g"),
        vec![Scope::Resource(GROUPS), Scope::Family(GROUPS)]
    );
    assert_eq!(inv(Method::Post, "/v2/Bulk"), vec![Scope::Tenant]);
    assert_eq!(inv(Method::Patch, "/v2/Me"), vec![Scope::Tenant]);
    assert_eq!(inv(Method::Delete, "/v2/Users"), vec![Scope::Tenant]);
    // A User's `groups` is computed from Group writes: the entry depends on that family.
    assert_eq!(
        depends_on(Kind::Resource(USERS)).iter().collect::<Vec<_>>(),
        vec![Scope::Resource(USERS), Scope::Family(GROUPS), Scope::Tenant]
    );
}

#[test]
fn request_directives() {
    let p = |h: &[(&'static str, &'static str)]| {
        let r = request_policy(&headers(h));
        (r.lookup, r.store)
    };
    assert_eq!(p(&[]), (true, true));
    assert_eq!(p(&[("cache-control", "no-cache")]), (false, true));
    assert_eq!(p(&[("cache-control", "max-age=0")]), (false, true));
    assert_eq!(p(&[("pragma", "no-cache")]), (false, true));
    assert_eq!(p(&[("cache-control", "No-Store")]), (false, false));
    assert_eq!(p(&[("cookie", "s=1")]), (false, false));
}

#[test]
fn response_directives_shorten_or_forbid() {
    let t = Duration::from_secs(30);
    let ttl = |h: &[(&'static str, &'static str)]| response_ttl(&headers(h), t, false);
    assert_eq!(ttl(&[]), Some(t));
    assert_eq!(
        ttl(&[("cache-control", "private, max-age=5")]),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        ttl(&[("cache-control", "s-maxage=\"3\"")]),
        Some(Duration::from_secs(3))
    );
    assert_eq!(ttl(&[("cache-control", "max-age=0")]), None);
    assert_eq!(ttl(&[("cache-control", "no-store")]), None);
    assert_eq!(ttl(&[("cache-control", "public"), ("cache-control", "no-cache")]), None);
    assert_eq!(ttl(&[("set-cookie", "a=b")]), None);
    assert_eq!(ttl(&[("vary", "Accept-Encoding, Authorization")]), Some(t));
    assert_eq!(ttl(&[("vary", "Accept-Language")]), None);
    assert_eq!(ttl(&[("vary", "*")]), None);
    // An operator may override a server that sends `no-cache` on everything, but never a cookie.
    let ignoring = |h: &[(&'static str, &'static str)]| response_ttl(&headers(h), t, true);
    assert_eq!(ignoring(&[("cache-control", "no-cache")]), Some(t));
    assert_eq!(ignoring(&[("cache-control", "max-age=1")]), Some(t));
    assert_eq!(ignoring(&[("set-cookie", "a=b")]), None);
    assert_eq!(ignoring(&[("vary", "Cookie")]), None);
}

#[test]
fn etags_compare_weakly() {
    assert!(etag_matches(b"W/\"3\"", b"W/\"3\""));
    assert!(etag_matches(b"\"1\", W/\"3\"", b"\"3\""));
    assert!(etag_matches(b"*", b"\"x\""));
    assert!(!etag_matches(b"\"4\"", b"W/\"3\""));
}

#[test]
fn created_path_must_be_a_child_of_the_collection() {
    let c = "/v2/Users";
    assert_eq!(created_path("http://h:1/v2/Users/ab-1", c), Some("/v2/Users/ab-1"));
    assert_eq!(created_path("/v2/Users/ab-1?x=1", c), Some("/v2/Users/ab-1"));
    assert_eq!(created_path("http://h/v2/Groups/ab-1", c), None);
    assert_eq!(created_path("http://h/v2/Users/", c), None);
    assert_eq!(created_path("http://h/v2/Users/a/b", c), None);
    assert_eq!(created_path("http://h", c), None);
}

fn cache() -> Cache {
    Cache::new(CacheConfig::default(), (1, 2))
}

fn parts<'a>(auth: &'a [u8], path: &'a str) -> KeyParts<'a> {
    KeyParts {
        route: 0,
        authorization: Some(auth),
        host: Some(b"scim.example"),
        tenant_header: None,
        path,
        query: None,
        accept: None,
        accept_encoding: None,
        key_headers: &[],
        headers: None,
        client_cert: None,
    }
}

fn answer() -> ResponseHeader {
    let mut h = ResponseHeader::build(200, None).expect("header");
    h.insert_header("content-type", "application/scim+json").expect("ct");
    h.insert_header("connection", "close").expect("conn");
    h.insert_header("x-request-id", "upstream-id").expect("id");
    h
}

#[test]
fn keys_separate_credentials_and_parts() {
    let c = cache();
    let a = c.key(&parts(b"Bearer a", "/v2/Users/1"));
    assert_ne!(a, c.key(&parts(b"Bearer b", "/v2/Users/1")));
    assert_ne!(a, c.key(&parts(b"Bearer a", "/v2/Users/2")));
    // Length prefixes: moving bytes between parts changes the key.
    let mut x = parts(b"Bearer a", "/v2/Users/1");
    x.query = Some("");
    assert_ne!(a, c.key(&x));
    assert_eq!(a, c.key(&parts(b"Bearer a", "/v2/Users/1")));
    // Another secret, other keys.
    assert_ne!(
        a,
        Cache::new(CacheConfig::default(), (3, 4)).key(&parts(b"Bearer a", "/v2/Users/1"))
    );
}

#[test]
fn a_write_kills_entries_that_depend_on_it() {
    let c = cache();
    let key = c.key(&parts(b"t", "/v2/Users/1"));
    let (slots, n) = c.slots(b"acme", depends_on(Kind::Resource(USERS)), b"1");
    let deps = c.snapshot(slots, n);
    assert!(c.put(key, answer(), Bytes::from_static(b"{}"), Duration::from_secs(30), deps));
    let e = c.get(key, Instant::now()).expect("hit");
    assert_eq!(
        e.header.headers.get("content-length").map(|v| v.as_bytes()),
        Some(&b"2"[..])
    );
    assert!(e.header.headers.get("connection").is_none() && e.header.headers.get("x-request-id").is_none());

    // Another tenant's write to the same id, or a write to another user, leaves it alone.
    let other = invalidates(Method::Patch, &view(Method::Patch, "/v2/Users/1"));
    let (s, n2) = c.slots(b"other-tenant", other, b"1");
    c.bump(s, n2);
    let (s, n2) = c.slots(b"acme", other, b"2");
    c.bump(s, n2);
    assert!(c.get(key, Instant::now()).is_some());
    // A PATCH of the user (any case of its id) does not.
    let (s, n2) = c.slots(b"acme", other, b"1");
    c.bump(s, n2);
    assert!(c.get(key, Instant::now()).is_none());

    // Nor does a Group write, since the user's `groups` may have changed.
    let deps = c.snapshot(slots, n);
    assert!(c.put(key, answer(), Bytes::from_static(b"{}"), Duration::from_secs(30), deps));
    let g = invalidates(Method::Patch, &view(Method::Patch, "/v2/Groups/g"));
    let (s, n2) = c.slots(b"acme", g, b"g");
    c.bump(s, n2);
    assert!(c.get(key, Instant::now()).is_none());
}

#[test]
fn a_fill_that_raced_a_write_is_not_stored() {
    let c = cache();
    let key = c.key(&parts(b"t", "/v2/Users/1"));
    let (slots, n) = c.slots(b"", depends_on(Kind::Resource(USERS)), b"1");
    let deps = c.snapshot(slots, n);
    c.bump(slots, 1); // a write to user 1 started after the read
    assert!(!c.put(key, answer(), Bytes::from_static(b"{}"), Duration::from_secs(30), deps));
    assert!(c.get(key, Instant::now()).is_none());
}

#[test]
fn compare_and_bump_detects_a_concurrent_write() {
    let c = cache();
    let s = c.slot(b"", Scope::Resource(USERS), b"1");
    let seen = c.bump([s, 0, 0], 1);
    assert!(c.bump_if_unchanged(s, seen));
    let seen = c.bump([s, 0, 0], 1);
    c.bump([s, 0, 0], 1); // another write
    assert!(!c.bump_if_unchanged(s, seen));
}

#[test]
fn entries_expire_and_oversized_answers_are_not_kept() {
    let c = Cache::new(
        CacheConfig {
            max_size: 1 << 20,
            max_entry: 8,
        },
        (1, 2),
    );
    let key = c.key(&parts(b"t", "/v2/ServiceProviderConfig"));
    assert!(!c.put(
        key,
        answer(),
        Bytes::from_static(b"123456789"),
        Duration::from_secs(5),
        Deps::default()
    ));
    assert!(c.put(
        key,
        answer(),
        Bytes::from_static(b"{}"),
        Duration::from_millis(1),
        Deps::default()
    ));
    assert!(c.get(key, Instant::now() + Duration::from_millis(5)).is_none());
}

/// Stores `h` with a `{}` body under `path` and reads it back.
fn store_and_hit(c: &Cache, path: &str, h: ResponseHeader) -> std::sync::Arc<Entry> {
    let key = c.key(&parts(b"t", path));
    assert!(c.put(
        key,
        h,
        Bytes::from_static(b"{}"),
        Duration::from_secs(5),
        Deps::default()
    ));
    c.get(key, Instant::now()).expect("hit")
}

#[test]
fn created_answers_are_stored_as_gets() {
    let c = cache();
    let mut h = ResponseHeader::build(201, None).expect("header");
    h.insert_header("location", "http://h/v2/Users/1").expect("loc");
    let e = store_and_hit(&c, "/v2/Users/1", h);
    assert_eq!(e.header.status.as_u16(), 200);
    assert!(e.header.headers.get("location").is_none());
}

#[test]
fn every_spelling_of_a_resource_shares_its_counter() {
    let c = cache();
    let s = |tenant: &[u8], id: &[u8]| c.slot(tenant, Scope::Resource(USERS), id);
    assert_eq!(s(b"acme", b"a-b"), s(b"Acme", b"A%2Db"));
    assert_eq!(s(b"acme", b"a-b"), s(b"%61cme", b"a%2db"));
    assert_ne!(s(b"acme", b"a-b"), s(b"acme", b"a-c"));
    // A stray `%` is a byte like any other.
    assert_eq!(s(b"t", b"50%"), s(b"T", b"50%"));
}

#[test]
fn key_headers_are_credentials_too() {
    let c = cache();
    let names = [http::HeaderName::from_static("x-api-key")];
    let mut h1 = HeaderMap::new();
    h1.insert("x-api-key", HeaderValue::from_static("k1"));
    let mut h2 = HeaderMap::new();
    h2.insert("x-api-key", HeaderValue::from_static("k2"));
    let with = |h: &'static HeaderMap| KeyParts {
        authorization: None,
        key_headers: &names,
        headers: Some(h),
        ..parts(b"", "/v2/Users/1")
    };
    let (h1, h2): (&'static HeaderMap, &'static HeaderMap) = (Box::leak(Box::new(h1)), Box::leak(Box::new(h2)));
    assert!(with(h1).has_credential());
    assert_ne!(c.key(&with(h1)), c.key(&with(h2)));
    let none = KeyParts {
        authorization: None,
        ..parts(b"", "/v2/Users/1")
    };
    assert!(!none.has_credential(), "no credential: resources are not cached");
    // A verified client certificate is a credential of its own, and keys apart.
    let cert = |fp: &'static [u8]| KeyParts {
        client_cert: Some(fp),
        ..none
    };
    assert!(cert(b"fp-a").has_credential());
    assert_ne!(c.key(&cert(b"fp-a")), c.key(&cert(b"fp-b")));
}

#[test]
fn only_resource_bodies_seed() {
    let user = br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"1"}"#;
    assert!(looks_like_resource(user));
    assert!(looks_like_resource(&[b"  \n".as_slice(), user].concat()));
    assert!(!looks_like_resource(b""));
    assert!(!looks_like_resource(
        br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[]}"#
    ));
    assert!(!looks_like_resource(
        br#"["urn:ietf:params:scim:schemas:core:2.0:User"]"#
    ));
}

#[test]
fn hop_by_hop_headers_named_in_connection_are_not_stored() {
    let c = cache();
    let mut h = answer();
    h.insert_header("x-trace-hop", "1").expect("h");
    h.insert_header("connection", "keep-alive, X-Trace-Hop").expect("conn");
    let e = store_and_hit(&c, "/v2/Schemas", h);
    assert!(e.header.headers.get("x-trace-hop").is_none());
    assert!(e.header.headers.get("content-type").is_some());
}
