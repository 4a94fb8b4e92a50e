//! The TLS edge: certificates chosen by SNI, mTLS with client identity, rotation without a
//! restart, and TLS to upstream servers.
//!
//! - [`certs`]: PEM files → checked material (`Material`) and the SNI lookup.
//! - [`listener`]: a listener's `TlsSettings` and the per-handshake callbacks.
//! - [`identity`]: the verified client certificate as request facts and a forwarded header.
//! - [`rotate`]: watches certificate files and swaps new material in atomically.
//! - [`upstream`]: a pool's TLS settings applied to its peers and health checks.

pub mod certs;
pub mod identity;
pub mod listener;
pub mod rotate;
#[doc(hidden)]
pub mod testing;
pub mod upstream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

pub use certs::{CertSpec, Material};
pub use identity::{ClientIdentity, ConnInfo};

/// Lowest protocol version a listener accepts (1.0 and 1.1 are refused by the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

/// `client_auth`: whether a listener asks for and requires a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Never asked for.
    None,
    /// Asked for; a missing one is fine, a presented one must verify.
    Optional,
    /// No valid certificate, no connection.
    Required,
}

/// A listener's `tls` block, validated, with its files already loaded once.
#[derive(Debug)]
pub struct ListenerTls {
    pub certificates: Vec<CertSpec>,
    pub min_version: TlsVersion,
    /// TLS 1.2 cipher list (OpenSSL syntax); `None` is Mozilla intermediate.
    pub ciphers: Option<String>,
    /// TLS 1.3 suites; `None` is OpenSSL's default.
    pub ciphersuites: Option<String>,
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// Header that carries the verified client identity upstream.
    pub forward_client_cert: Option<http::HeaderName>,
    /// How often the files are checked for changes; `None` turns watching off.
    pub watch: Option<Duration>,
    /// What handshakes use now; replaced whole on rotation.
    pub material: Arc<ArcSwap<Material>>,
}

/// A pool's `tls` block: how scimitar speaks TLS to the servers.
#[derive(Clone)]
pub struct UpstreamTls {
    /// Name sent as SNI and checked against the server certificate.
    pub sni: String,
    pub verify: bool,
    /// Trust anchors; `None` is the system store.
    pub ca: Option<Arc<Box<[openssl::x509::X509]>>>,
    pub ca_path: Option<PathBuf>,
    /// Client certificate for upstream mTLS.
    pub client_cert: Option<Arc<pingora::utils::tls::CertKey>>,
    /// Offer HTTP/2 by ALPN (HTTP/1.1 stays the fallback).
    pub http2: bool,
    /// Digest of the CA, certificate and key files (paths and contents): a reload that finds
    /// new files or new contents under the same paths builds the pool again.
    pub files: u64,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("sni", &self.sni)
            .field("verify", &self.verify)
            .field("ca", &self.ca_path)
            .field("client_cert", &self.client_cert.is_some())
            .field("http2", &self.http2)
            .field("files", &format_args!("{:016x}", self.files))
            .finish()
    }
}
