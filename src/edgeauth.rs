//! The edge credential check (a route's `auth`): a request must carry `Authorization: Bearer`
//! with a token whose SHA-256 is one of the route's, and a token bound to a tenant is only
//! good for that tenant. It runs right after routing, so a flood of unauthenticated requests
//! costs a hash each and never reaches a limit, the cache or an upstream.
//!
//! Everything a refusal sends (the SCIM bodies' details, the `WWW-Authenticate` challenges)
//! is built when the config loads; a check hashes the token and searches a sorted table.

use http::{HeaderMap, HeaderValue};
use prometheus::IntCounter;

use crate::routing::Route;
use crate::scim::error::ScimError;
use crate::token::{self, Digest};

/// One accepted token, known by its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// What logs and metrics name it by (never the token).
    pub name: String,
    pub sha256: Digest,
    /// The only tenant the token is good for; `None`: every tenant of the route.
    pub tenant: Option<String>,
}

/// Why a request was refused (the `reason` label of `scimitar_auth_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No `Authorization`, several, or not `Bearer <token>` (401).
    Missing,
    /// A bearer token that is none of the route's (401, `error="invalid_token"`).
    Invalid,
    /// A known token bound to another tenant (403).
    Tenant,
}

impl Reason {
    pub const ALL: [Reason; 3] = [Reason::Missing, Reason::Invalid, Reason::Tenant];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Invalid => "invalid",
            Reason::Tenant => "tenant",
        }
    }
}

/// A route's compiled `auth` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAuth {
    pub realm: String,
    /// In config order (their index is what a request records).
    pub credentials: Vec<Credential>,
    /// `(digest, index into credentials)`, sorted by digest.
    by_digest: Vec<(Digest, usize)>,
    /// The answers, indexed like [`Reason::ALL`].
    refusals: [ScimError; 3],
}

impl RouteAuth {
    /// Compiles the section; the error is about the realm (the config checks the tokens,
    /// since only it can name their keys).
    pub fn new(realm: String, credentials: Vec<Credential>) -> Result<Self, String> {
        if realm.is_empty()
            || !realm
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(format!(
                "`{realm}` cannot be a realm: it is sent quoted in `WWW-Authenticate`, so use printable ASCII without `\"` or `\\`"
            ));
        }
        let challenge = |error: &str| {
            HeaderValue::try_from(format!("Bearer realm=\"{realm}\"{error}"))
                .map_err(|e| format!("realm `{realm}`: {e}"))
        };
        let refusals = [
            ScimError::new(
                401,
                "this endpoint needs a bearer token: send `Authorization: Bearer <token>`",
            )
            .challenge(challenge("")?),
            ScimError::new(401, "the bearer token is not accepted here")
                .challenge(challenge(", error=\"invalid_token\"")?),
            ScimError::new(403, "the bearer token is not valid for this tenant")
                .challenge(challenge(", error=\"insufficient_scope\"")?),
        ];
        let mut by_digest: Vec<(Digest, usize)> = credentials.iter().enumerate().map(|(i, c)| (c.sha256, i)).collect();
        by_digest.sort_unstable();
        Ok(RouteAuth {
            realm,
            credentials,
            by_digest,
            refusals,
        })
    }

    /// The credential a request presents (its index), or why it is refused. `tenant` is the
    /// request's tenant as the tenancy config reads it.
    pub fn check(&self, headers: &HeaderMap, tenant: Option<&[u8]>) -> Result<usize, Reason> {
        let mut fields = headers.get_all(http::header::AUTHORIZATION).iter();
        let presented = match (fields.next(), fields.next()) {
            (Some(v), None) => token::bearer(v.as_bytes()).ok_or(Reason::Missing)?,
            // Two fields: the upstream may read the other one, so neither is vouched for.
            _ => return Err(Reason::Missing),
        };
        let i = self.find(&token::digest(presented)).ok_or(Reason::Invalid)?;
        match self.credentials.get(i).and_then(|c| c.tenant.as_deref()) {
            Some(t) if Some(t.as_bytes()) != tenant => Err(Reason::Tenant),
            _ => Ok(i),
        }
    }

    /// A binary search over the sorted digests, not a constant-time compare against each:
    /// the search's timing can only tell how the digest of a presented token orders against
    /// the configured digests, which says nothing about any token (getting a token back from
    /// its digest is a SHA-256 preimage search), and a route holding hundreds of IdP tokens
    /// stays at a handful of steps. The hit is confirmed with the constant-time compare, so
    /// every acceptance goes through it.
    fn find(&self, d: &Digest) -> Option<usize> {
        let at = self.by_digest.binary_search_by(|(k, _)| k.cmp(d)).ok()?;
        let (k, i) = self.by_digest.get(at)?;
        token::same(k, d).then_some(*i)
    }

    /// The answer to a refused request (SCIM body, `WWW-Authenticate`).
    pub fn refusal(&self, r: Reason) -> &ScimError {
        &self.refusals[r as usize]
    }
}

/// A route's pre-resolved series: `scimitar_auth_refusals_total{route,reason}` and
/// `scimitar_auth_accepted_total{route,credential}`.
pub struct Counters {
    refused: [Option<IntCounter>; 3],
    /// Indexed like the route's credentials.
    accepted: Vec<Option<IntCounter>>,
}

