//! Header rules per route (`headers.request`, `headers.response`): the equivalents of nginx's
//! `proxy_set_header`, `add_header ... always` and `proxy_hide_header`.
//!
//! A value is compiled once, at load, into literal text and variables ([`Template`]); the
//! request path never parses it again. A value that is all literal is a ready `HeaderValue`
//! (cloning it counts a reference); one that is a lone `$host`, `$request_id`, `$scheme` or
//! `$http_…` reuses the request's own value; only values mixing text and variables (and
//! `$remote_addr`, `$tenant`) build a new one.
//!
//! Order within a rule set: `remove`, then `set` (replacing every field of that name; a value
//! that comes out empty removes the field, as nginx does for an empty `proxy_set_header`),
//! then `add` (another field; an empty value adds nothing, as with nginx's `add_header`).

use std::io::Write as _;
use std::net::IpAddr;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::Result;

/// How the variables are listed in config errors.
pub const VARIABLES: &str =
    "$host, $remote_addr, $scheme, $request_id, $tenant, $http_<name> (a request header), and $$ for a literal `$`";

/// A variable a value may hold; each is read from the client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// The host the client asked for, without its port, lower-cased (nginx's `$host`).
    Host,
    /// The client's address behind `trusted_proxies`.
    RemoteAddr,
    /// `http` or `https`, as the client reached the proxy.
    Scheme,
    /// The request's `X-Request-Id` (the client's when acceptable, else the proxy's own).
    RequestId,
    /// The request's tenant (from the path or the tenancy header); empty without one.
    Tenant,
    /// `$http_<name>`: a header of the client's request; several fields are joined by `, `
    /// (`; ` for `Cookie`, as nginx does: a cookie list is split on `;`, and a `,` would glue
    /// two cookies into one value).
    Header(HeaderName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(Bytes),
    Var(Var),
}

/// A compiled header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// All literal (possibly empty).
    Fixed(HeaderValue),
    /// Exactly one variable, nothing around it.
    One(Var),
    Parts(Box<[Part]>),
}

impl Template {
    /// Compiles a value; the error says what to write instead.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let b = s.as_bytes();
        let mut parts = Vec::new();
        let mut text = Vec::new();
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            if c != b'$' {
                text.push(c);
                i += 1;
                continue;
            }
            let (name, next) = match b.get(i + 1) {
                Some(b'$') => {
                    text.push(b'$');
                    i += 2;
                    continue;
                }
                Some(b'{') => {
                    let rest = &s[i + 2..];
                    let Some(end) = rest.find('}') else {
                        return Err(format!(
                            "`${{` in `{s}` is not closed by `}}`; write `$${{name}}` in the file (a bare `${{…}}` is an environment reference), or `$$` for a literal `$`"
                        ));
                    };
                    (&rest[..end], i + 3 + end)
                }
                _ => {
                    let len = b[i + 1..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                        .count();
                    (&s[i + 1..i + 1 + len], i + 1 + len)
                }
            };
            if name.is_empty() {
                return Err(format!(
                    "a `$` in `{s}` starts no variable; write `$$` for a literal `$`"
                ));
            }
            let var = variable(name)?;
            if !text.is_empty() {
                parts.push(Part::Text(literal(s, std::mem::take(&mut text))?));
            }
            parts.push(Part::Var(var));
            i = next;
        }
        if !text.is_empty() {
            parts.push(Part::Text(literal(s, text)?));
        }
        Ok(match parts.len() {
            0 => Template::Fixed(HeaderValue::from_static("")),
            1 => match parts.pop() {
                Some(Part::Var(v)) => Template::One(v),
                Some(Part::Text(t)) => Template::Fixed(header_value(s, t)?),
                None => Template::Fixed(HeaderValue::from_static("")),
            },
            _ => Template::Parts(parts.into_boxed_slice()),
        })
    }

    /// Empty whatever the request (an empty literal).
    pub fn is_empty(&self) -> bool {
        matches!(self, Template::Fixed(v) if v.is_empty())
    }

    fn vars(&self) -> impl Iterator<Item = &Var> {
        let (one, parts): (Option<&Var>, &[Part]) = match self {
            Template::Fixed(_) => (None, &[]),
            Template::One(v) => (Some(v), &[]),
            Template::Parts(p) => (None, p),
        };
        one.into_iter().chain(parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Text(_) => None,
        }))
    }
}

