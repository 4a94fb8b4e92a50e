//! nginx's inheritance, its units, and the small readers every part of the translation uses.
//!
//! nginx merges settings down http → server → location (→ nested location). Two rules matter:
//! a single-valued directive (`client_max_body_size`, `proxy_read_timeout`) comes from the
//! innermost level that has it; an array directive (`proxy_set_header`, `add_header`,
//! `proxy_hide_header`, `limit_req`, `proxy_cache_valid`) comes whole from the innermost level
//! that has *any* of it — one `proxy_set_header` in a location drops every one of the server's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::nginx::Directive;

/// The blocks around a location, outermost (`http`) first, the location itself last.
#[derive(Debug, Clone)]
pub struct Chain<'a>(pub Vec<&'a Directive>);

/// `level`'s direct children named `name` (not tied to `name`'s lifetime, unlike `find`).
fn named<'a, 'n>(level: &'a Directive, name: &'n str) -> impl Iterator<Item = &'a Directive> + use<'a, 'n> {
    level.children().iter().filter(move |d| d.name == name)
}

impl<'a> Chain<'a> {
    /// The effective single-valued `name`: the innermost level's (its last, as nginx keeps).
    pub fn scalar(&self, name: &str) -> Option<&'a Directive> {
        self.0.iter().rev().find_map(|level| named(level, name).last())
    }

    /// The effective array `name`: every one of the innermost level that has any.
    pub fn array(&self, name: &str) -> Vec<&'a Directive> {
        for level in self.0.iter().rev() {
            let here: Vec<&'a Directive> = named(level, name).collect();
            if !here.is_empty() {
                return here;
            }
        }
        Vec::new()
    }

    /// Every occurrence of `name` on every level, outermost first (for directives whose
    /// unused copies must still be accounted for).
    pub fn all(&self, name: &str) -> Vec<&'a Directive> {
        self.0.iter().flat_map(|level| named(level, name)).collect()
    }

    pub fn with(&self, inner: &'a Directive) -> Chain<'a> {
        let mut c = self.0.clone();
        c.push(inner);
        Chain(c)
    }

    pub fn innermost(&self) -> Option<&'a Directive> {
        self.0.last().copied()
    }
}

/// nginx time: `30s`, `500ms`, `1m` (a minute), `1h30m`, a bare number of seconds; also `d`,
/// `w`, `M` (30 days), `y`.
pub fn time(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (ms_per, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            let unit = rest.chars().next();
            let per = match unit {
                Some('s') => 1_000,
                Some('m') => 60_000,
                Some('h') => 3_600_000,
                Some('d') => 86_400_000,
                Some('w') => 7 * 86_400_000,
                Some('M') => 30 * 86_400_000,
                Some('y') => 365 * 86_400_000,
                _ => return None,
            };
            (per, 1)
        };
        total_ms = total_ms.checked_add(n.checked_mul(ms_per)?)?;
        rest = &rest[len..];
    }
    Some(Duration::from_millis(total_ms))
}

/// A duration scimitar's config accepts: more than zero, at most a year.
pub fn bounded(d: Duration) -> Option<Duration> {
    (!d.is_zero() && d <= Duration::from_secs(365 * 86_400)).then_some(d)
}

/// nginx size: `512`, `8k`, `1m`, `1g` (powers of 1024, either case).
pub fn size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// A duration as scimitar writes it (`250ms`, `30s`, `2m`).
pub fn fmt_time(d: Duration) -> String {
    crate::config::units::fmt_duration(d)
}

/// A size as scimitar writes it (`4MiB`, `512KiB`, `100`).
pub fn fmt_size(n: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if n != 0 && n % (1u64 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// `path` made absolute against nginx's prefix (the main file's directory), as nginx resolves
/// `ssl_certificate` and log paths.
/// `..` and `.` are folded away (lexically: `conf.d/../certs` is `certs`).
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    use std::path::Component;
    let joined = base.join(path);
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `key=value` arguments of a directive (`zone=idp`, `burst=20`).
pub fn param<'a>(d: &'a Directive, key: &str) -> Option<&'a str> {
    d.args
        .iter()
        .find_map(|a| a.text.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Whether a flag argument (`nodelay`, `always`, `ssl`) is present.
pub fn flag(d: &Directive, word: &str) -> bool {
    d.args.iter().any(|a| a.text == word)
}

/// A piece of an nginx value: literal text, or a variable (`$host`, `${host}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'t> {
    Text(&'t str),
    /// `closed` is false for a `${name` that never closes.
    Var {
        name: &'t str,
        closed: bool,
    },
}

/// Splits a value at its variables; a `$` not followed by a name is text.
pub fn parts(text: &str) -> Vec<Part<'_>> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let (mut i, mut lit) = (0, 0);
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        let braced = b.get(i + 1) == Some(&b'{');
        let start = if braced { i + 2 } else { i + 1 };
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        if end == start {
            i += 1;
            continue;
        }
        if lit < i {
            out.push(Part::Text(&text[lit..i]));
        }
        let closed = !braced || b.get(end) == Some(&b'}');
        out.push(Part::Var {
            name: &text[start..end],
            closed,
        });
        i = if braced && closed { end + 1 } else { end };
        lit = i;
    }
    if lit < b.len() {
        out.push(Part::Text(&text[lit..]));
    }
    out
}

