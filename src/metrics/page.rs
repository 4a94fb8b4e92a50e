//! What the admin status page shows about traffic (`"traffic"` in `/status.json`): totals per
//! endpoint, the busiest and most refused tenants, and the last errors. Process-wide (not per
//! pool) so a reload that drops a pool does not make the page's totals go backwards.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use serde_json::{json, Value};

use super::labels::Endpoint;

/// Errors kept for the page.
pub const RECENT_ERRORS: usize = 50;
/// Tenants listed in each top list.
const TOP: usize = 10;
/// Bytes of a tenant name kept (longer names are cut: the table must stay small).
const TENANT_BYTES: usize = 64;
/// The tenant every tenant past the cap is counted as.
pub const OVERFLOW: &str = "other";

#[derive(Default)]
struct EndpointStats {
    requests: AtomicU64,
    errors: AtomicU64,
    rejected: AtomicU64,
    latency_us: AtomicU64,
}

/// One finished request as the page counts it.
pub struct Seen<'a> {
    pub endpoint: Endpoint,
    pub status: u16,
    /// A 429, or a 503 the proxy shed.
    pub rejected: bool,
    pub micros: u64,
    pub tenant: Option<&'a [u8]>,
    /// The upstream answered 2xx, outside discovery (see [`Tenants::record`]).
    pub vouched: bool,
}

/// An error as the page lists it (paths are redacted like the access log's).
#[derive(Debug, Clone)]
pub struct RecentError {
    pub unix_ms: u64,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub upstream: Option<String>,
    pub error: String,
}

pub struct Page {
    start: Instant,
    endpoints: [EndpointStats; Endpoint::ALL.len()],
    pub tenants: Tenants,
    errors: Mutex<VecDeque<RecentError>>,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            start: Instant::now(),
            endpoints: Default::default(),
            tenants: Tenants::default(),
            errors: Mutex::new(VecDeque::with_capacity(RECENT_ERRORS)),
        }
    }
}

impl Page {
    pub fn record(&self, s: &Seen<'_>) {
        let e = &self.endpoints[s.endpoint as usize];
        e.requests.fetch_add(1, Relaxed);
        e.latency_us.fetch_add(s.micros, Relaxed);
        if s.status >= 500 {
            e.errors.fetch_add(1, Relaxed);
        }
        if s.rejected {
            e.rejected.fetch_add(1, Relaxed);
        }
        if let Some(t) = s.tenant {
            self.tenants.record(t, s.rejected, s.vouched);
        }
    }

    /// Only error paths get here; the lock is the ring's, never the request path's.
    pub fn error(&self, e: RecentError) {
        let mut ring = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == RECENT_ERRORS {
            ring.pop_front();
        }
        ring.push_back(e);
    }

    pub fn json(&self) -> Value {
        let endpoints: Vec<Value> = Endpoint::ALL
            .iter()
            .map(|e| {
                let s = &self.endpoints[*e as usize];
                let n = s.requests.load(Relaxed);
                json!({
                    "endpoint": e.as_str(),
                    "requests": n,
                    "errors": s.errors.load(Relaxed),
                    "rejected": s.rejected.load(Relaxed),
                    "latency_sum_seconds": s.latency_us.load(Relaxed) as f64 / 1e6,
                    // Every request is timed, so the count is the request count.
                    "latency_count": n,
                })
            })
            .collect();
        let recent: Vec<Value> = {
            let ring = self.errors.lock().unwrap_or_else(|p| p.into_inner());
            ring.iter()
                .rev()
                .map(|e| {
                    json!({
                        "ts": crate::timefmt::rfc3339_ms(e.unix_ms),
                        "request_id": e.request_id,
                        "method": e.method,
                        "path": e.path,
                        "status": e.status,
                        "upstream": e.upstream,
                        "error": e.error,
                    })
                })
                .collect()
        };
        json!({
            "uptime_seconds": self.start.elapsed().as_secs_f64(),
            "endpoints": endpoints,
            "tenants": self.tenants.json(),
            "recent_errors": recent,
        })
    }
}

/// Per-tenant request and refusal counts: up to `cap` tenants get a row each, every other one
/// shares the `other` row, so memory and (with the label on) series stay bounded whatever
/// clients send. A tenant gets a row only once an upstream vouched for it (see
/// [`Tenants::record`]): otherwise a scan of made-up names, each answered 401 or 404, would
/// take every row and push the real tenants into `other` until a restart.
pub struct Tenants {
    tracked: AtomicBool,
    /// Whether the metrics carry a `tenant` label (`metrics.tenant_label`).
    pub label: AtomicBool,
    table: RwLock<Table>,
}

