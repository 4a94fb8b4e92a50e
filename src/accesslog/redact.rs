//! What of a request target may be logged. The path is kept. In the query, a parameter whose
//! name looks like a credential (`access_token`, `api_key`, `password`, `sig`, …) keeps its
//! name and loses its value (`***`); a SCIM `filter` is logged decoded with every literal
//! value replaced — attribute names, operators and `true`/`false`/`null` stay, so
//! `filter=userName eq "bjensen"` is logged as `filter=userName eq "***"`. Everything else is
//! logged as sent.

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

/// Names that carry credentials (case-insensitive): the usual token, key, password and
/// signature parameters, and anything ending in one of them (`client_secret`, `x-api-key`).
pub fn is_secret(name: &[u8]) -> bool {
    const EXACT: [&[u8]; 5] = [b"key", b"sig", b"code", b"auth", b"signature"];
    const WITHIN: [&[u8]; 6] = [b"token", b"secret", b"password", b"passwd", b"apikey", b"credential"];
    const ENDS: [&[u8]; 4] = [b"_key", b"-key", b"_sig", b"signature"];
    let lower: Vec<u8> = name.to_ascii_lowercase();
    EXACT.contains(&lower.as_slice())
        || WITHIN.iter().any(|w| lower.windows(w.len()).any(|x| x == *w))
        || ENDS.iter().any(|e| lower.ends_with(e))
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
    fn decoding_tolerates_bad_escapes() {
        let mut buf = Vec::new();
        assert_eq!(decode(b"a%2", &mut buf), b"a%2");
        let mut buf = Vec::new();
        assert_eq!(decode(b"%zz%41+", &mut buf), b"%zzA ");
    }
}
