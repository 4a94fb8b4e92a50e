//! What may be cached, for how long, and what a write makes stale. Pure functions over the
//! request's classification and headers, so the rules can be read and tested in one place.

use std::time::Duration;

use http::HeaderMap;

use crate::scim::{Method, Operation, ResourceType, ScimView};

/// Per-route cache settings (`routes[].cache`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteCache {
    /// TTL for `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas` (near-static documents).
    pub discovery: Option<Duration>,
    /// TTL for `GET /Users/{id}` and `GET /Groups/{id}`.
    pub resources: Option<Duration>,
    /// Seed resource entries from the answers to writes (201 to a create, 200 to PUT/PATCH):
    /// RFC 7644 §3.3/§3.5 makes them the same representation a GET returns.
    pub write_through: bool,
    /// Store answers even when the upstream says `Cache-Control: no-cache`/`no-store`/`max-age`
    /// (nginx's `proxy_ignore_headers Cache-Control`). Some SCIM servers send `no-cache` on
    /// every answer, including discovery documents that never change.
    pub ignore_cache_control: bool,
    /// Headers that carry a credential besides `Authorization` (e.g. `X-API-Key`); their
    /// values are part of the key.
    pub key_headers: Vec<http::HeaderName>,
}

/// Which family of generation counters a scope belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One resource: `(type, id)` within the tenant.
    Resource(u8),
    /// Everything of one type whose representation can change through writes to the *other*
    /// type: a User's `groups` comes from Group writes, a Group's member `display` from User
    /// writes.
    Family(u8),
    /// The whole tenant: `/Bulk`, `/Me` and writes the proxy cannot attribute.
    Tenant,
}

pub const USERS: u8 = 1;
pub const GROUPS: u8 = 2;

/// Up to three scopes, without allocating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    items: [Option<Scope>; 3],
}

impl Scopes {
    fn of(list: &[Scope]) -> Self {
        let mut s = Scopes::default();
        for (slot, x) in s.items.iter_mut().zip(list) {
            *slot = Some(*x);
        }
        s
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.items.iter().flatten().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.items[0].is_none()
    }
}

fn type_tag(r: ResourceType) -> Option<u8> {
    match r {
        ResourceType::Users => Some(USERS),
        ResourceType::Groups => Some(GROUPS),
        _ => None,
    }
}

/// What a cacheable read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Discovery,
    /// A User or Group by id (the type tag).
    Resource(u8),
}

/// Whether this request may be answered from (and fill) the cache, and the route's TTL.
/// Lists, filters and `.search` never are: a stale empty filter result is how an IdP ends up
/// creating a duplicate user.
pub fn lookup(method: Method, view: &ScimView, cfg: &RouteCache) -> Option<(Kind, Duration)> {
    if method != Method::Get {
        return None;
    }
    match view.op {
        Operation::Discovery => cfg.discovery.map(|t| (Kind::Discovery, t)),
        Operation::Get if view.id.is_some() => {
            let tag = type_tag(view.resource)?;
            cfg.resources.map(|t| (Kind::Resource(tag), t))
        }
        _ => None,
    }
}

/// The generation counters a cached resource depends on.
pub fn depends_on(kind: Kind) -> Scopes {
    match kind {
        Kind::Discovery => Scopes::default(),
        Kind::Resource(t) => Scopes::of(&[Scope::Resource(t), Scope::Family(other(t)), Scope::Tenant]),
    }
}

fn other(t: u8) -> u8 {
    if t == USERS {
        GROUPS
    } else {
        USERS
    }
}

/// The counters a request bumps (before it is forwarded and again when it ends). Reads bump
/// nothing; anything else that the proxy cannot attribute bumps the whole tenant.
pub fn invalidates(method: Method, view: &ScimView) -> Scopes {
    if matches!(method, Method::Get | Method::Head | Method::Options) {
        return Scopes::default();
    }
    let tag = type_tag(view.resource);
    match (view.op, tag) {
        (Operation::Search, _) => Scopes::default(),
        // A new user or group: nothing cached by id yet, but the other type's view of it may be.
        (Operation::Create, Some(t)) => Scopes::of(&[Scope::Family(t)]),
        (Operation::Replace | Operation::Patch | Operation::Delete, Some(t)) if view.id.is_some() => {
            Scopes::of(&[Scope::Resource(t), Scope::Family(t)])
        }
        // Custom resource types only affect themselves, and they are never cached.
        (Operation::Create | Operation::Replace | Operation::Patch | Operation::Delete, None)
            if matches!(view.resource, ResourceType::Custom(_)) =>
        {
            Scopes::default()
        }
        _ => Scopes::of(&[Scope::Tenant]),
    }
}

/// What the client asked of caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPolicy {
    /// May the answer come from the cache?
    pub lookup: bool,
    /// May the upstream's answer be kept?
    pub store: bool,
}