fn variable(name: &str) -> std::result::Result<Var, String> {
    // nginx's variable names are case-insensitive.
    let lower = name.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "host" => Var::Host,
        "remote_addr" => Var::RemoteAddr,
        "scheme" => Var::Scheme,
        "request_id" => Var::RequestId,
        "tenant" => Var::Tenant,
        n => match n.strip_prefix("http_") {
            Some(h) if !h.is_empty() => {
                let h = h.replace('_', "-");
                Var::Header(
                    HeaderName::from_bytes(h.as_bytes())
                        .map_err(|_| format!("`${name}`: `{h}` is not a valid header name"))?,
                )
            }
            _ => return Err(format!("`${name}` is not a variable scimitar knows; use {VARIABLES}")),
        },
    })
}

fn literal(whole: &str, text: Vec<u8>) -> std::result::Result<Bytes, String> {
    let text = Bytes::from(text);
    header_value(whole, text.clone())?;
    Ok(text)
}

fn header_value(whole: &str, text: Bytes) -> std::result::Result<HeaderValue, String> {
    HeaderValue::from_maybe_shared(text).map_err(|_| {
        format!(
            "`{}` holds a control character or line break, which a header value cannot carry",
            whole.escape_debug()
        )
    })
}

/// One direction's rules, in the order they apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    pub remove: Vec<HeaderName>,
    pub set: Vec<(HeaderName, Template)>,
    pub add: Vec<(HeaderName, Template)>,
}

impl RuleSet {
    /// Fields these rules may add (to reserve room once).
    pub fn len_hint(&self) -> usize {
        self.set.len() + self.add.len()
    }

    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    pub fn uses(&self, var: &Var) -> bool {
        self.set
            .iter()
            .chain(&self.add)
            .any(|(_, t)| t.vars().any(|v| v == var))
    }

    pub fn apply(&self, f: &mut impl Fields, vars: &Vars<'_>) -> Result<()> {
        for n in &self.remove {
            f.remove_field(n);
        }
        for (n, t) in &self.set {
            match vars.value(t) {
                Some(v) => f.set_field(n.clone(), v)?,
                // An upstream always gets a Host: an empty `$host` keeps the proxy's own.
                None if n == header::HOST => {}
                None => f.remove_field(n),
            }
        }
        for (n, t) in &self.add {
            if let Some(v) = vars.value(t) {
                f.add_field(n.clone(), v)?;
            }
        }
        Ok(())
    }
}

/// A route's rules; `None` where a direction has none, so a route checks one pointer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// To the upstream.
    pub request: Option<RuleSet>,
    /// To the client: the upstream's answers and the proxy's own for this route.
    pub response: Option<RuleSet>,
}

impl HeaderRules {
    pub fn uses(&self, var: &Var) -> bool {
        self.request.iter().chain(&self.response).any(|r| r.uses(var))
    }
}

/// A header block rules can edit: a plain `HeaderMap` (the fast path of
/// [`crate::proxy::headers`]) or Pingora's case-keeping headers.
pub trait Fields {
    /// Replaces every field of that name.
    fn set_field(&mut self, n: HeaderName, v: HeaderValue) -> Result<()>;
    /// Adds another field.
    fn add_field(&mut self, n: HeaderName, v: HeaderValue) -> Result<()>;
    fn remove_field(&mut self, n: &HeaderName);
}

impl Fields for HeaderMap {
    fn set_field(&mut self, n: HeaderName, v: HeaderValue) -> Result<()> {
        self.insert(n, v);
        Ok(())
    }
    fn add_field(&mut self, n: HeaderName, v: HeaderValue) -> Result<()> {
        self.append(n, v);
        Ok(())
    }
    fn remove_field(&mut self, n: &HeaderName) {
        self.remove(n);
    }
}

impl Fields for RequestHeader {
    fn set_field(&mut self, n: HeaderName, v: HeaderValue) -> Result<()> {
        self.insert_header(n, v)
    }
    fn add_field(&mut self, n: HeaderName, v: HeaderValue) -> Result<()> {
        self.append_header(n, v).map(|_| ())
    }
    fn remove_field(&mut self, n: &HeaderName) {
        self.remove_header(n);
    }
}

