//! Micro benchmarks of the per-request work scimitar adds on top of Pingora (`make bench`):
//! classification + routing, affinity key + ring lookup, a rate-limit decision, request ids,
//! the cache key and a cache hit.
//! `tests/no_alloc.rs` checks the common paths allocate nothing; this measures ns/op.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use scimitar::config::{PoolConfig, Selection, ServerAddr};
use scimitar::keys::{Facts, KeyHasher, KeySource};
use scimitar::ratelimit::{LocalGcra, Rate};
use scimitar::scim::path::{needs_normalizing, path_only};
use scimitar::scim::{EndpointClass, Method};
use scimitar::upstream::Pool;

#[path = "../tests/fixtures/router.rs"]
mod fixtures;
use fixtures::router;

fn classify(c: &mut Criterion) {
    let r = router();
    let lines = [
        (Method::Get, "/scim/v2/Users/2819c223-7f76-453a-919d-413861904646"),
        (Method::Get, "/scim/v2/Users?filter=userName%20eq%20%22bjensen%22"),
        (Method::Patch, "/acme/scim/v2/Groups/g1"),
        (Method::Post, "/scim/v2/Users/.search"),
    ];
    c.bench_function("classify+route (4 request lines)", |b| {
        b.iter(|| {
            for (m, target) in &lines {
                let p = path_only(black_box(target));
                black_box(needs_normalizing(p));
                black_box(r.find(*m, p).ok());
            }
        })
    });
}

fn pool(selection: Selection) -> Pool {
    let servers = (0..3)
        .map(|i| ServerAddr {
            address: SocketAddr::from(([127, 0, 0, 1], 18081 + i)),
            weight: 1,
        })
        .collect();
    let cfg = PoolConfig::new("bench", servers, selection);
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(Pool::build(cfg)).expect("pool")
}

fn affinity(c: &mut Criterion) {
    let hasher = KeyHasher::new("bench");
    let headers = http::HeaderMap::new();
    let sources = [KeySource::Token, KeySource::Tenant, KeySource::ClientIp];
    let consistent = pool(Selection::Consistent);
    let rr = pool(Selection::RoundRobin);
    c.bench_function("affinity key (token) + ketama select", |b| {
        b.iter(|| {
            let facts = Facts {
                tenant: None,
                authorization: Some(black_box(b"Bearer eyJhbGciOiJIUzI1NiJ9.bench-token")),
                client_ip: None,
                headers: &headers,
                id: None,
                class: EndpointClass::UsersRead,
                client_cert: None,
            };
            let k = hasher.first_present(&sources, &facts).unwrap_or(0);
            black_box(consistent.select(&k.to_le_bytes(), 0).ok())
        })
    });
    c.bench_function("round robin select", |b| b.iter(|| black_box(rr.select(b"", 0).ok())));
}

fn limits(c: &mut Criterion) {
    let l = LocalGcra::new(Rate::parse("10000000/s").expect("rate"), 10_000_000);
    let mut k = 0u64;
    c.bench_function("rate-limit decision (local GCRA, 1k keys)", |b| {
        b.iter(|| {
            k = (k + 1) % 1000;
            black_box(l.check(black_box(k)))
        })
    });
}

fn request_id(c: &mut Criterion) {
    c.bench_function("request id", |b| {
        b.iter(|| black_box(scimitar::proxy::request_id::generate()))
    });
}

fn cache(c: &mut Criterion) {
    use scimitar::cache::{Cache, CacheConfig, KeyParts};
    let cache = Cache::new(CacheConfig::default(), KeyHasher::new("bench").derive(0xca));
    let parts = || KeyParts {
        route: 1,
        authorization: Some(b"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJva3RhLWpvYi00MiJ9.c2lnbmF0dXJl"),
        host: Some(b"scim.example.com"),
        tenant_header: None,
        path: "/scim/v2/Users/2819c223-7f76-453a-919d-413861904646",
        query: None,
        accept: Some(b"application/scim+json"),
        accept_encoding: Some(b"gzip, deflate"),
        key_headers: &[],
        headers: None,
        client_cert: None,
    };
    c.bench_function("cache key (128-bit keyed hash of 7 parts)", |b| {
        b.iter(|| black_box(cache.key(black_box(&parts()))))
    });
    let key = cache.key(&parts());
    let header = pingora::http::ResponseHeader::build(200, None).expect("header");
    let body = bytes::Bytes::from(vec![b'x'; 1024]);
    cache.put(
        key,
        header,
        body,
        std::time::Duration::from_secs(3600),
        Default::default(),
    );
    c.bench_function("cache hit lookup (1 KB entry)", |b| {
        b.iter(|| black_box(cache.get(black_box(key), std::time::Instant::now()).is_some()))
    });
}

criterion_group!(benches, classify, affinity, limits, request_id, cache);
criterion_main!(benches);
