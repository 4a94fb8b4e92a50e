//! Pure decisions the proxy glue asks for: may this request be retried, which status does an
//! error become, what key does consistent hashing use. No sockets, so all unit-tested.

use std::net::IpAddr;

use pingora::{ErrorSource, ErrorType};

use crate::scim::Operation;

/// After a connect failure nothing reached the upstream, so any method may go elsewhere.
pub fn retry_after_connect_failure(attempts: usize, retries: usize) -> bool {
    attempts <= retries
}

/// After the request may have reached the upstream, only replay-safe operations go again —
/// never a POST create, PATCH or Bulk (a replay creates duplicate users) — and only while
/// the whole body is still buffered.
pub fn retry_after_send(op: Operation, body_truncated: bool, attempts: usize, retries: usize) -> bool {
    op.replay_safe() && !body_truncated && attempts <= retries
}

/// Operations that change state on the server that takes them (and so pin affinity there).
pub fn is_write(op: Operation) -> bool {
    matches!(
        op,
        Operation::Create | Operation::Replace | Operation::Patch | Operation::Delete | Operation::Bulk
    )
}

/// Whether an upstream error says something about the server's health (and so counts toward
/// passive ejection). Errors caused by the client, or by the proxy's own filters, do not.
pub fn is_server_failure(etype: &ErrorType, source: &ErrorSource) -> bool {
    use ErrorType::*;
    *source == ErrorSource::Upstream
        && (is_connect_failure(etype)
            || matches!(
                etype,
                ReadTimedout
                    | WriteTimedout
                    | ReadError
                    | WriteError
                    | ConnectionClosed
                    | InvalidHTTPHeader
                    | H1Error
                    | H2Error
            ))
}

/// The connection to the upstream was never made: nothing of the request was sent.
fn is_connect_failure(etype: &ErrorType) -> bool {
    use ErrorType::*;
    matches!(
        etype,
        ConnectTimedout | ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure
    )
}

/// Whether a failed exchange may still have been applied by an upstream: a server was picked
/// and the failure came after the connection was made (a connect error means nothing was sent;
/// an HTTPStatus error is the proxy's own refusal).
pub fn may_have_reached_upstream(attempts: usize, etype: &ErrorType) -> bool {
    attempts > 0 && !is_connect_failure(etype) && !matches!(etype, ErrorType::HTTPStatus(_))
}