/// `Cache-Control: no-cache` (or `max-age=0`, `Pragma: no-cache`) forces a fresh answer, which
/// may still be kept; `no-store` keeps nothing; a `Cookie` is part of the identity this cache
/// does not key on, so such requests pass by it.
pub fn request_policy(headers: &HeaderMap) -> RequestPolicy {
    if headers.contains_key(http::header::COOKIE) {
        return RequestPolicy {
            lookup: false,
            store: false,
        };
    }
    let mut p = RequestPolicy {
        lookup: true,
        store: true,
    };
    for v in headers.get_all(http::header::CACHE_CONTROL) {
        for d in directives(v.as_bytes()) {
            match d {
                Directive::NoStore => p.store = false,
                Directive::NoCache | Directive::MaxAge(0) => p.lookup = false,
                _ => {}
            }
        }
    }
    if headers
        .get(http::header::PRAGMA)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"))
    {
        p.lookup = false;
    }
    if !p.store {
        p.lookup = false;
    }
    p
}

/// How long an upstream answer may be kept: the route's TTL, shortened by `max-age` /
/// `s-maxage`, or `None` when the answer must not be kept at all.
/// `ignore_cache_control` skips the upstream's `Cache-Control`; `Set-Cookie` and `Vary` still count.
pub fn response_ttl(headers: &HeaderMap, route_ttl: Duration, ignore_cache_control: bool) -> Option<Duration> {
    if headers.contains_key(http::header::SET_COOKIE) {
        return None;
    }
    let mut ttl = route_ttl;
    let cc = if ignore_cache_control {
        None
    } else {
        Some(headers.get_all(http::header::CACHE_CONTROL))
    };
    for v in cc.into_iter().flatten() {
        for d in directives(v.as_bytes()) {
            match d {
                Directive::NoStore | Directive::NoCache => return None,
                Directive::MaxAge(n) | Directive::SMaxAge(n) => ttl = ttl.min(Duration::from_secs(n)),
                Directive::Other => {}
            }
        }
    }
    // The key covers the credential, Accept and Accept-Encoding; any other Vary is unknown.
    for v in headers.get_all(http::header::VARY) {
        for name in v.as_bytes().split(|b| *b == b',') {
            let n = name.trim_ascii();
            let known = [&b"accept"[..], b"accept-encoding", b"authorization"]
                .iter()
                .any(|k| n.eq_ignore_ascii_case(k));
            if !known && !n.is_empty() {
                return None;
            }
        }
    }
    (!ttl.is_zero()).then_some(ttl)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    NoStore,
    NoCache,
    MaxAge(u64),
    SMaxAge(u64),
    Other,
}

fn directives(v: &[u8]) -> impl Iterator<Item = Directive> + '_ {
    v.split(|b| *b == b',').map(|d| {
        let d = d.trim_ascii();
        let (name, arg) = match d.iter().position(|b| *b == b'=') {
            Some(i) => (d[..i].trim_ascii(), Some(d[i + 1..].trim_ascii())),
            None => (d, None),
        };
        let secs = || {
            let a = arg.unwrap_or(b"").strip_prefix(b"\"").unwrap_or(arg.unwrap_or(b""));
            let a = a.strip_suffix(b"\"").unwrap_or(a);
            std::str::from_utf8(a)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if name.eq_ignore_ascii_case(b"no-store") {
            Directive::NoStore
        } else if name.eq_ignore_ascii_case(b"no-cache") {
            Directive::NoCache
        } else if name.eq_ignore_ascii_case(b"max-age") {
            Directive::MaxAge(secs())
        } else if name.eq_ignore_ascii_case(b"s-maxage") {
            Directive::SMaxAge(secs())
        } else {
            Directive::Other
        }
    })
}

/// `If-None-Match` against a stored ETag, with the weak comparison RFC 9110 §13.1.2 asks for.
pub fn etag_matches(if_none_match: &[u8], etag: &[u8]) -> bool {
    fn strip(t: &[u8]) -> &[u8] {
        let t = t.trim_ascii();
        t.strip_prefix(b"W/").unwrap_or(t)
    }
    let want = strip(etag);
    if_none_match
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii() == b"*" || strip(t) == want)
}

/// The path of a `Location` URL when it names a direct child of `collection` (the created
/// resource), or `None`.
pub fn created_path<'a>(location: &'a str, collection: &str) -> Option<&'a str> {
    let path = match location.find("://") {
        Some(i) => {
            let rest = &location[i + 3..];
            &rest[rest.find('/')?..]
        }
        None => location,
    };
    let path = crate::scim::path::path_only(path);
    let id = path.strip_prefix(collection.trim_end_matches('/'))?.strip_prefix('/')?;
    (!id.is_empty() && !id.contains('/')).then_some(path)
}

/// A JSON answer (`application/scim+json`, `application/json`, …).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"))
}

/// Whether a write's answer body is a resource representation (what a GET would return), not
/// an empty body, an echoed PatchOp, a list or an error.
pub fn looks_like_resource(body: &[u8]) -> bool {
    fn has(h: &[u8], n: &[u8]) -> bool {
        h.windows(n.len()).any(|w| w == n)
    }
    body.trim_ascii_start().first() == Some(&b'{')
        && has(body, b"urn:ietf:params:scim:schemas:")
        && !has(body, b"urn:ietf:params:scim:api:messages:")
}
