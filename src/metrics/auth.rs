//! The edge credential check's series ([`crate::edgeauth`]): refusals by route and reason,
//! acceptances by route and credential name. Each route's handles are resolved once per
//! config load ([`crate::edgeauth::Counters`]); a request only adds.

use prometheus::{IntCounter, IntCounterVec, Registry};

pub struct AuthMetrics {
    refused: IntCounterVec,
    accepted: IntCounterVec,
}

impl AuthMetrics {
    pub fn new(r: &Registry) -> prometheus::Result<Self> {
        Ok(AuthMetrics {
            refused: super::counter_vec(
                r,
                "scimitar_auth_refusals_total",
                "Requests a route's `auth` refused: reason missing (no bearer token), invalid (unknown token), tenant (another tenant's token)",
                &["route", "reason"],
            )?,
            accepted: super::counter_vec(
                r,
                "scimitar_auth_accepted_total",
                "Requests a route's `auth` let through, by the name of the token entry that matched",
                &["route", "credential"],
            )?,
        })
    }

    pub fn refused(&self, route: &str, reason: &str) -> prometheus::Result<IntCounter> {
        self.refused.get_metric_with_label_values(&[route, reason])
    }

    pub fn accepted(&self, route: &str, credential: &str) -> prometheus::Result<IntCounter> {
        self.accepted.get_metric_with_label_values(&[route, credential])
    }

    /// Drops the series of routes (and credentials) a reload removed; `live` holds each route
    /// with `auth` and its credential names.
    pub fn retain(&self, live: &[(&str, Vec<&str>)]) {
        let route_of = |l: &std::collections::HashMap<&str, &str>| {
            let route = l.get("route").copied().unwrap_or("");
            live.iter().find(|(r, _)| *r == route)
        };
        super::prune(&self.refused, |l| route_of(l).is_none());
        super::prune(&self.accepted, |l| {
            let name = l.get("credential").copied().unwrap_or("");
            route_of(l).is_none_or(|(_, names)| !names.contains(&name))
        });
    }
}