struct Table {
    cap: usize,
    index: HashMap<Box<[u8]>, usize>,
    /// `cap` named rows, then the `other` row.
    rows: Box<[Row]>,
    names: Vec<String>,
}

#[derive(Default)]
struct Row {
    requests: AtomicU64,
    rejected: AtomicU64,
}

impl Table {
    fn new(cap: usize) -> Self {
        Table {
            cap,
            index: HashMap::with_capacity(cap),
            rows: (0..=cap).map(|_| Row::default()).collect(),
            names: Vec::with_capacity(cap),
        }
    }
}

impl Default for Tenants {
    fn default() -> Self {
        Tenants {
            tracked: AtomicBool::new(false),
            label: AtomicBool::new(false),
            table: RwLock::new(Table::new(0)),
        }
    }
}

/// Counts of one tenant row, for the page and the opt-in label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCount {
    pub tenant: String,
    pub requests: u64,
    pub rejected: u64,
}

impl Tenants {
    /// Turns tracking on or off and sets the cap; a new cap starts the table afresh.
    pub fn configure(&self, tracked: bool, label: bool, cap: usize) {
        self.tracked.store(tracked, Relaxed);
        self.label.store(tracked && label, Relaxed);
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        if t.cap != cap {
            *t = Table::new(cap);
        }
    }

    /// Counts one request of `tenant`. A tenant already in the table counts on its row; any
    /// other counts as `other`, and takes a free row only when `vouched`: an upstream answered
    /// it 2xx, so the name is one the service knows rather than whatever a client made up.
    pub fn record(&self, tenant: &[u8], rejected: bool, vouched: bool) {
        if !self.tracked.load(Relaxed) {
            return;
        }
        let key = &tenant[..tenant.len().min(TENANT_BYTES)];
        {
            let t = self.table.read().unwrap_or_else(|p| p.into_inner());
            let row = match t.index.get(key) {
                Some(&i) => Some(i),
                // Full, or not vouched for: `other`, without ever taking the write lock.
                None if !vouched || t.index.len() >= t.cap => Some(t.cap),
                None => None,
            };
            if let Some(i) = row {
                t.rows[i].add(rejected);
                return;
            }
        }
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        let i = match t.index.get(key) {
            Some(&i) => i,
            None if t.index.len() >= t.cap => t.cap,
            None => {
                let i = t.index.len();
                t.index.insert(key.into(), i);
                t.names.push(String::from_utf8_lossy(key).into_owned());
                i
            }
        };
        t.rows[i].add(rejected);
    }

    /// Every row with traffic (named ones, then `other`).
    pub fn counts(&self) -> Vec<TenantCount> {
        let t = self.table.read().unwrap_or_else(|p| p.into_inner());
        let other = t.rows.get(t.cap).map(|r| (OVERFLOW.to_string(), r));
        t.names
            .iter()
            .cloned()
            .zip(t.rows.iter())
            .chain(other)
            .map(|(tenant, r)| TenantCount {
                tenant,
                requests: r.requests.load(Relaxed),
                rejected: r.rejected.load(Relaxed),
            })
            .filter(|c| c.requests > 0)
            .collect()
    }

    fn json(&self) -> Value {
        let tracked = self.tracked.load(Relaxed);
        let mut all = if tracked { self.counts() } else { Vec::new() };
        all.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.tenant.cmp(&b.tenant)));
        let top_requests: Vec<Value> = all
            .iter()
            .take(TOP)
            .map(|c| json!({"tenant": c.tenant, "requests": c.requests}))
            .collect();
        all.retain(|c| c.rejected > 0);
        all.sort_by(|a, b| b.rejected.cmp(&a.rejected).then_with(|| a.tenant.cmp(&b.tenant)));
        let top_rejected: Vec<Value> = all
            .iter()
            .take(TOP)
            .map(|c| json!({"tenant": c.tenant, "rejected": c.rejected}))
            .collect();
        json!({"tracked": tracked, "top_requests": top_requests, "top_rejected": top_rejected})
    }
}

