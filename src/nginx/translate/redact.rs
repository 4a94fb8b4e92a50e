//! Credentials written in an nginx config stay out of everything the import prints: the
//! report, the `# from` comments and the YAML. A directive is shown with its secret parts
//! replaced by `…`: a `<scheme> <credentials>` value keeps its scheme (`Bearer …`), an `if`
//! keeps its variable and operator but not what it compares with, a header whose name is a
//! secret (`Authorization`, `Cookie`, `X-Api-Key`…) and a `set` of a secret-named variable
//! lose their value, a URL its password. A header rule that must carry a credential to work
//! is written as an environment variable reference instead (`headers.rs`).

use crate::accesslog::redact::is_secret;
use crate::nginx::Directive;

/// What a hidden part is shown as.
pub const MASK: &str = "…";

/// Authorization schemes (RFC 7235 and the ones SCIM servers use: Okta's `SSWS`, API keys).
const SCHEMES: &[&str] = &[
    "bearer",
    "basic",
    "digest",
    "token",
    "apikey",
    "api-key",
    "key",
    "ssws",
    "negotiate",
    "ntlm",
    "hoba",
    "mutual",
    "dpop",
    "mac",
    "hawk",
    "oauth",
    "jwt",
    "secret",
    "aws4-hmac-sha256",
    "scram-sha-1",
    "scram-sha-256",
];

/// Directives whose arguments after the first are a header's value (`more_set_headers`
/// writes `"Name: value"` in one argument instead).
const HEADER_VALUES: &[&str] = &[
    "proxy_set_header",
    "grpc_set_header",
    "add_header",
    "add_trailer",
    "fastcgi_param",
    "uwsgi_param",
    "scgi_param",
];

/// Directives whose every argument is a secret.
const SECRET_ARGS: &[&str] = &["secure_link_secret", "secure_link_md5"];

/// The operators of an `if` condition: what follows one is a comparison operand.
const OPERATORS: &[&str] = &["=", "!=", "~", "~*", "!~", "!~*"];

/// Whether a header named `name` carries a credential: `Authorization`,
/// `Proxy-Authorization`, cookies, and every name [`is_secret`] flags (`X-Api-Key`,
/// `X-Auth-Token`…) except the challenge and CORS headers, which only name schemes.
pub fn secret_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "cookie" | "set-cookie" | "authorization" | "proxy-authorization"
    ) {
        return true;
    }
    if matches!(lower.as_str(), "www-authenticate" | "proxy-authenticate") || lower.starts_with("access-control-") {
        return false;
    }
    is_secret(lower.as_bytes())
}

/// `text` with every `<scheme> <credentials>` in it cut after the scheme (`Bearer …`), and
/// a URL's password masked. `None` when nothing in it looks like a credential.
pub fn credentials(text: &str) -> Option<String> {
    let masked = crate::accesslog::redact::url(text, MASK);
    let s: &str = &masked;
    if let Some(cut) = scheme_cut(s) {
        return Some(format!("{}{MASK}", &s[..cut]));
    }
    match masked {
        std::borrow::Cow::Owned(o) => Some(o),
        std::borrow::Cow::Borrowed(_) => None,
    }
}

/// Where the credentials after a scheme start: a known scheme word at a word boundary, a
/// space, then something; or, at the very start, any token-shaped word followed by one
/// token68 (`Custom dXNlcjpwYXNz`).
fn scheme_cut(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    for scheme in SCHEMES {
        let mut from = 0;
        while let Some(i) = lower[from..].find(scheme).map(|i| i + from) {
            from = i + scheme.len();
            let boundary = lower[..i]
                .chars()
                .last()
                .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-');
            let rest = &s[from..];
            if boundary && rest.starts_with(' ') && !rest.trim().is_empty() {
                return Some(from + 1);
            }
        }
    }
    let (word, rest) = s.split_once(' ')?;
    let shaped = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    (shaped && token68(rest.trim())).then_some(word.len() + 1)
}

/// RFC 7235's token68, long enough and with a digit, as credentials are.
fn token68(s: &str) -> bool {
    s.len() >= 8
        && s.chars().any(|c| c.is_ascii_digit())
        && s.trim_end_matches('=')
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c))
}

/// Whether a header value written for the header `name` holds a credential in clear: a
/// secret header's, or any `<scheme> <credentials>`, with literal text beyond the scheme
/// (`$http_authorization` or `Bearer $http_x_token` forward the client's and hold none).
pub fn literal_secret(name: &str, value: &str) -> bool {
    let text: String = super::scope::parts(value)
        .into_iter()
        .filter_map(|p| match p {
            super::scope::Part::Text(t) => Some(t),
            _ => None,
        })
        .collect();
    let text = text.trim();
    let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
    let beyond = if SCHEMES.iter().any(|s| word.eq_ignore_ascii_case(s)) {
        rest
    } else {
        text
    };
    let has_literal = beyond.chars().any(|c| c.is_ascii_alphanumeric());
    has_literal && (secret_header(name) || scheme_cut(value).is_some())
}

