//! `scimitar -t -c FILE` behaves like `nginx -t`.

mod common;

use std::process::Command;

fn check(conf: &str) -> (i32, String, String) {
    let dir = common::scratch_dir("cli");
    let path = dir.join("c.yaml");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scimitar"))
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_config_passes_with_one_line() {
    let conf = std::fs::read_to_string(common::repo().join("conf/scimitar.yaml")).unwrap();
    let (code, out, _) = check(&conf);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("test is successful"));
}

#[test]
fn a_bad_file_fails_listing_every_problem_with_its_place() {
    let conf = r#"
listeners:
  - address: 127.0.0.1:8080
upstreams:
  scim:
    servers:
      - address: 127.0.0.1:8001
      - address: 127.0.0.1
    timeouts: {read: 30}
routes:
  - base_path: /scim/v2
    upstream: scimm
"#;
    let (code, out, err) = check(conf);
    assert_eq!(code, 1, "stdout: {out}");
    for want in [
        "upstreams.scim.servers[1].address: `127.0.0.1` has no port",
        "upstreams.scim.timeouts.read: `30` has no unit",
        "routes[0].upstream: no pool named `scimm`",
        "3 problem(s)",
        "test failed",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn a_missing_file_and_unset_variables_are_reported() {
    let out = Command::new(env!("CARGO_BIN_EXE_scimitar"))
        .args(["-t", "-c", "/nonexistent/scimitar.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file /nonexistent/scimitar.yaml"));

    let (code, _, err) = check("listeners: [{address: \"${SCIMITAR_TEST_SURELY_UNSET}\"}]\n");
    assert_eq!(code, 1);
    assert!(
        err.contains("line 1: environment variable SCIMITAR_TEST_SURELY_UNSET is not set"),
        "{err}"
    );
}

#[test]
fn t_warns_about_a_certificate_close_to_expiry_and_fails_on_an_expired_one() {
    use scimitar::tls::testing::{Ca, Leaf};
    let dir = common::scratch_dir("cli-tls");
    let ca = Ca::new("cli CA").unwrap();
    let (soon_c, soon_k) = ca
        .write_leaf(
            &dir,
            "soon",
            &Leaf {
                not_after: 5 * 86_400,
                ..Leaf::server("soon.example", &["soon.example"])
            },
        )
        .unwrap();
    let (old_c, old_k) = ca
        .write_leaf(
            &dir,
            "old",
            &Leaf {
                not_before: -30 * 86_400,
                not_after: -3600,
                ..Leaf::server("old.example", &["old.example"])
            },
        )
        .unwrap();
    let conf = |c: &std::path::Path, k: &std::path::Path| {
        format!(
            "listeners:\n  - name: edge\n    address: 127.0.0.1:8443\n    tls: {{cert: {}, key: {}}}\nupstreams:\n  scim:\n    servers: [127.0.0.1:8001]\nroutes:\n  - base_path: /v2\n    upstream: scim\n",
            c.display(),
            k.display()
        )
    };
    let (code, out, err) = check(&conf(&soon_c, &soon_k));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("test is successful"));
    assert!(
        err.contains("listeners[0].tls: certificate") && err.contains("renew it"),
        "{err}"
    );

    let (code, _, err) = check(&conf(&old_c, &old_k));
    assert_eq!(code, 1);
    assert!(err.contains("expired on") && err.contains("test failed"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn t_refuses_an_admin_address_that_a_public_listener_shares() {
    let conf = |admin: &str| {
        format!(
            "listeners:\n  - name: main\n    address: 127.0.0.1:8080\n  - name: all\n    address: \"0.0.0.0:8081\"\nadmin:\n  address: \"{admin}\"\nupstreams:\n  scim:\n    servers: [127.0.0.1:8001]\nroutes:\n  - base_path: /v2\n    upstream: scim\n"
        )
    };
    let (code, _, err) = check(&conf("127.0.0.1:8080"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("admin.address: 127.0.0.1:8080 overlaps listeners[0].address (127.0.0.1:8080); give the admin listener a port of its own"),
        "{err}"
    );
    // A wildcard listener takes its port on every address, the admin's loopback one too.
    let (code, _, err) = check(&conf("127.0.0.1:8081"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("admin.address: 127.0.0.1:8081 overlaps listeners[1].address (0.0.0.0:8081)"),
        "{err}"
    );
    let (code, _, err) = check(&conf("127.0.0.1:9090"));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn hash_token_prints_the_digest_of_stdin_for_admin_token_sha256() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimitar"))
        .arg("hash-token")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"test\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        digest,
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
    let (code, _, err) = check(&format!(
        "listeners: [{{address: \"127.0.0.1:8080\"}}]\nadmin: {{address: \"127.0.0.1:9090\", token_sha256: {digest}}}\nupstreams: {{scim: {{servers: [127.0.0.1:8001]}}}}\nroutes: [{{base_path: /v2, upstream: scim}}]\n"
    ));
    assert_eq!(code, 0, "{err}");
}

/// `make install DESTDIR=…` with the binary these tests run (no release build).
fn make_install(destdir: &std::path::Path, extra: &[&str]) -> String {
    let out = Command::new("make")
        .arg("-C")
        .arg(common::repo())
        .arg("install")
        .arg(format!("DESTDIR={}", destdir.display()))
        .arg(format!("INSTALL_BIN={}", env!("CARGO_BIN_EXE_scimitar")))
        .args(extra)
        .output()
        .expect("run make (make test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "make install failed:\n{text}");
    text
}

#[test]
fn make_install_lays_out_binary_config_and_unit_and_keeps_an_edited_config() {
    let dest = common::scratch_dir("install");
    make_install(&dest, &[]);
    let bin = dest.join("usr/local/bin/scimitar");
    let conf = dest.join("etc/scimitar/scimitar.yaml");
    let unit = std::fs::read_to_string(dest.join("lib/systemd/system/scimitar.service")).unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/local/bin/scimitar -c /etc/scimitar/scimitar.yaml\n"),
        "{unit}"
    );
    assert!(unit.contains("\nExecStartPre=/usr/local/bin/scimitar -t -c /etc/scimitar/scimitar.yaml\n"));
    assert!(unit.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"));
    // The installed binary accepts the installed config.
    let out = Command::new(&bin).arg("-t").arg("-c").arg(&conf).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A second install (another PREFIX) keeps the operator's config and follows the prefix.
    std::fs::write(&conf, "# edited\n").unwrap();
    let said = make_install(&dest, &["PREFIX=/usr"]);
    assert!(said.contains("kept "), "{said}");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "# edited\n");
    let unit = std::fs::read_to_string(dest.join("lib/systemd/system/scimitar.service")).unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/bin/scimitar -c /etc/scimitar/scimitar.yaml\n"),
        "{unit}"
    );
    assert!(dest.join("usr/bin/scimitar").exists());
    let _ = std::fs::remove_dir_all(&dest);
}
