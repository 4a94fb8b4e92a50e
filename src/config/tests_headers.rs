//! `routes[].headers`, `upstream_base_path` and `return`: what compiles, and every refusal at
//! its place in the file.

use super::*;
use crate::header_rules::{Template, Var, VARIABLES};

const POOL: &str =
    "listeners: [{name: main, address: 127.0.0.1:8080}]\nupstreams:\n  scim:\n    servers: [127.0.0.1:8001]\n";

fn with_routes(routes: &str) -> Result<Config, Vec<String>> {
    from_str_with_env(&format!("{POOL}routes:\n{routes}"), |_| None)
        .map_err(|p| p.0.iter().map(|p| p.to_string()).collect())
}

/// One route on `/scim/v2` with `extra` (indented route keys).
fn route(extra: &str) -> Result<Config, Vec<String>> {
    with_routes(&format!("  - base_path: /scim/v2\n    upstream: scim\n{extra}"))
}

fn problems(extra: &str) -> Vec<String> {
    route(extra).err().unwrap_or_default()
}

/// The route has exactly this one problem.
#[track_caller]
fn refused(extra: &str, want: &str) {
    let got = problems(extra);
    assert!(
        got.len() == 1 && got[0].starts_with(want),
        "wanted one problem starting `{want}`, got {got:#?}"
    );
}

fn name(s: &'static str) -> http::HeaderName {
    http::HeaderName::from_static(s)
}

#[test]
fn header_rules_compile() {
    let c = route(concat!(
        "    headers:\n",
        "      request:\n",
        "        set: {X-Real-IP: $remote_addr, Host: $host, X-Debug: \"\", X-Port: 8443}\n",
        "        add: {X-Via: scimitar}\n",
        "        remove: [X-Internal]\n",
        "      response:\n",
        "        set: {Strict-Transport-Security: \"max-age=63072000\"}\n",
        "        remove: [Server, X-Powered-By]\n",
    ))
    .unwrap();
    let h = c.routes[0].headers.as_deref().unwrap();
    let req = h.request.as_ref().unwrap();
    assert_eq!(
        req.set,
        vec![
            (name("x-real-ip"), Template::One(Var::RemoteAddr)),
            (http::header::HOST, Template::One(Var::Host)),
            (name("x-port"), Template::parse("8443").unwrap()),
        ]
    );
    assert_eq!(
        req.remove,
        vec![name("x-internal"), name("x-debug")],
        "an empty `set` removes, as nginx's proxy_set_header \"\""
    );
    assert_eq!(req.add, vec![(name("x-via"), Template::parse("scimitar").unwrap())]);
    let resp = h.response.as_ref().unwrap();
    assert_eq!(resp.remove, vec![http::header::SERVER, name("x-powered-by")]);
    assert_eq!(resp.set.len(), 1);
    assert!(resp.add.is_empty());

    let c = route("    headers: {response: {add: {X-Frame-Options: DENY}}}\n").unwrap();
    let h = c.routes[0].headers.as_deref().unwrap();
    assert!(h.request.is_none(), "a direction without rules costs nothing");
    assert!(route("").unwrap().routes[0].headers.is_none());
}

#[test]
fn headers_the_proxy_owns_are_refused() {
    for dir in ["request", "response"] {
        for h in [
            "Connection",
            "Keep-Alive",
            "Transfer-Encoding",
            "Content-Length",
            "TE",
            "Trailer",
            "Upgrade",
            "Proxy-Connection",
        ] {
            refused(
                &format!("    headers: {{{dir}: {{set: {{{h}: x}}}}}}\n"),
                &format!(
                    "routes[0].headers.{dir}.set.{h}: `{h}` is a hop-by-hop or framing header that each connection manages itself; remove this rule"
                ),
            );
        }
        for h in [
            "X-Forwarded-For",
            "X-Forwarded-Proto",
            "X-Forwarded-Host",
            "X-Request-Id",
        ] {
            refused(
                &format!("    headers: {{{dir}: {{remove: [{h}]}}}}\n"),
                &format!(
                    "routes[0].headers.{dir}.remove[0]: `{h}` is written by the proxy itself and keeps its own rule; remove this rule"
                ),
            );
        }
    }
    refused(
        "    headers: {response: {set: {Host: x}}}\n",
        "routes[0].headers.response.set.Host: `Host` is a request header; move the rule to `headers.request`",
    );
    refused(
        "    headers: {response: {add: {RateLimit: x}}}\n",
        "routes[0].headers.response.add.RateLimit: `RateLimit` is written by the proxy on rate-limited routes",
    );
    refused(
        "    headers: {request: {remove: [Host]}}\n",
        "routes[0].headers.request.remove[0]: the upstream needs a `Host`; to send another one, use `set: {Host: …}`",
    );
    refused(
        "    headers: {request: {set: {Host: \"\"}}}\n",
        "routes[0].headers.request.set.Host: the upstream needs a `Host`; give a value such as `$host`",
    );
    // Host is the one request header a rule may replace (over preserve_host).
    assert!(route("    headers: {request: {set: {Host: scim.internal}}}\n").is_ok());
}

