//! `location` blocks → `routes`.
//!
//! nginx picks a location by the request path alone: an exact (`=`) match, else the longest
//! prefix (regex locations in between). scimitar picks the first route whose base path matches
//! whole segments and whose endpoint classes and methods accept the request. So a location
//! naming a SCIM endpoint becomes its parent path plus classes (`/scim/v2/Users` →
//! `base_path: /scim/v2, classes: [users.read, users.write]`; `= /scim/v2/Bulk` →
//! `classes: [bulk]`), and routes are ordered longest base path first, class-filtered before
//! unfiltered, exact before prefix — nginx's precedence, in first-match form. What that still
//! cannot express is found by `probes.rs`.

use super::emit::{Item, Node};
use super::scope::{self, Chain};
use super::upstreams::Pools;
use super::{auth, headers, limits::Policies, Cx, Kind, Note};
use crate::nginx::Directive;
use crate::routing::BasePath;

/// A location and the blocks around it.
pub(crate) struct Loc<'a> {
    pub d: &'a Directive,
    /// http, server, outer locations…, this location.
    pub chain: Chain<'a>,
    /// Index of its `server` block in the http block.
    pub server: usize,
    pub exact: bool,
    pub path: String,
}

/// One route to write, and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct RouteOut {
    pub name: String,
    /// The locations (indices into the `Loc` list) this route stands for.
    pub locs: Vec<usize>,
    pub base: String,
    pub classes: Vec<&'static str>,
    pub exact: bool,
    path_len: usize,
    pub notes: Vec<String>,
    /// Everything after `name`, `base_path` and `classes`.
    pub body: Node,
}

impl RouteOut {
    /// What a request routed here gets, comments aside: two routes with equal behaviour may
    /// take each other's requests without anyone noticing.
    pub fn behaviour(&self) -> Node {
        self.body.bare()
    }

    /// [`Self::behaviour`] for one method: only GET and HEAD can be answered from the cache.
    pub fn behaviour_for(&self, method: &str) -> Node {
        let mut b = self.behaviour();
        if !matches!(method, "GET" | "HEAD") {
            if let Node::Map(e) = &mut b {
                e.retain(|e| e.key != "cache");
            }
        }
        b
    }

    pub fn item(&self) -> Item {
        let mut n = Node::map();
        n.set("name", Node::str(self.name.clone()));
        n.set("base_path", Node::str(self.base.clone()));
        if !self.classes.is_empty() {
            n.set(
                "classes",
                Node::Flow(self.classes.iter().map(|c| c.to_string()).collect()),
            );
        }
        if let (Node::Map(e), Node::Map(body)) = (&mut n, &self.body) {
            e.extend(body.iter().cloned());
        }
        Item {
            notes: self.notes.clone(),
            value: n,
        }
    }
}

/// Flattens the locations below `chain` (a server, or a location for nested ones) in file
/// order. Regex and named locations are reported here.
pub fn collect<'a>(cx: &mut Cx, chain: &Chain<'a>, server: usize, out: &mut Vec<Loc<'a>>) {
    let Some(level) = chain.innermost() else { return };
    for l in level.find("location") {
        let args: Vec<&str> = l.args.iter().map(|a| a.as_str()).collect();
        let (exact, path) = match args.as_slice() {
            ["=", p] => (true, *p),
            ["^~", p] => (false, *p),
            ["~" | "~*", _] => {
                cx.drop(
                    l,
                    true,
                    "regex locations have no equivalent: scimitar routes by base path and endpoint class (e.g. `classes: [discovery]`); write a prefix location or the route by hand",
                );
                continue;
            }
            [p] if p.starts_with('@') => {
                cx.drop(
                    l,
                    false,
                    "a named location, reached only through error_page or try_files (reported there)",
                );
                continue;
            }
            [p] => (false, *p),
            _ => {
                cx.drop(l, true, "not a location scimitar can read");
                continue;
            }
        };
        out.push(Loc {
            d: l,
            chain: chain.with(l),
            server,
            exact,
            path: path.to_string(),
        });
        collect(cx, &chain.with(l), server, out);
    }
}

