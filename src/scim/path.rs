//! Request-path handling that never allocates on the common path: split into segments, merge
//! `//`, resolve `.` and `..`, and compare segments with percent-decoding done on the fly.
//!
//! Segments stay in their original (encoded) form so the path forwarded upstream keeps the
//! client's encoding; `%2F` inside an id therefore never splits a segment.

use std::borrow::Cow;

/// A byte range into the (normalised) request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn of<'a>(&self, path: &'a str) -> &'a str {
        path.get(self.start as usize..self.end as usize).unwrap_or("")
    }
}

/// The path part of a request target (no query string, no fragment).
pub fn path_only(target: &str) -> &str {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    &target[..end]
}

/// True when the path needs rewriting before it can be matched and forwarded: empty or
/// repeated slashes, or `.`/`..` segments (also percent-encoded), which nginx also resolves.
pub fn needs_normalizing(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return true;
    }
    // Branch-free passes the compiler vectorises: a dot segment needs a `.` or a `%`, which
    // most SCIM paths (`/scim/v2/Users/<uuid>`) do not have; only those pay for the segment walk.
    let slashes = b
        .iter()
        .zip(&b[1..])
        .fold(false, |acc, (&x, &y)| acc | ((x == b'/') & (y == b'/')));
    if slashes {
        return true;
    }
    let maybe_dot = b.iter().fold(false, |acc, &c| acc | (c == b'.') | (c == b'%'));
    maybe_dot && segments(path).any(|s| is_dot(s.of(path)) || is_dotdot(s.of(path)))
}

fn is_dot(seg: &str) -> bool {
    seg == "." || seg.eq_ignore_ascii_case("%2e")
}

fn is_dotdot(seg: &str) -> bool {
    let dot = |s: &str| s == "." || s.eq_ignore_ascii_case("%2e");
    match seg.len() {
        2 => seg == "..",
        4 => {
            seg.get(..3).is_some_and(dot) && seg.get(3..).is_some_and(dot)
                || seg.get(..1).is_some_and(dot) && seg.get(1..).is_some_and(dot)
        }
        6 => seg.get(..3).is_some_and(dot) && seg.get(3..).is_some_and(dot),
        _ => false,
    }
}

/// True when `..` segments (also percent-encoded) climb above the root: nginx answers 400,
/// and so does the edge, rather than guessing which resource was meant.
pub fn escapes_root(path: &str) -> bool {
    let mut depth = 0usize;
    for s in path.split('/') {
        if is_dotdot(s) {
            let Some(d) = depth.checked_sub(1) else {
                return true;
            };
            depth = d;
        } else if !s.is_empty() && !is_dot(s) {
            depth += 1;
        }
    }
    false
}

/// Resolves `//`, `.` and `..` (RFC 3986 §5.2.4); `..` at the root stays at the root rather
/// than escaping it. A trailing slash is kept as the client sent it.
pub fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in path.split('/') {
        if s.is_empty() || is_dot(s) {
            continue;
        }
        if is_dotdot(s) {
            out.pop();
        } else {
            out.push(s);
        }
    }
    let mut joined = String::with_capacity(path.len());
    for s in &out {
        joined.push('/');
        joined.push_str(s);
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if joined.is_empty() || (path.ends_with('/') || is_dot(last) || is_dotdot(last)) {
        joined.push('/');
    }
    joined
}

/// Iterates the non-empty segments of a normalised path as spans.
pub fn segments(path: &str) -> impl Iterator<Item = Span> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let bytes = path.as_bytes();
        while pos < bytes.len() && bytes[pos] == b'/' {
            pos += 1;
        }
        if pos >= bytes.len() {
            return None;
        }
        let start = pos;
        while pos < bytes.len() && bytes[pos] != b'/' {
            pos += 1;
        }
        Some(Span {
            start: start as u32,
            end: pos as u32,
        })
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Iterates the decoded bytes of a percent-encoded segment; a malformed escape is kept literally.
fn decoded(seg: &str) -> impl Iterator<Item = u8> + '_ {
    let b = seg.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= b.len() {
            return None;
        }
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                i += 3;
                return Some(h << 4 | l);
            }
        }
        i += 1;
        Some(b[i - 1])
    })
}

