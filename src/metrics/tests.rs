use std::collections::BTreeMap;

use super::*;

/// `name{labels} value` lines of the exposition (comments skipped), keyed by `name{labels}`.
fn series(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn text(m: &Metrics) -> String {
    let limiter = crate::ratelimit::Limiter::new(Vec::new(), None);
    let live = scrape::Live {
        pools: &[],
        limiter: &limiter,
        cache: None,
        listeners: &[],
        l4: &[],
        inbound: &[],
    };
    String::from_utf8(m.encode(&live)).unwrap()
}

fn req(endpoint: Endpoint, op: Op, status: u16) -> Request<'static> {
    Request {
        endpoint,
        op,
        status,
        micros: 20_000,
        refusal: None,
        tenant: None,
        vouched: false,
    }
}

#[test]
fn a_request_moves_exactly_its_series() {
    let m = Metrics::new().unwrap();
    let p = PoolMetrics::new(&m, "scim", &["127.0.0.1:1".into()]).unwrap();
    let before = series(&text(&m));
    m.record(Some(&p), &req(Endpoint::Users, Op::Deprovision, 204));
    let after = series(&text(&m));
    let moved: BTreeMap<&String, f64> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0.0)))
        .collect();
    let l = r#"endpoint="users",operation="deprovision",upstream="scim""#;
    let want: BTreeMap<String, f64> = [
        (format!(r#"scimitar_requests_total{{code="2xx",{l}}}"#), 1.0),
        (
            format!(r#"scimitar_request_duration_seconds_bucket{{{l},le="0.025"}}"#),
            1.0,
        ),
        (format!(r#"scimitar_request_duration_seconds_sum{{{l}}}"#), 0.02),
        (format!(r#"scimitar_request_duration_seconds_count{{{l}}}"#), 1.0),
    ]
    .into_iter()
    .collect();
    // Every bucket from 0.025 up moved by one as well (the buckets are cumulative).
    let buckets_up: Vec<&&String> = moved.keys().filter(|k| k.contains("_bucket")).collect();
    assert_eq!(buckets_up.len(), 14, "0.025 … 30 and +Inf: {buckets_up:?}");
    for (k, v) in &want {
        assert!(
            (moved.get(k).copied().unwrap_or(0.0) - v).abs() < 1e-9,
            "{k}: {moved:?}"
        );
    }
    assert_eq!(moved.len(), 17, "only that request's series moved: {moved:?}");
}

#[test]
fn label_values_are_closed_sets() {
    let m = Metrics::new().unwrap();
    let p = PoolMetrics::new(&m, "scim", &["127.0.0.1:1".into(), "127.0.0.1:2".into()]).unwrap();
    for e in Endpoint::ALL {
        for o in Op::ALL {
            for status in [0, 101, 200, 302, 404, 503, 999] {
                m.record(Some(&p), &req(e, o, status));
            }
        }
    }
    m.record(None, &req(Endpoint::Users, Op::Get, 404));
    let t = text(&m);
    let endpoints: Vec<&str> = Endpoint::ALL.iter().map(|e| e.as_str()).collect();
    let ops: Vec<&str> = Op::ALL.iter().map(|o| o.as_str()).collect();
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let mut pairs = std::collections::BTreeSet::new();
    let all = series(&t);
    for k in all.keys().filter(|k| k.starts_with("scimitar_requests_total{")) {
        let labels: BTreeMap<&str, &str> = k["scimitar_requests_total{".len()..k.len() - 1]
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(a, b)| (a, b.trim_matches('"')))
            .collect();
        assert!(endpoints.contains(&labels["endpoint"]), "{k}");
        assert!(ops.contains(&labels["operation"]), "{k}");
        assert!(codes.contains(&labels["code"]), "{k}");
        assert!(["scim", ""].contains(&labels["upstream"]), "{k}");
        assert_eq!(labels.len(), 4, "{k}");
        pairs.insert((labels["endpoint"], labels["operation"], labels["upstream"]));
    }
    // 36 possible endpoint × operation pairs for the pool, one for unrouted requests.
    assert_eq!(pairs.len(), 37, "{pairs:?}");
    assert!(pairs.contains(&("other", "other", "")));
    assert!(!pairs.contains(&("schemas", "deprovision", "scim")));
}

#[test]
fn refusals_are_counted_by_reason() {
    let m = Metrics::new().unwrap();
    let p = PoolMetrics::new(&m, "scim", &[]).unwrap();
    let limited = m.rate_limited("per-ip").unwrap();
    limited.inc();
    let mut r = req(Endpoint::Users, Op::Create, 503);
    r.refusal = Some(Refusal::Shed);
    m.record(Some(&p), &r);
    r.refusal = Some(Refusal::TooLarge);
    r.status = 413;
    m.record(Some(&p), &r);
    r.refusal = Some(Refusal::NoRoute);
    r.status = 404;
    m.record(None, &r);
    r.refusal = Some(Refusal::Returned);
    r.status = 403;
    m.record(None, &r);
    r.refusal = Some(Refusal::AmbiguousTenant);
    r.status = 400;
    m.record(None, &r);
    let s = series(&text(&m));
    let get = |k: &str| s.get(k).copied().unwrap_or(-1.0);
    assert_eq!(
        get(r#"scimitar_rejected_requests_total{policy="per-ip",reason="rate_limit",upstream=""}"#),
        1.0
    );
    assert_eq!(
        get(r#"scimitar_rejected_requests_total{policy="",reason="shed",upstream="scim"}"#),
        1.0
    );
    assert_eq!(
        get(r#"scimitar_rejected_requests_total{policy="",reason="too_large",upstream="scim"}"#),
        1.0
    );
    assert_eq!(
        get(r#"scimitar_rejected_requests_total{policy="",reason="no_route",upstream=""}"#),
        1.0
    );
    assert_eq!(
        get(r#"scimitar_rejected_requests_total{policy="",reason="return",upstream=""}"#),
        1.0
    );
    assert_eq!(
        get(r#"scimitar_rejected_requests_total{policy="",reason="ambiguous_tenant",upstream=""}"#),
        1.0
    );
    let page = m.page.json();
    assert_eq!(page["endpoints"][0]["rejected"], 1, "only the shed counts as rejected");
    assert_eq!(page["endpoints"][0]["errors"], 1);
}

#[test]
fn retain_drops_gone_pools_backends_and_policies() {
    let m = Metrics::new().unwrap();
    let a = PoolMetrics::new(&m, "a", &["10.0.0.1:80".into(), "10.0.0.2:80".into()]).unwrap();
    let _b = PoolMetrics::new(&m, "b", &["10.0.0.3:80".into()]).unwrap();
    a.upstream_answer(1, 200, 0.01);
    m.rate_limited("old").unwrap().inc();
    m.rate_limited("kept").unwrap().inc();
    m.retain(&[("a", vec!["10.0.0.1:80".into()])], &["kept"]);
    let t = text(&m);
    assert!(!t.contains(r#"upstream="b""#), "pool b is gone");
    assert!(!t.contains("10.0.0.2:80"), "a's second server is gone");
    assert!(t.contains("10.0.0.1:80"));
    assert!(!t.contains(r#"policy="old""#));
    assert!(t.contains(r#"policy="kept""#));
    assert!(t.contains(r#"reason="no_route""#), "unrouted series stay");
    // A table built again for a kept pool continues its series.
    let a2 = PoolMetrics::new(&m, "a", &["10.0.0.1:80".into()]).unwrap();
    a2.request(Endpoint::Users, Op::Get, Code::C2xx, 0.001);
    a.request(Endpoint::Users, Op::Get, Code::C2xx, 0.001);
    let s = series(&text(&m));
    assert_eq!(
        s[r#"scimitar_requests_total{code="2xx",endpoint="users",operation="get",upstream="a"}"#],
        2.0
    );
}

#[test]
fn config_hash_and_reloads() {
    let m = Metrics::new().unwrap();
    m.config_active(u64::MAX);
    m.config_loaded(7, false);
    m.config_loaded(42, true);
    let s = series(&text(&m));
    assert_eq!(s["scimitar_config_hash"], 42.0);
    assert_eq!(s[r#"scimitar_config_reloads_total{result="success"}"#], 1.0);
    assert_eq!(s[r#"scimitar_config_reloads_total{result="failure"}"#], 1.0);
    assert!(s["scimitar_config_last_reload_success_timestamp_seconds"] > 1.6e9);
    assert_eq!(
        s[&format!(r#"scimitar_build_info{{version="{}"}}"#, env!("CARGO_PKG_VERSION"))],
        1.0
    );
}

#[test]
fn tenant_series_only_when_opted_in_and_capped() {
    let m = Metrics::new().unwrap();
    m.page.tenants.configure(true, false, 2);
    m.page.tenants.record(b"acme", false, true);
    assert!(!text(&m).contains("scimitar_tenant_requests_total"));
    m.page.tenants.configure(true, true, 2);
    for t in ["acme", "globex", "initech", "umbrella"] {
        m.page.tenants.record(t.as_bytes(), t == "umbrella", true);
    }
    let s = series(&text(&m));
    let tenants: Vec<&String> = s
        .keys()
        .filter(|k| k.starts_with("scimitar_tenant_requests_total"))
        .collect();
    assert_eq!(tenants.len(), 3, "two tenants and `other`: {tenants:?}");
    assert_eq!(s[r#"scimitar_tenant_requests_total{tenant="other"}"#], 2.0);
    assert_eq!(s[r#"scimitar_tenant_rejected_requests_total{tenant="other"}"#], 1.0);
}

#[test]
fn in_flight_follows_the_guard() {
    let m = Metrics::new().unwrap();
    let p = PoolMetrics::new(&m, "scim", &[]).unwrap();
    let g = InFlight::new(&p);
    assert_eq!(p.in_flight.get(), 1);
    drop(g);
    assert_eq!(p.in_flight.get(), 0);
}
