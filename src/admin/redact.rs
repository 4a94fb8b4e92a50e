//! `GET /config`: the file as loaded (after `${ENV}` expansion), as JSON, with secrets masked.
//!
//! Masked: the value of every key whose name contains `secret`, `password`, `passwd`, `token`,
//! `credential` or `private`, or ends in `_key` / `apikey` (so `key_secret`,
//! `admin.token_sha256`, any future `api_key`); the password of any `scheme://user:pass@host`
//! URL (a Redis URL), or the whole user part when it has no `:` (`https://TOKEN@host`); in a
//! URL's query, the value of every parameter whose name looks secret by the access log's
//! rule ([`crate::accesslog::redact::is_secret`]: redis-rs takes `?pass=`/`?password=` on
//! its Unix-socket URLs); any inline PEM private key; and in a route's header rules
//! (`headers.request|response.set|add`), the value of every header that carries a credential:
//! `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`, and any name the access log
//! takes for a secret (`X-Api-Key`, `X-Auth-Token`). Shown: keys named exactly `key` — TLS
//! `key` is a file path, and affinity/rate-limit `key` lists key sources — since a path says
//! where the secret is, not what it is.

use serde_json::Value as Json;
use serde_yaml::Value;

const MASK: &str = "[redacted]";

pub fn redacted(v: &Value) -> Json {
    walk(v, false, Within::Other)
}

/// Where a mapping sits on the way to a header rule's values: `headers` → `request` or
/// `response` → `set` or `add` → header name → value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Within {
    Other,
    Headers,
    Direction,
    Rules,
}

impl Within {
    fn child(self, key: &str) -> Within {
        match (self, key) {
            (_, "headers") => Within::Headers,
            (Within::Headers, "request" | "response") => Within::Direction,
            (Within::Direction, "set" | "add") => Within::Rules,
            _ => Within::Other,
        }
    }
}

fn walk(v: &Value, secret: bool, within: Within) -> Json {
    match v {
        Value::Null => Json::Null,
        _ if secret => Json::from(MASK),
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => n
            .as_u64()
            .map(Json::from)
            .or_else(|| n.as_i64().map(Json::from))
            .or_else(|| n.as_f64().and_then(serde_json::Number::from_f64).map(Json::Number))
            .unwrap_or(Json::Null),
        Value::String(s) => Json::String(string(s)),
        Value::Sequence(items) => Json::Array(items.iter().map(|i| walk(i, false, Within::Other)).collect()),
        Value::Mapping(m) => Json::Object(
            m.iter()
                .map(|(k, v)| {
                    let k = match k {
                        Value::String(s) => s.clone(),
                        other => serde_yaml::to_string(other).unwrap_or_default().trim().to_string(),
                    };
                    let secret = if within == Within::Rules {
                        secret_header(&k)
                    } else {
                        secret_key(&k)
                    };
                    let child = within.child(&k);
                    (k, walk(v, secret, child))
                })
                .collect(),
        ),
        Value::Tagged(t) => walk(&t.value, secret, within),
    }
}

/// A header whose value is a credential (a header rule may hold an upstream's token).
fn secret_header(name: &str) -> bool {
    ["authorization", "proxy-authorization", "cookie", "set-cookie"]
        .iter()
        .any(|h| name.trim().eq_ignore_ascii_case(h))
        || crate::accesslog::redact::is_secret(name.as_bytes())
}

fn secret_key(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["secret", "password", "passwd", "token", "credential", "private"]
        .iter()
        .any(|w| n.contains(w))
        || n.ends_with("_key")
        || n.ends_with("apikey")
}

