//! Request keys for affinity and rate limits, built from named sources (`tenant`, `token`,
//! `client_ip`, `header:NAME`, `id`, `class`) and reduced to a keyed 64-bit hash.
//!
//! Only the hash is ever kept (pin table, limiter state, Redis keys): a bearer token never
//! leaves the request that carried it. The hash is SipHash with a key from the config, so every
//! instance sharing the config maps a credential to the same ring position.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher13;

use crate::scim::EndpointClass;

/// Where one part of a key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Tenant,
    /// The `Authorization` header value (hashed, never stored).
    Token,
    ClientIp,
    /// A request header, lower-cased.
    Header(String),
    /// The SCIM resource id in the path.
    Id,
    /// The endpoint class (`users.write`, `bulk`, …).
    Class,
    /// The verified client certificate (its SHA-256 fingerprint), on mTLS listeners.
    ClientCert,
}

impl KeySource {
    /// Parses `tenant`, `token`, `client_ip`, `header:X-Name`, `id`, `class`.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "tenant" => Self::Tenant,
            "token" => Self::Token,
            "client_ip" => Self::ClientIp,
            "id" => Self::Id,
            "class" => Self::Class,
            "client_cert" => Self::ClientCert,
            _ => match s.strip_prefix("header:") {
                Some(h) if http::HeaderName::from_bytes(h.trim().as_bytes()).is_ok() => {
                    Self::Header(h.trim().to_ascii_lowercase())
                }
                Some(h) => return Err(format!("`{h}` is not a valid header name")),
                None => {
                    return Err(format!(
                        "`{s}` is not a key source; use tenant, token, client_ip, header:NAME, id, class or client_cert"
                    ))
                }
            },
        })
    }

    fn tag(&self) -> u8 {
        match self {
            Self::Tenant => 1,
            Self::Token => 2,
            Self::ClientIp => 3,
            Self::Header(_) => 4,
            Self::Id => 5,
            Self::Class => 6,
            Self::ClientCert => 7,
        }
    }
}

/// What a request offers to key on, borrowed from the session for the length of one decision.
pub struct Facts<'a> {
    pub tenant: Option<&'a [u8]>,
    pub authorization: Option<&'a [u8]>,
    pub client_ip: Option<IpAddr>,
    pub headers: &'a http::HeaderMap,
    pub id: Option<&'a [u8]>,
    pub class: EndpointClass,
    /// SHA-256 of the verified client certificate.
    pub client_cert: Option<&'a [u8]>,
}

impl Facts<'_> {
    /// Feeds the source's value into `h`; false when the request does not have it.
    fn feed(&self, src: &KeySource, h: &mut SipHasher13) -> bool {
        let bytes: Option<&[u8]> = match src {
            KeySource::Tenant => self.tenant,
            KeySource::Token => self.authorization,
            KeySource::Header(name) => self.headers.get(name.as_str()).map(|v| v.as_bytes()),
            KeySource::Id => self.id,
            KeySource::Class => Some(self.class.as_str().as_bytes()),
            KeySource::ClientCert => self.client_cert,
            KeySource::ClientIp => match self.client_ip {
                Some(IpAddr::V4(v4)) => {
                    h.write(&v4.octets());
                    return true;
                }
                Some(IpAddr::V6(v6)) => {
                    h.write(&v6.octets());
                    return true;
                }
                None => None,
            },
        };
        match bytes {
            Some(b) if !b.is_empty() => {
                h.write(b);
                true
            }
            _ => false,
        }
    }
}

/// The keyed hash shared by affinity and limits.
#[derive(Debug, Clone, Copy)]
pub struct KeyHasher {
    k0: u64,
    k1: u64,
}

impl KeyHasher {
    pub fn new(secret: &str) -> Self {
        let mut a = SipHasher13::new_with_keys(0x7363_696d_6974_6172, 1);
        a.write(secret.as_bytes());
        let mut b = SipHasher13::new_with_keys(0x7363_696d_6974_6172, 2);
        b.write(secret.as_bytes());
        KeyHasher {
            k0: a.finish(),
            k1: b.finish(),
        }
    }

    /// A further key pair derived from the secret, for another use (the cache's keys), so
    /// knowing one use's hashes tells nothing about another's.
    pub fn derive(&self, tag: u8) -> (u64, u64) {
        let mut a = self.start(tag);
        a.write_u8(1);
        let mut b = self.start(tag);
        b.write_u8(2);
        (a.finish(), b.finish())
    }

