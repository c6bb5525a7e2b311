//! Sources that cannot be reached: no server needed. A closed port is refused at once; a
//! server that accepts but never answers is given up on within the connect timeout. Either
//! way the error names the source and its host:port, never the password.

mod common;

use std::time::{Duration, Instant};

use common::*;
use flywheel_sources::{DEFAULT_STATEMENT_TIMEOUT, SourceError};

const PASSWORD: &str = "pw-c0rrect-h0rse";

#[tokio::test]
async fn closed_port_is_unreachable_at_once() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://reader:{PASSWORD}@127.0.0.1:{port}/crm");
    let dir = tempfile::tempdir().unwrap();
    let sources = crm(
        dir.path(),
        &url,
        DEFAULT_STATEMENT_TIMEOUT,
        Duration::from_secs(5),
    );
    let source = sources.get(&tenant("acme"), "crm").unwrap();
    let q = query("SELECT 1 AS a", None, &["a"]);
    let started = Instant::now();
    let err = source.check(&q).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "source crm (127.0.0.1:{port}) is unreachable: error connecting to server"
        )),
        "{msg}"
    );
    assert!(err.is_retriable() && !err.is_query_error());
    assert_hides(&err, &[PASSWORD, &url]);
    let err = source.fetch(&q).await.unwrap_err();
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
    assert_hides(&err, &[PASSWORD, &url]);
}

#[tokio::test]
async fn silent_server_is_unreachable_within_the_connect_timeout() {
    // accepts connections, never says a word
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://reader:{PASSWORD}@127.0.0.1:{port}/crm");
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_millis(300);
    let sources = crm(dir.path(), &url, DEFAULT_STATEMENT_TIMEOUT, timeout);
    let source = sources.get(&tenant("acme"), "crm").unwrap();
    let started = Instant::now();
    let err = source
        .check(&query("SELECT 1 AS a", None, &["a"]))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took >= timeout && took < timeout * 4, "{took:?}");
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "source crm (127.0.0.1:{port}) is unreachable: no session within the connect timeout (300ms)"
        )
    );
    assert_hides(&err, &[PASSWORD, &url]);
    held.abort();
}
