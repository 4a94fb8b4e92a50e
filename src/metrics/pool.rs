//! One pool's request-path handles, resolved once when the pool is built: fixed arrays indexed
//! by endpoint × operation × status class and by server index. Recording a request is a few
//! atomic adds — no label hashing, no lock, no allocation.

use prometheus::{Histogram, IntCounter, IntGauge};

use super::labels::{fold, possible, Code, Endpoint, Op};
use super::Metrics;

const OPS: usize = Op::ALL.len();
const CODES: usize = Code::ALL.len();

/// Why a request went to another server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The connection failed; nothing reached the server.
    ConnectFailure,
    /// The exchange failed after connecting, and the operation was safe to replay.
    UpstreamError,
}

impl Retry {
    pub fn as_str(self) -> &'static str {
        match self {
            Retry::ConnectFailure => "connect_failure",
            Retry::UpstreamError => "upstream_error",
        }
    }
}

struct Backend {
    responses: [IntCounter; CODES],
    connect_errors: IntCounter,
}

pub struct PoolMetrics {
    pub name: String,
    /// `(endpoint × OPS + op) × CODES + code`; impossible pairs share their fold's handles.
    requests: Box<[IntCounter]>,
    /// `endpoint × OPS + op`.
    duration: Box<[Histogram]>,
    upstream_duration: Histogram,
    pub in_flight: IntGauge,
    /// Indexed like the pool's servers.
    backends: Box<[Backend]>,
    retries: [IntCounter; 2],
    shed: IntCounter,
    too_large: IntCounter,
}

impl PoolMetrics {
    /// The handles of pool `name` with `backends` (addresses, in server order). With the same
    /// name as an earlier table (a reload keeping the pool) the series continue where they were.
    pub fn new(m: &Metrics, name: &str, backends: &[String]) -> prometheus::Result<Self> {
        Self::build(m, name, backends, true)
    }

    /// Requests no route took: everything is `endpoint="other", operation="other"`.
    pub(super) fn unrouted(m: &Metrics) -> prometheus::Result<Self> {
        Self::build(m, "", &[], false)
    }

    fn build(m: &Metrics, name: &str, backends: &[String], routed: bool) -> prometheus::Result<Self> {
        let pair = |e: Endpoint, o: Op| {
            if routed {
                fold(e, o)
            } else {
                (Endpoint::Other, Op::Other)
            }
        };
        let mut requests = Vec::with_capacity(Endpoint::ALL.len() * OPS * CODES);
        let mut duration = Vec::with_capacity(Endpoint::ALL.len() * OPS);
        for e in Endpoint::ALL {
            for o in Op::ALL {
                let (fe, fo) = pair(e, o);
                debug_assert!(possible(fe, fo));
                duration.push(
                    m.duration
                        .get_metric_with_label_values(&[fe.as_str(), fo.as_str(), name])?,
                );
                for c in Code::ALL {
                    requests.push(m.requests.get_metric_with_label_values(&[
                        fe.as_str(),
                        fo.as_str(),
                        c.as_str(),
                        name,
                    ])?);
                }
            }
        }
        let backends = backends
            .iter()
            .map(|b| {
                let code = |c: Code| {
                    m.upstream_responses
                        .get_metric_with_label_values(&[name, b, c.as_str()])
                };
                Ok(Backend {
                    responses: [
                        code(Code::C1xx)?,
                        code(Code::C2xx)?,
                        code(Code::C3xx)?,
                        code(Code::C4xx)?,
                        code(Code::C5xx)?,
                        code(Code::Other)?,
                    ],
                    connect_errors: m.connect_errors.get_metric_with_label_values(&[name, b])?,
                })
            })
            .collect::<prometheus::Result<Vec<_>>>()?;
        let retry = |r: Retry| m.retries.get_metric_with_label_values(&[name, r.as_str()]);
        Ok(PoolMetrics {
            name: name.to_string(),
            requests: requests.into(),
            duration: duration.into(),
            upstream_duration: m.upstream_duration.get_metric_with_label_values(&[name])?,
            in_flight: m.in_flight.get_metric_with_label_values(&[name])?,
            backends: backends.into(),
            retries: [retry(Retry::ConnectFailure)?, retry(Retry::UpstreamError)?],
            shed: m.rejected.get_metric_with_label_values(&["shed", name, ""])?,
            too_large: m.rejected.get_metric_with_label_values(&["too_large", name, ""])?,
        })
    }

    /// A finished request: its final status class and total time.
    pub fn request(&self, e: Endpoint, o: Op, code: Code, seconds: f64) {
        let pair = e as usize * OPS + o as usize;
        if let Some(c) = self.requests.get(pair * CODES + code as usize) {
            c.inc();
        }
        if let Some(h) = self.duration.get(pair) {
            h.observe(seconds);
        }
    }

    /// An upstream answer header from server `backend`, `seconds` after the first attempt began.
    pub fn upstream_answer(&self, backend: usize, status: u16, seconds: f64) {
        if let Some(b) = self.backends.get(backend) {
            b.responses[Code::of(status) as usize].inc();
        }
        self.upstream_duration.observe(seconds);
    }

    pub fn connect_error(&self, backend: usize) {
        if let Some(b) = self.backends.get(backend) {
            b.connect_errors.inc();
        }
    }

    pub fn retry(&self, why: Retry) {
        self.retries[why as usize].inc();
    }

    pub fn shed(&self) {
        self.shed.inc();
    }

    pub fn too_large(&self) {
        self.too_large.inc();
    }
}

/// Holding one counts a request in its pool's `scimitar_requests_in_flight`; dropped with the
/// request context whichever way the request ends.
pub struct InFlight(IntGauge);

impl InFlight {
    pub fn new(pool: &PoolMetrics) -> Self {
        pool.in_flight.inc();
        InFlight(pool.in_flight.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
