//! Test certificate authorities, minted at run time (no private key is ever committed).
//! Used by the unit tests, the integration tests and the TLS benchmark; not by the proxy.

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder, X509};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    Rsa2048,
}

pub fn new_key(kind: KeyKind) -> Result<PKey<Private>, ErrorStack> {
    match kind {
        KeyKind::EcdsaP256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            PKey::from_ec_key(EcKey::generate(&group)?)
        }
        KeyKind::Rsa2048 => PKey::from_rsa(Rsa::generate(2048)?),
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone)]
pub struct Leaf<'a> {
    pub cn: &'a str,
    pub dns: &'a [&'a str],
    pub uris: &'a [&'a str],
    pub ips: &'a [&'a str],
    pub client: bool,
    pub kind: KeyKind,
    /// Validity relative to now, in seconds (negative `not_after` makes an expired cert).
    pub not_before: i64,
    pub not_after: i64,
}

impl<'a> Leaf<'a> {
    pub fn server(cn: &'a str, dns: &'a [&'a str]) -> Self {
        Leaf {
            cn,
            dns,
            uris: &[],
            ips: &[],
            client: false,
            kind: KeyKind::EcdsaP256,
            not_before: -3600,
            not_after: 30 * 86_400,
        }
    }

    pub fn client(cn: &'a str, uris: &'a [&'a str]) -> Self {
        Leaf {
            client: true,
            uris,
            ..Leaf::server(cn, &[])
        }
    }
}

pub struct Ca {
    pub cert: X509,
    pub key: PKey<Private>,
}

fn at(offset: i64) -> Result<Asn1Time, ErrorStack> {
    Asn1Time::from_unix(crate::tls::certs::now_unix() + offset)
}

fn serial() -> Result<openssl::asn1::Asn1Integer, ErrorStack> {
    let mut bn = BigNum::new()?;
    bn.rand(64, MsbOption::MAYBE_ZERO, false)?;
    bn.to_asn1_integer()
}

impl Ca {
    pub fn new(cn: &str) -> Result<Self, ErrorStack> {
        let key = new_key(KeyKind::EcdsaP256)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, cn)?;
        let name = name.build();
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        let sn = serial()?;
        b.set_serial_number(&sn)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        let nb = at(-3600)?;
        b.set_not_before(&nb)?;
        let na = at(365 * 86_400)?;
        b.set_not_after(&na)?;
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(Ca { cert: b.build(), key })
    }

    pub fn issue(&self, leaf: &Leaf) -> Result<(X509, PKey<Private>), ErrorStack> {
        let key = new_key(leaf.kind)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, leaf.cn)?;
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "scimitar tests")?;
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        let sn = serial()?;
        b.set_serial_number(&sn)?;
        b.set_subject_name(&name.build())?;
        b.set_issuer_name(self.cert.subject_name())?;
        b.set_pubkey(&key)?;
        let nb = at(leaf.not_before)?;
        b.set_not_before(&nb)?;
        let na = at(leaf.not_after)?;
        b.set_not_after(&na)?;
        b.append_extension(BasicConstraints::new().build()?)?;
        let eku = if leaf.client {
            ExtendedKeyUsage::new().client_auth().build()?
        } else {
            ExtendedKeyUsage::new().server_auth().build()?
        };
        b.append_extension(eku)?;
        if !leaf.dns.is_empty() || !leaf.uris.is_empty() || !leaf.ips.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for d in leaf.dns {
                san.dns(d);
            }
            for u in leaf.uris {
                san.uri(u);
            }
            for ip in leaf.ips {
                san.ip(ip);
            }
            b.append_extension(san.build(&b.x509v3_context(Some(&self.cert), None))?)?;
        }
        b.sign(&self.key, MessageDigest::sha256())?;
        Ok((b.build(), key))
    }

    /// Issues a leaf and writes `NAME.crt` (leaf, then this CA as its chain) and `NAME.key`.
    pub fn write_leaf(&self, dir: &Path, file: &str, leaf: &Leaf) -> std::io::Result<(PathBuf, PathBuf)> {
        let (cert, key) = self.issue(leaf).map_err(std::io::Error::other)?;
        let mut pem = cert.to_pem().map_err(std::io::Error::other)?;
        pem.extend(self.cert.to_pem().map_err(std::io::Error::other)?);
        let crt = dir.join(format!("{file}.crt"));
        let k = dir.join(format!("{file}.key"));
        std::fs::write(&crt, pem)?;
        std::fs::write(&k, key.private_key_to_pem_pkcs8().map_err(std::io::Error::other)?)?;
        Ok((crt, k))
    }

    /// Writes this CA's certificate as `NAME.pem` (a trust bundle for clients or `client_ca`).
    pub fn write_ca(&self, dir: &Path, file: &str) -> std::io::Result<PathBuf> {
        let p = dir.join(format!("{file}.pem"));
        std::fs::write(&p, self.cert.to_pem().map_err(std::io::Error::other)?)?;
        Ok(p)
    }
}
