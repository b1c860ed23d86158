//! The command line: one subcommand per mode.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use quiver_index::Metric;

use crate::dataset::{self, Dataset, DatasetOptions};
use crate::error::{BenchError, Result};
use crate::inproc::{self, BuildArgs, IndexConfig};
use crate::peers::{self, PeersConfig};
use crate::report::{ratio_table, Record};
use crate::sql::{self, SqlConfig, SqlIndex};

#[derive(Debug, Parser)]
#[command(
    name = "quiver-bench",
    version,
    about = "Benchmarks Quiver's vector search: recall@k, QPS, latency, build time, memory"
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,
}

/// Benchmark modes. New targets (e.g. `milvus`, pymilvus against a URI)
/// are new variants here with their own arguments.
#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Quiver's indexes in-process (quiver_index::build_index + search).
    Index(IndexCmd),
    /// Through the Postgres door (tokio-postgres): COPY, CREATE INDEX, one
    /// prepared statement on N clients.
    Sql(SqlCmd),
    /// Quiver in-process and peer libraries (hnswlib, faiss, usearch) in
    /// one run, with Quiver/peer QPS ratios at recall targets.
    Peers(PeersCmd),
}

/// Distance metric of the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    L2,
    Ip,
    Cosine,
}

impl MetricArg {
    pub fn metric(self) -> Metric {
        match self {
            MetricArg::L2 => Metric::L2,
            MetricArg::Ip => Metric::NegativeInnerProduct,
            MetricArg::Cosine => Metric::Cosine,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MetricArg::L2 => "l2",
            MetricArg::Ip => "ip",
            MetricArg::Cosine => "cosine",
        }
    }
}

/// Dataset and output options shared by every mode.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Dataset folder: base.fvecs, query.fvecs, groundtruth.ivecs (or a
    /// make_fvecs.py that writes the .fvecs files).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Distance metric (must match the ground truth).
    #[arg(long, value_enum, default_value = "l2")]
    pub metric: MetricArg,
    /// Use only the first N base vectors (ground truth is then recomputed
    /// exactly).
    #[arg(long)]
    pub max_base: Option<usize>,
    /// Use only the first N queries.
    #[arg(long)]
    pub queries: Option<usize>,
    /// Where converted .fvecs and recomputed ground truth go
    /// [default: $HOME/.cache/quiver-bench/<dataset-name>].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Neighbours per query (recall@k).
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Threads for all-core runs, peer builds and ground truth
    /// [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed passes per sweep point (in-process and peers); the fastest
    /// counts. Helps on a busy machine.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Print one JSON object per measurement on stdout (table on stderr).
    #[arg(long)]
    pub json: bool,
    /// Python interpreter for the dataset's make_fvecs.py.
    #[arg(long, default_value = "python3")]
    pub converter_python: String,
}

impl DataArgs {
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }

    pub fn load(&self) -> Result<Dataset> {
        if self.threads == Some(0) {
            return Err(BenchError::Argument("--threads must be at least 1".into()));
        }
        dataset::load(&DatasetOptions {
            dir: self.dataset.clone(),
            cache_dir: self
                .cache_dir
                .clone()
                .unwrap_or_else(|| dataset::default_cache_dir(&self.dataset)),
            metric: self.metric.metric(),
            max_base: self.max_base,
            queries: self.queries,
            k: self.k,
            threads: self.threads(),
            python: self.converter_python.clone(),
        })
    }
}

/// Index build and sweep options.
#[derive(Debug, Clone, Args)]
pub struct IndexArgs {
    /// Index kind: hnsw, flat (ivfflat, ivf_sq8 once quiver-index has them;
    /// in sql mode: hnsw, ivfflat, none).
    #[arg(long, default_value = "hnsw")]
    pub index: String,
    /// HNSW max neighbours per node (2m on layer 0).
    #[arg(long, default_value_t = 16)]
    pub m: usize,
    /// HNSW candidate list size while building.
    #[arg(long, default_value_t = 200)]
    pub ef_construction: usize,
    /// HNSW ef_search values to sweep.
    #[arg(long, value_delimiter = ',', default_value = "10,20,40,80,160")]
    pub ef: Vec<usize>,
    /// IVF lists [default: sqrt(base rows)].
    #[arg(long)]
    pub nlist: Option<usize>,
    /// IVF probes to sweep.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
    pub nprobe: Vec<usize>,
}

impl IndexArgs {
    fn build_args(&self) -> BuildArgs {
        BuildArgs {
            m: self.m,
            ef_construction: self.ef_construction,
            nlist: self.nlist,
        }
    }

    fn nlist(&self, rows: usize) -> usize {
        self.nlist
            .unwrap_or_else(|| ((rows as f64).sqrt().round() as usize).max(1))
    }

