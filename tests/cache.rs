//! The response cache, end to end: per-credential keys, what is never cached, invalidation by
//! writes through the proxy, write-through seeding and conditional GETs — against a real
//! scim2-server where SCIM behaviour matters, and an echoing upstream where counting does.

mod common;

use std::time::Duration;

use common::*;

fn cached_proxy(servers: &[std::net::SocketAddr], base: &str, cache: &str) -> Proxy {
    Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: {base}\n    upstream: scim\n    cache: {cache}\n",
        pool_yaml("scim", servers, "")
    ))
}

#[test]
fn reads_are_cached_per_credential_and_lists_never() {
    let up = TestUpstream::start("echo", Behavior::Echo);
    let px = cached_proxy(&[up.addr], "/scim/v2", "{discovery: 5m, resources: 30s}");
    let get = |path: &str, auth: &str| px.send("GET", path, &[("authorization", auth)], None);

    let first = get("/scim/v2/ServiceProviderConfig", "Bearer tenant-a");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-cache"), None);
    let again = get("/scim/v2/ServiceProviderConfig", "Bearer tenant-a");
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.body, first.body, "the stored answer, byte for byte");
    assert_ne!(
        again.header("x-request-id"),
        first.header("x-request-id"),
        "each answer has its own id"
    );
    assert_eq!(up.hits(), 1);

    // Another credential never sees tenant A's answer: the echo shows whose request it was.
    let other = get("/scim/v2/ServiceProviderConfig", "Bearer tenant-b");
    assert_eq!(other.header("x-cache"), None);
    assert!(
        other.text().contains("tenant-b") && !other.text().contains("tenant-a"),
        "{}",
        other.text()
    );
    assert_eq!(up.hits(), 2);

    // Resources by id are cached; filters and lists never are.
    for _ in 0..2 {
        get("/scim/v2/Users/u1", "Bearer tenant-a");
        get("/scim/v2/Users?filter=userName%20eq%20%22x%22", "Bearer tenant-a");
        get("/scim/v2/Users", "Bearer tenant-a");
    }
    assert_eq!(up.hits(), 2 + 1 + 2 + 2);

    // A resource read without a credential is never cached: the key could not tell clients apart.
    for _ in 0..2 {
        px.get("/scim/v2/Users/u1");
    }
    assert_eq!(up.hits(), 9);

    // A client that asks for a fresh answer gets one (and refreshes the entry).
    let fresh = px.send(
        "GET",
        "/scim/v2/Users/u1",
        &[("authorization", "Bearer tenant-a"), ("cache-control", "no-cache")],
        None,
    );
    assert_eq!(fresh.header("x-cache"), None);
    assert_eq!(up.hits(), 10);

    let s = px.status()["cache"].clone();
    assert_eq!(s["hits"], 2, "{s}");
    assert!(s["stores"].as_u64() >= Some(4), "{s}");
}

