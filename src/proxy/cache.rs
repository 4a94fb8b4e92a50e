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

use super::headers::X_CACHE;
use super::{answer_headers, path, Ctx};
use crate::cache::{rules, Cache, Deps, Entry, KeyParts, Kind, RouteCache, Scope};
use crate::config::Tenancy;
use crate::routing::{Route, RouteMatch};
use crate::runtime::Runtime;
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

impl CacheState {
    /// The access log's `cache` field before the exchange ends: a hit, a read that may fill
    /// (`miss`; `store` once stored), or a write that only invalidates (`bypass`).
    pub fn verdict(&self) -> &'static str {
        if self.hit {
            "hit"
        } else if self.fill.is_some() {
            "miss"
        } else {
            "bypass"
        }
    }
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
    /// A create, replace or patch of a User or Group that may seed the cache (the type tag).
    seed: Option<u8>,
    /// The seeded entry's dependencies, read before the upstream could answer (at the start
    /// for a replace/patch, before the answer goes downstream for a create): a write to them
    /// that lands while this one is in flight makes the seed dead on arrival.
    deps: Option<Deps>,
    /// The key of the GET the answer would be stored as (set when the answer arrives).
    seed_key: Option<u128>,
}

/// Where a write's answer would be stored: the GET route and path of the resource.
struct SeedTarget<'a> {
    path: &'a str,
    m: RouteMatch,
    cfg: &'a RouteCache,
}

impl Runtime {
    fn cache_tenant<'a>(&self, session: &'a Session, ctx: &'a Ctx) -> &'a [u8] {
        self.tenant(session, ctx).unwrap_or(b"")
    }

