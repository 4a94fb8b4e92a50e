//! An nginx configuration (the tree of [`crate::nginx`]) → a scimitar YAML config, plus a
//! report of everything that could not be carried over. Pure: no file is read or written
//! here (`import.rs` is the command around it).
//!
//! - `servers.rs`: `listen`, `server_name`, certificates, HTTP/2 → `listeners`; client
//!   timeouts. `tls.rs`: each server's TLS settings, checked alike on a shared listener.
//! - `upstreams.rs`: `upstream` blocks and `proxy_pass` addresses → `upstreams` (one pool per
//!   distinct set of per-location settings: timeouts, retries).
//! - `locations.rs`: `location` → `routes` (base path + endpoint classes, `return`,
//!   `upstream_base_path`, `max_body`, `cache`), ordered so scimitar's first match picks what
//!   nginx's location choice picks; `probes.rs` checks that on a matrix of SCIM requests.
//! - `headers.rs`, `limits.rs`, `auth.rs`, `toplevel.rs`: header rules, rate limits, bearer
//!   token checks, real client IP and logs.
//! - `catalog.rs`: what every directive left over means; `report.rs`: the report lines and
//!   the exit code; `redact.rs`: credentials kept out of all of it; `emit.rs`: the YAML text with a `# from file:line` comment above each part.
//!
//! Every directive of the tree is accounted for: the parts mark what they consume, and a last
//! sweep reports the rest through the catalogue.

mod auth;
mod catalog;
mod emit;
mod headers;
mod limits;
mod locations;
mod probes;
mod redact;
pub mod report;
mod scope;
mod servers;
mod tls;
mod toplevel;
mod upstreams;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fixtures;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use self::emit::Node;
pub use self::report::{exit_code, Kind, Note};
use self::scope::Chain;
use crate::nginx::Directive;

/// The YAML text and what did not make it into it.
#[derive(Debug, Clone)]
pub struct Translation {
    pub yaml: String,
    /// Sorted by file and line.
    pub notes: Vec<Note>,
}

impl Translation {
    /// The report as the command prints it, files relative to `base`.
    pub fn report_lines(&self, base: &Path) -> Vec<String> {
        self.notes.iter().map(|n| n.line(base)).collect()
    }
}

/// Translates the directives of one nginx configuration. `base` is nginx's prefix (the main
/// file's directory): relative certificate and log paths resolve against it, and the file
/// names in comments and the report are shown relative to it.
pub fn translate(top: &[Directive], base: &Path) -> Translation {
    run(top, base).0
}

fn run(top: &[Directive], base: &Path) -> (Translation, Cx) {
    let mut cx = Cx::new(base, top);
    let mut out = Out::default();
    for d in top {
        match d.name.as_str() {
            "http" => http(&mut cx, &mut out, d),
            "worker_processes" => servers::workers(&mut cx, &mut out, d),
            _ => {}
        }
    }
    sweep(&mut cx, top);
    cx.notes
        .sort_by(|a, b| (&a.at.file, a.at.line).cmp(&(&b.at.file, b.at.line)));
    let yaml = out.render(&cx);
    let notes = std::mem::take(&mut cx.notes);
    (Translation { yaml, notes }, cx)
}

/// Directives neither translated nor reported (there must be none).
#[cfg(test)]
fn untaken(cx: &Cx, dirs: &[Directive], out: &mut Vec<String>) {
    for d in dirs {
        if !cx.is_taken(d) {
            out.push(format!("{}: {}", cx.place(d), d.name));
        }
        untaken(cx, d.children(), out);
    }
}

fn http(cx: &mut Cx, out: &mut Out, h: &Directive) {
    cx.take(h);
    let top = Chain(vec![h]);
    let mut pools = upstreams::Pools::collect(cx, h);
    let mut policies = limits::Policies::collect(cx, h);
    toplevel::real_ip(cx, out, h);
    toplevel::logs(cx, out, h);
    servers::client(cx, out, h);
    let mut locs = Vec::new();
    let blocks: Vec<&Directive> = h.find("server").collect();
    for (i, s) in blocks.iter().enumerate() {
        cx.take(s);
        locations::collect(cx, &top.with(s), i, &mut locs);
    }
    let routes = locations::routes(cx, &mut pools, &mut policies, &locs);
    probes::verify(cx, &routes, &locs);
    // A server none of whose locations became a route gets no listener: scimitar's routes
    // serve every listener, so one here would answer what nginx does not.
    for (i, s) in blocks.iter().enumerate() {
        if routes.iter().any(|r| r.locs.iter().any(|&l| locs[l].server == i)) {
            servers::listeners(cx, out, &top.with(s));
        } else {
            servers::unserved(cx, s);
        }
    }
    out.routes = routes;
    out.pools = pools.emit(cx);
    out.policies = policies.emit();
}