impl Counters {
    /// One per route (`None` for a route without `auth`), resolved when a config loads.
    pub fn for_routes(routes: &[Route]) -> Vec<Option<Counters>> {
        let m = crate::metrics::get();
        routes
            .iter()
            .map(|r| {
                let auth = r.auth.as_ref()?;
                let series = |f: &dyn Fn(&crate::metrics::Metrics) -> prometheus::Result<IntCounter>| {
                    m.and_then(|m| {
                        f(m).map_err(|e| log::error!("auth metrics of route {}: {e}", r.name))
                            .ok()
                    })
                };
                Some(Counters {
                    refused: Reason::ALL.map(|why| series(&|m| m.auth.refused(&r.name, why.as_str()))),
                    accepted: auth
                        .credentials
                        .iter()
                        .map(|c| series(&|m| m.auth.accepted(&r.name, &c.name)))
                        .collect(),
                })
            })
            .collect()
    }

    /// Each route with `auth` and its credential names: the series a reload keeps.
    pub fn live(routes: &[Route]) -> Vec<(&str, Vec<&str>)> {
        routes
            .iter()
            .filter_map(|r| {
                let names = r.auth.as_ref()?.credentials.iter().map(|c| c.name.as_str()).collect();
                Some((r.name.as_str(), names))
            })
            .collect()
    }

    pub fn refused(&self, r: Reason) {
        if let Some(c) = &self.refused[r as usize] {
            c.inc();
        }
    }

    pub fn accepted(&self, credential: usize) {
        if let Some(Some(c)) = self.accepted.get(credential) {
            c.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(name: &str, token: &str, tenant: Option<&str>) -> Credential {
        Credential {
            name: name.into(),
            sha256: token::digest(token.as_bytes()),
            tenant: tenant.map(String::from),
        }
    }

    fn auth() -> RouteAuth {
        RouteAuth::new(
            "scim".into(),
            vec![
                cred("entra-acme", "tok-acme", Some("acme")),
                cred("okta-all", "tok-all", None),
                cred("third", "tok-3", None),
            ],
        )
        .unwrap()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_known_token_passes_and_names_its_entry() {
        let a = auth();
        assert_eq!(a.check(&headers(&["Bearer tok-all"]), None), Ok(1));
        assert_eq!(a.check(&headers(&["bearer   tok-3 "]), Some(b"x")), Ok(2));
        assert_eq!(a.check(&headers(&["BEARER tok-acme"]), Some(b"acme")), Ok(0));
        // Every entry is found, whatever the order of the digests.
        for (i, c) in a.credentials.iter().enumerate() {
            assert_eq!(a.find(&c.sha256), Some(i), "{}", c.name);
        }
    }

    #[test]
    fn missing_malformed_and_doubled_credentials_are_missing() {
        let a = auth();
        for h in [
            headers(&[]),
            headers(&["Bearer"]),
            headers(&["Bearer  "]),
            headers(&["Basic dG9rLWFsbA=="]),
            headers(&["tok-all"]),
            headers(&["Bearertok-all"]),
            headers(&["Bearer tok-all", "Bearer tok-all"]),
        ] {
            assert_eq!(a.check(&h, None), Err(Reason::Missing), "{h:?}");
        }
    }

    #[test]
    fn an_unknown_token_is_invalid() {
        let a = auth();
        for t in ["Bearer tok-al", "Bearer tok-all2", "Bearer TOK-ALL", "Bearer tok all"] {
            assert_eq!(a.check(&headers(&[t]), None), Err(Reason::Invalid), "{t}");
        }
        // A digest one bit off any configured one is not found.
        let mut d = a.credentials[1].sha256;
        d[31] ^= 1;
        assert_eq!(a.find(&d), None);
    }

    #[test]
    fn a_tenant_bound_token_is_good_for_its_tenant_only() {
        let a = auth();
        let h = headers(&["Bearer tok-acme"]);
        assert_eq!(a.check(&h, Some(b"acme")), Ok(0));
        assert_eq!(a.check(&h, Some(b"globex")), Err(Reason::Tenant));
        assert_eq!(
            a.check(&h, Some(b"ACME")),
            Err(Reason::Tenant),
            "tenants compare exactly"
        );
        assert_eq!(a.check(&h, None), Err(Reason::Tenant), "no tenant on the request");
        assert_eq!(a.check(&headers(&["Bearer tok-all"]), Some(b"globex")), Ok(1));
    }

    #[test]
    fn each_refusal_is_a_scim_error_with_its_challenge() {
        let a = auth();
        let want = [
            (401, "Bearer realm=\"scim\"", "bearer token"),
            (401, "Bearer realm=\"scim\", error=\"invalid_token\"", "not accepted"),
            (403, "Bearer realm=\"scim\", error=\"insufficient_scope\"", "tenant"),
        ];
        for (r, (status, challenge, detail)) in Reason::ALL.into_iter().zip(want) {
            let e = a.refusal(r);
            let body: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
            assert_eq!(body["schemas"][0], crate::scim::error::SCIM_ERROR_SCHEMA);
            assert_eq!(body["status"], status.to_string());
            assert!(body["detail"].as_str().unwrap().contains(detail), "{body}");
            let h = e.header(e.body().len()).unwrap();
            assert_eq!(h.status.as_u16(), status);
            assert_eq!(h.headers["www-authenticate"], challenge);
            assert_eq!(h.headers["content-type"], "application/scim+json");
        }
    }

    #[test]
    fn a_realm_must_fit_its_quotes() {
        for bad in ["", "a\"b", "a\\b", "tab\there", "é"] {
            let e = RouteAuth::new(bad.into(), vec![]).unwrap_err();
            assert!(e.contains("cannot be a realm"), "{e}");
        }
        assert!(RouteAuth::new("routes[0] (SCIM)".into(), vec![]).is_ok());
    }
}
