//! TLS from scimitar to a pool's servers: loading the pool's trust anchors and client
//! certificate once, and applying them to the peer template every request clones.

use std::hash::Hasher;
use std::path::Path;
use std::sync::Arc;

use openssl::pkey::PKey;
use openssl::x509::X509;
use pingora::upstreams::peer::{HttpPeer, Scheme};
use pingora::utils::tls::CertKey;
use siphasher::sip::SipHasher13;

use super::UpstreamTls;

/// Streams per upstream h2 connection (Pingora's default of 1 would mean no multiplexing).
const H2_STREAMS: usize = 100;

/// Loads a CA bundle for verifying upstream servers.
pub fn load_ca(path: &Path) -> Result<Arc<Box<[X509]>>, String> {
    let certs = super::certs::read_bundle(path, "CA bundle")?;
    Ok(Arc::new(certs.into_boxed_slice()))
}

/// Loads the client certificate (leaf first, then chain) and key for upstream mTLS; the key
/// must fit the certificate.
pub fn load_client_cert(cert: &Path, key: &Path) -> Result<Arc<CertKey>, String> {
    let spec = super::CertSpec {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        names: Vec::new(),
        default: false,
    };
    let e = super::certs::CertEntry::load(&spec)?;
    let mut chain = vec![e.leaf.clone()];
    chain.extend(e.chain.iter().cloned());
    let key: PKey<_> = e.key.clone();
    Ok(Arc::new(CertKey::new(chain, key)))
}

/// Makes `peer` speak the pool's TLS. Pools that differ only in trust anchors or client
/// certificate must not share pooled connections, and Pingora's pool key leaves the CA out,
/// so each pool gets its own connection group.
pub fn apply(peer: &mut HttpPeer, tls: &UpstreamTls, pool: &str) {
    peer.scheme = Scheme::HTTPS;
    peer.sni = tls.sni.clone();
    peer.options.verify_cert = tls.verify;
    peer.options.verify_hostname = tls.verify;
    peer.options.ca = tls.ca.clone();
    peer.client_cert_key = tls.client_cert.clone();
    if tls.http2 {
        peer.options.set_http_version(2, 1);
        peer.options.max_h2_streams = H2_STREAMS;
    }
    let mut h = SipHasher13::new_with_keys(0x7363_696d, 0x0074_6c73);
    h.write(pool.as_bytes());
    peer.group_key = h.finish();
}

/// Digest of the named files' paths and contents (a missing file counts as empty; loading
/// already reported it).
pub fn files_digest(paths: &[Option<&std::path::Path>]) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new();
    for p in paths.iter().flatten() {
        h.write(p.as_os_str().as_encoded_bytes());
        h.write(&std::fs::read(p).unwrap_or_default());
        h.write_u8(0xff);
    }
    h.finish()
}
