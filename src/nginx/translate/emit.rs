//! A small YAML writer: block style, a comment above any entry, and scalars quoted only when
//! a plain scalar would read back as something else.
//!
//! serde_yaml cannot write comments, and the comments are the point of the translation. The
//! text also passes scimitar's `${NAME}` expansion, which runs on the raw file before YAML
//! parsing: a `${` in a scalar is written `$${`, and comments always stand on lines of their
//! own (the expansion skips comment lines, not trailing comments).

use serde_yaml::Value;

/// A YAML value with comments attached to its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Str(String),
    Int(u64),
    Bool(bool),
    /// Written as is: for text meant for scimitar's `${NAME:-default}` expansion.
    Raw(String),
    /// A list of short scalars, written in flow style: `[users.read, users.write]`.
    Flow(Vec<String>),
    Map(Vec<Entry>),
    List(Vec<Item>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Comment lines written above the key.
    pub notes: Vec<String>,
    pub key: String,
    pub value: Node,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub notes: Vec<String>,
    pub value: Node,
}

impl Node {
    pub fn str(s: impl Into<String>) -> Node {
        Node::Str(s.into())
    }

    pub fn map() -> Node {
        Node::Map(Vec::new())
    }

    /// Appends `key: value` to a map (no-op on other nodes).
    pub fn set(&mut self, key: &str, value: Node) -> &mut Self {
        self.set_noted(Vec::new(), key, value)
    }

    /// Appends `key: value` with comment lines above it.
    pub fn set_noted(&mut self, notes: Vec<String>, key: &str, value: Node) -> &mut Self {
        if let Node::Map(entries) = self {
            entries.push(Entry {
                notes,
                key: key.to_string(),
                value,
            });
        }
        self
    }

