//! The route list the tests call every route from is the router's: each route it names is
//! registered in the gateway's source and served, with the methods it lists only, and a
//! path it does not name answers the fallback's 404.

mod common;

use std::collections::BTreeSet;

use common::routes::ROUTES;
use common::{ACME, Gateway, Reply};
use reqwest::{Method, StatusCode};

/// The (method, path) pairs `src/lib.rs` registers with `.route(..)`; those of
/// `gateway_routes` are written there without the `/api/v1` they are nested under.
fn registered_routes() -> BTreeSet<(String, String)> {
    let source = include_str!("../src/lib.rs");
    let mut found = BTreeSet::new();
    for (start, call) in source.match_indices(".route(") {
        let args = call_args(&source[start + call.len()..]);
        let path = args
            .split('"')
            .nth(1)
            .expect("a route's first argument is its path");
        for method in ["get", "post", "put", "patch", "delete"] {
            if calls(args, method) {
                found.insert((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    found
}

/// The arguments of a call, `text` starting just after its opening parenthesis.
fn call_args(text: &str) -> &str {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..i];
                }
            }
            _ => {}
        }
    }
    panic!("a .route( call without its closing parenthesis");
}

/// Whether `text` calls the function `name` (not one whose name ends in it).
fn calls(text: &str, name: &str) -> bool {
    text.match_indices(&format!("{name}("))
        .any(|(i, _)| !text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
}

/// Whether the router serves a call: anything but 405 or the fallback's 404.
fn served(reply: &Reply) -> bool {
    reply.status != StatusCode::METHOD_NOT_ALLOWED
        && !(reply.status == StatusCode::NOT_FOUND && reply.error() == "no such endpoint")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_list_is_the_routers() {
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|&(m, p)| {
            (
                m.to_owned(),
                p.strip_prefix("/api/v1").unwrap_or(p).to_owned(),
            )
        })
        .collect();
    assert_eq!(
        registered_routes(),
        listed,
        "ROUTES in this test must list every route gateway_routes registers"
    );

    let g = Gateway::start().await;
    let version = "0".repeat(32);
    let templates: BTreeSet<&str> = ROUTES.iter().map(|&(_, p)| p).collect();
    for template in templates {
        let path = template
            .replace("{name}", "sensors")
            .replace("{id}", "1")
            .replace("{version}", &version)
            .replace("{n}", "0");
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            let listed = ROUTES.contains(&(method.as_str(), template));
            let r = g.request(method.clone(), &path, Some(ACME), None).await;
            assert_eq!(
                served(&r),
                listed,
                "{method} {path}: {} {}",
                r.status,
                r.error()
            );
        }
    }
    for path in [
        "/",
        "/nope",
        "/api/v1",
        "/api/v1/",
        "/api/v1/nope",
        "/api/v1/whoami/x",
        "/api/v1/datasets/sensors/changesets/1/x",
        &format!("/api/v1/trainsets/{version}/shards"),
        &format!("/api/v1/trainsets/{version}/shards/0/x"),
        "/api/v2/whoami",
    ] {
        for token in [None, Some(ACME)] {
            let r = g.request(Method::GET, path, token, None).await;
            assert_eq!(
                (r.status, r.error().as_str()),
                (StatusCode::NOT_FOUND, "no such endpoint"),
                "GET {path} with token {token:?}"
            );
        }
    }
}