/// A string value with any URL credential ([`crate::accesslog::redact::url`]: the user
/// part's password, secret-looking query parameters) or inline private key masked.
fn string(s: &str) -> String {
    if s.contains("PRIVATE KEY-----") {
        return MASK.to_string();
    }
    crate::accesslog::redact::url(s, MASK).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_the_rest_is_shown() {
        let v: Value = serde_yaml::from_str(
            r#"
key_secret: hunter2
admin: {address: "127.0.0.1:9090", token_sha256: abcd}
redis: {url: "redis://default:pa%40ss@redis.internal:6379/0", timeout: 50ms}
other: "https://TOKEN@example.com/x"
plain: "redis://redis.internal:6379"
socket: "redis+unix:///run/redis.sock?db=2&pass=hunter3"
valkey: "valkey+unix:///run/valkey.sock?password=hunter4&protocol=resp3"
listeners:
  - tls: {cert: /etc/scimitar/a.crt, key: /etc/scimitar/a.key}
    inline: "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----"
rate_limits: {policies: {p: {key: [token, client_ip], rate: 10/s}}}
upstreams: {scim: {servers: [127.0.0.1:8001], keepalive: 16, weight: -1, ratio: 0.5}}
api_key: {nested: x}
routes:
  - name: scim
    headers:
      request:
        set: {Authorization: "Bearer upstream-s3cret", X-Api-Key: k3y, Cookie: sid=abc, X-Tenant: $tenant}
        add: {Proxy-Authorization: "Basic cHJveHk6cHc=", x-auth-token: t0k, X-Via: scimitar}
        remove: [Authorization]
      response:
        set: {Set-Cookie: "sess=s3ss; Secure", X-Frame-Options: DENY}
    upstream: scim
"#,
        )
        .unwrap();
        let j = redacted(&v);
        assert_eq!(j["key_secret"], MASK);
        assert_eq!(j["admin"]["token_sha256"], MASK);
        assert_eq!(j["admin"]["address"], "127.0.0.1:9090");
        assert_eq!(j["redis"]["url"], "redis://default:[redacted]@redis.internal:6379/0");
        assert_eq!(j["redis"]["timeout"], "50ms");
        assert_eq!(j["other"], "https://[redacted]@example.com/x");
        assert_eq!(j["plain"], "redis://redis.internal:6379");
        assert_eq!(j["socket"], "redis+unix:///run/redis.sock?db=2&pass=[redacted]");
        assert_eq!(
            j["valkey"],
            "valkey+unix:///run/valkey.sock?password=[redacted]&protocol=resp3"
        );
        assert_eq!(j["listeners"][0]["tls"]["key"], "/etc/scimitar/a.key");
        assert_eq!(j["listeners"][0]["inline"], MASK);
        assert_eq!(
            j["rate_limits"]["policies"]["p"]["key"],
            serde_json::json!(["token", "client_ip"])
        );
        assert_eq!(j["upstreams"]["scim"]["keepalive"], 16);
        assert_eq!(j["upstreams"]["scim"]["weight"], -1);
        assert_eq!(j["upstreams"]["scim"]["ratio"], 0.5);
        assert_eq!(j["api_key"], MASK, "a whole secret mapping is masked");
        let rules = &j["routes"][0]["headers"];
        for (dir, rule, name) in [
            ("request", "set", "Authorization"),
            ("request", "set", "X-Api-Key"),
            ("request", "set", "Cookie"),
            ("request", "add", "Proxy-Authorization"),
            ("request", "add", "x-auth-token"),
            ("response", "set", "Set-Cookie"),
        ] {
            assert_eq!(rules[dir][rule][name], MASK, "{dir}.{rule}.{name}");
        }
        assert_eq!(rules["request"]["set"]["X-Tenant"], "$tenant");
        assert_eq!(rules["request"]["add"]["X-Via"], "scimitar");
        assert_eq!(rules["request"]["remove"][0], "Authorization", "a name is not a secret");
        assert_eq!(rules["response"]["set"]["X-Frame-Options"], "DENY");
        assert_eq!(j["routes"][0]["name"], "scim");
        let text = j.to_string();
        for secret in [
            "hunter2",
            "hunter3",
            "hunter4",
            "pa%40ss",
            "s3cret",
            "k3y",
            "sid=abc",
            "cHJveHk6cHc",
            "t0k",
            "s3ss",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