    /// The value under `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.value),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match self {
            Node::Map(entries) => entries.iter_mut().find(|e| e.key == key).map(|e| &mut e.value),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Node::Map(e) => e.is_empty(),
            Node::List(i) => i.is_empty(),
            Node::Flow(i) => i.is_empty(),
            _ => false,
        }
    }

    /// The same value with every comment removed: two routes that render alike this way
    /// behave alike.
    pub fn bare(&self) -> Node {
        match self {
            Node::Map(e) => Node::Map(
                e.iter()
                    .map(|e| Entry {
                        notes: Vec::new(),
                        key: e.key.clone(),
                        value: e.value.bare(),
                    })
                    .collect(),
            ),
            Node::List(i) => Node::List(
                i.iter()
                    .map(|i| Item {
                        notes: Vec::new(),
                        value: i.value.bare(),
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Renders a top-level map (other nodes render as one scalar line).
pub fn render(node: &Node) -> String {
    let mut out = String::new();
    match node {
        Node::Map(entries) => write_map(&mut out, entries, 0),
        Node::List(items) => write_list(&mut out, items, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

/// Comment lines, wrapped near 100 columns, each starting with `# `.
pub fn comment(out: &mut String, indent: usize, text: &str) {
    let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let width = 100usize.saturating_sub(indent + 2).max(40);
    let mut line = String::new();
    for word in clean.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            push_comment_line(out, indent, &line);
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    push_comment_line(out, indent, &line);
}

fn push_comment_line(out: &mut String, indent: usize, text: &str) {
    pad(out, indent);
    out.push('#');
    if !text.is_empty() {
        out.push(' ');
        out.push_str(text.trim_end());
    }
    out.push('\n');
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, entries: &[Entry], indent: usize) {
    for e in entries {
        for n in &e.notes {
            comment(out, indent, n);
        }
        pad(out, indent);
        out.push_str(&quote(&e.key));
        out.push(':');
        match &e.value {
            Node::Map(m) if !m.is_empty() => {
                out.push('\n');
                write_map(out, m, indent + 2);
            }
            Node::List(l) if !l.is_empty() => {
                out.push('\n');
                write_list(out, l, indent + 2);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn write_list(out: &mut String, items: &[Item], indent: usize) {
    for item in items {
        for n in &item.notes {
            comment(out, indent, n);
        }
        match &item.value {
            Node::Map(m) if !m.is_empty() => {
                // The map one level in, then its first key line takes the dash.
                let mut inner = String::new();
                write_map(&mut inner, m, indent + 2);
                let mut dashed = false;
                for line in inner.split_inclusive('\n') {
                    if !dashed && !line.trim_start().starts_with('#') {
                        pad(out, indent);
                        out.push_str("- ");
                        out.push_str(&line[indent + 2..]);
                        dashed = true;
                    } else {
                        out.push_str(line);
                    }
                }
            }
            Node::List(l) if !l.is_empty() => {
                pad(out, indent);
                out.push_str("-\n");
                write_list(out, l, indent + 2);
            }
            other => {
                pad(out, indent);
                out.push_str("- ");
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn scalar(node: &Node) -> String {
    match node {
        Node::Str(s) => quote(s),
        Node::Int(n) => n.to_string(),
        Node::Bool(b) => b.to_string(),
        Node::Raw(s) => s.clone(),
        Node::Flow(items) => {
            let parts: Vec<String> = items.iter().map(|s| quote(s)).collect();
            format!("[{}]", parts.join(", "))
        }
        Node::Map(_) => "{}".to_string(),
        Node::List(_) => "[]".to_string(),
    }
}

/// A scalar as YAML text: plain when it reads back as the same string, else double-quoted.
pub fn quote(s: &str) -> String {
    if plain_ok(s) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    // scimitar expands `${NAME}` before parsing; `$${` is its literal `${`.
    out.replace("${", "$${")
}

/// Plain only for a conservative alphabet (safe in block and flow context alike), and only
/// when YAML reads the text back as that very string (not a number, boolean or null).
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_./@+-:$=~*".contains(c);
    if !s.chars().all(allowed) || !(first.is_ascii_alphanumeric() || "_./$".contains(first)) {
        return false;
    }
    if s.ends_with(':') || s.contains("::") {
        return false;
    }
    matches!(serde_yaml::from_str::<Value>(s), Ok(Value::String(ref back)) if back == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_quoted_only_when_needed_and_read_back_unchanged() {
        for s in [
            "scim",
            "/scim/v2",
            "0.0.0.0:443",
            "1.2",
            "true",
            "yes",
            "null",
            "~",
            "",
            "10",
            "1e5",
            "max-age=63072000; includeSubDomains",
            "a \"quoted\" \\ value",
            "tab\tnewline\n",
            "${HOME}",
            "$remote_addr",
            "default-src 'none'",
            "- dash",
            "#hash",
            "key: value",
            "[::1]:8080",
            "header:X-Tenant-Id",
            "*.example.com",
        ] {
            let yaml = format!("k: {}\nf: [{}]\n", quote(s), quote(s));
            // What scimitar does first: expand `${…}` (nothing is set for these).
            let expanded = crate::config::reader::expand_env(&yaml, |_| None).unwrap();
            let v: Value = serde_yaml::from_str(&expanded).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert_eq!(v["k"], Value::String(s.to_string()), "{yaml}");
            assert_eq!(v["f"][0], Value::String(s.to_string()), "{yaml}");
        }
        assert_eq!(quote("scim"), "scim");
        assert_eq!(quote("1.2"), "\"1.2\"");
        assert_eq!(quote("0.0.0.0:443"), "0.0.0.0:443");
    }

    #[test]
    fn comments_stand_on_their_own_lines_above_their_entries() {
        let mut pool = Node::map();
        pool.set_noted(vec!["from a.conf:3: server 10.0.0.1:80".into()], "weight", Node::Int(2));
        let mut top = Node::map();
        top.set_noted(
            vec!["from a.conf:1: ${not expanded}".into()],
            "pools",
            Node::List(vec![Item {
                notes: vec!["item note".into()],
                value: pool,
            }]),
        );
        top.set("classes", Node::Flow(vec!["bulk".into(), "users.read".into()]));
        top.set("empty", Node::map());
        let text = render(&top);
        assert_eq!(
            text,
            "# from a.conf:1: ${not expanded}\npools:\n  # item note\n    # from a.conf:3: server 10.0.0.1:80\n  - weight: 2\nclasses: [bulk, users.read]\nempty: {}\n"
        );
        let expanded = crate::config::reader::expand_env(&text, |_| None).unwrap();
        let v: Value = serde_yaml::from_str(&expanded).unwrap();
        assert_eq!(v["pools"][0]["weight"], Value::Number(2.into()));
    }

    #[test]
    fn long_comments_wrap() {
        let mut out = String::new();
        comment(&mut out, 2, &"word ".repeat(60));
        assert!(out.lines().count() > 2);
        assert!(out.lines().all(|l| l.starts_with("  # ") && l.len() <= 100));
    }
}
