//! Files on disk: `include` resolution, the fixtures, and agreement with `nginx -t`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{parse_file, parse_file_with, parse_str, Directive, Options};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nginx");

/// The fixtures `nginx -t` must accept, relative to [`FIXTURES`], with the oldest nginx that
/// has their syntax. `scim-modules.conf` is not here: it needs the Lua and njs modules.
const NGINX_FIXTURES: [(&str, (u32, u32, u32)); 10] = [
    ("diff/scim-diff.conf", (1, 0, 0)),
    ("scim-basic.conf", (1, 0, 0)),
    ("scim-edge.conf", (1, 0, 0)),
    ("scim-pool.conf", (1, 0, 0)),
    ("scim-includes/nginx.conf", (1, 0, 0)),
    ("scim-routes.conf", (1, 0, 0)),
    ("scim-headers.conf", (1, 0, 0)),
    ("scim-scripting.conf", (1, 0, 0)),
    ("scim-secrets.conf", (1, 0, 0)),
    // `http2 on;`
    ("scim-modern.conf", (1, 25, 1)),
];

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("scimitar-nginx-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `text` to `rel`, creating directories; returns the full path.
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Every directive, depth first, as `name@file:line` with the file relative to `base`.
fn flatten(dirs: &[Directive], base: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in dirs {
        let file = d.at.file.strip_prefix(base).unwrap_or(&d.at.file).display().to_string();
        out.push(format!("{}@{}:{}", d.name, file, d.at.line));
        out.extend(flatten(d.children(), base));
    }
    out
}

fn names(dirs: &[Directive]) -> Vec<&str> {
    dirs.iter().map(|d| d.name.as_str()).collect()
}

// ---- include resolution ----

#[test]
fn include_is_expanded_in_place_with_each_files_own_lines() {
    let t = TempDir::new("inc");
    let main = t.write(
        "nginx.conf",
        "events {}\nhttp {\n    include conf.d/scim.conf;\n    server_tokens off;\n}\n",
    );
    t.write(
        "conf.d/scim.conf",
        "# scim\n\nupstream scim { server 10.0.0.1:8000; }\n",
    );
    let top = parse_file(&main).unwrap();
    assert_eq!(
        flatten(&top, &t.0),
        [
            "events@nginx.conf:1",
            "http@nginx.conf:2",
            "upstream@conf.d/scim.conf:3",
            "server@conf.d/scim.conf:3",
            "server_tokens@nginx.conf:4",
        ]
    );
}

#[test]
fn nested_relative_includes_resolve_against_the_main_files_directory() {
    let t = TempDir::new("rel");
    let main = t.write("nginx.conf", "include conf.d/a.conf;\n");
    t.write("conf.d/a.conf", "include snippets/b.conf;\n");
    t.write("snippets/b.conf", "from_main_dir on;\n");
    // The decoy a nginx-unaware reader would pick (relative to conf.d/).
    t.write("conf.d/snippets/b.conf", "from_including_dir on;\n");
    assert_eq!(names(&parse_file(&main).unwrap()), ["from_main_dir"]);
}

#[test]
fn prefix_option_overrides_the_main_files_directory() {
    let t = TempDir::new("prefix");
    let main = t.write("copy/nginx.conf", "include snippets/x.conf;\n");
    t.write("etc-nginx/snippets/x.conf", "moved on;\n");
    let options = Options {
        prefix: Some(t.0.join("etc-nginx")),
    };
    assert_eq!(names(&parse_file_with(&main, &options).unwrap()), ["moved"]);
    assert!(parse_file(&main).unwrap_err().message.contains("not found"));
}

#[test]
fn absolute_include_paths_ignore_the_prefix() {
    let t = TempDir::new("abs");
    let abs = t.write("elsewhere/x.conf", "abs on;\n");
    let main = t.write("main/nginx.conf", &format!("include {};\n", abs.display()));
    assert_eq!(names(&parse_file(&main).unwrap()), ["abs"]);
}

#[test]
fn globs_are_sorted_skip_hidden_files_and_match_in_any_component() {
    let t = TempDir::new("glob");
    let main = t.write(
        "nginx.conf",
        "include conf.d/*.conf;\ninclude sites/site-?.conf;\ninclude sites/[ab]*.conf;\ninclude tenants/*/scim.conf;\n",
    );
    t.write("conf.d/20-b.conf", "b;\n");
    t.write("conf.d/10-a.conf", "a;\n");
    t.write("conf.d/B-upper.conf", "upper;\n");
    t.write("conf.d/.hidden.conf", "hidden;\n");
    t.write("conf.d/notes.txt", "txt;\n");
    t.write("sites/site-1.conf", "s1;\n");
    t.write("sites/site-10.conf", "s10;\n");
    t.write("sites/alpha.conf", "alpha;\n");
    t.write("sites/beta.conf", "beta;\n");
    t.write("sites/gamma.conf", "gamma;\n");
    t.write("tenants/t2/scim.conf", "t2;\n");
    t.write("tenants/t1/scim.conf", "t1;\n");
    t.write("tenants/t3/other.conf", "t3;\n");
    let top = parse_file(&main).unwrap();
    // Byte order: digits before upper case before lower case.
    assert_eq!(names(&top), ["a", "b", "upper", "s1", "alpha", "beta", "t1", "t2"]);
}

#[test]
fn a_glob_that_matches_nothing_includes_nothing() {
    let t = TempDir::new("empty");
    let main = t.write(
        "nginx.conf",
        "http {\n  include sites-enabled/*;\n  include conf.d/*.conf;\n}\n",
    );
    fs::create_dir_all(t.0.join("conf.d")).unwrap();
    assert_eq!(parse_file(&main).unwrap()[0].block, Some(vec![]));
}

#[test]
fn the_same_file_may_be_included_twice() {
    let t = TempDir::new("twice");
    let main = t.write(
        "nginx.conf",
        "location /a { include p.conf; }\nlocation /b { include p.conf; }\n",
    );
    t.write("p.conf", "proxy_pass http://scim;\n");
    let top = parse_file(&main).unwrap();
    assert_eq!(flatten(&top, &t.0)[1], "proxy_pass@p.conf:1");
    assert_eq!(flatten(&top, &t.0)[3], "proxy_pass@p.conf:1");
}

#[test]
fn missing_include_file_is_reported_at_the_include() {
    let t = TempDir::new("missing");
    let main = t.write("nginx.conf", "events {}\n\nhttp {\n    include conf.d/scim.conf;\n}\n");
    let e = parse_file(&main).unwrap_err();
    assert_eq!((&*e.at.file, e.at.line), (main.as_path(), 4));
    assert_eq!(
        e.message,
        format!("include file \"{}\" not found", t.0.join("conf.d/scim.conf").display())
    );
}

#[test]
fn missing_main_file() {
    let t = TempDir::new("nomain");
    let e = parse_file(t.0.join("nginx.conf")).unwrap_err();
    assert_eq!(e.at.line, 0);
    assert!(e.message.starts_with("cannot read \""), "{}", e.message);
    assert!(!e.to_string().contains(":0"));
}

#[test]
fn a_directory_matched_by_a_glob_cannot_be_read() {
    let t = TempDir::new("dir");
    let main = t.write("nginx.conf", "include conf.d/*;\n");
    fs::create_dir_all(t.0.join("conf.d/sub")).unwrap();
    let e = parse_file(&main).unwrap_err();
    assert_eq!(e.at.line, 1);
    assert!(e.message.starts_with("cannot read include file"), "{}", e.message);
}

#[test]
fn include_loops_are_refused_with_the_chain() {
    let t = TempDir::new("loop");
    let main = t.write("nginx.conf", "include a.conf;\n");
    let a = t.write("a.conf", "ok;\ninclude b.conf;\n");
    let b = t.write("b.conf", "\n\ninclude a.conf;\n");
    let e = parse_file(&main).unwrap_err();
    assert_eq!((&*e.at.file, e.at.line), (b.as_path(), 3));
    assert_eq!(
        e.message,
        format!("include loop: {} -> {} -> {}", a.display(), b.display(), a.display())
    );

    let main = t.write("self.conf", "include self.conf;\n");
    assert!(parse_file(main).unwrap_err().message.starts_with("include loop"));
}

#[test]
fn errors_inside_an_included_file_name_that_file() {
    let t = TempDir::new("inner");
    let main = t.write("nginx.conf", "http {\n  include conf.d/*.conf;\n}\n");
    let bad = t.write("conf.d/scim.conf", "server {\n  listen 443\n}\n");
    let e = parse_file(&main).unwrap_err();
    assert_eq!((&*e.at.file, e.at.line), (bad.as_path(), 2));
    assert_eq!(
        e.to_string(),
        format!(
            "missing \";\" after \"listen\" (found \"}}\" on line 3) in {}:2",
            bad.display()
        )
    );
}

#[test]
fn include_needs_exactly_one_argument_and_no_block() {
    let t = TempDir::new("args");
    let main = t.write("nginx.conf", "\ninclude a.conf b.conf;\n");
    let e = parse_file(&main).unwrap_err();
    assert_eq!(
        (e.at.line, e.message.as_str()),
        (2, "invalid number of arguments in \"include\" directive")
    );
    let main = t.write("block.conf", "include a.conf { }\n");
    let e = parse_file(&main).unwrap_err();
    assert_eq!(
        (e.at.line, e.message.as_str()),
        (1, "directive \"include\" is not terminated by \";\"")
    );
}

#[test]
fn block_depth_counts_across_includes() {
    let t = TempDir::new("depth");
    let main = t.write(
        "nginx.conf",
        &("a{".repeat(60) + "include deep.conf;" + &"}".repeat(60)),
    );
    let deep = t.write("deep.conf", &("b{".repeat(60) + &"}".repeat(60)));
    let e = parse_file(&main).unwrap_err();
    assert_eq!(&*e.at.file, deep.as_path());
    assert_eq!(e.message, "blocks nested more than 100 deep");
}

// ---- fixtures ----

fn fixture(rel: &str) -> Vec<Directive> {
    parse_file(Path::new(FIXTURES).join(rel)).unwrap_or_else(|e| panic!("{e}"))
}

fn find<'a>(dirs: &'a [Directive], name: &str) -> Vec<&'a Directive> {
    dirs.iter().filter(|d| d.name == name).collect()
}

