//! The Pingora `ProxyHttp` glue. Each hook asks a pure function (routing, classification,
//! [`policy`], keys, limits, the pool) and applies the answer; no decisions are made here.

mod auth;
mod cache;
pub mod headers;
mod limits;
mod observe;
pub mod policy;
pub mod request_id;
mod rewrite;
mod slots;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use self::headers::Additions;
use crate::affinity::DEFAULT_KEY;
use crate::config::{Selection, Tenancy};
use crate::inbound::head::{path_verdict, Verdict};
use crate::keys::{Facts, KeySource};
use crate::metrics::Refusal;
use crate::overload::Permit;
use crate::routing::{NoRoute, Route, RouteMatch};
use crate::runtime::{Live, Runtime};
use crate::scim::error::{default_detail, ScimError};
use crate::scim::path::{needs_normalizing, normalize};
use crate::scim::Method;
use crate::tls::ConnInfo;
use crate::upstream::{bit, now_ms, NoServer, Pick, Pool};

/// The proxy: every decision reads the [`Runtime`] snapshot its request started with.
pub struct Scimitar {
    pub live: Arc<Live>,
}

/// What the TLS handshake of this request's connection left (none on plaintext listeners).
pub fn conn_info(session: &Session) -> Option<&ConnInfo> {
    session.digest()?.ssl_digest.as_ref()?.extension.get::<ConnInfo>()
}

/// The verified client certificate's fingerprint: the `client_cert` key and cache credential.
pub fn client_fingerprint(session: &Session) -> Option<&[u8]> {
    conn_info(session)?.client.as_ref().map(|c| &c.fingerprint[..])
}

/// Whether the client reached us over TLS.
fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// The host the client asked for: `Host`, or the authority of an HTTP/2 request.
pub fn request_host(req: &RequestHeader) -> Option<HeaderValue> {
    if let Some(h) = req.headers.get(http::header::HOST) {
        return Some(h.clone());
    }
    req.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())
}

/// Per-request state.
pub struct Ctx {
    /// The config this request runs on from start to end (a reload does not change it).
    pub rt: Arc<Runtime>,
    /// Counts the request as in flight (a graceful stop waits for it) until the context drops.
    _in_flight: crate::shutdown::InFlight,
    pub start: Instant,
    pub route: Option<RouteMatch>,
    /// The rewritten path when the client's needed normalising (`//`, `.`, `..`).
    pub norm_path: Option<String>,
    pub request_id: Option<HeaderValue>,
    pub pick: Option<Pick>,
    /// Servers already tried for this request (bitmask of pool indices).
    pub tried: u64,
    pub attempts: usize,
    /// A specific answer for `fail_to_proxy` (status, detail, Retry-After).
    pub error: Option<ScimError>,
    pub body_bytes: u64,
    /// The client's body has all arrived (a retry's replay of it is not timed again).
    pub body_done: bool,
    /// When the first bytes of the body reached the proxy (the body deadline's start).
    pub body_since: Option<Instant>,
    /// This request went to its key's pin rather than to the ring's choice for the key.
    pub pin_detour: bool,
    /// The affinity key hash, when the route has an affinity policy.
    pub affinity_key: Option<u64>,
    /// The pool slot this request holds (overload protection); freed when the request ends.
    pub permit: Option<Permit>,
    /// `RateLimit-Policy` and `RateLimit` values for limited routes.
    pub rate_headers: Option<(String, String)>,
    /// Cache bookkeeping, only for requests the cache answers, fills or invalidates.
    pub cache: Option<Box<cache::CacheState>>,
    /// The request's slot on its server, when the pool has `max_conns`.
    pub server_slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// What the metrics and the access log record when the request ends.
    pub obs: observe::Obs,
}

fn path<'a>(session: &'a Session, ctx: &'a Ctx) -> &'a str {
    ctx.norm_path
        .as_deref()
        .unwrap_or_else(|| session.req_header().uri.path())
}

