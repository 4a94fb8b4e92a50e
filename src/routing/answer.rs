//! `return`: a route that answers every request it matches itself, as nginx's `return 403;`,
//! with a SCIM error body (a 204 is empty). The body is built once, at load.

use bytes::Bytes;
use pingora::http::ResponseHeader;

use crate::scim::error::ScimError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedAnswer {
    pub status: u16,
    body: Bytes,
}

impl FixedAnswer {
    /// The answer for `status` (any 100–599) with `detail` (default: the status's reason);
    /// the error says which statuses work instead.
    pub fn new(status: u16, detail: Option<String>) -> Result<Self, String> {
        match status {
            204 if detail.is_some() => {
                return Err("a 204 answer has no body to carry `detail`; remove it".into());
            }
            204 | 400..=599 => {}
            100..=199 => {
                return Err(format!(
                    "{status} is an interim status, not an answer; use 204 (an empty answer) or a 4xx/5xx status"
                ))
            }
            200..=299 => {
                return Err(format!(
                    "{status} would need content the proxy does not have; use 204 for an empty success, or route to an upstream"
                ))
            }
            300..=399 => {
                return Err(format!(
                    "{status} is a redirect, which needs a `Location` scimitar does not build; use 204 or a 4xx/5xx status"
                ))
            }
            _ => return Err(format!("{status} is not an HTTP status; use 204 or a 4xx/5xx status")),
        }
        let body = if status == 204 {
            Bytes::new()
        } else {
            let detail = detail.unwrap_or_else(|| {
                http::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("answered by the proxy")
                    .to_string()
            });
            ScimError::new(status, detail).body()
        };
        Ok(FixedAnswer { status, body })
    }

    /// The body (empty for 204), shared, not copied.
    pub fn body(&self) -> Option<Bytes> {
        (!self.body.is_empty()).then(|| self.body.clone())
    }

    pub fn header(&self) -> pingora::Result<ResponseHeader> {
        if self.status == 204 {
            let mut h = ResponseHeader::build(204, Some(2))?;
            h.insert_header("cache-control", "no-store")?;
            return Ok(h);
        }
        ScimError::new(self.status, String::new()).header(self.body.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_statuses_get_a_scim_body_and_204_none() {
        let a = FixedAnswer::new(403, None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&a.body().unwrap()).unwrap();
        assert_eq!(
            (v["status"].as_str(), v["detail"].as_str()),
            (Some("403"), Some("Forbidden"))
        );
        let h = a.header().unwrap();
        assert_eq!(h.status.as_u16(), 403);
        assert_eq!(h.headers["content-type"], crate::scim::error::CONTENT_TYPE);
        assert_eq!(
            h.headers["content-length"],
            a.body().unwrap().len().to_string().as_str()
        );

        let a = FixedAnswer::new(410, Some("Bulk is off".into())).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&a.body().unwrap()).unwrap();
        assert_eq!(v["detail"], "Bulk is off");

        let a = FixedAnswer::new(204, None).unwrap();
        assert_eq!(a.body(), None);
        let h = a.header().unwrap();
        assert_eq!(h.status.as_u16(), 204);
        assert!(!h.headers.contains_key("content-type") && !h.headers.contains_key("content-length"));
    }

    #[test]
    fn statuses_without_a_self_made_answer_are_refused() {
        let err = |s: u16| FixedAnswer::new(s, None).unwrap_err();
        assert!(err(101).contains("interim"));
        assert!(err(200).contains("use 204"));
        assert!(err(206).contains("use 204"));
        assert!(err(301).contains("Location"));
        assert!(err(308).contains("Location"));
        assert!(err(600).contains("not an HTTP status"));
        assert!(FixedAnswer::new(204, Some("x".into()))
            .unwrap_err()
            .contains("remove it"));
        for ok in [204, 400, 403, 404, 410, 429, 451, 503, 599] {
            assert!(FixedAnswer::new(ok, None).is_ok(), "{ok}");
        }
    }
}
