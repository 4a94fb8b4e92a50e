//! TLS for the tests: a CA minted at run time ([`Pki`]), a blocking OpenSSL client that
//! reports what the handshake gave ([`TlsClient`]), and curl for HTTP/2.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslSession, SslStream, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use scimitar::tls::testing::{Ca, Leaf};

use super::client::{exchange, Response};

/// A test CA and a directory for the files it issues.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: Ca,
    pub ca_pem: PathBuf,
}

impl Pki {
    pub fn new(tag: &str) -> Self {
        let dir = super::scratch_dir(&format!("pki-{tag}"));
        let ca = Ca::new(&format!("scimitar test CA {tag}")).expect("mint CA");
        let ca_pem = ca.write_ca(&dir, "ca").expect("write CA");
        Pki { dir, ca, ca_pem }
    }

    /// A server certificate for `dns` (and 127.0.0.1), written as `file.crt` / `file.key`.
    pub fn server(&self, file: &str, dns: &[&str]) -> (PathBuf, PathBuf) {
        let cn = dns.first().copied().unwrap_or("localhost");
        self.leaf(
            file,
            &Leaf {
                ips: &["127.0.0.1"],
                ..Leaf::server(cn, dns)
            },
        )
    }

    pub fn client(&self, file: &str, cn: &str, uris: &[&str]) -> (PathBuf, PathBuf) {
        self.leaf(file, &Leaf::client(cn, uris))
    }

    pub fn leaf(&self, file: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
        self.ca.write_leaf(&self.dir, file, leaf).expect("write leaf")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How a test client connects.
#[derive(Clone, Default)]
pub struct TlsClient {
    pub sni: Option<String>,
    /// Trust anchor; `None` means "do not verify" (to look at whatever is served).
    pub ca: Option<PathBuf>,
    pub cert: Option<(PathBuf, PathBuf)>,
    pub max_version: Option<SslVersion>,
    pub min_version: Option<SslVersion>,
    pub alpn: Option<Vec<u8>>,
}

pub struct Conn {
    pub stream: SslStream<TcpStream>,
}

impl Conn {
    /// The leaf the server presented.
    pub fn peer_cert(&self) -> X509 {
        self.stream.ssl().peer_certificate().expect("server certificate")
    }

    /// The server certificate's DNS names.
    pub fn peer_names(&self) -> Vec<String> {
        scimitar::tls::certs::dns_names(&self.peer_cert())
    }

    pub fn version(&self) -> &'static str {
        self.stream.ssl().version_str()
    }

    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.ssl().selected_alpn_protocol().map(<[u8]>::to_vec)
    }

    pub fn reused(&self) -> bool {
        self.stream.ssl().session_reused()
    }

    pub fn session(&self) -> Option<SslSession> {
        self.stream.ssl().session().map(|s| s.to_owned())
    }

    /// One request on this connection, which stays open for the next.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        let host = self
            .stream
            .ssl()
            .servername(openssl::ssl::NameType::HOST_NAME)
            .unwrap_or("localhost")
            .to_string();
        exchange(&mut self.stream, &host, method, target, headers, body, false)
    }
}

impl TlsClient {
    pub fn new(sni: &str, ca: &Path) -> Self {
        TlsClient {
            sni: Some(sni.to_string()),
            ca: Some(ca.to_path_buf()),
            ..Default::default()
        }
    }

    pub fn with_cert(mut self, cert: &(PathBuf, PathBuf)) -> Self {
        self.cert = Some(cert.clone());
        self
    }

    pub fn connect(&self, addr: SocketAddr) -> std::io::Result<Conn> {
        self.connect_resuming(addr, None)
    }

    /// Connects, offering `session` for resumption when given.
    pub fn connect_resuming(&self, addr: SocketAddr, session: Option<&SslSession>) -> std::io::Result<Conn> {
        let err = std::io::Error::other;
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(err)?;
        match &self.ca {
            Some(ca) => b.set_ca_file(ca).map_err(err)?,
            None => b.set_verify(SslVerifyMode::NONE),
        }
        if let Some((c, k)) = &self.cert {
            b.set_certificate_chain_file(c).map_err(err)?;
            b.set_private_key_file(k, SslFiletype::PEM).map_err(err)?;
        }
        if self.max_version.is_some() || self.min_version.is_some() {
            // Old protocol versions need the lowest security level to be offered at all.
            b.set_security_level(0);
            b.set_min_proto_version(self.min_version).map_err(err)?;
            b.set_max_proto_version(self.max_version).map_err(err)?;
            b.set_cipher_list("ALL:@SECLEVEL=0").map_err(err)?;
        }
        if let Some(a) = &self.alpn {
            b.set_alpn_protos(a).map_err(err)?;
        }
        let connector = b.build();
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut cfg = connector.configure().map_err(err)?;
        let name = self.sni.clone().unwrap_or_else(|| "127.0.0.1".into());
        cfg.set_use_server_name_indication(self.sni.is_some());
        cfg.set_verify_hostname(self.sni.is_some() && self.ca.is_some());
        if let Some(s) = session {
            // SAFETY: the session was issued for this server by a connection of this test.
            unsafe { cfg.set_session(s).map_err(err)? };
        }
        let stream = cfg
            .connect(&name, tcp)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Conn { stream })
    }

    /// Connects, sends one request that closes the connection, and returns the answer.
    pub fn request(
        &self,
        addr: SocketAddr,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        let mut c = self.connect(addr)?;
        let host = self.sni.clone().unwrap_or_else(|| addr.to_string());
        exchange(&mut c.stream, &host, method, target, headers, body, true)
    }
}

/// What curl saw: the HTTP version it used, the status, and the body.
pub struct Curled {
    pub http_version: String,
    pub status: u16,
    pub body: String,
}

/// Runs curl (a real HTTP/2 client, nghttp2 inside) with `args` before the URL.
pub fn curl(args: &[&str], url: &str) -> Curled {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "-",
            "-w",
            "\n%{http_version} %{http_code}",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut parts = tail.split(' ');
    Curled {
        http_version: parts.next().unwrap_or_default().to_string(),
        status: parts.next().and_then(|s| s.parse().ok()).unwrap_or(0),
        body: body.to_string(),
    }
}

/// `--resolve name:port:127.0.0.1` so curl sends SNI for `name` while staying on loopback.
pub fn resolve(name: &str, addr: SocketAddr) -> String {
    format!("{name}:{}:127.0.0.1", addr.port())
}