/// What every answer to this request carries: its request id and, on a limited route, the
/// `RateLimit-Policy` / `RateLimit` values (taken: a request is answered once).
fn answer_headers(ctx: &mut Ctx) -> Result<Additions> {
    let mut add = Additions::default();
    if let Some(id) = &ctx.request_id {
        add.set(headers::X_REQUEST_ID, id.clone());
    }
    if let Some((p, l)) = ctx.rate_headers.take() {
        let value = |s: String| {
            HeaderValue::try_from(s).map_err(|e| Error::because(ErrorType::InternalError, "RateLimit header", e))
        };
        add.set(headers::RATELIMIT_POLICY, value(p)?);
        add.set(headers::RATELIMIT, value(l)?);
    }
    Ok(add)
}

/// Writes a SCIM error answer from a request filter, with the request id, any rate-limit
/// headers already decided and the route's response rules.
pub async fn respond(session: &mut Session, ctx: &mut Ctx, err: &ScimError) -> Result<()> {
    let body = err.body();
    let mut header = err.header(body.len())?;
    let mut add = answer_headers(ctx)?;
    rewrite::answer_with_rules(session, ctx, &mut header, &mut add)?;
    send(session, header, Some(body)).await
}

/// nginx's lingering close, with its defaults: after answering a request whose body is still
/// arriving (a 413 before the body, a 401, a 429…), read and drop the rest for at most
/// `LINGER_TOTAL`, giving up after `LINGER_READ` without a byte. Closing at once with unread
/// bytes in the socket makes the kernel send a reset, and a client still sending its body (over
/// TLS almost always, and HTTP/2 streams likewise) then sees the reset instead of the answer.
const LINGER_TOTAL: std::time::Duration = std::time::Duration::from_secs(30);
const LINGER_READ: std::time::Duration = std::time::Duration::from_secs(5);

/// Writes an answer the proxy made. The connection stays open only when no unread request
/// body could be left on it; an unread body is drained (bounded) after the answer is out.
async fn send(session: &mut Session, header: ResponseHeader, body: Option<Bytes>) -> Result<()> {
    let has_body = session.req_header().headers.contains_key("content-length")
        || session.req_header().headers.contains_key("transfer-encoding");
    if has_body {
        session.set_keepalive(None);
    }
    session.write_response_header(Box::new(header), body.is_none()).await?;
    if let Some(b) = body {
        session.write_response_body(Some(b), true).await?;
    }
    if has_body && !session.is_body_done() {
        session.set_read_timeout(Some(LINGER_READ));
        // The answer is out; whatever the client does now only decides when we close.
        let _ = tokio::time::timeout(LINGER_TOTAL, session.drain_request_body()).await;
    }
    Ok(())
}

impl Runtime {
    fn route(&self, ctx: &Ctx) -> Option<&Route> {
        self.router.routes.get(ctx.route.as_ref()?.route)
    }

    fn pool(&self, ctx: &Ctx) -> Option<&Pool> {
        self.pools.get(self.route(ctx)?.upstream?).map(|p| p.as_ref())
    }

    fn tenant<'a>(&self, session: &'a Session, ctx: &'a Ctx) -> Option<&'a [u8]> {
        match &self.tenancy {
            Tenancy::None => None,
            Tenancy::Path => {
                let span = ctx.route.as_ref()?.tenant?;
                Some(span.of(path(session, ctx)).as_bytes())
            }
            // A refused ambiguous header names no tenant, not the first one it held.
            Tenancy::Header(_) if ctx.obs.refusal == Some(Refusal::AmbiguousTenant) => None,
            Tenancy::Header(h) => session.req_header().headers.get(h.as_str()).map(|v| v.as_bytes()),
        }
    }

    /// The refusal of a request whose tenancy header names more than one tenant.
    fn ambiguous_tenant(&self, session: &Session) -> Option<ScimError> {
        let Tenancy::Header(h) = &self.tenancy else { return None };
        policy::ambiguous_tenant(&session.req_header().headers, h).map(|why| ScimError::new(400, why))
    }

    fn facts<'a>(&self, session: &'a Session, ctx: &'a Ctx, m: &RouteMatch) -> Facts<'a> {
        let req = session.req_header();
        Facts {
            tenant: self.tenant(session, ctx),
            authorization: req.headers.get("authorization").map(|v| v.as_bytes()),
            client_ip: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| crate::clientip::real_client_ip(a.ip(), &req.headers)),
            headers: &req.headers,
            id: m.view.id.map(|s| s.of(path(session, ctx)).as_bytes()),
            class: m.view.class,
            client_cert: client_fingerprint(session),
        }
    }
}

