//! Every `.slt` file, embedded and over the Postgres wire protocol.

use std::sync::Arc;

use quiver_sqllogictests::{slt_files, DbError, EmbeddedDb, PgDb};

/// Runs `test` as the server runs statements: on a runtime of two workers
/// whose threads (and the thread blocking on it) have the server's stack.
fn on_server_stack<F: std::future::Future<Output = ()> + 'static>(test: fn() -> F) {
    let stack = quiver_common::limits::THREAD_STACK_BYTES;
    let thread = std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(stack)
                .enable_all()
                .build()
                .expect("test runtime")
                .block_on(test());
        })
        .expect("test thread");
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn slt_embedded() {
    on_server_stack(slt_embedded_files);
}

async fn slt_embedded_files() {
    for file in slt_files() {
        let dir = tempfile::tempdir().unwrap();
        let instance = EmbeddedDb::open_instance(dir.path()).await;
        let mut runner = sqllogictest::Runner::new(move || {
            let instance = instance.clone();
            async move { Ok::<_, DbError>(EmbeddedDb::new(instance).await) }
        });
        if let Err(e) = runner.run_file_async(&file).await {
            panic!("{} (embedded):\n{e}", file.display());
        }
    }
}

#[test]
fn slt_over_pgwire() {
    on_server_stack(slt_over_pgwire_files);
}

async fn slt_over_pgwire_files() {
    for file in slt_files() {
        let dir = tempfile::tempdir().unwrap();
        let instance = EmbeddedDb::open_instance(dir.path()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handler: quiver_sql::PgHandlerRef = instance.clone();
        let server = tokio::spawn(quiver_servers::pg::serve(listener, handler, async move {
            let _ = stop_rx.await;
        }));
        let url = format!("postgres://slt@{addr}/quiver");
        let mut runner = sqllogictest::Runner::new(move || {
            let url = url.clone();
            async move {
                PgDb::connect(&url).await.map_err(|e| DbError {
                    code: "08000".into(),
                    message: e.to_string(),
                })
            }
        });
        let result = runner.run_file_async(&file).await;
        let _ = stop_tx.send(());
        let _ = server.await;
        drop(Arc::clone(&instance));
        if let Err(e) = result {
            panic!("{} (pgwire):\n{e}", file.display());
        }
    }
}
