//! `proxy_set_header`, `add_header`, `proxy_hide_header` → a route's `headers`.
//!
//! Each is an array directive: a location with any of them drops every one of its parent's
//! (see `scope.rs`). nginx sends `Host: $proxy_host` unless told otherwise — the upstream
//! block's name, or the `proxy_pass` address — where scimitar passes the client's `Host`. That
//! default is not written out as a rule: with the upstream block's name as Host, the
//! `Location` and `meta.location` URLs an upstream builds would name the pool, and nginx's
//! implicit `proxy_redirect default` that repaired `Location` has no general equivalent; so the
//! difference is reported instead. The headers scimitar owns (`X-Forwarded-For`, `-Proto`,
//! `-Host`, `X-Request-Id`) already get what nginx configs usually set by hand, so those rules
//! translate to nothing.

use super::emit::Node;
use super::redact;
use super::scope::{self, Chain, Part};
use super::{Cx, Kind, Note};
use crate::nginx::Directive;
// Hop-by-hop and framing headers, refused in rules by the config as well.
use crate::config::keys::HOP_BY_HOP as HOP;

/// Headers the proxy sets itself, with the nginx values that mean the same.
const OWNED: &[(&str, &[&str])] = &[
    ("x-forwarded-for", &["$proxy_add_x_forwarded_for"]),
    ("x-forwarded-proto", &["$scheme"]),
    ("x-forwarded-host", &["$host", "$http_host"]),
    ("x-request-id", &["$request_id", "$http_x_request_id"]),
];

/// The variables header rules may use, by their nginx names.
const VARIABLES: &[&str] = &["host", "remote_addr", "scheme", "request_id"];

/// An nginx value → a scimitar header value (`$host`, `$http_x_name`, literal text), or the
/// variable that has no scimitar equivalent.
pub fn value(text: &str) -> Result<String, String> {
    let parts = scope::parts(text);
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        match *p {
            // A `$` that is not a variable is a literal dollar: `$$` in scimitar's values.
            Part::Text(t) => out.push_str(&t.replace('$', "$$")),
            Part::Var { name, closed: false } => return Err(format!("{name}` without its closing `}}")),
            Part::Var { name, .. } if !(VARIABLES.contains(&name) || name.starts_with("http_")) => {
                return Err(name.to_string())
            }
            Part::Var { name, .. } => {
                // `${host}x` has no unbraced spelling.
                if let Some(Part::Text(next)) = parts.get(i + 1) {
                    if next.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(format!("{name}` followed directly by `{next}"));
                    }
                }
                out.push('$');
                out.push_str(name);
            }
        }
    }
    Ok(out)
}

