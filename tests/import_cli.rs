//! `scimitar import nginx FILE [-o OUT] [--allow-partial]` as a user runs it: the YAML file,
//! the report on stderr, the exit status, and `scimitar -t` on what it wrote.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(rel: &str) -> PathBuf {
    common::repo().join("tests/fixtures/nginx").join(rel)
}

fn scimitar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scimitar"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `scimitar -t -c FILE`: (exit status, stderr).
fn check(path: &Path) -> (i32, String) {
    let out = scimitar(&["-t", "-c", path.to_str().unwrap()]);
    (out.status.code().unwrap_or(-1), text(&out.stderr) + &text(&out.stdout))
}

#[test]
fn a_complete_translation_exits_0_and_its_output_passes_t() {
    let dir = common::scratch_dir("import-ok");
    let out_file = dir.join("scimitar.yaml");
    let conf = fixture("scim-includes/nginx.conf");
    let out = scimitar(&[
        "import",
        "nginx",
        conf.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(out.stdout.is_empty(), "the YAML goes to the file");
    let yaml = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        yaml.contains("# from conf.d/10-upstreams.conf:1: upstream scim { … }"),
        "{yaml}"
    );
    assert!(
        err.contains("conf.d/20-scim.conf:10: limit_req zone=idp burst=20 nodelay — translated with a difference: nginx refuses with 503"),
        "{err}"
    );
    assert!(err.contains("0 not translated"), "{err}");
    let (code, msg) = check(&out_file);
    assert_eq!(code, 0, "{msg}\n{yaml}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_partial_translation_exits_1_still_writes_and_allow_partial_accepts_it() {
    let dir = common::scratch_dir("import-partial");
    let out_file = dir.join("scimitar.yaml");
    let conf = fixture("scim-pool.conf");
    let args = [
        "import",
        "nginx",
        conf.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ];
    let out = scimitar(&args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("scim-pool.conf:36: location ~ ^/scim/v2/(ServiceProviderConfig|ResourceTypes|Schemas) { … } — not translated: regex locations"),
        "{err}"
    );
    assert!(err.contains("scim-pool.conf:49: return 200"), "{err}");
    assert!(err.contains("--allow-partial"), "the summary says how to accept: {err}");
    let yaml = std::fs::read_to_string(&out_file).unwrap();
    assert!(yaml.contains("scim_hash:"), "written despite exit 1");
    let (code, msg) = check(&out_file);
    assert_eq!(code, 0, "{msg}\n{yaml}");

    std::fs::remove_file(&out_file).unwrap();
    let mut partial = args.to_vec();
    partial.push("--allow-partial");
    let out = scimitar(&partial);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap(),
        yaml,
        "the same YAML either way"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_o_the_yaml_goes_to_stdout_and_the_report_to_stderr() {
    let conf = fixture("scim-basic.conf");
    let out = scimitar(&["import", "nginx", conf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let yaml = text(&out.stdout);
    assert!(yaml.starts_with("# Translated from nginx"), "{yaml}");
    assert!(yaml.contains("address: 127.0.0.1:18443"), "{yaml}");
    let err = text(&out.stderr);
    assert!(!err.contains("listeners:"), "{err}");
    assert!(err.contains("scim-basic.conf:27: limit_req"), "{err}");
}

#[test]
fn an_unreadable_or_unparsable_file_exits_2_naming_the_place() {
    let dir = common::scratch_dir("import-bad");
    let bad = dir.join("nginx.conf");
    std::fs::write(&bad, "events {}\nhttp {\n  server {\n    listen 80\n  }\n}\n").unwrap();
    let out_file = dir.join("out.yaml");
    let out = scimitar(&[
        "import",
        "nginx",
        bad.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("missing \";\" after \"listen\"") && err.contains("nginx.conf:4"),
        "{err}"
    );
    assert!(!out_file.exists(), "nothing is written for a file that does not parse");

    let out = scimitar(&["import", "nginx", dir.join("missing.conf").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.conf"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_documents_the_exit_codes_and_bad_arguments_exit_2() {
    let out = scimitar(&["import", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let usage = text(&out.stdout);
    for code in ["0  everything", "1  something", "2  FILE cannot be read"] {
        assert!(usage.contains(code), "{usage}");
    }
    let out = scimitar(&["import", "apache", "x.conf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("only `nginx`"));
    let out = scimitar(&["import", "nginx"]);
    assert_eq!(out.status.code(), Some(2));
    let out = scimitar(&["import", "nginx", "a.conf", "--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown option `--frobnicate`"));
}

/// Every credential written in tests/fixtures/nginx/scim-secrets.conf.
const SECRETS: &[&str] = &[
    "map-token-7f3a9c21",
    "bWFwdXNlcjpwNHNzdzByZA==",
    "mapkey-0b1c2d3e4f",
    "mapkey-9a8b7c6d5e",
    "mapvalue-5e6f7a8b",
    "dXNlcjpzM2NyM3Q=",
    "hdr-api-key-44d1e2",
    "setvar-secret-6c5d4e",
    "securelink-3e2d1c",
    "s3cr3t-api-key",
    "digestresp-2b3c",
    "ifarg-key-8d9e0f",
    "if-token-1a2b3c4d",
    "loc-token-9f8e7d",
    "cookie-sess-3a4b5c",
    "setcookie-7d8e9f",
    "addhdr-key-1f2e3d",
    "legacy-tok-6a7b8c",
];

#[test]
fn no_credential_of_the_nginx_config_appears_in_the_yaml_or_the_report() {
    let conf = fixture("scim-secrets.conf");
    let source = std::fs::read_to_string(&conf).unwrap();
    for s in SECRETS {
        assert!(source.contains(s), "{s} is no longer in the fixture");
    }
    let out = scimitar(&["import", "nginx", conf.to_str().unwrap(), "--allow-partial"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (yaml, report) = (text(&out.stdout), text(&out.stderr));
    let all = format!("{yaml}\n{report}");
    let leaked: Vec<&str> = SECRETS.iter().copied().filter(|s| all.contains(s)).collect();
    assert!(leaked.is_empty(), "leaked {leaked:?}:\n{all}");
    assert!(
        report.contains("proxy_set_header Authorization … — translated with a difference")
            && report.contains("export SCIMITAR_SECRET_AUTHORIZATION "),
        "the report says where the header's credential went: {report}"
    );

    // The header rules read them from the environment: -t refuses the file until they are set.
    let dir = common::scratch_dir("import-secrets");
    let file = dir.join("scimitar.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let (code, msg) = check(&file);
    assert_eq!(code, 1, "{msg}");
    assert!(msg.contains("SCIMITAR_SECRET_AUTHORIZATION is not set"), "{msg}");
    let mut t = Command::new(env!("CARGO_BIN_EXE_scimitar"));
    t.args(["-t", "-c", file.to_str().unwrap()]);
    for name in [
        "AUTHORIZATION",
        "AUTHORIZATION_2",
        "COOKIE",
        "SET_COOKIE",
        "X_DEBUG_TOKEN",
    ] {
        t.env(format!("SCIMITAR_SECRET_{name}"), "Bearer from-the-environment");
    }
    let out = t.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stderr), text(&out.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}