/// The directive's name and arguments as the report shows them, secrets masked.
pub fn shown(d: &Directive) -> (String, Vec<String>) {
    // A `map` entry's name is its key: a token in `map $http_authorization`.
    let name = credentials(&d.name).unwrap_or_else(|| d.name.clone());
    let mut args: Vec<String> = d.args.iter().map(|a| a.text.clone()).collect();
    let mask_at = |args: &mut Vec<String>, i: usize| {
        if let Some(a) = args.get_mut(i) {
            *a = MASK.to_string();
        }
    };
    match d.name.as_str() {
        "if" => {
            if let Some(op) = args.iter().position(|a| OPERATORS.contains(&a.as_str())) {
                for a in args.iter_mut().skip(op + 1) {
                    // The condition's closing parenthesis stays, glued or alone; an empty
                    // operand or a variable holds no secret.
                    let bare = a.trim_end_matches(')');
                    let variable =
                        bare.starts_with('$') && super::scope::variables(bare).len() == 1 && !bare.contains(' ');
                    if !bare.is_empty() && !variable {
                        *a = if a.ends_with(')') {
                            format!("{MASK})")
                        } else {
                            MASK.to_string()
                        };
                    }
                }
            }
        }
        // The value only: `add_header`'s `always` stays.
        "set" if args.first().is_some_and(|v| is_secret(v.as_bytes())) => mask_at(&mut args, 1),
        n if HEADER_VALUES.contains(&n) && args.first().is_some_and(|h| secret_header(h)) => mask_at(&mut args, 1),
        n if SECRET_ARGS.contains(&n) => {
            for a in &mut args {
                *a = MASK.to_string();
            }
        }
        "more_set_headers" | "more_set_input_headers" => {
            for a in &mut args {
                if let Some((h, _)) = a.split_once(':').filter(|(h, _)| secret_header(h.trim())) {
                    *a = format!("{h}: {MASK}");
                }
            }
        }
        _ => {}
    }
    for a in &mut args {
        if let Some(masked) = credentials(a) {
            *a = masked;
        }
    }
    (name, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nginx::parse_str;

    fn show(src: &str) -> String {
        let d = parse_str(src, "/etc/nginx/x.conf").unwrap().remove(0);
        let (name, args) = shown(&d);
        std::iter::once(name).chain(args).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn credentials_lose_everything_after_their_scheme_whatever_its_case() {
        for (value, shown) in [
            ("Bearer s3cret", "Bearer …"),
            ("Basic dXNlcjpzM2NyM3Q=", "Basic …"),
            ("basic dXNlcjpzM2NyM3Q=", "basic …"),
            ("Digest username=\"a\", response=\"6629fae4\"", "Digest …"),
            ("Token tk_live_123", "Token …"),
            ("ApiKey abc", "ApiKey …"),
            ("SSWS 00abcDEF", "SSWS …"),
            ("Custom dXNlcjpwYXNzd29yZA12==", "Custom …"),
            ("^Bearer s3cret$", "^Bearer …"),
            ("http://user:pw123@host/x", "http://user:…@host/x"),
        ] {
            assert_eq!(credentials(value).as_deref(), Some(shown), "{value}");
        }
        for plain in [
            "down for maintenance",
            "max-age=63072000; includeSubDomains",
            "default-src 'none'",
            "Bearer",
            "bearer-token",
            "$http_authorization",
        ] {
            assert_eq!(credentials(plain), None, "{plain}");
        }
    }

    #[test]
    fn directives_show_their_variables_and_operators_but_no_secret() {
        for (src, shown) in [
            (
                "if ($http_x_api_key != \"s3cr3t-api-key\") { return 403; }",
                "if ($http_x_api_key != … )",
            ),
            (
                "if ($http_authorization = \"\") { return 401; }",
                "if ($http_authorization =  )",
            ),
            ("if ($a != $b) { return 401; }", "if ($a != $b)"),
            ("if ($arg_k = s3cr3t) { return 403; }", "if ($arg_k = …)"),
            ("if ($blocked) { return 403; }", "if ($blocked)"),
            ("proxy_set_header X-Api-Key k-123;", "proxy_set_header X-Api-Key …"),
            ("proxy_set_header Cookie \"sid=1\";", "proxy_set_header Cookie …"),
            (
                "add_header Set-Cookie \"sid=1\" always;",
                "add_header Set-Cookie … always",
            ),
            (
                "proxy_set_header X-Real-IP $remote_addr;",
                "proxy_set_header X-Real-IP $remote_addr",
            ),
            (
                "add_header WWW-Authenticate Bearer;",
                "add_header WWW-Authenticate Bearer",
            ),
            ("set $api_token abc123;", "set $api_token …"),
            ("set $tenant acme;", "set $tenant acme"),
            ("secure_link_secret s3cr3t;", "secure_link_secret …"),
            (
                "more_set_input_headers \"Authorization: Basic x\";",
                "more_set_input_headers Authorization: …",
            ),
            // A map entry: its name is the key.
            ("\"Bearer t1\" 1;", "Bearer … 1"),
        ] {
            assert_eq!(show(src), shown, "{src}");
        }
    }

    #[test]
    fn a_header_value_holds_a_credential_only_with_literal_text() {
        assert!(literal_secret("Authorization", "Basic dXNlcjpzM2NyM3Q="));
        assert!(literal_secret("X-Api-Key", "k-123"));
        assert!(literal_secret("X-Anything", "Bearer abc"));
        assert!(!literal_secret("Authorization", "$http_authorization"));
        assert!(!literal_secret("Authorization", "Bearer $http_x_token"));
        assert!(!literal_secret("X-Real-IP", "$remote_addr"));
        assert!(!literal_secret("Access-Control-Allow-Credentials", "true"));
    }
}
