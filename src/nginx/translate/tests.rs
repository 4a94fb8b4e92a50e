//! The translation directive by directive: an nginx snippet in, the YAML parts and report
//! lines that must come out.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::{exit_code, run, untaken, Kind, Translation};
use crate::nginx::{parse_str, Directive};

const BASE: &str = "/etc/nginx";

/// A translation, its YAML read back, and the directory its report is relative to.
pub(super) struct T {
    pub t: Translation,
    pub v: Value,
    pub base: PathBuf,
}

/// Translates `top`, checks that every directive was accounted for and that the YAML reads
/// back (`what` names the input in failures).
pub(super) fn checked(top: &[Directive], base: &Path, what: &str) -> T {
    let (t, cx) = run(top, base);
    let mut left = Vec::new();
    untaken(&cx, top, &mut left);
    assert!(left.is_empty(), "{what}: neither translated nor reported: {left:?}");
    let expanded = crate::config::reader::expand_env(&t.yaml, secret_env).unwrap();
    let v = serde_yaml::from_str(&expanded).unwrap_or_else(|e| panic!("{what}: {e}\n{}", t.yaml));
    T {
        t,
        v,
        base: base.to_path_buf(),
    }
}

/// The environment of a translation's YAML: a value for each credential a header rule reads
/// from it, nothing else.
pub(super) fn secret_env(name: &str) -> Option<String> {
    name.starts_with("SCIMITAR_SECRET_")
        .then(|| "Bearer from-the-environment".to_string())
}

/// Translates `src` as /etc/nginx/nginx.conf.
fn tr(src: &str) -> T {
    let top = parse_str(src, Path::new(BASE).join("nginx.conf")).unwrap_or_else(|e| panic!("{e}"));
    checked(&top, Path::new(BASE), src)
}

/// `inner` inside `http { }` (its first line is line 3).
fn http(inner: &str) -> String {
    format!("events {{}}\nhttp {{\n{inner}\n}}\n")
}

/// `inner` inside a server listening on 127.0.0.1:18401, next to a two-server pool `scim`
/// (its first line is line 6).
fn server(inner: &str) -> String {
    server_in("", inner)
}

/// [`server`] with `extra` on the http level's first line.
fn server_in(extra: &str, inner: &str) -> String {
    http(&format!(
        "{extra}upstream scim {{ server 127.0.0.1:18301; server 127.0.0.1:18302; }}\nserver {{\nlisten 127.0.0.1:18401;\n{inner}\n}}"
    ))
}

impl T {
    pub fn lines(&self) -> Vec<String> {
        self.t.report_lines(&self.base)
    }

    /// The report lines about `what` (part of `file:line: directive`).
    pub fn line(&self, what: &str) -> String {
        let hits: Vec<String> = self.lines().into_iter().filter(|l| l.contains(what)).collect();
        assert!(!hits.is_empty(), "no report line about {what:?} in {:#?}", self.lines());
        hits.join("\n")
    }

    fn no_line(&self, what: &str) {
        let hits: Vec<String> = self.lines().into_iter().filter(|l| l.contains(what)).collect();
        assert!(hits.is_empty(), "unexpected report lines: {hits:#?}");
    }

    pub fn route(&self, name: &str) -> &Value {
        let routes = self.v["routes"].as_sequence().unwrap();
        routes
            .iter()
            .find(|r| r["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no route {name} in\n{}", self.t.yaml))
    }

