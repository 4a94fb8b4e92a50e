//! scim2-tester's full `check_server()` run against one scim2-server directly and through
//! scimitar must give the same results, all passing.

mod common;

use common::*;

#[test]
fn conformance_through_the_proxy_matches_direct() {
    let scim = ScimServer::start();
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /v2\n    upstream: scim\n",
        pool_yaml(
            "scim",
            &[scim.addr],
            "    health_check: {path: /v2/ServiceProviderConfig, interval: 1s}\n"
        )
    ));
    let results = scim2_tester(
        &[format!("http://{}/v2", scim.addr), format!("http://{}/v2", px.addr)],
        None,
    );
    let (direct, proxied) = (&results[0], &results[1]);
    println!(
        "scim2-tester direct:  {} checks, {} passed, {} skipped, {} failed",
        direct["total"], direct["success"], direct["skipped"], direct["failed"]
    );
    println!(
        "scim2-tester proxied: {} checks, {} passed, {} skipped, {} failed",
        proxied["total"], proxied["success"], proxied["skipped"], proxied["failed"]
    );
    assert!(direct["total"].as_u64().unwrap() >= 100, "a full run: {direct}");
    assert_eq!(direct["failed"], 0, "direct run is clean: {direct}");
    for k in ["total", "success", "skipped", "failed"] {
        assert_eq!(direct[k], proxied[k], "{k}: direct {direct} vs proxied {proxied}");
    }
}