impl Fields for ResponseHeader {
    fn set_field(&mut self, n: HeaderName, v: HeaderValue) -> Result<()> {
        self.insert_header(n, v)
    }
    fn add_field(&mut self, n: HeaderName, v: HeaderValue) -> Result<()> {
        self.append_header(n, v).map(|_| ())
    }
    fn remove_field(&mut self, n: &HeaderName) {
        self.remove_header(n);
    }
}

/// Where one request's variables come from.
pub struct Vars<'a> {
    /// The client's request, as it arrived.
    pub req: &'a RequestHeader,
    /// The TCP peer.
    pub peer: Option<IpAddr>,
    pub tls: bool,
    pub request_id: Option<&'a HeaderValue>,
    pub tenant: Option<&'a [u8]>,
}

impl Vars<'_> {
    /// The value of `t` for this request; `None` when it comes out empty (or, from a
    /// variable, not a valid header value).
    pub fn value(&self, t: &Template) -> Option<HeaderValue> {
        let v = match t {
            Template::Fixed(v) => Some(v.clone()),
            Template::One(var) => self.one(var),
            Template::Parts(parts) => {
                let mut buf = Vec::with_capacity(64);
                for p in parts.iter() {
                    match p {
                        Part::Text(t) => buf.extend_from_slice(t),
                        Part::Var(var) => self.write(var, &mut buf),
                    }
                }
                finish(buf)
            }
        };
        v.filter(|v| !v.is_empty())
    }

    /// A lone variable: the request's own value where it can be reused as it is.
    fn one(&self, var: &Var) -> Option<HeaderValue> {
        match var {
            Var::Scheme => Some(HeaderValue::from_static(self.scheme())),
            Var::RequestId => self.request_id.cloned(),
            Var::Header(n) => {
                let mut all = self.req.headers.get_all(n).iter();
                match (all.next(), all.next()) {
                    (one, None) => one.cloned(),
                    _ => self.written(var),
                }
            }
            Var::Host => match crate::proxy::request_host(self.req) {
                Some(h) if host_end(h.as_bytes()) == h.len() && !h.as_bytes().iter().any(u8::is_ascii_uppercase) => {
                    Some(h)
                }
                Some(_) => self.written(var),
                None => None,
            },
            Var::RemoteAddr | Var::Tenant => self.written(var),
        }
    }

    fn written(&self, var: &Var) -> Option<HeaderValue> {
        let mut buf = Vec::with_capacity(48);
        self.write(var, &mut buf);
        finish(buf)
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    fn write(&self, var: &Var, out: &mut Vec<u8>) {
        match var {
            Var::Host => {
                if let Some(h) = crate::proxy::request_host(self.req) {
                    let b = h.as_bytes();
                    out.extend(b[..host_end(b)].iter().map(u8::to_ascii_lowercase));
                }
            }
            Var::RemoteAddr => {
                if let Some(peer) = self.peer {
                    let ip = crate::clientip::real_client_ip(peer, &self.req.headers);
                    let _ = write!(out, "{ip}");
                }
            }
            Var::Scheme => out.extend_from_slice(self.scheme().as_bytes()),
            Var::RequestId => out.extend_from_slice(self.request_id.map_or(&b""[..], |v| v.as_bytes())),
            Var::Tenant => out.extend_from_slice(self.tenant.unwrap_or_default()),
            Var::Header(n) => {
                let sep: &[u8] = if n == header::COOKIE { b"; " } else { b", " };
                for (i, v) in self.req.headers.get_all(n).iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(sep);
                    }
                    out.extend_from_slice(v.as_bytes());
                }
            }
        }
    }
}

fn finish(buf: Vec<u8>) -> Option<HeaderValue> {
    if buf.is_empty() {
        return None;
    }
    HeaderValue::from_maybe_shared(Bytes::from(buf))
        .map_err(|e| log::debug!("a header rule's value is not a valid header value: {e}"))
        .ok()
}

