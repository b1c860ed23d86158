//! A storage backend this build does not have (`etcd`, `s3`,
//! `object_store`) stops `quiver standalone` at startup with an error naming
//! the setting, before anything is created.

mod support;

use std::process::{Command, Stdio};

use support::free_port;

#[test]
fn unavailable_storage_backends_refuse_to_start() {
    let cases = [
        ("QUIVER__META__BACKEND", "etcd", "meta.backend"),
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
