//! Glue for what a route changes on the way through: its header rules (their variables read
//! from the session), its upstream base path (and the `Location` that comes back under it),
//! and the answer of a `return` route. The rules themselves are [`crate::header_rules`] and
//! [`crate::routing`]'s, compiled at load.
//!
//! Response rules go on every answer to a request of the route: the upstream's (in
//! `response_filter`), cache hits, and the proxy's own (`return`, the 401/403 of `auth`, 413,
//! 429, 503 shed, and the 502/503/504/408 of `fail_to_proxy`), as nginx's `add_header …
//! always` would. An answer made before a route is known (404 for no route, a refused head)
//! has no route rules.

use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::Result;

use super::headers::{self, Additions};
use super::{answer_headers, is_tls, path, Ctx};
use crate::header_rules::Vars;
use crate::routing::{client_base, FixedAnswer, Route};
use crate::runtime::Runtime;

fn vars<'a>(rt: &'a Runtime, session: &'a Session, ctx: &'a Ctx) -> Vars<'a> {
    Vars {
        req: session.req_header(),
        peer: session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip()),
        tls: is_tls(session),
        request_id: ctx.request_id.as_ref(),
        tenant: rt.tenant(session, ctx),
    }
}

/// Sets `add` on an answer to the client, then the route's response rules.
pub(super) fn answer_with_rules(
    session: &Session,
    ctx: &Ctx,
    resp: &mut ResponseHeader,
    add: &mut Additions,
) -> Result<()> {
    let rt = &*ctx.rt;
    match rt.route(ctx).and_then(Route::response_rules) {
        None => headers::apply_to_response(resp, add),
        Some(rules) => headers::apply_to_response_with(resp, add, Some((rules, &vars(rt, session, ctx)))),
    }
}

/// Sets `add` on the request to the upstream, then the route's request rules (after the
/// proxy's own headers, so `set: {Host: …}` wins over `preserve_host`).
pub(super) fn request_with_rules(
    session: &Session,
    ctx: &Ctx,
    up: &mut RequestHeader,
    add: &mut Additions,
) -> Result<()> {
    let rt = &*ctx.rt;
    match rt.route(ctx).and_then(Route::request_rules) {
        None => headers::apply_to_request(up, add),
        Some(rules) => headers::apply_to_request_with(up, add, Some((rules, &vars(rt, session, ctx)))),
    }
}

/// The upstream target of a route with `upstream_base_path` (`None` for any other route).
pub(super) fn upstream_target(session: &Session, ctx: &Ctx, route: &Route) -> Option<String> {
    let to = route.upstream_base.as_ref()?;
    let m = ctx.route?;
    let p = path(session, ctx);
    let tenant = m.tenant.map_or("", |s| s.of(p));
    Some(to.target(&route.base, p, tenant, session.req_header().uri.query()))
}

/// On a route with `upstream_base_path`, the upstream's `Location` and `Content-Location`
/// under that prefix point back at the client's base path (nginx's implicit
/// `proxy_redirect default`): an IdP takes a create's `Location` as the user's URL. Runs on the
/// upstream's answer before the cache keeps it, so hits and write-through seeds see the same.
/// The body's `meta.location` is left as the upstream wrote it.
pub(super) fn client_locations(session: &Session, ctx: &Ctx, route: &Route, resp: &mut ResponseHeader) -> Result<()> {
    let (Some(to), Some(m)) = (route.upstream_base.as_ref(), ctx.route) else {
        return Ok(());
    };
    let p = path(session, ctx);
    let tenant = m.tenant.map_or("", |s| s.of(p));
    let base = client_base(&route.base, p);
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(v) = resp.headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if let Some(back) = to.client_location(v, tenant, base) {
            resp.insert_header(name, back)?;
        }
    }
    Ok(())
}

/// Answers a request of a `return` route.
pub(super) async fn answer_fixed(session: &mut Session, ctx: &mut Ctx, answer: &FixedAnswer) -> Result<()> {
    let mut h = answer.header()?;
    let mut add = answer_headers(ctx)?;
    answer_with_rules(session, ctx, &mut h, &mut add)?;
    super::send(session, h, answer.body()).await
}