#[test]
fn fixture_basic() {
    let top = fixture("scim-basic.conf");
    assert_eq!(names(&top), ["events", "http"]);
    let http = &top[1];
    let upstream = http.find("upstream").next().unwrap();
    assert_eq!(upstream.arg(0), Some("scim"));
    assert_eq!(upstream.at.line, 6);
    let server = http.find("server").next().unwrap();
    let bulk = server.find("location").nth(1).unwrap();
    assert_eq!(
        (bulk.arg(0), bulk.arg(1), bulk.at.line),
        (Some("="), Some("/scim/v2/Bulk"), 30)
    );
    let header = server
        .find("location")
        .next()
        .unwrap()
        .find("proxy_set_header")
        .nth(1)
        .unwrap();
    assert_eq!(
        (header.arg(0), header.arg(1), header.args[1].quoted),
        (Some("Connection"), Some(""), true)
    );
}

#[test]
fn fixture_edge_quoting() {
    let top = fixture("scim-edge.conf");
    let http = &top[1];
    let log = http.find("log_format").next().unwrap();
    assert_eq!(log.args.len(), 5);
    assert_eq!(log.arg(4), Some("\"note\":\"a ; b { c } # d\"}"));
    let map = http.find("map").nth(1).unwrap();
    // In a map, the key is the "directive name"; quoting it is allowed, as in nginx.
    assert_eq!(
        (map.children()[2].name.as_str(), map.children()[2].arg(0)),
        ("~^Bearer\\s+(?<tok>\\S+)$", Some("$tok"))
    );
    let server = http.find("server").next().unwrap();
    let names: Vec<&str> = server
        .find("server_name")
        .next()
        .unwrap()
        .args
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(names, ["scim.example.com", "scim-alt.example.com"]);
    let headers: Vec<&Directive> = server.find("add_header").collect();
    assert_eq!(headers[1].arg(1), Some("default-src 'none'; frame-ancestors 'none'"));
    assert_eq!(headers[2].arg(1), Some("quote \" backslash \\ tab\tend"));
    let regex = server.find("location").next().unwrap();
    assert_eq!(regex.arg(1), Some("^/scim/v2/(Users|Groups)/[0-9a-f]{8}-"));
    let cond = regex.find("if").next().unwrap();
    assert_eq!(
        cond.args.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        ["($ssl_client_verify", "!=", "SUCCESS", ")"]
    );
    let tenant = regex.find("proxy_set_header").nth(1).unwrap();
    assert_eq!(tenant.arg(1), Some("${tenant}"));
    let fallback = server.find("location").nth(2).unwrap().find("return").next().unwrap();
    assert!(fallback
        .arg(1)
        .unwrap()
        .starts_with("{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:Error\"]"));
}