/// `x-tenant-id` → `X-Tenant-Id`, for header names made from nginx variable names.
pub fn canonical(name: &str) -> String {
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// A set of rules being built: `set`/`add` maps and a `remove` list, each with comments.
#[derive(Default)]
struct Rules {
    set: Vec<(String, Node, Vec<String>)>,
    add: Vec<(String, Node, Vec<String>)>,
    remove: Vec<(String, Vec<String>)>,
}

impl Rules {
    fn node(self) -> Option<Node> {
        let mut n = Node::map();
        for (key, list) in [("set", self.set), ("add", self.add)] {
            if !list.is_empty() {
                let mut m = Node::map();
                for (h, v, notes) in list {
                    m.set_noted(notes, &h, v);
                }
                n.set(key, m);
            }
        }
        if !self.remove.is_empty() {
            let notes: Vec<String> = self.remove.iter().flat_map(|(_, n)| n.clone()).collect();
            n.set_noted(
                notes,
                "remove",
                Node::Flow(self.remove.into_iter().map(|(h, _)| h).collect()),
            );
        }
        (!n.is_empty()).then_some(n)
    }
}

/// The route's `headers`; `proxy` is a proxying route's `proxy_pass` and nginx's
/// `$proxy_host` for it (`None` for a `return` route, where only `add_header` applies).
pub fn route(cx: &mut Cx, chain: &Chain, proxy: Option<(&Directive, &str)>) -> Option<Node> {
    let mut out = Node::map();
    if let Some((pass, host)) = proxy {
        if let Some(r) = request(cx, chain, pass, host) {
            out.set("request", r);
        }
    }
    if let Some(r) = response(cx, chain, proxy.is_some()) {
        out.set("response", r);
    }
    (!out.is_empty()).then_some(out)
}

fn request(cx: &mut Cx, chain: &Chain, pass: &Directive, proxy_host: &str) -> Option<Node> {
    let mut rules = Rules::default();
    let list = chain.array("proxy_set_header");
    let mut host_set = false;
    for d in &list {
        let (Some(name), Some(v)) = (d.arg(0), d.arg(1)) else {
            cx.drop(d, true, "needs a header name and a value");
            continue;
        };
        let lower = name.to_ascii_lowercase();
        let from = cx.from(d);
        if lower == "host" {
            host_set = true;
            match v {
                "$host" | "$http_host" => cx.take(d),
                "$proxy_host" => {
                    cx.take(d);
                    rules.set.push(("Host".into(), Node::str(proxy_host), vec![from]));
                }
                other => match value(other) {
                    Ok(v) => {
                        cx.take(d);
                        rules.set.push(("Host".into(), Node::str(v), vec![from]));
                    }
                    Err(var) => unsupported(cx, d, &var),
                },
            }
            continue;
        }
        if let Some((_, same)) = OWNED.iter().find(|(h, _)| *h == lower) {
            if same.contains(&v) {
                cx.take(d);
            } else if lower == "x-forwarded-for" {
                // nginx replaces the client's list (often `$remote_addr`, so an upstream's
                // leftmost entry cannot be forged); scimitar's list keeps what the client sent.
                cx.drop(
                    d,
                    true,
                    format!("nginx replaces the client's X-Forwarded-For with `{v}`; scimitar always sends the client's X-Forwarded-For with the peer it saw appended (a rule cannot replace it), so an upstream that trusts the leftmost entry reads what the client wrote — make the upstream read the rightmost entry, or send the address in a header of your own (`headers.request.set: {{X-Real-IP: $remote_addr}}`, the client IP after `trusted_proxies` and `real_ip_header`)"),
                );
            } else {
                cx.differs(
                    d,
                    format!("scimitar sets {name} itself (X-Forwarded-For: the client's plus the peer; -Proto: the scheme it received; -Host: the client's Host; X-Request-Id: the client's when printable and ≤128 bytes, else a new one)"),
                );
            }
            continue;
        }
        if HOP.contains(&lower.as_str()) {
            match (lower.as_str(), v) {
                ("connection", "" | "close" | "keep-alive") => cx.take(d),
                ("content-length" | "transfer-encoding", _) => {
                    cx.drop(d, true, "scimitar frames the request body itself")
                }
                _ => cx.drop(
                    d,
                    false,
                    "a hop-by-hop header: scimitar manages its connections and does not proxy protocol upgrades (WebSocket), which SCIM does not use",
                ),
            }
            continue;
        }
        if v.is_empty() {
            cx.take(d);
            rules.remove.push((name.to_string(), vec![from]));
            continue;
        }
        if v == format!("$http_{}", lower.replace('-', "_")) {
            // Setting a header to the client's own value is what forwarding does anyway.
            cx.take(d);
            continue;
        }
        match value(v) {
            Ok(val) => {
                cx.take(d);
                let val = rule_value(cx, d, name, val);
                rules.set.push((name.to_string(), val, vec![from]));
            }
            Err(var) => unsupported(cx, d, &var),
        }
    }
    if !host_set {
        cx.differs(
            pass,
            format!(
                "nginx sends `Host: {proxy_host}` ($proxy_host) when no proxy_set_header sets Host; scimitar passes the client's Host, so the upstream sees the name clients use and the URLs it builds (`Location`, `meta.location`) point at the proxy, not at `{proxy_host}` (a route with `upstream_base_path` also gets `Location` paths mapped back, as nginx's implicit `proxy_redirect default` does); write `headers.request.set.Host` to send another"
            ),
        );
    }
    rules.node()
}

fn response(cx: &mut Cx, chain: &Chain, proxying: bool) -> Option<Node> {
    let mut rules = Rules::default();
    let hidden: Vec<&Directive> = if proxying {
        chain.array("proxy_hide_header")
    } else {
        Vec::new()
    };
    let mut hide_names: Vec<String> = Vec::new();
    for d in &hidden {
        let Some(name) = d.arg(0) else { continue };
        let lower = name.to_ascii_lowercase();
        if lower == "host" || HOP.contains(&lower.as_str()) || OWNED.iter().any(|(h, _)| *h == lower) {
            cx.drop(d, false, "a header scimitar manages itself");
            continue;
        }
        cx.take(d);
        hide_names.push(lower);
        rules.remove.push((name.to_string(), vec![cx.from(d)]));
    }
    for d in chain.array("add_header") {
        let (Some(name), Some(v)) = (d.arg(0), d.arg(1)) else {
            cx.drop(d, true, "needs a header name and a value");
            continue;
        };
        let lower = name.to_ascii_lowercase();
        if v.is_empty() {
            // nginx adds nothing for an empty value.
            cx.take(d);
            continue;
        }
        if v.contains("$upstream_cache_status") {
            cx.drop(
                d,
                false,
                "scimitar sends `X-Cache: HIT` / `MISS` on cached routes itself",
            );
            continue;
        }
        if lower == "x-request-id" {
            cx.take(d);
            continue;
        }
        if lower == "host" || HOP.contains(&lower.as_str()) || OWNED.iter().any(|(h, _)| *h == lower) {
            cx.drop(d, false, "a header scimitar manages itself");
            continue;
        }
        let val = match value(v) {
            Ok(val) => val,
            Err(var) => {
                unsupported(cx, d, &var);
                continue;
            }
        };
        if scope::flag(d, "always") {
            cx.take(d);
        } else {
            cx.differs(
                d,
                "scimitar adds it to every answer; nginx without `always` only to 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308",
            );
        }
        let val = rule_value(cx, d, name, val);
        let mut notes = vec![cx.from(d)];
        if let Some(i) = hide_names.iter().position(|h| *h == lower) {
            // Hidden from the upstream and added here: nginx's way of replacing it.
            let (_, hide_notes) = rules.remove.remove(i);
            hide_names.remove(i);
            notes.extend(hide_notes);
            rules.set.push((name.to_string(), val, notes));
        } else {
            rules.add.push((name.to_string(), val, notes));
        }
    }
    rules.node()
}

/// A rule's value: a credential written in the config becomes a reference to an environment
/// variable, so neither the YAML nor its comments hold it (and `-t` refuses the file until
/// the variable is set).
fn rule_value(cx: &mut Cx, d: &Directive, name: &str, val: String) -> Node {
    if !redact::literal_secret(name, &val) {
        return Node::Str(val);
    }
    let env = cx.secret_env(name, &val);
    cx.note(Note::new(
        d,
        Kind::Differs,
        format!("the value is a credential, so the YAML reads it from the environment: export {env} with this directive's value (a literal `$` written `$$`) where scimitar runs"),
    ));
    // Single quotes: the value is pasted in before YAML parsing, and tokens hold no `'`.
    Node::Raw(format!("'${{{env}}}'"))
}

fn unsupported(cx: &mut Cx, d: &Directive, var: &str) {
    let why = if var.starts_with("ssl_client") {
        format!("`${var}` has no scimitar equivalent; a listener's `tls.forward_client_cert` sends the verified client certificate upstream")
    } else {
        format!(
            "`${var}` has no scimitar equivalent (header values may use $host, $remote_addr, $scheme, $request_id, $http_NAME)"
        )
    };
    cx.note(Note::new(d, Kind::Dropped { handling: true }, why));
    cx.take(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_the_variables_scimitar_knows_and_name_the_first_it_does_not() {
        assert_eq!(value("$remote_addr").as_deref(), Ok("$remote_addr"));
        assert_eq!(value("${host}:443").as_deref(), Ok("$host:443"));
        assert_eq!(value("max-age=63072000").as_deref(), Ok("max-age=63072000"));
        assert_eq!(value("$http_x_tenant_id").as_deref(), Ok("$http_x_tenant_id"));
        assert_eq!(value("$ssl_client_s_dn"), Err("ssl_client_s_dn".to_string()));
        assert_eq!(value("${tenant}"), Err("tenant".to_string()));
        assert!(value("${host}x").is_err());
        assert_eq!(canonical("x-tenant-id"), "X-Tenant-Id");
    }
}
