//! The observability sections: `access_log`, `metrics`, and the real client address
//! (`trusted_proxies`, `real_ip_header`).

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::reader::{self as r, Problems};
use crate::accesslog::{AccessLogConfig, Destination, DEFAULT_QUEUE};
use crate::clientip::Cidr;
use crate::metrics::MetricsConfig;

pub const ACCESS_LOG: &[&str] = &["path", "queue"];
pub const METRICS: &[&str] = &["tenant_label", "max_tenants"];
/// Upper bound of `metrics.max_tenants`: each tracked tenant is a row (and, with the label,
/// two series); a Prometheus server should not be handed more per instance.
const MAX_TENANTS: u64 = 10_000;

/// `access_log: {path: /var/log/scimitar/access.log | stdout, queue: 16384}`.
pub fn access_log(p: &mut Problems, v: &Value) -> Option<AccessLogConfig> {
    let m = r::map(p, "access_log", v, ACCESS_LOG)?;
    let path = r::req(
        p,
        m,
        "access_log",
        "path",
        "give a file (e.g. `/var/log/scimitar/access.log`) or `stdout`",
        r::string,
    );
    let queue = r::opt(p, m, "access_log", "queue", DEFAULT_QUEUE as u64, |p, path, v| {
        r::uint(p, path, v, 1, 1 << 20)
    }) as usize;
    let destination = match path?.trim() {
        "stdout" | "-" => Destination::Stdout,
        "" => {
            p.add("access_log.path", "empty; give a file or `stdout`");
            return None;
        }
        file => Destination::File(absolute(p, file)?),
    };
    Some(AccessLogConfig { destination, queue })
}

/// Relative paths are taken from the working directory now: a daemon changes directory before
/// the file is reopened. The directory must exist (the file is created if missing).
fn absolute(p: &mut Problems, file: &str) -> Option<PathBuf> {
    let path = match std::path::absolute(Path::new(file)) {
        Ok(a) => a,
        Err(e) => {
            p.add("access_log.path", format!("`{file}`: {e}"));
            return None;
        }
    };
    if path.is_dir() {
        p.add(
            "access_log.path",
            format!("`{file}` is a directory; name the file, e.g. `{file}/access.log`"),
        );
        return None;
    }
    match path.parent() {
        Some(dir) if dir.is_dir() => Some(path),
        Some(dir) => {
            p.add(
                "access_log.path",
                format!("directory {} does not exist; create it or log elsewhere", dir.display()),
            );
            None
        }
        None => Some(path),
    }
}

/// `metrics: {tenant_label: false, max_tenants: 100}`; defaults when absent.
pub fn metrics(p: &mut Problems, v: Option<&Value>) -> MetricsConfig {
    let d = MetricsConfig::default();
    let Some(v) = v else { return d };
    let Some(m) = r::map(p, "metrics", v, METRICS) else {
        return d;
    };
    MetricsConfig {
        tenant_label: r::opt(p, m, "metrics", "tenant_label", d.tenant_label, r::boolean),
        max_tenants: r::opt(p, m, "metrics", "max_tenants", d.max_tenants as u64, |p, path, v| {
            r::uint(p, path, v, 1, MAX_TENANTS)
        }) as usize,
    }
}

/// `trusted_proxies: [10.0.0.0/8, "2001:db8::/32", 127.0.0.1]`.
pub fn trusted_proxies(p: &mut Problems, v: Option<&Value>) -> Vec<Cidr> {
    let Some(v) = v else { return Vec::new() };
    let Some(items) = r::strings(p, "trusted_proxies", v) else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|(at, s)| Cidr::parse(&s).map_err(|e| p.add(&at, e)).ok())
        .collect()
}

/// `real_ip_header: X-Real-IP` (default `X-Forwarded-For`): where trusted proxies name the client.
pub fn real_ip_header(p: &mut Problems, top: &serde_yaml::Mapping, trusted: &[Cidr]) -> http::HeaderName {
    let default = crate::clientip::DEFAULT_HEADER;
    let Some(v) = r::get(top, "real_ip_header") else {
        return default;
    };
    let Some(name) = r::string(p, "real_ip_header", v) else {
        return default;
    };
    let Ok(header) = http::HeaderName::from_bytes(name.trim().as_bytes()) else {
        p.add(
            "real_ip_header",
            format!("`{name}` is not a header name; write e.g. `X-Forwarded-For` or `X-Real-IP`"),
        );
        return default;
    };
    if trusted.is_empty() {
        p.warn(
            "real_ip_header",
            "is only read from `trusted_proxies`, and none are listed; add the proxies' networks",
        );
    }
    header
}
