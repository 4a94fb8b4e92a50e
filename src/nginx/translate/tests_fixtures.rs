//! Whole fixtures (tests/fixtures/nginx): each translation loads as a scimitar config (the
//! same check as `scimitar -t`), accounts for every directive, exits as it should, and holds
//! the parts that matter.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::exit_code;
use super::tests::{checked, s, T};
use crate::nginx::parse_file;

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nginx"))
}

/// Every fixture with the exit code its translation must give.
const FIXTURES: [(&str, u8); 11] = [
    ("diff/scim-diff.conf", 0),
    ("scim-basic.conf", 0),
    ("scim-includes/nginx.conf", 0),
    ("scim-modern.conf", 0),
    ("scim-edge.conf", 1),
    ("scim-pool.conf", 1),
    ("scim-routes.conf", 1),
    ("scim-headers.conf", 1),
    ("scim-scripting.conf", 1),
    ("scim-modules.conf", 1),
    ("scim-secrets.conf", 1),
];

fn fixture(rel: &str) -> T {
    let path = dir().join(rel);
    let top = parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
    checked(&top, path.parent().unwrap(), rel)
}

/// What `scimitar -t` checks: the YAML builds a config, certificates and all.
#[test]
fn every_fixture_translates_to_a_config_scimitar_loads() {
    let mut failed = Vec::new();
    for (rel, code) in FIXTURES {
        let f = fixture(rel);
        assert_eq!(exit_code(&f.t.notes, false), code, "{rel}: {:#?}", f.lines());
        assert_eq!(exit_code(&f.t.notes, true), 0, "{rel} with --allow-partial");
        if let Err(problems) = crate::config::from_str_with_env(&f.t.yaml, super::tests::secret_env) {
            failed.push(format!(
                "{rel}:\n  {}\n{}",
                problems
                    .0
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("\n  "),
                f.t.yaml
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "translations scimitar refuses:\n{}",
        failed.join("\n\n")
    );
}

#[test]
fn every_comment_names_a_fixture_file_and_line_that_exists() {
    for (rel, _) in FIXTURES {
        let f = fixture(rel);
        for line in f.t.yaml.lines().filter(|l| l.trim_start().starts_with("# from ")) {
            let place = line
                .trim_start()
                .trim_start_matches("# from ")
                .split(": ")
                .next()
                .unwrap();
            let (file, no) = place.rsplit_once(':').unwrap();
            let text = std::fs::read_to_string(f.base.join(file)).unwrap_or_else(|e| panic!("{rel}: {line}: {e}"));
            let no: usize = no.parse().unwrap();
            assert!(no >= 1 && no <= text.lines().count(), "{rel}: {line}");
        }
    }
}

#[test]
fn basic_tls_pool_limits_and_bulk() {
    let f = fixture("scim-basic.conf");
    let l = &f.v["listeners"][0];
    assert_eq!(s(&l["address"]), "127.0.0.1:18443");
    assert_eq!(l["http2"], Value::Bool(true));
    assert_eq!(Path::new(s(&l["tls"]["cert"])), dir().join("certs/scim.crt"));
    let pool = &f.v["upstreams"]["scim"];
    assert_eq!(pool["servers"][0]["weight"], Value::from(2));
    assert_eq!(pool["keepalive"], Value::from(32));
    assert_eq!(f.route_names(), ["scim-v2-bulk-exact", "scim-v2"]);
    assert_eq!(s(&f.route("scim-v2-bulk-exact")["max_body"]), "4MiB");
    assert_eq!(f.route("scim-v2")["rate_limits"][0], Value::from("idp"));
    assert_eq!(f.v["rate_limits"]["policies"]["idp"]["burst"], Value::from(21));
    assert!(
        f.route("scim-v2")["headers"].is_null(),
        "Host $host and Connection \"\" are what scimitar does"
    );
    assert!(
        f.route("scim-v2-bulk-exact")["headers"]["request"].is_null(),
        "no Host rule for nginx's $proxy_host: the client's Host passes"
    );
    assert!(f
        .line("scim-basic.conf:32: proxy_pass http://scim")
        .contains("passes the client's Host"));
}

#[test]
fn edge_reports_what_it_cannot_carry_and_keeps_real_ip_mtls_and_headers() {
    let f = fixture("scim-edge.conf");
    assert_eq!(s(&f.v["listeners"][0]["tls"]["client_auth"]), "optional");
    assert_eq!(
        f.v["trusted_proxies"],
        serde_yaml::from_str::<Value>("[10.0.0.0/8, 192.168.0.0/16]").unwrap()
    );
    assert_eq!(s(&f.v["real_ip_header"]), "X-Forwarded-For");
    assert_eq!(
        Path::new(s(&f.v["access_log"]["path"])),
        dir().join("logs/scim-access.log")
    );
    let add = &f.route("scim-v2")["headers"]["response"]["add"];
    assert_eq!(
        s(&add["Content-Security-Policy"]),
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(s(&add["X-Escapes"]), "quote \" backslash \\ tab\tend");
    assert_eq!(f.route("root")["return"], Value::from(404));
    for (what, verdict) in [
        ("scim-edge.conf:14: map $uri $tenant", "not translated"),
        ("scim-edge.conf:47: location ~*", "not translated: regex"),
        ("scim-edge.conf:60: rewrite", "not translated"),
        ("scim-edge.conf:24: limit_req_zone $token_key", "not translated"),
        ("scim-edge.conf:6: log_format", "not translated"),
        ("scim-edge.conf:11: error_log", "not translated"),
    ] {
        assert!(f.line(what).contains(verdict), "{what}");
    }
}

#[test]
fn pool_selection_retries_and_unsafe_retries() {
    let f = fixture("scim-pool.conf");
    let hash = &f.v["upstreams"]["scim_hash"];
    assert_eq!(s(&hash["selection"]), "consistent");
    assert_eq!(
        hash["servers"].as_sequence().unwrap().len(),
        2,
        "the `down` server is left out"
    );
    assert_eq!(hash["max_conns"], Value::from(100));
    assert_eq!(hash["passive"]["count_5xx"], Value::Bool(true));
    assert_eq!(s(&hash["timeouts"]["connect"]), "2s");
    assert_eq!(
        f.route("scim-v2-users")["affinity"]["key"][0],
        Value::from("header:X-Tenant-Id")
    );
    assert_eq!(s(&f.route("scim-v2-groups")["upstream_base_path"]), "/api/scim/v2");
    assert!(f.line("non_idempotent").contains("refused on purpose"));
    assert!(f.line("ip_hash").contains("egress IPs"));
    assert!(f.line("return 200").contains("not translated"));
    assert!(f
        .line("scim-pool.conf:13: upstream scim_lc")
        .contains("no translated location proxies to it"));
}

#[test]
fn includes_name_each_file_relative_to_the_main_one() {
    let f = fixture("scim-includes/nginx.conf");
    assert!(f
        .t
        .yaml
        .contains("# from conf.d/10-upstreams.conf:1: upstream scim { … }"));
    assert!(f
        .t
        .yaml
        .contains("# from snippets/scim-proxy.conf:1: proxy_pass http://scim"));
    assert_eq!(
        Path::new(s(&f.v["listeners"][0]["tls"]["cert"])),
        dir().join("certs/scim.crt")
    );
    assert!(f.line("conf.d/20-scim.conf:10: limit_req").contains("503"));
}

#[test]
fn routes_rewrite_paths_split_pools_and_answer_returns() {
    let f = fixture("scim-routes.conf");
    assert_eq!(
        f.route_names(),
        [
            "scim-v2-bulk-exact",
            "scim-v2-serviceproviderconfig",
            "scim-v2-groups",
            "scim-v2-users",
            "scim-v2",
            "maintenance"
        ]
    );
    assert_eq!(s(&f.route("scim-v2")["upstream_base_path"]), "/v2");
    assert_eq!(s(&f.route("scim-v2")["max_body"]), "3MiB", "from the server level");
    assert_eq!(s(&f.route("scim-v2-groups")["max_body"]), "8MiB");
    assert_eq!(
        s(&f.route("scim-v2-groups")["upstream"]),
        "scim-2",
        "proxy_next_upstream off: a pool of its own"
    );
    assert_eq!(f.v["upstreams"]["scim-2"]["retries"], Value::from(0));
    assert_eq!(s(&f.route("scim-v2-users")["upstream"]), "127.0.0.1_18303");
    assert_eq!(s(&f.v["upstreams"]["127.0.0.1_18303"]["timeouts"]["read"]), "90s");
    assert_eq!(f.route("scim-v2-bulk-exact")["return"], Value::from(403));
    assert_eq!(s(&f.route("maintenance")["return"]["detail"]), "down for maintenance");
    assert_eq!(
        s(&f.route("scim-v2-serviceproviderconfig")["cache"]["discovery"]),
        "10m"
    );
    assert!(f
        .line("scim-routes.conf:22: location /scim/v2/")
        .contains("GET /scim/v2/Schemas"));
    assert!(f.line("location /static/").contains("not translated"));
}

#[test]
fn headers_auth_real_ip_and_the_redirect_server() {
    let f = fixture("scim-headers.conf");
    let addrs: Vec<&str> = f.v["listeners"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|l| s(&l["address"]))
        .collect();
    assert_eq!(addrs, ["127.0.0.1:18446"], "the redirect-only server gets no listener");
    assert_eq!(s(&f.v["listeners"][0]["tls"]["client_auth"]), "required");
    assert_eq!(s(&f.v["real_ip_header"]), "X-Forwarded-For");
    let general = &f.route("scim-v2")["headers"];
    assert_eq!(s(&general["request"]["set"]["X-Real-IP"]), "$remote_addr");
    assert_eq!(s(&general["response"]["set"]["Server"]), "scimitar");
    let bulk = &f.route("scim-v2-bulk")["headers"];
    assert!(
        bulk["request"]["set"]["Host"].is_null(),
        "the location's own proxy_set_header list has no Host: nginx's $proxy_host, reported"
    );
    assert_eq!(
        s(&bulk["response"]["add"]["Strict-Transport-Security"]),
        "max-age=63072000"
    );
    for r in ["scim-v2", "scim-v2-bulk"] {
        assert_eq!(f.route(r)["auth"]["tokens"].as_sequence().unwrap().len(), 2, "{r}");
    }
    assert!(
        !f.t.yaml.contains("okta-3f9c1e") && !f.lines().join("\n").contains("okta-3f9c1e"),
        "no token in clear"
    );
    assert!(f.line("map $http_user_agent $is_bot").contains("read nowhere"));
    assert!(f.line("$ssl_client_s_dn").contains("not translated"));
}

#[test]
fn scripting_and_modules_are_listed_with_their_lines() {
    let f = fixture("scim-scripting.conf");
    for what in [
        "scim-scripting.conf:28: set $api_prefix",
        "scim-scripting.conf:29: rewrite",
        "scim-scripting.conf:32: if ($tenant_blocked)",
        "scim-scripting.conf:35: limit_conn conns 10",
        "scim-scripting.conf:36: allow",
        "scim-scripting.conf:38: auth_request",
        "scim-scripting.conf:43: location = /auth",
        "scim-scripting.conf:47: location = /nginx_status",
    ] {
        assert!(f.line(what).contains("not translated"), "{what}");
    }
    assert_eq!(f.route_names(), ["scim-v2"]);
    let f = fixture("scim-modules.conf");
    for what in [
        "js_import",
        "lua_shared_dict",
        "access_by_lua_block",
        "js_header_filter",
        "location = /scim/v2/token",
    ] {
        assert!(f.line(what).contains("not translated"), "{what}");
    }
}

#[test]
fn modern_http2_on_upstream_tls_and_token_affinity() {
    let f = fixture("scim-modern.conf");
    let l = &f.v["listeners"][0];
    assert_eq!(l["http2"], Value::Bool(true));
    assert_eq!(s(&l["tls"]["min_version"]), "1.3");
    let tls = &f.v["upstreams"]["scim_tls"]["tls"];
    assert_eq!(s(&tls["sni"]), "scim.example.com");
    assert_eq!(tls["verify"], Value::Bool(true));
    assert_eq!(f.route("scim-v2")["affinity"]["key"][0], Value::from("token"));
    assert_eq!(f.route("scim-v2")["auth"]["tokens"].as_sequence().unwrap().len(), 1);
}
