//! `upstream_base_path`: the route's matched base path is replaced by another prefix on the
//! way upstream, as nginx's `proxy_pass http://pool/v2/;` under `location /scim/v2/` does; the
//! query is kept.
//!
//! The whole matched prefix is replaced, a `{tenant}` segment included (nginx replaces exactly
//! the location prefix). `{tenant}` in the upstream base path puts the matched tenant back
//! where the servers expect it: `/scim/{tenant}/v2` → `/{tenant}/v2`.

use super::{BasePath, BaseSeg};
use crate::scim::path::segments;

/// A parsed `upstream_base_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamBase {
    segs: Vec<BaseSeg>,
    /// Ends with `/`: a request for the bare base path keeps that slash.
    slash: bool,
    len: usize,
}

impl UpstreamBase {
    /// Parses the prefix for a route whose base path is `base`; the error says the fix.
    pub fn parse(s: &str, base: &BasePath) -> Result<Self, String> {
        if !s.starts_with('/') {
            return Err(format!("`{s}` must start with `/`, e.g. `/v2`"));
        }
        if s.contains(['?', '#']) {
            return Err(format!(
                "`{s}` has a query or fragment; give a path only (the client's query is kept)"
            ));
        }
        if s.contains("//") {
            return Err(format!("`{s}` has an empty segment (`//`); write each `/` once"));
        }
        let mut segs = Vec::new();
        for part in s.split('/').filter(|p| !p.is_empty()) {
            if part == "{tenant}" {
                if !base.has_tenant() {
                    return Err(format!(
                        "`{{tenant}}` in `{s}` has no tenant to take: the route's base_path `{}` has no `{{tenant}}` segment",
                        base.text
                    ));
                }
                segs.push(BaseSeg::Tenant);
            } else if part.contains(['{', '}']) {
                return Err(format!(
                    "`{part}` in `{s}`: the only placeholder is `{{tenant}}`, as a whole segment"
                ));
            } else if part == "." || part == ".." {
                return Err(format!("`{part}` in `{s}` is not allowed in a base path"));
            } else if http::uri::PathAndQuery::try_from(format!("/{part}")).is_err() || part.contains('%') {
                return Err(format!(
                    "`{part}` in `{s}` has a character a path prefix cannot carry as is (a space, `%`, a control character); use letters, digits and -._~"
                ));
            } else {
                segs.push(BaseSeg::Literal(part.to_string()));
            }
        }
        Ok(UpstreamBase {
            segs,
            slash: s.len() > 1 && s.ends_with('/'),
            len: s.len(),
        })
    }

    /// The upstream request target for `path` (normalised, matched by `base`), its tenant
    /// segment's text, and the client's query.
    pub fn target(&self, base: &BasePath, path: &str, tenant: &str, query: Option<&str>) -> String {
        let rest = after_base(base, path);
        let mut out = String::with_capacity(self.len + tenant.len() + rest.len() + query.map_or(0, |q| q.len() + 1));
        for seg in &self.segs {
            out.push('/');
            match seg {
                BaseSeg::Literal(l) => out.push_str(l),
                BaseSeg::Tenant => out.push_str(tenant),
            }
        }
        if !rest.is_empty() {
            out.push_str(rest);
        } else if out.is_empty() || self.slash {
            out.push('/');
        }
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    }
}

/// What follows the base path's segments in `path` (from its `/`, or empty).
fn after_base<'p>(base: &BasePath, path: &'p str) -> &'p str {
    let Some(last) = base.segs.len().checked_sub(1) else {
        return path;
    };
    segments(path)
        .nth(last)
        .and_then(|s| path.get(s.end as usize..))
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(to: &str, base: &str) -> (UpstreamBase, BasePath) {
        let b = BasePath::parse(base).unwrap();
        (UpstreamBase::parse(to, &b).unwrap(), b)
    }

    #[test]
    fn the_matched_prefix_is_replaced_and_the_query_kept() {
        let (u, b) = up("/v2", "/scim/v2");
        assert_eq!(u.target(&b, "/scim/v2/Users/1", "", None), "/v2/Users/1");
        assert_eq!(
            u.target(&b, "/scim/v2/Users", "", Some("filter=userName%20eq%20%22a%22")),
            "/v2/Users?filter=userName%20eq%20%22a%22"
        );
        assert_eq!(u.target(&b, "/scim/v2", "", None), "/v2");
        assert_eq!(u.target(&b, "/scim/v2/", "", None), "/v2/");
        assert_eq!(u.target(&b, "/scim/v2", "", Some("a=b")), "/v2?a=b");

        let (u, b) = up("/v2/", "/scim/v2");
        assert_eq!(u.target(&b, "/scim/v2/Users", "", None), "/v2/Users", "no `//`");
        assert_eq!(u.target(&b, "/scim/v2", "", None), "/v2/");

        let (u, b) = up("/", "/scim/v2");
        assert_eq!(u.target(&b, "/scim/v2/Users", "", None), "/Users");
        assert_eq!(u.target(&b, "/scim/v2", "", Some("x=1")), "/?x=1");

        let (u, b) = up("/api/scim/v2", "/");
        assert_eq!(u.target(&b, "/Users", "", None), "/api/scim/v2/Users");
    }

    #[test]
    fn a_tenant_segment_is_replaced_or_carried() {
        let (u, b) = up("/v2", "/{tenant}/scim/v2");
        assert_eq!(u.target(&b, "/acme/scim/v2/Users", "acme", None), "/v2/Users");
        let (u, b) = up("/{tenant}/v2", "/scim/{tenant}/v2");
        assert_eq!(
            u.target(&b, "/scim/acme/v2/Groups", "acme", Some("count=1")),
            "/acme/v2/Groups?count=1"
        );
    }

    #[test]
    fn bad_prefixes_are_explained() {
        let b = BasePath::parse("/scim/v2").unwrap();
        let err = |s: &str| UpstreamBase::parse(s, &b).unwrap_err();
        assert!(err("v2").contains("must start with `/`"));
        assert!(err("/v2?x=1").contains("query"));
        assert!(err("/v2//x").contains("empty segment"));
        assert!(err("/{tenant}/v2").contains("no `{tenant}` segment"));
        assert!(err("/{org}/v2").contains("only placeholder"));
        assert!(err("/a/../b").contains("not allowed"));
        assert!(err("/a b").contains("cannot carry"));
        assert!(err("/a%2Fb").contains("cannot carry"));
    }
}