#[test]
fn owned_headers_are_refused_by_their_underscore_spelling_towards_the_upstream() {
    refused(
        "    headers: {request: {set: {X_Forwarded_For: $http_x_foo}}}\n",
        "routes[0].headers.request.set.X_Forwarded_For: `X_Forwarded_For` is `x-forwarded-for` to servers that read headers by their CGI name (WSGI, Rack, PHP), and `x-forwarded-for` is written by the proxy itself and keeps its own rule; remove this rule",
    );
    refused(
        "    headers: {request: {add: {x_request-id: a}}}\n",
        "routes[0].headers.request.add.x_request-id: `x_request-id` is `x-request-id` to servers",
    );
    refused(
        "    headers: {request: {remove: [Transfer_Encoding]}}\n",
        "routes[0].headers.request.remove[0]: `Transfer_Encoding` is `transfer-encoding` to servers",
    );
    // A client reads answers by their real names: there the spelling is another header.
    assert!(route("    headers: {response: {set: {X_Request_Id: a}}}\n").is_ok());
}

#[test]
fn the_tenancy_header_is_refused_in_request_rules() {
    let tenancy = |rules: &str| {
        from_str_with_env(
            &format!(
                "{POOL}tenancy: {{source: header, header: X-Tenant}}\nroutes:\n  - base_path: /scim/v2\n    upstream: scim\n    headers: {rules}\n"
            ),
            |_| None,
        )
        .map_err(|p| p.0.iter().map(|p| p.to_string()).collect::<Vec<_>>())
    };
    let why = "is the tenancy header: the upstream must get the tenant the proxy checked and keyed on (auth, rate limits, affinity, cache); remove this rule";
    for (rules, place, name) in [
        ("{request: {set: {X-Tenant: globex}}}", "set.X-Tenant", "X-Tenant"),
        ("{request: {add: {x-tenant: $tenant}}}", "add.x-tenant", "x-tenant"),
        ("{request: {remove: [X-TENANT]}}", "remove[0]", "X-TENANT"),
    ] {
        assert_eq!(
            tenancy(rules).unwrap_err(),
            [format!("routes[0].headers.request.{place}: `{name}` {why}")]
        );
    }
    let got = tenancy("{request: {set: {X_Tenant: globex}}}").unwrap_err();
    assert_eq!(
        got,
        [format!(
            "routes[0].headers.request.set.X_Tenant: `X_Tenant` is `X-Tenant` to servers that read headers by their CGI name (WSGI, Rack, PHP), and `X-Tenant` {why}"
        )]
    );
    // Echoing it to the client changes nothing the proxy decided.
    assert!(tenancy("{response: {set: {X-Tenant: $tenant}}}").is_ok());
    // With the tenant in the path, X-Tenant is an ordinary header.
    assert!(route("    headers: {request: {set: {X-Tenant: acme}}}\n").is_ok());
}