    fn key_parts<'a>(
        &self,
        session: &'a Session,
        route: usize,
        cfg: &'a RouteCache,
        path: &'a str,
        query: Option<&'a str>,
    ) -> KeyParts<'a> {
        let req = session.req_header();
        let h = &req.headers;
        let get = |n: header::HeaderName| h.get(n).map(|v| v.as_bytes());
        KeyParts {
            route,
            authorization: get(header::AUTHORIZATION),
            // The authority the request named (absolute-form or HTTP/2), else its Host.
            host: req
                .uri
                .authority()
                .map(|a| a.as_str().as_bytes())
                .or_else(|| get(header::HOST)),
            tenant_header: match &self.tenancy {
                Tenancy::Header(name) => h.get(name.as_str()).map(|v| v.as_bytes()),
                _ => None,
            },
            path,
            query,
            accept: get(header::ACCEPT),
            accept_encoding: get(header::ACCEPT_ENCODING),
            key_headers: &cfg.key_headers,
            headers: Some(h),
            client_cert: super::client_fingerprint(session),
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
            let tenant = self.cache_tenant(session, ctx);
            let (slots, n) = cache.slots(tenant, scopes, id.as_bytes());
            let seen = cache.bump(slots, n);
            let seed = match (m.view.op, scopes.iter().next(), session.req_header().uri.query()) {
                (Operation::Create, Some(Scope::Family(t)), None) => Some(t),
                (Operation::Replace | Operation::Patch, Some(Scope::Resource(t)), None) => Some(t),
                _ => None,
            };
            let deps = match (seed, m.view.op) {
                (Some(t), Operation::Replace | Operation::Patch) => {
                    let (s, n) = cache.slots(tenant, rules::depends_on(Kind::Resource(t)), id.as_bytes());
                    Some(cache.snapshot(s, n))
                }
                _ => None,
            };
            ctx.cache = Some(Box::new(CacheState {
                write: Some(Write {
                    slots,
                    n,
                    seen,
                    seed,
                    deps,
                    seed_key: None,
                }),
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
            let parts = self.key_parts(session, m.route, rc, p, session.req_header().uri.query());
            // A resource is only ever cached for a credential the key can tell apart.
            if matches!(kind, Kind::Resource(_)) && !parts.has_credential() {
                return Ok(false);
            }
            cache.key(&parts)
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

    /// Keeps the upstream's answer header when the answer may be stored. Runs before the
    /// header goes downstream, so a create's seed dependencies are read here.
    pub(super) fn cache_answer(&self, ctx: &mut Ctx, resp: &ResponseHeader, session: &Session) {
        let (Some(cache), Some(st)) = (self.cache.as_deref(), ctx.cache.as_deref()) else {
            return;
        };
        let status = resp.status.as_u16();
        let op = ctx.route.map(|m| m.view.op);
        // For a write that may seed: the entry's key, and (for a create) its dependencies.
        let mut seed_at = None;
        let ttl = if let Some(f) = &st.fill {
            (status == 200).then_some((f.ttl, f.ignore_cc))
        } else if let Some(w) = &st.write {
            let wanted = if op == Some(Operation::Create) { 201 } else { 200 };
            let target = w
                .seed
                .filter(|_| status == wanted && rules::is_json(&resp.headers))
                .and_then(|_| self.seed_target(session, ctx, resp));
            match (target, w.seed) {
                (Some(t), Some(tag)) if t.cfg.write_through => {
                    let deps = (op == Some(Operation::Create)).then(|| {
                        let id = t.m.view.id.map_or("", |s| s.of(t.path));
                        let (s, n) = cache.slots(
                            self.cache_tenant(session, ctx),
                            rules::depends_on(Kind::Resource(tag)),
                            id.as_bytes(),
                        );
                        cache.snapshot(s, n)
                    });
                    let key = cache.key(&self.key_parts(session, t.m.route, t.cfg, t.path, None));
                    seed_at = Some((key, deps));
                    t.cfg.resources.map(|r| (r, t.cfg.ignore_cache_control))
                }
                _ => None,
            }
        } else {
            None
        };
        let answer = ttl
            .and_then(|(t, ignore)| rules::response_ttl(&resp.headers, t, ignore))
            .map(|t| (resp.clone(), t));
        if let Some(st) = ctx.cache.as_deref_mut() {
            // A retry's answer replaces whatever an earlier attempt began.
            st.answer = answer;
            st.chunks.clear();
            st.size = 0;
            st.complete = false;
            if let (Some(w), Some((key, deps))) = (st.write.as_mut(), seed_at) {
                w.seed_key = Some(key);
                w.deps = deps.or(w.deps);
            }
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

    /// The GET route and path of the resource a write answered about.
    fn seed_target<'a>(
        &'a self,
        session: &'a Session,
        ctx: &'a Ctx,
        resp: &'a ResponseHeader,
    ) -> Option<SeedTarget<'a>> {
        let p = path(session, ctx);
        let target = match ctx.route.map(|m| m.view.op) {
            Some(Operation::Create) => {
                let loc = resp.headers.get(header::LOCATION)?.to_str().ok()?;
                rules::created_path(loc, p)?
            }
            _ => p,
        };
        let m = self.router.find(Method::Get, target).ok()?;
        let cfg = self.router.routes.get(m.route)?.cache.as_ref()?;
        Some(SeedTarget { path: target, m, cfg })
    }

    /// End of the exchange: the closing bump of a write, then any store. `late`: the exchange
    /// failed after the upstream may have received the request, so it may still apply it.
    /// Returns whether a read's answer was stored.
    pub(super) fn cache_finish(&self, ctx: &mut Ctx, failed: bool, late: bool) -> bool {
        let (Some(cache), Some(mut st)) = (self.cache.as_ref(), ctx.cache.take()) else {
            return false;
        };
        if st.hit {
            return false;
        }
        let body = if st.complete && !failed && st.answer.is_some() {
            Some(concat(std::mem::take(&mut st.chunks)))
        } else {
            None
        };
        if let Some(w) = &st.write {
            let op = ctx.route.map(|m| m.view.op);
            let replace = matches!(op, Some(Operation::Replace | Operation::Patch));
            let may_seed =
                w.seed_key.is_some() && w.deps.is_some() && body.as_deref().is_some_and(rules::looks_like_resource);
            // The write's own resource: only if no other write touched it meanwhile.
            let unchanged = may_seed && (!replace || cache.bump_if_unchanged(w.slots[0], w.seen));
            // A successful compare-and-bump already moved the first slot; bump the others.
            let done = usize::from(unchanged && replace);
            let mut rest = [0u32; 3];
            for (r, s) in rest.iter_mut().zip(&w.slots[done..w.n as usize]) {
                *r = *s;
            }
            cache.bump(rest, w.n - done as u8);
            if late {
                // The upstream may still apply a write whose exchange failed (a timeout, a client
                // that hung up): bump once more after it could have, so a read that filled in
                // between does not outlive it.
                let delay = self
                    .pool(ctx)
                    .map_or(Duration::from_secs(60), |p| p.config.timeouts.read);
                let (cache, slots, n) = (Arc::clone(cache), w.slots, w.n);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    cache.bump(slots, n);
                });
            }
            if let (true, Some(key), Some(mut deps), Some(body), Some((hdr, ttl))) =
                (unchanged, w.seed_key, w.deps, body, st.answer.take())
            {
                if replace {
                    deps.set_first(w.seen + 1);
                }
                if cache.put(key, hdr, body, ttl, deps) {
                    cache.stats.seeded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            return false;
        }
        match (st.fill, body, st.answer) {
            (Some(f), Some(body), Some((hdr, ttl))) => cache.put(f.key, hdr, body, ttl.min(f.ttl), f.deps),
            _ => false,
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
async fn serve(session: &mut Session, ctx: &mut Ctx, e: &Arc<Entry>) -> Result<()> {
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
    let mut add = answer_headers(ctx)?;
    add.set(header::AGE, http::HeaderValue::from(e.stored.elapsed().as_secs()));
    add.set(X_CACHE, http::HeaderValue::from_static("HIT"));
    super::rewrite::answer_with_rules(session, ctx, &mut h, &mut add)?;
    session.write_response_header(Box::new(h), not_modified).await?;
    if !not_modified {
        session.write_response_body(Some(e.body.clone()), true).await?;
    }
    Ok(())
}
