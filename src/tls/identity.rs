//! What a TLS connection tells the request path: the SNI it asked for and, on mTLS listeners,
//! the verified client certificate. Computed once per handshake (in the handshake-complete
//! callback) and shared by every request and h2 stream of the connection.

use http::{HeaderName, HeaderValue};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::x509::X509Ref;

use super::certs::name_line;

/// Attached to a TLS connection's digest (`SslDigest::extension`).
#[derive(Debug)]
pub struct ConnInfo {
    pub sni: Option<String>,
    /// The client certificate, present only when OpenSSL verified it against `client_ca`.
    pub client: Option<ClientIdentity>,
    /// The header the listener forwards the identity in.
    pub forward: Option<HeaderName>,
    /// The listener requires a verified certificate: a connection without one (a session
    /// resumed from before the client CAs changed, whose certificate no longer verifies) gets
    /// no request through.
    pub required: bool,
}

/// A verified client certificate, reduced to what keys, logs and upstreams use.
#[derive(Debug)]
pub struct ClientIdentity {
    /// SHA-256 of the DER certificate: the `client_cert` key source.
    pub fingerprint: [u8; 32],
    pub subject: String,
    pub cn: Option<String>,
    /// `DNS:`, `URI:`, `email:` and `IP:` subject alternative names.
    pub sans: Vec<String>,
    /// The forwarded header's value, built once (Envoy's `X-Forwarded-Client-Cert` format).
    pub header: HeaderValue,
}

impl ClientIdentity {
    pub fn from_cert(cert: &X509Ref) -> Option<Self> {
        let digest = cert.digest(MessageDigest::sha256()).ok()?;
        let mut fingerprint = [0u8; 32];
        if digest.len() != fingerprint.len() {
            return None;
        }
        fingerprint.copy_from_slice(&digest);
        let subject = name_line(cert.subject_name());
        let cn = cert
            .subject_name()
            .entries_by_nid(Nid::COMMONNAME)
            .next()
            .and_then(|e| e.data().to_string().ok());
        let mut sans = Vec::new();
        if let Some(list) = cert.subject_alt_names() {
            for n in &list {
                if let Some(d) = n.dnsname() {
                    sans.push(format!("DNS:{d}"));
                } else if let Some(u) = n.uri() {
                    sans.push(format!("URI:{u}"));
                } else if let Some(e) = n.email() {
                    sans.push(format!("email:{e}"));
                } else if let Some(ip) = n.ipaddress() {
                    let ip = match ip.len() {
                        4 => <[u8; 4]>::try_from(ip)
                            .ok()
                            .map(|b| std::net::IpAddr::from(b).to_string()),
                        16 => <[u8; 16]>::try_from(ip)
                            .ok()
                            .map(|b| std::net::IpAddr::from(b).to_string()),
                        _ => None,
                    };
                    sans.extend(ip.map(|ip| format!("IP:{ip}")));
                }
            }
        }
        let header = forwarded_value(&fingerprint, &subject, &sans)?;
        Some(ClientIdentity {
            fingerprint,
            subject,
            cn,
            sans,
            header,
        })
    }

    pub fn fingerprint_hex(&self) -> String {
        hex(&self.fingerprint)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// `Hash=<sha256>;Subject="CN=..";URI=..;DNS=..` — the fields of Envoy's XFCC header that
/// identify a client. Values are quoted; quotes, backslashes and control bytes cannot break out.
pub fn forwarded_value(fingerprint: &[u8; 32], subject: &str, sans: &[String]) -> Option<HeaderValue> {
    let mut v = format!("Hash={}", hex(fingerprint));
    let mut field = |k: &str, val: &str| {
        v.push(';');
        v.push_str(k);
        v.push_str("=\"");
        for c in val.chars() {
            match c {
                '"' | '\\' => {
                    v.push('\\');
                    v.push(c);
                }
                c if c.is_control() => v.push('?'),
                c => v.push(c),
            }
        }
        v.push('"');
    };
    field("Subject", subject);
    for s in sans {
        if let Some(u) = s.strip_prefix("URI:") {
            field("URI", u);
        } else if let Some(d) = s.strip_prefix("DNS:") {
            field("DNS", d);
        }
    }
    HeaderValue::from_str(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_value_quotes_what_could_break_out() {
        let v = forwarded_value(
            &[0xab; 32],
            "CN=a\"b\\c\nd",
            &["URI:spiffe://t/x".into(), "DNS:c.example".into(), "email:e@x".into()],
        )
        .unwrap();
        let s = v.to_str().unwrap();
        assert!(s.starts_with(&format!("Hash={}", "ab".repeat(32))), "{s}");
        assert!(s.contains(r#";Subject="CN=a\"b\\c?d""#), "{s}");
        assert!(s.ends_with(r#";URI="spiffe://t/x";DNS="c.example""#), "{s}");
    }

    #[test]
    fn identity_reads_the_certificate() {
        let ca = crate::tls::testing::Ca::new("id test CA").unwrap();
        let leaf = crate::tls::testing::Leaf::client("svc-entra", &["spiffe://idp/entra"]);
        let (cert, _) = ca.issue(&leaf).unwrap();
        let id = ClientIdentity::from_cert(&cert).unwrap();
        assert_eq!(id.cn.as_deref(), Some("svc-entra"));
        assert_eq!(id.sans, vec!["URI:spiffe://idp/entra".to_string()]);
        assert_eq!(
            id.fingerprint_hex(),
            hex(&cert.digest(MessageDigest::sha256()).unwrap())
        );
        assert!(id.subject.contains("CN=svc-entra"));
    }
}
