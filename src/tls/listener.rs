//! One TLS listener: its `TlsSettings` (frozen by Pingora when the listener starts) and the
//! per-handshake [`Resolver`], which is where everything that must change without a restart
//! lives: the certificate for the SNI, and the client CAs.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{TlsAccept, ALPN};
use pingora::protocols::tls::TlsRef;
use pingora::tls::ext;
use pingora::tls::ssl::{NameType, SslMode, SslVerifyMode, SslVersion};

use openssl::stack::Stack;
use openssl::x509::X509StoreContext;

use super::certs::{CertEntry, ClientCa, Material};
use super::{ClientAuth, ClientIdentity, ConnInfo, ListenerTls, TlsVersion};

/// Counters a listener's handshakes leave for `/status`.
#[derive(Debug, Default)]
pub struct HandshakeStats {
    pub handshakes: AtomicU64,
    /// Handshakes whose SNI matched no certificate (or had none) and got the default.
    pub default_served: AtomicU64,
}

/// The per-handshake callbacks of one listener.
pub struct Resolver {
    listener: String,
    material: Arc<ArcSwap<Material>>,
    mtls: bool,
    required: bool,
    forward: Option<http::HeaderName>,
    stats: Arc<HandshakeStats>,
}

/// Whether a resumed session's client certificate still verifies against the client CAs
/// loaded now. OpenSSL restores a resumed session's verify result without looking at the
/// current store (and skips the certificate callback that installs it), so without this a
/// session from before a CA was removed would keep its access for the session's lifetime.
fn still_trusted(ssl: &TlsRef, ca: &ClientCa) -> bool {
    let Some(leaf) = ssl.peer_certificate() else {
        return false;
    };
    let Ok(empty) = Stack::new() else { return false };
    // Tickets do not carry the client's intermediates; the bundle usually does.
    let chain = ssl.peer_cert_chain().unwrap_or(&empty);
    X509StoreContext::new()
        .and_then(|mut ctx| ctx.init(&ca.store, &leaf, chain, |c| c.verify_cert()))
        .unwrap_or(false)
}

/// Installs a certificate on a handshake: cert, then key, then chain — the order OpenSSL needs
/// to check the key against the right certificate.
fn install(ssl: &mut TlsRef, e: &CertEntry) -> Result<(), pingora::tls::error::ErrorStack> {
    ext::ssl_use_certificate(ssl, &e.leaf)?;
    ext::ssl_use_private_key(ssl, &e.key)?;
    for c in &e.chain {
        ext::ssl_add_chain_cert(ssl, c)?;
    }
    Ok(())
}

#[async_trait]
impl TlsAccept for Resolver {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        self.stats.handshakes.fetch_add(1, Relaxed);
        let m = self.material.load();
        let (entry, fallback) = m.certs.find(ssl.servername(NameType::HOST_NAME));
        if fallback {
            self.stats.default_served.fetch_add(1, Relaxed);
        }
        if let Err(e) = install(ssl, entry) {
            log::error!(
                "listener {}: cannot use certificate {}: {e}",
                self.listener,
                entry.spec.cert.display()
            );
        }
        if self.mtls {
            if let Some(ca) = &m.client_ca {
                // Per connection, so a rotated CA bundle applies to the next handshake.
                if let Err(e) = ext::ssl_set_verify_cert_store(ssl, &ca.store) {
                    log::error!("listener {}: cannot use client CA store: {e}", self.listener);
                }
                for c in &ca.certs {
                    let _ = ssl.add_client_ca(c);
                }
            }
        }
    }

    async fn handshake_complete_callback(&self, ssl: &TlsRef) -> Option<Arc<dyn Any + Send + Sync>> {
        let mut verified = self.mtls && ssl.verify_result() == openssl::x509::X509VerifyResult::OK;
        if verified && ssl.session_reused() {
            // Every resumption is checked against the CAs loaded now. Skipping sessions "born"
            // after the last reload is not safe: a TLS 1.3 resumption gets a new session whose
            // time is the resumption's, so a pre-rotation ticket resumed a second after the
            // reload looked new and kept its access (seen as a CI flake). The check is one
            // chain verification per resumed handshake.
            let m = self.material.load();
            verified = m.client_ca.as_ref().is_some_and(|ca| still_trusted(ssl, ca));
            if !verified {
                log::info!(
                    "listener {}: a resumed session's client certificate no longer verifies against client_ca",
                    self.listener
                );
            }
        }
        let client = if verified {
            ssl.peer_certificate().and_then(|c| ClientIdentity::from_cert(&c))
        } else {
            None
        };
        Some(Arc::new(ConnInfo {
            sni: ssl.servername(NameType::HOST_NAME).map(str::to_string),
            client,
            forward: self.forward.clone(),
            required: self.required,
        }))
    }
}