/// The endpoint classes of a SCIM endpoint name as the last path segment (nginx matches
/// case-sensitively, so only the canonical spelling counts).
fn endpoint(seg: &str) -> Option<&'static [&'static str]> {
    Some(match seg {
        "Users" => &["users.read", "users.write"],
        "Groups" => &["groups.read", "groups.write"],
        "Bulk" => &["bulk"],
        "Me" => &["me"],
        ".search" => &["search"],
        "ServiceProviderConfig" | "Schemas" | "ResourceTypes" => &["discovery"],
        _ => return None,
    })
}

/// A location path → (base path, classes).
pub fn split(path: &str, exact: bool) -> (String, Vec<&'static str>) {
    let trimmed = path.trim_end_matches('/');
    let mut segs: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
    let classes = match segs.last().and_then(|s| endpoint(s)) {
        Some(c) => {
            segs.pop();
            // `/Users/.search` is the search endpoint of a type: its base is above the type.
            if c == ["search"] && segs.last().is_some_and(|s| endpoint(s).is_some()) {
                segs.pop();
            }
            c.to_vec()
        }
        // An exact match on a non-endpoint path: the base itself or a custom type.
        None if exact => vec!["other"],
        None => Vec::new(),
    };
    (format!("/{}", segs.join("/")), classes)
}

/// Routes for the locations, ordered for scimitar's first match.
pub fn routes(cx: &mut Cx, pools: &mut Pools, policies: &mut Policies, locs: &[Loc]) -> Vec<RouteOut> {
    let mut out: Vec<RouteOut> = Vec::new();
    for (i, loc) in locs.iter().enumerate() {
        let Some(r) = route(cx, pools, policies, loc, i) else {
            continue;
        };
        let behaviour = r.behaviour();
        if let Some(same) = out
            .iter_mut()
            .find(|o| o.base == r.base && o.classes == r.classes && o.exact == r.exact && o.behaviour() == behaviour)
        {
            same.locs.push(i);
            same.notes.push(format!("also {}", cx.from(loc.d)));
            continue;
        }
        out.push(r);
    }
    // nginx's precedence as first match: deeper base paths first (longest prefix), then
    // routes narrowed to endpoint classes, exact matches, longer location paths, file order.
    out.sort_by_key(|r| {
        (
            std::cmp::Reverse(r.base.split('/').filter(|s| !s.is_empty()).count()),
            r.classes.is_empty(),
            !r.exact,
            std::cmp::Reverse(r.path_len),
        )
    });
    let mut names: Vec<String> = Vec::new();
    for r in &mut out {
        let mut name = r.name.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{}-{n}", r.name);
            n += 1;
        }
        names.push(name.clone());
        r.name = name;
    }
    out
}

fn slug(path: &str, exact: bool) -> String {
    let mut s = String::new();
    for c in path.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_matches('-');
    let s = if s.is_empty() { "root" } else { s };
    if exact {
        format!("{s}-exact")
    } else {
        s.to_string()
    }
}

