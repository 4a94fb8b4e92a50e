//! Every SCIM operation through scimitar to a real scim2-server, the headers it adds, and the
//! SCIM errors it makes itself.

mod common;

use common::*;

const USER: &str =
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bjensen","name":{"givenName":"Barbara"}}"#;

fn scim_proxy(server: &ScimServer) -> Proxy {
    Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /v2\n    upstream: scim\n    max_body: 64KiB\n",
        pool_yaml("scim", &[server.addr], "    selection: round_robin\n")
    ))
}

#[test]
fn every_scim_operation_is_proxied() {
    let scim = ScimServer::start();
    let px = scim_proxy(&scim);

    for path in [
        "/v2/ServiceProviderConfig",
        "/v2/ResourceTypes",
        "/v2/ResourceTypes/User",
        "/v2/Schemas",
        "/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
    ] {
        let r = px.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }

    // create: Location must name the proxy (Host passed through), not the upstream
    let r = px.send("POST", "/v2/Users", &[], Some(USER));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.version, "HTTP/1.1",
        "scim2-server's HTTP/1.0 answer reaches an HTTP/1.1 client as 1.1"
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    let loc = r.header("location").unwrap();
    assert_eq!(loc, format!("http://{}/v2/Users/{id}", px.addr));

    assert_eq!(px.get(&format!("/v2/Users/{id}")).json()["userName"], "bjensen");
    let r = px.get("/v2/Users?filter=userName%20eq%20%22bjensen%22&count=5");
    assert_eq!(r.json()["totalResults"], 1);

    let put = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bjensen","displayName":"Babs"}"#;
    let r = px.send("PUT", &format!("/v2/Users/{id}"), &[], Some(put));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["displayName"], "Babs");

    let patch = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}"#;
    let r = px.send("PATCH", &format!("/v2/Users/{id}"), &[], Some(patch));
    assert!(matches!(r.status, 200 | 204), "{}", r.text());

    let search =
        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"userName eq \"bjensen\""}"#;
    assert_eq!(
        px.send("POST", "/v2/Users/.search", &[], Some(search)).json()["totalResults"],
        1
    );
    assert_eq!(
        px.send("POST", "/v2/.search", &[], Some(search)).json()["totalResults"],
        1
    );

    let group = format!(
        r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Eng","members":[{{"value":"{id}"}}]}}"#
    );
    let r = px.send("POST", "/v2/Groups", &[], Some(&group));
    assert_eq!(r.status, 201, "{}", r.text());
    let gid = r.json()["id"].as_str().unwrap().to_string();
    let r = px.send("PATCH", &format!("/v2/Groups/{gid}"), &[], Some(r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Engineering"}]}"#));
    assert!(matches!(r.status, 200 | 204), "{}", r.text());
    assert_eq!(
        px.get(&format!("/v2/Groups/{gid}")).json()["displayName"],
        "Engineering"
    );

    let bulk = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[{"method":"POST","path":"/Users","bulkId":"b1","data":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bulk-user"}}]}"#;
    let r = px.send("POST", "/v2/Bulk", &[], Some(bulk));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Operations"][0]["status"], "201");

    assert_eq!(px.send("DELETE", &format!("/v2/Groups/{gid}"), &[], None).status, 204);
    assert_eq!(px.send("DELETE", &format!("/v2/Users/{id}"), &[], None).status, 204);
    // The upstream's own SCIM 404 passes through untouched.
    let r = px.get(&format!("/v2/Users/{id}"));
    r.assert_scim_error(404);
}

#[test]
fn forwarded_headers_request_id_and_normalised_paths_reach_the_upstream() {
    let up = TestUpstream::start("echo", Behavior::Echo);
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    upstream: a\n",
        pool_yaml("a", &[up.addr], "")
    ));

    let r = px.get("/scim/v2/Users/abc?attributes=userName");
    assert_eq!(r.status, 200);
    let echo = r.json();
    let h = &echo["headers"];
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["host"], px.addr.to_string(), "Host passes through");
    assert_eq!(h["x-forwarded-host"], px.addr.to_string());
    let id = h["x-request-id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(r.header("x-request-id"), Some(id), "the id is echoed to the client");

    let r = px.send(
        "GET",
        "/scim/v2/Users",
        &[("X-Request-Id", "trace-42"), ("X-Forwarded-For", "10.9.8.7")],
        None,
    );
    let h = &r.json()["headers"];
    assert_eq!(h["x-request-id"], "trace-42", "a client id is kept");
    assert_eq!(
        h["x-forwarded-for"], "10.9.8.7, 127.0.0.1",
        "the client hop is appended"
    );

    // An HTTP/1.0 request without Host still reaches an HTTP/1.1 upstream with one.
    let mut s = std::net::TcpStream::connect(px.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut s, b"GET /scim/v2/Users HTTP/1.0\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut raw);
    let text = String::from_utf8_lossy(&raw);
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let echo: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(echo["headers"]["host"], up.addr.to_string(), "{text}");

    // The upstream sees the normalised path the route decision was made on, query intact.
    let r = px.get("/scim//v2/Groups/../Users/./abc?count=1");
    assert_eq!(r.json()["target"], "/scim/v2/Users/abc?count=1");
}

#[test]
fn answers_the_proxy_makes_itself_are_scim_errors() {
    let up = TestUpstream::start("echo", Behavior::Echo);
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /scim/v2\n    classes: [users.read, users.write, bulk]\n    upstream: a\n    max_body: 1KiB\n",
        pool_yaml("a", &[up.addr], "")
    ));

    for path in ["/", "/nope", "/scim/v1/Users", "/scimx/v2/Users", "/scim"] {
        let detail = px.get(path).assert_scim_error(404);
        assert!(detail.contains("no SCIM endpoint"), "{path}: {detail}");
    }
    // Inside the base path but no route takes Groups.
    let detail = px.get("/scim/v2/Groups").assert_scim_error(404);
    assert!(detail.contains("no route"), "{detail}");

    let big = format!(
        r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[],"pad":"{}"}}"#,
        "x".repeat(2048)
    );
    let detail = px.send("POST", "/scim/v2/Bulk", &[], Some(&big)).assert_scim_error(413);
    assert!(detail.contains("1024 bytes"), "{detail}");
    assert_eq!(up.hits(), 0, "nothing reached the upstream");

    assert_eq!(px.send("POST", "/scim/v2/Bulk", &[], Some("{}")).status, 200);
    assert_eq!(up.hits(), 1);
}