/// The variables an argument reads, in order: `$host`, `${tenant}` → `host`, `tenant`.
pub fn variables(text: &str) -> Vec<&str> {
    parts(text)
        .into_iter()
        .filter_map(|p| match p {
            Part::Var { name, .. } => Some(name),
            Part::Text(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nginx::parse_str;

    #[test]
    fn nginx_units_read_as_nginx_reads_them() {
        assert_eq!(time("60"), Some(Duration::from_secs(60)));
        assert_eq!(time("30s"), Some(Duration::from_secs(30)));
        assert_eq!(time("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(time("1m"), Some(Duration::from_secs(60)));
        assert_eq!(time("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(time("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(time("5x"), None);
        assert_eq!(time(""), None);
        assert_eq!(size("4m"), Some(4 << 20));
        assert_eq!(size("8K"), Some(8 << 10));
        assert_eq!(size("1g"), Some(1 << 30));
        assert_eq!(size("1000"), Some(1000));
        assert_eq!(size("1t"), None);
        assert_eq!(fmt_size(4 << 20), "4MiB");
        assert_eq!(fmt_size(1500), "1500");
        assert_eq!(fmt_size(0), "0");
        assert_eq!(fmt_time(Duration::from_secs(90)), "90s");
        assert_eq!(fmt_time(Duration::from_secs(3600)), "60m");
        assert_eq!(
            resolve(Path::new("/etc/nginx/x"), "../certs/a.crt"),
            PathBuf::from("/etc/nginx/certs/a.crt")
        );
        assert_eq!(
            resolve(Path::new("/etc/nginx"), "/abs/./a.crt"),
            PathBuf::from("/abs/a.crt")
        );
    }

    #[test]
    fn variables_are_found_plain_and_braced() {
        assert_eq!(variables("$binary_remote_addr"), ["binary_remote_addr"]);
        assert_eq!(variables("${tenant}-x$host"), ["tenant", "host"]);
        assert_eq!(variables("a $ b"), Vec::<&str>::new());
        assert_eq!(variables("max-age=1"), Vec::<&str>::new());
        assert_eq!(
            parts("a${b}c$d"),
            [
                Part::Text("a"),
                Part::Var {
                    name: "b",
                    closed: true
                },
                Part::Text("c"),
                Part::Var {
                    name: "d",
                    closed: true
                }
            ]
        );
        assert_eq!(
            parts("${b"),
            [Part::Var {
                name: "b",
                closed: false
            }]
        );
    }

    #[test]
    fn single_values_come_from_the_innermost_level_and_arrays_whole_from_one_level() {
        let top = parse_str(
            "http { client_max_body_size 2m; proxy_set_header A 1; proxy_set_header B 2;
               server { location / { client_max_body_size 4m; proxy_set_header C 3; }
                        location /x { } } }",
            "n.conf",
        )
        .unwrap();
        let http = &top[0];
        let server = http.find("server").next().unwrap();
        let mut locs = server.find("location");
        let (a, b) = (locs.next().unwrap(), locs.next().unwrap());
        let ca = Chain(vec![http, server, a]);
        let cb = Chain(vec![http, server, b]);
        assert_eq!(ca.scalar("client_max_body_size").and_then(|d| d.arg(0)), Some("4m"));
        assert_eq!(cb.scalar("client_max_body_size").and_then(|d| d.arg(0)), Some("2m"));
        let names = |c: &Chain| -> Vec<String> {
            c.array("proxy_set_header")
                .iter()
                .map(|d| d.args[0].text.clone())
                .collect()
        };
        assert_eq!(names(&ca), ["C"], "a level with any replaces all of the parent's");
        assert_eq!(names(&cb), ["A", "B"]);
        assert_eq!(ca.all("proxy_set_header").len(), 3);
    }
}