#[test]
fn fixture_pool() {
    let top = fixture("scim-pool.conf");
    let http = &top[1];
    let ups: Vec<&Directive> = http.find("upstream").collect();
    assert_eq!(
        names(ups[0].children()),
        ["hash", "server", "server", "server", "keepalive"]
    );
    assert_eq!(ups[0].children()[0].args.len(), 2);
    assert_eq!(ups[1].children()[0].name, "least_conn");
    assert!(ups[1].children()[0].args.is_empty());
    let listens: Vec<Option<&str>> = http
        .find("server")
        .next()
        .unwrap()
        .find("listen")
        .map(|d| d.arg(0))
        .collect();
    assert_eq!(listens, [Some("127.0.0.1:18401"), Some("[::1]:18401")]);
}

#[test]
fn fixture_includes() {
    let base = Path::new(FIXTURES).join("scim-includes");
    let top = fixture("scim-includes/nginx.conf");
    let flat = flatten(&top, &base);
    let expected = [
        "events@nginx.conf:3",
        "http@nginx.conf:5",
        "upstream@conf.d/10-upstreams.conf:1",
        "server@conf.d/10-upstreams.conf:2",
        "server@conf.d/10-upstreams.conf:3",
        "keepalive@conf.d/10-upstreams.conf:4",
        "limit_req_zone@conf.d/10-upstreams.conf:6",
        "server@conf.d/20-scim.conf:1",
        "listen@conf.d/20-scim.conf:2",
        "server_name@conf.d/20-scim.conf:3",
        "ssl_certificate@conf.d/20-scim.conf:4",
        "ssl_certificate_key@conf.d/20-scim.conf:5",
        "location@conf.d/20-scim.conf:7",
        "proxy_pass@snippets/scim-proxy.conf:1",
        "proxy_set_header@snippets/scim-proxy.conf:2",
        "proxy_set_header@snippets/scim-proxy.conf:3",
        "limit_req@conf.d/20-scim.conf:10",
        "location@conf.d/20-scim.conf:12",
        "client_max_body_size@conf.d/20-scim.conf:13",
        "proxy_pass@snippets/scim-proxy.conf:1",
        "proxy_set_header@snippets/scim-proxy.conf:2",
        "proxy_set_header@snippets/scim-proxy.conf:3",
    ];
    assert_eq!(flat, expected);
    assert!(find(&top, "include").is_empty());
}

