//! Certificates on disk → parsed, checked material, once per change (never per handshake), and
//! the SNI lookup over it: exact name, then `*.parent` wildcard, then the default.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::X509;

/// A certificate the operator configured: files, optional names, and whether it is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Names it serves; empty means "the DNS names in the certificate".
    pub names: Vec<String>,
    pub default: bool,
}

/// One loaded certificate: leaf, intermediates and key, checked to belong together.
pub struct CertEntry {
    pub spec: CertSpec,
    pub leaf: X509,
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
    /// Lower-case names served (configured, or read off the certificate).
    pub names: Vec<String>,
    pub subject: String,
    /// Expiry as a Unix time and as OpenSSL prints it.
    pub not_after_unix: i64,
    pub not_after: String,
}

impl std::fmt::Debug for CertEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertEntry")
            .field("cert", &self.spec.cert)
            .field("names", &self.names)
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// Reads a PEM file; the error names the file and what to do.
fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// The certificates of a PEM CA bundle (`what` names it in errors); an empty one is an error.
pub fn read_bundle(path: &Path, what: &str) -> Result<Vec<X509>, String> {
    let pem = read(path, what)?;
    let certs = X509::stack_from_pem(&pem).map_err(|e| format!("{} is not a PEM CA bundle ({e})", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// Unix time of an ASN.1 time (OpenSSL gives differences, not epochs).
pub fn unix_time(t: &Asn1TimeRef) -> Result<i64, String> {
    let epoch = Asn1Time::from_unix(0).map_err(|e| e.to_string())?;
    let d = epoch.diff(t).map_err(|e| e.to_string())?;
    Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `CN=a, O=b` from a certificate name, with only printable text kept.
pub fn name_line(name: &openssl::x509::X509NameRef) -> String {
    let mut out = String::new();
    for e in name.entries() {
        let key = e.object().nid().short_name().unwrap_or("?");
        let val = e.data().to_string().unwrap_or_default();
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(key);
        out.push('=');
        out.push_str(&val);
    }
    out
}

/// The DNS names a certificate is for: its SAN dNSNames, else its subject CN.
pub fn dns_names(cert: &X509) -> Vec<String> {
    let mut names: Vec<String> = cert
        .subject_alt_names()
        .map(|sans| {
            sans.iter()
                .filter_map(|n| n.dnsname().map(|d| d.to_ascii_lowercase()))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        if let Some(cn) = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next() {
            if let Ok(s) = cn.data().to_string() {
                names.push(s.to_ascii_lowercase());
            }
        }
    }
    names
}

impl CertEntry {
    /// Loads and checks one certificate: the file holds the leaf first, then its chain; the key
    /// must fit the leaf (a half-rotated pair is refused here, never served).
    pub fn load(spec: &CertSpec) -> Result<Self, String> {
        let pem = read(&spec.cert, "certificate")?;
        let mut certs = X509::stack_from_pem(&pem).map_err(|e| {
            format!(
                "{} is not a PEM certificate chain ({e}); give the leaf first, then intermediates",
                spec.cert.display()
            )
        })?;
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate", spec.cert.display()));
        }
        let leaf = certs.remove(0);
        let key_pem = read(&spec.key, "private key")?;
        let key = PKey::private_key_from_pem(&key_pem)
            .map_err(|e| format!("{} is not an unencrypted PEM private key ({e})", spec.key.display()))?;
        let fits = leaf.public_key().map(|pk| pk.public_eq(&key)).unwrap_or(false);
        if !fits {
            return Err(format!(
                "the key in {} does not belong to the certificate in {}; install the matching pair",
                spec.key.display(),
                spec.cert.display()
            ));
        }
        let names = if spec.names.is_empty() {
            dns_names(&leaf)
        } else {
            spec.names.iter().map(|n| n.to_ascii_lowercase()).collect()
        };
        let not_after_unix = unix_time(leaf.not_after())?;
        // The same refusals at start-up, at `-t` and on rotation: an expired certificate or
        // one that names no host is never swapped in.
        if not_after_unix <= now_unix() {
            return Err(format!(
                "certificate {} expired on {}; install a renewed one",
                spec.cert.display(),
                leaf.not_after()
            ));
        }
        if names.is_empty() {
            return Err(format!(
                "certificate {} names no DNS host (no SAN, no CN); list `names:` for it",
                spec.cert.display()
            ));
        }
        Ok(CertEntry {
            spec: spec.clone(),
            names,
            subject: name_line(leaf.subject_name()),
            not_after: leaf.not_after().to_string(),
            not_after_unix,
            leaf,
            chain: certs,
            key,
        })
    }

    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after_unix - now).div_euclid(86_400)
    }
}

/// The certificates of one listener, indexed for the per-handshake lookup.
#[derive(Debug)]
pub struct CertMap {
    pub entries: Vec<Arc<CertEntry>>,
    exact: HashMap<String, usize>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HashMap<String, usize>,
    default: usize,
}

impl CertMap {
    /// Builds the lookup; two certificates claiming one name is an error (which one would an
    /// IdP get?), as is more than one default.
    pub fn new(entries: Vec<CertEntry>) -> Result<Self, String> {
        if entries.is_empty() {
            return Err("no certificate; list at least one under `certificates`".into());
        }
        let defaults: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].spec.default).collect();
        if defaults.len() > 1 {
            return Err("more than one certificate has `default: true`; mark one".into());
        }
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            for n in &e.names {
                let (table, key) = match n.strip_prefix("*.") {
                    Some(parent) => (&mut wildcard, parent.to_string()),
                    None => (&mut exact, n.clone()),
                };
                if let Some(j) = table.insert(key, i) {
                    if j != i {
                        return Err(format!(
                            "name `{n}` is served by both {} and {}; give each name to one certificate",
                            entries[j].spec.cert.display(),
                            e.spec.cert.display()
                        ));
                    }
                }
            }
        }
        Ok(CertMap {
            default: defaults.first().copied().unwrap_or(0),
            entries: entries.into_iter().map(Arc::new).collect(),
            exact,
            wildcard,
        })
    }

    /// The certificate for a client's SNI: exact, then wildcard one label up, then the default.
    /// Also says whether the default was a fallback (an unknown or absent name).
    pub fn find(&self, sni: Option<&str>) -> (&CertEntry, bool) {
        if let Some(i) = sni.and_then(|s| self.lookup(s)) {
            return (&self.entries[i], false);
        }
        (&self.entries[self.default], true)
    }

    fn lookup(&self, sni: &str) -> Option<usize> {
        let lower;
        let name = if sni.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = sni.to_ascii_lowercase();
            lower.as_str()
        } else {
            sni
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Some(&i) = self.exact.get(name) {
            return Some(i);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).copied()
    }
}