fn route(cx: &mut Cx, pools: &mut Pools, policies: &mut Policies, loc: &Loc, index: usize) -> Option<RouteOut> {
    let l = loc.d;
    cx.take(l);
    let (base, classes) = split(&loc.path, loc.exact);
    if let Err(e) = BasePath::parse(&base) {
        cx.drop(l, true, format!("no scimitar base path for it: {e}"));
        return None;
    }
    if let Some(i) = l.find("internal").next() {
        cx.take(i);
        cx.drop(l, false, "an internal location, reached only by subrequests and redirects inside nginx (reported where they are made)");
        return None;
    }
    let ret = l.find("return").last();
    let pass = l.find("proxy_pass").last();
    let mut body = Node::map();
    match (ret, pass) {
        (Some(r), _) => {
            let value = match return_value(r) {
                Ok(v) => v,
                Err(why) => {
                    cx.drop(r, true, why);
                    if let Some(p) = pass {
                        cx.drop(p, false, "never runs: the `return` beside it answers first");
                    }
                    return None;
                }
            };
            cx.take(r);
            if let Some(Node::Map(_)) = Some(&value) {
                cx.differs(r, "the answer is a SCIM error body with this text as `detail`");
            } else if r.args.len() > 1 {
                cx.differs(r, "the answer is scimitar's SCIM error body, not this text");
            }
            if let Some(p) = pass {
                cx.drop(p, false, "never runs: the `return` beside it answers first");
            }
            body.set_noted(vec![cx.from(r)], "return", value);
            if let Some(h) = headers::route(cx, &loc.chain, None) {
                body.set("headers", h);
            }
        }
        (None, Some(p)) => {
            let target = match pools.target(cx, p, &loc.chain) {
                Ok(t) => t,
                Err(why) => {
                    cx.drop(p, true, why);
                    return None;
                }
            };
            cx.take(p);
            body.set_noted(vec![cx.from(p)], "upstream", Node::str(target.pool.clone()));
            if let Some(uri) = &target.uri {
                match upstream_base_path(&loc.path, &base, uri) {
                    Ok((Some(ub), differs)) => {
                        if let Some(why) = differs {
                            cx.differs(p, why);
                        }
                        body.set_noted(
                            vec![format!("nginx replaces `{}` by `{uri}` on the way upstream", loc.path)],
                            "upstream_base_path",
                            Node::str(ub),
                        );
                    }
                    Ok((None, _)) => {}
                    Err(why) => {
                        cx.drop(p, true, why);
                        return None;
                    }
                }
            }
            if let Some(d) = loc.chain.scalar("client_max_body_size") {
                match d.arg(0).and_then(scope::size) {
                    Some(0) => {
                        cx.take(d);
                        body.set_noted(
                            vec![cx.from(d), "nginx's 0 means no limit".into()],
                            "max_body",
                            Node::str("1024GiB"),
                        );
                    }
                    Some(n) => {
                        cx.take(d);
                        body.set_noted(vec![cx.from(d)], "max_body", Node::str(scope::fmt_size(n)));
                    }
                    None => cx.drop(d, true, "not a size nginx or scimitar reads"),
                }
            }
            if let Some(key) = &target.affinity {
                let mut a = Node::map();
                a.set("key", Node::Flow(key.clone()));
                body.set_noted(
                    vec![format!("the key of pool `{}`'s `hash`", target.pool)],
                    "affinity",
                    a,
                );
            }
            let limits = policies.route(cx, &loc.chain);
            if !limits.is_empty() {
                body.set("rate_limits", Node::Flow(limits));
            }
            let headers = headers::route(cx, &loc.chain, Some((p, &target.proxy_host)));
            if let Some((mut c, notes)) = cache(cx, &loc.chain, &classes) {
                let forwarded = headers.as_ref().map(forwarded_headers).unwrap_or_default();
                if !forwarded.is_empty() {
                    c.set_noted(
                        vec!["request rules forward these client headers, so answers may depend on them".into()],
                        "key_headers",
                        Node::Flow(forwarded),
                    );
                }
                body.set_noted(notes, "cache", c);
            }
            if let Some(h) = headers {
                body.set("headers", h);
            }
            if let Some((a, notes)) = auth::route(cx, &loc.chain) {
                body.set_noted(notes, "auth", a);
            }
        }
        (None, None) => {
            if l.find("location").next().is_none() {
                cx.note(Note::new(
                    l,
                    Kind::Dropped { handling: true },
                    "neither `proxy_pass` nor `return`: nginx serves files or runs a handler here; scimitar only proxies",
                ));
                for c in l.children() {
                    cx.take_all(c);
                }
            }
            return None;
        }
    }
    if !loc.exact && classes.is_empty() && !loc.path.ends_with('/') {
        cx.differs(
            l,
            format!(
                "nginx's prefix `{p}` also matches paths that continue its last segment (`{p}foo`, `{p}.json`); scimitar's base path matches whole segments only, so it routes those like any other path (another route, or its 404)",
                p = loc.path
            ),
        );
    }
    Some(RouteOut {
        name: slug(&loc.path, loc.exact),
        locs: vec![index],
        base,
        classes,
        exact: loc.exact,
        path_len: loc.path.len(),
        notes: vec![cx.from(l)],
        body,
    })
}

