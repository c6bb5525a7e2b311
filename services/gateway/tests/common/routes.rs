//! Every route the gateway serves, written once for the tests that call them all.

/// Every route the gateway serves, as (method, path template). This list must grow with
/// `gateway_routes` and `base_routes`: `the_route_list_is_the_routers` checks it against
/// the router, and `every_route_keeps_tenants_apart` calls each of them.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/whoami"),
    ("GET", "/api/v1/topics"),
    ("POST", "/api/v1/samples"),
    ("GET", "/api/v1/datasets"),
    ("POST", "/api/v1/datasets"),
    ("GET", "/api/v1/datasets/{name}"),
    ("GET", "/api/v1/datasets/{name}/stats"),
    ("GET", "/api/v1/datasets/{name}/changesets"),
    ("POST", "/api/v1/datasets/{name}/changesets"),
    ("GET", "/api/v1/datasets/{name}/changesets/{id}"),
    ("GET", "/api/v1/pipelines"),
    ("POST", "/api/v1/pipelines"),
    ("GET", "/api/v1/pipelines/{name}"),
    ("POST", "/api/v1/pipelines/{name}/stop"),
    ("GET", "/api/v1/pipelines/{name}/triggers"),
    ("GET", "/api/v1/pipelines/{name}/releases"),
    ("GET", "/api/v1/models"),
    ("GET", "/api/v1/models/{id}"),
    ("GET", "/api/v1/models/{id}/weights"),
    ("GET", "/api/v1/models/{id}/lineage"),
    ("GET", "/api/v1/trainsets"),
    ("POST", "/api/v1/trainsets"),
    ("GET", "/api/v1/trainsets/{version}"),
    ("GET", "/api/v1/trainsets/{version}/manifest"),
    ("GET", "/api/v1/trainsets/{version}/shards/{n}"),
];

/// Routes outside the API answer without a token, and hold no tenant's data.
pub fn is_public(route: &str) -> bool {
    !route.starts_with("/api/v1/")
}
