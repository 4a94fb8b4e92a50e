//! The `tls` blocks of listeners and pools. Files are read and checked here, once, by the same
//! loaders the running proxy uses, so `-t` refuses exactly what a start would.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_yaml::{Mapping, Value};

use super::reader::{self as r, join, Problems};
use crate::tls::certs::{now_unix, CertEntry, CertMap, ClientCa};
use crate::tls::{CertSpec, ClientAuth, ListenerTls, Material, TlsVersion, UpstreamTls};

const LISTENER_TLS: &[&str] = &[
    "certificates",
    "cert",
    "key",
    "min_version",
    "ciphers",
    "ciphersuites",
    "client_ca",
    "client_auth",
    "forward_client_cert",
    "watch",
];
const CERT: &[&str] = &["cert", "key", "names", "default"];
const POOL_TLS: &[&str] = &["sni", "verify", "ca", "cert", "key", "http2"];

/// Headers a `forward_client_cert` may not name.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "authorization",
    "cookie",
    "content-type",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// A certificate this close to expiry gets a warning from `-t` and at start.
const EXPIRY_WARNING_DAYS: i64 = 14;

fn path(p: &mut Problems, at: &str, v: &Value) -> Option<PathBuf> {
    let s = r::string(p, at, v)?;
    if s.trim().is_empty() {
        p.add(at, "empty; give a file path");
        return None;
    }
    Some(PathBuf::from(s))
}

fn cert_spec(p: &mut Problems, at: &str, m: &Mapping) -> Option<CertSpec> {
    let cert = r::req(
        p,
        m,
        at,
        "cert",
        "give the PEM certificate chain file (leaf first)",
        path,
    );
    let key = r::req(p, m, at, "key", "give the PEM private key file", path);
    let names = r::opt(p, m, at, "names", Vec::new(), |p, path, v| {
        let mut out = Vec::new();
        for (nat, n) in r::strings(p, path, v)? {
            let n = n.trim().to_ascii_lowercase();
            let bare = n.strip_prefix("*.").unwrap_or(&n);
            if bare.is_empty() || bare.contains('*') || bare.contains(['/', ' ', ':']) {
                p.add(&nat, format!("`{n}` is not a host name or `*.domain` wildcard"));
            } else {
                out.push(n);
            }
        }
        Some(out)
    });
    let default = r::opt(p, m, at, "default", false, r::boolean);
    Some(CertSpec {
        cert: cert?,
        key: key?,
        names,
        default,
    })
}

/// Loads one certificate for validation (refused when unreadable, mismatched, expired or
/// nameless, by the loader rotation uses too); a warning when it expires soon.
fn check_cert(p: &mut Problems, at: &str, spec: &CertSpec) -> Option<CertEntry> {
    let e = CertEntry::load(spec).map_err(|e| p.add(at, e)).ok()?;
    let days = e.days_left(now_unix());
    if days < EXPIRY_WARNING_DAYS {
        p.warn(
            at,
            format!(
                "certificate {} expires in {days} day(s), on {}; renew it",
                spec.cert.display(),
                e.not_after
            ),
        );
    }
    Some(e)
}