/// The status the client gets for a proxying error; 0 means the client is gone.
pub fn status_for(etype: &ErrorType, source: &ErrorSource) -> u16 {
    use ErrorType::*;
    match etype {
        HTTPStatus(code) => *code,
        ConnectTimedout | ReadTimedout | WriteTimedout if *source == ErrorSource::Upstream => 504,
        _ => match source {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match etype {
                // The body stopped arriving (`client.body_timeout`): nginx's 408.
                ReadTimedout => 408,
                WriteError | ReadError | ConnectionClosed | WriteTimedout => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// The client closed or reset its connection (on HTTP/2: its stream or the connection, which
/// Pingora reports as an `H2Error` per stream in flight): nobody is left to answer.
pub fn client_went_away(etype: &ErrorType, source: &ErrorSource) -> bool {
    *source == ErrorSource::Downstream
        && matches!(
            etype,
            ErrorType::ConnectionClosed
                | ErrorType::ReadError
                | ErrorType::WriteError
                | ErrorType::H2Error
                // A client that stopped reading (send_timeout) or sending (body_timeout), or
                // sent a broken chunked body: its answer and the access log say so already.
                | ErrorType::WriteTimedout
                | ErrorType::ReadTimedout
                | ErrorType::Custom("InvalidChunk" | "InvalidTrailerEnd")
        )
}

/// Whether a request header is an underscore spelling of a protected one (`X_Client_Cert` for
/// `x-client-cert`): CGI, WSGI, Rack and PHP servers read both as `HTTP_X_CLIENT_CERT`, so a
/// client could smuggle an identity past the exact-name removal.
pub fn underscore_alias(name: &str, protected: &[http::HeaderName]) -> bool {
    name.contains('_') && protected.iter().any(|p| same_for_cgi(name, p.as_str()))
}

/// Whether two header names are one to a server that reads headers by their CGI name
/// (`HTTP_` + upper case, `-` as `_`): case ignored, `_` and `-` alike.
pub fn same_for_cgi(a: &str, b: &str) -> bool {
    let fold = |c: u8| if c == b'_' { b'-' } else { c.to_ascii_lowercase() };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// Why the tenancy header `name` (lower case) does not name one tenant, if it does not: two
/// fields (WSGI, Rack and ASP.NET join them, so the upstream may act on another tenant than
/// the one checked), or another field under an underscore spelling (`X_Tenant`, which CGI and
/// PHP servers read as the same header). Only the refusal allocates.
pub fn ambiguous_tenant(headers: &http::HeaderMap, name: &str) -> Option<String> {
    if headers.get_all(name).iter().nth(1).is_some() {
        return Some(format!(
            "the tenancy header `{name}` is sent more than once; send it once, with one tenant"
        ));
    }
    let alias = headers
        .keys()
        .find(|k| k.as_str().contains('_') && same_for_cgi(k.as_str(), name))?;
    Some(format!(
        "`{alias}` is the tenancy header `{name}` to servers that read headers by their CGI name (WSGI, Rack, PHP); send the tenant in `{name}` only"
    ))
}

/// Whether a response status from the upstream counts as a server failure.
pub fn counts_as_failure(status: u16, count_5xx: bool) -> bool {
    count_5xx && matches!(status, 502..=504)
}

/// The `X-Forwarded-For` value: the client's hop appended to what it sent. Formatted on the
/// stack, so the header value is the only allocation.
pub fn forwarded_for(prev: Option<&[u8]>, ip: IpAddr) -> pingora::Result<http::HeaderValue> {
    let mut buf = [0u8; 45]; // longest textual IPv6
    let addr = ip_text(ip, &mut buf);
    let bad = |e| pingora::Error::because(ErrorType::InvalidHTTPHeader, "x-forwarded-for", e);
    match prev.filter(|p| !p.is_empty()) {
        None => http::HeaderValue::from_bytes(addr).map_err(bad),
        Some(p) => {
            let mut v = Vec::with_capacity(p.len() + 2 + addr.len());
            v.extend_from_slice(p);
            v.extend_from_slice(b", ");
            v.extend_from_slice(addr);
            http::HeaderValue::from_bytes(&v).map_err(bad)
        }
    }
}

/// An address as text, on the stack. IPv4 (nearly every client behind a load balancer) is
/// written by hand: `Display` through `fmt` costs ~1 k instructions per request.
pub fn ip_text(ip: IpAddr, buf: &mut [u8; 45]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if o >= 100 {
                    buf[n] = b'0' + o / 100;
                    n += 1;
                }
                if o >= 10 {
                    buf[n] = b'0' + (o / 10) % 10;
                    n += 1;
                }
                buf[n] = b'0' + o % 10;
                n += 1;
            }
            &buf[..n]
        }
        IpAddr::V6(_) => {
            use std::io::Write;
            let n = {
                let mut w = &mut buf[..];
                let _ = write!(w, "{ip}");
                45 - w.len()
            };
            &buf[..n]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underscore_spellings_of_protected_headers_are_caught() {
        let p = [http::HeaderName::from_static("x-client-cert")];
        assert!(underscore_alias("x_client_cert", &p));
        assert!(underscore_alias("x-client_cert", &p));
        assert!(
            !underscore_alias("x-client-cert", &p),
            "the exact name is removed elsewhere"
        );
        assert!(!underscore_alias("x_client_certs", &p));
        assert!(!underscore_alias("x_other_cert", &p));
        assert!(same_for_cgi("X_Forwarded_For", "x-forwarded-for"));
        assert!(same_for_cgi("x-tenant", "X-Tenant"));
        assert!(!same_for_cgi("x-tenant", "x-tenants"));
        assert!(!same_for_cgi("x.tenant", "x-tenant"));
    }
    #[test]
    fn a_tenancy_header_that_names_two_tenants_is_refused() {
        let map = |fields: &[(&'static str, &'static str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in fields {
                h.append(*k, http::HeaderValue::from_static(v));
            }
            h
        };
        let one = map(&[("x-tenant", "acme"), ("x-other_thing", "1")]);
        assert_eq!(ambiguous_tenant(&one, "x-tenant"), None);
        assert_eq!(ambiguous_tenant(&map(&[]), "x-tenant"), None, "absent is not ambiguous");
        let two = map(&[("x-tenant", "acme"), ("x-tenant", "globex")]);
        let why = ambiguous_tenant(&two, "x-tenant").unwrap();
        assert!(why.contains("`x-tenant` is sent more than once"), "{why}");
        let alias = map(&[("x-tenant", "acme"), ("x_tenant", "globex")]);
        let why = ambiguous_tenant(&alias, "x-tenant").unwrap();
        assert!(why.starts_with("`x_tenant` is the tenancy header `x-tenant`"), "{why}");
        let alone = map(&[("x_tenant", "globex")]);
        assert!(
            ambiguous_tenant(&alone, "x-tenant").is_some(),
            "an alias without the header too"
        );
    }

    use crate::scim::Operation as O;

    #[test]
    fn non_idempotent_operations_are_never_replayed() {
        for op in [O::Create, O::Patch, O::Bulk, O::Other] {
            assert!(!retry_after_send(op, false, 1, 5), "{op:?}");
        }
        for op in [O::List, O::Get, O::Search, O::Discovery, O::Replace, O::Delete] {
            assert!(retry_after_send(op, false, 1, 5), "{op:?}");
            assert!(!retry_after_send(op, true, 1, 5), "{op:?} with a truncated body buffer");
            assert!(!retry_after_send(op, false, 3, 2), "{op:?} past the retry budget");
        }
    }

    #[test]
    fn connect_failures_retry_within_budget() {
        assert!(retry_after_connect_failure(1, 2));
        assert!(retry_after_connect_failure(2, 2));
        assert!(!retry_after_connect_failure(3, 2));
        assert!(!retry_after_connect_failure(1, 0));
    }

    #[test]
    fn error_statuses() {
        use ErrorSource::*;
        use ErrorType::*;
        assert_eq!(status_for(&ConnectRefused, &Upstream), 502);
        assert_eq!(status_for(&ConnectTimedout, &Upstream), 504);
        assert_eq!(status_for(&ReadTimedout, &Upstream), 504);
        assert_eq!(status_for(&ReadTimedout, &Downstream), 408, "a client's body stalled");
        assert_eq!(
            status_for(&WriteTimedout, &Downstream),
            0,
            "a client that stopped reading is gone"
        );
        assert_eq!(status_for(&ConnectionClosed, &Upstream), 502);
        assert_eq!(status_for(&HTTPStatus(413), &Internal), 413);
        assert_eq!(status_for(&ConnectionClosed, &Downstream), 0);
        assert_eq!(status_for(&InvalidHTTPHeader, &Downstream), 400);
        assert_eq!(status_for(&InternalError, &Internal), 500);
    }

    #[test]
    fn only_upstream_transport_errors_count_against_a_server() {
        assert!(is_server_failure(&ErrorType::ConnectRefused, &ErrorSource::Upstream));
        assert!(is_server_failure(&ErrorType::ReadTimedout, &ErrorSource::Upstream));
        assert!(!is_server_failure(&ErrorType::ReadError, &ErrorSource::Downstream));
        assert!(!is_server_failure(&ErrorType::HTTPStatus(404), &ErrorSource::Upstream));
        assert!(!counts_as_failure(404, true), "a 4xx never counts");
        assert!(!counts_as_failure(500, true));
        assert!(counts_as_failure(503, true));
        assert!(!counts_as_failure(503, false));
        assert!(client_went_away(&ErrorType::ConnectionClosed, &ErrorSource::Downstream));
        assert!(!client_went_away(&ErrorType::ConnectionClosed, &ErrorSource::Upstream));
        assert!(client_went_away(&ErrorType::H2Error, &ErrorSource::Downstream));
        assert!(client_went_away(
            &ErrorType::Custom("InvalidChunk"),
            &ErrorSource::Downstream
        ));
        assert!(!client_went_away(&ErrorType::ReadTimedout, &ErrorSource::Upstream));
        assert!(!client_went_away(&ErrorType::H2Error, &ErrorSource::Upstream));
    }

    #[test]
    fn only_failures_after_connecting_may_have_reached_the_upstream() {
        assert!(may_have_reached_upstream(1, &ErrorType::ReadTimedout));
        assert!(may_have_reached_upstream(2, &ErrorType::ConnectionClosed));
        assert!(!may_have_reached_upstream(1, &ErrorType::ConnectRefused));
        assert!(!may_have_reached_upstream(1, &ErrorType::HTTPStatus(503)));
        assert!(
            !may_have_reached_upstream(0, &ErrorType::ReadError),
            "no server was picked"
        );
    }

    #[test]
    fn forwarded_for_appends_the_hop() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let v6: IpAddr = "2001:db8:85a3:8d3:1319:8a2e:370:7348".parse().unwrap();
        assert_eq!(forwarded_for(None, v4).unwrap(), "10.1.2.3");
        for text in [
            "0.0.0.0",
            "255.255.255.255",
            "127.0.0.1",
            "100.20.3.199",
            "9.99.100.250",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(forwarded_for(None, ip).unwrap(), text);
        }
        assert_eq!(forwarded_for(None, "::1".parse().unwrap()).unwrap(), "::1");
        assert_eq!(forwarded_for(Some(b"1.1.1.1"), v4).unwrap(), "1.1.1.1, 10.1.2.3");
        assert_eq!(
            forwarded_for(Some(b""), v6).unwrap(),
            "2001:db8:85a3:8d3:1319:8a2e:370:7348"
        );
    }
}
