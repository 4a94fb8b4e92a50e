//! The `tls` blocks, `protocol: tcp` listeners and pool TLS: what builds, and that each
//! mistake is named at its place. Certificates are minted into a scratch directory.

use std::path::{Path, PathBuf};

use super::*;
use crate::tls::testing::{Ca, Leaf};
use crate::tls::{ClientAuth, TlsVersion};

struct Files {
    dir: PathBuf,
    ca: Ca,
}

impl Files {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("scimitar-cfg-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Files {
            ca: Ca::new("cfg CA").unwrap(),
            dir,
        }
    }

    fn leaf(&self, file: &str, leaf: &Leaf) -> (String, String) {
        let (c, k) = self.ca.write_leaf(&self.dir, file, leaf).unwrap();
        (c.display().to_string(), k.display().to_string())
    }

    fn server(&self, file: &str, dns: &[&str]) -> (String, String) {
        self.leaf(file, &Leaf::server(dns[0], dns))
    }

    fn ca_pem(&self) -> String {
        self.ca.write_ca(&self.dir, "ca").unwrap().display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn with_listener(listener: &str, extra_pool: &str) -> String {
    format!(
        "listeners:\n  - name: main\n    address: 127.0.0.1:8080\n{listener}upstreams:\n  scim:\n    servers: [127.0.0.1:8001]\n{extra_pool}routes:\n  - base_path: /v2\n    upstream: scim\n"
    )
}

fn tls_listener(tls: &str) -> String {
    format!("  - name: edge\n    address: 127.0.0.1:8443\n    tls:\n{tls}")
}

fn build(text: &str) -> Result<Config, Vec<String>> {
    from_str_with_env(text, |_| None).map_err(|p| p.0.iter().map(|p| p.to_string()).collect())
}

#[test]
fn a_tls_listener_builds_with_defaults_and_mtls() {
    let f = Files::new("good");
    let (c, k) = f.server("edge", &["scim.example.com"]);
    let cfg = build(&with_listener(
        &tls_listener(&format!(
            "      cert: {c}\n      key: {k}\n      client_ca: {}\n      forward_client_cert: X-Client-Cert\n",
            f.ca_pem()
        )),
        "",
    ))
    .unwrap();
    let l = &cfg.listeners[1];
    assert_eq!(l.protocol, Protocol::Http);
    assert!(l.http2, "HTTP/2 is on by default with TLS");
    assert!(!cfg.listeners[0].http2, "and off (no h2c) on plaintext");
    let t = l.tls.as_ref().unwrap();
    assert_eq!(t.min_version, TlsVersion::V1_2);
    assert_eq!(
        t.client_auth,
        ClientAuth::Required,
        "a client_ca means required by default"
    );
    assert_eq!(t.material.load().certs.entries[0].names, vec!["scim.example.com"]);
    assert!(cfg.warnings.is_empty());
}

#[test]
fn certificate_problems_are_named_and_expiry_warns_or_fails() {
    let f = Files::new("bad");
    let (c1, k1) = f.server("one", &["a.example"]);
    let (c2, k2) = f.server("two", &["a.example"]);
    let (soon_c, soon_k) = f.leaf(
        "soon",
        &Leaf {
            not_after: 3 * 86_400,
            ..Leaf::server("soon.example", &["soon.example"])
        },
    );
    let (old_c, old_k) = f.leaf(
        "old",
        &Leaf {
            not_before: -10 * 86_400,
            not_after: -86_400,
            ..Leaf::server("old.example", &["old.example"])
        },
    );

    // A key that belongs to another certificate.
    let got = build(&with_listener(
        &tls_listener(&format!("      cert: {c1}\n      key: {k2}\n")),
        "",
    ))
    .unwrap_err();
    assert!(
        got.iter()
            .any(|g| g.starts_with("listeners[1].tls: ") && g.contains("does not belong")),
        "{got:#?}"
    );

    // Two certificates for one name.
    let got = build(&with_listener(
        &tls_listener(&format!(
            "      certificates:\n        - {{cert: {c1}, key: {k1}}}\n        - {{cert: {c2}, key: {k2}}}\n"
        )),
        "",
    ))
    .unwrap_err();
    assert!(
        got.iter().any(|g| g.contains("`a.example` is served by both")),
        "{got:#?}"
    );

    // Missing file, expired, and a version below 1.2.
    let got = build(&with_listener(
        &tls_listener(&format!(
            "      certificates:\n        - {{cert: /nonexistent/x.crt, key: {k1}}}\n        - {{cert: {old_c}, key: {old_k}}}\n      min_version: \"1.1\"\n      ciphers: NOT-A-CIPHER\n"
        )),
        "",
    ))
    .unwrap_err();
    for want in [
        "listeners[1].tls.certificates[0]: cannot read certificate /nonexistent/x.crt",
        "listeners[1].tls.certificates[1]: certificate",
        "listeners[1].tls.min_version: TLS 1.0 and 1.1 are broken",
        "listeners[1].tls: OpenSSL refuses these settings",
    ] {
        assert!(got.iter().any(|g| g.starts_with(want)), "want {want}: {got:#?}");
    }
    assert!(got.iter().any(|g| g.contains("expired on")), "{got:#?}");

    // Expiring soon: a warning, not an error.
    let cfg = build(&with_listener(
        &tls_listener(&format!("      cert: {soon_c}\n      key: {soon_k}\n")),
        "",
    ))
    .unwrap();
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(cfg.warnings[0].msg.contains("expires in 2 day(s)") || cfg.warnings[0].msg.contains("expires in 3 day(s)"));
}

#[test]
fn mtls_and_listener_kind_mistakes_are_named() {
    let f = Files::new("kinds");
    let (c, k) = f.server("edge", &["scim.example.com"]);
    let got = build(&with_listener(
        &tls_listener(&format!(
            "      cert: {c}\n      key: {k}\n      client_auth: optional\n      forward_client_cert: \"bad header\"\n"
        )),
        "",
    ))
    .unwrap_err();
    assert!(
        got.iter().any(|g| g.starts_with("listeners[1].tls.client_ca: missing")),
        "{got:#?}"
    );
    assert!(got.iter().any(|g| g.contains("not a valid header name")), "{got:#?}");

    // The identity header may not be one HTTP or the proxy needs, nor a key clients can write.
    let ca = f.ca_pem();
    let got = build(&with_listener(
        &tls_listener(&format!(
            "      cert: {c}\n      key: {k}\n      client_ca: {ca}\n      forward_client_cert: Content-Length\n"
        )),
        "",
    ))
    .unwrap_err();
    assert!(
        got.iter()
            .any(|g| g.starts_with("listeners[1].tls.forward_client_cert: `content-length` is a header")),
        "{got:#?}"
    );
    let text = with_listener(
        &tls_listener(&format!(
            "      cert: {c}\n      key: {k}\n      client_ca: {ca}\n      forward_client_cert: X-Client-Cert\n"
        )),
        "",
    ) + "rate_limits:\n  policies:\n    p: {key: [\"header:x-client-cert\"], rate: 1/s}\n";
    let text = text.replace("    upstream: scim\n", "    upstream: scim\n    rate_limits: [p]\n");
    let got = build(&text).unwrap_err();
    assert!(
        got.iter()
            .any(|g| g.starts_with("rate_limits.policies.p.key: keys on the client-certificate header")),
        "{got:#?}"
    );

    let got = build(&with_listener(
        "  - name: raw\n    address: 127.0.0.1:9000\n    protocol: tcp\n    upstream: nope\n    http2: true\n  - name: h\n    address: 127.0.0.1:9001\n    idle_timeout: 5s\n",
        "",
    ))
    .unwrap_err();
    for want in [
        "listeners[1].upstream: no pool named `nope`",
        "listeners[1].http2: a `protocol: tcp` listener forwards bytes",
        "listeners[2].idle_timeout: only applies to `protocol: tcp`",
    ] {
        assert!(got.iter().any(|g| g.starts_with(want)), "want {want}: {got:#?}");
    }
    let cfg = build(&with_listener(
        "  - name: raw\n    address: 127.0.0.1:9000\n    protocol: tcp\n    upstream: scim\n    max_connections: 100\n",
        "    health_check: {type: tcp, interval: 1s}\n",
    ))
    .unwrap();
    let tcp = cfg.listeners[1].tcp.as_ref().unwrap();
    assert_eq!((tcp.upstream, tcp.max_connections), (0, Some(100)));
    assert_eq!(cfg.upstreams[0].health_check.as_ref().unwrap().kind, ProbeKind::Tcp);
}

#[test]
fn pool_tls_needs_a_name_to_verify_against() {
    let f = Files::new("pool");
    let ca = f.ca_pem();
    let (c, k) = f.leaf("client", &Leaf::client("edge", &[]));
    let got = build(&with_listener("", "    tls: true\n")).unwrap_err();
    assert!(
        got.iter()
            .any(|g| g.starts_with("upstreams.scim.tls.sni: missing; with `verify` on")),
        "{got:#?}"
    );
    let got = build(&with_listener(
        "",
        &format!("    tls: {{sni: s.internal, ca: /nonexistent.pem, cert: {c}}}\n"),
    ))
    .unwrap_err();
    assert!(
        got.iter()
            .any(|g| g.starts_with("upstreams.scim.tls.ca: cannot read CA bundle")),
        "{got:#?}"
    );
    assert!(
        got.iter().any(|g| g.starts_with("upstreams.scim.tls.key: missing")),
        "{got:#?}"
    );

    let cfg = build(&with_listener("", "    tls: {verify: false}\n")).unwrap();
    assert!(!cfg.upstreams[0].tls.as_ref().unwrap().verify);
    let cfg = build(&with_listener(
        "",
        &format!("    tls: {{sni: s.internal, ca: {ca}, cert: {c}, key: {k}, http2: true}}\n"),
    ))
    .unwrap();
    let t = cfg.upstreams[0].tls.as_ref().unwrap();
    assert!(t.verify && t.http2 && t.client_cert.is_some() && t.ca.is_some());
}

/// The shipped TLS example validates once its files exist (its paths come from env vars).
#[test]
fn the_shipped_tls_example_is_valid() {
    let f = Files::new("example");
    let (c, k) = f.server("edge", &["scim.example.com"]);
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/tls-edge.yaml")).unwrap();
    let ca = f.ca_pem();
    let env = |name: &str| match name {
        "SCIMITAR_CERT" => Some(c.clone()),
        "SCIMITAR_KEY" => Some(k.clone()),
        "SCIMITAR_CLIENT_CA" => Some(ca.clone()),
        _ => None,
    };
    if let Err(p) = from_str_with_env(&text, env) {
        panic!("conf/tls-edge.yaml: {:#?}", p.0);
    }
}

#[test]
fn unknown_protocol_and_probe_type_words_list_the_choices() {
    let got = build(&with_listener(
        "  - name: raw\n    address: 127.0.0.1:9000\n    protocol: udp\n",
        "    health_check: {type: icmp}\n",
    ))
    .unwrap_err();
    for want in [
        "listeners[1].protocol: `udp` is not a protocol; use http or tcp",
        "upstreams.scim.health_check.type: `icmp` is not a health check type; use http or tcp",
    ] {
        assert!(got.iter().any(|g| g == want), "want {want}: {got:#?}");
    }
}
