//! scimitar: a SCIM-aware edge proxy and load balancer on Pingora.
//!
//! It sits in front of a pool of SCIM 2.0 servers (RFC 7643/7644), classifies every request
//! by tenant, endpoint and operation, routes it to an upstream pool, and never replays a
//! request that could create a duplicate user.
//!
//! # Layout
//! - [`config`]: the YAML file → validated runtime model (`-t` lists every problem).
//! - [`scim`]: protocol knowledge — path normalisation, classification, SCIM error bodies.
//! - [`routing`]: base-path templates and first-match routes → pool; a route's upstream
//!   base path and the answers a route makes itself (`return`).
//! - [`header_rules`]: per-route request and response header rules, compiled at load.
//! - [`upstream`]: pools, selection (round robin / Ketama), active and passive health.
//! - [`keys`]: request keys (tenant, token, client IP, header, id, class) → keyed hashes.
//! - [`affinity`]: read-your-writes pinning on top of consistent hashing.
//! - [`token`]: bearer tokens known by their SHA-256 (digest, constant-time compare, `Bearer`).
//! - [`edgeauth`]: a route's edge credential check (`auth`: bearer tokens accepted per route
//!   or per tenant), before limits, cache and upstream.
//! - [`ratelimit`]: GCRA policies, local (`governor`) or shared on Redis with local fallback.
//! - [`cache`]: per-credential response cache for discovery and resource reads, invalidated
//!   by writes.
//! - [`overload`]: per-pool in-flight cap, bounded queue, tenant fairness.
//! - [`runtime`]: the reloadable snapshot (routes, pools, policies, cache) behind an `ArcSwap`;
//!   each request keeps the one it started with.
//! - [`proxy`]: the thin Pingora `ProxyHttp` glue and its pure policies (retries, errors);
//!   one glue file per concern (cache, limits, per-server slots, header writes).
//! - [`inbound`]: each HTTP listener's client side — connection cap, whole-head deadline,
//!   keep-alive idling, hostile heads refused in SCIM before Pingora parses them.
//! - [`tls`]: the TLS edge — certificates by SNI, mTLS identity, rotation, upstream TLS.
//! - [`h2c`]: prior-knowledge HTTP/2 on plaintext listeners, without Pingora's preface stall.
//! - [`l4`]: `protocol: tcp` listeners — raw TCP (or terminated TLS) forwarded to a pool.
//! - [`metrics`]: Prometheus series (`/metrics`) and the status page's traffic totals.
//! - [`accesslog`]: the JSON access log (bounded queue, writer thread, SIGUSR1 reopen);
//!   [`clientip`] finds the client behind `trusted_proxies` (keys, logs, header rules).
//! - [`admin`]: the admin listener — probes, the live status page and its JSON, the
//!   effective config (secrets masked), an optional bearer token.
//! - [`reload`]: SIGHUP / `POST /reload` — validate, build the next runtime, swap or refuse.
//! - [`shutdown`]: every signal, the drain on SIGTERM, and an exit that cannot hang.
//! - [`nginx`]: an nginx configuration read into a syntax tree (includes expanded, each
//!   directive with its file and line); `nginx::translate` turns it into scimitar YAML plus a
//!   report of what was not carried over, `nginx::import` is `scimitar import nginx`.
//! - [`app`]: wires services together and boots Pingora; `main.rs` is the CLI.
#![forbid(unsafe_code)]

pub mod accesslog;
pub mod admin;
pub mod affinity;
pub mod app;
pub mod cache;
pub mod clientip;
pub mod config;
pub mod edgeauth;
pub mod h2c;
pub mod header_rules;
pub mod inbound;
pub mod keys;
pub mod l4;
pub mod metrics;
pub mod nginx;
pub mod overload;
pub mod proxy;
pub mod ratelimit;
pub mod reload;
pub mod routing;
pub mod runtime;
pub mod scim;
pub mod shutdown;
pub mod text;
pub mod timefmt;
pub mod tls;
pub mod token;
pub mod upstream;