/// Where the host ends in a `Host` value: before the port (`[::1]:8080` keeps its brackets).
fn host_end(b: &[u8]) -> usize {
    if b.first() == Some(&b'[') {
        return b.iter().position(|c| *c == b']').map_or(b.len(), |i| i + 1);
    }
    b.iter().position(|c| *c == b':').unwrap_or(b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Template {
        Template::parse(s).unwrap()
    }

    fn text(s: &str) -> Part {
        Part::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn values_compile_into_literals_and_variables() {
        assert_eq!(t("DENY"), Template::Fixed(HeaderValue::from_static("DENY")));
        assert_eq!(t(""), Template::Fixed(HeaderValue::from_static("")));
        assert!(t("").is_empty() && !t("x").is_empty());
        assert_eq!(t("$remote_addr"), Template::One(Var::RemoteAddr));
        assert_eq!(t("$HOST"), Template::One(Var::Host), "names ignore case, as nginx's");
        assert_eq!(t("price: $$5"), Template::Fixed(HeaderValue::from_static("price: $5")));
        assert_eq!(
            t("$http_x_api_key"),
            Template::One(Var::Header(HeaderName::from_static("x-api-key")))
        );
        assert_eq!(
            t("for=$remote_addr;proto=$scheme"),
            Template::Parts(
                vec![
                    text("for="),
                    Part::Var(Var::RemoteAddr),
                    text(";proto="),
                    Part::Var(Var::Scheme)
                ]
                .into()
            )
        );
        assert_eq!(
            t("${tenant}-x"),
            Template::Parts(vec![Part::Var(Var::Tenant), text("-x")].into()),
            "braces end a name that text follows"
        );
        assert_eq!(
            t("$tenant-x"),
            Template::Parts(vec![Part::Var(Var::Tenant), text("-x")].into()),
            "a name ends at the first character that cannot be in one"
        );
        assert_eq!(
            t("$request_id$host"),
            Template::Parts(vec![Part::Var(Var::RequestId), Part::Var(Var::Host)].into())
        );
    }

    #[test]
    fn bad_values_are_explained() {
        let err = |s: &str| Template::parse(s).unwrap_err();
        let e = err("$hostname");
        assert!(e.contains("`$hostname` is not a variable scimitar knows"), "{e}");
        assert!(e.contains(VARIABLES), "lists the known ones: {e}");
        assert!(err("$uri").contains("`$uri`"));
        assert!(err("$http_").contains("not a variable"));
        assert!(err("50$").contains("write `$$`"));
        assert!(err("$ x").contains("write `$$`"));
        assert!(err("${host").contains("not closed"));
        assert!(err("${}").contains("write `$$`"));
        assert!(err("a\nb").contains("line break"));
        assert!(err("a\u{7f}b").contains("control character"));
    }

    fn request(host: Option<&str>, extra: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/scim/v2/Users", None).unwrap();
        if let Some(h) = host {
            r.insert_header("Host", h).unwrap();
        }
        for (k, v) in extra {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn vars<'a>(req: &'a RequestHeader, id: &'a HeaderValue) -> Vars<'a> {
        Vars {
            req,
            peer: Some("203.0.113.7".parse().unwrap()),
            tls: true,
            request_id: Some(id),
            tenant: Some(b"acme"),
        }
    }

    fn value(v: &Vars<'_>, s: &str) -> Option<String> {
        v.value(&t(s))
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
    }

    #[test]
    fn variables_expand_from_the_request() {
        let id = HeaderValue::from_static("abc123");
        let req = request(
            Some("SCIM.Example.com:8443"),
            &[
                ("X-Api-Key", "k1"),
                ("Accept", "a"),
                ("accept", "b"),
                ("Cookie", "sid=1"),
                ("Cookie", "lang=en"),
            ],
        );
        let v = vars(&req, &id);
        assert_eq!(
            value(&v, "$host").as_deref(),
            Some("scim.example.com"),
            "port dropped, lower case"
        );
        assert_eq!(value(&v, "$remote_addr").as_deref(), Some("203.0.113.7"));
        assert_eq!(value(&v, "$scheme").as_deref(), Some("https"));
        assert_eq!(value(&v, "$request_id").as_deref(), Some("abc123"));
        assert_eq!(value(&v, "$tenant").as_deref(), Some("acme"));
        assert_eq!(value(&v, "$http_x_api_key").as_deref(), Some("k1"));
        assert_eq!(value(&v, "$http_accept").as_deref(), Some("a, b"), "fields are joined");
        assert_eq!(
            value(&v, "$http_cookie").as_deref(),
            Some("sid=1; lang=en"),
            "cookies are joined as one Cookie list, as nginx does"
        );
        assert_eq!(value(&v, "c=[$http_cookie]").as_deref(), Some("c=[sid=1; lang=en]"));
        assert_eq!(
            value(&v, "t=$tenant; h=$host; $$").as_deref(),
            Some("t=acme; h=scim.example.com; $")
        );
        assert_eq!(value(&v, "$http_x_missing"), None, "an absent header is empty");
        assert_eq!(value(&v, "$http_x_missing$http_x_missing"), None);

        let req = request(Some("[2001:db8::1]:8080"), &[]);
        assert_eq!(value(&vars(&req, &id), "$host").as_deref(), Some("[2001:db8::1]"));
        let req = request(Some("plain.example"), &[]);
        let v = Vars {
            tls: false,
            tenant: None,
            peer: None,
            request_id: None,
            ..vars(&req, &id)
        };
        assert_eq!(value(&v, "$host").as_deref(), Some("plain.example"));
        assert_eq!(value(&v, "$scheme").as_deref(), Some("http"));
        assert_eq!(value(&v, "$tenant"), None);
        assert_eq!(value(&v, "$remote_addr"), None);
        assert_eq!(value(&v, "[$tenant]").as_deref(), Some("[]"));
        let req = request(None, &[]);
        assert_eq!(value(&vars(&req, &id), "$host"), None);
    }

    fn rules() -> RuleSet {
        let n = HeaderName::from_static;
        RuleSet {
            remove: vec![n("x-debug"), n("x-gone")],
            set: vec![
                (n("x-tenant"), t("$tenant")),
                (n("x-maybe"), t("$http_x_missing")),
                (header::HOST, t("$http_x_missing")),
                (n("x-debug"), t("on")),
            ],
            add: vec![(n("x-via"), t("scimitar")), (n("x-none"), t("$http_x_missing"))],
        }
    }

    #[test]
    fn rules_remove_then_set_then_add() {
        let id = HeaderValue::from_static("abc");
        let client = request(Some("h"), &[]);
        let v = vars(&client, &id);
        let mut map = HeaderMap::new();
        for (k, val) in [
            ("x-tenant", "forged"),
            ("x-tenant", "forged2"),
            ("x-maybe", "client"),
            ("x-via", "lb"),
            ("x-debug", "1"),
            ("x-gone", "1"),
            ("host", "upstream.example"),
        ] {
            map.append(HeaderName::from_static(k), HeaderValue::from_static(val));
        }
        rules().apply(&mut map, &v).unwrap();
        let all = |k: &str| {
            map.get_all(k)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(all("x-tenant"), ["acme"], "set replaces every field");
        assert!(all("x-maybe").is_empty(), "a set value that comes out empty removes");
        assert_eq!(all("host"), ["upstream.example"], "but never the Host");
        assert_eq!(all("x-via"), ["lb", "scimitar"], "add appends");
        assert!(all("x-none").is_empty(), "an empty add adds nothing");
        assert!(all("x-gone").is_empty());
        assert_eq!(all("x-debug"), ["on"], "remove runs before set");

        // Pingora's header keeps its case map in step on the slow path.
        let mut up = request(Some("upstream.example"), &[("X-Tenant", "forged"), ("X-Gone", "1")]);
        rules().apply(&mut up, &v).unwrap();
        let mut wire = bytes::BytesMut::new();
        up.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8_lossy(&wire).into_owned();
        assert!(
            wire.contains("x-tenant: acme\r\n") && !wire.contains("forged"),
            "{wire}"
        );
        assert!(!wire.to_ascii_lowercase().contains("x-gone"), "{wire}");
        assert!(wire.contains("x-via: scimitar\r\n"), "{wire}");

        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("X-Debug", "1").unwrap();
        rules().apply(&mut resp, &v).unwrap();
        assert_eq!(resp.headers["x-debug"], "on");
        assert_eq!(resp.headers["x-tenant"], "acme");
    }

    #[test]
    fn rules_know_the_variables_they_use() {
        let r = HeaderRules {
            request: None,
            response: Some(rules()),
        };
        assert!(r.uses(&Var::Tenant));
        assert!(!r.uses(&Var::RemoteAddr));
        assert_eq!(rules().len_hint(), 6);
        assert!(RuleSet::default().is_empty());
    }
}
