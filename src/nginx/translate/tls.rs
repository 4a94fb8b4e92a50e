//! A TLS server's listener settings: `ssl_protocols`, `ssl_ciphers`, and client-certificate
//! verification (`ssl_client_certificate`, `ssl_verify_client`, `ssl_verify_depth`) →
//! `tls.min_version`, `ciphers`, `client_ca`, `client_auth`.
//!
//! nginx keeps these per `server`, even when several servers share one address (picked by
//! SNI); scimitar keeps them per listener. So every server on an address is read, and one
//! whose settings differ from the listener's is reported as changing handling: a server that
//! asked for client certificates must never lose that silently.

use super::emit::{Entry, Node};
use super::scope::{self, Chain};
use super::{Cx, Kind, Note};
use crate::nginx::Directive;

/// The directives of client-certificate verification.
const CLIENT_CERT: &[&str] = &["ssl_verify_client", "ssl_client_certificate", "ssl_verify_depth"];

/// The `tls` settings (other than certificates) of the server `chain` ends in.
pub fn options(cx: &mut Cx, chain: &Chain) -> Vec<Entry> {
    let mut t = Node::map();
    if let Some(d) = chain.scalar("ssl_protocols") {
        let has = |v: &str| d.args.iter().any(|a| a.text == v);
        let min = if has("TLSv1.2") || !has("TLSv1.3") {
            "1.2"
        } else {
            "1.3"
        };
        cx.take(d);
        if has("TLSv1") || has("TLSv1.1") || has("SSLv3") {
            cx.differs(
                d,
                "scimitar refuses TLS 1.0 and 1.1 (every IdP does too): the floor is 1.2",
            );
        }
        if !has("TLSv1.3") {
            cx.differs(d, "scimitar also offers TLS 1.3");
        }
        t.set_noted(vec![cx.from(d)], "min_version", Node::str(min));
    }
    if let Some(d) = chain.scalar("ssl_ciphers") {
        cx.take(d);
        if let Some(c) = d.arg(0) {
            t.set_noted(
                vec![cx.from(d), "OpenSSL's syntax, as in nginx (TLS 1.2 suites)".into()],
                "ciphers",
                Node::str(c),
            );
        }
    }
    client_cert(cx, chain, &mut t);
    match t {
        Node::Map(e) => e,
        _ => Vec::new(),
    }
}

fn client_cert(cx: &mut Cx, chain: &Chain, t: &mut Node) {
    let verify = chain.scalar("ssl_verify_client");
    let ca = chain.scalar("ssl_client_certificate");
    let mode = verify.and_then(|d| d.arg(0)).unwrap_or("off");
    match (mode, ca) {
        ("on" | "optional", Some(ca_d)) => {
            let path = scope::resolve(cx.base(), ca_d.arg(0).unwrap_or_default());
            cx.take(ca_d);
            t.set_noted(vec![cx.from(ca_d)], "client_ca", Node::str(path.display().to_string()));
            if let Some(v) = verify {
                cx.take(v);
                let auth = if mode == "on" { "required" } else { "optional" };
                t.set_noted(vec![cx.from(v)], "client_auth", Node::str(auth));
            }
            if let Some(d) = chain.scalar("ssl_verify_depth") {
                cx.differs(
                    d,
                    "scimitar verifies a client certificate's chain to `client_ca` at any depth (the CAs trusted are the same)",
                );
            }
        }
        ("optional_no_ca", _) => {
            if let Some(v) = verify {
                cx.drop(
                    v,
                    true,
                    "scimitar verifies every presented client certificate against `client_ca`",
                );
            }
        }
        (_, None) if mode != "off" => {
            if let Some(v) = verify {
                cx.drop(v, true, "`ssl_verify_client` without `ssl_client_certificate`");
            }
        }
        // Without ssl_verify_client nginx asks for no certificate at all.
        _ => {}
    }
    // The copies on outer levels are overridden by the effective ones, and nothing else here
    // changes what a client must present: all of them are accounted for by this server.
    for name in CLIENT_CERT {
        for d in chain.all(name) {
            cx.take(d);
        }
    }
}

/// When the settings `theirs` of the server at `second` differ from `ours`, those of the
/// listener made from the server at `first`, reports it on `at` (the second server's
/// `listen`) as changing handling, naming both servers and each setting that differs.
pub fn conflict(cx: &mut Cx, at: &Directive, (first, second): (&str, &str), ours: &[Entry], theirs: &[Entry]) {
    let mut keys: Vec<&str> = ours.iter().chain(theirs).map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let value = |list: &[Entry], key: &str| list.iter().find(|e| e.key == key).map(|e| e.value.bare());
    let show = |v: Option<Node>| match v {
        Some(Node::Str(s)) => format!("`{s}`"),
        Some(other) => format!("{other:?}"),
        None => "unset".to_string(),
    };
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| value(ours, k) != value(theirs, k))
        .map(|k| {
            format!(
                "{k}: {} at {second}, {} at {first}",
                show(value(theirs, k)),
                show(value(ours, k))
            )
        })
        .collect();
    if diffs.is_empty() {
        return;
    }
    cx.note(Note::new(
        at,
        Kind::Dropped { handling: true },
        format!(
            "the TLS settings of the server at {second} differ from those of the server at {first} on the same address ({}); scimitar's `client_ca`, `client_auth`, `min_version` and `ciphers` are per listener, so it keeps {first}'s and requests to the server at {second} get them — give each server a listener (port) of its own",
            diffs.join("; ")
        ),
    ));
}

