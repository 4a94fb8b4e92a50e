//! `server` blocks → `listeners`: `listen` (address, `ssl`, `http2`), `http2 on`, the TLS
//! directives and `server_name` (the names of each certificate when several servers share an
//! address: scimitar picks the certificate by SNI but routes by path, never by Host). Also
//! the client limits (`keepalive_timeout` & co.) and `worker_processes`.

use std::net::{IpAddr, SocketAddr};

use super::emit::{Entry, Item, Node};
use super::scope::{self, Chain};
use super::tls;
use super::{Cx, Out};
use crate::nginx::Directive;

/// One scimitar listener being assembled from every `listen` that names its address.
pub(crate) struct Listener {
    name: String,
    address: SocketAddr,
    tls: bool,
    http2: bool,
    notes: Vec<String>,
    /// Each server's certificate: (cert, key, names, default, where from).
    certs: Vec<Cert>,
    /// `min_version`, `ciphers`, `client_ca`, `client_auth`: from the first TLS server.
    options: Vec<Entry>,
    /// Where that server is (`nginx.conf:12`), for reporting another that differs.
    origin: String,
}

struct Cert {
    cert: String,
    key: String,
    names: Vec<String>,
    default: bool,
    notes: Vec<String>,
}

/// Every listener, in the order nginx names them.
#[derive(Default)]
pub(crate) struct Listeners(pub Vec<Listener>);

impl Listeners {
    pub fn items(&self) -> Vec<Item> {
        self.0.iter().map(Listener::item).collect()
    }
}

impl Listener {
    fn item(&self) -> Item {
        let tls = self.tls.then(|| {
            let mut t = Node::map();
            match self.certs.as_slice() {
                [one] => {
                    t.set_noted(one.notes.clone(), "cert", Node::str(one.cert.clone()));
                    t.set("key", Node::str(one.key.clone()));
                }
                many => {
                    let list = many
                        .iter()
                        .map(|c| {
                            let mut m = Node::map();
                            m.set("cert", Node::str(c.cert.clone()));
                            m.set("key", Node::str(c.key.clone()));
                            if !c.names.is_empty() {
                                m.set("names", Node::Flow(c.names.clone()));
                            }
                            if c.default {
                                m.set("default", Node::Bool(true));
                            }
                            Item {
                                notes: c.notes.clone(),
                                value: m,
                            }
                        })
                        .collect();
                    t.set_noted(
                        vec!["one certificate per nginx server, chosen by SNI (names from server_name)".into()],
                        "certificates",
                        Node::List(list),
                    );
                }
            }
            if let Node::Map(e) = &mut t {
                e.extend(self.options.iter().cloned());
            }
            t
        });
        let mut node = listener_node(&self.name, &self.address.to_string(), tls, self.http2);
        if self.tls && !self.http2 {
            if let Some(Node::Map(e)) = Some(&mut node) {
                if let Some(h) = e.iter_mut().find(|e| e.key == "http2") {
                    h.notes
                        .push("nginx served HTTP/1.1 only here (no `http2`); `true` offers h2 by ALPN".into());
                }
            }
        }
        Item {
            notes: self.notes.clone(),
            value: node,
        }
    }
}

/// `{name, address, [http2], [tls]}`; `http2: false` is written on TLS listeners, where
/// scimitar's default is true.
pub fn listener_node(name: &str, address: &str, tls: Option<Node>, http2: bool) -> Node {
    let mut n = Node::map();
    n.set("name", Node::str(name));
    n.set("address", Node::str(address));
    if http2 || tls.is_some() {
        n.set("http2", Node::Bool(http2));
    }
    if let Some(t) = tls {
        n.set("tls", t);
    }
    n
}

/// The `listen` address as a socket address: nginx's `8080`, `*:8080`, `1.2.3.4`, `[::1]:80`;
/// `localhost` is 127.0.0.1. `Err` says why it cannot be listened on.
pub fn listen_address(s: &str) -> Result<(SocketAddr, Option<String>), String> {
    if s.starts_with("unix:") {
        return Err("scimitar listens on TCP addresses only, not unix sockets".into());
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok((SocketAddr::from(([0, 0, 0, 0], port)), None));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok((a, None));
    }
    if let Ok(ip) = s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok((SocketAddr::new(ip, 80), None));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("`{p}` is not a port"))?),
        None => (s, 80),
    };
    match host {
        "*" => Ok((SocketAddr::from(([0, 0, 0, 0], port)), None)),
        "localhost" => Ok((
            SocketAddr::from(([127, 0, 0, 1], port)),
            Some("localhost is written as 127.0.0.1".into()),
        )),
        _ => Err(format!(
            "`{host}` is a host name; scimitar listens on an IP address (write it)"
        )),
    }
}

fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The listeners of one `server` block (`chain` is http, server).
pub fn listeners(cx: &mut Cx, out: &mut Out, chain: &Chain) {
    let Some(server) = chain.innermost() else { return };
    let ssl_on = server.find("ssl").last().is_some_and(|d| d.arg(0) == Some("on"));
    for d in server.find("ssl") {
        cx.take(d);
    }
    let http2_on = chain.scalar("http2").is_some_and(|d| d.arg(0) == Some("on"));
    for d in chain.all("http2") {
        cx.take(d);
    }
    let names = server_names(cx, server);
    let listens: Vec<&Directive> = server.find("listen").collect();
    if listens.is_empty() {
        let note = format!(
            "from {}: server without `listen`, so nginx's default *:80",
            cx.place(server)
        );
        add(
            cx,
            out,
            server,
            SocketAddr::from(([0, 0, 0, 0], 80)),
            false,
            http2_on,
            None,
            &names,
            chain,
            note,
        );
        return;
    }
    for l in listens {
        let Some(addr) = l.arg(0) else { continue };
        let (address, remark) = match listen_address(addr) {
            Ok(a) => a,
            Err(why) => {
                cx.drop(l, true, why);
                continue;
            }
        };
        if scope::flag(l, "quic") {
            cx.drop(l, true, "scimitar does not speak HTTP/3 (QUIC)");
            continue;
        }
        cx.take(l);
        if scope::flag(l, "proxy_protocol") {
            cx.note(super::Note::new(
                l,
                super::Kind::Dropped { handling: true },
                "`proxy_protocol`: scimitar does not read the PROXY protocol header; the listener is translated without it",
            ));
        }
        if let Some(r) = remark {
            cx.differs(l, r);
        }
        let tls = scope::flag(l, "ssl") || ssl_on;
        let http2 = scope::flag(l, "http2") || http2_on;
        let default = scope::flag(l, "default_server") || scope::flag(l, "default");
        let note = cx.from(l);
        add(cx, out, l, address, tls, http2, Some(default), &names, chain, note);
    }
}

/// A server with no translated location: its addresses are reported, not listened on.
pub fn unserved(cx: &mut Cx, server: &Directive) {
    let why = "no location of this server was translated, so scimitar does not listen here (its routes serve every listener and would answer what nginx does not)";
    let mut any = false;
    for l in server.find("listen") {
        cx.drop(l, true, why);
        any = true;
    }
    if !any {
        cx.note(super::Note::new(server, super::Kind::Dropped { handling: true }, why));
    }
    for d in server.find("server_name") {
        cx.take(d);
    }
}

/// `server_name` → the certificate names (exact, `*.x` wildcards; `.x` is both `x` and
/// `*.x`). Regex names and `_` carry nothing over.
fn server_names(cx: &mut Cx, server: &Directive) -> Vec<String> {
    let mut names = Vec::new();
    for d in server.find("server_name") {
        cx.take(d);
        for a in &d.args {
            let n = a.text.to_ascii_lowercase();
            if n.is_empty() || n == "_" || n == "localhost" || !n.contains('.') {
                continue;
            }
            if n.starts_with('~') || n.ends_with(".*") {
                cx.note(super::Note::new(
                    d,
                    super::Kind::Dropped { handling: false },
                    format!("`{n}`: scimitar picks certificates by exact or `*.parent` names only"),
                ));
            } else if let Some(bare) = n.strip_prefix('.') {
                names.push(bare.to_string());
                names.push(format!("*.{bare}"));
            } else {
                names.push(n);
            }
        }
    }
    names
}

#[allow(clippy::too_many_arguments)]
fn add(
    cx: &mut Cx,
    out: &mut Out,
    at: &Directive,
    address: SocketAddr,
    tls: bool,
    http2: bool,
    default: Option<bool>,
    names: &[String],
    chain: &Chain,
    note: String,
) {
    let cert = if tls {
        match certificate(cx, chain, names, default.unwrap_or(false)) {
            Some(c) => Some(c),
            None => {
                cx.drop(
                    at,
                    true,
                    "an `ssl` listener without `ssl_certificate` and `ssl_certificate_key`",
                );
                return;
            }
        }
    } else {
        None
    };
    let server = chain.innermost().map(|s| cx.place(s)).unwrap_or_default();
    let listeners = &mut out.listeners.0;
    if let Some(l) = listeners.iter_mut().find(|l| l.address == address) {
        // Another server on the same address: one listener, one more certificate, and the
        // settings nginx kept per server but scimitar per listener checked for a difference.
        if tls {
            let options = tls::options(cx, chain);
            if l.tls {
                tls::conflict(cx, at, (&l.origin, &server), &l.options, &options);
            }
        }
        if let Some(c) = cert {
            if !l.certs.iter().any(|x| x.cert == c.cert && x.key == c.key) {
                l.certs.push(c);
            } else if let Some(x) = l.certs.iter_mut().find(|x| x.cert == c.cert && x.key == c.key) {
                for n in c.names {
                    if !x.names.contains(&n) {
                        x.names.push(n);
                    }
                }
            }
        }
        l.http2 |= http2;
        l.notes.push(note);
        return;
    }
    if let Some(other) = listeners.iter().find(|l| overlaps(l.address, address)) {
        let why = format!(
            "scimitar cannot bind {address} next to {} (one port, a wildcard on one side); only the first is kept{}",
            other.address,
            if address.is_ipv6() != other.address.is_ipv6() {
                " — on Linux with net.ipv6.bindv6only=0 a `[::]:PORT` listener alone serves IPv4 and IPv6"
            } else {
                ""
            }
        );
        cx.differs(at, why);
        return;
    }
    let mut name = format!("{}-{}", if tls { "https" } else { "http" }, address.port());
    if listeners.iter().any(|l| l.name == name) {
        name = format!("{name}-{}", listeners.len() + 1);
    }
    let options = if tls { tls::options(cx, chain) } else { Vec::new() };
    listeners.push(Listener {
        name,
        address,
        tls,
        http2,
        notes: vec![note],
        certs: cert.into_iter().collect(),
        options,
        origin: server,
    });
}

