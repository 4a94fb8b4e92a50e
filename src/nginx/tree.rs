//! The syntax tree: directives with their arguments, blocks and source positions.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Where a directive (or an error) is: the file as nginx would name it, and a 1-based line.
///
/// The file is shared by every directive read from it, so cloning a `Pos` is cheap.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pos {
    pub file: Arc<Path>,
    /// 1-based; 0 only for errors about a whole file (it could not be read).
    pub line: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One argument as nginx's directive handlers see it.
///
/// `text` has nginx's escapes applied (`\"` `\'` `\\` `\t` `\r` `\n`; any other `\x` keeps
/// its backslash) and the surrounding quotes removed. Variables (`$host`, `${tenant}`) are
/// never expanded: nginx expands them per request, not when reading the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub text: String,
    /// Written in `"…"` or `'…'`. nginx gives quoting no meaning beyond grouping, but a
    /// translator may want to know that `""` was an intentional empty value.
    pub quoted: bool,
}

impl Arg {
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `name args… ;` or `name args… { block }`.
///
/// `include` never appears when includes are expanded: the included directives take its
/// place, each keeping the position in its own file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<Arg>,
    /// `Some` for `{ … }` blocks, even empty ones. `*_by_lua_block` bodies are not nginx
    /// syntax: they are kept as one last argument holding the Lua source, with no block.
    pub block: Option<Vec<Directive>>,
    /// The line of the directive's name.
    pub at: Pos,
}

impl Directive {
    /// The `i`-th argument's text (0 is the first argument after the name).
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(Arg::as_str)
    }

    /// The block's directives; empty for a simple directive.
    pub fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or(&[])
    }

    /// Direct children named `name`, in file order.
    pub fn find<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Directive> + 'a {
        self.children().iter().filter(move |d| d.name == name)
    }
}

/// A configuration nginx would refuse to read (or a file that could not be read), with the
/// place to look. Displays like nginx's own messages: `unexpected "}" in /etc/nginx/nginx.conf:12`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub at: Pos,
    pub message: String,
}

impl Error {
    pub(super) fn new(file: &Arc<Path>, line: u32, message: impl Into<String>) -> Self {
        Error {
            at: Pos {
                file: Arc::clone(file),
                line,
            },
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "{} in {}", self.message, self.at)
        }
    }
}

impl std::error::Error for Error {}