    pub fn route_names(&self) -> Vec<&str> {
        self.v["routes"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect()
    }

    fn pool(&self, name: &str) -> &Value {
        let p = &self.v["upstreams"][name];
        assert!(!p.is_null(), "no pool {name} in\n{}", self.t.yaml);
        p
    }

    fn code(&self) -> u8 {
        exit_code(&self.t.notes, false)
    }
}

pub(super) fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

// ---- listen, server_name, TLS ----

#[test]
fn listen_addresses_ports_and_http2() {
    let t = tr(&http(
        "server { listen 8080; listen 127.0.0.2:18402 http2; listen [::1]; location / { proxy_pass http://127.0.0.1:18301; } }",
    ));
    let l = t.v["listeners"].as_sequence().unwrap();
    let addrs: Vec<&str> = l.iter().map(|x| s(&x["address"])).collect();
    assert_eq!(addrs, ["0.0.0.0:8080", "127.0.0.2:18402", "[::1]:80"]);
    assert!(l[0]["http2"].is_null(), "plaintext without http2 keeps the default");
    assert_eq!(
        l[1]["http2"],
        Value::Bool(true),
        "h2c with prior knowledge, as nginx's `http2` on a plain port"
    );
    assert_eq!(t.code(), 0);
}

#[test]
fn tls_listener_takes_certificates_protocols_and_client_verification() {
    let t = tr(&http(
        "server { listen 443 ssl; ssl_certificate certs/a.crt; ssl_certificate_key /abs/a.key;
           ssl_protocols TLSv1 TLSv1.1 TLSv1.2; ssl_ciphers HIGH:!aNULL;
           ssl_client_certificate ../ca/idp.pem; ssl_verify_client optional;
           location / { proxy_pass http://127.0.0.1:18301; } }",
    ));
    let l = &t.v["listeners"][0];
    assert_eq!(s(&l["address"]), "0.0.0.0:443");
    assert_eq!(
        l["http2"],
        Value::Bool(false),
        "nginx served HTTP/1.1 only without http2"
    );
    let tls = &l["tls"];
    assert_eq!(s(&tls["cert"]), "/etc/nginx/certs/a.crt", "relative to nginx's prefix");
    assert_eq!(s(&tls["key"]), "/abs/a.key");
    assert_eq!(s(&tls["min_version"]), "1.2");
    assert_eq!(s(&tls["ciphers"]), "HIGH:!aNULL");
    assert_eq!(s(&tls["client_ca"]), "/etc/ca/idp.pem");
    assert_eq!(s(&tls["client_auth"]), "optional");
    assert!(t.line("ssl_protocols").contains("refuses TLS 1.0 and 1.1"));
    assert!(t.line("ssl_protocols").contains("also offers TLS 1.3"));
    assert_eq!(t.code(), 0);
}

#[test]
fn http2_on_and_tls13_only() {
    let t = tr(&http(
        "http2 on;
         server { listen 443 ssl; ssl_certificate a.crt; ssl_certificate_key a.key; ssl_protocols TLSv1.3;
           ssl_verify_client on; ssl_client_certificate ca.pem;
           location / { proxy_pass http://127.0.0.1:18301; } }",
    ));
    let l = &t.v["listeners"][0];
    assert_eq!(l["http2"], Value::Bool(true));
    assert_eq!(s(&l["tls"]["min_version"]), "1.3");
    assert_eq!(s(&l["tls"]["client_auth"]), "required");
    t.no_line("ssl_protocols");
}

#[test]
fn servers_sharing_a_tls_address_share_a_listener_with_a_certificate_each_chosen_by_server_name() {
    let t = tr(&http(
        "server { listen 443 ssl; server_name a.example.com .b.example.com; ssl_certificate a.crt; ssl_certificate_key a.key;
                  location / { proxy_pass http://127.0.0.1:18301; } }
         server { listen 443 ssl default_server; server_name _; ssl_certificate d.crt; ssl_certificate_key d.key;
                  location / { proxy_pass http://127.0.0.1:18301; } }",
    ));
    let l = t.v["listeners"].as_sequence().unwrap();
    assert_eq!(l.len(), 1);
    let certs = l[0]["tls"]["certificates"].as_sequence().unwrap();
    assert_eq!(
        strs(&certs[0]["names"]),
        ["a.example.com", "b.example.com", "*.b.example.com"]
    );
    assert!(
        certs[1]["names"].is_null(),
        "server_name _ leaves the certificate's own names"
    );
    assert_eq!(certs[1]["default"], Value::Bool(true));
    assert_eq!(
        t.route_names(),
        ["root"],
        "identical locations of both servers are one route"
    );
}

#[test]
fn listen_addresses_scimitar_cannot_take_are_reported() {
    let t = tr(&http(
        "server { listen unix:/run/scim.sock; listen localhost:18401; listen 18402; listen [::]:18402;
                  location / { proxy_pass http://127.0.0.1:18301; } }",
    ));
    assert!(t
        .line("listen unix:")
        .contains("not translated: scimitar listens on TCP addresses only"));
    assert!(t
        .line("listen localhost")
        .contains("translated with a difference: localhost is written as 127.0.0.1"));
    assert!(t.line("listen [::]:18402").contains("bindv6only"));
    let addrs: Vec<&str> = t.v["listeners"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|x| s(&x["address"]))
        .collect();
    assert_eq!(addrs, ["127.0.0.1:18401", "0.0.0.0:18402"]);
    assert_eq!(t.code(), 1, "an address nginx served is gone");
}

#[test]
fn a_server_without_a_translated_location_gets_no_listener() {
    let t = tr(&http(
        "server { listen 18480; return 301 https://$host$request_uri; }
         server { listen 18443; location /scim/v2/ { proxy_pass http://127.0.0.1:18301; } }",
    ));
    let addrs: Vec<&str> = t.v["listeners"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|x| s(&x["address"]))
        .collect();
    assert_eq!(addrs, ["0.0.0.0:18443"]);
    assert!(t.line("listen 18480").contains("does not listen here"));
    assert!(t.line("return 301").contains("not translated"));
    assert_eq!(t.code(), 1);
}

// ---- upstreams ----

#[test]
fn upstream_servers_weights_passive_checks_max_conns_and_keepalive() {
    let t = tr(&http(
        "upstream scim {
            server 127.0.0.1:18301 weight=3 max_fails=2 fail_timeout=30s max_conns=50;
            server 127.0.0.1:18302 max_fails=2 fail_timeout=30s max_conns=50;
            server 127.0.0.1:18303 down;
            server 127.0.0.1:18304 backup;
            keepalive 16;
            keepalive_timeout 20s;
         }
         server { listen 18401; location / { proxy_pass http://scim; } }",
    ));
    let p = t.pool("scim");
    let servers = p["servers"].as_sequence().unwrap();
    assert_eq!(servers.len(), 2, "down and backup servers are left out: {servers:?}");
    assert_eq!(s(&servers[0]["address"]), "127.0.0.1:18301");
    assert_eq!(servers[0]["weight"], Value::from(3));
    assert!(servers[1]["weight"].is_null());
    assert_eq!(p["passive"]["max_fails"], Value::from(2));
    assert_eq!(s(&p["passive"]["eject_for"]), "30s");
    assert_eq!(p["max_conns"], Value::from(50));
    assert_eq!(p["keepalive"], Value::from(16));
    assert_eq!(s(&p["timeouts"]["idle"]), "20s");
    assert_eq!(p["retries"], Value::from(1), "nginx tries each server once");
    t.no_line("18303");
    assert!(t
        .line("server 127.0.0.1:18304 backup")
        .contains("not translated: scimitar has no backup servers"));
    assert_eq!(t.code(), 1, "a backup server changes what happens when the others fail");
}

#[test]
fn per_server_settings_that_differ_become_one_pool_setting_with_a_note() {
    let t = tr(&http(
        "upstream scim { server 127.0.0.1:18301 max_fails=5 max_conns=10; server 127.0.0.1:18302 max_conns=20; }
         server { listen 18401; location / { proxy_pass http://scim; } }",
    ));
    let p = t.pool("scim");
    assert_eq!(p["passive"]["max_fails"], Value::from(5));
    assert_eq!(p["max_conns"], Value::from(10));
    assert!(t.line("server 127.0.0.1:18302").contains("one setting per pool"));
    assert!(t
        .line("server 127.0.0.1:18301 max_fails=5")
        .contains("`max_conns` is one value"));
    assert_eq!(t.code(), 0);
}

#[test]
fn selection_methods_map_to_the_nearest_with_a_note() {
    let t = tr(&http(
        "upstream lc { least_conn; server 127.0.0.1:18301; server 127.0.0.1:18302; }
         upstream ip { ip_hash; server 127.0.0.1:18301; server 127.0.0.1:18302; }
         upstream ten { hash $http_x_tenant_id consistent; server 127.0.0.1:18301; server 127.0.0.1:18302; }
         upstream tok { hash $http_authorization; server 127.0.0.1:18301; server 127.0.0.1:18302; }
         upstream uri { hash $request_uri consistent; server 127.0.0.1:18301; server 127.0.0.1:18302; }
         server { listen 18401;
           location /a/ { proxy_pass http://lc; } location /b/ { proxy_pass http://ip; }
           location /c/ { proxy_pass http://ten; } location /d/ { proxy_pass http://tok; }
           location /e/ { proxy_pass http://uri; } }",
    ));
    assert!(t.pool("lc")["selection"].is_null(), "round robin");
    assert!(t.line("least_conn").contains("no least-connections"));
    assert_eq!(s(&t.pool("ip")["selection"]), "consistent");
    assert!(
        t.route("b")["affinity"].is_null(),
        "keyed on tenant, token, then IP: scimitar's default"
    );
    assert!(t.line("ip_hash").contains("egress IPs"));
    assert_eq!(s(&t.pool("ten")["selection"]), "consistent");
    assert_eq!(strs(&t.route("c")["affinity"]["key"]), ["header:X-Tenant-Id"]);
    t.no_line("hash $http_x_tenant_id");
    assert_eq!(strs(&t.route("d")["affinity"]["key"]), ["token"]);
    assert!(t.line("hash $http_authorization").contains("Ketama"));
    assert!(t.route("e")["affinity"].is_null());
    assert!(t.line("hash $request_uri").contains("no scimitar key source"));
    assert_eq!(t.code(), 0, "balancing differences do not change what a request gets");
}

#[test]
fn proxy_pass_without_an_upstream_block_is_a_pool_of_one() {
    let t = tr(&http(
        "server { listen 18401; location /scim/v2/ { proxy_pass http://127.0.0.1:18309; } location /x/ { proxy_pass http://127.0.0.1:18309; } }",
    ));
    let p = t.pool("127.0.0.1_18309");
    assert_eq!(
        strs(&Value::Sequence(
            p["servers"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|x| x["address"].clone())
                .collect()
        )),
        ["127.0.0.1:18309"]
    );
    assert_eq!(p["retries"], Value::from(0));
    assert_eq!(
        t.v["upstreams"].as_mapping().unwrap().len(),
        1,
        "one pool for one address"
    );
    assert_eq!(s(&t.route("scim-v2")["upstream"]), "127.0.0.1_18309");
}

#[test]
fn proxy_pass_targets_scimitar_cannot_use_are_reported() {
    let t = tr(&http(
        "server { listen 18401;
           location /a/ { proxy_pass http://$backend; }
           location /b/ { proxy_pass http://unix:/run/scim.sock; }
           location /c/ { proxy_pass grpc://127.0.0.1:18301; }
           location /d/ { proxy_pass http://127.0.0.1:18301; } }",
    ));
    assert!(t.line("proxy_pass http://$backend").contains("variables"));
    assert!(t.line("proxy_pass http://unix:").contains("unix sockets"));
    assert!(t.line("proxy_pass grpc://").contains("HTTP and HTTPS only"));
    assert_eq!(t.route_names(), ["d"]);
    assert_eq!(t.code(), 1);
}

#[test]
fn https_upstreams_keep_nginx_s_verification_setting() {
    let t = tr(&http(
        "server { listen 18401;
           location /a/ { proxy_pass https://127.0.0.1:18301; }
           location /b/ { proxy_pass https://scim.internal:8443; proxy_ssl_verify on; proxy_ssl_trusted_certificate ca.pem;
                          proxy_ssl_certificate c.crt; proxy_ssl_certificate_key c.key; } }",
    ));
    let a = &t.pool("127.0.0.1_18301")["tls"];
    assert_eq!(
        a["verify"],
        Value::Bool(false),
        "nginx's proxy_ssl_verify is off by default"
    );
    assert!(a["sni"].is_null());
    let b = &t.pool("scim.internal_8443")["tls"];
    assert_eq!(b["verify"], Value::Bool(true));
    assert_eq!(s(&b["sni"]), "scim.internal");
    assert_eq!(s(&b["ca"]), "/etc/nginx/ca.pem");
    assert_eq!(s(&b["cert"]), "/etc/nginx/c.crt");
}

// ---- timeouts and retries ----

#[test]
fn timeouts_and_retries_come_from_each_location_and_split_pools_that_differ() {
    let t = tr(&server(
        "proxy_connect_timeout 3s;
         proxy_read_timeout 30;
         location /scim/v2/ { proxy_pass http://scim; }
         location /scim/v2/Bulk { proxy_pass http://scim; proxy_read_timeout 2m; proxy_next_upstream off; }
         location /scim/v2/Me { proxy_pass http://scim; proxy_next_upstream_tries 1; }
         location /other/ { proxy_pass http://scim; }",
    ));
    let a = t.pool("scim");
    assert_eq!(s(&a["timeouts"]["connect"]), "3s");
    assert_eq!(s(&a["timeouts"]["read"]), "30s", "a bare number is seconds in nginx");
    assert!(a["timeouts"]["write"].is_null(), "unset: scimitar's default");
    assert_eq!(a["retries"], Value::from(1));
    let b = t.pool("scim-2");
    assert_eq!(s(&b["timeouts"]["read"]), "2m");
    assert_eq!(b["retries"], Value::from(0), "proxy_next_upstream off");
    let c = t.pool("scim-3");
    assert_eq!(c["retries"], Value::from(0), "_tries 1: the first try only");
    assert_eq!(s(&t.route("other")["upstream"]), "scim", "equal settings share a pool");
    assert_eq!(s(&t.route("scim-v2-bulk")["upstream"]), "scim-2");
    assert_eq!(t.v["upstreams"].as_mapping().unwrap().len(), 3);
}

#[test]
fn next_upstream_statuses_are_not_retried_and_non_idempotent_is_refused_on_purpose() {
    let t = tr(&server(
        "location / { proxy_pass http://scim; proxy_next_upstream error timeout http_502 http_504 non_idempotent; proxy_next_upstream_tries 5; }",
    ));
    let p = t.pool("scim");
    assert_eq!(p["retries"], Value::from(1), "at most every other server once");
    assert_eq!(p["passive"]["count_5xx"], Value::Bool(true));
    let lines = t.line("proxy_next_upstream error");
    assert!(
        lines.contains("not translated: `http_502 http_504`: scimitar passes an upstream's own answer through"),
        "{lines}"
    );
    assert!(
        lines.contains("translated with a difference: `non_idempotent` refused on purpose"),
        "{lines}"
    );
    assert!(t.t.yaml.contains("non_idempotent is refused on purpose"));
    assert_eq!(t.code(), 1, "status retries change what the client gets");

    let t = tr(&server(
        "location / { proxy_pass http://scim; proxy_next_upstream error timeout non_idempotent; }",
    ));
    assert_eq!(t.code(), 0, "refusing to replay writes is a difference, not a loss");
}

// ---- locations and routes ----

#[test]
fn endpoint_locations_become_classes_on_the_parent_base_path_in_first_match_order() {
    let t = tr(&server(
        "location / { return 404; }
         location /scim/v2/ { proxy_pass http://scim; }
         location = /scim/v2/Bulk { client_max_body_size 4m; proxy_pass http://scim; }
         location /scim/v2/tenants/ { proxy_pass http://scim; }",
    ));
    assert_eq!(
        t.route_names(),
        ["scim-v2-tenants", "scim-v2-bulk-exact", "scim-v2", "root"]
    );
    let bulk = t.route("scim-v2-bulk-exact");
    assert_eq!(s(&bulk["base_path"]), "/scim/v2");
    assert_eq!(strs(&bulk["classes"]), ["bulk"]);
    assert_eq!(s(&bulk["max_body"]), "4MiB");
    assert_eq!(s(&t.route("scim-v2-tenants")["base_path"]), "/scim/v2/tenants");
    assert_eq!(t.route("root")["return"], Value::from(404));
    assert_eq!(s(&t.route("root")["base_path"]), "/");
    assert_eq!(t.code(), 0, "{:#?}", t.lines());
}

#[test]
fn requests_scimitar_would_route_elsewhere_than_nginx_are_reported_per_location() {
    let t = tr(&server(
        "location /scim/v2/ { proxy_pass http://scim; }
         location /scim/v2/Users { proxy_pass http://127.0.0.1:18309; }",
    ));
    let users = t.line("location /scim/v2/Users");
    assert!(users.contains("POST /scim/v2/Users/.search"), "{users}");
    assert!(users.contains("route `scim-v2`"), "{users}");
    assert!(!users.contains("GET /scim/v2/Users/2819c223"), "{users}");
    assert_eq!(t.code(), 1);

    // The same pool and settings: whichever route takes it, the request gets the same.
    let t = tr(&server(
        "location /scim/v2/ { proxy_pass http://scim; }
         location /scim/v2/Users { proxy_pass http://scim; }",
    ));
    t.no_line("location /scim/v2/Users");
    assert_eq!(t.code(), 0);
}

#[test]
fn a_discovery_location_takes_every_discovery_document_and_that_is_reported() {
    let t = tr(&server_in(
        "proxy_cache_path c keys_zone=d:1m; ",
        "location /scim/v2/ { proxy_pass http://scim; }
         location /scim/v2/ServiceProviderConfig { proxy_pass http://scim; proxy_cache d; proxy_cache_valid 200 5m; }",
    ));
    let general = t.line("location /scim/v2/ {");
    assert!(general.contains("GET /scim/v2/Schemas"), "{general}");
    assert!(general.contains("route `scim-v2-serviceproviderconfig`"), "{general}");
    // Writes to it would not be cached anyway: the same behaviour for them.
    let spc = t.lines().join("\n");
    assert!(!spc.contains("POST /scim/v2/ServiceProviderConfig"), "{spc}");
}

#[test]
fn proxy_pass_uri_parts_become_upstream_base_paths() {
    let t = tr(&server(
        "location /scim/v2/ { proxy_pass http://scim/v2/; }
         location /scim/v2/Groups { proxy_pass http://scim/api/v2/Groups; }
         location /same/ { proxy_pass http://scim/same/; }
         location /root/ { proxy_pass http://scim/; }
         location /glued/ { proxy_pass http://scim/v2; }
         location /scim/v2/Users { proxy_pass http://scim/people; }",
    ));
    assert_eq!(s(&t.route("scim-v2")["upstream_base_path"]), "/v2");
    assert_eq!(s(&t.route("scim-v2-groups")["upstream_base_path"]), "/api/v2");
    assert!(t.route("same")["upstream_base_path"].is_null(), "unchanged path");
    assert_eq!(s(&t.route("root")["upstream_base_path"]), "/");
    assert_eq!(s(&t.route("glued")["upstream_base_path"]), "/v2");
    assert!(t.line("proxy_pass http://scim/v2 ").contains("keeps one slash"));
    assert!(t
        .line("proxy_pass http://scim/people")
        .contains("does not end with `/Users`"));
    assert_eq!(t.code(), 1);
}

#[test]
fn a_location_without_a_trailing_slash_reports_nginx_s_double_slash_and_wider_prefix() {
    let t = tr(&server(
        "proxy_set_header Host $host;
         location /scim/v2 { proxy_pass http://scim/api/v2/; }
         location /plain { proxy_pass http://scim/api; }
         location /dir/ { proxy_pass http://scim/api/; }",
    ));
    assert_eq!(s(&t.route("scim-v2")["upstream_base_path"]), "/api/v2");
    assert!(t
        .line("nginx.conf:7: proxy_pass")
        .contains("translated with a difference: nginx sends `/scim/v2/Users` as `/api/v2//Users`"));
    assert_eq!(s(&t.route("plain")["upstream_base_path"]), "/api");
    t.no_line("nginx.conf:8: proxy_pass");
    assert_eq!(s(&t.route("dir")["upstream_base_path"]), "/api");
    t.no_line("nginx.conf:9:");
    for (line, p) in [(7, "/scim/v2"), (8, "/plain")] {
        assert!(
            t.line(&format!("nginx.conf:{line}: location {p} ")).contains(&format!(
                "translated with a difference: nginx's prefix `{p}` also matches"
            )),
            "{p}"
        );
    }
    assert_eq!(t.code(), 0);
}

#[test]
fn return_statuses_scimitar_can_and_cannot_answer() {
    let t = tr(&server(
        "location = /scim/v2/Bulk { return 403; }
         location /gone/ { return 410 \"moved to /scim/v2\"; }
         location /json/ { return 404 '{\"status\":\"404\"}'; }
         location /empty/ { return 204; }
         location /ok/ { return 200 \"ok\"; }
         location /old/ { return 301 https://example.com/; }
         location /drop/ { return 444; }",
    ));
    assert_eq!(t.route("scim-v2-bulk-exact")["return"], Value::from(403));
    assert!(t.route("scim-v2-bulk-exact")["upstream"].is_null());
    assert_eq!(t.route("gone")["return"]["status"], Value::from(410));
    assert_eq!(s(&t.route("gone")["return"]["detail"]), "moved to /scim/v2");
    assert_eq!(t.route("json")["return"], Value::from(404));
    assert!(t.line("return 404").contains("scimitar's SCIM error body"));
    assert_eq!(t.route("empty")["return"], Value::from(204));
    assert!(t.line("return 200").contains("not translated"));
    assert!(t.line("return 301").contains("not translated: a redirect"));
    assert!(t.line("return 444").contains("closes the connection"));
    assert_eq!(t.route_names().len(), 4);
    assert_eq!(t.code(), 1);
}

#[test]
fn regex_named_internal_and_static_locations_are_reported() {
    let t = tr(&server(
        "location ~* ^/scim/v2/(Users|Groups) { proxy_pass http://scim; }
         location @fallback { proxy_pass http://scim; }
         location = /auth { internal; proxy_pass http://127.0.0.1:18309; }
         location /static/ { root html; try_files $uri =404; }
         location /scim/v2/ { proxy_pass http://scim; }",
    ));
    assert!(t.line("location ~*").contains("not translated: regex locations"));
    assert!(t.line("location @fallback").contains("named location"));
    assert!(t.line("location = /auth").contains("internal location"));
    assert!(t
        .line("location /static/")
        .contains("neither `proxy_pass` nor `return`"));
    t.no_line("root html");
    assert_eq!(t.route_names(), ["scim-v2"]);
    assert_eq!(t.code(), 1);
}

#[test]
fn nested_locations_inherit_from_their_parent() {
    let t = tr(&server(
        "location /scim/ { client_max_body_size 5m; location /scim/v2/ { proxy_pass http://scim; } }",
    ));
    assert_eq!(t.route_names(), ["scim-v2"]);
    assert_eq!(s(&t.route("scim-v2")["max_body"]), "5MiB");
    t.no_line("location /scim/ {");
}

#[test]
fn client_max_body_size_is_inherited_as_nginx_inherits_it() {
    let t = tr(&http(
        "client_max_body_size 2m;
         server { listen 18401;
           location /a/ { proxy_pass http://127.0.0.1:18301; }
           location /b/ { client_max_body_size 0; proxy_pass http://127.0.0.1:18301; } }
         server { listen 18402; client_max_body_size 512k;
           location /c/ { proxy_pass http://127.0.0.1:18301; }
           location /d/ { client_max_body_size 1g; proxy_pass http://127.0.0.1:18301; } }",
    ));
    assert_eq!(s(&t.route("a")["max_body"]), "2MiB", "from http");
    assert_eq!(s(&t.route("b")["max_body"]), "1024GiB", "0: no limit");
    assert_eq!(s(&t.route("c")["max_body"]), "512KiB", "from server");
    assert_eq!(s(&t.route("d")["max_body"]), "1GiB", "the location's own");
    let t = tr(&server("location / { proxy_pass http://scim; }"));
    assert!(
        t.route("root")["max_body"].is_null(),
        "nginx's default 1m is scimitar's default"
    );
}

// ---- rate limits ----

#[test]
fn limit_req_becomes_policies_with_burst_plus_one() {
    let t = tr(&http(
        "limit_req_zone $binary_remote_addr zone=ip:10m rate=600r/m;
         limit_req_zone $http_authorization zone=tok:10m rate=10r/s;
         limit_req_zone $http_x_tenant_id$binary_remote_addr zone=both:10m rate=5r/s;
         limit_req_status 429;
         server { listen 18401;
           location /a/ { limit_req zone=ip burst=100 nodelay; limit_req zone=tok; proxy_pass http://127.0.0.1:18301; }
           location /b/ { limit_req zone=tok burst=20 nodelay; limit_req zone=both burst=2 nodelay; proxy_pass http://127.0.0.1:18301; } }",
    ));
    let p = &t.v["rate_limits"]["policies"];
    assert_eq!(s(&p["ip"]["key"]), "client_ip");
    assert_eq!(s(&p["ip"]["rate"]), "600/m");
    assert_eq!(
        p["ip"]["burst"],
        Value::from(101),
        "nginx's burst=100 admits 101 at once"
    );
    assert_eq!(s(&p["tok"]["key"]), "token");
    assert_eq!(p["tok"]["burst"], Value::from(1));
    assert_eq!(p["tok-2"]["burst"], Value::from(21));
    assert_eq!(strs(&p["both"]["key"]), ["header:X-Tenant-Id", "client_ip"]);
    assert_eq!(strs(&t.route("a")["rate_limits"]), ["ip", "tok"]);
    assert_eq!(strs(&t.route("b")["rate_limits"]), ["tok-2", "both"]);
    assert!(t
        .line("limit_req zone=tok burst=20")
        .contains("no longer share the zone's bucket"));
    assert!(t
        .line("limit_req_zone $http_authorization")
        .contains("counts them together in one bucket"));
    t.no_line("limit_req_status");
    assert_eq!(t.code(), 0);
}

#[test]
fn limit_req_without_nodelay_or_with_nginx_s_503_is_a_difference() {
    let t = tr(&http(
        "limit_req_zone $remote_addr zone=ip:1m rate=5r/s;
         server { listen 18401; location / { limit_req zone=ip burst=10; proxy_pass http://127.0.0.1:18301; } }",
    ));
    let line = t.line("limit_req zone=ip burst=10");
    assert!(line.contains("nginx queues up to 10 excess requests"), "{line}");
    assert!(line.contains("nginx refuses with 503 here"), "{line}");
    assert!(t.t.yaml.contains("429 with Retry-After"));
    assert_eq!(t.code(), 0);
}

#[test]
fn limit_req_inheritance_and_keys_scimitar_cannot_read() {
    let t = tr(&http(
        "map $http_authorization $k { default $http_authorization; }
         limit_req_zone $k zone=m:1m rate=5r/s;
         limit_req_zone $remote_addr zone=ip:1m rate=5r/s;
         limit_req zone=ip;
         server { listen 18401;
           location /a/ { proxy_pass http://127.0.0.1:18301; }
           location /b/ { limit_req zone=m; proxy_pass http://127.0.0.1:18301; }
           location /c/ { limit_req zone=ip; limit_req_dry_run on; proxy_pass http://127.0.0.1:18301; } }",
    ));
    assert_eq!(strs(&t.route("a")["rate_limits"]), ["ip"], "inherited from http");
    assert!(
        t.route("b")["rate_limits"].is_null(),
        "its own level replaces http's, and m cannot be read"
    );
    assert!(t
        .line("limit_req zone=m")
        .contains("`$k`, which has no scimitar key source"));
    assert!(t.line("map $http_authorization $k").contains("$k is read elsewhere"));
    assert!(t.route("c")["rate_limits"].is_null());
    assert!(t.line("limit_req zone=ip").contains("dry_run"));
    assert_eq!(t.code(), 1);
}

// ---- headers ----

#[test]
fn proxy_set_header_rules_scimitar_already_follows_translate_to_nothing() {
    let t = tr(&server(
        "location / { proxy_pass http://scim;
           proxy_set_header Host $host;
           proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
           proxy_set_header X-Forwarded-Proto $scheme;
           proxy_set_header X-Forwarded-Host $host;
           proxy_set_header X-Request-Id $request_id;
           proxy_set_header Connection \"\";
           proxy_set_header Authorization $http_authorization; }",
    ));
    assert!(t.route("root")["headers"].is_null(), "{}", t.t.yaml);
    assert!(t.lines().is_empty(), "{:#?}", t.lines());
}

#[test]
fn proxy_set_header_sets_removes_and_passes_the_client_s_host_where_nginx_sent_proxy_host() {
    let t = tr(&server(
        "location / { proxy_pass http://scim;
           proxy_set_header X-Real-IP $remote_addr;
           proxy_set_header X-Tenant ${http_x_tenant}-prod;
           proxy_set_header X-Debug \"\";
           proxy_set_header X-Forwarded-Proto https;
           proxy_set_header X-DN $ssl_client_s_dn;
           proxy_set_header Upgrade $http_upgrade; }",
    ));
    let req = &t.route("root")["headers"]["request"];
    assert!(
        req["set"]["Host"].is_null(),
        "nginx's default Host ($proxy_host) is not written: the upstream's URLs would name the pool"
    );
    let host = t.line("nginx.conf:6: proxy_pass http://scim");
    assert!(
        host.contains("translated with a difference: nginx sends `Host: scim`")
            && host.contains("passes the client's Host")
            && host.contains("point at the proxy")
            && host.contains("proxy_redirect default"),
        "{host}"
    );
    assert_eq!(s(&req["set"]["X-Real-IP"]), "$remote_addr");
    assert_eq!(s(&req["set"]["X-Tenant"]), "$http_x_tenant-prod");
    assert_eq!(strs(&req["remove"]), ["X-Debug"]);
    assert!(req["set"]["X-Forwarded-Proto"].is_null());
    assert!(t
        .line("X-Forwarded-Proto https")
        .contains("translated with a difference: scimitar sets X-Forwarded-Proto itself"));
    assert!(t.line("X-DN").contains("not translated: `$ssl_client_s_dn`"));
    assert!(t.line("Upgrade").contains("hop-by-hop"));
    assert_eq!(t.code(), 1, "a header the upstream relied on is gone");
}

#[test]
fn an_x_forwarded_for_that_replaces_the_client_s_list_changes_handling() {
    for value in [
        "$remote_addr",
        "$realip_remote_addr",
        "\"$remote_addr, $http_x_forwarded_for\"",
    ] {
        let t = tr(&server(&format!(
            "location / {{ proxy_pass http://scim; proxy_set_header Host $host; proxy_set_header X-Forwarded-For {value}; }}"
        )));
        let n =
            t.t.notes
                .iter()
                .find(|n| n.what.starts_with("proxy_set_header X-Forwarded-For"))
                .unwrap();
        assert_eq!(n.kind, Kind::Dropped { handling: true }, "{value}");
        assert!(
            n.why.contains("rightmost") && n.why.contains("trusted_proxies"),
            "{}",
            n.why
        );
        assert_eq!(t.code(), 1, "{value}");
    }
    let t = tr(&server(
        "location / { proxy_pass http://scim; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }",
    ));
    assert!(t.lines().is_empty(), "{:#?}", t.lines());
}

#[test]
fn a_level_with_any_header_directive_replaces_all_of_its_parent_s() {
    let t = tr(&http(
        "proxy_set_header Host $host;
         proxy_set_header X-Real-IP $remote_addr;
         add_header X-Frame-Options DENY always;
         server { listen 18401;
           location /a/ { proxy_pass http://127.0.0.1:18301; }
           location /b/ { proxy_set_header X-Tenant $http_x_tenant_id; add_header X-Other 1 always; proxy_pass http://127.0.0.1:18301; } }",
    ));
    let a = &t.route("a")["headers"];
    assert!(
        a["request"]["set"]["Host"].is_null(),
        "Host $host is scimitar's default"
    );
    assert_eq!(s(&a["request"]["set"]["X-Real-IP"]), "$remote_addr");
    assert_eq!(s(&a["response"]["add"]["X-Frame-Options"]), "DENY");
    let b = &t.route("b")["headers"];
    assert!(b["request"]["set"]["Host"].is_null());
    assert!(
        t.line("proxy_pass").contains("nginx sends `Host: 127.0.0.1:18301`"),
        "the http level's Host rule no longer applies at /b/"
    );
    assert!(b["request"]["set"]["X-Real-IP"].is_null());
    assert_eq!(s(&b["request"]["set"]["X-Tenant"]), "$http_x_tenant_id");
    assert!(b["response"]["add"]["X-Frame-Options"].is_null());
    assert_eq!(s(&b["response"]["add"]["X-Other"]), "1");
}

#[test]
fn response_headers_add_hide_and_replace() {
    let t = tr(&server(
        "location / { proxy_pass http://scim; proxy_set_header Host $host;
           add_header Strict-Transport-Security \"max-age=63072000\";
           add_header X-Cache-Status $upstream_cache_status always;
           proxy_hide_header X-Powered-By;
           proxy_hide_header Server;
           add_header Server edge always; }",
    ));
    let resp = &t.route("root")["headers"]["response"];
    assert_eq!(s(&resp["add"]["Strict-Transport-Security"]), "max-age=63072000");
    assert_eq!(strs(&resp["remove"]), ["X-Powered-By"]);
    assert_eq!(
        s(&resp["set"]["Server"]),
        "edge",
        "hidden from the upstream and added: replaced"
    );
    assert!(t.line("Strict-Transport-Security").contains("without `always`"));
    assert!(t.line("X-Cache-Status").contains("X-Cache: HIT"));
    assert_eq!(t.code(), 0);
}

// ---- cache ----

#[test]
fn proxy_cache_valid_becomes_the_route_cache_with_the_key_difference_said() {
    let t = tr(&server_in(
        "proxy_cache_path /var/cache/nginx keys_zone=scim:10m; proxy_cache_path /var/cache/other keys_zone=unused:1m; ",
        "proxy_cache_valid 200 30s;
         location /scim/v2/ { proxy_pass http://scim; proxy_cache scim; }
         location /scim/v2/Schemas { proxy_pass http://scim; proxy_cache scim; proxy_cache_valid 200 301 1h; proxy_ignore_headers Cache-Control; }
         location /scim/v2/Bulk { proxy_pass http://scim; proxy_cache scim; }
         location /scim/v2/Me { proxy_pass http://scim; proxy_cache off; }",
    ));
    let general = &t.route("scim-v2")["cache"];
    assert_eq!(s(&general["discovery"]), "30s");
    assert_eq!(s(&general["resources"]), "30s");
    let schemas = &t.route("scim-v2-schemas")["cache"];
    assert_eq!(s(&schemas["discovery"]), "60m");
    assert!(schemas["resources"].is_null());
    assert_eq!(schemas["ignore_cache_control"], Value::Bool(true));
    assert!(t.route("scim-v2-bulk")["cache"].is_null());
    assert!(t
        .line("nginx.conf:9: proxy_cache scim")
        .contains("not translated: scimitar caches discovery documents and single Users/Groups only"));
    assert!(t
        .line("nginx.conf:7: proxy_cache scim")
        .contains("leaves Authorization out"));
    assert!(t.t.yaml.contains("the key includes the credential"));
    t.no_line("proxy_cache_path /var/cache/nginx");
    assert!(t
        .line("proxy_cache_path /var/cache/other")
        .contains("no translated location caches in this zone"));
}

#[test]
fn proxy_cache_without_a_ttl_for_200_is_reported() {
    let t = tr(&server_in(
        "proxy_cache_path c keys_zone=z:1m; ",
        "location / { proxy_pass http://scim; proxy_cache z; }",
    ));
    assert!(t.route("root")["cache"].is_null());
    assert!(t.line("proxy_cache z").contains("needs a TTL"));
    assert_eq!(t.code(), 1);
}

// ---- real IP, logs, client limits ----

#[test]
fn real_ip_becomes_trusted_proxies_and_the_header() {
    let t = tr(&http(
        "set_real_ip_from 10.0.0.0/8; set_real_ip_from 2001:db8::/32; real_ip_header X-Forwarded-For; real_ip_recursive on;
         server { listen 18401; set_real_ip_from 192.0.2.1; location / { proxy_pass http://127.0.0.1:18301; } }",
    ));
    assert_eq!(
        strs(&t.v["trusted_proxies"]),
        ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]
    );
    assert_eq!(s(&t.v["real_ip_header"]), "X-Forwarded-For");
    assert!(t.line("set_real_ip_from 192.0.2.1").contains("every listener"));
    t.no_line("real_ip_header");

    let t = tr(&http(
        "set_real_ip_from 10.0.0.0/8; server { listen 1; location / { proxy_pass http://127.0.0.1:18301; } }",
    ));
    assert_eq!(s(&t.v["real_ip_header"]), "X-Real-IP", "nginx's default header");
    let t = tr(&http(
        "set_real_ip_from 10.0.0.0/8; real_ip_header X-Forwarded-For; server { listen 1; location / { proxy_pass http://127.0.0.1:18301; } }",
    ));
    assert!(t.line("real_ip_header").contains("real_ip_recursive on"));
}

#[test]
fn access_log_error_log_and_log_format() {
    let t = tr(&http(
        "log_format j escape=json '{\"s\":$status}';
         access_log logs/access.log j;
         error_log /var/log/nginx/error.log;
         server { listen 18401; access_log /var/log/other.log; location / { proxy_pass http://127.0.0.1:18301; } }",
    ));
    assert_eq!(s(&t.v["access_log"]["path"]), "/etc/nginx/logs/access.log");
    assert!(t.line("access_log logs/access.log j").contains("not log_format `j`"));
    assert!(t.line("error_log").contains("stderr"));
    assert!(t.line("log_format").contains("not translated"));
    assert!(t.line("access_log /var/log/other.log").contains("one access log"));
    assert_eq!(t.code(), 0, "logs change nothing a client gets");
}

#[test]
fn client_limits_and_workers() {
    let t = tr(&format!(
        "worker_processes 4;\n{}",
        http(
            "keepalive_timeout 75s; client_header_timeout 10s; client_body_timeout 20s; send_timeout 30s;
             keepalive_requests 500; large_client_header_buffers 4 16k;
             server { listen 18401; location / { proxy_pass http://127.0.0.1:18301; } }"
        )
    ));
    assert_eq!(t.v["server"]["threads"], Value::from(4));
    let c = &t.v["client"];
    assert_eq!(s(&c["keepalive_timeout"]), "75s");
    assert_eq!(s(&c["header_timeout"]), "10s");
    assert_eq!(s(&c["body_timeout"]), "20s");
    assert_eq!(s(&c["send_timeout"]), "30s");
    assert_eq!(c["keepalive_requests"], Value::from(500));
    assert_eq!(s(&c["max_request_line"]), "16KiB");
    assert_eq!(s(&c["max_request_head"]), "64KiB");
    assert!(t.line("client_body_timeout").contains("whole body"));
}

// ---- bearer tokens ----

#[test]
fn an_if_on_the_authorization_header_becomes_route_auth_with_digests_only() {
    let t = tr(&server(
        "location / { if ($http_authorization != \"Bearer s3cret-token\") { return 401; } proxy_pass http://scim; }",
    ));
    let tokens = t.route("root")["auth"]["tokens"].as_sequence().unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(s(&tokens[0]["sha256"]), crate::admin::hash_token(b"s3cret-token"));
    assert!(
        !t.t.yaml.contains("s3cret-token"),
        "the token never appears in the output"
    );
    assert!(t.line("if ($http_authorization").contains("SHA-256"));
    assert_eq!(t.code(), 0);
}

#[test]
fn a_token_map_and_its_check_become_route_auth() {
    let t = tr(&http(
        "map $http_authorization $ok { default 0; \"Bearer t-one\" 1; \"Bearer t-two\" 1; }
         server { listen 18401; if ($ok = 0) { return 403; }
           location /a/ { proxy_pass http://127.0.0.1:18301; }
           location /b/ { proxy_pass http://127.0.0.1:18301; } }",
    ));
    for r in ["a", "b"] {
        let digests: Vec<&str> = t.route(r)["auth"]["tokens"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|x| s(&x["sha256"]))
            .collect();
        let want = [crate::admin::hash_token(b"t-one"), crate::admin::hash_token(b"t-two")];
        assert_eq!(digests, want, "route {r}");
    }
    assert!(!t.t.yaml.contains("t-one"));
    assert!(t.line("if ($ok = …)").contains("nginx answered 403"));
    t.no_line("map $http_authorization");
    assert_eq!(t.code(), 0);
}

#[test]
fn nested_token_checks_accept_only_the_tokens_that_pass_both() {
    let t = tr(&http(
        "map $http_authorization $ok { default 0; \"Bearer t-one\" 1; \"Bearer t-two\" 1; }
         server { listen 18401; if ($http_authorization != \"Bearer t-one\") { return 401; }
           location /both/ { if ($ok = 0) { return 401; } proxy_pass http://127.0.0.1:18301; }
           location /server/ { proxy_pass http://127.0.0.1:18301; }
           location /none/ { if ($http_authorization != \"Bearer t-three\") { return 401; } proxy_pass http://127.0.0.1:18301; } }",
    ));
    let digests = |r: &str| -> Vec<String> {
        t.route(r)["auth"]["tokens"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|x| s(&x["sha256"]).to_string())
            .collect()
    };
    let one = crate::admin::hash_token(b"t-one");
    assert_eq!(
        digests("both"),
        [one.as_str()],
        "t-two passes the location's check, not the server's"
    );
    assert_eq!(digests("server"), [one.as_str()]);
    assert_eq!(digests("none"), [crate::admin::hash_token(b"t-three")]);
    let refused =
        t.t.notes
            .iter()
            .find(|n| n.kind == Kind::Dropped { handling: true })
            .unwrap_or_else(|| panic!("{:#?}", t.lines()));
    assert!(
        refused.why.contains("no token passes both") && refused.why.contains("nginx.conf:7"),
        "{}",
        refused.why
    );
    assert_eq!(t.code(), 1, "only the location nginx refuses entirely is left looser");
}

#[test]
fn other_checks_in_if_are_not_mistaken_for_token_checks() {
    let t = tr(&server(
        "location / { if ($http_authorization = \"\") { return 401; } proxy_pass http://scim; }
         location /b/ { if ($http_authorization != \"Bearer x\") { set $a 1; return 401; } proxy_pass http://scim; }",
    ));
    assert!(t.route("root")["auth"].is_null());
    assert!(t.route("b")["auth"].is_null());
    assert!(t.line("if ($http_authorization = \"\"").contains("not translated"));
    assert_eq!(t.code(), 1);
}

// ---- what is left over, and the exit code ----

#[test]
fn scripting_and_modules_change_handling_tuning_and_unused_variables_do_not() {
    let t = tr(&http(
        "sendfile on; gzip on; map $http_user_agent $unused { default 0; }
         map $http_x_tenant $blocked { default 0; acme 1; }
         server { listen 18401;
           location / { if ($blocked) { return 403; } proxy_pass http://127.0.0.1:18301; } }",
    ));
    t.no_line("sendfile");
    assert!(t.line("gzip on").contains("not translated"));
    let unused =
        t.t.notes
            .iter()
            .find(|n| n.what.starts_with("map $http_user_agent"))
            .unwrap();
    assert_eq!(unused.kind, Kind::Dropped { handling: false });
    assert!(t.line("map $http_user_agent").contains("read nowhere"));
    let used =
        t.t.notes
            .iter()
            .find(|n| n.what.starts_with("map $http_x_tenant"))
            .unwrap();
    assert_eq!(used.kind, Kind::Dropped { handling: true });
    assert_eq!(t.code(), 1);
    assert_eq!(exit_code(&t.t.notes, true), 0, "--allow-partial");

    let t = tr(&http(
        "map $http_user_agent $unused { default 0; } log_format x '$status'; error_log e.log;
         server { listen 18401; location / { proxy_pass http://127.0.0.1:18301; proxy_set_header Host $host; } }",
    ));
    assert_eq!(t.code(), 0, "{:#?}", t.lines());
    assert_eq!(t.lines().len(), 3);

    let t = tr(&server(
        "error_page 502 /down.json; error_page 404 =200 /empty.json; location / { proxy_pass http://scim; }",
    ));
    let swaps_body =
        t.t.notes
            .iter()
            .find(|n| n.what == "error_page 502 /down.json")
            .unwrap();
    assert_eq!(swaps_body.kind, Kind::Dropped { handling: false });
    let changes_status =
        t.t.notes
            .iter()
            .find(|n| n.what.starts_with("error_page 404 =200"))
            .unwrap();
    assert_eq!(changes_status.kind, Kind::Dropped { handling: true });

    let t = tr(&server(
        "rewrite ^/v2/(.*)$ /scim/v2/$1; location / { access_by_lua_block { ngx.exit(403) } js_content x.y; frobnicate on; proxy_pass http://scim; }",
    ));
    for what in ["rewrite", "access_by_lua_block", "js_content", "frobnicate"] {
        let n = t.t.notes.iter().find(|n| n.what.starts_with(what)).unwrap();
        assert_eq!(n.kind, Kind::Dropped { handling: true }, "{what}");
    }
}

#[test]
fn report_lines_name_file_line_directive_and_verdict() {
    let t = tr(&server(
        "location / { rewrite ^ /x; proxy_pass http://scim; proxy_set_header Host $host; }",
    ));
    assert_eq!(
        t.lines(),
        ["nginx.conf:6: rewrite ^ /x — not translated: scimitar does not rewrite paths beyond a route's `upstream_base_path`"]
    );
    assert!(t.t.yaml.starts_with("# Translated from nginx"));
    assert!(t.t.yaml.contains("# from nginx.conf:6: location / { … }"));
    assert!(t.t.yaml.contains("  # nginx.conf:6: rewrite ^ /x — not translated"));
}

#[test]
fn an_empty_configuration_still_gives_a_loadable_skeleton() {
    let t = tr("events {}\n");
    assert_eq!(s(&t.v["listeners"][0]["address"]), "0.0.0.0:80");
    assert!(t.v["routes"].as_sequence().unwrap().is_empty());
}

#[test]
fn odd_values_are_reported_or_bounded_never_a_panic() {
    let snippets = [
        "location / { proxy_pass http://scim; proxy_set_header X \"${host\"; }",
        "location / { proxy_pass http://scim; add_header X \"$\" always; }",
        "location / { proxy_pass http://; }",
        "location / { proxy_pass http://[::1; }",
        "location / { proxy_pass http://127.0.0.1:99999; }",
        "location / { proxy_pass; }",
        "location { proxy_pass http://scim; }",
        "location = { }",
        "location \"/a/{b}/\" { proxy_pass http://scim; }",
        "location / { proxy_pass http://scim; proxy_read_timeout 99999999999999999999y; proxy_connect_timeout 0; }",
        "location / { proxy_pass http://scim; client_max_body_size 99999999999999999999g; }",
        "location / { return; }",
        "location / { return 99999; }",
        "location / { if () { return 401; } proxy_pass http://scim; }",
        "location / { if ($http_authorization != Bearer) { return 401; } proxy_pass http://scim; }",
        "location / { proxy_pass http://scim; proxy_cache z; proxy_cache_valid 99999999999d; }",
        "location / { proxy_pass http://scim; proxy_next_upstream_tries 0; proxy_next_upstream; }",
    ];
    for inner in snippets {
        let t = tr(&server(inner));
        assert!(!t.t.yaml.is_empty(), "{inner}");
    }
    let t = tr(&http(
        "upstream u { server 127.0.0.1:18301 weight=18446744073709551615 max_conns=18446744073709551615 fail_timeout=9999999d;
                      server 127.0.0.1:18301 weight=18446744073709551615; keepalive_timeout 0; keepalive 99999999; }
         limit_req_zone $remote_addr zone=z:1m rate=99999999999r/s;
         limit_req_zone $remote_addr zone=y:1m rate=5r/s;
         large_client_header_buffers 18446744073709551615 1g; keepalive_requests 18446744073709551615;
         server { listen 99999; listen [::1; listen 18401;
           location / { limit_req zone=z; limit_req zone=y burst=18446744073709551615; proxy_pass http://u; } }",
    ));
    let p = &t.v["upstreams"]["u"];
    assert_eq!(p["servers"][0]["weight"], Value::from(1000));
    assert_eq!(p["max_conns"], Value::from(1_000_000));
    assert_eq!(t.v["rate_limits"]["policies"]["y"]["burst"], Value::from(1_000_000));
    assert_eq!(s(&t.v["client"]["max_request_line"]), "65534");
}

#[test]
fn a_caching_route_keys_on_the_client_headers_its_request_rules_forward() {
    let t = tr(&server_in(
        "proxy_cache_path c keys_zone=z:1m; ",
        "location / { proxy_pass http://scim; proxy_cache z; proxy_cache_valid 200 1m;
           proxy_set_header X-Tenant $http_x_tenant_id; proxy_set_header X-Auth $http_authorization; }",
    ));
    assert_eq!(strs(&t.route("root")["cache"]["key_headers"]), ["X-Tenant-Id"]);
}