pub fn listener_tls(p: &mut Problems, at: &str, listener: &str, v: &Value) -> Option<ListenerTls> {
    let m = r::map(p, at, v, LISTENER_TLS)?;
    let mut specs = Vec::new();
    let shorthand = r::get(m, "cert").is_some() || r::get(m, "key").is_some();
    match (r::get(m, "certificates"), shorthand) {
        (Some(_), true) => p.add(
            at,
            "give either `cert`/`key` (one certificate) or `certificates` (a list), not both",
        ),
        (None, true) => specs.extend(cert_spec(p, at, m)),
        (Some(v), false) => {
            let list = r::list(p, &join(at, "certificates"), v).unwrap_or_default();
            if list.is_empty() {
                p.add(&join(at, "certificates"), "empty; list at least one `{cert, key}`");
            }
            for (i, c) in list.iter().enumerate() {
                let cat = r::index(&join(at, "certificates"), i);
                if let Some(cm) = r::map(p, &cat, c, CERT) {
                    specs.extend(cert_spec(p, &cat, cm));
                }
            }
        }
        (None, false) => p.add(
            &join(at, "certificates"),
            "missing; give `cert` and `key`, or a `certificates` list for several names",
        ),
    }
    let min_version = r::opt(
        p,
        m,
        at,
        "min_version",
        TlsVersion::V1_2,
        |p, path, v| match r::string(p, path, v)?
            .trim()
            .trim_start_matches("TLSv")
            .trim_start_matches("tls")
        {
            "1.2" => Some(TlsVersion::V1_2),
            "1.3" => Some(TlsVersion::V1_3),
            "1.0" | "1" | "1.1" => {
                p.add(
                    path,
                    "TLS 1.0 and 1.1 are broken and refused by every IdP; use 1.2 or 1.3",
                );
                None
            }
            other => {
                p.add(path, format!("`{other}` is not a TLS version; use 1.2 or 1.3"));
                None
            }
        },
    );
    let ciphers = r::get(m, "ciphers").and_then(|v| r::string(p, &join(at, "ciphers"), v));
    let ciphersuites = r::get(m, "ciphersuites").and_then(|v| r::string(p, &join(at, "ciphersuites"), v));
    let client_ca = r::get(m, "client_ca").and_then(|v| path(p, &join(at, "client_ca"), v));
    let default_auth = if client_ca.is_some() {
        ClientAuth::Required
    } else {
        ClientAuth::None
    };
    let client_auth = r::opt(p, m, at, "client_auth", default_auth, |p, path, v| {
        match r::string(p, path, v)?.as_str() {
            "none" | "off" => Some(ClientAuth::None),
            "optional" => Some(ClientAuth::Optional),
            "required" | "on" => Some(ClientAuth::Required),
            other => {
                p.add(
                    path,
                    format!("`{other}` is not a client_auth mode; use required, optional or none"),
                );
                None
            }
        }
    });
    if client_auth != ClientAuth::None && client_ca.is_none() {
        p.add(
            &join(at, "client_ca"),
            "missing; `client_auth` needs the PEM bundle of CAs that sign client certificates",
        );
    }
    let forward_client_cert = r::get(m, "forward_client_cert").and_then(|v| {
        let fat = join(at, "forward_client_cert");
        let s = r::string(p, &fat, v)?;
        if client_auth == ClientAuth::None {
            p.add(
                &fat,
                "needs `client_ca` (and client_auth) to have a verified certificate to forward",
            );
        }
        let name = http::HeaderName::from_bytes(s.trim().as_bytes())
            .map_err(|_| p.add(&fat, format!("`{s}` is not a valid header name")))
            .ok()?;
        // The header is removed from every request on every listener: it must not be one
        // that frames the request, routes it, or carries another credential.
        if RESERVED_HEADERS.contains(&name.as_str()) || name.as_str().starts_with("proxy-") {
            p.add(
                &fat,
                format!("`{name}` is a header the proxy or HTTP itself needs; use e.g. `X-Client-Cert`"),
            );
            return None;
        }
        Some(name)
    });
    let watch = r::opt(p, m, at, "watch", Some(Duration::from_secs(5)), |p, path, v| match v {
        Value::Bool(false) => Some(None),
        _ => r::duration(p, path, v).map(|d| (!d.is_zero()).then_some(d)),
    });

    // Load what start-up would load; report each file's problem at its own place.
    let entries: Vec<CertEntry> = specs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let cat = if shorthand {
                at.to_string()
            } else {
                r::index(&join(at, "certificates"), i)
            };
            check_cert(p, &cat, s)
        })
        .collect();
    let ca = client_ca
        .as_ref()
        .and_then(|c| ClientCa::load(c).map_err(|e| p.add(&join(at, "client_ca"), e)).ok());
    // Cipher strings are checked by OpenSSL itself.
    let settings = crate::tls::listener::Settings {
        min_version,
        ciphers: ciphers.as_deref(),
        ciphersuites: ciphersuites.as_deref(),
        client_auth,
    };
    match openssl::ssl::SslContextBuilder::new(openssl::ssl::SslMethod::tls()) {
        Ok(mut b) => {
            if let Err(e) = settings.apply(&mut b, listener) {
                p.add(
                    at,
                    format!("OpenSSL refuses these settings (check ciphers/ciphersuites): {e}"),
                );
            }
        }
        Err(e) => p.add(at, format!("cannot set up OpenSSL: {e}")),
    }
    if entries.len() != specs.len() || (client_ca.is_some() && ca.is_none()) {
        return None;
    }
    let certs = CertMap::new(entries).map_err(|e| p.add(at, e)).ok()?;
    Some(ListenerTls {
        certificates: specs,
        min_version,
        ciphers,
        ciphersuites,
        client_ca,
        client_auth,
        forward_client_cert,
        watch,
        material: Arc::new(ArcSwap::from_pointee(Material {
            certs,
            client_ca: ca,
            since_unix: now_unix(),
        })),
    })
}

pub fn upstream_tls(p: &mut Problems, at: &str, v: &Value) -> Option<UpstreamTls> {
    let empty = Mapping::new();
    let m = match v {
        Value::Bool(false) => return None,
        Value::Bool(true) => &empty,
        v => r::map(p, at, v, POOL_TLS)?,
    };
    let sni = r::opt(p, m, at, "sni", String::new(), r::string).trim().to_string();
    let verify = r::opt(p, m, at, "verify", true, r::boolean);
    if verify && sni.is_empty() {
        // Pingora turns verification off for an empty SNI; never let that happen silently.
        p.add(
            &join(at, "sni"),
            "missing; with `verify` on, name the host in the servers' certificates (e.g. `sni: scim.internal.example`), or set `verify: false` to skip verification (not for production)",
        );
    }
    let ca_path = r::get(m, "ca").and_then(|v| path(p, &join(at, "ca"), v));
    let ca = ca_path.as_ref().and_then(|c| {
        crate::tls::upstream::load_ca(c)
            .map_err(|e| p.add(&join(at, "ca"), e))
            .ok()
    });
    let cert = r::get(m, "cert").and_then(|v| path(p, &join(at, "cert"), v));
    let key = r::get(m, "key").and_then(|v| path(p, &join(at, "key"), v));
    let client_cert = match (&cert, &key) {
        (Some(c), Some(k)) => crate::tls::upstream::load_client_cert(c, k)
            .map_err(|e| p.add(&join(at, "cert"), e))
            .ok(),
        (Some(_), None) => {
            p.add(&join(at, "key"), "missing; a client `cert` needs its `key`");
            None
        }
        (None, Some(_)) => {
            p.add(&join(at, "cert"), "missing; a client `key` needs its `cert`");
            None
        }
        (None, None) => None,
    };
    let http2 = r::opt(p, m, at, "http2", false, r::boolean);
    let files = crate::tls::upstream::files_digest(&[ca_path.as_deref(), cert.as_deref(), key.as_deref()]);
    Some(UpstreamTls {
        sni,
        verify,
        ca,
        ca_path,
        client_cert,
        http2,
        files,
    })
}
