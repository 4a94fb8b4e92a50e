//! `limit_req_zone` + `limit_req` → `rate_limits.policies` and each route's `rate_limits`.
//!
//! nginx's `burst=N` lets N requests beyond the first through at once; scimitar's GCRA `burst`
//! counts every request admitted at once, so it is N + 1. Without `nodelay` nginx holds the
//! excess back to pace it; scimitar forwards the burst at once and refuses the rest with 429.
//! A zone used with different `burst` values becomes one policy per value (buckets are per
//! policy, so those locations stop sharing one bucket: reported).

use super::emit::{Entry, Node};
use super::headers::canonical;
use super::scope::{self, Chain};
use super::{Cx, Kind, Note};
use crate::nginx::Directive;

/// A limit key variable → a scimitar key source.
pub fn key_source(var: &str) -> Option<String> {
    Some(match var {
        "binary_remote_addr" | "remote_addr" => "client_ip".into(),
        "http_authorization" => "token".into(),
        "host" | "http_host" => "header:Host".into(),
        "ssl_client_fingerprint" => "client_cert".into(),
        v => format!("header:{}", canonical(&v.strip_prefix("http_")?.replace('_', "-"))),
    })
}

struct Zone<'a> {
    d: &'a Directive,
    name: String,
    key: Result<Vec<String>, String>,
    rate: Option<String>,
}

struct Policy {
    zone: usize,
    burst: u64,
    name: String,
    entry: Entry,
}

pub(crate) struct Policies<'a> {
    zones: Vec<Zone<'a>>,
    policies: Vec<Policy>,
}

/// `10r/s` → `10/s`, `30r/m` → `30/m`.
fn rate(s: &str) -> Option<String> {
    let (n, unit) = s.split_once("r/")?;
    let n: u32 = n.parse().ok().filter(|n| *n > 0)?;
    matches!(unit, "s" | "m").then(|| format!("{n}/{unit}"))
}