/// Up to 32 bytes that tell this listener's sessions from another's: a session resumed with
/// client verification on must carry its context (OpenSSL refuses resumption without one).
fn session_context(listener: &str) -> Vec<u8> {
    let mut v = b"scimitar:".to_vec();
    v.extend(listener.bytes().take(32 - v.len()));
    v
}

/// The `TlsSettings` for a listener. `alpn`: `Some(true)` offers h2 then http/1.1,
/// `Some(false)` only http/1.1, `None` (layer 4) no ALPN at all.
pub fn settings(
    listener: &str,
    tls: &ListenerTls,
    alpn: Option<bool>,
    stats: Arc<HandshakeStats>,
) -> Result<TlsSettings, String> {
    let mtls = tls.client_auth != ClientAuth::None;
    let resolver = Resolver {
        listener: listener.to_string(),
        material: tls.material.clone(),
        mtls,
        required: tls.client_auth == ClientAuth::Required,
        forward: tls.forward_client_cert.clone(),
        stats,
    };
    let err = |what: &str, e: &dyn std::fmt::Display| format!("listener {listener}: {what}: {e}");
    let mut s = TlsSettings::with_callbacks(Box::new(resolver)).map_err(|e| err("TLS setup", &e))?;
    Settings::of(tls)
        .apply(&mut s, listener)
        .map_err(|e| err("TLS settings", &e))?;
    match alpn {
        Some(true) => s.enable_h2(),
        Some(false) => s.set_alpn(ALPN::H1),
        None => {}
    }
    Ok(s)
}

/// The builder-level settings (the acceptor freezes them at start-up); `-t` applies them to
/// a scratch builder so OpenSSL itself rejects a cipher string it does not understand.
pub struct Settings<'a> {
    pub min_version: TlsVersion,
    pub ciphers: Option<&'a str>,
    pub ciphersuites: Option<&'a str>,
    pub client_auth: ClientAuth,
}

impl Settings<'_> {
    pub fn of(tls: &ListenerTls) -> Settings<'_> {
        Settings {
            min_version: tls.min_version,
            ciphers: tls.ciphers.as_deref(),
            ciphersuites: tls.ciphersuites.as_deref(),
            client_auth: tls.client_auth,
        }
    }

    pub fn apply(
        &self,
        b: &mut pingora::tls::ssl::SslContextBuilder,
        listener: &str,
    ) -> Result<(), pingora::tls::error::ErrorStack> {
        let min = match self.min_version {
            TlsVersion::V1_2 => SslVersion::TLS1_2,
            TlsVersion::V1_3 => SslVersion::TLS1_3,
        };
        b.set_min_proto_version(Some(min))?;
        if let Some(c) = self.ciphers {
            b.set_cipher_list(c)?;
        }
        if let Some(c) = self.ciphersuites {
            b.set_ciphersuites(c)?;
        }
        // Chains come from the certificate files; never build one from a (client CA) store.
        b.set_mode(SslMode::NO_AUTO_CHAIN);
        b.set_session_id_context(&session_context(listener))?;
        match self.client_auth {
            ClientAuth::None => {}
            ClientAuth::Optional => b.set_verify(SslVerifyMode::PEER),
            ClientAuth::Required => b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_context_fits_openssl_limit() {
        assert_eq!(session_context("main"), b"scimitar:main".to_vec());
        assert_eq!(session_context(&"x".repeat(100)).len(), 32);
    }
}
