use super::*;
use crate::accesslog::Destination;

const BASE: &str = r#"
listeners: [{name: main, address: 127.0.0.1:8080}]
upstreams:
  scim:
    servers: [127.0.0.1:8001]
routes:
  - base_path: /scim/v2
    upstream: scim
"#;

fn with(extra: &str) -> Result<Config, Vec<String>> {
    from_str_with_env(&format!("{BASE}{extra}"), |_| None).map_err(|p| p.0.iter().map(|p| p.to_string()).collect())
}

fn problems(extra: &str) -> Vec<String> {
    with(extra).err().unwrap_or_default()
}

#[test]
fn observability_is_off_by_default() {
    let c = with("").unwrap();
    assert_eq!(c.access_log, None);
    assert_eq!(c.metrics, crate::metrics::MetricsConfig::default());
    assert!(c.trusted_proxies.is_empty());
    assert_eq!(c.real_ip_header, "x-forwarded-for");
}

#[test]
fn access_log_section() {
    let dir = std::env::temp_dir();
    let file = dir.join("scimitar-config-test-access.log");
    let c = with(&format!("access_log: {{path: {}, queue: 64}}\n", file.display())).unwrap();
    let a = c.access_log.unwrap();
    assert_eq!(a.destination, Destination::File(file.clone()));
    assert_eq!(a.queue, 64);
    let c = with("access_log: {path: stdout}\n").unwrap();
    assert_eq!(c.access_log.unwrap().destination, Destination::Stdout);
    assert_eq!(
        with("access_log: {path: stdout}\n").unwrap().access_log.unwrap().queue,
        crate::accesslog::DEFAULT_QUEUE
    );
    // A relative file is made absolute against the directory scimitar starts in.
    let c = with("access_log: {path: access.log}\n").unwrap();
    match c.access_log.unwrap().destination {
        Destination::File(p) => assert!(p.is_absolute() && p.ends_with("access.log"), "{p:?}"),
        d => panic!("{d:?}"),
    }
}

#[test]
fn access_log_problems_name_the_key_and_the_fix() {
    let cases = [
        ("access_log: {}\n", "access_log.path: missing; give a file"),
        (
            "access_log: {path: /nonexistent-dir-scimitar/a.log}\n",
            "access_log.path: directory /nonexistent-dir-scimitar does not exist",
        ),
        ("access_log: {path: /tmp}\n", "access_log.path: `/tmp` is a directory"),
        (
            "access_log: {path: stdout, queue: 0}\n",
            "access_log.queue: 0 is out of range",
        ),
        (
            "access_log: {path: stdout, qeue: 5}\n",
            "access_log.qeue: unknown key; did you mean `queue`?",
        ),
        ("access_log: stdout\n", "access_log: expected a mapping"),
    ];
    for (text, want) in cases {
        let got = problems(text);
        assert!(
            got.iter().any(|g| g.starts_with(want)),
            "{text}: want {want:?} in {got:#?}"
        );
    }
}

#[test]
fn metrics_section() {
    let c = with("metrics: {tenant_label: true, max_tenants: 500}\n").unwrap();
    assert!(c.metrics.tenant_label);
    assert_eq!(c.metrics.max_tenants, 500);
    let got = problems("metrics: {max_tenants: 0, tenant_labels: true}\n");
    assert!(
        got.iter()
            .any(|g| g.starts_with("metrics.max_tenants: 0 is out of range; use 1 to 10000")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("metrics.tenant_labels: unknown key; did you mean `tenant_label`?")),
        "{got:?}"
    );
    let got = problems("metrics: {tenant_label: maybe}\n");
    assert!(
        got.iter()
            .any(|g| g.starts_with("metrics.tenant_label: expected true or false")),
        "{got:?}"
    );
}

#[test]
fn trusted_proxies_are_networks() {
    let c = with("trusted_proxies: [10.0.0.0/8, \"2001:db8::/32\", 127.0.0.1]\n").unwrap();
    assert_eq!(c.trusted_proxies.len(), 3);
    assert!(c.trusted_proxies[2].contains("127.0.0.1".parse().unwrap()));
    let got = problems("trusted_proxies: [10.0.0.1/8, lb.internal, 7]\n");
    assert!(
        got.iter()
            .any(|g| g
                .starts_with("trusted_proxies[0]: `10.0.0.1/8` has host bits set; write the network, `10.0.0.0/8`")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("trusted_proxies[1]: `lb.internal` is not an IP network")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("trusted_proxies[2]: `7` is not an IP network")),
        "{got:?}"
    );
    let got = problems("trusted_proxies: 10.0.0.0/8\n");
    assert!(
        got.iter().any(|g| g.starts_with("trusted_proxies: expected a list")),
        "{got:?}"
    );
}

#[test]
fn real_ip_header_names_the_header_trusted_proxies_write() {
    let c = with("trusted_proxies: [10.0.0.0/8]\nreal_ip_header: X-Real-IP\n").unwrap();
    assert_eq!(c.real_ip_header, "x-real-ip");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let got = problems("trusted_proxies: [10.0.0.0/8]\nreal_ip_header: \"X Real IP\"\n");
    assert!(
        got.iter().any(|g| g.starts_with(
            "real_ip_header: `X Real IP` is not a header name; write e.g. `X-Forwarded-For` or `X-Real-IP`"
        )),
        "{got:?}"
    );
    // Without trusted proxies nobody's header is read: worth a warning, not an error.
    let c = with("real_ip_header: X-Real-IP\n").unwrap();
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        w.iter()
            .any(|w| w.starts_with("real_ip_header: is only read from `trusted_proxies`")),
        "{w:?}"
    );
}
