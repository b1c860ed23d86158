//! Files are private: `quiver standalone` creates its data directory 0700
//! and every file in it 0600 (meta store, WAL segments, segment and index
//! objects and their directories), whatever the umask it runs under, and
//! refuses to start on a data directory group or others may use.

mod support;

use support::{connect, free_port, KillOnDrop};

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn command(dir: &Path, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quiver"));
    command
        .args(["standalone", "--data-dir"])
        .arg(dir)
        .args([
            "--pg-addr",
            &format!("127.0.0.1:{port}"),
            "--seal-rows",
            "20",
            "--milvus-addr",
            "",
        ])
        .env("QUIVER__SEGMENT__MAINTENANCE_INTERVAL_MS", "100")
        .env("QUIVER_LOG", "warn");
    command
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// (files, directories) under `root`, each checked 0600 / 0700.
fn assert_private_tree(root: &Path) -> (usize, usize) {
    let (mut files, mut dirs) = (0, 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "directory {}", path.display());
                dirs += 1;
                stack.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "file {}", path.display());
                files += 1;
            }
        }
    }
    (files, dirs)
}

/// Runs `quiver` under umask 022 (the usual default, which would make
/// files 0644), by way of `sh -c 'umask 022; exec ...'`.
fn under_umask_022(command: Command) -> Command {
    let program = command.get_program().to_owned();
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("umask 022; exec \"$0\" \"$@\"")
        .arg(program)
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            sh.env(key, value);
        }
    }
    sh
}

#[tokio::test]
async fn everything_created_in_the_data_dir_is_private() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("fresh");
    let port = free_port();
    let mut server = KillOnDrop(
        under_umask_022(command(&dir, port))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("quiver starts"),
    );
    let client = connect(port).await;
    client
        .batch_execute("CREATE TABLE items (id bigint primary key, v vector(4), note text)")
        .await
        .unwrap();
    // Enough rows to seal and flush several segments (seal at 20 rows).
    for batch in 0..5 {
        let values: Vec<String> = (0..30)
            .map(|i| {
                let id = batch * 30 + i;
                format!("({id}, '[{id},1,2,3]', 'row {id}')")
            })
            .collect();
        client
            .batch_execute(&format!("INSERT INTO items VALUES {}", values.join(", ")))
            .await
            .unwrap();
    }
    client
        .batch_execute("CREATE INDEX items_v ON items USING hnsw (v vector_l2_ops)")
        .await
        .unwrap();
    // Wait for the background flush to write segment objects.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let objects = walk_files(&dir.join("objects"));
        if objects >= 2 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = client
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap();
    assert_eq!(rows.get::<_, i64>(0), 150);
    drop(client);
    // SAFETY: kill(2) on a child's pid touches no memory of this process.
    unsafe {
        libc::kill(server.0.id() as i32, libc::SIGTERM);
    }
    let status = server.0.wait().unwrap();
    assert!(status.success(), "graceful shutdown: {status}");

    assert_eq!(mode(&dir), 0o700, "the data directory");
    let (files, dirs) = assert_private_tree(&dir);
    assert!(dir.join("meta.redb").is_file());
    assert!(walk_files(&dir.join("wal")) >= 1, "WAL segments");
    assert!(
        walk_files(&dir.join("objects")) >= 2,
        "segment and index objects"
    );
    assert!(files >= 4 && dirs >= 3, "{files} files, {dirs} directories");
}

fn walk_files(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { walk_files(&p) } else { 1 })
        .sum()
}

#[test]
fn a_data_dir_readable_by_others_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = command(&dir, free_port())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("quiver runs");
    assert!(!output.status.success(), "the server must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "data directory \"{}\" has invalid permissions (0755)",
            dir.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("chmod 700"), "{stderr}");
    // Nothing was written into it.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    assert_eq!(mode(&dir), 0o755, "the directory is left as it was");
}
