//! A real nginx (Debian's, installed by `make test`) on a config a test wrote.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{wait_for_port, Reaper};

pub struct Nginx {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    _child: Reaper,
}

/// Where nginx is, if it is installed (Debian puts it in /usr/sbin, often not on a user's PATH).
pub fn binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Nginx {
    /// Runs nginx in the foreground with `conf` (a file in `dir`, which is also its prefix: temp
    /// files and relative paths land there), and waits for it to listen on `addr`.
    pub fn start(conf: &Path, dir: &Path, addr: SocketAddr) -> Self {
        let bin = binary().expect("nginx is installed (make test installs it)");
        let err = dir.join("error.log");
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(conf)
            .arg("-e")
            .arg(&err)
            .arg("-g")
            .arg(format!("daemon off; pid {};", dir.join("nginx.pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let child = Reaper(child);
        wait_for_port(addr, Duration::from_secs(10));
        Nginx {
            addr,
            dir: dir.to_path_buf(),
            _child: child,
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}
