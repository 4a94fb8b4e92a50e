//! Rate-limit glue: which of a route's policies count a request, their decisions, and the
//! `RateLimit-Policy` / `RateLimit` header values.

use pingora::proxy::Session;

use super::Ctx;
use crate::ratelimit;
use crate::routing::{Route, RouteMatch};
use crate::runtime::Runtime;
use crate::scim::error::ScimError;

impl Runtime {
    /// The key and index of each of the route's policies that counts this request.
    fn applicable<'r>(
        &'r self,
        session: &'r Session,
        ctx: &'r Ctx,
        m: &'r RouteMatch,
        route: &'r Route,
    ) -> impl Iterator<Item = (usize, u64)> + 'r {
        let facts = self.facts(session, ctx, m);
        route.limits.iter().filter_map(move |&i| {
            let p = &self.limiter.policies.get(i)?.policy;
            if p.classes != 0 && p.classes & m.view.class.bit() == 0 {
                return None;
            }
            Some((i, self.hasher.combined(&p.key, &facts)))
        })
    }

    /// Local limits are plain synchronous code, so the common request future stays small.
    pub(super) fn check_limits_local(
        &self,
        session: &Session,
        ctx: &mut Ctx,
        m: &RouteMatch,
        route: &Route,
    ) -> Option<ScimError> {
        let mut report = LimitReport::new();
        let mut refused = None;
        let mut refused_by = None;
        for (i, key) in self.applicable(session, ctx, m, route) {
            let Some(state) = self.limiter.policies.get(i) else {
                continue;
            };
            refused = report.record(state, &state.local.check(key));
            if refused.is_some() {
                refused_by = Some(i);
                break;
            }
        }
        ctx.rate_headers = report.finish();
        ctx.obs.limits(ctx.rate_headers.is_some(), refused_by);
        refused
    }

    /// With a shared store each decision is a Redis round trip (or the local fallback).
    pub(super) async fn check_limits_shared(
        &self,
        session: &Session,
        ctx: &mut Ctx,
        m: &RouteMatch,
        route: &Route,
    ) -> Option<ScimError> {
        let mut report = LimitReport::new();
        let mut refused = None;
        let mut refused_by = None;
        let wanted: Vec<(usize, u64)> = self.applicable(session, ctx, m, route).collect();
        for (i, key) in wanted {
            let (Some(state), Some(d)) = (self.limiter.policies.get(i), self.limiter.check(i, key).await) else {
                continue;
            };
            refused = report.record(state, &d);
            if refused.is_some() {
                refused_by = Some(i);
                break;
            }
        }
        ctx.rate_headers = report.finish();
        ctx.obs.limits(ctx.rate_headers.is_some(), refused_by);
        refused
    }
}

/// Accumulates the `RateLimit-Policy` / `RateLimit` values of one request's decisions.
struct LimitReport {
    policy: String,
    limit: String,
}

impl LimitReport {
    /// Sized for one or two policies, so the values are written without regrowing.
    fn new() -> Self {
        LimitReport {
            policy: String::with_capacity(64),
            limit: String::with_capacity(64),
        }
    }

    /// Adds a decision; a refusal becomes the 429 answer.
    fn record(&mut self, state: &ratelimit::PolicyState, d: &ratelimit::Decision) -> Option<ScimError> {
        if !self.policy.is_empty() {
            self.policy.push_str(", ");
            self.limit.push_str(", ");
        }
        self.policy.push_str(&state.item);
        ratelimit::write_limit_item(&mut self.limit, &state.policy, d);
        if d.allowed {
            return None;
        }
        let p = &state.policy;
        let detail = format!(
            "rate limit `{}` exceeded ({}/{}s)",
            p.name,
            p.rate.count,
            p.rate.window.as_secs().max(1)
        );
        Some(ScimError::new(429, detail).retry_after(d.retry_after_secs()))
    }

    fn finish(self) -> Option<(String, String)> {
        (!self.policy.is_empty()).then_some((self.policy, self.limit))
    }
}