/// Marks what was consumed and collects the notes; knows which variables are read where.
pub(crate) struct Cx {
    base: PathBuf,
    taken: HashSet<*const Directive>,
    notes: Vec<Note>,
    /// How often each variable is read (definitions by `map`/`geo`/`set` excluded).
    reads: HashMap<String, usize>,
    /// (value, environment variable) of each credential a header rule carries.
    secrets: Vec<(String, String)>,
}

impl Cx {
    fn new(base: &Path, top: &[Directive]) -> Cx {
        let mut reads = HashMap::new();
        count_reads(top, &mut reads);
        Cx {
            base: base.to_path_buf(),
            taken: HashSet::new(),
            notes: Vec::new(),
            reads,
            secrets: Vec::new(),
        }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// This directive is translated (or deliberately needs nothing).
    pub fn take(&mut self, d: &Directive) {
        self.taken.insert(d as *const Directive);
    }

    /// This directive and everything inside it.
    pub fn take_all(&mut self, d: &Directive) {
        self.take(d);
        for c in d.children() {
            self.take_all(c);
        }
    }

    pub fn is_taken(&self, d: &Directive) -> bool {
        self.taken.contains(&(d as *const Directive))
    }

    /// Left out as a whole (its block too), with the reason.
    pub fn drop(&mut self, d: &Directive, handling: bool, why: impl Into<String>) {
        self.take_all(d);
        self.note(Note::new(d, Kind::Dropped { handling }, why));
    }

    /// Translated, with a difference worth reading.
    pub fn differs(&mut self, d: &Directive, why: impl Into<String>) {
        self.take(d);
        self.note(Note::new(d, Kind::Differs, why));
    }

    /// Adds a note once (settings inherited by several locations are looked at several times).
    pub fn note(&mut self, n: Note) {
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }

    /// The environment variable a header rule's credential is written as:
    /// `SCIMITAR_SECRET_X_API_KEY` for header `X-Api-Key`, one per distinct value.
    pub fn secret_env(&mut self, header: &str, value: &str) -> String {
        if let Some((_, name)) = self.secrets.iter().find(|(v, _)| v == value) {
            return name.clone();
        }
        let stem: String = header
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        let stem = format!("SCIMITAR_SECRET_{stem}");
        let mut name = stem.clone();
        let mut n = 2;
        while self.secrets.iter().any(|(_, x)| *x == name) {
            name = format!("{stem}_{n}");
            n += 1;
        }
        self.secrets.push((value.to_string(), name.clone()));
        name
    }

    /// Whether variable `name` is read anywhere in the configuration.
    pub fn is_read(&self, name: &str) -> bool {
        self.reads.get(name).is_some_and(|n| *n > 0)
    }

    /// `from nginx.conf:12: listen 443 ssl`: the comment above a translated part.
    pub fn from(&self, d: &Directive) -> String {
        format!("from {}: {}", report::place(&d.at, &self.base), report::show(d))
    }

    pub fn place(&self, d: &Directive) -> String {
        report::place(&d.at, &self.base)
    }
}

/// Counts variable reads; the variable a `map`/`geo`/`split_clients`/`set`/`perl_set`
/// defines is not a read of it.
fn count_reads(dirs: &[Directive], reads: &mut HashMap<String, usize>) {
    for d in dirs {
        let defined = defined_var(d);
        for a in &d.args {
            for v in scope::variables(&a.text) {
                if Some(v) != defined {
                    *reads.entry(v.to_string()).or_default() += 1;
                }
            }
        }
        // A map's entries are `key value;` lines whose name is the key: values may read.
        if matches!(d.name.as_str(), "map" | "geo" | "split_clients") {
            for e in d.children() {
                for a in &e.args {
                    for v in scope::variables(&a.text) {
                        *reads.entry(v.to_string()).or_default() += 1;
                    }
                }
            }
        } else {
            count_reads(d.children(), reads);
        }
    }
}

/// The variable a directive defines (`map $a $b` → `b`, `set $x …` → `x`).
fn defined_var(d: &Directive) -> Option<&str> {
    let at = match d.name.as_str() {
        "map" => 1,
        "set" | "perl_set" => 0,
        "geo" | "split_clients" => d.args.len().checked_sub(1)?,
        _ => return None,
    };
    d.arg(at)?
        .strip_prefix('$')
        .map(|v| v.trim_start_matches('{').trim_end_matches('}'))
}

/// Reports every directive nothing consumed, through the catalogue. A reported block is
/// reported once, not each of its directives.
fn sweep(cx: &mut Cx, dirs: &[Directive]) {
    for d in dirs {
        if cx.is_taken(d) {
            sweep(cx, d.children());
            continue;
        }
        let read = defined_var(d).is_some_and(|v| cx.is_read(v));
        match catalog::kind(catalog::fate_of(d), read) {
            None => cx.take_all(d),
            Some((kind, why)) => {
                let why = match (&kind, defined_var(d)) {
                    (Kind::Dropped { handling: false }, Some(v)) => {
                        format!("{why}; ${v} is read nowhere, so nothing changes")
                    }
                    (Kind::Dropped { handling: true }, Some(v)) => format!("{why}, and ${v} is read elsewhere"),
                    _ => why.to_string(),
                };
                let n = Note::new(d, kind, why);
                cx.take_all(d);
                cx.note(n);
            }
        }
    }
}

/// The translated parts, assembled into the YAML document at the end.
#[derive(Default)]
pub(crate) struct Out {
    /// `server:` settings (`threads`).
    pub server: Vec<emit::Entry>,
    pub listeners: servers::Listeners,
    pub client: Vec<emit::Entry>,
    pub pools: Vec<emit::Entry>,
    pub routes: Vec<locations::RouteOut>,
    pub policies: Vec<emit::Entry>,
    /// `trusted_proxies`, `real_ip_header`, `access_log`.
    pub top: Vec<emit::Entry>,
}

impl Out {
    fn render(&self, cx: &Cx) -> String {
        let mut doc = Node::map();
        if !self.server.is_empty() {
            doc.set("server", Node::Map(self.server.clone()));
        }
        let mut listeners = self.listeners.items();
        if listeners.is_empty() {
            // nginx listens on *:80 in a server without `listen`; with no server at all, the
            // file still needs a listener to pass -t.
            listeners.push(emit::Item {
                notes: vec!["nginx had no server block; a listener on nginx's default port".into()],
                value: servers::listener_node("http-80", "0.0.0.0:80", None, false),
            });
        }
        doc.set("listeners", Node::List(listeners));
        if !self.client.is_empty() {
            doc.set("client", Node::Map(self.client.clone()));
        }
        doc.set("upstreams", Node::Map(self.pools.clone()));
        let routes: Vec<emit::Item> = self.routes.iter().map(|r| r.item()).collect();
        doc.set("routes", Node::List(routes));
        if !self.policies.is_empty() {
            let mut rl = Node::map();
            rl.set("policies", Node::Map(self.policies.clone()));
            doc.set_noted(
                vec![
                    "Refused requests get 429 with Retry-After and a SCIM error body (nginx's limit_req_status defaults to 503, which IdPs read as an outage and retry at once).".into(),
                ],
                "rate_limits",
                rl,
            );
        }
        let secret_note = "keys the hashes of tokens and headers in rate-limit and affinity keys; give every instance the same secret".to_string();
        doc.set_noted(
            vec![secret_note],
            "key_secret",
            Node::Raw("${SCIMITAR_KEY_SECRET:-change-me}".into()),
        );
        if let Node::Map(entries) = &mut doc {
            entries.extend(self.top.iter().cloned());
        }
        let mut text = String::new();
        let dropped = cx
            .notes
            .iter()
            .filter(|n| matches!(n.kind, Kind::Dropped { .. }))
            .count();
        let handling = cx.notes.iter().filter(|n| n.changes_handling()).count();
        emit::comment(
            &mut text,
            0,
            "Translated from nginx by `scimitar import nginx`. Each part names the nginx file (relative to the main file's directory) and line it came from.",
        );
        emit::comment(
            &mut text,
            0,
            &format!(
                "{dropped} directive(s) not translated ({handling} of them change request handling), {} translated with a difference:",
                cx.notes.len() - dropped
            ),
        );
        for n in &cx.notes {
            emit::comment(&mut text, 2, &n.line(&cx.base));
        }
        text.push('\n');
        text.push_str(&emit::render(&doc));
        text
    }
}
