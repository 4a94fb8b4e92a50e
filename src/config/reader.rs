//! A small walker over the parsed YAML tree that collects *every* problem with its place in the
//! file (`upstreams.scim.servers[1].address`) instead of stopping at the first, so `scimitar -t`
//! can list them all the way `nginx -t` users expect.

use serde_yaml::{Mapping, Value};
use std::fmt;
use std::time::Duration;

use super::units;

/// One problem in the config file: where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: String,
    pub msg: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}: {}", self.at, self.msg)
        }
    }
}

/// Problems found so far; the builder keeps going after each one. Warnings (the second list)
/// do not fail the file: `-t` prints them, as nginx does for an expiring certificate.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>, pub Vec<Problem>);

impl Problems {
    pub fn add(&mut self, at: &str, msg: impl Into<String>) {
        self.0.push(Problem {
            at: at.to_string(),
            msg: msg.into(),
        });
    }
    pub fn warn(&mut self, at: &str, msg: impl Into<String>) {
        self.1.push(Problem {
            at: at.to_string(),
            msg: msg.into(),
        });
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Checks `v` is a mapping whose keys are all in `allowed`; unknown keys are reported with the
/// closest known key, since a typo (`adress`) silently ignored is the classic config outage.
pub fn map<'a>(p: &mut Problems, path: &str, v: &'a Value, allowed: &[&str]) -> Option<&'a Mapping> {
    let Value::Mapping(m) = v else {
        p.add(path, format!("expected a mapping of keys, found {}", kind(v)));
        return None;
    };
    for k in m.keys() {
        match k.as_str() {
            Some(k) if allowed.contains(&k) => {}
            Some("") => p.add(
                if path.is_empty() { "(top level)" } else { path },
                "an empty key (`\"\":` or `? |`); remove it",
            ),
            Some(k) => {
                let hint = closest(k, allowed)
                    .map(|c| format!("did you mean `{c}`?"))
                    .unwrap_or_else(|| format!("known keys: {}", allowed.join(", ")));
                p.add(&join(path, k), format!("unknown key; {hint}"));
            }
            None => p.add(path, "keys must be strings"),
        }
    }
    Some(m)
}

pub fn get<'a>(m: &'a Mapping, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

pub fn string(p: &mut Problems, path: &str, v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        // `${PORT}` expands to a bare number; an address or name written that way is still text.
        Value::Number(n) => Some(n.to_string()),
        other => {
            p.add(path, format!("expected a string, found {}", kind(other)));
            None
        }
    }
}

pub fn uint(p: &mut Problems, path: &str, v: &Value, min: u64, max: u64) -> Option<u64> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Some(n),
        Some(n) => {
            p.add(path, format!("{n} is out of range; use {min} to {max}"));
            None
        }
        None => {
            p.add(
                path,
                format!("expected a whole number from {min} to {max}, found {}", kind(v)),
            );
            None
        }
    }
}

pub fn boolean(p: &mut Problems, path: &str, v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" || s == "false" => Some(s == "true"),
        other => {
            p.add(path, format!("expected true or false, found {}", kind(other)));
            None
        }
    }
}

/// One word of a closed set, mapped to its value; any other word is named with the choices.
pub fn choice<T: Copy>(p: &mut Problems, path: &str, v: &Value, what: &str, options: &[(&str, T)]) -> Option<T> {
    let s = string(p, path, v)?;
    if let Some((_, t)) = options.iter().find(|(word, _)| *word == s) {
        return Some(*t);
    }
    let words: Vec<&str> = options.iter().map(|(w, _)| *w).collect();
    let list = match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => words.join(""),
    };
    p.add(path, format!("`{s}` is not a {what}; use {list}"));
    None
}

pub fn duration(p: &mut Problems, path: &str, v: &Value) -> Option<Duration> {
    let s = string(p, path, v)?;
    units::parse_duration(&s).map_err(|e| p.add(path, e)).ok()
}

pub fn size(p: &mut Problems, path: &str, v: &Value) -> Option<u64> {
    let s = string(p, path, v)?;
    units::parse_size(&s).map_err(|e| p.add(path, e)).ok()
}

pub fn list<'a>(p: &mut Problems, path: &str, v: &'a Value) -> Option<&'a [Value]> {
    match v {
        Value::Sequence(s) => Some(s),
        other => {
            p.add(path, format!("expected a list, found {}", kind(other)));
            None
        }
    }
}

