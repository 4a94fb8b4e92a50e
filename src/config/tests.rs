use super::*;

const GOOD: &str = r#"
server:
  threads: 2
  pid_file: /tmp/scimitar-test.pid
  grace_period_seconds: 5
listeners:
  - name: main
    address: 127.0.0.1:8080
admin:
  address: 127.0.0.1:9090
upstreams:
  scim:
    selection: consistent
    servers:
      - address: 127.0.0.1:8001
        weight: 2
      - 127.0.0.1:8002
    health_check:
      path: /scim/v2/ServiceProviderConfig
      interval: 2s
      timeout: 500ms
      expect_status: [200, 204]
      rise: 2
      fall: 3
    passive: {max_fails: 5, eject_for: 30s, count_5xx: true}
    timeouts: {connect: 1s, read: 20s, write: 10s, idle: 1m}
    keepalive: 16
    retries: 1
routes:
  - name: bulk
    base_path: /{tenant}/scim/v2
    classes: [bulk]
    methods: [post]
    upstream: scim
    max_body: 2MiB
  - base_path: /{tenant}/scim/v2
    upstream: scim
"#;

fn problems(text: &str) -> Vec<String> {
    match from_str_with_env(text, |_| None) {
        Ok(_) => Vec::new(),
        Err(p) => p.0.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn good_file_builds_the_runtime_model() {
    let c = from_str_with_env(GOOD, |_| None).unwrap();
    assert_eq!(c.server.threads, 2);
    assert_eq!(c.server.grace_period_seconds, Some(5));
    assert_eq!(c.server.max_retries, 2, "derived from the pool's retries");
    assert_eq!(c.listeners[0].address, "127.0.0.1:8080");
    assert_eq!(c.admin.unwrap().address, "127.0.0.1:9090");
    assert_eq!(c.tenancy, Tenancy::Path, "implied by {{tenant}} in base paths");
    let u = &c.upstreams[0];
    assert_eq!(u.selection, Selection::Consistent);
    assert_eq!(u.servers.len(), 2);
    assert_eq!((u.servers[0].weight, u.servers[1].weight), (2, 1));
    let hc = u.health_check.as_ref().unwrap();
    assert_eq!(hc.timeout, Duration::from_millis(500));
    assert_eq!(hc.expect_status, [200, 204]);
    assert_eq!((hc.rise, hc.fall), (2, 3));
    assert!(u.passive.count_5xx);
    assert_eq!(u.timeouts.idle, Duration::from_secs(60));
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.routes[0].max_body, [2 << 20; 9]);
    assert_eq!(c.routes[1].max_body, [build::DEFAULT_MAX_BODY; 9]);
    assert_eq!(c.routes[1].name, "routes[1]");
}

#[test]
fn shipped_default_config_is_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/scimitar.yaml")).unwrap();
    if let Err(p) = from_str_with_env(&text, |_| None) {
        panic!("conf/scimitar.yaml: {:?}", p.0);
    }
}

