//! `upstream_base_path`: the route's matched base path is replaced by another prefix on the
//! way upstream, as nginx's `proxy_pass http://pool/v2/;` under `location /scim/v2/` does; the
//! query is kept.
//!
//! The whole matched prefix is replaced, a `{tenant}` segment included (nginx replaces exactly
//! the location prefix). `{tenant}` in the upstream base path puts the matched tenant back
//! where the servers expect it: `/scim/{tenant}/v2` → `/{tenant}/v2`.
//!
//! On the way back, a `Location` or `Content-Location` under the upstream base path gets the
//! client's base path again ([`UpstreamBase::client_location`], nginx's implicit
//! `proxy_redirect default`), so an IdP follows the URL through the proxy.

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

impl UpstreamBase {
    /// A `Location` (or `Content-Location`) value as the client should get it: when its path
    /// starts with this prefix at a segment boundary (`tenant` filling a `{tenant}` segment),
    /// the prefix becomes `client_base`, the path the client used for the route's base.
    /// Scheme and authority are kept. `None`: leave the value as it is (another prefix, a
    /// relative reference).
    pub fn client_location(&self, location: &str, tenant: &str, client_base: &str) -> Option<String> {
        let at = path_start(location)?;
        let (origin, path) = location.split_at(at);
        let rest = self.strip(path, tenant)?;
        let mut out = String::with_capacity(origin.len() + client_base.len() + rest.len() + 1);
        out.push_str(origin);
        out.push_str(client_base);
        if client_base.is_empty() && !rest.starts_with('/') {
            out.push('/');
        }
        out.push_str(rest);
        Some(out)
    }

    /// What follows this prefix in `path` (which starts with `/`), when it starts with it.
    fn strip<'p>(&self, path: &'p str, tenant: &str) -> Option<&'p str> {
        let mut rest = path;
        for seg in &self.segs {
            let want = match seg {
                BaseSeg::Literal(l) => l.as_str(),
                BaseSeg::Tenant if tenant.is_empty() => return None,
                BaseSeg::Tenant => tenant,
            };
            rest = rest.strip_prefix('/')?.strip_prefix(want)?;
            // `/v2x` is not under `/v2`.
            if !matches!(rest.as_bytes().first(), None | Some(b'/' | b'?' | b'#')) {
                return None;
            }
        }
        Some(rest)
    }
}

/// Where the path of a URL reference starts: after `scheme://authority` or `//authority`, or
/// at 0 for an absolute path; `None` for a relative reference or a URL without a path.
fn path_start(s: &str) -> Option<usize> {
    let authority = if let Some(rest) = s.strip_prefix("//") {
        s.len() - rest.len()
    } else if s.starts_with('/') {
        return Some(0);
    } else {
        let colon = s.find("://")?;
        let scheme = &s[..colon];
        let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !valid {
            return None;
        }
        colon + 3
    };
    let end = s[authority..].find(['/', '?', '#']).map_or(s.len(), |i| authority + i);
    s[end..].starts_with('/').then_some(end)
}

/// The part of `path` (normalised, matched by `base`) that the base path matched: what the
/// client used for the route's base, its tenant segment included.
pub fn client_base<'p>(base: &BasePath, path: &'p str) -> &'p str {
    &path[..path.len() - after_base(base, path).len()]
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
    fn locations_under_the_upstream_prefix_get_the_client_base() {
        let (u, _) = up("/v2", "/scim/v2");
        let back = |loc: &str| u.client_location(loc, "", "/scim/v2");
        assert_eq!(
            back("http://scim.example:8080/v2/Users/1").as_deref(),
            Some("http://scim.example:8080/scim/v2/Users/1"),
            "scheme and authority kept"
        );
        assert_eq!(
            back("https://h/v2/Users/1?x=1#f").as_deref(),
            Some("https://h/scim/v2/Users/1?x=1#f")
        );
        assert_eq!(back("/v2/Groups/g").as_deref(), Some("/scim/v2/Groups/g"));
        assert_eq!(back("//h/v2/Users").as_deref(), Some("//h/scim/v2/Users"));
        assert_eq!(back("/v2").as_deref(), Some("/scim/v2"));
        assert_eq!(back("/v2/").as_deref(), Some("/scim/v2/"));
        assert_eq!(back("/v2?a=b").as_deref(), Some("/scim/v2?a=b"));
        assert_eq!(
            back("/v2/Users?next=http://h/v2").as_deref(),
            Some("/scim/v2/Users?next=http://h/v2"),
            "only the prefix"
        );
        // Only at a segment boundary, only the prefix itself, only absolute references.
        for unchanged in [
            "/v2x/Users/1",
            "http://h/v2x/Users/1",
            "/v1/Users/1",
            "/api/v2/Users/1",
            "/V2/Users/1",
            "v2/Users/1",
            "Users/1",
            "http://h",
            "http://h?x=/v2/Users",
            "",
            "urn:x:/v2",
            "a b://h/v2/Users",
        ] {
            assert_eq!(back(unchanged), None, "{unchanged}");
        }

        // The client's base comes with its tenant segment; a `{tenant}` prefix is the tenant's.
        let (u, b) = up("/{tenant}/v2", "/t/{tenant}/scim");
        let base = client_base(&b, "/t/acme/scim/Users");
        assert_eq!(base, "/t/acme/scim");
        assert_eq!(
            u.client_location("http://h/acme/v2/Users/1", "acme", base).as_deref(),
            Some("http://h/t/acme/scim/Users/1")
        );
        assert_eq!(u.client_location("http://h/globex/v2/Users/1", "acme", base), None);
        assert_eq!(u.client_location("http://h/acme/v2x/Users/1", "acme", base), None);
        assert_eq!(u.client_location("/acme/v2/Users", "", base), None, "no tenant matched");

        // An upstream at the root: everything is under it.
        let (u, b) = up("/", "/scim/v2");
        assert_eq!(client_base(&b, "/scim/v2"), "/scim/v2");
        assert_eq!(
            u.client_location("/Users/1", "", "/scim/v2").as_deref(),
            Some("/scim/v2/Users/1")
        );
        // A client base at the root: the path keeps its leading `/`.
        let (u, b) = up("/api/v2/", "/");
        assert_eq!(client_base(&b, "/Users"), "");
        assert_eq!(u.client_location("/api/v2", "", "").as_deref(), Some("/"));
        assert_eq!(u.client_location("/api/v2?x", "", "").as_deref(), Some("/?x"));
        assert_eq!(
            u.client_location("/api/v2/Users/1", "", "").as_deref(),
            Some("/Users/1")
        );
        // The client's own spelling of the base, from the normalised path it was routed on.
        let b = BasePath::parse("/{tenant}/scim/v2").unwrap();
        assert_eq!(client_base(&b, "/ac%6De/scim/v2/"), "/ac%6De/scim/v2");
        assert_eq!(client_base(&b, "/acme/scim/v2"), "/acme/scim/v2");
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
