//! The storage backends from `quiver standalone`'s side: an unreachable
//! etcd or S3 stops it at startup with an error naming the endpoint; the
//! object-store WAL keeps acknowledged writes across a SIGKILL.

mod support;

use std::process::{Command, Stdio};

use support::{connect, free_port, private_tempdir, sigkill, KillOnDrop};

/// `wal.backend = "object_store"`: acknowledged writes live in WAL objects
/// (here in the local object store), not in a local WAL directory, and
/// survive a SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_store_wal_keeps_acknowledged_writes_across_sigkill() {
    let dir = private_tempdir();
    let port = free_port();
    let start = || {
        KillOnDrop(
            Command::new(env!("CARGO_BIN_EXE_quiver"))
                .args(["standalone", "--data-dir"])
                .arg(dir.path())
                .args([
                    "--pg-addr",
                    &format!("127.0.0.1:{port}"),
                    "--milvus-addr",
                    "",
                ])
                .env("QUIVER__WAL__BACKEND", "object_store")
                .env("QUIVER_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("quiver starts"),
        )
    };
    let mut server = start();
    let client = connect(port).await;
    client
        .batch_execute(
            "CREATE TABLE w (id BIGINT PRIMARY KEY, v TEXT); \
             INSERT INTO w VALUES (1, 'a'), (2, 'b'); DELETE FROM w WHERE id = 1; \
             INSERT INTO w VALUES (3, 'c')",
        )
        .await
        .unwrap();
    sigkill(&mut server.0);
    assert!(!dir.path().join("wal").exists(), "no local WAL directory");
    let wal_objects = std::fs::read_dir(dir.path().join("objects/wal/default"))
        .unwrap()
        .count();
    assert!(wal_objects > 0, "the WAL lives in objects");
    let _server = start();
    let client = connect(port).await;
    let rows: Vec<(i64, String)> = client
        .query("SELECT id, v FROM w ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, vec![(2, "b".to_string()), (3, "c".to_string())]);
}

/// Runs `quiver standalone` with `env`, expecting it to refuse to start
/// within 30 s; returns what it wrote to stderr.
fn refused_start(env: &[(&str, &str)]) -> String {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let started = std::time::Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["standalone", "--data-dir"])
        .arg(&dir)
        .args([
            "--pg-addr",
            &format!("127.0.0.1:{}", free_port()),
            "--milvus-addr",
            "",
        ])
        .envs(env.iter().copied())
        .env("QUIVER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("quiver runs");
    assert!(!output.status.success(), "{env:?}: must not start");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{env:?}: gave up after {:?}",
        started.elapsed()
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_unreachable_s3_stops_the_server_naming_the_endpoint() {
    let stderr = refused_start(&[
        ("QUIVER__OBJECTS__BACKEND", "s3"),
        ("QUIVER__OBJECTS__S3_ENDPOINT", "http://127.0.0.1:1"),
        ("QUIVER__OBJECTS__S3_BUCKET", "vectors"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]);
    assert!(
        stderr.contains("S3 at http://127.0.0.1:1 (bucket \"vectors\") is unavailable"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_etcd_stops_the_server_naming_the_endpoint() {
    let stderr = refused_start(&[
        ("QUIVER__META__BACKEND", "etcd"),
        ("QUIVER__META__ETCD_ENDPOINTS", "http://127.0.0.1:1"),
    ]);
    assert!(
        stderr.contains("etcd at http://127.0.0.1:1 is unavailable"),
        "{stderr}"
    );
}