/// The client headers a route's request rules copy upstream (`$http_x_tenant` →
/// `X-Tenant`), which a cached answer may depend on; Authorization is always in the key.
fn forwarded_headers(headers: &Node) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Some(Node::Map(set)) = headers.get("request").and_then(|r| r.get("set")) else {
        return out;
    };
    for e in set {
        let Node::Str(v) = &e.value else { continue };
        for var in scope::variables(v) {
            let Some(h) = var.strip_prefix("http_").filter(|h| *h != "authorization") else {
                continue;
            };
            let name = headers::canonical(&h.replace('_', "-"));
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// `return 403;` → `403`; `return 404 "text";` → `{status: 404, detail: text}` for plain
/// text (a JSON body is scimitar's own SCIM error anyway). Redirects, 2xx other than 204 and
/// nginx's 444 are refused.
fn return_value(d: &Directive) -> Result<Node, String> {
    let first = d.arg(0).unwrap_or_default();
    let Ok(code) = first.parse::<u16>() else {
        return Err("a redirect: scimitar's `return` answers with a SCIM error status or 204".into());
    };
    match code {
        204 => Ok(Node::Int(204)),
        444 => Err("444 closes the connection without an answer; scimitar always answers".into()),
        301 | 302 | 303 | 307 | 308 => Err(format!(
            "a redirect ({code}): scimitar's `return` answers with a SCIM error status or 204; IdPs are given the final https URL"
        )),
        400..=599 => {
            let text = d.arg(1).unwrap_or_default().trim();
            if text.is_empty() || text.starts_with('{') || text.starts_with('<') || text.contains('$') || text.len() > 200 {
                Ok(Node::Int(u64::from(code)))
            } else {
                let mut m = Node::map();
                m.set("status", Node::Int(u64::from(code)));
                m.set("detail", Node::str(text));
                Ok(m)
            }
        }
        _ => Err(format!(
            "`return {code}`: scimitar's `return` takes a 4xx/5xx status (a SCIM error) or 204; a {code} with a body or a redirect is not expressible"
        )),
    }
}

/// The `upstream_base_path` for `proxy_pass …/uri`: nginx replaces the matched location
/// path with the URI, scimitar replaces the base path, so the URI must end with what the
/// location adds to the base (`/Groups` for `location /scim/v2/Groups`). `Ok(None)` when the
/// path goes upstream unchanged; a second value when nginx's result differs a little.
pub fn upstream_base_path(path: &str, base: &str, uri: &str) -> Result<(Option<String>, Option<String>), String> {
    let stem = if base == "/" { "" } else { base };
    let suffix = path.strip_prefix(stem).unwrap_or(path);
    let mut differs = None;
    // Each side's slash decides nginx's result: the location's is replaced, the URI's kept.
    let ub = if suffix.is_empty() {
        // `location /scim/v2` (the base itself, no slash): nginx appends the rest of the path,
        // slash first, to the URI as written.
        if uri.ends_with('/') {
            differs = Some(format!(
                "nginx sends `{path}/Users` as `{uri}/Users` (the URI's slash and the path's: a double slash); scimitar keeps one slash"
            ));
        }
        uri.trim_end_matches('/').to_string()
    } else if let Some(ub) = uri.strip_suffix(suffix) {
        ub.to_string()
    } else if suffix == "/" {
        // `location /scim/v2/` with `proxy_pass http://pool/v2`: nginx glues.
        differs = Some(format!(
            "nginx sends `{path}Users` as `{uri}Users` (the location's slash is replaced, the URI has none); scimitar keeps one slash"
        ));
        uri.to_string()
    } else {
        return Err(format!(
            "`{uri}` does not end with `{suffix}`: scimitar replaces only the base path `{base}` (`upstream_base_path`) and keeps the endpoint part"
        ));
    };
    let ub = if ub.is_empty() { "/".to_string() } else { ub };
    if ub == base {
        return Ok((None, differs));
    }
    Ok((Some(ub), differs))
}

/// `proxy_cache` + `proxy_cache_valid` → the route's `cache` (discovery and/or single
/// resources, by the route's classes).
fn cache(cx: &mut Cx, chain: &Chain, classes: &[&str]) -> Option<(Node, Vec<String>)> {
    let zone_d = chain.scalar("proxy_cache")?;
    let zone = zone_d.arg(0).unwrap_or("off");
    if zone == "off" {
        cx.take(zone_d);
        return None;
    }
    let valid = chain.array("proxy_cache_valid");
    let ttl = valid.iter().find_map(|d| {
        let args: Vec<&str> = d.args.iter().map(|a| a.as_str()).collect();
        let (time, codes) = args.split_last()?;
        let covers_200 = codes.is_empty() || codes.iter().any(|c| *c == "200" || *c == "any");
        covers_200.then(|| scope::time(time)).flatten().map(|t| (t, *d))
    });
    let Some((ttl, from)) = ttl else {
        cx.drop(
            zone_d,
            true,
            "no `proxy_cache_valid` for 200: nginx caches by the upstream's Expires/Cache-Control alone; scimitar needs a TTL (`cache: {resources: 30s}`)",
        );
        return None;
    };
    if ttl.is_zero() || ttl > std::time::Duration::from_secs(365 * 86_400) {
        cx.drop(from, true, "a TTL scimitar cannot take (0 or over a year)");
        return None;
    }
    let discovery = classes.is_empty() || classes.contains(&"discovery");
    let resources = classes.is_empty() || classes.iter().any(|c| *c == "users.read" || *c == "groups.read");
    if !discovery && !resources {
        cx.drop(
            zone_d,
            true,
            "scimitar caches discovery documents and single Users/Groups only; this location serves neither",
        );
        return None;
    }
    cx.take(zone_d);
    for d in &valid {
        cx.take(d);
    }
    if let Some(path) = cx_cache_path(chain, zone) {
        cx.take(path);
    }
    cx.differs(
        zone_d,
        "scimitar's cache key holds the credential (Authorization), Host, path, query and Accept headers — nginx's default key ($scheme$proxy_host$request_uri) leaves Authorization out, so one tenant could get another's answer; lists, filters and .search are never cached (a stale empty `userName eq` makes an IdP create a duplicate); writes through the proxy invalidate what they change",
    );
    let t = Node::str(scope::fmt_time(ttl));
    let mut c = Node::map();
    if discovery {
        c.set("discovery", t.clone());
    }
    if resources {
        c.set("resources", t);
    }
    if let Some(d) = chain.scalar("proxy_ignore_headers") {
        if d.args.iter().any(|a| a.text == "Cache-Control" || a.text == "Expires") {
            cx.take(d);
            c.set_noted(vec![cx.from(d)], "ignore_cache_control", Node::Bool(true));
        }
    }
    let notes = vec![
        cx.from(zone_d),
        cx.from(from),
        "the key includes the credential; lists, filters and .search are never cached; writes invalidate".into(),
    ];
    Some((c, notes))
}

/// The `proxy_cache_path … keys_zone=NAME:size` defining `zone`, in the http block.
fn cx_cache_path<'a>(chain: &Chain<'a>, zone: &str) -> Option<&'a Directive> {
    let http = chain.0.first()?;
    http.find("proxy_cache_path")
        .find(|d| scope::param(d, "keys_zone").is_some_and(|z| z.split(':').next() == Some(zone)))
}
