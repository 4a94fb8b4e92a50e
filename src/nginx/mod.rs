//! nginx configuration files → a syntax tree with source positions, for `scimitar import
//! nginx`. Syntax only: names and arguments are not checked against any module's directive
//! table, so unknown modules parse fine and are the translator's to report.
//!
//! The reading follows nginx's own (`ngx_conf_file.c`), so a file `nginx -t` accepts reads
//! into the same words and blocks, and a file it rejects for syntax is rejected here with
//! the file, the line and what to fix (`missing ";" after "listen" (found "}" on line 9)`).
//!
//! - Words (`lexer.rs`): split at whitespace, `;` and `{` only; `"…"` and `'…'` group
//!   anything, including newlines; `#` starts a comment only where a word could start;
//!   `${var}` stays in its word. Escapes are nginx's: `\"` `\'` `\\` `\t` `\r` `\n`, any
//!   other backslash is kept (so regexes like `\d` survive); variables stay verbatim.
//! - Blocks and includes (`parse.rs`): `include` is expanded in place, recursively, each
//!   included directive keeping its own file and line. Relative paths resolve against the
//!   main file's directory (nginx's conf prefix), not the including file's. Globs
//!   (`glob.rs`: `*`, `?`, `[…]` in any component) are sorted, skip hidden files, and may
//!   match nothing. Loops and chains deeper than 32 files are refused.
//! - `*_by_lua_block { … }` holds Lua, not nginx syntax: its body is kept as one argument.
//!
//! The translation to scimitar's YAML is [`translate`]; [`import`] is the command.
//!
//! Not supported on purpose: nginx's 4 KiB limit on one word (longer words are read), `\`
//! escapes inside include globs, blocks nested more than 100 deep (refused), and the `-g`
//! command-line syntax.

mod glob;
pub mod import;
mod lexer;
mod parse;
pub mod translate;
mod tree;

#[cfg(test)]
mod tests;

pub use parse::{parse_file, parse_file_with, parse_str, Options};
pub use tree::{Arg, Directive, Error, Pos};