impl<'a> Policies<'a> {
    pub fn collect(_cx: &mut Cx, h: &'a Directive) -> Policies<'a> {
        let zones = h
            .find("limit_req_zone")
            .filter_map(|d| {
                let name = scope::param(d, "zone")?.split(':').next()?.to_string();
                let key_text = d.arg(0).unwrap_or_default();
                let vars = scope::variables(key_text);
                let key = if vars.is_empty() {
                    Err("a constant key (one bucket for everyone): scimitar keys on request sources".to_string())
                } else {
                    vars.iter()
                        .map(|v| {
                            key_source(v).ok_or_else(|| {
                                format!(
                                    "keys on `${v}`, which has no scimitar key source (client_ip, token, header:NAME)"
                                )
                            })
                        })
                        .collect()
                };
                Some(Zone {
                    d,
                    name,
                    key,
                    rate: scope::param(d, "rate").and_then(rate),
                })
            })
            .collect();
        Policies {
            zones,
            policies: Vec::new(),
        }
    }

    /// The policy names for a location (`chain` ends at it).
    pub fn route(&mut self, cx: &mut Cx, chain: &Chain) -> Vec<String> {
        let reqs = chain.array("limit_req");
        if reqs.is_empty() {
            return Vec::new();
        }
        if let Some(dry) = chain.scalar("limit_req_dry_run").filter(|d| d.arg(0) == Some("on")) {
            cx.take(dry);
            for d in reqs {
                cx.drop(
                    d,
                    false,
                    "`limit_req_dry_run on`: nginx only counts here, so nothing is limited",
                );
            }
            return Vec::new();
        }
        let status = chain.scalar("limit_req_status");
        let mut names = Vec::new();
        for d in reqs {
            let Some(zname) = scope::param(d, "zone") else {
                cx.drop(d, true, "no zone= to limit by");
                continue;
            };
            let Some(zi) = self.zones.iter().position(|z| z.name == zname) else {
                cx.drop(d, true, format!("no limit_req_zone `{zname}`"));
                continue;
            };
            let zone = &self.zones[zi];
            let key = match &zone.key {
                Ok(k) => k.clone(),
                Err(why) => {
                    let why = why.clone();
                    cx.drop(zone.d, true, why.clone());
                    cx.drop(d, true, format!("zone `{zname}` {why}"));
                    continue;
                }
            };
            let Some(rate) = zone.rate.clone() else {
                cx.drop(zone.d, true, "a rate scimitar cannot read (give NNr/s or NNr/m)");
                cx.drop(d, true, format!("zone `{zname}` has no readable rate"));
                continue;
            };
            let burst = scope::param(d, "burst")
                .and_then(|b| b.parse::<u64>().ok())
                .unwrap_or(0);
            let nodelay = scope::flag(d, "nodelay");
            match scope::param(d, "delay") {
                Some(_) => cx.differs(d, "`delay`: scimitar does not delay; requests within the burst go through at once, the rest get 429"),
                None if !nodelay && burst > 0 => cx.differs(
                    d,
                    format!("without `nodelay` nginx queues up to {burst} excess requests to pace them at {rate}; scimitar forwards them at once and refuses the rest with 429"),
                ),
                None => cx.take(d),
            }
            match status {
                Some(s) if s.arg(0) == Some("429") => cx.take(s),
                Some(s) => cx.differs(
                    s,
                    "scimitar refuses with 429, Retry-After and a SCIM error body: IdPs back off on 429, while a 503 reads as an outage and is retried at once",
                ),
                None => cx.note(Note::new(
                    d,
                    Kind::Differs,
                    "nginx refuses with 503 here (limit_req_status's default); scimitar with 429, Retry-After and a SCIM error body: IdPs back off on 429, while a 503 reads as an outage and is retried at once",
                )),
            }
            if key.iter().any(|k| k == "token" || k.starts_with("header:")) {
                cx.note(Note::new(
                    zone.d,
                    Kind::Differs,
                    "requests without the key's header are not limited by nginx (an empty key); scimitar counts them together in one bucket",
                ));
            }
            cx.take(zone.d);
            let name = self.policy(cx, zi, burst, key, rate, d);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    fn policy(&mut self, cx: &mut Cx, zi: usize, burst: u64, key: Vec<String>, rate: String, d: &Directive) -> String {
        if let Some(p) = self.policies.iter().find(|p| p.zone == zi && p.burst == burst) {
            return p.name.clone();
        }
        let zone = &self.zones[zi];
        let same_zone = self.policies.iter().filter(|p| p.zone == zi).count();
        let name = if same_zone == 0 {
            zone.name.clone()
        } else {
            cx.differs(
                d,
                format!("zone `{}` with another burst: a policy of its own, so these requests no longer share the zone's bucket", zone.name),
            );
            format!("{}-{}", zone.name, same_zone + 1)
        };
        let mut p = Node::map();
        let key_node = if key.len() == 1 {
            Node::str(key[0].clone())
        } else {
            Node::Flow(key)
        };
        p.set("key", key_node);
        p.set("rate", Node::str(rate));
        p.set_noted(
            vec![format!(
                "nginx burst={burst} admits {} at once; scimitar's burst counts them all",
                burst.saturating_add(1)
            )],
            "burst",
            Node::Int(burst.saturating_add(1).min(1_000_000)),
        );
        let entry = Entry {
            notes: vec![cx.from(zone.d), cx.from(d)],
            key: name.clone(),
            value: p,
        };
        self.policies.push(Policy {
            zone: zi,
            burst,
            name: name.clone(),
            entry,
        });
        name
    }

    pub fn emit(self) -> Vec<Entry> {
        self.policies.into_iter().map(|p| p.entry).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_rates_read_as_scimitar_writes_them() {
        assert_eq!(key_source("binary_remote_addr").as_deref(), Some("client_ip"));
        assert_eq!(key_source("remote_addr").as_deref(), Some("client_ip"));
        assert_eq!(key_source("http_authorization").as_deref(), Some("token"));
        assert_eq!(key_source("http_x_tenant_id").as_deref(), Some("header:X-Tenant-Id"));
        assert_eq!(key_source("token_key"), None);
        assert_eq!(rate("10r/s").as_deref(), Some("10/s"));
        assert_eq!(rate("30r/m").as_deref(), Some("30/m"));
        assert_eq!(rate("0r/s"), None);
        assert_eq!(rate("10/s"), None);
    }
}