#[cfg(test)]
mod tests {
    use super::super::tests::{checked, s};
    use crate::nginx::parse_str;
    use std::path::Path;

    use super::super::{exit_code, Kind};

    fn tr(inner: &str) -> super::super::tests::T {
        let src = format!("events {{}}\nhttp {{\n{inner}\n}}\n");
        let top = parse_str(&src, "/etc/nginx/nginx.conf").unwrap();
        checked(&top, Path::new("/etc/nginx"), &src)
    }

    const TWO: &str =
        "server { listen 8443 ssl; server_name a.example; ssl_certificate a.crt; ssl_certificate_key a.key; {A}
                 location /scim/v2/ { proxy_pass http://127.0.0.1:18301; } }
        server { listen 8443 ssl; server_name b.example; ssl_certificate b.crt; ssl_certificate_key b.key; {B}
                 location /scim/v2/ { proxy_pass http://127.0.0.1:18301; } }";

    fn two(a: &str, b: &str) -> super::super::tests::T {
        tr(&TWO.replace("{A}", a).replace("{B}", b))
    }

    #[test]
    fn a_second_server_s_client_verification_on_a_shared_listener_is_never_dropped_silently() {
        let mtls = "ssl_client_certificate ca.pem; ssl_verify_client on;";
        // Only the second server asks for certificates: its routes would be open.
        let t = two("", mtls);
        let tls = &t.v["listeners"][0]["tls"];
        assert!(tls["client_ca"].is_null(), "the listener is the first server's");
        let line = t.line("nginx.conf:5: listen 8443 ssl");
        assert!(line.contains("not translated"), "{line}");
        assert!(line.contains("nginx.conf:3"), "names the first server: {line}");
        assert!(
            line.contains("client_auth: `required` at nginx.conf:5, unset at nginx.conf:3"),
            "{line}"
        );
        let n =
            t.t.notes
                .iter()
                .find(|n| n.at.line == 5 && n.what.starts_with("listen"))
                .unwrap();
        assert_eq!(n.kind, Kind::Dropped { handling: true });
        assert_eq!(exit_code(&t.t.notes, false), 1);

        // The reverse: the listener asks everyone, so the first server's clients are locked out.
        let t = two(mtls, "");
        assert_eq!(s(&t.v["listeners"][0]["tls"]["client_auth"]), "required");
        assert!(t
            .line("nginx.conf:5: listen")
            .contains("client_auth: unset at nginx.conf:5, `required` at nginx.conf:3"));
        assert_eq!(exit_code(&t.t.notes, false), 1);

        // The same settings on both (inherited from http here): one listener, nothing to say.
        let t = tr(&format!("{mtls}\n{}", TWO.replace("{A}", "").replace("{B}", "")));
        assert_eq!(s(&t.v["listeners"][0]["tls"]["client_auth"]), "required");
        assert_eq!(exit_code(&t.t.notes, false), 0, "{:#?}", t.lines());
    }

    #[test]
    fn client_verification_that_reaches_no_listener_changes_handling() {
        // A plaintext server: nothing asks for the certificate nginx's config names.
        let t = tr(
            "server { listen 18401; ssl_client_certificate ca.pem; ssl_verify_client on; ssl_verify_depth 2;
                    location / { proxy_pass http://127.0.0.1:18301; } }",
        );
        for what in ["ssl_client_certificate", "ssl_verify_client on", "ssl_verify_depth"] {
            let n = t.t.notes.iter().find(|n| n.what.starts_with(what)).unwrap();
            assert_eq!(n.kind, Kind::Dropped { handling: true }, "{what}");
        }
        // Consumed with verification: the depth is a difference, not a drop.
        let t = two(
            "ssl_client_certificate ca.pem; ssl_verify_client optional; ssl_verify_depth 2;",
            "ssl_client_certificate ca.pem; ssl_verify_client optional; ssl_verify_depth 2;",
        );
        assert!(t
            .line("ssl_verify_depth 2")
            .contains("translated with a difference: scimitar verifies"));
        assert_eq!(exit_code(&t.t.notes, false), 0, "{:#?}", t.lines());
    }
}