impl Row {
    fn add(&self, rejected: bool) {
        self.requests.fetch_add(1, Relaxed);
        if rejected {
            self.rejected.fetch_add(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_past_the_cap_are_other() {
        let t = Tenants::default();
        t.record(b"ignored", false, true);
        assert!(t.counts().is_empty(), "untracked until configured");
        t.configure(true, false, 2);
        for (name, n) in [("acme", 3), ("globex", 1), ("initech", 2), ("umbrella", 4)] {
            for i in 0..n {
                t.record(name.as_bytes(), i == 0, true);
            }
        }
        let c = t.counts();
        let get = |n: &str| c.iter().find(|x| x.tenant == n).cloned();
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(get("acme").map(|x| (x.requests, x.rejected)), Some((3, 1)));
        assert_eq!(get("globex").map(|x| (x.requests, x.rejected)), Some((1, 1)));
        assert_eq!(get(OVERFLOW).map(|x| (x.requests, x.rejected)), Some((6, 2)));
        assert!(get("initech").is_none() && get("umbrella").is_none());
    }

    #[test]
    fn only_a_vouched_for_tenant_takes_a_row() {
        let t = Tenants::default();
        t.configure(true, false, 3);
        // A scan: every made-up name refused, or rejected, before any 2xx.
        for i in 0..100 {
            t.record(format!("scan-{i}").as_bytes(), i % 10 == 0, false);
        }
        let only_other = |t: &Tenants| t.counts().iter().all(|c| c.tenant == OVERFLOW);
        assert!(only_other(&t), "{:?}", t.counts());
        t.record(b"acme", false, false);
        t.record(b"acme", false, true);
        t.record(b"acme", true, false);
        let c = t.counts();
        let get = |n: &str| c.iter().find(|x| x.tenant == n).map(|x| (x.requests, x.rejected));
        assert_eq!(get("acme"), Some((2, 1)), "counted by name from its first 2xx on");
        assert_eq!(get(OVERFLOW), Some((101, 10)));
        assert_eq!(c.len(), 2, "the scan left the other two rows free: {c:?}");
    }

    #[test]
    fn long_tenant_names_are_cut() {
        let t = Tenants::default();
        t.configure(true, true, 10);
        let long = vec![b'a'; 500];
        t.record(&long, false, true);
        t.record(&long[..TENANT_BYTES], false, true);
        let c = t.counts();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].tenant.len(), TENANT_BYTES);
        assert_eq!(c[0].requests, 2);
    }

    #[test]
    fn page_json_shape() {
        let p = Page::default();
        p.tenants.configure(true, false, 100);
        for i in 0..12u8 {
            for _ in 0..=i {
                p.record(&Seen {
                    endpoint: Endpoint::Users,
                    status: if i == 0 { 503 } else { 200 },
                    rejected: i == 0,
                    micros: 1500,
                    tenant: Some(&[b'a' + i]),
                    vouched: i > 0,
                });
            }
        }
        for i in 0..(RECENT_ERRORS + 5) {
            p.error(RecentError {
                unix_ms: 0,
                request_id: format!("r{i}"),
                method: "GET".into(),
                path: "/x".into(),
                status: 502,
                upstream: None,
                error: "e".into(),
            });
        }
        let v = p.json();
        assert!(v["uptime_seconds"].as_f64().is_some());
        let users = &v["endpoints"][0];
        assert_eq!(users["endpoint"], "users");
        assert_eq!(users["requests"], 78);
        assert_eq!(users["errors"], 1);
        assert_eq!(users["rejected"], 1);
        assert_eq!(users["latency_count"], 78);
        assert!((users["latency_sum_seconds"].as_f64().unwrap() - 0.117).abs() < 1e-9);
        assert_eq!(v["endpoints"].as_array().unwrap().len(), Endpoint::ALL.len());
        assert_eq!(v["tenants"]["tracked"], true);
        let top = v["tenants"]["top_requests"].as_array().unwrap();
        assert_eq!(top.len(), 10);
        assert_eq!(top[0], json!({"tenant": "l", "requests": 12}));
        assert_eq!(
            v["tenants"]["top_rejected"],
            json!([{"tenant": "other", "rejected": 1}]),
            "`a` never had an upstream's 2xx"
        );
        let errs = v["recent_errors"].as_array().unwrap();
        assert_eq!(errs.len(), RECENT_ERRORS);
        assert_eq!(errs[0]["request_id"], format!("r{}", RECENT_ERRORS + 4), "newest first");
        assert_eq!(errs[0]["upstream"], Value::Null);
        assert_eq!(errs[0]["ts"], "1970-01-01T00:00:00.000Z");
    }
}