/// Compares a raw segment with a literal, decoding `%XX` and ignoring ASCII case — SCIM
/// endpoint names are matched case-insensitively because clients differ (`/users` vs `/Users`).
pub fn seg_eq(seg: &str, literal: &str) -> bool {
    if !seg.contains('%') {
        return seg.eq_ignore_ascii_case(literal);
    }
    let mut a = decoded(seg);
    let mut b = literal.bytes();
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(&y) => {}
            _ => return false,
        }
    }
}

/// Compares a raw segment with a literal, decoding `%XX` but keeping case: base-path literals
/// match exactly, as nginx locations do, and an escape must not make `/%53cim` match `/scim`
/// when `/Scim` does not.
pub fn seg_eq_exact(seg: &str, literal: &str) -> bool {
    seg == literal || (seg.contains('%') && decoded(seg).eq(literal.bytes()))
}

/// Percent-decodes a segment for display or keying (ids, tenants). Borrowed when nothing to do.
pub fn decode(seg: &str) -> Cow<'_, str> {
    if !seg.contains('%') {
        return Cow::Borrowed(seg);
    }
    let bytes: Vec<u8> = decoded(seg).collect();
    match String::from_utf8(bytes) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<&str> {
        segments(p).map(|s| s.of(p)).collect()
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize("/scim//v2///Users"), "/scim/v2/Users");
        assert_eq!(normalize("/scim/v2/Groups/../Users"), "/scim/v2/Users");
        assert_eq!(normalize("/scim/v2/./Users/"), "/scim/v2/Users/");
        assert_eq!(normalize("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(normalize("/scim/v2/Users/%2e%2e/Groups"), "/scim/v2/Groups");
        assert_eq!(normalize("/scim/v2/Users/.."), "/scim/v2/");
        assert_eq!(normalize(""), "/");
        assert!(escapes_root("/../etc"));
        assert!(escapes_root("/scim/%2e%2e/%2E%2E/.."));
        assert!(!escapes_root("/scim/v2/Users/../Groups"));
        assert!(!escapes_root("/scim/./v2/..//x"));
        assert!(needs_normalizing("/a//b"));
        assert!(needs_normalizing("/a/./b"));
        assert!(needs_normalizing("/a/%2E%2E/b"));
        assert!(!needs_normalizing("/scim/v2/Users/abc..def"));
        assert!(!needs_normalizing("/scim/v2/Users/"));
        assert!(needs_normalizing(""));
        assert!(needs_normalizing("scim/v2"));
        assert!(needs_normalizing("/scim/v2/Users//"));
        assert!(needs_normalizing("/a/.."));
        assert!(needs_normalizing("/a/.%2e/b"));
        assert!(!needs_normalizing(
            "/scim/v2/Users/2819c223-7f76-453a-919d-413861904646"
        ));
        assert!(!needs_normalizing(
            "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"
        ));
        assert!(!needs_normalizing("/scim/v2/Users/a%20b"));
    }

    #[test]
    fn segments_and_decoding() {
        assert_eq!(segs("/scim/v2/Users/"), ["scim", "v2", "Users"]);
        assert_eq!(segs("/"), Vec::<&str>::new());
        assert!(seg_eq("%55sers", "Users"));
        assert!(seg_eq("users", "Users"));
        assert!(!seg_eq("User", "Users"));
        assert!(!seg_eq("Users%", "Users"));
        assert!(seg_eq_exact("sc%69m", "scim"));
        assert!(seg_eq_exact("scim", "scim"));
        // Found by tests/properties.rs: an escape once made the base path case-insensitive.
        assert!(!seg_eq_exact("Sc%69m", "scim"));
        assert!(!seg_eq_exact("%53cim", "scim"));
        assert!(!seg_eq_exact("scim%", "scim"));
        assert_eq!(decode("a%2Fb%20c"), "a/b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(path_only("/v2/Users?filter=userName%20eq%20%22a%22#x"), "/v2/Users");
    }
}
