//! The two ways nginx configs check a bearer token by hand → a route's `auth`:
//!
//! ```nginx
//! if ($http_authorization != "Bearer s3cret") { return 401; }
//!
//! map $http_authorization $scim_client { default 0; "Bearer t1" 1; "Bearer t2" 1; }
//! if ($scim_client = 0) { return 401; }          # or != 1, = "", !$scim_client
//! ```
//!
//! The tokens are written as SHA-256 digests (`scimitar hash-token`), never in the clear.
//! Anything else inside an `if` is left to the catalogue (not translated).

use super::emit::{Item, Node};
use super::scope::Chain;
use super::{Cx, Kind, Note};
use crate::nginx::Directive;

/// (token name, SHA-256 hex) of each accepted token.
type Tokens = Vec<(String, String)>;

/// The route's `auth` and its comments, from `if` checks on the server and location levels.
/// nginx runs every check around a location in turn, so a token must pass all of them: the
/// route accepts the tokens every check accepts.
pub fn route(cx: &mut Cx, chain: &Chain) -> Option<(Node, Vec<String>)> {
    let mut found: Option<(Tokens, Vec<String>, String)> = None;
    for level in chain.0.iter().skip(1).rev() {
        for d in level.find("if") {
            let Some((tokens, map)) = check(chain, d) else { continue };
            cx.take_all(d);
            let mut from = vec![cx.from(d)];
            if let Some(m) = map {
                cx.take_all(m);
                from.push(cx.from(m));
            }
            let status = d.children().first().and_then(|r| r.arg(0)).unwrap_or("401");
            cx.note(Note::new(
                d,
                Kind::Differs,
                format!(
                    "tokens kept as SHA-256 digests; a missing or wrong token gets a SCIM 401 with WWW-Authenticate{} before rate limits, cache and upstream",
                    if status == "401" { "" } else { " (nginx answered 403)" }
                ),
            ));
            let Some((kept, notes, inner)) = &mut found else {
                from.push("tokens are SHA-256 digests (`scimitar hash-token` makes one); a missing or wrong token gets a SCIM 401".into());
                found = Some((tokens, from, cx.place(d)));
                continue;
            };
            let both: Tokens = kept
                .iter()
                .filter(|(_, sha)| tokens.iter().any(|(_, s)| s == sha))
                .cloned()
                .collect();
            if both.is_empty() {
                // nginx refuses everything here; an empty list is no scimitar `auth`.
                cx.note(Note::new(
                    d,
                    Kind::Dropped { handling: true },
                    format!(
                        "no token passes both this check and the one at {inner}, so nginx refuses every request there; scimitar keeps only the inner check's tokens (write the route's `return: 401` by hand if refusing all is meant)"
                    ),
                ));
                continue;
            }
            *kept = both;
            notes.extend(from);
            notes.push(format!(
                "nginx runs this check and the one at {inner}: only tokens both accept"
            ));
        }
    }
    let (tokens, notes, _) = found?;
    let list = tokens
        .into_iter()
        .map(|(name, sha)| {
            let mut t = Node::map();
            t.set("name", Node::str(name));
            t.set("sha256", Node::str(sha));
            Item {
                notes: vec![],
                value: t,
            }
        })
        .collect();
    let mut a = Node::map();
    a.set("tokens", Node::List(list));
    Some((a, notes))
}

/// `(name, sha256)` of each accepted token, and the `map` that held them, when `d` is one of
/// the two patterns.
fn check<'a>(chain: &Chain<'a>, d: &Directive) -> Option<(Tokens, Option<&'a Directive>)> {
    // The body: exactly `return 401|403 [...]`.
    match d.children() {
        [r] if r.name == "return" && matches!(r.arg(0), Some("401" | "403")) => {}
        _ => return None,
    }
    let mut words: Vec<String> = d.args.iter().map(|a| a.text.clone()).collect();
    if let Some(f) = words.first_mut() {
        *f = f.trim_start_matches('(').to_string();
    }
    if let Some(l) = words.last_mut() {
        *l = l.trim_end_matches(')').to_string();
    }
    words.retain(|w| !w.is_empty());
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["$http_authorization", "!=", expected] => {
            let token = expected.strip_prefix("Bearer ")?;
            Some((
                vec![("token-1".into(), crate::admin::hash_token(token.as_bytes()))],
                None,
            ))
        }
        [var, op, v] => {
            let (map, default, tokens) = token_map(chain, var.strip_prefix('$')?)?;
            let refuses_default = match (*op, *v) {
                ("=", v) => v == default,
                ("!=", v) => v != default && tokens.iter().all(|(_, val)| val == v),
                _ => false,
            };
            refuses_default.then(|| (named(var, &tokens), Some(map)))
        }
        [neg] => {
            let var = neg.strip_prefix("!$")?;
            let (map, default, tokens) = token_map(chain, var)?;
            (default.is_empty() || default == "0").then(|| (named(var, &tokens), Some(map)))
        }
        _ => None,
    }
}

fn named(var: &str, tokens: &[(String, String)]) -> Tokens {
    let base = var.trim_start_matches('$').replace('_', "-");
    tokens
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (format!("{base}-{}", i + 1), crate::admin::hash_token(t.as_bytes())))
        .collect()
}

/// `map $http_authorization $var { default D; "Bearer T" V; … }` in the http block, every
/// entry an exact `Bearer` token with a value other than the default. Returns the map, the
/// default and (token, value) pairs.
fn token_map<'a>(chain: &Chain<'a>, var: &str) -> Option<(&'a Directive, String, Tokens)> {
    let http = chain.0.first()?;
    let map = http
        .find("map")
        .find(|m| m.arg(0) == Some("$http_authorization") && m.arg(1).and_then(|v| v.strip_prefix('$')) == Some(var))?;
    let mut default = String::new();
    let mut tokens = Vec::new();
    for e in map.children() {
        let value = e.arg(0)?.to_string();
        match e.name.as_str() {
            "default" => default = value,
            "hostnames" | "volatile" | "include" => return None,
            key => tokens.push((key.strip_prefix("Bearer ")?.to_string(), value)),
        }
    }
    if tokens.is_empty() || tokens.iter().any(|(t, v)| t.is_empty() || *v == default) {
        return None;
    }
    Some((map, default, tokens))
}
