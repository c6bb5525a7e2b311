//! Blob access: an `object_store::ObjectStore` built from a URL, not wrapped.
//!
//! `file://DIR` (the embedded default; the directory is created), `memory://` (tests),
//! `s3://BUCKET[/PREFIX]`, `gs://BUCKET[/PREFIX]`, `az://CONTAINER[/PREFIX]` (account from
//! `AZURE_STORAGE_ACCOUNT_NAME`) or `abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX`.
//! Credentials and regions come from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`). The
//! store returned is scoped to the URL's path, so object paths are relative to it:
//! `{tenant}/{dataset}/...`.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use url::Url;

/// Why a blob store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The URL could not be understood or its store built.
    #[error("invalid blob store url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The directory of a `file://` store could not be created.
    #[error("creating the blob directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Opens the blob store a URL names, scoped to its path.
pub fn open_blobs(url: &str) -> Result<Arc<dyn ObjectStore>, BlobError> {
    let invalid = |reason: String| BlobError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    match parsed.scheme() {
        "memory" => return Ok(Arc::new(InMemory::new())),
        "file" => {
            let path = parsed.to_file_path().map_err(|()| {
                invalid("file:// needs an absolute path, e.g. file:///srv/blobs".into())
            })?;
            std::fs::create_dir_all(&path).map_err(|source| BlobError::CreateDir {
                path: path.display().to_string(),
                source,
            })?;
        }
        "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "http" | "https" => {}
        other => {
            return Err(invalid(format!(
                "unknown scheme {other:?}; supported: file://, s3://, gs://, az://, memory://"
            )));
        }
    }
    // credentials and regions come from the environment (AWS_*, GOOGLE_*, AZURE_*)
    let options: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_")
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let (store, prefix) =
        object_store::parse_url_opts(&parsed, options).map_err(|e| invalid(e.to_string()))?;
    if prefix.as_ref().is_empty() {
        Ok(Arc::from(store))
    } else {
        Ok(Arc::new(PrefixStore::new(store, prefix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt as _, PutPayload};

    #[tokio::test]
    async fn file_urls_are_scoped_to_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        let store = open_blobs(&format!("file://{}", root.display())).unwrap();
        store
            .put(
                &Path::from("acme/sensors/seg-1"),
                PutPayload::from_static(b"bytes"),
            )
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(root.join("acme/sensors/seg-1")).unwrap(),
            b"bytes"
        );
        let got = store.get(&Path::from("acme/sensors/seg-1")).await.unwrap();
        assert_eq!(&got.bytes().await.unwrap()[..], b"bytes");
    }

    #[test]
    fn cloud_urls_build_their_stores() {
        // building a cloud store needs no network; requests would
        for url in [
            "s3://bucket/prefix",
            "gs://bucket/prefix",
            "abfs://container@account.dfs.core.windows.net/prefix",
        ] {
            if let Err(e) = open_blobs(url) {
                panic!("{url}: {e}");
            }
        }
        // az:// takes its account from AZURE_STORAGE_ACCOUNT_NAME; without it, a clear error
        if std::env::var_os("AZURE_STORAGE_ACCOUNT_NAME").is_none() {
            let e = open_blobs("az://container/prefix")
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("az://container/prefix") && e.contains("Account"),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_urls_are_named() {
        for (url, want) in [
            ("ftp://x/y", "unknown scheme \"ftp\""),
            ("not a url", "invalid blob store url"),
            ("file://relative/path", "file"),
        ] {
            let e = open_blobs(url).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(url), "{url}: {e}");
            assert!(e.contains(want), "{url}: {e}");
        }
    }
}
