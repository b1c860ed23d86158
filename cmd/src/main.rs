//! The `quiver` binary.
//!
//! * `quiver standalone` — every role in one process on embedded storage
//!   (meta store file, local object storage directory, local WAL).
//! * `quiver playground` — standalone on a temporary directory.
//!
//! Configuration: defaults < `--config FILE` (TOML) < `QUIVER__SECTION__KEY`
//! environment variables < command-line flags.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_sql::{Instance, PgHandlerRef, QueryHandlerRef};

/// jemalloc returns freed memory to the system after its decay time; with
/// glibc's malloc one big statement (a 100,000-item IN list) left resident
/// memory 195 -> 320 MB over 12 runs with no leak (heaptrack: 58 MB live),
/// and the hostile fuzzer's memory bar failed in CI.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    name = "quiver",
    version,
    about = "Quiver: a vector database speaking Postgres and Milvus"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every role in one process on embedded storage.
    Standalone(ServerArgs),
    /// Standalone on a temporary directory, deleted on exit.
    Playground(ServerArgs),
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (meta store, WAL, objects). Default ./quiver-data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Postgres wire protocol listen address. Default 127.0.0.1:5433.
    #[arg(long)]
    pg_addr: Option<String>,
    /// Also serve Postgres clients on the Unix socket DIR/.s.PGSQL.<port>
    /// (`psql -h DIR -p PORT`). Default: none.
    #[arg(long, value_name = "DIR")]
    pg_unix_socket_dir: Option<String>,
    /// Milvus gRPC listen address. Default 127.0.0.1:19530; "" disables the Milvus door.
    #[arg(long)]
    milvus_addr: Option<String>,
    /// Seal growing segments at this many rows (default 100000).
    #[arg(long)]
    seal_rows: Option<usize>,
    /// WAL sync policy: always (default) or never.
    #[arg(long)]
    wal_sync: Option<String>,
}

impl ServerArgs {
    fn load(&self, data_dir_override: Option<PathBuf>) -> anyhow::Result<QuiverConfig> {
        let mut overrides: Vec<(&str, toml::Value)> = Vec::new();
        if let Some(dir) = data_dir_override.or_else(|| self.data_dir.clone()) {
            overrides.push(("data_dir", toml::Value::String(dir.display().to_string())));
        }
        if let Some(addr) = &self.pg_addr {
            overrides.push(("pg.addr", toml::Value::String(addr.clone())));
        }
        if let Some(dir) = &self.pg_unix_socket_dir {
            overrides.push(("pg.unix_socket_dir", toml::Value::String(dir.clone())));
        }
        if let Some(addr) = &self.milvus_addr {
            overrides.push(("milvus.addr", toml::Value::String(addr.clone())));
        }
        if let Some(rows) = self.seal_rows {
            overrides.push(("segment.seal_rows", toml::Value::Integer(rows as i64)));
        }
        if let Some(sync) = &self.wal_sync {
            overrides.push(("wal.sync", toml::Value::String(sync.clone())));
        }
        Ok(QuiverConfig::load(
            self.config.as_deref(),
            std::env::vars(),
            &overrides,
        )?)
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QUIVER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Statements are planned on these threads (and on its blocking
        // threads): the expression limits are sized for this stack.
        .thread_stack_size(quiver_common::limits::THREAD_STACK_BYTES)
        .build()
        .context("starting the runtime")?;
    match cli.command {
        Command::Standalone(args) => {
            let config = args.load(None)?;
            runtime.block_on(run_standalone(config))
        }
        Command::Playground(args) => {
            // A private (0700) directory: the server refuses any other.
            let dir = tempfile::Builder::new()
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir()
                .context("creating a temporary directory")?;
            let config = args.load(Some(dir.path().to_path_buf()))?;
            let result = runtime.block_on(run_standalone(config));
            drop(dir);
            result
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn run_standalone(config: QuiverConfig) -> anyhow::Result<()> {
    // Private files: a data directory group or others may use is refused,
    // as PostgreSQL refuses one; a missing one is created 0700.
    quiver_storage::open_data_dir(&config.data_dir)?;
    tracing::info!(data_dir = %config.data_dir.display(), "opening the engine");
    let engine = Engine::open(config.clone())
        .await
        .context("opening the engine")?;
    let maintenance = engine.spawn_maintenance();
    let instance = Arc::new(Instance::new(engine.clone()));
    // One handler behind both doors: the Milvus door asks the neutral
    // QueryHandler, the Postgres door its extension PgHandler.
    let handler: QueryHandlerRef = instance.clone();
    let pg_handler: PgHandlerRef = instance;
    let listener = tokio::net::TcpListener::bind(&config.pg.addr)
        .await
        .with_context(|| format!("binding the Postgres port {}", config.pg.addr))?;
    tracing::info!(addr = %config.pg.addr, "Postgres wire protocol listening");
    let unix = match config.pg.unix_socket_dir.as_str() {
        "" => None,
        dir => {
            let port = listener.local_addr()?.port();
            let (unix, path) =
                quiver_servers::pg::bind_unix_socket(std::path::Path::new(dir), port)
                    .with_context(|| format!("listening on a Unix socket in {dir}"))?;
            tracing::info!(path = %path.display(), "Postgres wire protocol listening");
            Some((unix, path))
        }
    };
    let (unix, unix_path) = unix.unzip();
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown_signal()));
    let milvus = match config.milvus.addr.as_str() {
        "" => None,
        addr => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the Milvus port {addr}"))?;
            let bound = listener.local_addr()?;
            tracing::info!(addr = %bound, "Milvus gRPC listening");
            eprintln!("quiver milvus door: http://{bound}");
            Some(tokio::spawn(quiver_servers::milvus::serve(
                listener,
                handler,
                quiver_servers::milvus::MilvusServerOptions::from_config(&config.milvus),
                shutdown.clone(),
            )))
        }
    };
    // The line test harnesses wait for.
    eprintln!("quiver standalone ready: postgres://{}", config.pg.addr);
    let options = quiver_servers::pg::PgServerOptions::from_config(&config.pg);
    quiver_servers::pg::serve_on(listener, unix, pg_handler, options, shutdown).await;
    if let Some(path) = unix_path {
        let _ = std::fs::remove_file(path);
    }
    if let Some(milvus) = milvus {
        match milvus.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "the Milvus door ended with an error"),
            Err(e) => tracing::warn!(error = %e, "the Milvus door task failed"),
            Ok(Ok(())) => {}
        }
    }
    tracing::info!("shutting down: flushing segments and closing the WAL");
    engine.shutdown().await.context("graceful shutdown")?;
    maintenance.abort();
    Ok(())
}
