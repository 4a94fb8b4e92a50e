//! Cache glue: answer hits, remember what a miss or a write needs, capture the upstream's
//! answer, and store or invalidate when the exchange ends. The rules live in
//! [`crate::cache::rules`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::{path, Ctx, Scimitar};
use crate::cache::{rules, Cache, Deps, Entry, KeyParts, Kind, Scope};
use crate::config::Tenancy;
use crate::routing::{Route, RouteMatch};
use crate::scim::{Method, Operation};

/// What one request means to the cache (boxed in [`Ctx`]; only cache-relevant requests have it).
#[derive(Default)]
pub struct CacheState {
    fill: Option<Fill>,
    write: Option<Write>,
    /// The upstream's answer header when it may be kept, and its TTL.
    answer: Option<(ResponseHeader, Duration)>,
    chunks: Vec<Bytes>,
    size: usize,
    complete: bool,
    pub hit: bool,
}

struct Fill {
    key: u128,
    ttl: Duration,
    ignore_cc: bool,
    deps: Deps,
}

struct Write {
    slots: [u32; 3],
    n: u8,
    /// The first slot's value after this write's start bump.
    seen: u64,
    /// A create, replace or patch of a User or Group that may seed the cache.
    seed: Option<u8>,
}

impl Scimitar {
    fn cache_tenant<'a>(&self, session: &'a Session, ctx: &'a Ctx) -> &'a [u8] {
        self.tenant(session, ctx).unwrap_or(b"")
    }