// ---- agreement with nginx ----

/// `nginx -t` on `conf` inside a private copy of the fixtures (nginx -t creates logs and
/// cache directories under its prefix). `None` when nginx is not installed.
fn nginx_accepts(conf_rel: &str, extra: &[(&str, &str)]) -> Option<Result<(), String>> {
    let nginx = nginx_binary()?;
    let t = TempDir::new("nginx-t");
    copy_tree(Path::new(FIXTURES), &t.0);
    for (rel, text) in extra {
        t.write(rel, text);
    }
    fs::create_dir_all(t.0.join("logs")).unwrap();
    let prefix = format!("{}/", t.0.display());
    let conf = t.0.join(conf_rel);
    let error_log = t.0.join("logs/error.log");
    // -t only reads and checks the configuration: no server is started.
    let out = Command::new(nginx)
        .arg("-t")
        .arg("-q")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(&error_log)
        .output()
        .unwrap();
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

fn nginx_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .or_else(|| {
        let out = Command::new("sh").args(["-c", "command -v nginx"]).output().ok()?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!path.is_empty()).then(|| PathBuf::from(path))
    })
}

/// `nginx -v` (printed on stderr as `nginx version: nginx/1.22.1`).
fn nginx_version() -> Option<(u32, u32, u32)> {
    let out = Command::new(nginx_binary()?).arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let v = text.split("nginx/").nth(1)?.split_whitespace().next()?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next().flatten().unwrap_or(0)))
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

#[test]
fn nginx_accepts_every_fixture() {
    let version = nginx_version();
    for (rel, needs) in NGINX_FIXTURES {
        fixture(rel);
        if version.is_some_and(|v| v < needs) {
            println!("nginx {version:?} is older than {needs:?}: skipping `nginx -t` on {rel}");
            continue;
        }
        match nginx_accepts(rel, &[]) {
            None => {
                println!("nginx is not installed: skipping `nginx -t` on the fixtures");
                return;
            }
            Some(result) => result.unwrap_or_else(|e| panic!("nginx -t refused {rel}:\n{e}")),
        }
    }
}

/// The lexer's quirks, checked against nginx itself: each snippet goes inside a `server`
/// block, and nginx must accept it exactly when this parser does.
#[test]
fn nginx_and_this_parser_agree_on_syntax() {
    let cases: &[(&str, bool)] = &[
        ("return 200 foo};", true),
        ("return 200 a#b;", true),
        ("return 200 \"a\"x;", false),
        ("return 200 \"a\"};", false),
        ("return 200 ;;", false),
        ("return 200 }", false),
        ("set $a ${host}x;", true),
        ("if ($host = \"x\") { return 404; }", true),
        ("add_header X \"a;b{c}#d\" always;", true),
        ("add_header X 'it\\'s' always;", true),
        ("add_header X b\"c always;", true),
        ("return 200 \"unterminated;", false),
        ("location /a { location /a/b { return 204; } }", true),
    ];
    let mut skipped = false;
    for (snippet, accepted) in cases {
        let conf = format!("events {{}}\nhttp {{\n server {{\n  listen 127.0.0.1:8099;\n  {snippet}\n }}\n}}\n");
        let ours = parse_str(&conf, "snippet.conf");
        assert_eq!(ours.is_ok(), *accepted, "{snippet}: {ours:?}");
        match nginx_accepts("snippet.conf", &[("snippet.conf", &conf)]) {
            None => skipped = true,
            Some(theirs) => assert_eq!(theirs.is_ok(), *accepted, "nginx on {snippet}: {theirs:?}"),
        }
    }
    if skipped {
        println!("nginx is not installed: checked this parser only");
    }
}
