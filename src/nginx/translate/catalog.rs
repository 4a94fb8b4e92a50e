//! Every directive the translation did not consume is looked up here and reported: left out
//! silently (it changes nothing a client sees), or listed as not translated, with whether
//! leaving it out changes how requests are handled.

use super::report::Kind;

/// What leaving a directive out means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Nothing a client or upstream sees changes (performance, buffers, process settings).
    Silent,
    /// Reported; leaving it out changes nothing a request gets.
    Quiet(&'static str),
    /// Reported; leaving it out changes what requests get.
    Handling(&'static str),
    /// Reported as changing handling only when the variable it defines is read somewhere.
    Defines(&'static str),
}

/// Directives that tune nginx itself: buffers, files, workers, hashes, timeouts of its own.
const SILENT: &[&str] = &[
    "events",
    "worker_connections",
    "worker_rlimit_nofile",
    "worker_cpu_affinity",
    "worker_priority",
    "worker_shutdown_timeout",
    "multi_accept",
    "use",
    "accept_mutex",
    "accept_mutex_delay",
    "user",
    "pid",
    "daemon",
    "master_process",
    "pcre_jit",
    "thread_pool",
    "timer_resolution",
    "working_directory",
    "lock_file",
    "env",
    "include",
    "types",
    "types_hash_max_size",
    "types_hash_bucket_size",
    "default_type",
    "charset",
    "charset_types",
    "source_charset",
    "sendfile",
    "sendfile_max_chunk",
    "tcp_nopush",
    "tcp_nodelay",
    "aio",
    "directio",
    "output_buffers",
    "postpone_output",
    "server_tokens",
    "server_names_hash_bucket_size",
    "server_names_hash_max_size",
    "variables_hash_max_size",
    "variables_hash_bucket_size",
    "map_hash_max_size",
    "map_hash_bucket_size",
    "proxy_headers_hash_max_size",
    "proxy_headers_hash_bucket_size",
    "client_body_buffer_size",
    "client_header_buffer_size",
    "client_body_temp_path",
    "client_body_in_file_only",
    "client_body_in_single_buffer",
    "proxy_buffering",
    "proxy_buffers",
    "proxy_buffer_size",
    "proxy_busy_buffers_size",
    "proxy_temp_path",
    "proxy_temp_file_write_size",
    "proxy_max_temp_file_size",
    "proxy_request_buffering",
    "proxy_http_version",
    "proxy_socket_keepalive",
    "open_file_cache",
    "open_file_cache_valid",
    "open_file_cache_min_uses",
    "open_file_cache_errors",
    "open_log_file_cache",
    "reset_timedout_connection",
    "lingering_close",
    "lingering_time",
    "lingering_timeout",
    "resolver",
    "resolver_timeout",
    "ssl_session_cache",
    "ssl_session_timeout",
    "ssl_session_tickets",
    "ssl_session_ticket_key",
    "ssl_prefer_server_ciphers",
    "ssl_dhparam",
    "ssl_ecdh_curve",
    "ssl_stapling",
    "ssl_stapling_verify",
    "ssl_stapling_file",
    "ssl_stapling_responder",
    "ssl_trusted_certificate",
    "ssl_buffer_size",
    "ssl_early_data",
    "http2_max_concurrent_streams",
    "http2_recv_buffer_size",
    "http2_chunk_size",
    "http2_body_preread_size",
    "http2_idle_timeout",
    "http2_max_requests",
    "keepalive_disable",
    "log_not_found",
    "log_subrequest",
    "limit_req_log_level",
    "limit_conn_log_level",
    "zone",
    "port_in_redirect",
    "server_name_in_redirect",
    "absolute_redirect",
    "msie_padding",
    "msie_refresh",
    "etag",
    "if_modified_since",
    "max_ranges",
    "chunked_transfer_encoding",
    "ignore_invalid_headers",
    "merge_slashes",
];

/// Client-certificate verification no translated listener carries (a plaintext or untranslated
/// server's, or one on a listener that kept another server's settings): never quiet, since a
/// client nginx refused could get through.
const CLIENT_CERT: &str = "client-certificate verification that no translated TLS listener carries: requests nginx refused without a valid certificate may get through; set the listener's `tls.client_ca` and `client_auth` by hand";

/// The others, each with the reason an operator reads in the report.
const REPORTED: &[(&str, Fate)] = &[
    ("if", Fate::Handling("conditions are nginx scripting; scimitar routes by path, endpoint class and method")),
    ("rewrite", Fate::Handling("scimitar does not rewrite paths beyond a route's `upstream_base_path`")),
    ("set", Fate::Defines("scimitar has no nginx variables")),
    ("map", Fate::Defines("scimitar has no nginx variables")),
    ("geo", Fate::Defines("scimitar has no nginx variables")),
    ("split_clients", Fate::Defines("scimitar has no nginx variables")),
    ("return", Fate::Handling("scimitar's `return` takes a 4xx/5xx status or 204 on a route")),
    ("break", Fate::Handling("nginx scripting")),
    ("error_page", Fate::Quiet("scimitar answers its own errors with SCIM error bodies")),
    ("try_files", Fate::Handling("scimitar does not serve files")),
    ("root", Fate::Handling("scimitar does not serve files")),
    ("alias", Fate::Handling("scimitar does not serve files")),
    ("index", Fate::Handling("scimitar does not serve files")),
    ("autoindex", Fate::Handling("scimitar does not serve files")),
    ("internal", Fate::Handling("scimitar has no internal locations")),
    ("allow", Fate::Handling("scimitar has no address allow/deny lists; use a firewall, mTLS or a route's `auth`")),
    ("deny", Fate::Handling("scimitar has no address allow/deny lists; use a firewall, mTLS or a route's `auth`")),
    ("satisfy", Fate::Handling("scimitar has no address allow/deny lists")),
    ("auth_basic", Fate::Handling("scimitar checks bearer tokens (route `auth`), not Basic credentials")),
    ("auth_basic_user_file", Fate::Handling("scimitar checks bearer tokens (route `auth`), not Basic credentials")),
    ("auth_request", Fate::Handling("scimitar has no subrequests; a route's `auth` checks bearer tokens itself")),
    ("auth_request_set", Fate::Handling("scimitar has no subrequests")),
    ("auth_jwt", Fate::Handling("scimitar checks bearer tokens by their SHA-256, not JWTs")),
    ("limit_except", Fate::Handling("scimitar filters methods with a route's `methods`; write the route by hand")),
    ("limit_conn", Fate::Handling("scimitar caps concurrency per pool (`max_inflight`, `tenant_share`) and per server (`max_conns`), not per key")),
    ("limit_conn_zone", Fate::Quiet("scimitar caps concurrency per pool, not per key")),
    ("limit_conn_status", Fate::Quiet("scimitar caps concurrency per pool, not per key")),
    ("limit_rate", Fate::Quiet("scimitar does not throttle response bandwidth")),
    ("limit_rate_after", Fate::Quiet("scimitar does not throttle response bandwidth")),
    ("limit_req_dry_run", Fate::Handling("scimitar has no dry-run limits")),
    ("proxy_method", Fate::Handling("scimitar forwards the client's method")),
    ("proxy_pass_request_body", Fate::Handling("scimitar always forwards the body")),
    ("proxy_pass_request_headers", Fate::Handling("scimitar always forwards the client's headers")),
    ("proxy_pass_header", Fate::Quiet("scimitar passes the upstream's headers through unless a route's `headers.response.remove` names them")),
    ("proxy_ignore_client_abort", Fate::Quiet("scimitar stops an upstream exchange when the client leaves")),
    ("proxy_intercept_errors", Fate::Handling("scimitar passes upstream statuses through untouched")),
    ("proxy_redirect", Fate::Quiet("scimitar rewrites `Location` and `Content-Location` under a route's `upstream_base_path` back to its base path (nginx's `proxy_redirect default`) and no others; with `Host` preserved the upstream builds them for the proxy")),
    ("proxy_cookie_domain", Fate::Quiet("scimitar does not rewrite cookies (SCIM clients keep none)")),
    ("proxy_cookie_path", Fate::Quiet("scimitar does not rewrite cookies (SCIM clients keep none)")),
    ("proxy_cookie_flags", Fate::Quiet("scimitar does not rewrite cookies (SCIM clients keep none)")),
    ("proxy_bind", Fate::Quiet("scimitar lets the system pick the source address")),
    ("proxy_limit_rate", Fate::Quiet("scimitar does not throttle upstream reads")),
    ("proxy_store", Fate::Handling("scimitar does not store responses as files")),
    ("proxy_next_upstream_timeout", Fate::Quiet("scimitar bounds retries by count (`retries`) and each try by the pool's timeouts")),
    ("proxy_cache_key", Fate::Quiet("scimitar's cache key is fixed and always holds the credential, host, path, query and Accept headers")),
    ("proxy_cache_methods", Fate::Quiet("scimitar caches only GET/HEAD of discovery documents and single resources")),
    ("proxy_cache_min_uses", Fate::Quiet("scimitar stores on the first miss")),
    ("proxy_cache_lock", Fate::Quiet("scimitar does not collapse concurrent misses")),
    ("proxy_cache_lock_timeout", Fate::Quiet("scimitar does not collapse concurrent misses")),
    ("proxy_cache_lock_age", Fate::Quiet("scimitar does not collapse concurrent misses")),
    ("proxy_cache_use_stale", Fate::Quiet("scimitar does not serve stale entries")),
    ("proxy_cache_background_update", Fate::Quiet("scimitar does not serve stale entries")),
    ("proxy_cache_revalidate", Fate::Quiet("scimitar answers If-None-Match from its own entries")),
    ("proxy_cache_bypass", Fate::Handling("scimitar's cache has no bypass conditions (a client's `Cache-Control: no-cache` gets a fresh answer)")),
    ("proxy_no_cache", Fate::Handling("scimitar's cache has no store conditions")),
    ("proxy_cache_convert_head", Fate::Quiet("scimitar caches GET answers")),
    ("proxy_ssl_protocols", Fate::Quiet("scimitar speaks TLS 1.2 or 1.3 to upstreams")),
    ("proxy_ssl_ciphers", Fate::Quiet("scimitar uses OpenSSL's defaults towards upstreams")),
    ("proxy_ssl_session_reuse", Fate::Silent),
    ("proxy_ssl_verify_depth", Fate::Quiet("scimitar verifies the whole chain")),
    ("proxy_ssl_conf_command", Fate::Quiet("scimitar has no OpenSSL command settings")),
    ("ssl_ciphers", Fate::Quiet("no server in the config used it")),
    ("ssl_conf_command", Fate::Quiet("scimitar has no OpenSSL command settings")),
    ("ssl_password_file", Fate::Handling("scimitar needs an unencrypted key")),
    ("ssl_crl", Fate::Handling("scimitar does not check revocation lists")),
    ("ssl_ocsp", Fate::Handling("scimitar does not check client certificates by OCSP")),
    ("ssl_reject_handshake", Fate::Handling("scimitar serves its default certificate to an unknown SNI")),
    ("ssl_verify_client", Fate::Handling(CLIENT_CERT)),
    ("ssl_client_certificate", Fate::Handling(CLIENT_CERT)),
    ("ssl_verify_depth", Fate::Handling(CLIENT_CERT)),
    ("ssl", Fate::Quiet("`ssl on` is read with the server's listen directives")),
    ("http2_push", Fate::Quiet("scimitar does not push")),
    ("http2_push_preload", Fate::Quiet("scimitar does not push")),
    ("http3", Fate::Handling("scimitar does not speak HTTP/3")),
    ("quic_retry", Fate::Quiet("scimitar does not speak HTTP/3")),
    ("log_format", Fate::Quiet("scimitar writes its own JSON access-log line")),
    ("error_log", Fate::Quiet("scimitar logs to stderr (`RUST_LOG` sets the level)")),
    ("access_log", Fate::Quiet("scimitar writes one access log, taken from the http level")),
    ("stub_status", Fate::Handling("scimitar's status is `/status.json` and `/metrics` on the admin listener")),
    ("gzip", Fate::Quiet("scimitar passes the upstream's encoding through")),
    ("gzip_types", Fate::Quiet("scimitar passes the upstream's encoding through")),
    ("gzip_proxied", Fate::Quiet("scimitar passes the upstream's encoding through")),
    ("gzip_vary", Fate::Quiet("scimitar passes the upstream's encoding through")),
    ("gzip_comp_level", Fate::Quiet("scimitar passes the upstream's encoding through")),
    ("gzip_min_length", Fate::Quiet("scimitar passes the upstream's encoding through")),
    ("gzip_http_version", Fate::Quiet("scimitar passes the upstream's encoding through")),
    ("gzip_disable", Fate::Quiet("scimitar passes the upstream's encoding through")),
    ("gzip_buffers", Fate::Quiet("scimitar passes the upstream's encoding through")),
    ("gunzip", Fate::Quiet("scimitar passes the upstream's encoding through")),
    ("expires", Fate::Quiet("scimitar does not set Expires/Cache-Control on answers")),
    ("sub_filter", Fate::Handling("scimitar does not rewrite bodies")),
    ("sub_filter_once", Fate::Handling("scimitar does not rewrite bodies")),
    ("sub_filter_types", Fate::Handling("scimitar does not rewrite bodies")),
    ("ssi", Fate::Handling("scimitar does not process SSI")),
    ("mirror", Fate::Handling("scimitar does not mirror requests")),
    ("mirror_request_body", Fate::Handling("scimitar does not mirror requests")),
    ("secure_link", Fate::Handling("scimitar has no secure links")),
    ("valid_referers", Fate::Handling("scimitar does not check Referer")),
    ("underscores_in_headers", Fate::Quiet("scimitar forwards header names with underscores")),
    ("large_client_header_buffers", Fate::Quiet("no http or server level to take it from")),
    ("keepalive_requests", Fate::Quiet("no http or server level to take it from")),
    ("keepalive_time", Fate::Quiet("scimitar bounds a connection by requests and idle time")),
    ("keepalive_timeout", Fate::Quiet("no http or server level to take it from")),
    ("client_header_timeout", Fate::Quiet("no http or server level to take it from")),
    ("client_body_timeout", Fate::Quiet("no http or server level to take it from")),
    ("send_timeout", Fate::Quiet("no http or server level to take it from")),
    ("real_ip_recursive", Fate::Silent),
    ("proxy_cache_path", Fate::Quiet("no translated location caches in this zone")),
    ("proxy_cache", Fate::Quiet("no translated location caches in this zone")),
    ("proxy_cache_valid", Fate::Quiet("applies to no translated location with `proxy_cache`")),
    ("proxy_ignore_headers", Fate::Quiet("applies to no translated location with `proxy_cache`")),
    ("upstream", Fate::Quiet("no translated location proxies to it")),
    ("limit_req_zone", Fate::Quiet("no translated location limits by this zone")),
    ("limit_req_status", Fate::Quiet("scimitar refuses with 429 + Retry-After")),
    ("stream", Fate::Handling("`stream` (layer 4) is not translated; write `protocol: tcp` listeners by hand")),
    ("mail", Fate::Handling("scimitar is not a mail proxy")),
    ("load_module", Fate::Quiet("scimitar has no dynamic modules")),
    ("perl", Fate::Handling("embedded Perl runs nginx scripting")),
    ("perl_set", Fate::Defines("embedded Perl runs nginx scripting")),
    ("perl_modules", Fate::Quiet("embedded Perl runs nginx scripting")),
    ("perl_require", Fate::Quiet("embedded Perl runs nginx scripting")),
    ("add_trailer", Fate::Quiet("scimitar does not add trailers")),
    ("server_name", Fate::Quiet("scimitar routes by path, not Host")),
    ("listen", Fate::Handling("not an address scimitar can listen on")),
];

/// Directives the translation reads where they apply: one left over applied to nothing that
/// was translated (every location below it overrides it, or none exists).
const TRANSLATED: &[&str] = &[
    "proxy_pass",
    "proxy_connect_timeout",
    "proxy_read_timeout",
    "proxy_send_timeout",
    "proxy_next_upstream",
    "proxy_next_upstream_tries",
    "proxy_ssl_verify",
    "proxy_ssl_trusted_certificate",
    "proxy_ssl_name",
    "proxy_ssl_server_name",
    "proxy_ssl_certificate",
    "proxy_ssl_certificate_key",
    "client_max_body_size",
    "proxy_set_header",
    "add_header",
    "proxy_hide_header",
    "limit_req",
    "set_real_ip_from",
    "real_ip_header",
    "ssl_certificate",
    "ssl_certificate_key",
    "ssl_protocols",
    "http2",
];

/// The fate of a directive nothing consumed.
pub fn fate(name: &str) -> Fate {
    if SILENT.contains(&name) {
        return Fate::Silent;
    }
    if TRANSLATED.contains(&name) {
        return Fate::Quiet(
            "applies to nothing that was translated (every level below sets its own, or holds no translated location)",
        );
    }
    if let Some((_, f)) = REPORTED.iter().find(|(n, _)| *n == name) {
        return *f;
    }
    if name.ends_with("_by_lua")
        || name.ends_with("_by_lua_block")
        || name.ends_with("_by_lua_file")
        || name.starts_with("lua_")
    {
        return Fate::Handling("Lua runs arbitrary code per request; port it to the upstream or drop it");
    }
    if name.starts_with("js_") {
        return Fate::Handling("njs runs arbitrary code per request; port it to the upstream or drop it");
    }
    if name.starts_with("grpc_")
        || name.starts_with("fastcgi_")
        || name.starts_with("uwsgi_")
        || name.starts_with("scgi_")
        || name.starts_with("memcached_")
    {
        return Fate::Handling("scimitar proxies HTTP only");
    }
    Fate::Handling("not a directive scimitar knows; treated as changing request handling")
}

/// [`fate`], with the arguments that change it: an `error_page` that changes the status
/// (`=200`, `=`) changes what the client gets, one that only swaps the body does not.
pub fn fate_of(d: &crate::nginx::Directive) -> Fate {
    if d.name == "error_page" && d.args.iter().any(|a| a.text.starts_with('=')) {
        return Fate::Handling("it changes the status of an error; scimitar passes upstream statuses through and answers its own errors in SCIM");
    }
    fate(&d.name)
}

/// The report kind for a fate, given whether a variable the directive defines is read.
pub fn kind(f: Fate, defined_var_read: bool) -> Option<(Kind, &'static str)> {
    match f {
        Fate::Silent => None,
        Fate::Quiet(why) => Some((Kind::Dropped { handling: false }, why)),
        Fate::Handling(why) => Some((Kind::Dropped { handling: true }, why)),
        Fate::Defines(why) => Some((
            Kind::Dropped {
                handling: defined_var_read,
            },
            why,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripting_and_unknown_modules_change_handling_and_tuning_does_not() {
        for name in [
            "rewrite",
            "if",
            "content_by_lua_block",
            "access_by_lua_file",
            "js_content",
            "auth_request",
            "frobnicate",
        ] {
            assert!(matches!(fate(name), Fate::Handling(_)), "{name}");
        }
        for name in [
            "sendfile",
            "proxy_buffering",
            "proxy_http_version",
            "worker_connections",
        ] {
            assert_eq!(fate(name), Fate::Silent, "{name}");
        }
        assert!(matches!(fate("log_format"), Fate::Quiet(_)));
        assert!(matches!(fate("map"), Fate::Defines(_)));
        assert_eq!(
            kind(fate("map"), false).map(|k| k.0),
            Some(Kind::Dropped { handling: false })
        );
        assert_eq!(
            kind(fate("map"), true).map(|k| k.0),
            Some(Kind::Dropped { handling: true })
        );
    }
}