#[test]
fn writes_through_the_proxy_are_read_back_at_once() {
    let scim = ScimServer::start();
    let px = cached_proxy(
        &[scim.addr],
        "/v2",
        "{discovery: 5m, resources: 30s, write_through: true, ignore_cache_control: true}",
    );
    let json = [
        ("content-type", "application/scim+json"),
        ("authorization", "Bearer idp"),
    ];
    let auth = [("authorization", "Bearer idp")];

    let created = px.send(
        "POST",
        "/v2/Users",
        &json,
        Some(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bjensen"}"#),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().expect("id").to_string();
    let user = format!("/v2/Users/{id}");

    // The create's answer seeded the entry the IdP's next GET reads.
    let read = px.send("GET", &user, &auth, None);
    assert_eq!(read.status, 200);
    assert_eq!(read.header("x-cache"), Some("HIT"));
    assert_eq!(read.json()["userName"], "bjensen");
    assert_eq!(read.header("location"), None, "a GET answer, not a 201");

    // Conditional GET: the stored ETag answers 304 without the upstream.
    let etag = read.header("etag").expect("scim2-server sends ETags").to_string();
    let nm = px.send("GET", &user, &[auth[0], ("if-none-match", &etag)], None);
    assert_eq!(nm.status, 304);
    assert!(nm.body.is_empty());

    // A PATCH (scim2-server answers 204, nothing to seed) makes the next read go upstream.
    let patch = px.send(
        "PATCH",
        &user,
        &json,
        Some(r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Babs"}]}"#),
    );
    assert!(patch.status == 200 || patch.status == 204, "{}", patch.text());
    let read = px.send("GET", &user, &auth, None);
    assert_eq!(read.header("x-cache"), None, "a write invalidates the entry");
    assert_eq!(read.json()["displayName"], "Babs", "read-your-writes");
    assert_eq!(px.send("GET", &user, &auth, None).header("x-cache"), Some("HIT"));

    // A Group write can change the user's `groups`: the user's entry goes too.
    let group = px.send(
        "POST",
        "/v2/Groups",
        &json,
        Some(&format!(
            r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"eng","members":[{{"value":"{id}"}}]}}"#
        )),
    );
    assert_eq!(group.status, 201, "{}", group.text());
    assert_eq!(px.send("GET", &user, &auth, None).header("x-cache"), None);

    // PUT answers 200 with the resource: it seeds the entry with the new representation.
    let put = px.send(
        "PUT",
        &user,
        &json,
        Some(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bjensen","displayName":"Barbara"}"#),
    );
    assert_eq!(put.status, 200, "{}", put.text());
    let read = px.send("GET", &user, &auth, None);
    assert_eq!(read.header("x-cache"), Some("HIT"));
    assert_eq!(read.json()["displayName"], "Barbara");

    // After a DELETE the user is gone, not served from the cache.
    assert_eq!(px.send("DELETE", &user, &auth, None).status, 204);
    let gone = px.send("GET", &user, &auth, None);
    assert_eq!(gone.status, 404);
    assert_eq!(gone.header("x-cache"), None);

    let s = px.status()["cache"].clone();
    assert!(s["seeded_by_writes"].as_u64() >= Some(2), "{s}");
}

#[test]
fn entries_expire_and_upstream_no_cache_is_honoured_by_default() {
    let scim = ScimServer::start();
    // scim2-server sends `Cache-Control: no-cache` on every answer: honoured unless overridden.
    let honour = cached_proxy(&[scim.addr], "/v2", "{discovery: 5m}");
    let ignore = cached_proxy(&[scim.addr], "/v2", "{discovery: 1s, ignore_cache_control: true}");
    for _ in 0..2 {
        assert_eq!(honour.get("/v2/ServiceProviderConfig").header("x-cache"), None);
    }
    ignore.get("/v2/ServiceProviderConfig");
    assert_eq!(ignore.get("/v2/ServiceProviderConfig").header("x-cache"), Some("HIT"));
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        ignore.get("/v2/ServiceProviderConfig").header("x-cache"),
        None,
        "expired"
    );
}

#[test]
fn key_headers_separate_clients_that_do_not_use_authorization() {
    let up = TestUpstream::start("echo", Behavior::Echo);
    let px = cached_proxy(&[up.addr], "/scim/v2", "{resources: 30s, key_headers: [X-API-Key]}");
    let get = |key: &str| px.send("GET", "/scim/v2/Users/u1", &[("x-api-key", key)], None);
    assert_eq!(get("key-a").header("x-cache"), None);
    assert_eq!(get("key-a").header("x-cache"), Some("HIT"));
    let b = get("key-b");
    assert_eq!(b.header("x-cache"), None, "another key, another entry");
    assert!(
        b.text().contains("key-b") && !b.text().contains("key-a"),
        "{}",
        b.text()
    );
    assert_eq!(up.hits(), 2);
}