/// The string items of a list, each with its place (`path[i]`) for problems about it; an item
/// that is not a string is reported and skipped.
pub fn strings(p: &mut Problems, path: &str, v: &Value) -> Option<Vec<(String, String)>> {
    let list = list(p, path, v)?;
    Some(
        list.iter()
            .enumerate()
            .filter_map(|(i, x)| {
                let at = index(path, i);
                string(p, &at, x).map(|s| (at, s))
            })
            .collect(),
    )
}

/// Reads an optional key with `f`, falling back to `default` when it is absent or invalid (the
/// problem is recorded either way, so a fallback never hides an error).
pub fn opt<'a, T>(
    p: &mut Problems,
    m: &'a Mapping,
    path: &str,
    key: &str,
    default: T,
    f: impl FnOnce(&mut Problems, &str, &'a Value) -> Option<T>,
) -> T {
    match get(m, key) {
        Some(v) => f(p, &join(path, key), v).unwrap_or(default),
        None => default,
    }
}

/// Reads a required key; a missing key is a problem that names it.
pub fn req<'a, T>(
    p: &mut Problems,
    m: &'a Mapping,
    path: &str,
    key: &str,
    what: &str,
    f: impl FnOnce(&mut Problems, &str, &'a Value) -> Option<T>,
) -> Option<T> {
    match get(m, key) {
        Some(v) => f(p, &join(path, key), v),
        None => {
            p.add(&join(path, key), format!("missing; {what}"));
            None
        }
    }
}

fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Expands `${NAME}` and `${NAME:-default}` in the raw file text (so one file serves several
/// environments); `$${` is a literal `${`. Comment lines are left alone so a commented-out
/// reference to an unset variable is not an error.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, Problems> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Problems::default();
    for (lineno, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') || !line.contains('$') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos..];
            if let Some(tail) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = tail;
            } else if let Some(body) = after.strip_prefix("${") {
                let Some(end) = body.find('}') else {
                    problems.add(
                        &format!("line {}", lineno + 1),
                        "`${` is not closed by `}`; write `$${` for a literal `${`",
                    );
                    rest = "";
                    break;
                };
                let expr = &body[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    problems.add(
                        &format!("line {}", lineno + 1),
                        format!("`${{{expr}}}` is not a valid variable reference; names use A-Z, 0-9 and _"),
                    );
                } else {
                    match (lookup(name), default) {
                        (Some(v), _) => out.push_str(&v),
                        (None, Some(d)) => out.push_str(d),
                        (None, None) => problems.add(
                            &format!("line {}", lineno + 1),
                            format!("environment variable {name} is not set; export it or write ${{{name}:-default}}"),
                        ),
                    }
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = &after[1..];
            }
        }
        out.push_str(rest);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("8080".into()),
            "HOST" => Some("127.0.0.1".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_references_and_defaults() {
        let out = expand_env("a: ${HOST}:${PORT}\nb: ${MISSING:-x}\nc: $$${HOST}\nd: $5\n", env);
        assert_eq!(out.unwrap(), "a: 127.0.0.1:8080\nb: x\nc: $${HOST}\nd: $5\n");
        assert_eq!(expand_env("e: $${NOT}\n", env).unwrap(), "e: ${NOT}\n");
    }

    #[test]
    fn unset_variables_are_listed_with_their_line() {
        let err = expand_env("a: 1\nb: ${NOPE}\n# ${IGNORED}\nc: ${ALSO_NOPE}\n", env).unwrap_err();
        let msgs: Vec<String> = err.0.iter().map(|p| p.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].starts_with("line 2: environment variable NOPE is not set"));
        assert!(msgs[1].starts_with("line 4: environment variable ALSO_NOPE"));
    }

    #[test]
    fn unknown_keys_suggest_the_closest() {
        let v: Value = serde_yaml::from_str("adress: x\nweight: 1\nzzzzzz: 2").unwrap();
        let mut p = Problems::default();
        map(&mut p, "upstreams.a.servers[0]", &v, &["address", "weight"]);
        let msgs: Vec<String> = p.0.iter().map(|p| p.to_string()).collect();
        assert_eq!(msgs.len(), 2);
        assert!(msgs[0].contains("servers[0].adress: unknown key; did you mean `address`?"));
        assert!(msgs[1].contains("known keys: address, weight"));
    }
}
