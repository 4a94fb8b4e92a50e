//! The TLS edge with real sockets and certificates minted at test time: HTTPS to scim2-server,
//! SNI, protocol floor, HTTP/2 (ALPN and h2c), mTLS with identity forwarding and resumption,
//! rotation on disk, and TLS to upstreams.

mod common;

use std::path::Path;
use std::time::Duration;

use common::tls::{curl, resolve, Pki, TlsClient};
use common::*;
use openssl::ssl::SslVersion;

const USER: &str =
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"tls.user","name":{"givenName":"Tee"}}"#;

fn tls_listener(name: &str, port: u16, tls: &str, extra: &str) -> String {
    format!("  - name: {name}\n    address: \"127.0.0.1:{port}\"\n    tls:\n{tls}{extra}")
}

fn cert_yaml(cert: &(std::path::PathBuf, std::path::PathBuf)) -> String {
    format!("      cert: {}\n      key: {}\n", cert.0.display(), cert.1.display())
}

fn addr(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

fn echo_body(pool: &str, up: &TestUpstream) -> String {
    format!(
        "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: {pool}\n",
        pool_yaml(pool, &[up.addr], "")
    )
}

/// The headers the upstream saw on its latest request with this name (all copies).
fn seen_header(up: &TestUpstream, name: &str) -> Vec<String> {
    let seen = up.seen.lock().unwrap();
    let last = seen.last().expect("a request reached the upstream");
    last.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn https_carries_scim_to_scim2_server_and_conformance_matches_direct() {
    let pki = Pki::new("https");
    let cert = pki.server("scim", &["scim.test"]);
    let scim = ScimServer::start();
    let port = free_port();
    let px = Proxy::start_with_listeners(
        &tls_listener("https", port, &cert_yaml(&cert), ""),
        &format!(
            "upstreams:\n{}routes:\n  - base_path: /v2\n    upstream: scim\n",
            pool_yaml("scim", &[scim.addr], "")
        ),
    );
    wait_for_port(addr(port), Duration::from_secs(10));
    let c = TlsClient::new("scim.test", &pki.ca_pem);

    let r = c
        .request(addr(port), "GET", "/v2/ServiceProviderConfig", &[], None)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c.request(addr(port), "POST", "/v2/Users", &[], Some(USER)).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = c
        .request(addr(port), "GET", &format!("/v2/Users/{id}"), &[], None)
        .unwrap();
    assert_eq!(r.json()["userName"], "tls.user");
    let patch = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Tee Ell"}]}"#;
    let r = c
        .request(addr(port), "PATCH", &format!("/v2/Users/{id}"), &[], Some(patch))
        .unwrap();
    assert!(matches!(r.status, 200 | 204), "{}", r.text());
    let r = c
        .request(addr(port), "GET", &format!("/v2/Users/{id}"), &[], None)
        .unwrap();
    assert_eq!(r.json()["displayName"], "Tee Ell");

    // scim2-tester's whole run over HTTPS gives what it gives direct.
    let results = scim2_tester_with(
        &[
            format!("http://{}/v2", scim.addr),
            format!("https://127.0.0.1:{port}/v2"),
        ],
        None,
        Some(&pki.ca_pem),
    );
    let (direct, tls) = (&results[0], &results[1]);
    println!("scim2-tester over HTTPS: {tls}");
    assert!(direct["total"].as_u64().unwrap() >= 100, "{direct}");
    for k in ["total", "success", "skipped", "failed"] {
        assert_eq!(direct[k], tls[k], "{k}: direct {direct} vs https {tls}");
    }
    drop(px);
}

#[test]
fn sni_picks_exact_then_wildcard_then_default_and_old_protocols_are_refused() {
    let pki = Pki::new("sni");
    let a = pki.server("a", &["a.test"]);
    // RSA beside ECDSA: each served with its own key type.
    let b = pki.leaf(
        "b",
        &scimitar::tls::testing::Leaf {
            kind: scimitar::tls::testing::KeyKind::Rsa2048,
            ..scimitar::tls::testing::Leaf::server("b.test", &["b.test"])
        },
    );
    let w = pki.server("w", &["*.wild.test"]);
    let d = pki.server("d", &["default.test"]);
    let port = free_port();
    let mut tls = String::from("      certificates:\n");
    for (c, default) in [(&a, false), (&b, false), (&w, false), (&d, true)] {
        tls.push_str(&format!(
            "        - {{cert: {}, key: {}, default: {default}}}\n",
            c.0.display(),
            c.1.display()
        ));
    }
    let up = TestUpstream::start("echo", Behavior::Echo);
    let px = Proxy::start_with_listeners(&tls_listener("https", port, &tls, ""), &echo_body("a", &up));
    wait_for_port(addr(port), Duration::from_secs(10));

    for (sni, want) in [
        ("a.test", "a.test"),
        ("B.Test", "b.test"),
        ("x.wild.test", "*.wild.test"),
        ("deep.x.wild.test", "default.test"),
        ("unknown.test", "default.test"),
    ] {
        let c = TlsClient {
            sni: Some(sni.into()),
            ..Default::default()
        };
        let conn = c.connect(addr(port)).unwrap();
        assert_eq!(conn.peer_names(), vec![want.to_string()], "SNI {sni}");
        let rsa = conn.peer_cert().public_key().unwrap().rsa().is_ok();
        assert_eq!(rsa, want == "b.test", "SNI {sni}: key type");
    }
    // No SNI at all (an IP literal): the default.
    let conn = TlsClient::default().connect(addr(port)).unwrap();
    assert_eq!(conn.peer_names(), vec!["default.test".to_string()]);

    // Verified end to end with the right name.
    let r = TlsClient::new("a.test", &pki.ca_pem)
        .request(addr(port), "GET", "/scim/v2/Users", &[], None)
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "https");

    // TLS 1.1 and 1.0 are refused; 1.2 and 1.3 are served.
    for v in [SslVersion::TLS1, SslVersion::TLS1_1] {
        let c = TlsClient {
            sni: Some("a.test".into()),
            min_version: Some(v),
            max_version: Some(v),
            ..Default::default()
        };
        assert!(c.connect(addr(port)).is_err(), "{v:?} must be refused");
    }
    for (v, name) in [(SslVersion::TLS1_2, "TLSv1.2"), (SslVersion::TLS1_3, "TLSv1.3")] {
        let c = TlsClient {
            sni: Some("a.test".into()),
            max_version: Some(v),
            ..Default::default()
        };
        assert_eq!(c.connect(addr(port)).unwrap().version(), name);
    }
    let s = px.status();
    let l = &s["listeners"][1];
    assert_eq!(l["name"], "https");
    assert_eq!(l["tls"]["certificates"].as_array().unwrap().len(), 4);
    assert!(l["tls"]["certificates"][0]["days_left"].as_i64().unwrap() >= 29);
    assert!(l["tls"]["default_certificate_served"].as_u64().unwrap() >= 3);
}

#[test]
fn http2_by_alpn_and_h2c_by_prior_knowledge() {
    let pki = Pki::new("h2");
    let cert = pki.server("h2", &["h2.test"]);
    let scim = ScimServer::start();
    let (tls_port, h1_port, h2c_port) = (free_port(), free_port(), free_port());
    let listeners = format!(
        "{}  - name: h2c\n    address: \"127.0.0.1:{h2c_port}\"\n    http2: true\n{}",
        tls_listener("https", tls_port, &cert_yaml(&cert), ""),
        tls_listener("h1only", h1_port, &cert_yaml(&cert), "    http2: false\n"),
    );
    let px = Proxy::start_with_listeners(
        &listeners,
        &format!(
            "upstreams:\n{}routes:\n  - base_path: /v2\n    upstream: scim\n    rate_limits: [tight]\n    affinity: {{key: [token, client_ip], pin_after_write: 10s}}\n    cache: {{discovery: 1m, ignore_cache_control: true}}\nrate_limits:\n  policies:\n    tight: {{key: [client_ip], rate: 1000/s, burst: 1000}}\n",
            pool_yaml("scim", &[scim.addr], "    selection: consistent\n")
        ),
    );
    for p in [tls_port, h1_port, h2c_port] {
        wait_for_port(addr(p), Duration::from_secs(10));
    }
    let ca = pki.ca_pem.display().to_string();
    // curl over TLS to `port` as h2.test, offering h2 (it falls back to 1.1 when not chosen).
    let h2 = |port: u16, path: &str, extra: &[&str]| {
        let mut args = vec!["--http2", "--cacert", &ca];
        let name = resolve("h2.test", addr(port));
        args.extend(["--resolve", name.as_str()]);
        args.extend(extra);
        curl(&args, &format!("https://h2.test:{port}{path}"))
    };
    let r = h2(tls_port, "/v2/ServiceProviderConfig", &[]);
    assert_eq!((r.http_version.as_str(), r.status), ("2", 200), "{}", r.body);
    // The same discovery read again over h2 is a cache hit.
    let hits = px.status()["cache"]["hits"].as_u64().unwrap();
    let again = h2(tls_port, "/v2/ServiceProviderConfig", &[]);
    assert_eq!((again.http_version.as_str(), again.status), ("2", 200));
    assert_eq!(again.body, r.body);
    assert_eq!(
        px.status()["cache"]["hits"].as_u64().unwrap(),
        hits + 1,
        "served from the cache"
    );
    // A write over h2: routing, affinity, limits and the upstream all work per stream.
    let r = h2(
        tls_port,
        "/v2/Users",
        &["-H", "Content-Type: application/scim+json", "--data", USER],
    );
    assert_eq!((r.http_version.as_str(), r.status), ("2", 201), "{}", r.body);
    // Proxy-made answers are SCIM errors on h2 too.
    let r = h2(tls_port, "/nowhere", &[]);
    assert_eq!((r.http_version.as_str(), r.status), ("2", 404));
    assert!(
        r.body.contains("urn:ietf:params:scim:api:messages:2.0:Error"),
        "{}",
        r.body
    );

    // http2: false keeps a TLS listener on HTTP/1.1 even when the client offers h2.
    let r = h2(h1_port, "/v2/ServiceProviderConfig", &[]);
    assert_eq!((r.http_version.as_str(), r.status), ("1.1", 200));

    // h2c with prior knowledge; HTTP/1.1 still works on the same listener.
    let r = curl(
        &["--http2-prior-knowledge"],
        &format!("http://127.0.0.1:{h2c_port}/v2/ServiceProviderConfig"),
    );
    assert_eq!((r.http_version.as_str(), r.status), ("2", 200), "{}", r.body);
    let r = curl(
        &["--http1.1"],
        &format!("http://127.0.0.1:{h2c_port}/v2/ServiceProviderConfig"),
    );
    assert_eq!((r.http_version.as_str(), r.status), ("1.1", 200));
    // A request shorter than the 24-byte preface is answered at once (Pingora alone would wait
    // for 24 bytes forever), and keep-alive works across the preface check.
    let mut s = std::net::TcpStream::connect(addr(h2c_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    std::io::Write::write_all(&mut s, b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).expect("an answer, not a stall");
    assert!(answer.contains(" 404 "), "{answer}");
    let mut s = std::net::TcpStream::connect(addr(h2c_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..2 {
        let r = common::client::exchange(&mut s, "x", "GET", "/v2/ServiceProviderConfig", &[], None, false).unwrap();
        assert_eq!(r.status, 200);
    }
}

fn mtls_proxy(pki: &Pki, up: &TestUpstream, auth: &str, port: u16) -> Proxy {
    let cert = pki.server("srv", &["mtls.test"]);
    let tls = format!(
        "{}      client_ca: {}\n      client_auth: {auth}\n      forward_client_cert: X-Client-Cert\n",
        cert_yaml(&cert),
        pki.ca_pem.display()
    );
    let px = Proxy::start_with_listeners(&tls_listener("mtls", port, &tls, ""), &echo_body("a", up));
    wait_for_port(addr(port), Duration::from_secs(10));
    px
}

#[test]
fn mtls_required_refuses_without_a_valid_certificate_and_forwards_the_identity() {
    let pki = Pki::new("mtls");
    let other = Pki::new("mtls-other");
    let good = pki.client("good", "svc-okta", &["spiffe://idp/okta"]);
    let stranger = other.client("stranger", "svc-evil", &[]);
    let up = TestUpstream::start("echo", Behavior::Echo);
    let port = free_port();
    let px = mtls_proxy(&pki, &up, "required", port);
    let base = TlsClient::new("mtls.test", &pki.ca_pem);

    // No certificate, or one from another CA: no answer (TLS 1.3 reports it at the first read).
    for (what, c) in [
        ("no cert", base.clone()),
        ("wrong CA", base.clone().with_cert(&stranger)),
    ] {
        let r = c.request(addr(port), "GET", "/scim/v2/Users", &[], None);
        assert!(r.is_err(), "{what}: must be refused, got {:?}", r.map(|r| r.status));
    }
    assert_eq!(up.hits(), 0, "nothing reached the upstream");

    // A good certificate is served; its identity goes upstream and a forged copy does not.
    let r = base
        .clone()
        .with_cert(&good)
        .request(
            addr(port),
            "GET",
            "/scim/v2/Users",
            &[("X-Client-Cert", "Hash=forged")],
            None,
        )
        .unwrap();
    assert_eq!(r.status, 200);
    let fwd = seen_header(&up, "x-client-cert");
    assert_eq!(fwd.len(), 1, "exactly one copy: {fwd:?}");
    let pem = std::fs::read(&good.0).unwrap();
    let leaf = openssl::x509::X509::from_pem(&pem).unwrap();
    let fp = scimitar::tls::identity::hex(&leaf.digest(openssl::hash::MessageDigest::sha256()).unwrap());
    assert!(fwd[0].starts_with(&format!("Hash={fp};")), "{fwd:?}");
    assert!(fwd[0].contains("CN=svc-okta"), "{fwd:?}");
    assert!(fwd[0].contains("URI=\"spiffe://idp/okta\""), "{fwd:?}");

    // The plaintext listener strips a client-sent copy as well, and its underscore spellings
    // (which CGI-style servers read as the same variable).
    let r = px.send(
        "GET",
        "/scim/v2/Users",
        &[
            ("X-Client-Cert", "Hash=forged"),
            ("X_Client_Cert", "Hash=forged"),
            ("x-client_cert", "x"),
        ],
        None,
    );
    assert_eq!(r.status, 200);
    assert!(seen_header(&up, "x-client-cert").is_empty());
    assert!(seen_header(&up, "x_client_cert").is_empty());
    assert!(seen_header(&up, "x-client_cert").is_empty());
}

#[test]
fn mtls_optional_serves_without_a_certificate_and_resumed_sessions_keep_working() {
    let pki = Pki::new("opt");
    let good = pki.client("good", "svc-entra", &[]);
    let up = TestUpstream::start("echo", Behavior::Echo);
    let port = free_port();
    let _px = mtls_proxy(&pki, &up, "optional", port);
    let base = TlsClient::new("mtls.test", &pki.ca_pem);

    let r = base.request(addr(port), "GET", "/scim/v2/Users", &[], None).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        seen_header(&up, "x-client-cert").is_empty(),
        "no certificate, no identity"
    );

    // Resumption with client verification on: the second connection resumes and still carries
    // the identity (OpenSSL needs a session id context for this, or it fails the handshake).
    let with_cert = base.with_cert(&good);
    for v in [SslVersion::TLS1_2, SslVersion::TLS1_3] {
        let c = TlsClient {
            max_version: Some(v),
            ..with_cert.clone()
        };
        let mut first = c.connect(addr(port)).unwrap();
        assert_eq!(first.request("GET", "/scim/v2/Users", &[], None).unwrap().status, 200);
        let session = first.session().expect("a session to resume");
        // A clean close: OpenSSL marks a session that ended without close_notify unresumable.
        let _ = first.stream.shutdown();
        drop(first);
        let mut second = c.connect_resuming(addr(port), Some(&session)).unwrap();
        assert!(second.reused(), "{v:?}: the session is resumed");
        let r = second.request("GET", "/scim/v2/Users", &[], None).unwrap();
        assert_eq!(r.status, 200, "{v:?}");
        let fwd = seen_header(&up, "x-client-cert");
        assert!(fwd.len() == 1 && fwd[0].contains("CN=svc-entra"), "{v:?}: {fwd:?}");
    }
}

#[test]
fn client_certificates_key_rate_limits() {
    let pki = Pki::new("certkey");
    let a = pki.client("a", "tenant-a", &[]);
    let b = pki.client("b", "tenant-b", &[]);
    let up = TestUpstream::start("echo", Behavior::Echo);
    let port = free_port();
    let cert = pki.server("srv", &["mtls.test"]);
    let tls = format!("{}      client_ca: {}\n", cert_yaml(&cert), pki.ca_pem.display());
    let _px = Proxy::start_with_listeners(
        &tls_listener("mtls", port, &tls, ""),
        &format!(
            "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: a\n    rate_limits: [per-cert]\nrate_limits:\n  policies:\n    per-cert: {{key: [client_cert], rate: 1/m, burst: 1}}\n",
            pool_yaml("a", &[up.addr], "")
        ),
    );
    wait_for_port(addr(port), Duration::from_secs(10));
    let get = |c: &(std::path::PathBuf, std::path::PathBuf)| {
        TlsClient::new("mtls.test", &pki.ca_pem)
            .with_cert(c)
            .request(addr(port), "GET", "/scim/v2/Users", &[], None)
            .unwrap()
    };
    assert_eq!(get(&a).status, 200);
    get(&a).assert_scim_error(429);
    assert_eq!(get(&b).status, 200, "another certificate has its own budget");
}

/// Replaces a certificate pair the way a careless deploy might: certificate first.
fn replace(dst: &(std::path::PathBuf, std::path::PathBuf), src: &(std::path::PathBuf, std::path::PathBuf)) {
    std::fs::copy(&src.0, &dst.0).unwrap();
    std::fs::copy(&src.1, &dst.1).unwrap();
}

fn served_cn(port: u16) -> String {
    let c = TlsClient {
        sni: Some("rot.test".into()),
        ..Default::default()
    };
    let cert = c.connect(addr(port)).unwrap().peer_cert();
    let cn = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap();
    cn.data().to_string().unwrap()
}

#[test]
fn certificates_rotate_on_disk_without_a_restart_and_a_broken_pair_is_refused() {
    let pki = Pki::new("rot");
    let live = pki.leaf("live", &scimitar::tls::testing::Leaf::server("rot-v1", &["rot.test"]));
    let v2 = pki.leaf("v2", &scimitar::tls::testing::Leaf::server("rot-v2", &["rot.test"]));
    let v3 = pki.leaf("v3", &scimitar::tls::testing::Leaf::server("rot-v3", &["rot.test"]));
    let up = TestUpstream::start("echo", Behavior::Echo);
    let port = free_port();
    let px = Proxy::start_with_listeners(
        &tls_listener("rot", port, &format!("{}      watch: 100ms\n", cert_yaml(&live)), ""),
        &echo_body("a", &up),
    );
    wait_for_port(addr(port), Duration::from_secs(10));
    assert_eq!(served_cn(port), "rot-v1");
    let mut old = TlsClient::new("rot.test", &pki.ca_pem).connect(addr(port)).unwrap();
    assert_eq!(old.request("GET", "/scim/v2/Users", &[], None).unwrap().status, 200);

    replace(&live, &v2);
    assert!(
        eventually(Duration::from_secs(5), || served_cn(port) == "rot-v2"),
        "new handshakes get v2"
    );
    assert_eq!(
        old.request("GET", "/scim/v2/Users", &[], None).unwrap().status,
        200,
        "a connection opened before the rotation keeps working"
    );

    // A key that does not fit the certificate: refused, v2 stays, the reason is on /status.
    std::fs::copy(&v3.0, &live.0).unwrap();
    assert!(eventually(Duration::from_secs(5), || !px.status()["listeners"][1]
        ["tls"]["last_reload_error"]
        .is_null()));
    let err = px.status()["listeners"][1]["tls"]["last_reload_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("does not belong"), "{err}");
    assert_eq!(served_cn(port), "rot-v2");
    // The explicit trigger reports the same refusal.
    let r = http(px.admin, "POST", "/tls/reload", &[], None);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("does not belong"));
    // The matching key arrives by an atomic rename (a new inode): v3 is served.
    let staged = pki.dir.join("staged.key");
    std::fs::copy(&v3.1, &staged).unwrap();
    std::fs::rename(&staged, &live.1).unwrap();
    assert!(eventually(Duration::from_secs(5), || served_cn(port) == "rot-v3"));
    // An expired pair is refused on rotation as at start-up.
    let old = pki.leaf(
        "old",
        &scimitar::tls::testing::Leaf {
            not_before: -10 * 86_400,
            not_after: -60,
            ..scimitar::tls::testing::Leaf::server("rot-old", &["rot.test"])
        },
    );
    replace(&live, &old);
    assert!(eventually(Duration::from_secs(5), || {
        px.status()["listeners"][1]["tls"]["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("expired"))
    }));
    assert_eq!(served_cn(port), "rot-v3");
    assert!(px.log().contains("still serving the previous certificates"));
}

fn upstream_tls_pair(pki: &Pki, backend_tls_extra: &str, up: &TestUpstream) -> (Proxy, u16) {
    let cert = pki.server("backend", &["backend.test"]);
    let port = free_port();
    let backend = Proxy::start_with_listeners(
        &tls_listener("backend", port, &format!("{}{backend_tls_extra}", cert_yaml(&cert)), ""),
        &echo_body("a", up),
    );
    wait_for_port(addr(port), Duration::from_secs(10));
    (backend, port)
}

#[test]
fn upstream_tls_verifies_against_a_ca_and_a_wrong_ca_is_a_scim_502() {
    let pki = Pki::new("up");
    let other = Pki::new("up-other");
    let up = TestUpstream::start("echo", Behavior::Echo);
    let client = pki.client("edge", "scimitar-edge", &[]);
    let extra = format!(
        "      client_ca: {}\n      forward_client_cert: X-Client-Cert\n",
        pki.ca_pem.display()
    );
    let (backend, port) = upstream_tls_pair(&pki, &extra, &up);

    let pool = |ca: &Path, h2: bool| {
        format!(
            "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: b\n",
            pool_yaml(
                "b",
                &[addr(port)],
                &format!(
                    "    retries: 0\n    tls: {{sni: backend.test, ca: {}, cert: {}, key: {}, http2: {h2}}}\n",
                    ca.display(),
                    client.0.display(),
                    client.1.display()
                )
            )
        )
    };
    let edge = Proxy::start(&pool(&pki.ca_pem, false));
    let r = edge.get("/scim/v2/Users");
    assert_eq!(r.status, 200, "{}", r.text());
    // Two hops of X-Forwarded-Proto: the backend saw TLS from the edge.
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "https");
    let fwd = seen_header(&up, "x-client-cert");
    assert!(
        fwd.len() == 1 && fwd[0].contains("CN=scimitar-edge"),
        "upstream mTLS identity: {fwd:?}"
    );

    // Active health checks speak the pool's TLS: healthy with the right CA.
    let checked = Proxy::start(&pool(&pki.ca_pem, false).replace(
        "    retries: 0\n",
        "    retries: 0\n    health_check: {path: /scim/v2/Users, interval: 200ms, rise: 1, fall: 1}\n",
    ));
    assert!(eventually(Duration::from_secs(5), || {
        checked.get("/scim/v2/Users");
        checked.server_healthy(0, addr(port))
    }));
    drop(checked); // its probes would count as upstream hits below

    // Without preserve_host, a TLS pool's servers get their SNI name as Host.
    let named = Proxy::start(
        &pool(&pki.ca_pem, false).replace("    retries: 0\n", "    retries: 0\n    preserve_host: false\n"),
    );
    assert_eq!(named.get("/scim/v2/Users").json()["headers"]["host"], "backend.test");
    drop(named);

    let h2 = Proxy::start(&pool(&pki.ca_pem, true));
    assert_eq!(h2.get("/scim/v2/Users").status, 200);
    assert!(
        eventually(Duration::from_secs(3), || backend.log().contains("HTTP/2.0")),
        "the backend was spoken to over HTTP/2"
    );

    let hits = up.hits();
    let wrong = Proxy::start(&pool(&other.ca_pem, false));
    let d = wrong.get("/scim/v2/Users").assert_scim_error(502);
    assert!(!d.is_empty());
    assert_eq!(up.hits(), hits, "nothing reached the backend's upstream");
    // And its health check fails the same way: the server leaves rotation.
    let wrong_checked = Proxy::start(&pool(&other.ca_pem, false).replace(
        "    retries: 0\n",
        "    retries: 0\n    health_check: {path: /scim/v2/Users, interval: 200ms, rise: 1, fall: 1}\n",
    ));
    assert!(
        eventually(Duration::from_secs(5), || !wrong_checked.server_healthy(0, addr(port))),
        "an unverifiable server is unhealthy"
    );
    wrong_checked.get("/scim/v2/Users").assert_scim_error(503);
}

#[test]
fn a_rotated_client_ca_applies_to_new_handshakes() {
    let pki = Pki::new("ca-rot");
    let next = Pki::new("ca-rot-next");
    let old_client = pki.client("old", "old-client", &[]);
    let new_client = next.client("new", "new-client", &[]);
    let bundle = pki.dir.join("client-ca.pem");
    std::fs::copy(&pki.ca_pem, &bundle).unwrap();
    let cert = pki.server("srv", &["mtls.test"]);
    let up = TestUpstream::start("echo", Behavior::Echo);
    let port = free_port();
    let tls = format!(
        "{}      client_ca: {}\n      watch: 100ms\n",
        cert_yaml(&cert),
        bundle.display()
    );
    let _px = Proxy::start_with_listeners(&tls_listener("mtls", port, &tls, ""), &echo_body("a", &up));
    wait_for_port(addr(port), Duration::from_secs(10));
    let served = |c: &(std::path::PathBuf, std::path::PathBuf)| {
        TlsClient::new("mtls.test", &pki.ca_pem)
            .with_cert(c)
            .request(addr(port), "GET", "/scim/v2/Users", &[], None)
            .is_ok_and(|r| r.status == 200)
    };
    assert!(served(&old_client) && !served(&new_client));
    // A session of the old CA's client, kept for after the rotation.
    let old_conn = TlsClient::new("mtls.test", &pki.ca_pem).with_cert(&old_client);
    let mut first = old_conn.connect(addr(port)).unwrap();
    assert_eq!(first.request("GET", "/scim/v2/Users", &[], None).unwrap().status, 200);
    let session = first.session().unwrap();
    let _ = first.stream.shutdown();
    drop(first);
    let hits = up.hits();
    std::fs::copy(&next.ca_pem, &bundle).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || served(&new_client)),
        "the new CA's clients get in"
    );
    assert!(!served(&old_client), "and the old CA's are out");
    // Resuming the old session does not bring the old CA's access back, also in a later second
    // than the reload (a TLS 1.3 resumption's session carries the resumption's time).
    std::thread::sleep(Duration::from_millis(1100));
    let hits_after = up.hits();
    assert!(hits_after > hits);
    let mut resumed = old_conn.connect_resuming(addr(port), Some(&session)).unwrap();
    assert!(resumed.reused(), "OpenSSL resumes it: the proxy has to catch it");
    resumed
        .request("GET", "/scim/v2/Users", &[], None)
        .unwrap()
        .assert_scim_error(403);
    assert_eq!(up.hits(), hits_after, "the resumed old session reached nothing");
}
