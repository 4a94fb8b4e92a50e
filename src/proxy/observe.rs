//! Metrics and access-log glue: what a request leaves along the way ([`Obs`], in the context)
//! and, when it ends, one record into its pool's pre-resolved metric handles, the status
//! page's totals and (when configured) one access-log line. Only error paths and the
//! deprovision check (PATCH/PUT of a User) do more than a few atomic adds.

use std::time::Instant;

use bytes::Bytes;
use pingora::proxy::Session;
use pingora::Error;

use super::{conn_info, Ctx};
use crate::accesslog::{self, RateLimit, Record};
use crate::metrics::{self, deprovision, labels, Endpoint, InFlight, Op, Refusal, Retry};
use crate::routing::RouteMatch;
use crate::runtime::Runtime;
use crate::scim::{EndpointClass, Operation, ResourceType};
use crate::upstream::{Pick, Pool};

/// Longest `error` text kept for the status page.
const ERROR_TEXT: usize = 200;

/// What the metrics and the access log need of a request, gathered as it runs.
#[derive(Default)]
pub struct Obs {
    /// Counts the request in its pool's `scimitar_requests_in_flight` until the context drops.
    in_flight: Option<InFlight>,
    /// The body of a PATCH/PUT of a User, gathered to see whether it deprovisions.
    body: Option<Vec<u8>>,
    deprovision: bool,
    pub refusal: Option<Refusal>,
    /// The route's `auth` accepted the request with this credential (index in its tokens).
    pub credential: Option<usize>,
    /// Some policy counted this request (a refusal is in `refusal`).
    limited: bool,
    first_attempt: Option<Instant>,
    upstream_us: Option<u64>,
    upstream_status: Option<u16>,
}

impl Obs {
    /// A route was found: the pool's in-flight count, and whether the body must be read.
    pub fn routed(&mut self, rt: &Runtime, m: &RouteMatch, max_body: u64) {
        let pool = rt.router.routes.get(m.route).and_then(|r| rt.pools.get(r.upstream?));
        if let Some(pm) = pool.and_then(|p| p.metrics.as_ref()) {
            self.in_flight = Some(InFlight::new(pm));
        }
        // Only a PATCH/PUT of a User pays for the inspection; max_body bounds the buffer.
        let replaces = matches!(m.view.op, Operation::Patch | Operation::Replace);
        if replaces && m.view.resource == ResourceType::Users && m.view.id.is_some() {
            self.body = Some(Vec::with_capacity(max_body.min(4096) as usize));
        }
    }

    /// A rate-limit verdict: `refused_by` is the policy index that refused, if one did.
    pub fn limits(&mut self, counted: bool, refused_by: Option<usize>) {
        self.limited = counted;
        if let Some(i) = refused_by {
            self.refusal = Some(Refusal::RateLimited(i));
        }
    }

    /// A request body chunk (only gathered for a PATCH/PUT of a User).
    pub fn body(&mut self, chunk: &Option<Bytes>, end: bool, patch: bool, max: u64) {
        let Some(buf) = self.body.as_mut() else { return };
        if let Some(b) = chunk {
            if (buf.len() + b.len()) as u64 > max {
                self.body = None;
                return;
            }
            buf.extend_from_slice(b);
        }
        if end {
            self.deprovision = deprovision::deprovisions(patch, buf);
            self.body = None;
        }
    }

    /// An upstream attempt is about to start (the upstream time counts from the first).
    pub fn attempt(&mut self) {
        if self.first_attempt.is_none() {
            self.first_attempt = Some(Instant::now());
        }
    }

    /// The upstream's answer header arrived from `pick`.
    pub fn answered(&mut self, pool: &Pool, pick: Pick, status: u16) {
        let us = self.first_attempt.map_or(0, |t| t.elapsed().as_micros() as u64);
        self.upstream_us = Some(us);
        self.upstream_status = Some(status);
        if let Some(pm) = &pool.metrics {
            pm.upstream_answer(pick.index, status, us as f64 / 1e6);
        }
    }
}

/// A connection to `pick` failed; `retry` says whether another server will be tried.
pub fn connect_failed(pool: &Pool, pick: Pick, retry: bool) {
    if let Some(pm) = &pool.metrics {
        pm.connect_error(pick.index);
        if retry {
            pm.retry(Retry::ConnectFailure);
        }
    }
}

/// The exchange failed after connecting and will be sent to another server.
pub fn retried(pool: &Pool) {
    if let Some(pm) = &pool.metrics {
        pm.retry(Retry::UpstreamError);
    }
}

