//! The optional admin token (`admin.token_sha256`). Only its SHA-256 is configured; a
//! request's token is hashed and the digests compared in constant time, so neither the
//! comparison's duration nor the file gives the token away.

use openssl::sha::sha256;

/// The realm both challenges name; a browser shows it in its login prompt.
pub const CHALLENGES: [&str; 2] = ["Bearer realm=\"scimitar admin\"", "Basic realm=\"scimitar admin\""];

/// Whether a request with this `Authorization` header may use a protected path.
pub fn allowed(expected: Option<&[u8; 32]>, authorization: Option<&http::HeaderValue>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    match authorization.and_then(|v| presented(v.as_bytes())) {
        Some(token) => openssl::memcmp::eq(&sha256(&token), expected),
        None => false,
    }
}

/// The token of `Bearer <token>`, or the password of `Basic base64(user:token)`: a browser
/// sends the latter after its login prompt (it never prompts for Bearer), which is how the
/// status page and its `/status.json` refreshes work with a token set.
fn presented(header: &[u8]) -> Option<Vec<u8>> {
    let space = header.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = (&header[..space], header[space + 1..].trim_ascii());
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return Some(rest.to_vec());
    }
    if scheme.eq_ignore_ascii_case(b"basic") {
        let raw = openssl::base64::decode_block(std::str::from_utf8(rest).ok()?).ok()?;
        let colon = raw.iter().position(|&b| b == b':')?;
        return Some(raw[colon + 1..].to_vec());
    }
    None
}

/// `scimitar hash-token`: the hex SHA-256 that `admin.token_sha256` takes.
pub fn hash_hex(token: &[u8]) -> String {
    sha256(token).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn bearer_or_basic_password_must_hash_to_the_digest() {
        let d = sha256(b"s3cret");
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
    fn hash_hex_is_the_sha256_in_lower_case() {
        assert_eq!(
            hash_hex(b"test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