/// The CAs a listener verifies client certificates against (mTLS).
pub struct ClientCa {
    pub path: PathBuf,
    pub store: X509Store,
    /// The CA certificates, whose subjects are advertised in the CertificateRequest.
    pub certs: Vec<X509>,
}

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientCa({}, {} certs)", self.path.display(), self.certs.len())
    }
}

impl ClientCa {
    pub fn load(path: &Path) -> Result<Self, String> {
        let certs = read_bundle(path, "client CA bundle")?;
        let mut b = X509StoreBuilder::new().map_err(|e| e.to_string())?;
        // Re-verification of resumed sessions checks the client purpose, as the handshake does.
        b.set_purpose(openssl::x509::X509PurposeId::SSL_CLIENT)
            .map_err(|e| e.to_string())?;
        for c in &certs {
            b.add_cert(c.clone()).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(ClientCa {
            path: path.to_path_buf(),
            store: b.build(),
            certs,
        })
    }
}

/// Everything one TLS listener serves from disk, swapped as a whole on rotation.
#[derive(Debug)]
pub struct Material {
    pub certs: CertMap,
    pub client_ca: Option<ClientCa>,
    /// When this material was loaded (Unix seconds): a TLS session at least as old may have
    /// been verified against other client CAs, so its certificate is verified again on resume.
    pub since_unix: i64,
}

impl Material {
    /// Loads every file of a listener; the first problem is returned (with the file named).
    pub fn load(specs: &[CertSpec], client_ca: Option<&Path>) -> Result<Self, String> {
        let entries = specs.iter().map(CertEntry::load).collect::<Result<Vec<_>, _>>()?;
        Ok(Material {
            certs: CertMap::new(entries)?,
            client_ca: client_ca.map(ClientCa::load).transpose()?,
            since_unix: now_unix(),
        })
    }

