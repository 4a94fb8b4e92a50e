//! A route's `auth` section (the edge credential check, [`crate::edgeauth`]):
//!
//! ```yaml
//! auth:
//!   realm: scim                 # default: the route's name
//!   tokens:
//!     - {name: entra-acme, sha256: 9f86…, tenant: acme}
//!     - {name: okta-all, sha256: …}
//! ```
//!
//! Only digests are configured; a problem about one never repeats the value, in case a token
//! was pasted where its digest belongs.

use std::collections::HashMap;

use serde_yaml::Value;

use super::reader::{self as r, join, Problems};
use super::Tenancy;
use crate::edgeauth::{Credential, RouteAuth};
use crate::routing::Route;
use crate::token::Digest;

pub const AUTH: &[&str] = &["realm", "tokens"];
pub const AUTH_TOKEN: &[&str] = &["name", "sha256", "tenant"];

/// `at` is the section's place (`routes[0].auth`), `route` the route's name (the default realm).
pub fn route_auth(p: &mut Problems, at: &str, route: &str, v: &Value) -> Option<RouteAuth> {
    let m = r::map(p, at, v, AUTH)?;
    let realm = r::opt(p, m, at, "realm", route.to_string(), r::string);
    let list = r::req(
        p,
        m,
        at,
        "tokens",
        "list the accepted tokens, e.g. `[{name: entra, sha256: <from scimitar hash-token>}]`",
        r::list,
    )?;
    let tokens_at = join(at, "tokens");
    if list.is_empty() {
        p.add(
            &tokens_at,
            "empty, so every request would be refused; list a token, or remove `auth` to leave the route open",
        );
    }
    let mut credentials = Vec::with_capacity(list.len());
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut digests: HashMap<Digest, usize> = HashMap::new();
    let mut complete = true;
    for (i, v) in list.iter().enumerate() {
        let t_at = r::index(&tokens_at, i);
        match credential(p, &t_at, v) {
            Some(c) => {
                if let Some(j) = names.insert(c.name.clone(), i) {
                    p.add(
                        &join(&t_at, "name"),
                        format!(
                            "`{}` also names {tokens_at}[{j}]; give each token its own name (logs and metrics tell them apart by it)",
                            c.name
                        ),
                    );
                }
                if let Some(j) = digests.insert(c.sha256, i) {
                    p.add(
                        &join(&t_at, "sha256"),
                        format!("the same digest as {tokens_at}[{j}]; list each token once"),
                    );
                }
                credentials.push(c);
            }
            None => complete = false,
        }
    }
    let realm_at = match r::get(m, "realm") {
        Some(_) => join(at, "realm"),
        None => at.to_string(),
    };
    match RouteAuth::new(realm, credentials) {
        Ok(a) if complete => Some(a),
        Ok(_) => None,
        Err(e) if realm_at == at => {
            p.add(at, format!("the route name is the default realm, but {e}; set `realm`"));
            None
        }
        Err(e) => {
            p.add(&realm_at, e);
            None
        }
    }
}

fn credential(p: &mut Problems, at: &str, v: &Value) -> Option<Credential> {
    let m = r::map(p, at, v, AUTH_TOKEN)?;
    let name = r::req(
        p,
        m,
        at,
        "name",
        "name the token for logs and metrics, e.g. `entra-acme`",
        r::string,
    );
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        p.add(&join(at, "name"), "empty; name the token, e.g. `entra-acme`");
    }
    let sha256 = r::req(
        p,
        m,
        at,
        "sha256",
        "give the token's SHA-256 from `scimitar hash-token` (reads the token on stdin)",
        |p, path, v| {
            let hex = r::string(p, path, v)?;
            crate::token::parse_hex(&hex).map_err(|e| p.add(path, e)).ok()
        },
    );
    let tenant = r::get(m, "tenant").and_then(|v| r::string(p, &join(at, "tenant"), v));
    if tenant.as_deref().is_some_and(str::is_empty) {
        p.add(
            &join(at, "tenant"),
            "empty; name the tenant the token is for, or remove `tenant`",
        );
    }
    Some(Credential {
        name: name.filter(|n| !n.trim().is_empty())?,
        sha256: sha256?,
        tenant,
    })
}