#[test]
fn the_client_certificate_header_is_refused() {
    use crate::tls::testing::{Ca, Leaf};
    let dir = std::env::temp_dir().join(format!("scimitar-cfg-hdr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::new("hdr CA").unwrap();
    let (c, k) = ca.write_leaf(&dir, "edge", &Leaf::server("edge", &["edge"])).unwrap();
    let ca_pem = ca.write_ca(&dir, "ca").unwrap();
    let text = format!(
        "listeners:\n  - name: main\n    address: 127.0.0.1:8080\n  - name: edge\n    address: 127.0.0.1:8443\n    tls:\n      cert: {}\n      key: {}\n      client_ca: {}\n      forward_client_cert: X-Client-Cert\nupstreams:\n  scim:\n    servers: [127.0.0.1:8001]\nroutes:\n  - base_path: /v2\n    upstream: scim\n    headers: {{request: {{set: {{x-client-cert: forged, X_Client_Cert: $http_x_foo}}}}}}\n",
        c.display(),
        k.display(),
        ca_pem.display()
    );
    let got = from_str_with_env(&text, |_| None).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    let got: Vec<String> = got.0.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        got,
        [
            "routes[0].headers.request.set.x-client-cert: `x-client-cert` carries the verified client certificate (a listener's tls.forward_client_cert); remove this rule",
            "routes[0].headers.request.set.X_Client_Cert: `X_Client_Cert` is `x-client-cert` to servers that read headers by their CGI name (WSGI, Rack, PHP), and `x-client-cert` carries the verified client certificate (a listener's tls.forward_client_cert); remove this rule"
        ]
    );
}

#[test]
fn malformed_rules_are_explained() {
    refused(
        "    headers: {request: {set: {X-A: $hostname}}}\n",
        &format!("routes[0].headers.request.set.X-A: `$hostname` is not a variable scimitar knows; use {VARIABLES}"),
    );
    refused(
        "    headers: {response: {add: {X-Price: 5$}}}\n",
        "routes[0].headers.response.add.X-Price: a `$` in `5$` starts no variable; write `$$` for a literal `$`",
    );
    refused(
        "    headers: {request: {set: {\"bad header\": x}}}\n",
        "routes[0].headers.request.set.bad header: `bad header` is not a valid header name",
    );
    refused(
        "    headers: {request: {set: {X-A: a, x-a: b}}}\n",
        "routes[0].headers.request.set.x-a: `x-a` is set twice (names ignore case); keep one",
    );
    refused(
        "    headers: {request: {set: {X-A: a}, remove: [x-a]}}\n",
        "routes[0].headers.request.set.X-A: `X-A` is also under `remove`; keep one of the two",
    );
    refused(
        "    headers: {response: {remove: [Server, server]}}\n",
        "routes[0].headers.response.remove[1]: `server` is listed twice; keep one",
    );
    refused(
        "    headers: {response: {add: {X-A: \"\"}}}\n",
        "routes[0].headers.response.add.X-A: an empty value adds nothing; give a value, or list the header under `remove`",
    );
    refused(
        "    headers: {response: {set: [X-A]}}\n",
        "routes[0].headers.response.set: expected a mapping of header name → value",
    );
    refused(
        "    headers: {response: {}}\n",
        "routes[0].headers.response: has no rules; give `set`, `add` or `remove`, or remove it",
    );
    refused(
        "    headers: {}\n",
        "routes[0].headers: has no rules; give `request` and/or `response`, or remove it",
    );
    refused(
        "    headers: {response: {hide: [Server]}}\n",
        "routes[0].headers.response.hide: unknown key",
    );
    refused(
        "    headers: {upstream: {}}\n",
        "routes[0].headers.upstream: unknown key",
    );
    // Header and value text stays as written; `$$` is the literal dollar.
    let c = route("    headers: {response: {add: {X-Price: \"5$$\"}}}\n").unwrap();
    let add = &c.routes[0].headers.as_deref().unwrap().response.as_ref().unwrap().add;
    assert_eq!(add[0].1, Template::parse("5$$").unwrap());
}

#[test]
fn tenant_needs_a_tenant() {
    refused(
        "    headers: {request: {set: {X-Tenant: $tenant}}}\n",
        "routes[0].headers: uses `$tenant`, but no tenancy is configured",
    );
    let got = with_routes(concat!(
        "  - base_path: /{tenant}/scim/v2\n    upstream: scim\n    headers: {request: {set: {X-Tenant: $tenant}}}\n",
        "  - base_path: /scim/v2\n    upstream: scim\n    headers: {response: {set: {X-Tenant: \"t=$tenant\"}}}\n",
    ))
    .unwrap_err();
    assert_eq!(
        got,
        ["routes[1].headers: uses `$tenant`, but this route's base_path `/scim/v2` has no `{tenant}` segment to take it from"]
    );
    let c = from_str_with_env(
        &format!(
            "{POOL}tenancy: {{source: header, header: X-Tenant-Id}}\nroutes:\n  - base_path: /scim/v2\n    upstream: scim\n    headers: {{request: {{set: {{X-Tenant: $tenant}}}}}}\n"
        ),
        |_| None,
    );
    assert!(c.is_ok(), "a header tenancy serves every route");
}

#[test]
fn upstream_base_path_is_checked_against_the_base_path() {
    let c = with_routes("  - base_path: /scim/{tenant}/v2\n    upstream: scim\n    upstream_base_path: /{tenant}/v2\n")
        .unwrap();
    let to = c.routes[0].upstream_base.as_ref().unwrap();
    assert_eq!(
        to.target(&c.routes[0].base, "/scim/acme/v2/Users", "acme", None),
        "/acme/v2/Users"
    );
    refused(
        "    upstream_base_path: v2\n",
        "routes[0].upstream_base_path: `v2` must start with `/`, e.g. `/v2`",
    );
    refused(
        "    upstream_base_path: /{tenant}/v2\n",
        "routes[0].upstream_base_path: `{tenant}` in `/{tenant}/v2` has no tenant to take",
    );
    refused(
        "    upstream_base_path: /v2?x=1\n",
        "routes[0].upstream_base_path: `/v2?x=1` has a query or fragment",
    );
    assert!(route("").unwrap().routes[0].upstream_base.is_none());
}

#[test]
fn return_routes_need_no_upstream() {
    let c = with_routes(concat!(
        "  - name: no-bulk\n    base_path: /scim/v2\n    classes: [bulk]\n    return: 403\n",
        "  - base_path: /scim/v2\n    return: {status: 410, detail: gone}\n    headers: {response: {add: {X-A: b}}}\n",
        "  - base_path: /scim/v2\n    return: 204\n",
    ))
    .unwrap();
    let a = |i: usize| c.routes[i].answer.as_ref().unwrap();
    assert_eq!((a(0).status, a(1).status, a(2).status), (403, 410, 204));
    assert!(c.routes.iter().all(|r| r.upstream.is_none()));
    let body: serde_json::Value = serde_json::from_slice(&a(1).body().unwrap()).unwrap();
    assert_eq!(body["detail"], "gone");
}

#[test]
fn return_mistakes_are_explained() {
    let ret = |r: &str| with_routes(&format!("  - base_path: /scim/v2\n{r}")).unwrap_err();
    assert_eq!(
        ret("    return: 101\n"),
        ["routes[0].return: 101 is an interim status, not an answer; use 204 (an empty answer) or a 4xx/5xx status"]
    );
    assert_eq!(
        ret("    return: 200\n"),
        ["routes[0].return: 200 would need content the proxy does not have; use 204 for an empty success, or route to an upstream"]
    );
    assert_eq!(
        ret("    return: {status: 302}\n"),
        ["routes[0].return.status: 302 is a redirect, which needs a `Location` scimitar does not build; use 204 or a 4xx/5xx status"]
    );
    assert_eq!(
        ret("    return: {status: 204, detail: x}\n"),
        ["routes[0].return.status: a 204 answer has no body to carry `detail`; remove it"]
    );
    assert_eq!(
        ret("    return: 700\n"),
        ["routes[0].return: 700 is out of range; use 100 to 599"]
    );
    assert_eq!(
        ret("    return: {detail: x}\n"),
        ["routes[0].return.status: missing; give the status to answer with, e.g. `403`"]
    );
    assert!(ret("    return: {status: 403, body: x}\n")[0].starts_with("routes[0].return.body: unknown key"));
    let both = ret(concat!(
        "    return: 403\n    upstream: scim\n    upstream_base_path: /v2\n    rate_limits: []\n",
        "    max_body: 1KiB\n    cache: {discovery: 1m}\n    headers: {request: {add: {X-A: b}}}\n",
        "    auth: {tokens: [{name: a, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}]}\n",
    ));
    for k in [
        "auth",
        "upstream",
        "upstream_base_path",
        "rate_limits",
        "max_body",
        "cache",
    ] {
        let want = format!(
            "routes[0].{k}: a `return` route answers every request itself, before credentials, limits, cache or upstream; remove `{k}` or `return`"
        );
        assert!(both.contains(&want), "{want}\n{both:#?}");
    }
    assert!(
        both.contains(
            &"routes[0].headers.request: a `return` route sends nothing upstream; remove these rules (response rules do apply)"
                .to_string()
        ),
        "{both:#?}"
    );
    assert_eq!(
        ret("    classes: [bulk]\n"),
        ["routes[0].upstream: missing; name the pool from `upstreams` that serves this route (or give it a `return`)"]
    );
}
