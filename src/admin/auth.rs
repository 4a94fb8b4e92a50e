//! The optional admin token (`admin.token_sha256`). Only its SHA-256 is configured; a
//! request's token is hashed and the digests compared in constant time ([`crate::token`]), so
//! neither the comparison's duration nor the file gives the token away.

use crate::token;

/// The realm both challenges name; a browser shows it in its login prompt.
pub const CHALLENGES: [&str; 2] = ["Bearer realm=\"scimitar admin\"", "Basic realm=\"scimitar admin\""];

/// Whether a request with this `Authorization` header may use a protected path.
pub fn allowed(expected: Option<&[u8; 32]>, authorization: Option<&http::HeaderValue>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    match authorization.and_then(|v| presented(v.as_bytes())) {
        Some(t) => token::same(&token::digest(&t), expected),
        None => false,
    }
}

/// The token of `Bearer <token>`, or the password of `Basic base64(user:token)`: a browser
/// sends the latter after its login prompt (it never prompts for Bearer), which is how the
/// status page and its `/status.json` refreshes work with a token set.
fn presented(header: &[u8]) -> Option<Vec<u8>> {
    if let Some(t) = token::bearer(header) {
        return Some(t.to_vec());
    }
    let space = header.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = (&header[..space], header[space + 1..].trim_ascii());
    if scheme.eq_ignore_ascii_case(b"basic") {
        let raw = openssl::base64::decode_block(std::str::from_utf8(rest).ok()?).ok()?;
        let colon = raw.iter().position(|&b| b == b':')?;
        return Some(raw[colon + 1..].to_vec());
    }
    None
}

/// Why a POST must be refused as cross-site, or `None` when it may go on. The 401 offers
/// Basic, so a browser that was given the token once attaches it to every later request to
/// this address — a form on another site posting to `/reload` included. Browsers say where a
/// request comes from: `Sec-Fetch-Site` (anything but `same-origin`, or `none` for one the
/// user typed, is another site's doing) and `Origin` (whose host and port must be this
/// request's `Host`). Tools like curl send neither, and pass.
pub fn cross_site(headers: &http::HeaderMap) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.as_bytes();
        if !site.eq_ignore_ascii_case(b"same-origin") && !site.eq_ignore_ascii_case(b"none") {
            return Some("Sec-Fetch-Site is not same-origin");
        }
    }
    let origin = headers.get(http::header::ORIGIN)?;
    let host = headers.get(http::header::HOST).map(|h| h.as_bytes());
    match host {
        Some(host) if same_authority(origin.as_bytes(), host) => None,
        _ => Some("Origin is not this admin address"),
    }
}

/// Whether `origin` (`scheme://host[:port]`, or `null`) names `host` (`host[:port]`, the
/// `Host` header), a missing port being the scheme's default on either side.
fn same_authority(origin: &[u8], host: &[u8]) -> bool {
    let Some(sep) = origin.windows(3).position(|w| w == b"://") else {
        return false;
    };
    let (scheme, authority) = (&origin[..sep], &origin[sep + 3..]);
    let default: &[u8] = if scheme.eq_ignore_ascii_case(b"https") {
        b"443"
    } else {
        b"80"
    };
    let (oh, op) = host_port(authority, default);
    let (hh, hp) = host_port(host.trim_ascii(), default);
    oh.eq_ignore_ascii_case(hh) && op == hp
}

/// Splits `host[:port]` (a bracketed IPv6 literal's colons are not the port's).
fn host_port<'a>(authority: &'a [u8], default: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    match authority.iter().rposition(|&b| b == b':') {
        Some(c) if !authority[c..].contains(&b']') => (&authority[..c], &authority[c + 1..]),
        _ => (authority, default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn bearer_or_basic_password_must_hash_to_the_digest() {
        let d = crate::token::digest(b"s3cret");
        assert!(allowed(None, None), "no token configured: open");
        assert!(!allowed(Some(&d), None));
        assert!(allowed(Some(&d), Some(&header("Bearer s3cret"))));
        assert!(allowed(Some(&d), Some(&header("bearer  s3cret "))));
        assert!(!allowed(Some(&d), Some(&header("Bearer s3cre"))));
        assert!(!allowed(Some(&d), Some(&header("Bearer"))));
        // "admin:s3cret" and ":s3cret"; the user name is not checked.
        assert!(allowed(Some(&d), Some(&header("Basic YWRtaW46czNjcmV0"))));
        assert!(allowed(Some(&d), Some(&header("Basic OnMzY3JldA=="))));
        assert!(
            !allowed(Some(&d), Some(&header("Basic czNjcmV0"))),
            "no colon: no password"
        );
        assert!(!allowed(Some(&d), Some(&header("Basic !!!"))));
        assert!(!allowed(Some(&d), Some(&header("Token s3cret"))));
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = http::HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, header(v));
            }
            cross_site(&m)
        };
        assert_eq!(h(&[("host", "127.0.0.1:9090")]), None, "curl sends neither");
        assert_eq!(h(&[("sec-fetch-site", "same-origin")]), None);
        assert_eq!(h(&[("sec-fetch-site", "None")]), None, "typed by the user");
        for site in ["cross-site", "same-site", ""] {
            assert!(h(&[("sec-fetch-site", site)]).is_some(), "{site}");
        }
        let with_origin = |origin, host| h(&[("origin", origin), ("host", host)]);
        assert_eq!(with_origin("http://127.0.0.1:9090", "127.0.0.1:9090"), None);
        assert_eq!(with_origin("http://Admin.example", "admin.example:80"), None);
        assert_eq!(with_origin("https://admin.example", "admin.example:443"), None);
        // A TLS-terminating proxy in front of the (plaintext) listener keeps Host's port off.
        assert_eq!(with_origin("https://admin.example", "admin.example"), None);
        assert_eq!(with_origin("http://[::1]:9090", "[::1]:9090"), None);
        for (origin, host) in [
            ("http://evil.example", "127.0.0.1:9090"),
            ("http://127.0.0.1:9091", "127.0.0.1:9090"),
            ("https://admin.example", "admin.example:80"),
            ("http://[::1]", "[::1]:9090"),
            ("null", "127.0.0.1:9090"),
        ] {
            assert!(with_origin(origin, host).is_some(), "{origin} vs {host}");
        }
        assert!(
            h(&[("origin", "http://127.0.0.1:9090")]).is_some(),
            "no Host to compare with"
        );
        assert!(
            h(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "http://evil.example"),
                ("host", "a:1")
            ])
            .is_some(),
            "both must agree"
        );
    }
}
