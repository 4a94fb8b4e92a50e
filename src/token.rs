//! Bearer tokens known only by their SHA-256: the admin token (`admin.token_sha256`) and the
//! routes' edge credentials (`auth.tokens[].sha256`). The config holds digests, never tokens;
//! a presented token is hashed and the digests compared in constant time.

use openssl::sha::Sha256;

/// A token's SHA-256.
pub type Digest = [u8; 32];

/// The SHA-256 of a presented token, on every request of a route with `auth`.
///
/// Through `SHA256_Init/Update/Final` rather than the one-shot `SHA256()`: in OpenSSL 3 the
/// one-shot goes through `EVP_Q_digest`, which fetches the algorithm from the provider on every
/// call — 4.7 k instructions per request, 2.8 k of them the fetch (callgrind,
/// `make bench-instructions`' auth row).
pub fn digest(token: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update(token);
    h.finish()
}

/// Whether two digests are equal, in time that does not depend on where they differ
/// (OpenSSL's `CRYPTO_memcmp`), so a caller cannot find a digest byte by byte.
pub fn same(a: &Digest, b: &Digest) -> bool {
    openssl::memcmp::eq(a, b)
}

/// The token of an `Authorization: Bearer <token>` value (scheme in any case, RFC 9110 §11.1;
/// surrounding blanks ignored), or `None` for another scheme or an empty token.
pub fn bearer(header: &[u8]) -> Option<&[u8]> {
    let space = header.iter().position(|&b| b == b' ')?;
    if !header[..space].eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = header[space + 1..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// `scimitar hash-token`: the digest as the config takes it, lower-case hex.
pub fn hash_hex(token: &[u8]) -> String {
    digest(token).iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a configured digest: 64 hex digits, either case. The error says what is wrong
/// without repeating the value (a token pasted where its digest belongs must not reach a log).
pub fn parse_hex(s: &str) -> Result<Digest, String> {
    let s = s.trim();
    let want =
        "expected the token's SHA-256 as 64 hex digits; make it with `scimitar hash-token` (reads the token on stdin)";
    let hex = s.as_bytes();
    if hex.len() != 64 {
        return Err(format!("{want}; this value has {} characters", s.chars().count()));
    }
    let digit = |at: usize| {
        hex.get(at)
            .and_then(|&c| (c as char).to_digit(16))
            .ok_or_else(|| format!("{want}; character {} is not a hex digit", at + 1))
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (digit(2 * i)? * 16 + digit(2 * i + 1)?) as u8;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn hash_hex_is_the_sha256_in_lower_case() {
        assert_eq!(hash_hex(b"test"), TEST);
        assert_eq!(parse_hex(TEST), Ok(digest(b"test")));
        assert_eq!(parse_hex(&TEST.to_ascii_uppercase()), Ok(digest(b"test")));
    }

    #[test]
    fn bad_digests_are_explained_without_their_value() {
        let short = parse_hex("s3cret-token").unwrap_err();
        assert!(
            short.contains("64 hex digits") && short.contains("12 characters"),
            "{short}"
        );
        assert!(short.contains("scimitar hash-token"));
        assert!(!short.contains("s3cret"), "{short}");
        let bad = format!("{}g{}", &TEST[..10], &TEST[11..]);
        let e = parse_hex(&bad).unwrap_err();
        assert!(e.contains("character 11 is not a hex digit"), "{e}");
        assert!(parse_hex(&format!("{}+", &TEST[..63]))
            .unwrap_err()
            .contains("character 64"));
    }

    #[test]
    fn digests_are_compared_whole() {
        let d = digest(b"s3cret");
        assert!(same(&d, &digest(b"s3cret")));
        for i in [0, 15, 31] {
            let mut other = d;
            other[i] ^= 1;
            assert!(!same(&d, &other), "a difference at byte {i}");
        }
    }

    #[test]
    fn bearer_takes_the_scheme_in_any_case() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bEaReR   abc  "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearer   "), None);
        assert_eq!(bearer(b"Basic YWJj"), None);
        assert_eq!(bearer(b"Bearerabc"), None);
        assert_eq!(bearer(b"Token abc"), None);
        assert_eq!(bearer(b""), None);
    }
}
