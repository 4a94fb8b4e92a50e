//! What of a request target may be logged. The path is kept. In the query, a parameter whose
//! name looks like a credential ([`is_secret`]: `access_token`, `api_key`, `password`,
//! `client_assertion`, `sig`, …) keeps its name and loses its value (`***`); a SCIM `filter`
//! is logged decoded with every literal value replaced — attribute names, operators and
//! `true`/`false`/`null` stay, so `filter=userName eq "bjensen"` is logged as
//! `filter=userName eq "***"`. Everything else is logged as sent.
//!
//! [`url`] masks a configured URL's credentials the same way, for `GET /config` and the log.

use std::borrow::Cow;

/// A request target as a log or the status page shows it: the path as sent, then `?` and the
/// query through [`query`].
pub fn target(path: &str, q: Option<&str>) -> String {
    let mut out = Vec::with_capacity(path.len() + q.map_or(0, |q| q.len() + 8));
    out.extend_from_slice(path.as_bytes());
    if let Some(q) = q {
        out.push(b'?');
        query(q.as_bytes(), &mut out);
    }
    // Both parts come from a parsed URI (ASCII), and a decoded filter is only shown with its
    // values masked, so a lossy conversion never hides anything worth seeing.
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends the redacted query (without the `?`) to `out`.
pub fn query(q: &[u8], out: &mut Vec<u8>) {
    for (i, param) in q.split(|b| *b == b'&').enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        let (name, value) = match param.iter().position(|b| *b == b'=') {
            Some(p) => (&param[..p], Some(&param[p + 1..])),
            None => (param, None),
        };
        out.extend_from_slice(name);
        let Some(value) = value else { continue };
        out.push(b'=');
        let mut decoded = Vec::new();
        let name = decode(name, &mut decoded);
        if is_secret(name) {
            out.extend_from_slice(b"***");
        } else if name.eq_ignore_ascii_case(b"filter") {
            let mut v = Vec::new();
            filter(decode(value, &mut v), out);
        } else {
            out.extend_from_slice(value);
        }
    }
}

/// Whether a parameter named `name` carries a credential, compared ASCII case-insensitively
/// in place (this runs for every query parameter of every logged request, so it must not
/// allocate). A name is secret when it is exactly `code` (an OAuth authorization code; only
/// exact, since `zipcode` or `country_code` are not secrets) or when it contains one of
/// `SECRET_PARTS` anywhere: providers spell the same credential `access_token`, `AccessToken`,
/// `X-Amz-Signature`, `client_assertion` or `private_key`, and a substring catches them all.
/// The price is masking a few harmless names (`keyword`, `author`, `bypass`); a masked value
/// costs a log reader a detail, a leaked one costs a credential.
pub fn is_secret(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"code")
        || SECRET_PARTS
            .iter()
            .any(|part| name.windows(part.len()).any(|w| w.eq_ignore_ascii_case(part)))
}

/// The lower-case fragments of [`is_secret`], each with the names it is there for.
const SECRET_PARTS: [&[u8]; 12] = [
    b"token",      // access_token, refresh_token, id_token, token
    b"secret",     // client_secret, secret
    b"pass",       // password, passwd, pass, passphrase
    b"pwd",        // pwd, db_pwd
    b"auth",       // authorization, auth, oauth_verifier
    b"key",        // key, api_key, apikey, x-api-key, private_key
    b"sig",        // sig, signature, x-amz-signature
    b"session",    // session, sessionid, session_token
    b"assertion",  // assertion, client_assertion (a signed JWT)
    b"jwt",        // jwt
    b"credential", // credential, credentials, x-amz-credential
    b"private",    // private, private_key
];

