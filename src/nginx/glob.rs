//! The subset of glob(3) that nginx's `include` uses: `*`, `?` and `[…]` in any path
//! component, results sorted, hidden files left out, and no match being no error.
//!
//! nginx calls `glob(pattern, 0, …)` only when the path contains `*`, `?` or `[`, and
//! treats `GLOB_NOMATCH` as an empty include. With flags 0, glob(3) sorts the paths
//! (byte order in nginx's C locale), does not let a wildcard match a leading `.`, skips
//! directories it cannot read, and treats `\` as an escape; the escape is the one part not
//! mirrored here (nobody writes it in an include).

use std::fs;
use std::path::{Component, Path, PathBuf};

/// Whether nginx would glob this include path rather than open it.
pub(super) fn is_pattern(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// Every existing path matching `pattern`, sorted. Unreadable directories match nothing.
pub(super) fn expand(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = match comp {
            Component::Normal(part) => part,
            other => {
                for p in &mut found {
                    p.push(other.as_os_str());
                }
                continue;
            }
        };
        let part_str = part.to_string_lossy();
        if !is_pattern(&part_str) {
            for p in &mut found {
                p.push(part);
            }
            continue;
        }
        let pat: Vec<char> = part_str.chars().collect();
        let mut next = Vec::new();
        for dir in &found {
            let listing = if dir.as_os_str().is_empty() {
                fs::read_dir(".")
            } else {
                fs::read_dir(dir)
            };
            let Ok(entries) = listing else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name_chars: Vec<char> = name.to_string_lossy().chars().collect();
                if name_chars.first() == Some(&'.') && pat.first() != Some(&'.') {
                    continue;
                }
                if matches(&pat, &name_chars) {
                    next.push(dir.join(&name));
                }
            }
        }
        found = next;
    }
    // Literal components after the last wildcard were appended unchecked.
    found.retain(|p| p.exists());
    found.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    found
}

/// Whether one path component matches one pattern component.
pub(super) fn matches(pat: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and how much of the name it has swallowed so far.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pat.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => Some(p + 1),
            Some('[') => match class(pat, p, name[n]) {
                Some((true, end)) => Some(end),
                Some((false, _)) => None,
                // An unclosed `[` is an ordinary character, as in glob(3).
                None => (name[n] == '[').then_some(p + 1),
            },
            Some(&c) => (c == name[n]).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                n += 1;
            }
            (None, Some((sp, sn))) => {
                star = Some((sp, sn + 1));
                p = sp + 1;
                n = sn + 1;
            }
            (None, None) => return false,
        }
    }
    pat[p.min(pat.len())..].iter().all(|&c| c == '*')
}

/// The bracket expression starting at `pat[open]` (`[abc]`, `[a-z]`, `[!x]`, `[^x]`, with
/// `]` literal when first): whether `c` is in it, and the index after it. `None` if unclosed.
fn class(pat: &[char], open: usize, c: char) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = matches!(pat.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let lo = *pat.get(i)?;
        if lo == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        match (pat.get(i + 1), pat.get(i + 2)) {
            (Some('-'), Some(&hi)) if hi != ']' => {
                hit |= lo <= c && c <= hi;
                i += 3;
            }
            _ => {
                hit |= lo == c;
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pat: &str, name: &str) -> bool {
        matches(&pat.chars().collect::<Vec<_>>(), &name.chars().collect::<Vec<_>>())
    }

    #[test]
    fn star_and_question_mark() {
        assert!(m("*.conf", "scim.conf"));
        assert!(m("*.conf", ".conf"));
        assert!(!m("*.conf", "scim.conf.bak"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "aXXbYYbc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("site-?.conf", "site-1.conf"));
        assert!(!m("site-?.conf", "site-10.conf"));
        assert!(m("**x", "x"));
        assert!(!m("", "x"));
    }

    #[test]
    fn bracket_expressions() {
        assert!(m("[ab].conf", "a.conf"));
        assert!(!m("[ab].conf", "c.conf"));
        assert!(m("[0-9][0-9]-*.conf", "10-scim.conf"));
        assert!(!m("[0-9][0-9]-*.conf", "1a-scim.conf"));
        assert!(m("[!a]*", "b"));
        assert!(m("[^a]*", "b"));
        assert!(!m("[!a]*", "a"));
        assert!(m("[]]", "]"));
        assert!(m("[a-]", "-"));
        // Unclosed: a literal `[`.
        assert!(m("x[y", "x[y"));
        assert!(!m("x[y", "xy"));
    }

    #[test]
    fn pattern_detection_is_nginxs() {
        assert!(is_pattern("conf.d/*.conf"));
        assert!(is_pattern("a?"));
        assert!(is_pattern("a[1]"));
        assert!(!is_pattern("snippets/scim-proxy.conf"));
    }
}
