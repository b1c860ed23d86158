//! Object storage on S3 or any S3-compatible store (MinIO, moto, R2, ...)
//! through `object_store`'s S3 client (`objects.backend = "s3"`): the same
//! object layout as the local store, under `objects.s3_prefix` in the
//! bucket (the bucket's root by default).
//!
//! Credentials come from the usual `AWS_*` environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...);
//! an endpoint (`objects.s3_endpoint`) switches to path-style addressing
//! (`http://host:port/bucket/key`, as MinIO serves it) and allows plain
//! HTTP when it says `http://`. Requests retry with exponential backoff on
//! throttling, 5xx answers and dropped connections, for at most
//! `objects.s3_retry_timeout_ms` (each attempt bounded by
//! `objects.s3_request_timeout_ms`), so an unreachable store fails a write
//! with a clear error instead of hanging. Conditional puts (`PutMode::Create`,
//! S3's `If-None-Match`) are on.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use quiver_common::config::ObjectsConfig;

use crate::error::{Result, StorageError};
use crate::object::ObjectStoreRef;

/// Deadline of establishing a connection.
pub const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the startup check (listing the bucket) may take.
pub const S3_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The endpoint as errors name it.
fn endpoint_name(config: &ObjectsConfig) -> String {
    let endpoint = if config.s3_endpoint.is_empty() {
        format!("s3.{}.amazonaws.com", config.s3_region)
    } else {
        config.s3_endpoint.clone()
    };
    format!("{endpoint} (bucket \"{}\")", config.s3_bucket)
}

fn unavailable(config: &ObjectsConfig, detail: impl Into<String>) -> StorageError {
    StorageError::ServiceUnavailable {
        service: "S3",
        endpoints: endpoint_name(config),
        detail: detail.into(),
    }
}

/// The S3 store `[objects]` describes, checked by listing the bucket (so a
/// wrong endpoint, bucket or credentials fail at startup, naming them).
pub async fn s3_object_store(config: &ObjectsConfig) -> Result<ObjectStoreRef> {
    let store = s3_builder(config)?
        .build()
        .map_err(|e| unavailable(config, e.to_string()))?;
    let prefix = config.s3_prefix.trim_matches('/');
    let store: ObjectStoreRef = if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    };
    check_reachable(store.as_ref(), config).await?;
    Ok(store)
}

/// The S3 client `[objects]` describes: bucket, region, endpoint,
/// deadlines and retries, credentials from the environment.
fn s3_builder(config: &ObjectsConfig) -> Result<AmazonS3Builder> {
    if config.s3_bucket.is_empty() {
        return Err(StorageError::InvalidSetting {
            setting: "objects.s3_bucket",
            env: "QUIVER__OBJECTS__S3_BUCKET",
            reason: "objects.backend = \"s3\" needs a bucket".into(),
        });
    }
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&config.s3_bucket)
        .with_region(&config.s3_region)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 10,
            retry_timeout: Duration::from_millis(config.s3_retry_timeout_ms),
        })
        .with_client_options(
            ClientOptions::new()
                .with_timeout(Duration::from_millis(config.s3_request_timeout_ms))
                .with_connect_timeout(S3_CONNECT_TIMEOUT),
        );
    if !config.s3_endpoint.is_empty() {
        builder = builder
            .with_endpoint(&config.s3_endpoint)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(config.s3_endpoint.starts_with("http://"));
    }
    Ok(builder)
}

/// Lists one object of the bucket within [`S3_STARTUP_TIMEOUT`].
async fn check_reachable(store: &dyn ObjectStore, config: &ObjectsConfig) -> Result<()> {
    let first = async { store.list(None).next().await.transpose() };
    match tokio::time::timeout(S3_STARTUP_TIMEOUT, first).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unavailable(config, e.to_string())),
        Err(_) => Err(unavailable(
            config,
            format!("no answer within {S3_STARTUP_TIMEOUT:?}"),
        )),
    }
}