    /// Every file this material came from (what the rotation watcher polls).
    pub fn files(specs: &[CertSpec], client_ca: Option<&Path>) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = specs.iter().flat_map(|s| [s.cert.clone(), s.key.clone()]).collect();
        v.extend(client_ca.map(Path::to_path_buf));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testing::{Ca, Leaf};

    fn entry(ca: &Ca, names: &[&str], default: bool) -> CertEntry {
        let (leaf, key) = ca.issue(&Leaf::server(names[0], names)).unwrap();
        CertEntry {
            spec: CertSpec {
                cert: PathBuf::from(names[0]),
                key: PathBuf::new(),
                names: Vec::new(),
                default,
            },
            names: dns_names(&leaf),
            subject: name_line(leaf.subject_name()),
            not_after: String::new(),
            not_after_unix: 0,
            leaf,
            chain: Vec::new(),
            key,
        }
    }

    #[test]
    fn sni_lookup_is_exact_then_one_wildcard_label_then_default() {
        let ca = Ca::new("map CA").unwrap();
        let map = CertMap::new(vec![
            entry(&ca, &["a.example"], false),
            entry(&ca, &["*.example", "apex.example"], false),
            entry(&ca, &["fallback.example"], true),
        ])
        .unwrap();
        let pick = |sni: Option<&str>| {
            let (e, fallback) = map.find(sni);
            (e.names[0].clone(), fallback)
        };
        assert_eq!(pick(Some("a.example")), ("a.example".into(), false));
        assert_eq!(
            pick(Some("A.EXAMPLE.")),
            ("a.example".into(), false),
            "case and a trailing dot"
        );
        assert_eq!(pick(Some("b.example")), ("*.example".into(), false));
        assert_eq!(pick(Some("apex.example")), ("*.example".into(), false));
        assert_eq!(
            pick(Some("x.b.example")),
            ("fallback.example".into(), true),
            "one label only"
        );
        assert_eq!(pick(Some("example")), ("fallback.example".into(), true));
        assert_eq!(pick(None), ("fallback.example".into(), true));
    }

    #[test]
    fn the_first_certificate_is_the_default_unless_one_is_marked() {
        let ca = Ca::new("map CA").unwrap();
        let map = CertMap::new(vec![
            entry(&ca, &["one.example"], false),
            entry(&ca, &["two.example"], false),
        ])
        .unwrap();
        assert_eq!(map.find(Some("other")).0.names[0], "one.example");
        let two_defaults = CertMap::new(vec![
            entry(&ca, &["one.example"], true),
            entry(&ca, &["two.example"], true),
        ]);
        assert!(two_defaults.unwrap_err().contains("more than one"));
        assert!(CertMap::new(Vec::new()).is_err());
    }

    #[test]
    fn loading_checks_the_pair_and_reads_names_and_expiry() {
        let dir = std::env::temp_dir().join(format!("scimitar-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Ca::new("load CA").unwrap();
        let (c1, k1) = ca
            .write_leaf(
                &dir,
                "one",
                &Leaf::server("one.example", &["one.example", "*.one.example"]),
            )
            .unwrap();
        let (_, k2) = ca
            .write_leaf(&dir, "two", &Leaf::server("two.example", &["two.example"]))
            .unwrap();
        let spec = |key: &Path| CertSpec {
            cert: c1.clone(),
            key: key.to_path_buf(),
            names: Vec::new(),
            default: false,
        };
        let e = CertEntry::load(&spec(&k1)).unwrap();
        assert_eq!(e.names, vec!["one.example", "*.one.example"]);
        assert_eq!(e.chain.len(), 1, "the CA after the leaf is the chain");
        assert!(
            (29..=30).contains(&e.days_left(now_unix())),
            "{}",
            e.days_left(now_unix())
        );
        assert!(CertEntry::load(&spec(&k2)).unwrap_err().contains("does not belong"));
        std::fs::write(dir.join("half.crt"), b"-----BEGIN CERTIFICATE-----\nMIIB").unwrap();
        let half = CertSpec {
            cert: dir.join("half.crt"),
            ..spec(&k1)
        };
        assert!(CertEntry::load(&half).is_err(), "a half-written file is refused");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
