//! Settings scimitar keeps once for the whole proxy: the real client IP
//! (`set_real_ip_from`, `real_ip_header`) and the access log. nginx may set them per server
//! or location; those are merged into the one setting, with a note.

use super::emit::{Entry, Node};
use super::scope;
use super::{Cx, Out};
use crate::nginx::Directive;

/// Every directive named `name` below `d` (d's own included), depth first.
fn everywhere<'a>(d: &'a Directive, name: &str, out: &mut Vec<&'a Directive>) {
    for c in d.children() {
        if c.name == name {
            out.push(c);
        }
        everywhere(c, name, out);
    }
}

/// `set_real_ip_from` → `trusted_proxies`, `real_ip_header` → `real_ip_header`.
pub fn real_ip(cx: &mut Cx, out: &mut Out, h: &Directive) {
    let mut from = Vec::new();
    everywhere(h, "set_real_ip_from", &mut from);
    if from.is_empty() {
        return;
    }
    let mut cidrs: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    for d in &from {
        let Some(c) = d.arg(0) else { continue };
        if c == "unix:" {
            cx.drop(d, false, "scimitar does not listen on unix sockets");
            continue;
        }
        if crate::clientip::Cidr::parse(c).is_err() {
            cx.drop(d, true, "not an address or CIDR scimitar reads");
            continue;
        }
        if h.find("set_real_ip_from").any(|x| std::ptr::eq(x, *d)) {
            cx.take(d);
        } else {
            cx.differs(
                d,
                "scimitar trusts these proxies on every listener and route, not only below this block",
            );
        }
        notes.push(cx.from(d));
        if !cidrs.iter().any(|x| x == c) {
            cidrs.push(c.to_string());
        }
    }
    if cidrs.is_empty() {
        return;
    }
    out.top.push(Entry {
        notes,
        key: "trusted_proxies".into(),
        value: Node::Flow(cidrs),
    });
    let mut headers = Vec::new();
    everywhere(h, "real_ip_header", &mut headers);
    let header = match headers.first() {
        Some(d) => match d.arg(0) {
            Some("proxy_protocol") => {
                cx.drop(d, true, "scimitar does not read the PROXY protocol");
                return;
            }
            Some(name) => {
                cx.take(d);
                for other in headers.iter().skip(1) {
                    if other.arg(0) == Some(name) {
                        cx.take(other);
                    } else {
                        cx.drop(
                            other,
                            true,
                            format!("scimitar reads one header for the client IP: {name}"),
                        );
                    }
                }
                (name.to_string(), cx.from(d))
            }
            None => return,
        },
        None => (
            "X-Real-IP".to_string(),
            "nginx's default real_ip_header is X-Real-IP (scimitar's is X-Forwarded-For)".to_string(),
        ),
    };
    let mut recursive = Vec::new();
    everywhere(h, "real_ip_recursive", &mut recursive);
    let on = recursive.iter().any(|d| d.arg(0) == Some("on"));
    for d in &recursive {
        cx.take(d);
    }
    let mut header_notes = vec![header.1];
    if !on && header.0.eq_ignore_ascii_case("x-forwarded-for") {
        if let Some(d) = headers.first() {
            cx.differs(
                d,
                "scimitar walks X-Forwarded-For from the right past every trusted proxy (nginx's `real_ip_recursive on`); nginx here takes the last address even when it is a trusted proxy's",
            );
        }
        header_notes.push("recursive over trusted proxies, as nginx's real_ip_recursive on".into());
    }
    out.top.push(Entry {
        notes: header_notes,
        key: "real_ip_header".into(),
        value: Node::str(header.0),
    });
}

/// The http level's `access_log` → `access_log`; `error_log` is reported by the catalogue.
pub fn logs(cx: &mut Cx, out: &mut Out, h: &Directive) {
    let Some(d) = h.find("access_log").next() else { return };
    let Some(path) = d.arg(0) else { return };
    if path == "off" {
        cx.take(d);
        return;
    }
    if path.starts_with("syslog:") || path.contains('$') {
        cx.drop(d, false, "scimitar writes its access log to a file or stdout");
        return;
    }
    let path = match path {
        "/dev/stdout" => "stdout".to_string(),
        p => scope::resolve(cx.base(), p).display().to_string(),
    };
    let mut notes = vec![cx.from(d)];
    match d.arg(1) {
        Some(format) if format != "combined" => {
            cx.differs(
                d,
                format!("scimitar writes one JSON object per request (time, method, path, status, tenant, class, upstream, latency…), not log_format `{format}`"),
            );
            notes.push(format!("one JSON object per request, not log_format `{format}`"));
        }
        _ => {
            cx.differs(
                d,
                "scimitar writes one JSON object per request, not nginx's combined format",
            );
        }
    }
    let mut log = Node::map();
    log.set("path", Node::str(path));
    out.top.push(Entry {
        notes,
        key: "access_log".into(),
        value: log,
    });
}