/// A token bound to a tenant needs requests that have one: tenancy must be configured, and
/// with path tenancy the route's base path must hold `{tenant}`. (Checked once tenancy is
/// known, which depends on every route.)
pub fn tenants(p: &mut Problems, routes: &[Route], tenancy: &Tenancy) {
    for (i, route) in routes.iter().enumerate() {
        let Some(auth) = &route.auth else { continue };
        let why = match tenancy {
            Tenancy::None => {
                "no tenancy is configured, so no request has a tenant; remove `tenant`, or set up \
                 tenancy (a `{tenant}` base_path or `tenancy: {source: header, header: …}`)"
            }
            Tenancy::Path if !route.base.has_tenant() => {
                "this route's base_path has no `{tenant}` segment, so its requests have no tenant; \
                 remove `tenant` or put `{tenant}` in the base_path"
            }
            _ => continue,
        };
        for (j, c) in auth.credentials.iter().enumerate() {
            if c.tenant.is_some() {
                p.add(&format!("routes[{i}].auth.tokens[{j}].tenant"), why);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{from_str_with_env, Config};

    const DIGEST_A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const DIGEST_B: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    fn text(base: &str, auth: &str) -> String {
        format!(
            "listeners: [{{address: \"127.0.0.1:18080\"}}]\nupstreams: {{scim: {{servers: [\"127.0.0.1:18001\"]}}}}\nroutes:\n  - name: scim\n    base_path: {base}\n    upstream: scim\n    auth:\n{auth}"
        )
    }

    fn load_text(text: &str) -> Result<Config, Vec<String>> {
        from_str_with_env(text, |_| None).map_err(|p| p.0.iter().map(|x| x.to_string()).collect())
    }

    fn load(base: &str, auth: &str) -> Result<Config, Vec<String>> {
        load_text(&text(base, auth))
    }

    fn problems_in(text: &str) -> Vec<String> {
        load_text(text).expect_err("refused")
    }

    fn problems(base: &str, auth: &str) -> Vec<String> {
        problems_in(&text(base, auth))
    }

    #[test]
    fn a_route_takes_realm_and_tokens() {
        let c = load(
            "/{tenant}/scim/v2",
            &format!(
                "      realm: SCIM edge\n      tokens:\n        - {{name: entra-acme, sha256: {DIGEST_A}, tenant: acme}}\n        - {{name: okta-all, sha256: \"{}\"}}\n",
                DIGEST_B.to_ascii_uppercase()
            ),
        )
        .unwrap();
        let a = c.routes[0].auth.as_ref().unwrap();
        assert_eq!(a.realm, "SCIM edge");
        assert_eq!(a.credentials.len(), 2);
        assert_eq!(a.credentials[0].name, "entra-acme");
        assert_eq!(a.credentials[0].sha256, crate::token::digest(b"test"));
        assert_eq!(a.credentials[0].tenant.as_deref(), Some("acme"));
        assert_eq!(a.credentials[1].tenant, None);
        assert_eq!(
            a.refusal(crate::edgeauth::Reason::Missing).challenge.as_ref().unwrap(),
            "Bearer realm=\"SCIM edge\""
        );
    }

    #[test]
    fn the_realm_defaults_to_the_route_name() {
        let c = load(
            "/scim/v2",
            &format!("      tokens: [{{name: a, sha256: {DIGEST_A}}}]\n"),
        )
        .unwrap();
        assert_eq!(c.routes[0].auth.as_ref().unwrap().realm, "scim");
        let bad = text(
            "/scim/v2",
            &format!("      tokens: [{{name: a, sha256: {DIGEST_A}}}]\n"),
        )
        .replace("name: scim", "name: 'say \"hi\"'");
        let got = problems_in(&bad);
        assert!(
            got[0]
                .starts_with("routes[0].auth: the route name is the default realm, but `say \"hi\"` cannot be a realm"),
            "{got:?}"
        );
        assert!(got[0].ends_with("set `realm`"), "{got:?}");
    }

    #[test]
    fn bad_digests_duplicates_and_collisions_name_their_key() {
        let got = problems(
            "/scim/v2",
            &format!(
                "      realm: 'a\"b'\n      tokens:\n        - {{name: a, sha256: {DIGEST_A}}}\n        - {{name: a, sha256: {DIGEST_B}}}\n        - {{name: c, sha256: \"{DIGEST_A}\"}}\n        - {{name: d, sha256: my-plain-token}}\n        - {{name: e, sha256: {}x}}\n        - {{sha256: {DIGEST_B}, tenant: \"\", colour: red}}\n",
                &DIGEST_B[..63]
            ),
        );
        let want = [
            "routes[0].auth.tokens[1].name: `a` also names routes[0].auth.tokens[0]",
            "routes[0].auth.tokens[2].sha256: the same digest as routes[0].auth.tokens[0]; list each token once",
            "routes[0].auth.tokens[3].sha256: expected the token's SHA-256 as 64 hex digits; make it with `scimitar hash-token` (reads the token on stdin); this value has 14 characters",
            "routes[0].auth.tokens[4].sha256: expected the token's SHA-256 as 64 hex digits; make it with `scimitar hash-token` (reads the token on stdin); character 64 is not a hex digit",
            "routes[0].auth.tokens[5].colour: unknown key",
            "routes[0].auth.tokens[5].name: missing; name the token",
            "routes[0].auth.tokens[5].tenant: empty",
            "routes[0].auth.realm: `a\"b` cannot be a realm",
        ];
        for w in want {
            assert!(got.iter().any(|g| g.starts_with(w)), "want {w}\ngot {got:#?}");
        }
        assert!(
            !got.iter().any(|g| g.contains("my-plain-token")),
            "a value that may be a token is never repeated: {got:#?}"
        );
        assert_eq!(got.len(), want.len(), "{got:#?}");
    }

    #[test]
    fn tokens_are_required_and_never_empty() {
        let got = problems("/scim/v2", "      realm: x\n");
        assert!(got[0].starts_with("routes[0].auth.tokens: missing"), "{got:?}");
        let got = problems("/scim/v2", "      tokens: []\n");
        assert!(
            got[0].starts_with("routes[0].auth.tokens: empty, so every request would be refused"),
            "{got:?}"
        );
    }

    #[test]
    fn a_tenant_bound_token_needs_requests_with_a_tenant() {
        let bound = format!("      tokens: [{{name: a, sha256: {DIGEST_A}, tenant: acme}}]\n");
        let got = problems("/scim/v2", &bound);
        assert!(
            got[0].starts_with("routes[0].auth.tokens[0].tenant: no tenancy is configured"),
            "{got:?}"
        );
        // Path tenancy (another route has `{tenant}`), but not on this route.
        let two = text("/scim/v2", &bound) + "  - {base_path: \"/{tenant}/v2\", upstream: scim}\n";
        let got = problems_in(&two);
        assert!(
            got[0].starts_with("routes[0].auth.tokens[0].tenant: this route's base_path has no `{tenant}` segment"),
            "{got:?}"
        );
        // Header tenancy: any route may bind tokens to tenants.
        let header = text("/scim/v2", &bound) + "tenancy: {source: header, header: X-Tenant}\n";
        assert!(load_text(&header).is_ok());
        assert!(load("/{tenant}/scim/v2", &bound).is_ok());
    }
}
