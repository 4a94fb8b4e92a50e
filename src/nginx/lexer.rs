//! Tokens of the nginx configuration language, split the way `ngx_conf_read_token` splits
//! them, so that a file nginx accepts is read into the same words.
//!
//! The rules that surprise people, all mirrored on purpose:
//! - An unquoted word ends only at whitespace, `;` or `{`. So `foo}` is one word and
//!   `a#b` is one word: `}` and `#` are special only where a word would start.
//! - `{` right after `$` does not end a word, so `${var}` stays inside it.
//! - A quote opens a string only at the start of a word (`a"b"` is the word `a"b"`), and a
//!   closing quote must be followed by whitespace, `;`, `{` or `)` (for `if ($a = "b")`).
//! - A backslash protects the next character from ending a word or string, everywhere;
//!   the escapes are then applied to the word's text (see [`unescape`]).

use std::path::Path;
use std::sync::Arc;

use super::tree::{Arg, Error};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    Word(Arg),
    Semi,
    Open,
    Close,
    Eof,
}

/// A token and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub tok: Tok,
    pub line: u32,
}

pub(super) struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
    file: Arc<Path>,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl<'a> Lexer<'a> {
    /// `src` is bytes, not `str`: nginx reads bytes, and a Latin-1 comment must not make
    /// an otherwise valid file unreadable. Words are converted lossily.
    pub fn new(src: &'a [u8], file: Arc<Path>) -> Self {
        Lexer {
            src,
            pos: 0,
            line: 1,
            file,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += 1;
            if c == b'\n' {
                self.line += 1;
            }
        }
    }

    fn err(&self, line: u32, message: impl Into<String>) -> Error {
        Error::new(&self.file, line, message)
    }

    pub fn next_token(&mut self) -> Result<Token, Error> {
        loop {
            match self.peek() {
                Some(c) if is_space(c) => self.bump(),
                Some(b'#') => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
        let line = self.line;
        let tok = match self.peek() {
            None => Tok::Eof,
            Some(c @ (b';' | b'{' | b'}')) => {
                self.bump();
                match c {
                    b';' => Tok::Semi,
                    b'{' => Tok::Open,
                    _ => Tok::Close,
                }
            }
            Some(q @ (b'"' | b'\'')) => Tok::Word(self.quoted(q, line)?),
            Some(_) => Tok::Word(self.bare()),
        };
        Ok(Token { tok, line })
    }

    fn bare(&mut self) -> Arg {
        let start = self.pos;
        let mut variable = false;
        while let Some(c) = self.peek() {
            if c == b'{' && variable {
                self.bump();
                continue;
            }
            variable = c == b'$';
            if is_space(c) || c == b';' || c == b'{' {
                break;
            }
            self.bump();
            if c == b'\\' {
                self.bump();
            }
        }
        Arg {
            text: unescape(&self.src[start..self.pos]),
            quoted: false,
        }
    }

    fn quoted(&mut self, quote: u8, line: u32) -> Result<Arg, Error> {
        self.bump();
        let start = self.pos;
        loop {
            match self.peek() {
                None => {
                    let q = quote as char;
                    return Err(self.err(
                        line,
                        format!("unterminated string: the {q} opened here is never closed"),
                    ));
                }
                Some(c) if c == quote => break,
                Some(c) => {
                    self.bump();
                    if c == b'\\' {
                        self.bump();
                    }
                }
            }
        }
        let text = unescape(&self.src[start..self.pos]);
        self.bump();
        // `}` is left to the parser, which knows the directive is missing its ";".
        match self.peek() {
            None => {}
            Some(c) if is_space(c) || matches!(c, b';' | b'{' | b'}' | b')') => {}
            Some(c) => {
                let shown = String::from_utf8_lossy(&self.src[self.pos..self.pos + 1]);
                let shown = if shown == "\u{fffd}" {
                    format!("\\x{c:02x}")
                } else {
                    shown.into_owned()
                };
                return Err(self.err(
                    self.line,
                    format!("unexpected \"{shown}\" right after a quoted string (a space or \";\" is needed)"),
                ));
            }
        }
        Ok(Arg { text, quoted: true })
    }

    /// The body of a `*_by_lua_block { … }` after its `{`, up to the matching `}` (consumed,
    /// not returned). Lua is not nginx syntax: braces in Lua strings, long brackets and
    /// comments must not count, which is what ngx_lua's own reader takes care of too.
    pub fn lua_block(&mut self, open_line: u32) -> Result<String, Error> {
        let start = self.pos;
        let mut depth = 0usize;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err(
                    open_line,
                    "unterminated Lua block: the \"{\" opened here is never closed",
                ));
            };
            match c {
                b'{' => depth += 1,
                b'}' if depth == 0 => {
                    let body = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
                    self.bump();
                    return Ok(body);
                }
                b'}' => depth -= 1,
                b'"' | b'\'' => {
                    self.bump();
                    while let Some(s) = self.peek() {
                        self.bump();
                        if s == b'\\' {
                            self.bump();
                        } else if s == c {
                            break;
                        }
                    }
                    continue;
                }
                b'[' => {
                    if let Some(level) = self.long_bracket_level() {
                        self.skip_long_bracket(level);
                        continue;
                    }
                }
                b'-' if self.src.get(self.pos + 1) == Some(&b'-') => {
                    self.bump();
                    self.bump();
                    if self.peek() == Some(b'[') {
                        if let Some(level) = self.long_bracket_level() {
                            self.skip_long_bracket(level);
                            continue;
                        }
                    }
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.bump();
                    }
                    continue;
                }
                _ => {}
            }
            self.bump();
        }
    }

    /// At `[`: the number of `=` in a Lua long bracket `[==[`, if this is one.
    fn long_bracket_level(&self) -> Option<usize> {
        let rest = self.src.get(self.pos + 1..)?;
        let level = rest.iter().take_while(|&&c| c == b'=').count();
        (rest.get(level) == Some(&b'[')).then_some(level)
    }

    fn skip_long_bracket(&mut self, level: usize) {
        for _ in 0..level + 2 {
            self.bump();
        }
        while self.peek().is_some() {
            if self.peek() == Some(b']') {
                let rest = &self.src[self.pos + 1..];
                let eqs = rest.iter().take_while(|&&c| c == b'=').count();
                if eqs == level && rest.get(level) == Some(&b']') {
                    for _ in 0..level + 2 {
                        self.bump();
                    }
                    return;
                }
            }
            self.bump();
        }
    }
}

