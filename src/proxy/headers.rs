//! Adding the proxy's headers cheaply.
//!
//! Pingora's `insert_header` re-parses the name and grows a case-preserving name map beside
//! the value map, which it sized to exactly the parsed headers: ~1.6 k instructions per header
//! (callgrind, benches/README.md), and every forwarded request gets four or five. Here the
//! header is taken apart into plain `http` parts, capacity is reserved once, typed names are
//! inserted, and it is put back together. The price is the case map: names go out in canonical
//! case (Title-Case for standard names, lower case otherwise), as from Envoy or any HTTP/2 hop —
//! HTTP header names are case-insensitive. Headers the parts cannot carry (an absolute-form or
//! non-UTF-8 request target, HTTP/2 END_STREAM state, a custom reason phrase) take the slow path.

use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::Result;

use crate::header_rules::{RuleSet, Vars};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
/// The request headers the proxy writes itself on every forwarded request.
pub const PROXY_WRITTEN: [HeaderName; 4] = [X_FORWARDED_FOR, X_FORWARDED_PROTO, X_FORWARDED_HOST, X_REQUEST_ID];

/// Up to eight headers to set, collected on the stack (a request sets at most six today:
/// X-Forwarded-For/-Proto/-Host, X-Request-Id, Host, the client certificate).
/// Passed by `&mut`: it is ~600 bytes, and each by-value hop through the glue was a copy
/// (callgrind: ~300 instructions per direction once the header rules added a layer).
#[derive(Default)]
pub struct Additions {
    items: [Option<(HeaderName, HeaderValue)>; 8],
    len: usize,
}

impl Additions {
    pub fn set(&mut self, name: HeaderName, value: HeaderValue) {
        debug_assert!(self.len < self.items.len(), "Additions is full; raise its capacity");
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = Some((name, value));
            self.len += 1;
        }
    }

    fn drain(&mut self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        self.items.iter_mut().take(self.len).filter_map(Option::take)
    }
}

/// Sets (replacing) each header on a request about to go upstream.
pub fn apply_to_request(up: &mut RequestHeader, add: &mut Additions) -> Result<()> {
    apply_to_request_with(up, add, None)
}

/// [`apply_to_request`], then a route's request rules (in the same pass over the header).
pub fn apply_to_request_with(up: &mut RequestHeader, add: &mut Additions, rules: Rules<'_>) -> Result<()> {
    let plain = up.send_end_stream().is_none()
        && up
            .uri
            .path_and_query()
            .is_some_and(|pq| pq.as_str().as_bytes() == up.raw_path());
    if !plain {
        for (n, v) in add.drain() {
            up.insert_header(n, v)?;
        }
        return match rules {
            Some((r, vars)) => r.apply(up, vars),
            None => Ok(()),
        };
    }
    let blank = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts: http::request::Parts = std::mem::replace(up, blank).into();
    let done = edit(&mut parts.headers, add, rules);
    *up = RequestHeader::from(parts);
    done
}

/// Sets (replacing) each header on a response about to go downstream.
pub fn apply_to_response(resp: &mut ResponseHeader, add: &mut Additions) -> Result<()> {
    apply_to_response_with(resp, add, None)
}

/// [`apply_to_response`], then a route's response rules (in the same pass over the header).
pub fn apply_to_response_with(resp: &mut ResponseHeader, add: &mut Additions, rules: Rules<'_>) -> Result<()> {
    if resp.get_reason_phrase() != resp.status.canonical_reason() {
        for (n, v) in add.drain() {
            resp.insert_header(n, v)?;
        }
        return match rules {
            Some((r, vars)) => r.apply(resp, vars),
            None => Ok(()),
        };
    }
    let blank = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts: http::response::Parts = std::mem::replace(resp, blank).into();
    let done = edit(&mut parts.headers, add, rules);
    *resp = ResponseHeader::from(parts);
    done
}

/// A route's rules for this direction and the request's variables, when it has any.
pub type Rules<'a> = Option<(&'a RuleSet, &'a Vars<'a>)>;

fn edit(headers: &mut http::HeaderMap, add: &mut Additions, rules: Rules<'_>) -> Result<()> {
    headers.reserve(add.len + rules.map_or(0, |(r, _)| r.len_hint()));
    for (n, v) in add.drain() {
        headers.insert(n, v);
    }
    match rules {
        Some((r, vars)) => r.apply(headers, vars),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire_req(h: &RequestHeader) -> String {
        let mut b = bytes::BytesMut::new();
        h.header_to_h1_wire(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    }

    #[test]
    fn request_headers_are_replaced_and_the_target_kept() {
        let mut up = RequestHeader::build("GET", b"/scim/v2/Users?filter=a%20eq%20b", None).expect("req");
        up.insert_header("Content-Type", "application/scim+json").expect("ct");
        up.insert_header("X-Forwarded-For", "10.0.0.1").expect("xff");
        let mut add = Additions::default();
        add.set(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1, 127.0.0.1"));
        add.set(X_REQUEST_ID, HeaderValue::from_static("abc"));
        apply_to_request(&mut up, &mut add).expect("apply");
        assert_eq!(up.raw_path(), b"/scim/v2/Users?filter=a%20eq%20b");
        assert_eq!(up.method, http::Method::GET);
        let wire = wire_req(&up);
        assert!(wire.contains("Content-Type: application/scim+json\r\n"), "{wire}");
        assert!(wire.contains("x-forwarded-for: 10.0.0.1, 127.0.0.1\r\n"), "{wire}");
        assert_eq!(
            up.headers.get_all("x-forwarded-for").iter().count(),
            1,
            "replaced, not appended"
        );
        assert_eq!(up.headers.get("x-request-id").map(|v| v.as_bytes()), Some(&b"abc"[..]));
    }

    #[test]
    fn absolute_form_targets_keep_their_bytes() {
        let mut up = RequestHeader::build("GET", b"http://scim.example/scim/v2/Users", None).expect("req");
        let raw = up.raw_path().to_vec();
        let mut add = Additions::default();
        add.set(X_REQUEST_ID, HeaderValue::from_static("abc"));
        apply_to_request(&mut up, &mut add).expect("apply");
        assert_eq!(up.raw_path(), &raw[..]);
        assert!(up.headers.contains_key("x-request-id"));
    }

    #[test]
    fn response_status_version_and_custom_reasons_survive() {
        let mut r = ResponseHeader::build(201, None).expect("resp");
        r.set_version(http::Version::HTTP_10);
        r.insert_header("Location", "/v2/Users/1").expect("loc");
        let mut add = Additions::default();
        add.set(X_REQUEST_ID, HeaderValue::from_static("abc"));
        add.set(RATELIMIT, HeaderValue::from_static("\"p\";r=1;t=1"));
        apply_to_response(&mut r, &mut add).expect("apply");
        assert_eq!(r.status.as_u16(), 201);
        assert_eq!(r.version, http::Version::HTTP_10);
        assert_eq!(
            r.headers.get("location").map(|v| v.as_bytes()),
            Some(&b"/v2/Users/1"[..])
        );
        assert!(r.headers.contains_key("ratelimit") && r.headers.contains_key("x-request-id"));

        let mut custom = ResponseHeader::build(200, None).expect("resp");
        custom.set_reason_phrase(Some("Fine")).expect("reason");
        let mut add = Additions::default();
        add.set(X_REQUEST_ID, HeaderValue::from_static("abc"));
        apply_to_response(&mut custom, &mut add).expect("apply");
        assert_eq!(custom.get_reason_phrase(), Some("Fine"));
        assert!(custom.headers.contains_key("x-request-id"));
    }
}