    fn start(&self, tag: u8) -> SipHasher13 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write_u8(tag);
        h
    }

    /// Affinity: the first source the request has wins, so `[token, client_ip]` falls back
    /// to the address for unauthenticated calls. `None` when it has none of them.
    pub fn first_present(&self, sources: &[KeySource], facts: &Facts<'_>) -> Option<u64> {
        sources.iter().find_map(|s| {
            let mut h = self.start(s.tag());
            facts.feed(s, &mut h).then(|| h.finish())
        })
    }

    /// Limits: every source contributes (an absent one as its own marker), so
    /// `[tenant, class]` gives each tenant a budget per endpoint class.
    pub fn combined(&self, sources: &[KeySource], facts: &Facts<'_>) -> u64 {
        let mut h = self.start(0);
        for s in sources {
            h.write_u8(s.tag());
            if !facts.feed(s, &mut h) {
                h.write_u8(0xff);
            }
            h.write_u8(0);
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(headers: &'a http::HeaderMap, tenant: Option<&'a [u8]>, auth: Option<&'a [u8]>) -> Facts<'a> {
        Facts {
            tenant,
            authorization: auth,
            client_ip: Some("10.0.0.7".parse().unwrap()),
            headers,
            id: Some(b"u1"),
            class: EndpointClass::UsersWrite,
            client_cert: None,
        }
    }

    #[test]
    fn client_cert_keys_by_fingerprint_and_is_absent_without_one() {
        let h = KeyHasher::new("s");
        let headers = http::HeaderMap::new();
        let mut f = facts(&headers, None, None);
        assert_eq!(KeySource::parse("client_cert"), Ok(KeySource::ClientCert));
        assert_eq!(h.first_present(&[KeySource::ClientCert], &f), None);
        f.client_cert = Some(&[1u8; 32]);
        let a = h.first_present(&[KeySource::ClientCert], &f);
        f.client_cert = Some(&[2u8; 32]);
        let b = h.first_present(&[KeySource::ClientCert], &f);
        assert!(a.is_some() && b.is_some() && a != b);
    }

    #[test]
    fn sources_parse_with_clear_errors() {
        assert_eq!(
            KeySource::parse("header:X-Tenant-Id"),
            Ok(KeySource::Header("x-tenant-id".into()))
        );
        assert!(KeySource::parse("header:bad header")
            .unwrap_err()
            .contains("not a valid header"));
        assert!(KeySource::parse("cookie").unwrap_err().contains("not a key source"));
    }

    #[test]
    fn affinity_falls_back_in_order() {
        let k = KeyHasher::new("s");
        let h = http::HeaderMap::new();
        let src = [KeySource::Token, KeySource::Tenant, KeySource::ClientIp];
        let with_token = k.first_present(&src, &facts(&h, Some(b"acme"), Some(b"Bearer t1")));
        let same_token_other_tenant = k.first_present(&src, &facts(&h, Some(b"other"), Some(b"Bearer t1")));
        assert_eq!(with_token, same_token_other_tenant, "the first present source decides");
        let no_token = k.first_present(&src, &facts(&h, Some(b"acme"), None));
        let tenant_only = k.first_present(&[KeySource::Tenant], &facts(&h, Some(b"acme"), None));
        assert_eq!(no_token, tenant_only, "falls back to the tenant");
        assert!(k
            .first_present(&[KeySource::Header("x-none".into())], &facts(&h, None, None))
            .is_none());
    }

    const PINNED: u64 = 0xf00f_0b94_e816_a4b3;

    #[test]
    fn hashes_are_keyed_and_stable() {
        let h = http::HeaderMap::new();
        let f = facts(&h, None, Some(b"Bearer secret-token"));
        let a = KeyHasher::new("one").first_present(&[KeySource::Token], &f).unwrap();
        let b = KeyHasher::new("two").first_present(&[KeySource::Token], &f).unwrap();
        assert_ne!(a, b, "a different secret gives a different key");
        assert_eq!(a, KeyHasher::new("one").first_present(&[KeySource::Token], &f).unwrap());
        // Pinned so a change of hash (which would reshuffle every fleet's affinity) is noticed.
        assert_eq!(a, PINNED);
    }

    #[test]
    fn combined_keys_separate_tenants_and_classes() {
        let k = KeyHasher::new("s");
        let h = http::HeaderMap::new();
        let src = [KeySource::Tenant, KeySource::Class];
        let a = k.combined(&src, &facts(&h, Some(b"acme"), None));
        let b = k.combined(&src, &facts(&h, Some(b"globex"), None));
        assert_ne!(a, b);
        let mut f = facts(&h, Some(b"acme"), None);
        f.class = EndpointClass::Bulk;
        assert_ne!(a, k.combined(&src, &f));
        // An absent tenant is its own bucket, not the same as an empty string elsewhere.
        let none = k.combined(&src, &facts(&h, None, None));
        assert_ne!(none, a);
    }
}
