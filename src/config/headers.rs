//! `routes[].headers`: request and response header rules, checked and compiled into
//! [`HeaderRules`] (the request path never sees the YAML or re-parses a value).

use http::{header, HeaderName};
use serde_yaml::Value;

use super::reader::{self as r, join, Problems};
use super::Tenancy;
use crate::header_rules::{HeaderRules, RuleSet, Template, Var};
use crate::routing::Route;

pub const HEADERS: &[&str] = &["request", "response"];
pub const HEADER_RULES: &[&str] = &["set", "add", "remove"];

/// Managed per connection by each hop; a rule could only break framing or keep-alive (the nginx
/// import leaves rules on them out for the same reason).
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];
/// Written by the proxy itself on every request (and `X-Request-Id` on every answer).
const PROXY_OWNED: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];
/// Written by the proxy on answers of rate-limited routes.
const ANSWER_OWNED: &[&str] = &["ratelimit", "ratelimit-policy"];

/// Request headers a rule may not name besides the fixed lists above.
#[derive(Default)]
pub struct Guarded<'a> {
    /// The listeners' `tls.forward_client_cert` names.
    pub cert: Vec<&'a str>,
    /// The tenancy header (`tenancy.source: header`): the tenant the proxy checked (auth,
    /// limits, affinity, cache) must be the one the upstream gets.
    pub tenant: Option<&'a str>,
}