    fn key_parts<'a>(&self, session: &'a Session, route: usize, path: &'a str, query: Option<&'a str>) -> KeyParts<'a> {
        let h = &session.req_header().headers;
        let get = |n: header::HeaderName| h.get(n).map(|v| v.as_bytes());
        KeyParts {
            route,
            authorization: get(header::AUTHORIZATION),
            host: get(header::HOST),
            tenant_header: match &self.tenancy {
                Tenancy::Header(name) => h.get(name.as_str()).map(|v| v.as_bytes()),
                _ => None,
            },
            path,
            query,
            accept: get(header::ACCEPT),
            accept_encoding: get(header::ACCEPT_ENCODING),
        }
    }

    /// Invalidates for a write, or answers a read from the cache. `Ok(true)`: answered.
    pub(super) async fn cache_request(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        cache: &Cache,
        m: &RouteMatch,
        route: &Route,
        method: Method,
    ) -> Result<bool> {
        let scopes = rules::invalidates(method, &m.view);
        if !scopes.is_empty() {
            let p = path(session, ctx);
            let id = m.view.id.map_or("", |s| s.of(p));
            let (slots, n) = cache.slots(self.cache_tenant(session, ctx), scopes, id.as_bytes());
            let seen = cache.bump(slots, n);
            let seed = match (m.view.op, scopes.iter().next(), session.req_header().uri.query()) {
                (Operation::Create, Some(Scope::Family(t)), None) => Some(t),
                (Operation::Replace | Operation::Patch, Some(Scope::Resource(t)), None) => Some(t),
                _ => None,
            };
            ctx.cache = Some(Box::new(CacheState {
                write: Some(Write { slots, n, seen, seed }),
                ..Default::default()
            }));
            return Ok(false);
        }
        let Some(rc) = route.cache.as_ref() else {
            return Ok(false);
        };
        let Some((kind, ttl)) = rules::lookup(method, &m.view, rc) else {
            return Ok(false);
        };
        let policy = rules::request_policy(&session.req_header().headers);
        if !policy.store {
            return Ok(false);
        }
        let key = {
            let p = path(session, ctx);
            cache.key(&self.key_parts(session, m.route, p, session.req_header().uri.query()))
        };
        if policy.lookup {
            if let Some(e) = cache.get(key, Instant::now()) {
                ctx.cache = Some(Box::new(CacheState {
                    hit: true,
                    ..Default::default()
                }));
                serve(session, ctx, &e).await?;
                return Ok(true);
            }
        }
        let deps = self.deps(session, ctx, cache, kind, m);
        ctx.cache = Some(Box::new(CacheState {
            fill: Some(Fill {
                key,
                ttl,
                ignore_cc: rc.ignore_cache_control,
                deps,
            }),
            ..Default::default()
        }));
        Ok(false)
    }

    fn deps(&self, session: &Session, ctx: &Ctx, cache: &Cache, kind: Kind, m: &RouteMatch) -> Deps {
        let id = m.view.id.map_or("", |s| s.of(path(session, ctx)));
        let (slots, n) = cache.slots(self.cache_tenant(session, ctx), rules::depends_on(kind), id.as_bytes());
        cache.snapshot(slots, n)
    }

    /// Keeps the upstream's answer header when the answer may be stored.
    pub(super) fn cache_answer(&self, ctx: &mut Ctx, resp: &ResponseHeader, session: &Session) {
        let Some(st) = ctx.cache.as_deref() else { return };
        let status = resp.status.as_u16();
        let ttl = if let Some(f) = &st.fill {
            (status == 200).then_some((f.ttl, f.ignore_cc))
        } else if let Some(w) = &st.write {
            let wanted = match ctx.route.map(|m| m.view.op) {
                Some(Operation::Create) => 201,
                _ => 200,
            };
            // The route a later GET of the resource takes decides whether it is seeded.
            w.seed
                .filter(|_| status == wanted)
                .and_then(|_| self.seed_route(session, ctx, resp))
                .and_then(|(_, c)| {
                    c.resources
                        .filter(|_| c.write_through)
                        .map(|t| (t, c.ignore_cache_control))
                })
        } else {
            None
        };
        let answer = ttl
            .and_then(|(t, ignore)| rules::response_ttl(&resp.headers, t, ignore))
            .map(|t| (resp.clone(), t));
        if let Some(st) = ctx.cache.as_deref_mut() {
            st.answer = answer;
        }
    }

    /// Collects the body of an answer being kept, up to the entry size limit.
    pub(super) fn cache_body(&self, ctx: &mut Ctx, body: &Option<Bytes>, end: bool) {
        let Some(st) = ctx.cache.as_deref_mut() else { return };
        if st.answer.is_none() {
            return;
        }
        if let Some(b) = body {
            st.size += b.len();
            let max = self.cache.as_ref().map_or(0, |c| c.config.max_entry as usize);
            if st.size > max {
                st.answer = None;
                st.chunks = Vec::new();
                return;
            }
            st.chunks.push(b.clone());
        }
        st.complete |= end;
    }

    /// The path and route of the resource a write answered about, for seeding.
    fn seed_route<'a>(
        &'a self,
        session: &'a Session,
        ctx: &'a Ctx,
        resp: &'a ResponseHeader,
    ) -> Option<(&'a str, &'a rules::RouteCache)> {
        let p = path(session, ctx);
        let target = match ctx.route.map(|m| m.view.op) {
            Some(Operation::Create) => {
                let loc = resp.headers.get(header::LOCATION)?.to_str().ok()?;
                rules::created_path(loc, p)?
            }
            _ => p,
        };
        let m = self.router.find(Method::Get, target).ok()?;
        let c = self.router.routes.get(m.route)?.cache.as_ref()?;
        Some((target, c))
    }

    /// End of the exchange: the closing bump of a write, then any store.
    pub(super) fn cache_finish(&self, session: &Session, ctx: &mut Ctx, failed: bool) {
        let (Some(cache), Some(mut st)) = (self.cache.as_deref(), ctx.cache.take()) else {
            return;
        };
        if st.hit {
            return;
        }
        let body = if st.complete && !failed && st.answer.is_some() {
            Some(concat(std::mem::take(&mut st.chunks)))
        } else {
            None
        };
        if let Some(w) = &st.write {
            let may_seed = w.seed.is_some() && body.is_some();
            let unchanged = may_seed
                && match ctx.route.map(|m| m.view.op) {
                    // The write's own resource: only if no other write touched it meanwhile.
                    Some(Operation::Replace | Operation::Patch) => cache.bump_if_unchanged(w.slots[0], w.seen),
                    _ => true,
                };
            // A successful compare-and-bump already moved the first slot; bump the others.
            let done = usize::from(unchanged && !matches!(ctx.route.map(|m| m.view.op), Some(Operation::Create)));
            let mut rest = [0u32; 3];
            for (r, s) in rest.iter_mut().zip(&w.slots[done..w.n as usize]) {
                *r = *s;
            }
            cache.bump(rest, w.n - done as u8);
            if let (true, Some(t), Some(body), Some((hdr, ttl))) = (unchanged, w.seed, body, st.answer.take()) {
                self.seed(session, ctx, cache, t, hdr, body, ttl);
            }
            return;
        }
        if let (Some(f), Some(body), Some((hdr, ttl))) = (st.fill, body, st.answer) {
            cache.put(f.key, hdr, body, ttl.min(f.ttl), f.deps);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn seed(
        &self,
        session: &Session,
        ctx: &Ctx,
        cache: &Cache,
        t: u8,
        hdr: ResponseHeader,
        body: Bytes,
        ttl: Duration,
    ) {
        let Some((target, _)) = self.seed_route(session, ctx, &hdr) else {
            return;
        };
        let Ok(m) = self.router.find(Method::Get, target) else {
            return;
        };
        let id = m.view.id.map_or("", |s| s.of(target));
        let tenant = self.cache_tenant(session, ctx);
        let (slots, n) = cache.slots(tenant, rules::depends_on(Kind::Resource(t)), id.as_bytes());
        let deps = cache.snapshot(slots, n);
        let key = cache.key(&self.key_parts(session, m.route, target, None));
        if cache.put(key, hdr, body, ttl, deps) {
            cache.stats.seeded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn concat(chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().unwrap_or_default(),
        _ => {
            let mut b = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            for c in chunks {
                b.extend_from_slice(&c);
            }
            b.freeze()
        }
    }
}

/// Answers from a stored entry (or 304 when the client's `If-None-Match` matches its ETag).
async fn serve(session: &mut Session, ctx: &Ctx, e: &Arc<Entry>) -> Result<()> {
    let req = session.req_header();
    let not_modified = match (
        req.headers.get(header::IF_NONE_MATCH),
        e.header.headers.get(header::ETAG),
    ) {
        (Some(inm), Some(tag)) => rules::etag_matches(inm.as_bytes(), tag.as_bytes()),
        _ => false,
    };
    let version = req.version;
    let mut h = if not_modified {
        let mut h = ResponseHeader::build(304, Some(6))?;
        for name in [header::ETAG, header::CACHE_CONTROL, header::VARY] {
            if let Some(v) = e.header.headers.get(&name) {
                h.insert_header(name, v.clone())?;
            }
        }
        h
    } else {
        e.header.clone()
    };
    h.set_version(version);
    h.insert_header(header::AGE, e.stored.elapsed().as_secs().to_string())?;
    h.insert_header("x-cache", "HIT")?;
    if let Some(id) = &ctx.request_id {
        h.insert_header("x-request-id", id.clone())?;
    }
    if let Some((p, l)) = &ctx.rate_headers {
        h.insert_header("ratelimit-policy", p.as_str())?;
        h.insert_header("ratelimit", l.as_str())?;
    }
    session.write_response_header(Box::new(h), not_modified).await?;
    if !not_modified {
        session.write_response_body(Some(e.body.clone()), true).await?;
    }
    Ok(())
}