/// A URL (from the config, for `GET /config` or a log line) with its credentials replaced by
/// `mask`: the password of `scheme://user:pass@host`, or the whole user part when it has no
/// `:` (`https://TOKEN@host`), and the value of every query parameter whose name
/// [`is_secret`] — redis-rs also takes the password as `?pass=` or `?password=`, the only
/// way to give one to a `unix://`, `redis+unix://` or `valkey+unix://` URL. A string
/// without `://` is not a URL and comes back as is.
pub fn url<'a>(s: &'a str, mask: &str) -> Cow<'a, str> {
    let Some(scheme_end) = s.find("://").map(|i| i + 3) else {
        return Cow::Borrowed(s);
    };
    let authority_end = s[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(s.len(), |i| scheme_end + i);
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let rest = match s[scheme_end..authority_end].rfind('@').map(|i| scheme_end + i) {
        Some(at) => {
            out.push_str(&s[..scheme_end]);
            if let Some((user, _)) = s[scheme_end..at].split_once(':') {
                out.push_str(user);
                out.push(':');
            }
            out.push_str(mask);
            changed = true;
            &s[at..]
        }
        None => s,
    };
    // The query runs from the first `?` to the fragment; a `?` inside the fragment is not one.
    let (before_fragment, fragment) = rest.split_at(rest.find('#').unwrap_or(rest.len()));
    let (before_query, query) = match before_fragment.find('?') {
        Some(q) => before_fragment.split_at(q + 1),
        None => (before_fragment, ""),
    };
    out.push_str(before_query);
    for (i, param) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match param.split_once('=') {
            Some((name, _)) if is_secret(decode(name.as_bytes(), &mut Vec::new())) => {
                out.push_str(name);
                out.push('=');
                out.push_str(mask);
                changed = true;
            }
            _ => out.push_str(param),
        }
    }
    out.push_str(fragment);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

/// Percent-decodes (and `+` → space) into `buf` when needed; a bad escape stays as written.
fn decode<'a>(s: &'a [u8], buf: &'a mut Vec<u8>) -> &'a [u8] {
    if !s.iter().any(|b| *b == b'%' || *b == b'+') {
        return s;
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    buf.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => buf.push(b'%'),
            },
            b'+' => buf.push(b' '),
            b => buf.push(b),
        }
        i += 1;
    }
    buf
}