#[async_trait]
impl ProxyHttp for Scimitar {
    type CTX = Ctx;

    /// No downstream modules: Pingora's default installs a *disabled* compression module that
    /// still runs on every response. SCIM payloads are small JSON; compression is not our job.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> Ctx {
        Ctx {
            rt: self.live.load_full(),
            _in_flight: crate::shutdown::InFlight::start(),
            start: Instant::now(),
            route: None,
            norm_path: None,
            request_id: None,
            pick: None,
            tried: 0,
            attempts: 0,
            error: None,
            body_bytes: 0,
            body_done: false,
            body_since: None,
            pin_detour: false,
            affinity_key: None,
            permit: None,
            rate_headers: None,
            cache: None,
            server_slot: None,
            obs: Default::default(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let rt = ctx.rt.clone();
        if conn_info(session).is_some_and(|c| c.required && c.client.is_none()) {
            // Only a resumed session whose certificate stopped verifying gets here (a fresh
            // handshake without a valid one never completes); it must not pass as anonymous.
            session.set_keepalive(None);
            let e = ScimError::new(
                403,
                "the client certificate is no longer trusted; reconnect with a valid one",
            );
            respond(session, ctx, &e).await?;
            return Ok(true);
        }
        if session.is_http2() {
            // HTTP/1 heads were judged (and sessions set up) by the listener's gate; an HTTP/2
            // stream comes straight from Pingora, so its path gets the gate's rules here.
            session.set_write_timeout(Some(rt.client.send_timeout));
            if let Verdict::Refuse(r) = path_verdict(session.req_header().raw_path()) {
                respond(session, ctx, &ScimError::new(r.reason.status(), r.detail)).await?;
                return Ok(true);
            }
        }
        let req = session.req_header();
        let method = Method::parse(req.method.as_str());
        let raw = req.uri.path();
        // An absolute-form target (checked against Host at the edge) goes upstream in origin-form.
        if needs_normalizing(raw) || req.raw_path().first() != Some(&b'/') {
            ctx.norm_path = Some(normalize(raw));
        }
        let id = req
            .headers
            .get("x-request-id")
            .filter(|v| request_id::acceptable(v.as_bytes()))
            .cloned();
        ctx.request_id = Some(match id {
            Some(v) => v,
            None => HeaderValue::from_bytes(&request_id::generate())
                .map_err(|e| Error::because(ErrorType::InternalError, "request id", e))?,
        });

        // Before anything reads the tenant (auth, limits, affinity, cache, header rules).
        if let Some(e) = rt.ambiguous_tenant(session) {
            ctx.obs.refusal = Some(Refusal::AmbiguousTenant);
            respond(session, ctx, &e).await?;
            return Ok(true);
        }

        let m = match rt.router.find(method, path(session, ctx)) {
            Ok(m) => m,
            Err(why) => {
                let detail = match why {
                    NoRoute::NotScim => "no SCIM endpoint at this path",
                    NoRoute::Filtered => "no route accepts this method and endpoint",
                };
                ctx.obs.refusal = Some(Refusal::NoRoute);
                respond(session, ctx, &ScimError::new(404, detail)).await?;
                return Ok(true);
            }
        };
        ctx.route = Some(m);
        let Some(route) = rt.router.routes.get(m.route) else {
            return Error::e_explain(ErrorType::InternalError, "route index");
        };

        // A `return` route answers everything itself, first (nginx's `return` runs before its
        // access checks).
        if let Some(answer) = &route.answer {
            ctx.obs.refusal = Some(Refusal::Returned);
            rewrite::answer_fixed(session, ctx, answer).await?;
            return Ok(true);
        }

        // 0. Credentials: a request the route's `auth` refuses goes no further.
        if let Some(auth) = &route.auth {
            if let Some(e) = rt.edge_auth(session, ctx, m.route, auth) {
                respond(session, ctx, e).await?;
                return Ok(true);
            }
        }

        // 1. Size: refuse before anything reaches an upstream.
        let max_body = route.max_body_for(m.view.class);
        ctx.obs.routed(&rt, &m, max_body);
        let declared = session
            .req_header()
            .headers
            .get("content-length")
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body) {
            ctx.obs.refusal = Some(Refusal::TooLarge);
            respond(session, ctx, &ScimError::too_large(max_body)).await?;
            return Ok(true);
        }

        // 2. Rate limits: 429 with an exact Retry-After.
        let refused = if route.limits.is_empty() {
            None
        } else if rt.limiter.redis.is_none() {
            rt.check_limits_local(session, ctx, &m, route)
        } else {
            // Boxed: the Redis future is large and only shared-limit routes should carry it.
            Box::pin(rt.check_limits_shared(session, ctx, &m, route)).await
        };
        if let Some(e) = refused {
            respond(session, ctx, &e).await?;
            return Ok(true);
        }

        // 3. Cache: a write invalidates what it changes; a cacheable read may be answered here,
        //    without a pool slot.
        if let Some(cache) = &rt.cache {
            if rt.cache_request(session, ctx, cache, &m, route, method).await? {
                return Ok(true);
            }
        }

        // 4. Ring key (for upstream_peer and for pins after writes): the route's affinity
        //    sources, or the default chain on a consistent pool; round robin needs none.
        let consistent = rt
            .pool(ctx)
            .is_some_and(|p| p.config.selection == Selection::Consistent);
        let sources = match &route.affinity {
            Some(a) => Some(a.sources.as_slice()),
            None if consistent => Some(&DEFAULT_KEY[..]),
            None => None,
        };
        if let Some(sources) = sources {
            let facts = rt.facts(session, ctx, &m);
            ctx.affinity_key = rt
                .hasher
                .first_present(sources, &facts)
                .or_else(|| rt.hasher.first_present(&[KeySource::ClientIp], &facts));
        }

        // 5. Overload: take a pool slot, wait in the bounded queue, or be shed with 503.
        if let Some(adm) = rt.pool(ctx).and_then(|p| p.admission.as_ref()) {
            let tenant = rt
                .tenant(session, ctx)
                .is_some()
                .then(|| rt.hasher.combined(&[KeySource::Tenant], &rt.facts(session, ctx, &m)));
            // The slot is usually free; only a full pool pays for the (boxed) queueing future.
            let admitted = match adm.try_admit(tenant) {
                Some(p) => Ok(p),
                None => Box::pin(adm.admit(tenant)).await,
            };
            match admitted {
                Ok(p) => ctx.permit = Some(p),
                Err(shed) => {
                    ctx.obs.refusal = Some(Refusal::Shed);
                    let e = ScimError::new(503, shed.detail()).retry_after(adm.retry_after_secs());
                    respond(session, ctx, &e).await?;
                    return Ok(true);
                }
            }
        }

        if m.view.op.replay_safe() {
            // Keep the body so a PUT or .search can go to another server after a failure.
            session.enable_retry_buffering();
        }
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let rt = &*ctx.rt;
        // `client.body_timeout` is for the whole body: Pingora times each read, so a client
        // sending a byte a second would never trip it. The next read gets what is left.
        if end_of_stream {
            ctx.body_done = true;
        } else if !ctx.body_done {
            // From the body's first bytes: Pingora reads the body only once an upstream is
            // connected, and time queued for a slot or a server is not the client's.
            let since = *ctx.body_since.get_or_insert_with(Instant::now);
            let Some(left) = rt.client.body_timeout.checked_sub(since.elapsed()) else {
                ctx.error = Some(ScimError::new(408, "the request body did not arrive in time"));
                return Error::e_explain(ErrorType::HTTPStatus(408), "client body timeout");
            };
            session.set_read_timeout(Some(left));
        }
        let max = match (rt.route(ctx), ctx.route) {
            (Some(r), Some(m)) => r.max_body_for(m.view.class),
            _ => u64::MAX,
        };
        // Chunked bodies have no Content-Length to check up front; stop forwarding once over.
        if let Some(b) = body {
            ctx.body_bytes += b.len() as u64;
            if ctx.body_bytes > max {
                ctx.error = Some(ScimError::too_large(max));
                ctx.obs.refusal = Some(Refusal::TooLarge);
                return Error::e_explain(ErrorType::HTTPStatus(413), "request body too large");
            }
        }
        let patch = ctx.route.is_some_and(|m| m.view.op == crate::scim::Operation::Patch);
        ctx.obs.body(body, end_of_stream, patch, max);
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let rt = ctx.rt.clone();
        let Some(pool) = rt.pool(ctx) else {
            return Error::e_explain(ErrorType::InternalError, "no route in context");
        };
        // A live pin (the server that took this key's last write) wins over the ring.
        let pinned = match (ctx.affinity_key, rt.route(ctx).and_then(|r| r.affinity.as_ref())) {
            (Some(k), Some(a)) if a.pin_after_write.is_some() => {
                pool.pins.get(k, now_ms()).and_then(|i| pool.pinned(i, ctx.tried))
            }
            _ => None,
        };
        let key = ctx.affinity_key.unwrap_or(0).to_le_bytes();
        // A pin that no longer points at the key's ring home (that server is back) is kept
        // until it expires but not renewed by writes, so the key goes home after at most
        // `pin_after_write` instead of staying away as long as its writes continue.
        ctx.pin_detour = pinned.is_some_and(|p| pool.ring_home(&key) != Some(p.index));
        let selected = match pinned {
            Some(p) => Ok(p),
            None => pool.select(&key, ctx.tried),
        };
        // A retry gives up the previous server's slot first.
        ctx.server_slot = None;
        match selected {
            Ok(mut pick) => {
                if pool.caps_servers() {
                    pick = rt.take_slot(pool, pick, ctx, &key).await?;
                }
                ctx.attempts += 1;
                ctx.tried |= bit(pick.index);
                ctx.pick = Some(pick);
                ctx.obs.attempt();
                Ok(pool.peer(pick))
            }
            Err(NoServer::NoneHealthy) if ctx.attempts > 0 => {
                ctx.error = Some(ScimError::new(
                    502,
                    format!(
                        "no server of upstream `{}` could take the request ({} tried)",
                        pool.name(),
                        ctx.attempts
                    ),
                ));
                Error::e_explain(ErrorType::HTTPStatus(502), "all servers tried")
            }
            Err(NoServer::NoneHealthy) => {
                let e = ScimError::new(503, format!("upstream `{}` has no healthy server", pool.name()))
                    .retry_after(pool.retry_after_secs());
                ctx.error = Some(e);
                Error::e_explain(ErrorType::HTTPStatus(503), "no healthy server")
            }
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let rt = &*ctx.rt;
        let target = match rt.route(ctx).and_then(|r| rewrite::upstream_target(session, ctx, r)) {
            Some(t) => Some(t),
            None => ctx.norm_path.as_ref().map(|p| match session.req_header().uri.query() {
                Some(q) => format!("{p}?{q}"),
                None => p.clone(),
            }),
        };
        if let Some(target) = target {
            up.set_uri(
                target
                    .parse()
                    .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "upstream path", e))?,
            );
        }
        // Equal duplicates (`5` twice, or `5, 5`) passed the edge; the upstream gets one.
        let mut lengths = up.headers.get_all(http::header::CONTENT_LENGTH).iter();
        if let (Some(first), second) = (lengths.next(), lengths.next()) {
            if second.is_some() || first.as_bytes().contains(&b',') {
                let one = crate::inbound::head::content_length(first.as_bytes())
                    .map_err(|why| Error::explain(ErrorType::InvalidHTTPHeader, why))?;
                up.insert_header(http::header::CONTENT_LENGTH, one)?;
            }
        }
        let mut add = Additions::default();
        if let Some(ip) = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip()) {
            let prev = up
                .headers
                .get(&headers::X_FORWARDED_FOR)
                .map(|v| v.as_bytes())
                .filter(|_| crate::clientip::keeps_chain_from(ip));
            add.set(headers::X_FORWARDED_FOR, policy::forwarded_for(prev, ip)?);
        }
        let tls = is_tls(session);
        add.set(
            headers::X_FORWARDED_PROTO,
            HeaderValue::from_static(if tls { "https" } else { "http" }),
        );
        let client_host = request_host(session.req_header());
        if let Some(host) = &client_host {
            add.set(headers::X_FORWARDED_HOST, host.clone());
        }
        for h in &rt.client_cert_headers {
            up.remove_header(h);
        }
        // A client's underscore spelling of the certificate header or of a header the proxy
        // writes (`X_Client_Cert`, `X_Forwarded_For`) would reach CGI-style upstreams (WSGI,
        // Rack, PHP) as that header, beside or instead of ours (nginx drops every underscore
        // header by default). Only requests with such a name pay for the sweep.
        if up.headers.keys().any(|k| k.as_str().contains('_')) {
            let aliases: Vec<http::HeaderName> = up
                .headers
                .keys()
                .filter(|k| {
                    policy::underscore_alias(k.as_str(), &headers::PROXY_WRITTEN)
                        || policy::underscore_alias(k.as_str(), &rt.client_cert_headers)
                })
                .cloned()
                .collect();
            for h in &aliases {
                up.remove_header(h);
            }
        }
        if tls {
            if let Some(info) = conn_info(session) {
                if let (Some(h), Some(c)) = (&info.forward, &info.client) {
                    add.set(h.clone(), c.header.clone());
                }
            }
        }
        if let Some(id) = &ctx.request_id {
            add.set(headers::X_REQUEST_ID, id.clone());
        }
        if let (Some(pool), Some(pick)) = (rt.pool(ctx), ctx.pick) {
            // An HTTP/1.0 request may come without a Host; upstreams speaking HTTP/1.1 need one.
            if !pool.config.preserve_host || client_host.is_none() {
                // A TLS pool's servers are named by its SNI (virtual hosts, SNI/Host checks).
                let host = match pool.config.tls.as_ref().filter(|t| !t.sni.is_empty()) {
                    Some(t) => HeaderValue::try_from(t.sni.as_str()),
                    None => HeaderValue::try_from(pick.addr.to_string()),
                }
                .map_err(|e| Error::because(ErrorType::InternalError, "upstream host", e))?;
                add.set(http::header::HOST, host);
            }
        }
        rewrite::request_with_rules(session, ctx, up, &mut add)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let rt = ctx.rt.clone();
        let (Some(pool), Some(pick)) = (rt.pool(ctx), ctx.pick) else {
            return Ok(());
        };
        let status = resp.status.as_u16();
        ctx.obs.answered(pool, pick, status);
        if policy::counts_as_failure(status, pool.config.passive.count_5xx) {
            pool.failure(pick.index);
        } else {
            pool.success(pick.index);
        }
        // Read-your-writes: the server that took a write keeps this key for the pin window.
        let window = rt
            .route(ctx)
            .and_then(|r| r.affinity.as_ref())
            .and_then(|a| a.pin_after_write);
        if let (Some(k), Some(w), Some(m)) = (ctx.affinity_key, window, ctx.route) {
            if policy::is_write(m.view.op) && status < 500 && !ctx.pin_detour {
                let now = now_ms();
                pool.pins.put(k, pick.index, now + w.as_millis() as u64, now);
            }
        }
        if let Some(route) = rt.route(ctx) {
            rewrite::client_locations(session, ctx, route, resp)?;
        }
        if ctx.cache.is_some() {
            rt.cache_answer(ctx, resp, session);
        }
        Ok(())
    }

    async fn response_filter(&self, session: &mut Session, resp: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
        // Upstreams such as scim2-server answer HTTP/1.0; an HTTP/1.1 client gets HTTP/1.1 from
        // us, as it would from nginx (Pingora already fixes framing when there is no length).
        if session.req_header().version == http::Version::HTTP_11 {
            resp.set_version(http::Version::HTTP_11);
        }
        let mut add = answer_headers(ctx)?;
        rewrite::answer_with_rules(session, ctx, resp, &mut add)
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        // The server is done with this request: its max_conns slot need not wait for a slow
        // client to read the rest of the answer.
        if end_of_stream {
            ctx.server_slot = None;
        }
        Ok(None)
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.cache.is_some() {
            ctx.rt.clone().cache_body(ctx, body, end_of_stream);
        }
        Ok(None)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let rt = &*ctx.rt;
        if let (Some(pool), Some(pick)) = (rt.pool(ctx), ctx.pick) {
            pool.failure(pick.index);
            e.set_retry(policy::retry_after_connect_failure(ctx.attempts, pool.config.retries));
            observe::connect_failed(pool, pick, e.retry());
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        _client_reused: bool,
    ) -> Box<Error> {
        let rt = ctx.rt.clone();
        let mut e = e.more_context(format!("peer: {peer}"));
        let Some(pool) = rt.pool(ctx) else {
            e.set_retry(false);
            return e;
        };
        if ctx.error.is_none() && policy::is_server_failure(e.etype(), e.esource()) {
            if let Some(pick) = ctx.pick {
                pool.failure(pick.index);
            }
        }
        let op = ctx.route.map(|m| m.view.op).unwrap_or(crate::scim::Operation::Other);
        let truncated = session.as_ref().retry_buffer_truncated();
        // Once the answer has started downstream, another server's answer cannot follow it.
        let retry = ctx.error.is_none()
            && session.response_written().is_none()
            && *e.esource() == pingora::ErrorSource::Upstream
            && policy::retry_after_send(op, truncated, ctx.attempts, pool.config.retries);
        e.set_retry(retry);
        if retry {
            observe::retried(pool);
        }
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let err = match ctx.error.take() {
            Some(err) => err,
            None => {
                let code = policy::status_for(e.etype(), e.esource());
                ScimError::new(code, default_detail(code))
            }
        };
        let code = err.status;
        if code > 0 && session.response_written().is_none() {
            let body = err.body();
            match err.header(body.len()) {
                Ok(mut h) => {
                    let mut add = Additions::default();
                    if let Some(id) = &ctx.request_id {
                        add.set(headers::X_REQUEST_ID, id.clone());
                    }
                    if let Err(he) = rewrite::answer_with_rules(session, ctx, &mut h, &mut add) {
                        log::error!("could not add the answer's headers: {he}");
                    }
                    if let Err(we) = session.as_downstream_mut().write_error_response(h, body).await {
                        log::debug!("could not send error response: {we}");
                    }
                }
                Err(he) => log::error!("could not build error response: {he}"),
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, e: &Error) -> bool {
        // A client that hangs up is routine at the edge, not an error worth a log line each.
        // A body that did not arrive in time (our own 408) is the client's doing too.
        policy::client_went_away(e.etype(), e.esource()) || matches!(e.etype(), ErrorType::HTTPStatus(408))
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        // Free the pool slot as soon as the exchange is over, not when the context is dropped.
        ctx.permit = None;
        ctx.server_slot = None;
        let cache = match ctx.cache.as_deref().map(cache::CacheState::verdict) {
            Some(v) => {
                let late = e.is_some_and(|e| policy::may_have_reached_upstream(ctx.attempts, e.etype()));
                if ctx.rt.clone().cache_finish(ctx, e.is_some(), late) {
                    "store"
                } else {
                    v
                }
            }
            None if ctx.rt.route(ctx).is_some_and(|r| r.cache.is_some()) => "bypass",
            None => "-",
        };
        observe::finish(session, e, ctx, cache);
        if log::log_enabled!(target: "scimitar::access", log::Level::Debug) {
            let status = session.response_written().map_or(0, |r| r.status.as_u16());
            let (class, op) = ctx
                .route
                .map_or(("-", "-"), |m| (m.view.class.as_str(), m.view.op.as_str()));
            let tls = session.digest().and_then(|d| d.ssl_digest.as_ref());
            let req = session.req_header();
            // Redacted like the access log: a query can carry tokens and SCIM filter values.
            let target = crate::accesslog::redact::target(req.uri.path(), req.uri.query());
            log::debug!(
                target: "scimitar::access",
                "{} {} {:?} {} class={} op={} upstream={} attempts={} tls={} {}ms{}",
                req.method,
                target,
                req.version,
                status,
                class,
                op,
                ctx.pick.map(|p| p.addr.to_string()).unwrap_or_else(|| "-".into()),
                ctx.attempts,
                tls.map_or("-", |t| &t.version),
                ctx.start.elapsed().as_millis(),
                e.map(|e| format!(" error={e}")).unwrap_or_default()
            );
        }
    }
}