/// The request is over: metrics, status page, access log. `cache` is the cache's verdict.
pub fn finish(session: &Session, e: Option<&Error>, ctx: &mut Ctx, cache: &'static str) {
    let rt = &*ctx.rt;
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let micros = ctx.start.elapsed().as_micros() as u64;
    if ctx.obs.body.is_some() {
        // The body never ended (the client went away): judge what arrived.
        let patch = ctx.route.is_some_and(|m| m.view.op == Operation::Patch);
        ctx.obs.body(&None, true, patch, u64::MAX);
    }
    let (endpoint, op) = match ctx.route {
        Some(m) => labels::classify(&m.view, ctx.obs.deprovision),
        None => (Endpoint::Other, Op::Other),
    };
    let pool = rt.pool(ctx);
    let tenant = rt.tenant(session, ctx);
    // Discovery answers are the same for every tenant (and often need no credential), so
    // their 2xx says nothing about whether the tenant exists.
    let vouched = ctx.obs.upstream_status.is_some_and(|s| (200..300).contains(&s))
        && ctx.route.is_some_and(|m| m.view.class != EndpointClass::Discovery);
    let refusal = ctx.obs.refusal;
    if let Some(m) = metrics::get() {
        if let Some(Refusal::RateLimited(i)) = refusal {
            if let Some(c) = rt.limiter.policies.get(i).and_then(|p| p.rejected.as_ref()) {
                c.inc();
            }
        }
        m.record(
            pool.and_then(|p| p.metrics.as_ref()),
            &metrics::Request {
                endpoint,
                op,
                status,
                micros,
                refusal,
                tenant,
                vouched,
            },
        );
        // A `return: 204` route is a configured success, not an error to show.
        if status >= 500 || refusal.is_some_and(|r| r != Refusal::Returned || status >= 400) {
            m.page.error(recent_error(session, e, ctx, status));
        }
    }
    if !accesslog::enabled() {
        return;
    }
    let req = session.req_header();
    let policy = |i: usize| rt.limiter.policies.get(i).map_or("?", |p| p.policy.name.as_str());
    let tls = session.digest().and_then(|d| d.ssl_digest.as_ref());
    let error = match (refusal, e) {
        (Some(r), _) => Some(r.reason()),
        (None, Some(e)) => Some(e.etype().as_str()),
        (None, None) => None,
    };
    let record = Record {
        unix_ms: crate::timefmt::unix_ms(std::time::SystemTime::now()).saturating_sub(micros / 1000),
        request_id: ctx.request_id.as_ref().map(|v| v.as_bytes()),
        client_ip: session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| crate::clientip::real_client_ip(a.ip(), &req.headers)),
        method: req.method.as_str(),
        path: req.uri.path().as_bytes(),
        query: req.uri.query().map(str::as_bytes),
        status,
        bytes_in: session.body_bytes_read() as u64,
        bytes_out: session.body_bytes_sent() as u64,
        duration_us: micros,
        upstream: pool.map(|p| p.name()),
        backend: ctx.pick.map(|p| p.addr),
        upstream_status: ctx.obs.upstream_status,
        upstream_us: ctx.obs.upstream_us,
        tenant,
        credential: ctx.obs.credential.and_then(|i| {
            let c = rt.route(ctx)?.auth.as_ref()?.credentials.get(i)?;
            Some(c.name.as_str())
        }),
        endpoint: endpoint.as_str(),
        operation: op.as_str(),
        attempts: ctx.attempts,
        cache,
        rate_limit: match refusal {
            Some(Refusal::RateLimited(i)) => RateLimit::Limited(policy(i)),
            _ if ctx.obs.limited => RateLimit::Allowed,
            _ => RateLimit::None,
        },
        tls_version: tls.map(|t| &*t.version),
        sni: conn_info(session).and_then(|c| c.sni.as_deref()),
        http_version: match req.version {
            http::Version::HTTP_09 => "HTTP/0.9",
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2",
            http::Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        },
        user_agent: req.headers.get(http::header::USER_AGENT).map(|v| v.as_bytes()),
        error,
    };
    let mut line = Vec::with_capacity(accesslog::LINE_CAPACITY);
    accesslog::encode(&record, &mut line);
    accesslog::log(line);
}

/// The status page's entry for a failed or refused request (error paths only).
fn recent_error(session: &Session, e: Option<&Error>, ctx: &Ctx, status: u16) -> metrics::RecentError {
    let req = session.req_header();
    let rt = &*ctx.rt;
    let mut error = match (ctx.obs.refusal, e) {
        (Some(Refusal::RateLimited(i)), _) => format!(
            "rate limit `{}` exceeded",
            rt.limiter.policies.get(i).map_or("?", |p| p.policy.name.as_str())
        ),
        (Some(Refusal::Returned), _) => format!(
            "answered by route `{}` (return)",
            rt.route(ctx).map_or("?", |r| r.name.as_str())
        ),
        (Some(r), _) => r.reason().to_string(),
        (None, Some(e)) => e.to_string(),
        (None, None) => format!("upstream answered {status}"),
    };
    if error.len() > ERROR_TEXT {
        let mut cut = ERROR_TEXT;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
    }
    metrics::RecentError {
        unix_ms: crate::timefmt::unix_ms(std::time::SystemTime::now()),
        request_id: ctx
            .request_id
            .as_ref()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default(),
        method: req.method.as_str().to_string(),
        path: accesslog::redact::target(req.uri.path(), req.uri.query()),
        status,
        upstream: rt.pool(ctx).map(|p| p.name().to_string()),
        error,
    }
}
