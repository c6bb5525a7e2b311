//! Bearer tokens, each mapped to one tenant. With no tokens configured, the one tenant
//! `default` is open to loopback clients only.

use std::fmt;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use flywheel_topics::Tenant;

use crate::{AppState, api_error};

/// Who may call, as which tenant.
pub struct Auth {
    tokens: Vec<(String, Tenant)>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never the tokens themselves
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

/// The caller of a request, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant every read and write of the request is scoped to.
    pub tenant: Tenant,
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header where tokens are configured.
    #[error("missing bearer token")]
    Missing,
    /// A token no tenant has.
    #[error("invalid bearer token")]
    Invalid,
    /// No tokens are configured and the caller is not on loopback.
    #[error("this server has no tokens configured and accepts loopback clients only")]
    NotLoopback,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = match self {
            AuthError::Missing | AuthError::Invalid => StatusCode::UNAUTHORIZED,
            AuthError::NotLoopback => StatusCode::FORBIDDEN,
        };
        api_error(status, &self.to_string())
    }
}

impl Auth {
    /// No tokens: the `default` tenant, loopback clients only.
    pub fn open() -> Self {
        Self { tokens: Vec::new() }
    }

    /// Tokens, each for one tenant.
    pub fn with_tokens(tokens: Vec<(String, Tenant)>) -> Self {
        Self { tokens }
    }

    /// Whether tokens are configured.
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The caller of a request with this `Authorization` header from this peer.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        peer: Option<SocketAddr>,
    ) -> Result<Caller, AuthError> {
        if self.tokens.is_empty() {
            return match peer {
                Some(p) if p.ip().is_loopback() => Ok(Caller {
                    tenant: Tenant::default_tenant(),
                }),
                _ => Err(AuthError::NotLoopback),
            };
        }
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        // look at every token, so the time taken does not say how close a guess was
        let mut found = None;
        for (t, tenant) in &self.tokens {
            if constant_time_eq(t.as_bytes(), token.as_bytes()) {
                found = Some(tenant);
            }
        }
        found
            .map(|tenant| Caller {
                tenant: tenant.clone(),
            })
            .ok_or(AuthError::Invalid)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AuthError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        state.auth.authenticate(header, peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(format!("{ip}:1234").parse().unwrap())
    }

    #[test]
    fn without_tokens_only_loopback_is_the_default_tenant() {
        let auth = Auth::open();
        let c = auth.authenticate(None, peer("127.0.0.1")).unwrap();
        assert_eq!(c.tenant.as_str(), "default");
        assert!(auth.authenticate(None, peer("[::1]")).is_ok());
        assert!(matches!(
            auth.authenticate(None, peer("10.1.2.3")),
            Err(AuthError::NotLoopback)
        ));
        assert!(matches!(
            auth.authenticate(None, None),
            Err(AuthError::NotLoopback)
        ));
    }

    #[test]
    fn tokens_map_to_their_tenant_and_nothing_else() {
        let auth = Auth::with_tokens(vec![
            ("tok-a".into(), Tenant::new("acme").unwrap()),
            ("tok-b".into(), Tenant::new("globex").unwrap()),
        ]);
        let a = auth
            .authenticate(Some("Bearer tok-a"), peer("10.0.0.1"))
            .unwrap();
        assert_eq!(a.tenant.as_str(), "acme");
        let b = auth
            .authenticate(Some("Bearer tok-b"), peer("127.0.0.1"))
            .unwrap();
        assert_eq!(b.tenant.as_str(), "globex");
        for bad in [
            None,
            Some(""),
            Some("Bearer "),
            Some("tok-a"),
            Some("Basic tok-a"),
        ] {
            assert!(
                matches!(
                    auth.authenticate(bad, peer("127.0.0.1")),
                    Err(AuthError::Missing)
                ),
                "{bad:?}"
            );
        }
        for bad in ["Bearer tok-c", "Bearer tok-", "Bearer tok-aa"] {
            assert!(
                matches!(
                    auth.authenticate(Some(bad), peer("127.0.0.1")),
                    Err(AuthError::Invalid)
                ),
                "{bad}"
            );
        }
        assert!(!format!("{auth:?}").contains("tok-a"));
    }
}