#[test]
fn every_problem_is_listed_with_its_place() {
    let bad = r#"
server:
  thread: 4
listeners:
  - address: 8080
upstreams:
  scim:
    selection: least_conn
    servers:
      - address: 127.0.0.1:8001
      - address: nohost
      - adress: 127.0.0.1:8003
    health_check:
      interval: 5
    timeouts: {connect: 0s}
routes:
  - base_path: scim/v2
    upstream: scim
  - base_path: /scim/v2
    classes: [users.read, users.delete]
    methods: [GET, FETCH]
    upstream: missing
    max_body: 1TiB
"#;
    let got = problems(bad);
    let want = [
        "server.thread: unknown key; did you mean `threads`?",
        "listeners[0].address: `8080` is not an IP:port address",
        "upstreams.scim.selection: `least_conn` is not a selection; use round_robin or consistent",
        "upstreams.scim.servers[1].address: `nohost` has no port",
        "upstreams.scim.servers[2].adress: unknown key; did you mean `address`?",
        "upstreams.scim.servers[2].address: missing",
        "upstreams.scim.health_check.path: missing",
        "upstreams.scim.timeouts.connect: must be more than 0",
        "routes[0].base_path: `scim/v2` must start with `/`",
        "routes[1].classes[1]: `users.delete` is not an endpoint class",
        "routes[1].methods[1]: `FETCH` is not a method",
        "routes[1].upstream: no pool named `missing` in upstreams (defined: scim)",
        "routes[1].max_body: unknown size unit `TiB`",
    ];
    for w in want {
        assert!(
            got.iter().any(|g| g.starts_with(w)),
            "missing problem {w:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
}

#[test]
fn missing_sections_are_named() {
    let got = problems("{}");
    assert!(got.iter().any(|g| g.starts_with("upstreams: missing")), "{got:?}");
    assert!(got.iter().any(|g| g.starts_with("listeners: missing")), "{got:?}");
    assert!(got.iter().any(|g| g.starts_with("routes: missing")), "{got:?}");
    let got = problems("listeners: [");
    assert!(got[0].contains("YAML syntax error"), "{got:?}");
}

#[test]
fn env_references_are_expanded_before_parsing() {
    let text = GOOD
        .replace("127.0.0.1:8080", "${LISTEN:-127.0.0.1:8081}")
        .replace("threads: 2", "threads: ${THREADS}");
    let c = from_str_with_env(&text, |k| (k == "THREADS").then(|| "3".to_string())).unwrap();
    assert_eq!(c.server.threads, 3);
    assert_eq!(c.listeners[0].address, "127.0.0.1:8081");
    let err = from_str_with_env(&text, |_| None).unwrap_err();
    assert!(err.0[0].to_string().contains("THREADS is not set"));
}

#[test]
fn tenancy_sources_are_checked_against_routes() {
    let plain = GOOD.replace("/{tenant}/scim/v2", "/scim/v2");
    let header = format!("{plain}tenancy: {{source: header, header: X-Tenant-Id}}\n");
    assert_eq!(
        from_str_with_env(&header, |_| None).unwrap().tenancy,
        Tenancy::Header("x-tenant-id".into())
    );
    let got = problems(&format!("{plain}tenancy: {{source: path}}\n"));
    assert!(
        got[0].starts_with("tenancy.source: `path` needs a `{tenant}` segment"),
        "{got:?}"
    );
    let got = problems(&format!("{GOOD}tenancy: {{source: header}}\n"));
    assert!(got.iter().any(|g| g.starts_with("tenancy.header: missing")), "{got:?}");
    assert!(got.iter().any(|g| g.contains("conflicts with `{tenant}`")), "{got:?}");
}

#[test]
fn duplicate_addresses_are_rejected() {
    let text = GOOD.replace("- 127.0.0.1:8002", "- 127.0.0.1:8001");
    let got = problems(&text);
    assert!(
        got[0].starts_with("upstreams.scim.servers[1]: 127.0.0.1:8001 is listed twice"),
        "{got:?}"
    );
    let text = GOOD.replace("address: 127.0.0.1:9090", "address: 127.0.0.1:8080");
    let got = problems(&text);
    assert!(
        got[0].starts_with("admin.address: 127.0.0.1:8080 overlaps listeners[0].address (127.0.0.1:8080)"),
        "{got:?}"
    );
    // A wildcard address overlaps every address on its port.
    let text = GOOD.replace("address: 127.0.0.1:9090", "address: 0.0.0.0:8080");
    assert!(problems(&text)[0].starts_with("admin.address: 0.0.0.0:8080 overlaps listeners[0].address"));
    let text = GOOD.replace(
        "    address: 127.0.0.1:8080\n",
        "    address: 127.0.0.1:8080\n  - name: all\n    address: \"[::]:8080\"\n",
    );
    let got = problems(&text);
    assert!(
        got[0].starts_with("listeners[1].address: [::]:8080 overlaps another listener's 127.0.0.1:8080"),
        "{got:?}"
    );
}

const POLICIES: &str = r#"
key_secret: s3cret
redis:
  url: redis://127.0.0.1:6379
  timeout: 20ms
rate_limits:
  store: redis
  policies:
    tenant-writes: {key: [tenant, class], rate: 600/m, burst: 180, classes: [users.write, groups.write]}
    bulk: {key: tenant, rate: 10/m}
    per-ip: {key: [client_ip], rate: 50/s}
"#;

#[test]
fn affinity_limits_overload_and_class_sizes_build() {
    let text =
        GOOD.replace(
            "    retries: 1
",
            "    retries: 1
    max_inflight: 64
    queue: 200
    queue_timeout: 2s
    tenant_share: 0.5
",
        )
        .replace(
            "  - base_path: /{tenant}/scim/v2
    upstream: scim
",
            "  - base_path: /{tenant}/scim/v2
    upstream: scim
    affinity: {key: [token, tenant], pin_after_write: 30s}
    rate_limits: [tenant-writes, per-ip]
    max_body: {default: 512KiB, bulk: 4MiB}
",
        ) + POLICIES;
    let c = from_str_with_env(&text, |_| None).unwrap();
    assert_eq!(c.key_secret, "s3cret");
    let o = c.upstreams[0].overload.as_ref().unwrap();
    assert_eq!((o.max_inflight, o.queue, o.tenant_share), (64, 200, Some(0.5)));
    let r = &c.routes[1];
    let a = r.affinity.as_ref().unwrap();
    assert_eq!(
        a.sources,
        [crate::keys::KeySource::Token, crate::keys::KeySource::Tenant]
    );
    assert_eq!(a.pin_after_write, Some(Duration::from_secs(30)));
    assert_eq!(r.limits, [0, 2]);
    assert_eq!(r.max_body_for(crate::scim::EndpointClass::Bulk), 4 << 20);
    assert_eq!(r.max_body_for(crate::scim::EndpointClass::UsersWrite), 512 << 10);
    let p = &c.rate_limits.policies;
    assert_eq!(p.len(), 3);
    assert_eq!(p[0].burst, 180);
    assert_eq!(p[1].burst, 1, "default burst: one second at 10/m, at least 1");
    assert_eq!(p[2].burst, 50);
    assert_ne!(p[0].classes, 0);
    let redis = c.rate_limits.redis.as_ref().unwrap();
    assert_eq!(redis.timeout, Duration::from_millis(20));
}

#[test]
fn policy_mistakes_are_named() {
    let text = GOOD
        .replace("selection: consistent", "selection: round_robin")
        .replace(
            "    retries: 1
",
            "    retries: 1
    queue: 10
",
        )
        .replace(
            "  - base_path: /{tenant}/scim/v2
    upstream: scim
",
            "  - base_path: /{tenant}/scim/v2
    upstream: scim
    affinity: {key: [tokn]}
    rate_limits: [nope]
  - base_path: /x
    upstream: scim
    affinity: {key: tenant}
",
        )
        + "rate_limits:
  store: redis
  policies:
    a: {key: [tenant], rate: 10}
";
    let got = problems(&text);
    let want = [
        "upstreams.scim.queue: only applies with `max_inflight`",
        "routes[1].affinity.key[0]: `tokn` is not a key source",
        "routes[1].rate_limits[0]: no policy `nope` in rate_limits.policies (defined: )",
        "routes[2].affinity: needs a consistent-hash pool; set `upstreams.scim.selection: consistent`",
        "rate_limits.store: `redis` needs a top-level `redis:",
        "rate_limits.policies.a.rate: `10` is not a rate",
    ];
    for w in want {
        assert!(got.iter().any(|g| g.starts_with(w)), "missing {w:?} in {got:#?}");
    }
    // routes[1].affinity.key had no valid source left: that is reported too.
    assert!(
        got.iter()
            .any(|g| g.starts_with("routes[1].affinity.key: list at least one")),
        "{got:#?}"
    );
    assert_eq!(got.len(), want.len() + 1, "{got:#?}");
}

#[test]
fn the_readme_reference_config_is_valid() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```yaml\nserver:")
        .expect("README has the reference config")
        + "```yaml\n".len();
    let len = readme[start..].find("```").unwrap();
    let yaml = &readme[start..start + len];
    if let Err(p) = from_str_with_env(yaml, |_| None) {
        panic!("README reference config: {:#?}", p.0);
    }
}

#[test]
fn cache_settings_build_and_mistakes_are_named() {
    let route = "  - base_path: /{tenant}/scim/v2
    upstream: scim
";
    let ok = GOOD.replace(
        route,
        &format!(
            "{route}    cache: {{discovery: 5m, resources: 30s, write_through: true, ignore_cache_control: true}}\n"
        ),
    ) + "cache: {max_size: 16MiB, max_entry: 64KiB}\n";
    let cfg = from_str_with_env(&ok, |_| None).expect("valid");
    let c = cfg.routes[1].cache.as_ref().expect("route cache");
    assert_eq!(c.resources, Some(std::time::Duration::from_secs(30)));
    assert!(c.write_through && c.ignore_cache_control);
    assert_eq!(cfg.cache.as_ref().map(|c| c.max_entry), Some(64 << 10));
    // No route caches: no store is built.
    assert!(from_str_with_env(GOOD, |_| None).expect("valid").cache.is_none());

    let bad = GOOD.replace(
        route,
        &format!("{route}    cache: {{write_through: true, resoures: 1s}}\n"),
    ) + "cache: {max_size: 1MiB, max_entry: 2MiB}\n";
    let got = problems(&bad);
    let want = [
        "routes[1].cache.resoures: unknown key",
        "routes[1].cache.write_through: seeds resource entries, so it needs `resources: <ttl>`",
        "routes[1].cache: caches nothing",
    ];
    for w in want {
        assert!(got.iter().any(|g| g.starts_with(w)), "missing {w:?} in {got:#?}");
    }
    // The route's cache was rejected, so there is no store to check `cache.max_entry` against.
    let bad_store = ok.replace("max_entry: 64KiB", "max_entry: 32MiB");
    assert!(
        problems(&bad_store)
            .iter()
            .any(|g| g.starts_with("cache.max_entry: must be between 1 byte and cache.max_size")),
        "{:?}",
        problems(&bad_store)
    );
}

#[test]
fn max_conns_and_its_wait() {
    let with = |extra: &str| GOOD.replace("    retries: 1\n", &format!("    retries: 1\n{extra}"));
    let cfg = from_str_with_env(&with("    max_conns: 4\n    queue_timeout: 500ms\n"), |_| None).expect("valid");
    assert_eq!(cfg.upstreams[0].max_conns, Some(4));
    assert_eq!(cfg.upstreams[0].conn_wait, std::time::Duration::from_millis(500));
    let got = problems(&with("    queue_timeout: 1s\n"));
    assert!(
        got.iter()
            .any(|g| g.starts_with("upstreams.scim.queue_timeout: only applies with `max_inflight` or `max_conns`")),
        "{got:?}"
    );
    let got = problems(&with("    max_conns: 0\n"));
    assert!(got.iter().any(|g| g.starts_with("upstreams.scim.max_conns")), "{got:?}");
}

#[test]
fn shutdown_timeout_sets_pingoras_backstop() {
    let plain = GOOD.replace("  grace_period_seconds: 5\n", "");
    let c = from_str_with_env(&plain, |_| None).unwrap();
    assert_eq!(
        c.shutdown_timeout,
        Duration::from_secs(30),
        "default under Kubernetes' grace"
    );
    assert_eq!(
        c.server.grace_period_seconds,
        Some(35),
        "Pingora's grace only backs ours up"
    );
    assert_eq!(c.server.graceful_shutdown_timeout_seconds, Some(1));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let c = from_str_with_env(&format!("{plain}shutdown_timeout: 10s\n"), |_| None).unwrap();
    assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(c.server.grace_period_seconds, Some(15));

    // An explicit Pingora grace shorter than the drain would cut requests off: warned.
    let c = from_str_with_env(GOOD, |_| None).unwrap();
    assert_eq!(c.server.grace_period_seconds, Some(5));
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert!(w.iter().any(|w| w.contains("server.grace_period_seconds")), "{w:?}");
    assert!(problems(&format!("{plain}shutdown_timeout: 30\n"))[0].contains("shutdown_timeout"));
}

#[test]
fn the_admin_token_is_configured_by_its_digest_only() {
    let digest = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
    let text = GOOD.replace(
        "address: 127.0.0.1:9090",
        &format!("address: 127.0.0.1:9090\n  token_sha256: {digest}"),
    );
    let c = from_str_with_env(&text, |_| None).unwrap();
    let got = c.admin.unwrap().token_sha256.unwrap();
    assert_eq!(got, openssl::sha::sha256(b"test"));
    // The file as loaded is kept for `GET /config`.
    assert_eq!(c.source["admin"]["token_sha256"].as_str(), Some(digest));

    let text = GOOD.replace(
        "address: 127.0.0.1:9090",
        "address: 127.0.0.1:9090\n  token_sha256: s3cret",
    );
    let got = problems(&text);
    assert!(
        got[0].starts_with("admin.token_sha256: expected the token's SHA-256 as 64 hex digits"),
        "{got:?}"
    );
}

#[test]
fn route_names_are_unique() {
    let text = |names: [&str; 3]| {
        let mut t = String::from(
            "listeners: [{address: \"127.0.0.1:8080\"}]\nupstreams: {scim: {servers: [\"127.0.0.1:8001\"]}}\nroutes:\n",
        );
        for (i, n) in names.iter().enumerate() {
            let name = if n.is_empty() {
                String::new()
            } else {
                format!("name: \"{n}\", ")
            };
            t += &format!("  - {{{name}base_path: /r{i}/v2, upstream: scim}}\n");
        }
        t
    };
    assert_eq!(
        problems(&text(["scim", "bulk", "scim"])),
        ["routes[2].name: `scim` also names routes[0]; give each route its own name (metrics and the access log tell routes apart by it)"]
    );
    // A route without a name is named by its place; a written name may not take another's.
    assert_eq!(
        problems(&text(["", "routes[0]", ""])),
        ["routes[1].name: `routes[0]` also names routes[0]; give each route its own name (metrics and the access log tell routes apart by it)"]
    );
    assert_eq!(
        problems(&text(["routes[1]", "", ""])),
        ["routes[0].name: `routes[1]` also names routes[1]; give each route its own name (metrics and the access log tell routes apart by it)"]
    );
    assert!(problems(&text(["a", "", "b"])).is_empty());
}