/// Writes a SCIM filter (RFC 7644 §3.4.2.2) with its comparison values replaced by `***`.
/// A quoted string is always a value; a bare word is one when it follows an operator
/// (`eq`, `gt`, …), except `true`, `false` and `null`.
pub fn filter(f: &[u8], out: &mut Vec<u8>) {
    const OPS: [&[u8]; 10] = [b"eq", b"ne", b"co", b"sw", b"ew", b"gt", b"ge", b"lt", b"le", b"pr"];
    let mut i = 0;
    let mut after_op = false;
    while i < f.len() {
        let b = f[i];
        if b == b'"' {
            // A string literal, escapes included, up to its closing quote (or the end).
            let mut j = i + 1;
            while j < f.len() && f[j] != b'"' {
                j += if f[j] == b'\\' { 2 } else { 1 };
            }
            out.extend_from_slice(b"\"***\"");
            i = j + 1;
            after_op = false;
            continue;
        }
        if b.is_ascii_whitespace() || matches!(b, b'(' | b')' | b'[' | b']') {
            out.push(b);
            i += 1;
            continue;
        }
        let start = i;
        while i < f.len() && !(f[i].is_ascii_whitespace() || matches!(f[i], b'(' | b')' | b'[' | b']' | b'"')) {
            i += 1;
        }
        let word = &f[start..i];
        let keyword = [&b"true"[..], b"false", b"null"]
            .iter()
            .any(|k| word.eq_ignore_ascii_case(k));
        if after_op && !keyword {
            out.extend_from_slice(b"***");
            after_op = false;
        } else {
            out.extend_from_slice(word);
            // `pr` takes no value.
            after_op = OPS[..9].iter().any(|o| word.eq_ignore_ascii_case(o));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> String {
        let mut out = Vec::new();
        query(s.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn filters_keep_their_shape_but_not_their_values() {
        assert_eq!(q("filter=userName%20eq%20%22bjensen%22"), r#"filter=userName eq "***""#);
        assert_eq!(
            q(r#"filter=userName+eq+"a\"b"+and+active+eq+true&count=5"#),
            r#"filter=userName eq "***" and active eq true&count=5"#
        );
        assert_eq!(
            q("filter=(meta.lastModified%20gt%202011-05-13T04:42:34Z)%20or%20emails%5Btype%20eq%20%22work%22%5D"),
            r#"filter=(meta.lastModified gt ***) or emails[type eq "***"]"#
        );
        assert_eq!(
            q("filter=title+pr+and+userType+eq+Employee"),
            "filter=title pr and userType eq ***"
        );
        assert_eq!(q("FILTER=x%20eq%2042"), "FILTER=x eq ***");
        assert_eq!(q("filter=x%20eq%20%22unterminated"), r#"filter=x eq "***""#);
    }

    #[test]
    fn secret_parameters_lose_their_values() {
        for name in [
            "access_token",
            "token",
            "api_key",
            "apikey",
            "key",
            "password",
            "secret",
            "sig",
            "signature",
            "Access_Token",
            "X-API-Key",
            "client_secret",
            "id_token",
            "refresh_token",
            "authorization",
            "Authorization",
            "auth",
            "jwt",
            "assertion",
            "client_assertion",
            "pass",
            "passwd",
            "pwd",
            "session",
            "SessionId",
            "code",
            "credential",
            "credentials",
            "X-Amz-Credential",
            "X-Amz-Signature",
            "private",
            "private_key",
            "passphrase",
        ] {
            assert_eq!(
                q(&format!("a=1&{name}=s3cr3t&b=2")),
                format!("a=1&{name}=***&b=2"),
                "{name}"
            );
        }
        assert_eq!(q("access%5Ftoken=s3cr3t"), "access%5Ftoken=***", "encoded names too");
        assert_eq!(
            q("count=10&startIndex=1&attributes=userName"),
            "count=10&startIndex=1&attributes=userName"
        );
        assert_eq!(q("flag&x="), "flag&x=");
    }

    #[test]
    fn scim_and_ordinary_parameters_are_not_secret() {
        for name in [
            "filter",
            "count",
            "startIndex",
            "attributes",
            "excludedAttributes",
            "sortBy",
            "sortOrder",
            "cursor",
            "zipcode",
            "country_code",
            "",
        ] {
            assert!(!is_secret(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn urls_lose_passwords_in_the_user_part_and_the_query() {
        for (given, shown) in [
            (
                "redis://default:pa%40ss@redis.internal:6379/0",
                "redis://default:***@redis.internal:6379/0",
            ),
            ("redis://:hunter2@127.0.0.1:6379", "redis://:***@127.0.0.1:6379"),
            ("https://TOKEN@example.com/x", "https://***@example.com/x"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "unix:///run/redis.sock?password=hunter2&db=0#x",
                "unix:///run/redis.sock?password=***&db=0#x",
            ),
            (
                "valkey+unix:///run/v.sock?Pass%77ord=hunter2",
                "valkey+unix:///run/v.sock?Pass%77ord=***",
            ),
            (
                "rediss://u:p@h:6380/?protocol=resp3&password=x",
                "rediss://u:***@h:6380/?protocol=resp3&password=***",
            ),
        ] {
            assert_eq!(url(given, "***"), shown, "{given}");
        }
        assert_eq!(
            url("https://h/p#x?token=t", "***"),
            "https://h/p#x?token=t",
            "a fragment is no query"
        );
        for plain in [
            "redis://redis.internal:6379/0?db=2",
            "unix:///run/redis.sock",
            "not a url ?password=x",
            "",
        ] {
            assert!(matches!(url(plain, "***"), Cow::Borrowed(p) if p == plain), "{plain}");
        }
    }

    #[test]
    fn decoding_tolerates_bad_escapes() {
        let mut buf = Vec::new();
        assert_eq!(decode(b"a%2", &mut buf), b"a%2");
        let mut buf = Vec::new();
        assert_eq!(decode(b"%zz%41+", &mut buf), b"%zzA ");
    }
}
