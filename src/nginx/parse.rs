//! Tokens → directives, and `include` expanded in place.
//!
//! Relative include paths are resolved the way nginx resolves them: against the
//! directory of the *main* configuration file (nginx's "conf prefix"), not against the
//! file that holds the `include`. So `include snippets/scim.conf;` means the same thing in
//! `nginx.conf` and in `conf.d/scim.conf`. `nginx -p` does not change this; only where the
//! main file is does. [`Options::prefix`] overrides it for a config copied away from the
//! directory it was written for (e.g. one that says `include /etc/nginx/…` files).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::glob;
use super::lexer::{Lexer, Tok};
use super::tree::{Arg, Directive, Error, Pos};

/// A chain of includes this long is not a real config; it stops runaway recursion
/// through distinct files (loops through the same file are caught by name first).
const MAX_INCLUDE_DEPTH: usize = 32;

/// Real configs nest blocks a handful deep. The tree is recursive (dropping or printing
/// it recurses), so a hostile `a{a{a{…` must be refused before it is built.
const MAX_BLOCK_DEPTH: usize = 100;

/// How to read a configuration from disk.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Directory relative `include` paths resolve against. `None`: the directory of the
    /// main file, as nginx does.
    pub prefix: Option<PathBuf>,
}

/// Reads `path` and every file it includes, nginx-style.
pub fn parse_file(path: impl AsRef<Path>) -> Result<Vec<Directive>, Error> {
    parse_file_with(path, &Options::default())
}