/// nginx's escapes, applied after splitting (so they work the same in quoted and unquoted
/// words): `\"` `\'` `\\` → the character, `\t` `\r` `\n` → the control character, and
/// any other backslash is kept with what follows (`\d` in a regex stays `\d`).
fn unescape(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            let esc = match raw.get(i + 1) {
                Some(&c @ (b'"' | b'\'' | b'\\')) => Some(c),
                Some(b't') => Some(b'\t'),
                Some(b'r') => Some(b'\r'),
                Some(b'n') => Some(b'\n'),
                _ => None,
            };
            if let Some(c) = esc {
                out.push(c);
                i += 2;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(src: &str) -> Result<Vec<Token>, Error> {
        let mut lx = Lexer::new(src.as_bytes(), Arc::from(Path::new("t.conf")));
        let mut out = Vec::new();
        loop {
            let t = lx.next_token()?;
            if t.tok == Tok::Eof {
                return Ok(out);
            }
            out.push(t);
        }
    }

    /// Tokens as short strings: words as their text (quoted ones in «»), punctuation as is.
    fn words(src: &str) -> Vec<String> {
        lex(src)
            .unwrap()
            .into_iter()
            .map(|t| match t.tok {
                Tok::Word(a) if a.quoted => format!("«{}»", a.text),
                Tok::Word(a) => a.text,
                Tok::Semi => ";".into(),
                Tok::Open => "{".into(),
                Tok::Close => "}".into(),
                Tok::Eof => unreachable!(),
            })
            .collect()
    }

    fn error(src: &str) -> (u32, String) {
        let e = lex(src).unwrap_err();
        (e.at.line, e.message)
    }

    #[test]
    fn splits_words_and_punctuation() {
        assert_eq!(words("listen 443 ssl;"), ["listen", "443", "ssl", ";"]);
        assert_eq!(words("server{listen 80;}"), ["server", "{", "listen", "80", ";", "}"]);
        assert_eq!(words("a\tb\r\nc;"), ["a", "b", "c", ";"]);
    }

    #[test]
    fn brace_and_hash_inside_a_word_are_plain_characters() {
        // nginx -t accepts `return 200 foo};` and reads the word "foo}".
        assert_eq!(words("return 200 foo};"), ["return", "200", "foo}", ";"]);
        assert_eq!(words("return 200 a#b;"), ["return", "200", "a#b", ";"]);
    }

    #[test]
    fn comments_run_to_end_of_line_but_not_inside_quotes() {
        assert_eq!(words("# top\nlisten 80; # trailing\n#last"), ["listen", "80", ";"]);
        assert_eq!(words("add_header X \"a # b\";"), ["add_header", "X", "«a # b»", ";"]);
        assert_eq!(words("a 'x;{}#' ;"), ["a", "«x;{}#»", ";"]);
    }

    #[test]
    fn variables_are_verbatim_and_dollar_brace_stays_in_the_word() {
        assert_eq!(words("set $k ${host}_x;"), ["set", "$k", "${host}_x", ";"]);
        assert_eq!(
            words("limit_req_zone $http_authorization zone=idp:10m;")[1],
            "$http_authorization"
        );
        // Only right after `$` is `{` part of a word; elsewhere it opens a block.
        assert_eq!(words("a $b{"), ["a", "$b", "{"]);
    }

    #[test]
    fn escapes_follow_nginx() {
        assert_eq!(
            words(r#"a "x\"y" 'it\'s' "b\\s" "t\tn\nr\r";"#)[1..4],
            ["«x\"y»", "«it's»", "«b\\s»"]
        );
        assert_eq!(words(r#"a "t\tn\nr\r";"#)[1], "«t\tn\nr\r»");
        // Unknown escapes keep the backslash: regexes survive.
        assert_eq!(
            words(r#"location ~ "^/scim/v2/Users/\d+$" {"#)[2],
            "«^/scim/v2/Users/\\d+$»"
        );
        // Unquoted words are unescaped too, and `\ ` / `\;` do not end them.
        assert_eq!(words(r#"a x\;y b\ c \";"#), ["a", "x\\;y", "b\\ c", "\"", ";"]);
    }

    #[test]
    fn quotes_only_open_at_the_start_of_a_word() {
        assert_eq!(words(r#"a b"c d";"#), ["a", "b\"c", "d\"", ";"]);
        assert_eq!(words(r#"a "" '';"#), ["a", "«»", "«»", ";"]);
    }

    #[test]
    fn quoted_strings_may_hold_anything_and_span_lines() {
        let toks = lex("log_format j escape=json '{\"a\":\"$x\";\n  \"b\":1}';\nnext;").unwrap();
        match &toks[3].tok {
            Tok::Word(a) => assert_eq!(a.text, "{\"a\":\"$x\";\n  \"b\":1}"),
            t => panic!("{t:?}"),
        }
        assert_eq!(toks[3].line, 1);
        assert_eq!(toks[5].line, 3);
    }

    #[test]
    fn closing_quote_may_be_followed_by_a_paren() {
        assert_eq!(words(r#"if ($a = "b") {"#), ["if", "($a", "=", "«b»", ")", "{"]);
    }

    #[test]
    fn lines_count_from_one_and_tokens_carry_their_start() {
        let toks = lex("a\n\n  b\\\n c;").unwrap();
        let lines: Vec<u32> = toks.iter().map(|t| t.line).collect();
        assert_eq!(lines, [1, 3, 4, 4]);
    }

    #[test]
    fn unterminated_string_points_at_its_opening_line() {
        let (line, msg) = error("a;\nb \"open;\n}\n");
        assert_eq!(line, 2);
        assert!(msg.starts_with("unterminated string"), "{msg}");
        assert_eq!(error("x 'never").0, 1);
    }

    #[test]
    fn junk_after_a_closing_quote_is_an_error() {
        let (line, msg) = error("a;\nb \"x\"y;");
        assert_eq!(line, 2);
        assert!(msg.starts_with("unexpected \"y\""), "{msg}");
        assert!(error("b \"x\"\"y\";").1.starts_with("unexpected \"\"\""));
        assert!(error("b \"x\"#c\n;").1.starts_with("unexpected \"#\""));
        // `}` is the parser's business (it reports the missing ";").
        assert_eq!(words("b \"x\"}"), ["b", "«x»", "}"]);
    }

    #[test]
    fn non_utf8_bytes_do_not_stop_the_lexer() {
        let mut lx = Lexer::new(b"# caf\xe9\nserver_name caf\xe9;", Arc::from(Path::new("t")));
        assert_eq!(lx.next_token().unwrap().line, 2);
        let t = lx.next_token().unwrap();
        assert_eq!(
            t.tok,
            Tok::Word(Arg {
                text: "caf\u{fffd}".into(),
                quoted: false
            })
        );
    }

    #[test]
    fn lua_block_skips_braces_in_strings_comments_and_long_brackets() {
        let body =
            "\n  local t = {}\n  -- } in a comment\n  ngx.say(\"}\", '{', [[ } ]], [==[ ]] } ]==])\n  --[[ }\n  ]]\n";
        let src = format!("{body}}} next;");
        let mut lx = Lexer::new(src.as_bytes(), Arc::from(Path::new("t")));
        assert_eq!(lx.lua_block(1).unwrap(), body);
        assert_eq!(
            lx.next_token().unwrap().tok,
            Tok::Word(Arg {
                text: "next".into(),
                quoted: false
            })
        );
        assert_eq!(lx.next_token().unwrap().line, 7);

        let mut lx = Lexer::new(b"\n local t = { a = 1 \n", Arc::from(Path::new("t")));
        let e = lx.lua_block(4).unwrap_err();
        assert_eq!(e.at.line, 4);
        assert!(e.message.starts_with("unterminated Lua block"), "{}", e.message);
    }
}