/// The server's first certificate and key, paths made absolute against nginx's prefix.
fn certificate(cx: &mut Cx, chain: &Chain, names: &[String], default: bool) -> Option<Cert> {
    let certs = chain.array("ssl_certificate");
    let keys = chain.array("ssl_certificate_key");
    let (c, k) = (certs.first()?, keys.first()?);
    for extra in certs.iter().skip(1).chain(keys.iter().skip(1)) {
        cx.drop(
            extra,
            false,
            "scimitar serves one certificate per name (the first of this server is kept)",
        );
    }
    let (cert, key) = (c.arg(0)?, k.arg(0)?);
    if cert.contains('$') || key.contains('$') {
        cx.drop(
            c,
            true,
            "a certificate path with variables (picked per SNI); list each certificate with its names instead",
        );
        cx.take(k);
        return None;
    }
    cx.take(c);
    cx.take(k);
    Some(Cert {
        cert: scope::resolve(cx.base(), cert).display().to_string(),
        key: scope::resolve(cx.base(), key).display().to_string(),
        names: names.to_vec(),
        default,
        notes: vec![cx.from(c), cx.from(k)],
    })
}

/// The client limits from the http level (or a lone server's).
pub fn client(cx: &mut Cx, out: &mut Out, h: &Directive) {
    let servers: Vec<&Directive> = h.find("server").collect();
    let lone = if servers.len() == 1 {
        servers.first().copied()
    } else {
        None
    };
    let pick = |name: &str| -> Option<&Directive> { lone.and_then(|s| last(s, name)).or_else(|| last(h, name)) };
    let mut c = Node::map();
    let timed = [
        ("client_header_timeout", "header_timeout", None),
        (
            "client_body_timeout",
            "body_timeout",
            Some("nginx times the gap between two reads of the body; scimitar the whole body"),
        ),
        ("send_timeout", "send_timeout", None),
        ("keepalive_timeout", "keepalive_timeout", None),
    ];
    for (nginx, key, differs) in timed {
        let Some(d) = pick(nginx) else { continue };
        match d.arg(0).and_then(scope::time).and_then(scope::bounded) {
            Some(t) => {
                c.set_noted(vec![cx.from(d)], key, Node::str(scope::fmt_time(t)));
                match differs {
                    Some(why) => cx.differs(d, why),
                    None => cx.take(d),
                }
            }
            None => cx.drop(d, false, "zero, over a year or unreadable; scimitar keeps its default"),
        }
    }
    if let Some(d) = pick("keepalive_requests") {
        if let Some(n) = d.arg(0).and_then(|n| n.parse::<u64>().ok()) {
            cx.take(d);
            c.set_noted(
                vec![cx.from(d)],
                "keepalive_requests",
                Node::Int(n.clamp(1, u64::from(u32::MAX))),
            );
        }
    }
    if let Some(d) = pick("large_client_header_buffers") {
        let n = d.arg(0).and_then(|n| n.parse::<u64>().ok());
        let size = d.arg(1).and_then(scope::size);
        if let (Some(n), Some(size)) = (n, size) {
            // scimitar's bounds (src/config/client.rs): 256 B..64 KiB a line, 1 KiB..1 MiB a head.
            let line = size.clamp(256, 65_534);
            let head = n.saturating_mul(size).clamp(1024, 1_048_575);
            if line != size || head != n.saturating_mul(size) {
                cx.differs(
                    d,
                    "beyond scimitar's bounds (a line 256 B to 64 KiB, a head 1 KiB to 1 MiB): the nearest bound",
                );
            } else {
                cx.take(d);
            }
            c.set_noted(
                vec![cx.from(d), "a request line must fit one buffer".into()],
                "max_request_line",
                Node::str(scope::fmt_size(line)),
            );
            c.set("max_request_head", Node::str(scope::fmt_size(head)));
        }
    }
    if let Node::Map(e) = c {
        out.client = e;
    }
}

fn last<'a>(d: &'a Directive, name: &str) -> Option<&'a Directive> {
    d.children().iter().rfind(|c| c.name == name)
}

/// `worker_processes N` → `server.threads` (scimitar's runtimes play nginx's workers' part).
pub fn workers(cx: &mut Cx, out: &mut Out, d: &Directive) {
    cx.take(d);
    if let Some(n) = d.arg(0).and_then(|n| n.parse::<u64>().ok()).filter(|n| *n > 0) {
        out.server.push(Entry {
            notes: vec![cx.from(d)],
            key: "threads".into(),
            value: Node::Int(n),
        });
    }
}