/// [`parse_file`] with options.
pub fn parse_file_with(path: impl AsRef<Path>, options: &Options) -> Result<Vec<Directive>, Error> {
    let path = path.as_ref();
    let prefix = match &options.prefix {
        Some(p) => p.clone(),
        None => path.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let mut reader = Reader {
        prefix: Some(prefix),
        chain: Vec::new(),
        depth: 0,
    };
    reader.file(path, None)
}

/// Parses configuration text. `include` directives are kept as they are (there is no
/// directory to resolve them against); `name` is only used in positions.
pub fn parse_str(src: &str, name: impl AsRef<Path>) -> Result<Vec<Directive>, Error> {
    let mut reader = Reader {
        prefix: None,
        chain: Vec::new(),
        depth: 0,
    };
    reader.source(src.as_bytes(), Arc::from(name.as_ref()))
}

struct Reader {
    /// `None`: leave includes alone.
    prefix: Option<PathBuf>,
    /// The files being read, outermost first: (canonical path for loop checks, as shown).
    chain: Vec<(PathBuf, Arc<Path>)>,
    /// Blocks open in the files that include the one being read.
    depth: usize,
}

/// A block being read: its directive (block still empty) and what it holds so far.
struct Open {
    directive: Directive,
    children: Vec<Directive>,
}

impl Reader {
    /// `from`: the `include` that asked for this file; `None` for the main file.
    fn file(&mut self, path: &Path, from: Option<&Pos>) -> Result<Vec<Directive>, Error> {
        let shown: Arc<Path> = Arc::from(path);
        let (canonical, bytes) = match fs::canonicalize(path).and_then(|c| Ok((fs::read(&c)?, c))) {
            Ok((bytes, canonical)) => (canonical, bytes),
            Err(e) => {
                let p = path.display();
                return Err(match from {
                    Some(at) if e.kind() == io::ErrorKind::NotFound => Error {
                        at: at.clone(),
                        message: format!("include file \"{p}\" not found"),
                    },
                    Some(at) => Error {
                        at: at.clone(),
                        message: format!("cannot read include file \"{p}\": {e}"),
                    },
                    None => Error::new(&shown, 0, format!("cannot read \"{p}\": {e}")),
                });
            }
        };
        if let Some(at) = from {
            if let Some(first) = self.chain.iter().position(|(c, _)| *c == canonical) {
                let mut names: Vec<String> = self.chain[first..]
                    .iter()
                    .map(|(_, s)| s.display().to_string())
                    .collect();
                names.push(path.display().to_string());
                return Err(Error {
                    at: at.clone(),
                    message: format!("include loop: {}", names.join(" -> ")),
                });
            }
            if self.chain.len() >= MAX_INCLUDE_DEPTH {
                return Err(Error {
                    at: at.clone(),
                    message: format!("includes nested more than {MAX_INCLUDE_DEPTH} files deep"),
                });
            }
        }
        self.chain.push((canonical, Arc::clone(&shown)));
        let result = self.source(&bytes, shown);
        self.chain.pop();
        result
    }

    fn source(&mut self, src: &[u8], file: Arc<Path>) -> Result<Vec<Directive>, Error> {
        let mut lx = Lexer::new(src, Arc::clone(&file));
        let err = |line: u32, message: String| Error::new(&file, line, message);
        let mut top = Vec::new();
        // Blocks are a stack, not recursion: `a{a{a{…` from a hostile file cannot overflow.
        let mut open: Vec<Open> = Vec::new();
        loop {
            let first = lx.next_token()?;
            let name = match first.tok {
                Tok::Word(arg) => arg.text,
                Tok::Close => {
                    let Some(block) = open.pop() else {
                        return Err(err(first.line, "unexpected \"}\": no block is open here".into()));
                    };
                    let mut done = block.directive;
                    done.block = Some(block.children);
                    open.last_mut().map_or(&mut top, |o| &mut o.children).push(done);
                    continue;
                }
                Tok::Eof => {
                    if let Some(block) = open.pop() {
                        let (name, line) = (block.directive.name, block.directive.at.line);
                        return Err(err(
                            line,
                            format!("\"{name}\" block is not closed: unexpected end of file, expecting \"}}\""),
                        ));
                    }
                    return Ok(top);
                }
                Tok::Semi => return Err(err(first.line, "unexpected \";\": no directive before it".into())),
                Tok::Open => return Err(err(first.line, "unexpected \"{\": no directive before it".into())),
            };
            let at = Pos {
                file: Arc::clone(&file),
                line: first.line,
            };
            let mut directive = Directive {
                name,
                args: Vec::new(),
                block: None,
                at,
            };
            let opens_block = loop {
                let t = lx.next_token()?;
                match t.tok {
                    Tok::Word(arg) => directive.args.push(arg),
                    Tok::Semi => break false,
                    Tok::Open if directive.name.ends_with("_by_lua_block") => {
                        let lua = lx.lua_block(t.line)?;
                        directive.args.push(Arg {
                            text: lua,
                            quoted: false,
                        });
                        break false;
                    }
                    Tok::Open => break true,
                    Tok::Close | Tok::Eof => {
                        let found = match t.tok {
                            Tok::Close if t.line == directive.at.line => "found \"}\"".to_string(),
                            Tok::Close => format!("found \"}}\" on line {}", t.line),
                            _ => "reached the end of the file".to_string(),
                        };
                        let name = &directive.name;
                        return Err(err(
                            directive.at.line,
                            format!("missing \";\" after \"{name}\" ({found})"),
                        ));
                    }
                }
            };
            let expand = directive.name == "include" && self.prefix.is_some();
            if opens_block && expand {
                return Err(err(
                    directive.at.line,
                    "directive \"include\" is not terminated by \";\"".into(),
                ));
            }
            if opens_block {
                if self.depth + open.len() >= MAX_BLOCK_DEPTH {
                    let message = format!("blocks nested more than {MAX_BLOCK_DEPTH} deep");
                    return Err(err(directive.at.line, message));
                }
                open.push(Open {
                    directive,
                    children: Vec::new(),
                });
                continue;
            }
            let included = if expand {
                self.depth += open.len();
                let included = self.include(&directive);
                self.depth -= open.len();
                included?
            } else {
                vec![directive]
            };
            open.last_mut().map_or(&mut top, |o| &mut o.children).extend(included);
        }
    }

    fn include(&mut self, directive: &Directive) -> Result<Vec<Directive>, Error> {
        let at = &directive.at;
        let [pattern] = directive.args.as_slice() else {
            return Err(Error {
                at: at.clone(),
                message: "invalid number of arguments in \"include\" directive".into(),
            });
        };
        let prefix = self.prefix.clone().unwrap_or_default();
        let full = prefix.join(&pattern.text);
        if !glob::is_pattern(&full.to_string_lossy()) {
            return self.file(&full, Some(at));
        }
        let mut out = Vec::new();
        for path in glob::expand(&full) {
            out.extend(self.file(&path, Some(at))?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Vec<Directive> {
        parse_str(src, "t.conf").unwrap()
    }

    fn error(src: &str) -> (u32, String) {
        let e = parse_str(src, "t.conf").unwrap_err();
        assert_eq!(&*e.at.file, Path::new("t.conf"));
        (e.at.line, e.message)
    }

    fn args(d: &Directive) -> Vec<&str> {
        d.args.iter().map(Arg::as_str).collect()
    }

    const SCIM: &str = "\
http {
    upstream scim {
        server 10.0.0.1:8000 weight=2 max_fails=3 fail_timeout=10s;
        keepalive 32;
    }
    limit_req_zone $http_authorization zone=idp:10m rate=10r/s;
    server {
        listen 443 ssl http2;
        server_name scim.example.com;
        ssl_certificate /etc/ssl/scim.pem;
        location /scim/v2/ {
            proxy_pass http://scim;
            proxy_set_header Host $host;
            limit_req zone=idp burst=20 nodelay;
        }
        location = /scim/v2/Bulk { client_max_body_size 4m; proxy_pass http://scim; }
    }
}
";

    #[test]
    fn reads_a_scim_config_into_a_tree_with_lines() {
        let top = parse(SCIM);
        assert_eq!(top.len(), 1);
        let http = &top[0];
        assert_eq!((http.name.as_str(), http.args.len(), http.at.line), ("http", 0, 1));
        let names: Vec<&str> = http.children().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["upstream", "limit_req_zone", "server"]);

        let upstream = &http.children()[0];
        assert_eq!(args(upstream), ["scim"]);
        let server = upstream.find("server").next().unwrap();
        assert_eq!(
            args(server),
            ["10.0.0.1:8000", "weight=2", "max_fails=3", "fail_timeout=10s"]
        );
        assert_eq!(server.at.line, 3);
        assert_eq!(upstream.find("keepalive").next().unwrap().arg(0), Some("32"));

        let zone = &http.children()[1];
        assert_eq!(args(zone), ["$http_authorization", "zone=idp:10m", "rate=10r/s"]);
        assert_eq!(zone.at.line, 6);

        let srv = &http.children()[2];
        assert_eq!(args(srv.find("listen").next().unwrap()), ["443", "ssl", "http2"]);
        let locations: Vec<&Directive> = srv.find("location").collect();
        assert_eq!(args(locations[0]), ["/scim/v2/"]);
        assert_eq!(locations[0].at.line, 11);
        assert_eq!(
            args(locations[0].find("limit_req").next().unwrap()),
            ["zone=idp", "burst=20", "nodelay"]
        );
        assert_eq!(locations[0].find("limit_req").next().unwrap().at.line, 14);
        assert_eq!(args(locations[1]), ["=", "/scim/v2/Bulk"]);
        assert_eq!(locations[1].children().len(), 2);
        assert_eq!(locations[1].children()[1].at.line, 16);
        assert!(locations[1].children()[1].block.is_none());
        assert_eq!(format!("{}", locations[1].at), "t.conf:16");
    }

    #[test]
    fn empty_blocks_and_empty_files() {
        assert_eq!(parse("events {}")[0].block, Some(vec![]));
        assert!(parse("").is_empty());
        assert!(parse("  # only a comment\n\n").is_empty());
    }

    #[test]
    fn multi_line_arguments_keep_the_directive_line() {
        let top = parse("\n\nlog_format main\n   '$remote_addr'\n   \"$status\";\nnext;");
        assert_eq!(top[0].at.line, 3);
        assert_eq!(args(&top[0]), ["main", "$remote_addr", "$status"]);
        assert!(top[0].args[1].quoted && !top[0].args[0].quoted);
        assert_eq!(top[1].at.line, 6);
    }

    #[test]
    fn if_conditions_split_as_nginx_splits_them() {
        let top = parse("if ($request_method = \"POST\") { return 405; }");
        assert_eq!(args(&top[0]), ["($request_method", "=", "POST", ")"]);
        assert_eq!(top[0].children()[0].name, "return");
    }

    #[test]
    fn parse_str_keeps_include_directives() {
        let top = parse("http { include conf.d/*.conf; }");
        assert_eq!(top[0].children()[0].name, "include");
        assert_eq!(top[0].children()[0].arg(0), Some("conf.d/*.conf"));
    }

    #[test]
    fn lua_blocks_are_kept_as_one_raw_argument() {
        let src = "location /t {\n  content_by_lua_block {\n    local t = {}\n    ngx.say(\"}\")\n  }\n  set_by_lua_block $x { return 1 }\n}\n";
        let loc = &parse(src)[0];
        let lua = &loc.children()[0];
        assert_eq!(lua.name, "content_by_lua_block");
        assert_eq!(lua.args.len(), 1);
        assert!(lua.block.is_none());
        assert_eq!(lua.arg(0), Some("\n    local t = {}\n    ngx.say(\"}\")\n  "));
        assert_eq!(args(&loc.children()[1]), ["$x", " return 1 "]);
        assert_eq!(loc.children()[1].at.line, 6);
    }

    #[test]
    fn stray_close_brace() {
        assert_eq!(
            error("events {}\n}\n"),
            (2, "unexpected \"}\": no block is open here".into())
        );
    }

    #[test]
    fn stray_semicolon_and_open_brace() {
        assert_eq!(error("a;\n\n;").0, 3);
        assert!(error("a;\n;").1.starts_with("unexpected \";\""));
        assert_eq!(
            error("http {\n  { }\n}"),
            (2, "unexpected \"{\": no directive before it".into())
        );
    }

    #[test]
    fn missing_semicolon_before_a_close_brace() {
        let (line, msg) = error("server {\n    listen 443\n}\n");
        assert_eq!(line, 2);
        assert_eq!(msg, "missing \";\" after \"listen\" (found \"}\" on line 3)");
        let (line, msg) = error("\nlocation / { return 200 }");
        assert_eq!(
            (line, msg.as_str()),
            (2, "missing \";\" after \"return\" (found \"}\")")
        );
        // After a quoted argument too (nginx says `unexpected "}"`).
        assert_eq!(error("a {\n  return 200 \"ok\"}\n}").0, 2);
    }

    #[test]
    fn missing_semicolon_at_end_of_file() {
        let (line, msg) = error("events {}\nworker_processes 2\n");
        assert_eq!(line, 2);
        assert_eq!(
            msg,
            "missing \";\" after \"worker_processes\" (reached the end of the file)"
        );
    }

    #[test]
    fn unclosed_block_names_the_block_and_its_line() {
        let (line, msg) = error("events {}\nhttp {\n  server {\n  }\n");
        assert_eq!(line, 2);
        assert_eq!(
            msg,
            "\"http\" block is not closed: unexpected end of file, expecting \"}\""
        );
    }

    #[test]
    fn unterminated_string_and_junk_after_quotes_carry_their_lines() {
        let (line, msg) = error("http {\n  add_header X \"open;\n}\n");
        assert_eq!(line, 2);
        assert!(msg.starts_with("unterminated string"));
        let (line, msg) = error("http {\n\n  add_header X \"a\"b;\n}\n");
        assert_eq!(line, 3);
        assert!(msg.starts_with("unexpected \"b\""));
        assert_eq!(error("content_by_lua_block {\n if x then\n").0, 1);
    }

    #[test]
    fn errors_display_like_nginx() {
        let e = parse_str("}", "/etc/nginx/nginx.conf").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unexpected \"}\": no block is open here in /etc/nginx/nginx.conf:1"
        );
    }

    #[test]
    fn hostile_nesting_is_refused_not_overflowed() {
        let deep = "a{".repeat(100_000) + &"}".repeat(100_000);
        let (line, msg) = error(&deep);
        assert_eq!(line, 1);
        assert_eq!(msg, "blocks nested more than 100 deep");
        let ok = "a{".repeat(100) + &"}".repeat(100);
        assert_eq!(parse(&ok).len(), 1);
    }
}
