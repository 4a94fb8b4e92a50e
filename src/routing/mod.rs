//! Routes: a SCIM base path template (`/scim/v2`, `/{tenant}/scim/v2`), optional endpoint
//! classes and methods → an upstream pool. First match wins. Built once from the config; the
//! request path only walks precomputed segments.

mod answer;
mod upstream_path;

pub use answer::FixedAnswer;
pub use upstream_path::{client_base, UpstreamBase};

use crate::scim::path::{seg_eq_exact, segments, Span};
use crate::scim::{classify, Method, ScimView};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseSeg {
    Literal(String),
    Tenant,
}

/// A parsed base path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasePath {
    pub segs: Vec<BaseSeg>,
    pub text: String,
}

impl BasePath {
    /// Parses a template; the error says what to write instead.
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.starts_with('/') {
            return Err(format!("`{s}` must start with `/`, e.g. `/scim/v2`"));
        }
        let mut segs = Vec::new();
        for part in s.split('/').filter(|p| !p.is_empty()) {
            if part == "{tenant}" {
                if segs.contains(&BaseSeg::Tenant) {
                    return Err(format!("`{s}` has `{{tenant}}` twice; use it once"));
                }
                segs.push(BaseSeg::Tenant);
            } else if part.contains(['{', '}']) {
                return Err(format!(
                    "`{part}` in `{s}`: the only placeholder is `{{tenant}}`, as a whole segment"
                ));
            } else if part == "." || part == ".." || part.contains(['?', '#', '%']) {
                return Err(format!("`{part}` in `{s}` is not allowed in a base path"));
            } else {
                segs.push(BaseSeg::Literal(part.to_string()));
            }
        }
        Ok(BasePath {
            segs,
            text: s.to_string(),
        })
    }

    pub fn has_tenant(&self) -> bool {
        self.segs.contains(&BaseSeg::Tenant)
    }

    /// Matches the start of `path`; on success returns the tenant span (if templated) and the
    /// remaining segments. Literal segments compare case-sensitively, as nginx locations do.
    fn strip<'p>(&self, path: &'p str) -> Option<(Option<Span>, impl Iterator<Item = Span> + 'p)> {
        let mut it = segments(path);
        let mut tenant = None;
        for want in &self.segs {
            let got = it.next()?;
            match want {
                BaseSeg::Tenant => tenant = Some(got),
                BaseSeg::Literal(l) => {
                    if !seg_eq_exact(got.of(path), l) {
                        return None;
                    }
                }
            }
        }
        Some((tenant, it))
    }
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub base: BasePath,
    /// Bitmask of [`crate::scim::EndpointClass::bit`]; 0 means any.
    pub classes: u16,
    /// Bitmask of [`Method::bit`]; 0 means any.
    pub methods: u16,
    /// Index into the pool list; `None` only for a route that answers itself (`answer`).
    pub upstream: Option<usize>,
    /// Largest request body per endpoint class (indexed by `EndpointClass as usize`).
    pub max_body: [u64; 9],
    pub affinity: Option<crate::affinity::Affinity>,
    /// Indices into the rate-limit policies, in the order they are checked.
    pub limits: Vec<usize>,
    /// Response caching for this route's reads (`None`: off).
    pub cache: Option<crate::cache::RouteCache>,
    /// The edge credential check (`None`: the route is open).
    pub auth: Option<crate::edgeauth::RouteAuth>,
    /// Header rules to the upstream and to the client (`None`: none, nothing runs).
    pub headers: Option<Box<crate::header_rules::HeaderRules>>,
    /// Replaces the matched base path on the way upstream.
    pub upstream_base: Option<UpstreamBase>,
    /// `return`: every request is answered with this, never proxied.
    pub answer: Option<FixedAnswer>,
}

impl Route {
    /// A route with no filters, no policies and the default body limit.
    pub fn new(name: &str, base: BasePath, upstream: usize) -> Self {
        Route {
            name: name.to_string(),
            base,
            classes: 0,
            methods: 0,
            upstream: Some(upstream),
            max_body: [crate::config::DEFAULT_MAX_BODY; 9],
            affinity: None,
            limits: Vec::new(),
            cache: None,
            auth: None,
            headers: None,
            upstream_base: None,
            answer: None,
        }
    }

    pub fn max_body_for(&self, class: crate::scim::EndpointClass) -> u64 {
        self.max_body[class as usize]
    }

    /// The rules for answers to the client, when the route has any.
    pub fn response_rules(&self) -> Option<&crate::header_rules::RuleSet> {
        self.headers.as_ref()?.response.as_ref()
    }

    /// The rules for requests to the upstream, when the route has any.
    pub fn request_rules(&self) -> Option<&crate::header_rules::RuleSet> {
        self.headers.as_ref()?.request.as_ref()
    }
}

/// The outcome of routing one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch {
    pub route: usize,
    pub view: ScimView,
    pub tenant: Option<Span>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// No base path matches: not a SCIM endpoint this proxy serves.
    NotScim,
    /// A base path matches but no route accepts this class/method.
    Filtered,
}

#[derive(Debug, Default)]
pub struct Router {
    pub routes: Vec<Route>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Self {
        Router { routes }
    }

    /// `path` must already be normalised (see [`crate::scim::path::normalize`]).
    pub fn find(&self, method: Method, path: &str) -> Result<RouteMatch, NoRoute> {
        let mut base_matched = false;
        for (i, r) in self.routes.iter().enumerate() {
            let Some((tenant, rest)) = r.base.strip(path) else {
                continue;
            };
            base_matched = true;
            let view = classify(method, path, rest);
            if r.classes != 0 && r.classes & view.class.bit() == 0 {
                continue;
            }
            if r.methods != 0 && r.methods & method.bit() == 0 {
                continue;
            }
            return Ok(RouteMatch { route: i, view, tenant });
        }
        Err(if base_matched {
            NoRoute::Filtered
        } else {
            NoRoute::NotScim
        })
    }
}

#[cfg(test)]
mod tests;
