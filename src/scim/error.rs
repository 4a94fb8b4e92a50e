//! SCIM error responses (RFC 7644 §3.12) for every answer the proxy makes itself, so an identity
//! provider always gets `application/scim+json` it can parse, never a proxy's HTML page.

use bytes::Bytes;
use pingora::http::ResponseHeader;

pub const SCIM_ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const CONTENT_TYPE: &str = "application/scim+json";

/// Whole seconds for `Retry-After`: rounded up, so a client that waits exactly that long finds
/// the condition over, and at least 1 (`Retry-After: 0` invites an immediate retry).
pub fn retry_after_secs(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// An answer the proxy gives on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    pub status: u16,
    pub detail: String,
    /// Only defined by the RFC for 400 and 409.
    pub scim_type: Option<&'static str>,
    /// Seconds, sent as `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
    /// `WWW-Authenticate` (401 and 403 of the edge credential check).
    pub challenge: Option<http::HeaderValue>,
}

impl ScimError {
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            detail: detail.into(),
            scim_type: None,
            retry_after: None,
            challenge: None,
        }
    }

    /// 413 naming the limit, so a client can split its Bulk or PATCH accordingly.
    pub fn too_large(max: u64) -> Self {
        Self::new(
            413,
            format!("request body exceeds this endpoint's limit of {max} bytes"),
        )
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn challenge(mut self, v: http::HeaderValue) -> Self {
        self.challenge = Some(v);
        self
    }

    pub fn scim_type(mut self, t: &'static str) -> Self {
        self.scim_type = Some(t);
        self
    }

    /// The JSON body; `status` is a string, as the RFC's schema says.
    pub fn body(&self) -> Bytes {
        let mut v = serde_json::json!({
            "schemas": [SCIM_ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(obj)) = (self.scim_type, v.as_object_mut()) {
            obj.insert("scimType".into(), t.into());
        }
        Bytes::from(v.to_string())
    }

    /// The response header for [`Self::body`] of `len` bytes.
    pub fn header(&self, len: usize) -> pingora::Result<ResponseHeader> {
        let mut h = ResponseHeader::build(self.status, Some(5))?;
        h.insert_header("content-type", CONTENT_TYPE)?;
        h.insert_header("content-length", len.to_string())?;
        h.insert_header("cache-control", "no-store")?;
        if let Some(s) = self.retry_after {
            h.insert_header("retry-after", s.to_string())?;
        }
        if let Some(c) = &self.challenge {
            h.insert_header(http::header::WWW_AUTHENTICATE, c.clone())?;
        }
        Ok(h)
    }
}

/// Default detail text for statuses the proxy produces without a more specific reason.
pub fn default_detail(status: u16) -> &'static str {
    match status {
        400 => "the request could not be parsed",
        404 => "no SCIM endpoint at this path",
        413 => "request body too large",
        502 => "the upstream SCIM server failed to answer",
        503 => "no healthy upstream SCIM server is available",
        504 => "the upstream SCIM server did not answer in time",
        _ => "the proxy could not complete the request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_matches_rfc_shape() {
        let e = ScimError::new(503, "pool \"scim\" has no healthy server").retry_after(0);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["schemas"][0], SCIM_ERROR_SCHEMA);
        assert_eq!(v["status"], "503", "status must be a string");
        assert_eq!(v["detail"], "pool \"scim\" has no healthy server");
        assert!(v.get("scimType").is_none());
        let h = e.header(e.body().len()).unwrap();
        assert_eq!(h.status.as_u16(), 503);
        assert_eq!(h.headers["retry-after"], "1", "Retry-After is at least one second");
        assert_eq!(h.headers["content-type"], CONTENT_TYPE);
    }

    #[test]
    fn scim_type_is_included_when_set() {
        let e = ScimError::new(400, "bad").scim_type("invalidSyntax");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["scimType"], "invalidSyntax");
    }
}