/// The live S3-compatible server `scripts/test.sh` starts
/// (`QUIVER_TEST_S3_ENDPOINT`, bucket `QUIVER_TEST_S3_BUCKET`), or `None`:
/// skipped, unless `QUIVER_TEST_REQUIRE_SERVICES=1` (CI), where it fails.
/// Credentials come from the `AWS_*` variables the script sets.
#[cfg(test)]
pub(crate) fn live_s3() -> Option<(String, String)> {
    match (
        std::env::var("QUIVER_TEST_S3_ENDPOINT"),
        std::env::var("QUIVER_TEST_S3_BUCKET"),
    ) {
        (Ok(endpoint), Ok(bucket)) if !endpoint.is_empty() && !bucket.is_empty() => {
            Some((endpoint, bucket))
        }
        _ if std::env::var("QUIVER_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("QUIVER_TEST_S3_ENDPOINT / QUIVER_TEST_S3_BUCKET are not set but QUIVER_TEST_REQUIRE_SERVICES=1")
        }
        _ => {
            eprintln!("skipped: no S3 (set QUIVER_TEST_S3_ENDPOINT and QUIVER_TEST_S3_BUCKET)");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::path::Path;
    use object_store::{PutMode, PutOptions, PutPayload};
    use quiver_common::config::ObjectsBackend;

    use super::*;
    use crate::object::round_trip;

    /// An S3 server that does not answer (here: nothing listens on its
    /// port) fails a request once its retries run out, as
    /// `ObjectStoreUnreachable` (the doors' 57P03 / Milvus code 2), not as
    /// a generic object-store error.
    #[tokio::test]
    async fn a_server_that_does_not_answer_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The client the server builds, with credentials of its own (the
        // environment's may be missing).
        let store = s3_builder(&ObjectsConfig {
            backend: ObjectsBackend::S3,
            s3_endpoint: format!("http://127.0.0.1:{port}"),
            s3_bucket: "nowhere".into(),
            s3_request_timeout_ms: 300,
            s3_retry_timeout_ms: 300,
            ..ObjectsConfig::default()
        })
        .unwrap()
        .with_access_key_id("k")
        .with_secret_access_key("s")
        .build()
        .unwrap();
        let started = std::time::Instant::now();
        let err = crate::put_bytes(&store, "x", b"y".to_vec())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::ObjectStoreUnreachable(_)),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        // A missing object is an answer, not an outage.
        let dir = tempfile::tempdir().unwrap();
        let local = crate::local_object_store(dir.path()).unwrap();
        let missing = crate::get_bytes(local.as_ref(), "absent")
            .await
            .unwrap_err();
        assert!(
            matches!(missing, StorageError::ObjectStore(_)),
            "{missing:?}"
        );
    }

    #[tokio::test]
    async fn the_object_helpers_work_on_s3() {
        let Some((endpoint, bucket)) = live_s3() else {
            return;
        };
        let config = ObjectsConfig {
            backend: ObjectsBackend::S3,
            s3_endpoint: endpoint,
            s3_bucket: bucket,
            ..ObjectsConfig::default()
        };
        let store = s3_object_store(&config).await.unwrap();
        // Under a prefix of its own (`objects.s3_prefix`): the bucket
        // outlives the test.
        let prefix = format!("round-trip-{}", std::process::id());
        let scoped = s3_object_store(&ObjectsConfig {
            s3_prefix: format!("/{prefix}/"),
            ..config.clone()
        })
        .await
        .unwrap();
        round_trip(scoped.as_ref()).await;
        assert_eq!(
            crate::list_paths(store.as_ref(), &prefix).await.unwrap(),
            vec![
                format!("{prefix}/other/x"),
                format!("{prefix}/tables/t10/seg-1.parquet")
            ],
            "the prefixed store's objects are under the prefix in the bucket"
        );

        // A conditional put creates once: the second writer of a path is
        // refused (the object-storage WAL's fencing rests on it).
        let path = Path::from(format!("{prefix}/create-once"));
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        store
            .put_opts(&path, PutPayload::from_static(b"first"), create.clone())
            .await
            .unwrap();
        let err = store
            .put_opts(&path, PutPayload::from_static(b"second"), create)
            .await
            .unwrap_err();
        assert!(
            matches!(err, object_store::Error::AlreadyExists { .. }),
            "{err}"
        );
        assert_eq!(
            &crate::get_bytes(store.as_ref(), &format!("{prefix}/create-once"))
                .await
                .unwrap()[..],
            b"first"
        );
        crate::delete_prefix(store.as_ref(), &prefix).await.unwrap();
    }
}
