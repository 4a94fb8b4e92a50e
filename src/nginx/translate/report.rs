//! What the translation could not carry over, one line per nginx directive, and the exit
//! code that follows from it.

use std::fmt::Write;
use std::path::Path;

use crate::nginx::{Directive, Pos};

/// How a directive fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Left out. `handling`: whether that changes which status, upstream or bytes a request
    /// gets (a `rewrite` does; a `log_format` or a `map` nothing reads does not).
    Dropped { handling: bool },
    /// Translated, but scimitar behaves differently on purpose or by necessity.
    Differs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub at: Pos,
    /// The directive as written, shortened: `rewrite ^/scim/v2/(.*)$ /api/scim/$1 break`.
    pub what: String,
    pub kind: Kind,
    pub why: String,
}

impl Note {
    pub fn new(d: &Directive, kind: Kind, why: impl Into<String>) -> Note {
        Note {
            at: d.at.clone(),
            what: show(d),
            kind,
            why: why.into(),
        }
    }

    /// True when leaving this out changes how a request is handled.
    pub fn changes_handling(&self) -> bool {
        self.kind == Kind::Dropped { handling: true }
    }

    /// `conf.d/scim.conf:12: rewrite … — not translated: why`, the file relative to `base`.
    pub fn line(&self, base: &Path) -> String {
        let verdict = match self.kind {
            Kind::Dropped { .. } => "not translated",
            Kind::Differs => "translated with a difference",
        };
        format!("{}: {} — {verdict}: {}", place(&self.at, base), self.what, self.why)
    }
}

/// `file:line` with the file relative to the main file's directory when it is below it.
pub fn place(at: &Pos, base: &Path) -> String {
    let file = at.file.strip_prefix(base).unwrap_or(&at.file);
    format!("{}:{}", file.display(), at.line)
}

/// The directive as one short line: name and arguments (quoted when they hold spaces or are
/// empty), control characters escaped, at most ~90 characters, `{ … }` for a block.
pub fn show(d: &Directive) -> String {
    // A credential written in the config stays out of the report and the comments.
    let (name, shown) = super::redact::shown(d);
    let mut s = name;
    for (a, text) in d.args.iter().zip(&shown) {
        s.push(' ');
        // Lines and indentation (a Lua block, a multi-line log format) fold into one space.
        let folded = if text.contains('\n') {
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        } else {
            text.clone()
        };
        let text: String = folded
            .chars()
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_default().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect();
        if a.quoted && (text.is_empty() || text.contains([' ', ';', '{', '}'])) {
            let _ = write!(s, "\"{text}\"");
        } else {
            s.push_str(&text);
        }
    }
    if s.chars().count() > 90 {
        s = s.chars().take(88).collect::<String>() + "…";
    }
    if d.block.is_some() {
        s.push_str(" { … }");
    }
    s
}

/// 0: everything that changes request handling was translated (or `allow_partial`);
/// 1: something that does was left out (the YAML is still written).
pub fn exit_code(notes: &[Note], allow_partial: bool) -> u8 {
    if !allow_partial && notes.iter().any(Note::changes_handling) {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nginx::parse_str;

    fn first(src: &str) -> Directive {
        parse_str(src, "/etc/nginx/conf.d/x.conf").unwrap().remove(0)
    }

    #[test]
    fn lines_name_the_file_relative_to_the_main_directory_and_the_verdict() {
        let d = first("\n\nrewrite ^/scim/v2/(.*)$ /api/$1 break;");
        let n = Note::new(&d, Kind::Dropped { handling: true }, "nginx rewrites the path");
        assert_eq!(
            n.line(Path::new("/etc/nginx")),
            "conf.d/x.conf:3: rewrite ^/scim/v2/(.*)$ /api/$1 break — not translated: nginx rewrites the path"
        );
        let n = Note::new(&first("add_header X \"a b\";"), Kind::Differs, "why");
        assert_eq!(
            n.line(Path::new("/elsewhere")),
            "/etc/nginx/conf.d/x.conf:1: add_header X \"a b\" — translated with a difference: why"
        );
        assert_eq!(show(&first("if ($x) { return 403; }")), "if ($x) { … }");
        assert_eq!(
            show(&first("if ($http_authorization != \"Bearer s3cret\") { return 401; }")),
            "if ($http_authorization != … ) { … }"
        );
        assert_eq!(show(&first("return 200 \"a\n   b\";")), "return 200 \"a b\"");
        assert_eq!(show(&first("add_header X \"t\\tab\";")), "add_header X t\\tab");
    }

    #[test]
    fn only_a_dropped_directive_that_changes_handling_fails_unless_partial_is_allowed() {
        let d = first("map $a $b { }");
        let quiet = Note::new(&d, Kind::Dropped { handling: false }, "unused");
        let differs = Note::new(&d, Kind::Differs, "429, not 503");
        let loud = Note::new(&d, Kind::Dropped { handling: true }, "used");
        assert_eq!(exit_code(&[], false), 0);
        assert_eq!(exit_code(&[quiet.clone(), differs.clone()], false), 0);
        assert_eq!(exit_code(&[quiet.clone(), loud.clone()], false), 1);
        assert_eq!(exit_code(&[quiet, differs, loud], true), 0);
    }
}
