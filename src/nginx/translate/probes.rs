//! Checks the routes against nginx's location choice on a matrix of SCIM requests: every
//! endpoint (collections, single resources, `.search`, Bulk, Me, discovery, a custom type)
//! below every base path, with every method, on every server. Where scimitar's first-match
//! routing (base path + endpoint class) sends a request to a route that behaves differently
//! from the location nginx picks, the location is reported as not translated for those
//! requests. Regex locations are not modelled: they are reported on their own.

use std::collections::BTreeMap;

use super::locations::{Loc, RouteOut};
use super::{Cx, Kind, Note};
use crate::routing::{BasePath, Route, Router};
use crate::scim::{path::normalize, EndpointClass, Method};

/// Paths below a base path, one per SCIM endpoint shape.
const SUFFIXES: &[&str] = &[
    "/",
    "/Users",
    "/Users/2819c223",
    "/Users/.search",
    "/Groups",
    "/Groups/e9e30dba",
    "/Groups/.search",
    "/.search",
    "/Bulk",
    "/Me",
    "/ServiceProviderConfig",
    "/Schemas",
    "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
    "/ResourceTypes",
    "/ResourceTypes/User",
    "/Devices",
    "/Devices/d1",
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// nginx's choice among one server's locations: an exact match, else the longest prefix.
pub fn nginx_choice(locs: &[Loc], server: usize, path: &str) -> Option<usize> {
    let mine = || locs.iter().enumerate().filter(|(_, l)| l.server == server);
    if let Some((i, _)) = mine().find(|(_, l)| l.exact && l.path == path) {
        return Some(i);
    }
    mine()
        .filter(|(_, l)| !l.exact && path.starts_with(l.path.as_str()))
        .max_by_key(|(i, l)| (l.path.len(), std::cmp::Reverse(*i)))
        .map(|(i, _)| i)
}

/// scimitar's choice among the routes, as the running proxy makes it, and the index in
/// `routes` of each compiled route.
pub fn router(routes: &[RouteOut]) -> (Router, Vec<usize>) {
    let mut index = Vec::new();
    let compiled = routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let mut route = Route::new(&r.name, BasePath::parse(&r.base).ok()?, 0);
            route.classes = r
                .classes
                .iter()
                .filter_map(|c| EndpointClass::parse(c))
                .fold(0, |bits, c| bits | c.bit());
            index.push(i);
            Some(route)
        })
        .collect();
    (Router::new(compiled), index)
}

pub fn verify(cx: &mut Cx, routes: &[RouteOut], locs: &[Loc]) {
    let (router, index) = router(routes);
    let route_of_loc = |l: usize| routes.iter().position(|r| r.locs.contains(&l));
    let mut bases: Vec<&str> = routes.iter().map(|r| r.base.as_str()).collect();
    bases.sort();
    bases.dedup();
    let mut servers: Vec<usize> = locs.iter().map(|l| l.server).collect();
    servers.dedup();
    // (nginx location or server, scimitar route) → the requests that differ.
    let mut differ: BTreeMap<(Option<usize>, usize, Option<usize>), Vec<String>> = BTreeMap::new();
    for &server in &servers {
        for base in &bases {
            let stem = if *base == "/" { "" } else { base };
            for suffix in SUFFIXES {
                let path = format!("{stem}{suffix}");
                for m in METHODS {
                    let nginx = nginx_choice(locs, server, &path);
                    if nginx.is_some_and(|l| route_of_loc(l).is_none()) {
                        continue; // not translated: reported where it was dropped
                    }
                    let want = nginx.and_then(route_of_loc);
                    let got = router
                        .find(Method::parse(m), &normalize(&path))
                        .ok()
                        .and_then(|rm| index.get(rm.route).copied());
                    let same = match (want, got) {
                        (Some(w), Some(g)) => w == g || routes[w].behaviour_for(m) == routes[g].behaviour_for(m),
                        (None, None) => true,
                        _ => false,
                    };
                    if !same {
                        differ
                            .entry((nginx, server, got))
                            .or_default()
                            .push(format!("{m} {path}"));
                    }
                }
            }
        }
    }
    for ((nginx, server, got), requests) in differ {
        let shown = if requests.len() > 4 {
            format!("{} and {} more", requests[..4].join(", "), requests.len() - 4)
        } else {
            requests.join(", ")
        };
        let there = |r: usize| {
            let route = &routes[r];
            let from = route.locs.first().map(|&l| cx.place(locs[l].d)).unwrap_or_default();
            format!("route `{}` (from the location at {from})", route.name)
        };
        match (nginx, got) {
            (Some(l), Some(r)) => cx.note(Note::new(
                locs[l].d,
                Kind::Dropped { handling: true },
                format!(
                    "for {shown}: scimitar sends them to {} instead — its routes match a base path and endpoint classes, not nginx's longest prefix",
                    there(r)
                ),
            )),
            (Some(l), None) => cx.note(Note::new(
                locs[l].d,
                Kind::Dropped { handling: true },
                format!("for {shown}: scimitar answers them with a SCIM 404 — no route's base path and endpoint classes take them"),
            )),
            (None, Some(r)) => {
                let Some(&first) = routes[r].locs.first() else { continue };
                let server_d = locs.iter().find(|l| l.server == server).and_then(|l| l.chain.0.get(1).copied());
                let place = server_d.map(|s| cx.place(s)).unwrap_or_default();
                cx.note(Note::new(
                    locs[first].d,
                    Kind::Dropped { handling: true },
                    format!(
                        "nginx's server at {place} has no location for {shown}; scimitar's routes serve every listener, so {} takes them",
                        there(r)
                    ),
                ));
            }
            (None, None) => {}
        }
    }
}