impl<'a> Guarded<'a> {
    /// Reads the tenancy header from the raw `tenancy` section, which is built after the
    /// routes (it needs them); a malformed section is reported there.
    pub fn new(cert: Vec<&'a str>, tenancy: Option<&'a Value>) -> Self {
        let t = tenancy.and_then(Value::as_mapping);
        let field = |k: &str| t.and_then(|t| t.get(k)).and_then(Value::as_str);
        Guarded {
            cert,
            tenant: field("header").filter(|_| field("source") == Some("header")),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Request,
    Response,
}

/// Parses `headers`.
pub fn route_headers(p: &mut Problems, at: &str, v: &Value, guarded: &Guarded) -> Option<Box<HeaderRules>> {
    let m = r::map(p, at, v, HEADERS)?;
    // A set left empty by refused rules is already reported.
    let set = |dir: Dir, key: &str, p: &mut Problems| {
        rule_set(p, &join(at, key), r::get(m, key)?, dir, guarded).filter(|r| !r.is_empty())
    };
    let request = set(Dir::Request, "request", p);
    let response = set(Dir::Response, "response", p);
    if m.is_empty() {
        p.add(at, "has no rules; give `request` and/or `response`, or remove it");
    }
    Some(Box::new(HeaderRules { request, response }))
}

fn rule_set(p: &mut Problems, at: &str, v: &Value, dir: Dir, guarded: &Guarded) -> Option<RuleSet> {
    let m = r::map(p, at, v, HEADER_RULES)?;
    if m.is_empty() {
        p.add(at, "has no rules; give `set`, `add` or `remove`, or remove it");
        return None;
    }
    let mut rules = RuleSet::default();
    if let Some(v) = r::get(m, "remove") {
        for (nat, name) in r::strings(p, &join(at, "remove"), v).unwrap_or_default() {
            let Some(n) = header_name(p, &nat, &name, dir, guarded) else {
                continue;
            };
            if dir == Dir::Request && n == header::HOST {
                p.add(
                    &nat,
                    "the upstream needs a `Host`; to send another one, use `set: {Host: …}`",
                );
            } else if rules.remove.contains(&n) {
                p.add(&nat, format!("`{name}` is listed twice; keep one"));
            } else {
                rules.remove.push(n);
            }
        }
    }
    for key in ["set", "add"] {
        let Some(v) = r::get(m, key) else { continue };
        let kat = join(at, key);
        let Some(map) = v.as_mapping() else {
            p.add(
                &kat,
                "expected a mapping of header name → value, e.g. `{X-Frame-Options: DENY}`",
            );
            continue;
        };
        for (k, val) in map {
            let Some(name) = k.as_str() else {
                p.add(&kat, "header names must be strings");
                continue;
            };
            let nat = join(&kat, name);
            let Some(n) = header_name(p, &nat, name, dir, guarded) else {
                continue;
            };
            let text = match val {
                Value::Null => String::new(),
                v => match r::string(p, &nat, v) {
                    Some(s) => s,
                    None => continue,
                },
            };
            let t = match Template::parse(&text) {
                Ok(t) => t,
                Err(e) => {
                    p.add(&nat, e);
                    continue;
                }
            };
            if key == "add" {
                if t.is_empty() {
                    p.add(
                        &nat,
                        "an empty value adds nothing; give a value, or list the header under `remove`",
                    );
                    continue;
                }
                rules.add.push((n, t));
                continue;
            }
            if rules.remove.contains(&n) {
                p.add(&nat, format!("`{name}` is also under `remove`; keep one of the two"));
            } else if rules.set.iter().any(|(s, _)| *s == n) {
                p.add(&nat, format!("`{name}` is set twice (names ignore case); keep one"));
            } else if t.is_empty() && n == header::HOST {
                p.add(
                    &nat,
                    "the upstream needs a `Host`; give a value such as `$host`, or remove this rule",
                );
            } else if t.is_empty() {
                // nginx: `proxy_set_header X ""` sends no X at all.
                rules.remove.push(n);
            } else {
                rules.set.push((n, t));
            }
        }
    }
    Some(rules)
}

/// A header a rule may name in this direction, or the problem saying why not.
fn header_name(p: &mut Problems, at: &str, name: &str, dir: Dir, guarded: &Guarded) -> Option<HeaderName> {
    let Ok(n) = HeaderName::from_bytes(name.trim().as_bytes()) else {
        p.add(at, format!("`{name}` is not a valid header name"));
        return None;
    };
    let s = n.as_str();
    // Upstreams that read headers by their CGI name (WSGI, Rack, PHP) take `X_Client_Cert` for
    // `X-Client-Cert`: towards them, a guarded header may not be reached by that spelling either.
    let request = dir == Dir::Request;
    let find = |list: &[&'static str]| list.iter().copied().find(|g| same(s, g, request));
    let why = if let Some(g) = find(HOP_BY_HOP) {
        Some(alias(
            name,
            g,
            "is a hop-by-hop or framing header that each connection manages itself",
        ))
    } else if let Some(g) = find(PROXY_OWNED) {
        Some(alias(name, g, "is written by the proxy itself and keeps its own rule"))
    } else if let Some(g) = guarded.cert.iter().find(|c| same(s, c, request)) {
        Some(alias(
            name,
            g,
            "carries the verified client certificate (a listener's tls.forward_client_cert)",
        ))
    } else if let Some(g) = guarded.tenant.filter(|t| request && same(s, t, true)) {
        Some(alias(
            name,
            g,
            "is the tenancy header: the upstream must get the tenant the proxy checked and keyed on (auth, rate limits, affinity, cache)",
        ))
    } else if dir == Dir::Response && n == header::HOST {
        Some("`Host` is a request header; move the rule to `headers.request`".to_string())
    } else if dir == Dir::Response && ANSWER_OWNED.contains(&s) {
        Some(format!(
            "`{name}` is written by the proxy on rate-limited routes; remove this rule"
        ))
    } else {
        None
    };
    match why {
        Some(msg) => {
            p.add(at, msg);
            None
        }
        None => Some(n),
    }
}

/// `s` (lower case) names `guarded`, exactly or (towards the upstream) by its CGI spelling.
fn same(s: &str, guarded: &str, cgi: bool) -> bool {
    if cgi {
        crate::proxy::policy::same_for_cgi(s, guarded)
    } else {
        s.eq_ignore_ascii_case(guarded)
    }
}

/// The refusal of a rule on `name`, which is `guarded` (perhaps by another spelling).
fn alias(name: &str, guarded: &str, why: &str) -> String {
    if name.trim().contains('_') {
        format!(
            "`{name}` is `{guarded}` to servers that read headers by their CGI name (WSGI, Rack, PHP), and `{guarded}` {why}; remove this rule"
        )
    } else {
        format!("`{name}` {why}; remove this rule")
    }
}

/// `$tenant` must have a tenant to read on the routes that use it.
pub fn check_tenant(p: &mut Problems, routes: &[Route], tenancy: &Tenancy) {
    for (i, route) in routes.iter().enumerate() {
        if !route.headers.as_ref().is_some_and(|h| h.uses(&Var::Tenant)) {
            continue;
        }
        let at = join(&r::index("routes", i), "headers");
        match tenancy {
            Tenancy::None => p.add(
                &at,
                "uses `$tenant`, but no tenancy is configured; add a `{tenant}` segment to a base_path or set `tenancy`",
            ),
            Tenancy::Path if !route.base.has_tenant() => p.add(
                &at,
                format!(
                    "uses `$tenant`, but this route's base_path `{}` has no `{{tenant}}` segment to take it from",
                    route.base.text
                ),
            ),
            _ => {}
        }
    }
}