    fn check(&self) -> Result<()> {
        if self.ef.is_empty() || self.ef.contains(&0) {
            return Err(BenchError::Argument(
                "--ef values must be at least 1".into(),
            ));
        }
        if self.nprobe.is_empty() || self.nprobe.contains(&0) {
            return Err(BenchError::Argument(
                "--nprobe values must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
pub struct IndexCmd {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub index: IndexArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SqlCmd {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub index: IndexArgs,
    /// Postgres connection URL.
    #[arg(long, default_value = "postgres://quiver@127.0.0.1:5433/quiver")]
    pub url: String,
    /// Concurrent client connections running queries.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Table to (re)create.
    #[arg(long, default_value = "bench_items")]
    pub table: String,
    /// `system` of the records (e.g. `postgres-pgvector` for a run against
    /// PostgreSQL).
    #[arg(long, default_value = "quiver-sql")]
    pub system: String,
}

#[derive(Debug, Clone, Args)]
pub struct PeersCmd {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub index: IndexArgs,
    /// Peers to run [default: those of the index kind: hnsw → hnswlib,
    /// faiss-hnsw, usearch; ivfflat → faiss-ivfflat; flat → faiss-flat].
    #[arg(long, value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Python of the peers' venv [default:
    /// $QUIVER_BENCH_PEERS_VENV/bin/python or
    /// $HOME/.cache/quiver-bench/peers-venv/bin/python].
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The peer script [default: bench/peers/run_peer.py of this checkout].
    #[arg(long)]
    pub peer_script: Option<PathBuf>,
}

/// What a run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub records: Vec<Record>,
    /// Text printed after the table (the ratio table in `peers` mode).
    pub extra: String,
    /// Peers that failed (the others are still reported).
    pub failures: Vec<BenchError>,
}

impl Cli {
    /// Whether JSON lines were asked for.
    pub fn json(&self) -> bool {
        match &self.mode {
            Mode::Index(c) => c.data.json,
            Mode::Sql(c) => c.data.json,
            Mode::Peers(c) => c.data.json,
        }
    }
}

fn index_config(data: &Dataset, args: &DataArgs, index: &IndexArgs) -> Result<IndexConfig> {
    index.check()?;
    let kind = inproc::parse_index_kind(&index.index)?;
    Ok(IndexConfig {
        kind,
        build: inproc::BuildArgs {
            nlist: Some(index.nlist(data.base_rows())),
            ..index.build_args()
        },
        sweep: inproc::sweep(kind, &index.ef, &index.nprobe),
        threads: args.threads(),
        k: args.k,
        repeat: args.repeat,
    })
}

/// Runs the mode.
pub fn execute(cli: &Cli) -> Result<Outcome> {
    match &cli.mode {
        Mode::Index(cmd) => {
            // Check the arguments before the (possibly slow) dataset load.
            cmd.index.check()?;
            inproc::parse_index_kind(&cmd.index.index)?;
            let data = cmd.data.load()?;
            let cfg = index_config(&data, &cmd.data, &cmd.index)?;
            Ok(Outcome {
                records: inproc::run(&data, &cfg)?,
                ..Outcome::default()
            })
        }
        Mode::Sql(cmd) => {
            cmd.index.check()?;
            let index = SqlIndex::parse(&cmd.index.index)?;
            if cmd.clients == 0 {
                return Err(BenchError::Argument("--clients must be at least 1".into()));
            }
            let data = cmd.data.load()?;
            let cfg = SqlConfig {
                url: cmd.url.clone(),
                table: cmd.table.clone(),
                index,
                m: cmd.index.m,
                ef_construction: cmd.index.ef_construction,
                nlist: cmd.index.nlist(data.base_rows()),
                ef: cmd.index.ef.clone(),
                nprobe: cmd.index.nprobe.clone(),
                clients: cmd.clients,
                k: cmd.data.k,
                system: cmd.system.clone(),
            };
            Ok(Outcome {
                records: sql::run(&data, &cfg)?,
                ..Outcome::default()
            })
        }
        Mode::Peers(cmd) => {
            cmd.index.check()?;
            inproc::parse_index_kind(&cmd.index.index)?;
            let names = if cmd.peers.is_empty() {
                peers::default_peers(&cmd.index.index)
            } else {
                cmd.peers.clone()
            };
            peers::check_peers(&names)?;
            if names.is_empty() {
                return Err(BenchError::Argument(format!(
                    "no peer for index kind `{}`: pass --peers",
                    cmd.index.index
                )));
            }
            let data = cmd.data.load()?;
            let cfg = index_config(&data, &cmd.data, &cmd.index)?;
            let quiver = inproc::run(&data, &cfg)?;
            let peer_cfg = PeersConfig {
                python: cmd.python.clone().unwrap_or_else(peers::default_python),
                script: cmd
                    .peer_script
                    .clone()
                    .unwrap_or_else(peers::default_script),
                peers: names.clone(),
                metric: cmd.data.metric.name(),
                m: cmd.index.m,
                ef_construction: cmd.index.ef_construction,
                nlist: cmd.index.nlist(data.base_rows()),
                ef: cmd.index.ef.clone(),
                nprobe: cmd.index.nprobe.clone(),
                threads: cmd.data.threads(),
                k: cmd.data.k,
                repeat: cmd.data.repeat,
            };
            let mut outcome = Outcome::default();
            let mut peer_records = Vec::new();
            for name in &names {
                match peers::run_peer(&data, &peer_cfg, name) {
                    Ok(records) => peer_records.extend(records),
                    Err(e) => {
                        eprintln!("{e}");
                        outcome.failures.push(e);
                    }
                }
            }
            outcome.extra = format!(
                "\nQuiver/peer QPS ratios ({} threads for 'all'):\n{}",
                cmd.data.threads(),
                ratio_table(&quiver, &peer_records)
            );
            outcome.records = quiver;
            outcome.records.extend(peer_records);
            Ok(outcome)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vecs::write_fvecs;
    use quiver_index::eval::clustered_vectors;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    /// A small dataset: 600 clustered 8-d vectors, 30 queries, no ground
    /// truth file (so it is computed).
    fn dataset() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let base = clustered_vectors(600, 8, 12, 1.0, 7);
        let queries = clustered_vectors(30, 8, 12, 1.0, 8);
        write_fvecs(&dir.path().join("base.fvecs"), 8, &base).unwrap();
        write_fvecs(&dir.path().join("query.fvecs"), 8, &queries).unwrap();
        dir
    }

    #[test]
    fn index_mode_end_to_end() {
        let dir = dataset();
        let cache = tempfile::tempdir().unwrap();
        let (d, c) = (dir.path().to_str().unwrap(), cache.path().to_str().unwrap());
        let cli = parse(&[
            "quiver-bench",
            "index",
            "--dataset",
            d,
            "--cache-dir",
            c,
            "--index",
            "hnsw",
            "--m",
            "8",
            "--ef-construction",
            "64",
            "--ef",
            "10,100",
            "--threads",
            "2",
            "--json",
        ]);
        assert!(cli.json());
        let out = execute(&cli).unwrap();
        assert_eq!(out.records.len(), 2);
        let best = &out.records[1];
        assert_eq!(best.system, "quiver");
        assert_eq!(best.search_params(), "ef=100");
        assert!(best.recall > 0.9, "{best:?}");
        assert!(best.qps > 0.0 && best.qps_all_cores.unwrap() > 0.0);
        assert!(best.p99_ms >= best.p50_ms);
        assert!(best.mem_bytes.unwrap() > 600 * 8 * 4);
        assert_eq!((best.queries, best.base_rows, best.threads), (30, 600, 2));

        // FLAT is exact, also on a cut base with a subset of the queries.
        let cli = parse(&[
            "quiver-bench",
            "index",
            "--dataset",
            d,
            "--cache-dir",
            c,
            "--index",
            "flat",
            "--max-base",
            "300",
            "--queries",
            "10",
        ]);
        let out = execute(&cli).unwrap();
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].recall, 1.0);
        assert_eq!(out.records[0].base_rows, 300);
        assert_eq!(out.records[0].queries, 10);
    }

    #[test]
    fn argument_errors() {
        let dir = dataset();
        let d = dir.path().to_str().unwrap();
        let cli = parse(&["quiver-bench", "index", "--dataset", d, "--index", "annoy"]);
        let err = execute(&cli).unwrap_err();
        assert!(
            err.to_string().contains("unknown index kind `annoy`"),
            "{err}"
        );
        let cli = parse(&["quiver-bench", "index", "--dataset", d, "--ef", "0"]);
        assert!(matches!(execute(&cli), Err(BenchError::Argument(_))));
        let cli = parse(&["quiver-bench", "sql", "--dataset", d, "--index", "lsh"]);
        assert!(execute(&cli).is_err());
        assert!(
            Cli::try_parse_from(["quiver-bench", "index", "--dataset", d, "--metric", "l3"])
                .is_err()
        );
        let cli = parse(&["quiver-bench", "peers", "--dataset", d, "--peers", "annoy"]);
        assert!(execute(&cli)
            .unwrap_err()
            .to_string()
            .contains("unknown peer"));
    }
}
