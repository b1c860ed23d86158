//! A storage backend this build does not have (`s3`, `object_store`) stops
//! `quiver standalone` at startup with an error naming the setting, before
//! anything is created; an unreachable etcd stops it with an error naming
//! the endpoint.

mod support;

use std::process::{Command, Stdio};

use support::free_port;

#[test]
fn unavailable_storage_backends_refuse_to_start() {
    let cases = [
        ("QUIVER__OBJECTS__BACKEND", "s3", "objects.backend"),
        ("QUIVER__WAL__BACKEND", "object_store", "wal.backend"),
    ];
    for (env, value, setting) in cases {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        let output = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args(["standalone", "--data-dir"])
            .arg(&dir)
            .args([
                "--pg-addr",
                &format!("127.0.0.1:{}", free_port()),
                "--milvus-addr",
                "",
            ])
            .env(env, value)
            .env("QUIVER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("quiver runs");
        assert!(!output.status.success(), "{env}={value}: must not start");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!(
                "{setting} = \"{value}\" (environment {env}) is not available in this build"
            )),
            "{env}={value}: {stderr}"
        );
        assert!(!dir.exists(), "{env}={value}: nothing created");
    }
}

#[test]
fn an_unreachable_etcd_stops_the_server_naming_the_endpoint() {
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
        .env("QUIVER__META__BACKEND", "etcd")
        .env("QUIVER__META__ETCD_ENDPOINTS", "http://127.0.0.1:1")
        .env("QUIVER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("quiver runs");
    assert!(!output.status.success(), "must not start");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "gave up after {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("etcd at http://127.0.0.1:1 is unavailable"),
        "{stderr}"
    );
}
