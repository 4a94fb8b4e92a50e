//! `routes[].upstream_base_path` and `routes[].return`: the route settings that change where a
//! request goes upstream, or answer it without an upstream.

use serde_yaml::{Mapping, Value};

use super::reader::{self as r, join, Problems};
use crate::routing::{BasePath, FixedAnswer, UpstreamBase};

/// Keys that a route answering everything itself would never use.
const NOT_WITH_RETURN: &[&str] = &[
    "auth",
    "upstream",
    "upstream_base_path",
    "affinity",
    "rate_limits",
    "cache",
    "max_body",
];

/// `upstream_base_path` for a route whose base path is `base` (when that one parsed).
pub fn upstream_base_path(p: &mut Problems, at: &str, v: &Value, base: Option<&BasePath>) -> Option<UpstreamBase> {
    let s = r::string(p, at, v)?;
    UpstreamBase::parse(&s, base?).map_err(|e| p.add(at, e)).ok()
}

/// `return: 403` or `return: {status: 403, detail: "…"}`.
pub fn answer(p: &mut Problems, at: &str, v: &Value) -> Option<FixedAnswer> {
    let (status, detail, sat) = match v {
        Value::Mapping(_) => {
            let m = r::map(p, at, v, &["status", "detail"])?;
            let status = r::req(
                p,
                m,
                at,
                "status",
                "give the status to answer with, e.g. `403`",
                |p, path, v| r::uint(p, path, v, 100, 599),
            )?;
            let detail = r::get(m, "detail").and_then(|d| r::string(p, &join(at, "detail"), d));
            (status, detail, join(at, "status"))
        }
        other => (r::uint(p, at, other, 100, 599)?, None, at.to_string()),
    };
    FixedAnswer::new(status as u16, detail).map_err(|e| p.add(&sat, e)).ok()
}

/// A route with `return` answers before credentials, rate limits, cache and upstream: the
/// keys for those would silently do nothing, so they are refused.
pub fn return_only(p: &mut Problems, at: &str, route: &Mapping) {
    for k in NOT_WITH_RETURN {
        if r::get(route, k).is_some() {
            p.add(
                &join(at, k),
                format!(
                    "a `return` route answers every request itself, before credentials, limits, cache or upstream; remove `{k}` or `return`"
                ),
            );
        }
    }
    let request_rules = r::get(route, "headers")
        .and_then(Value::as_mapping)
        .and_then(|h| r::get(h, "request"));
    if request_rules.is_some() {
        p.add(
            &join(at, "headers.request"),
            "a `return` route sends nothing upstream; remove these rules (response rules do apply)",
        );
    }
}
