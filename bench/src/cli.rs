//! The command line: one subcommand per mode.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use quiver_index::Metric;

use crate::dataset::{self, Dataset, DatasetOptions};
use crate::error::{BenchError, Result};
use crate::inproc::{self, BuildArgs, IndexConfig};
use crate::milvus::{self, MilvusConfig};
use crate::peers::{self, PeersConfig};
use crate::report::{client_ratio_table, ratio_table, Record};
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

/// Benchmark modes. New targets are new variants here with their own
/// arguments.
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
    /// Milvus-API servers through pymilvus (Quiver's Milvus door,
    /// milvus-lite for a `.db` path, ...) in one run: insert, HNSW build,
    /// ef sweeps at several nq and a filtered search, with ratios against
    /// Quiver at recall targets.
    Milvus(MilvusCmd),
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
    /// Search the table a previous run loaded and indexed (with the same
    /// dataset and index flags) instead of re-creating it: no COPY, no
    /// CREATE INDEX, so A/B runs against several servers measure only the
    /// searches.
    #[arg(long)]
    pub reuse_table: bool,
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

#[derive(Debug, Clone, Args)]
pub struct MilvusCmd {
    #[command(flatten)]
    pub data: DataArgs,
    /// A server to measure, as pymilvus' `MilvusClient(uri=...)` takes it:
    /// `http://127.0.0.1:19530` (Quiver's Milvus door, a Milvus server) or a
    /// local `PATH.db` (milvus-lite, started by pymilvus). Repeat for
    /// several servers; they run one after the other.
    #[arg(long = "uri", required = true)]
    pub uris: Vec<String>,
    /// `system` of each URI's records, in --uri order [default: milvus-lite
    /// for a `.db` path, quiver otherwise]. Ratios are against `quiver`
    /// (else the first URI).
    #[arg(long = "name", value_delimiter = ',')]
    pub names: Vec<String>,
    /// HNSW M.
    #[arg(long, default_value_t = 16)]
    pub m: usize,
    /// HNSW efConstruction.
    #[arg(long, default_value_t = 200)]
    pub ef_construction: usize,
    /// HNSW ef values to sweep (each at least k: Milvus rejects ef < limit).
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    pub ef: Vec<usize>,
    /// Query vectors per search call; one sweep per value.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    pub nq: Vec<usize>,
    /// Rows per insert call.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Collection to (re)create on every server (dropped at the end).
    #[arg(long, default_value = "quiver_bench")]
    pub collection: String,
    /// IDX1 labels of the base rows for the filtered search [default: the
    /// dataset folder's train-labels-idx1-ubyte.gz (fashion-mnist); without
    /// labels every row gets label 0 and the filtered search is skipped].
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// The filtered search is `label == N`.
    #[arg(long, default_value_t = 3)]
    pub filter_label: i64,
    /// Skip the filtered search even when the dataset has labels.
    #[arg(long)]
    pub no_filter: bool,
    /// Token for servers with authentication (`user:password`).
    #[arg(long)]
    pub token: Option<String>,
    /// Python of the milvus venv [default:
    /// $QUIVER_BENCH_MILVUS_VENV/bin/python or
    /// $HOME/.cache/quiver-bench/milvus-venv/bin/python].
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The script [default: bench/milvus/run_milvus.py of this checkout].
    #[arg(long)]
    pub milvus_script: Option<PathBuf>,
}

/// What a run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub records: Vec<Record>,
    /// Text printed after the table (the ratio table in `peers` mode).
    pub extra: String,
    /// Peers or Milvus targets that failed (the others are still
    /// reported).
    pub failures: Vec<BenchError>,
}

impl Cli {
    /// Whether JSON lines were asked for.
    pub fn json(&self) -> bool {
        match &self.mode {
            Mode::Index(c) => c.data.json,
            Mode::Sql(c) => c.data.json,
            Mode::Peers(c) => c.data.json,
            Mode::Milvus(c) => c.data.json,
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
                reuse_table: cmd.reuse_table,
                repeat: cmd.data.repeat,
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
        Mode::Milvus(cmd) => run_milvus(cmd),
    }
}

/// The `milvus` mode.
fn run_milvus(cmd: &MilvusCmd) -> Result<Outcome> {
    let targets = milvus::targets(&cmd.uris, &cmd.names)?;
    let labels = if cmd.no_filter {
        None
    } else {
        cmd.labels
            .clone()
            .or_else(|| milvus::labels_in(&cmd.data.dataset))
    };
    if let Some(path) = labels.as_ref().filter(|p| !p.is_file()) {
        return Err(BenchError::Argument(format!(
            "--labels {}: no such file",
            path.display()
        )));
    }
    let cfg = MilvusConfig {
        python: cmd.python.clone().unwrap_or_else(milvus::default_python),
        script: cmd
            .milvus_script
            .clone()
            .unwrap_or_else(milvus::default_script),
        metric: cmd.data.metric.name(),
        m: cmd.m,
        ef_construction: cmd.ef_construction,
        ef: cmd.ef.clone(),
        nq: cmd.nq.clone(),
        batch: cmd.batch,
        collection: cmd.collection.clone(),
        labels,
        filter_label: cmd.filter_label,
        token: cmd.token.clone(),
        k: cmd.data.k,
        repeat: cmd.data.repeat,
    };
    cfg.check()?;
    let data = cmd.data.load()?;
    let mut outcome = Outcome::default();
    for target in &targets {
        let run = milvus::run_target(&data, &cfg, target);
        outcome.records.extend(run.records);
        if let Some(e) = run.failure {
            eprintln!("{e}");
            outcome.failures.push(e);
        }
    }
    if let Some(reference) = milvus::reference(&targets) {
        if targets.len() > 1 && outcome.records.iter().any(|r| r.system == reference) {
            outcome.extra = format!(
                "\n{reference}/other ratios:\n{}",
                client_ratio_table(reference, &outcome.records)
            );
        }
    }
    Ok(outcome)
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
        // milvus: a URI is required, ef must reach k, names must differ.
        assert!(Cli::try_parse_from(["quiver-bench", "milvus", "--dataset", d]).is_err());
        let cli = parse(&[
            "quiver-bench",
            "milvus",
            "--dataset",
            d,
            "--uri",
            "/tmp/x.db",
            "--ef",
            "8",
        ]);
        assert!(matches!(execute(&cli), Err(BenchError::Argument(_))));
        let cli = parse(&[
            "quiver-bench",
            "milvus",
            "--dataset",
            d,
            "--uri",
            "/tmp/x.db",
            "--uri",
            "/tmp/y.db",
        ]);
        assert!(execute(&cli)
            .unwrap_err()
            .to_string()
            .contains("two targets are named"));
    }

    /// The milvus mode with a stand-in script: the Rust side passes the
    /// data and sweep, collects every target's records (also those of a
    /// target that then fails) and prints the ratios.
    #[test]
    fn milvus_mode_with_a_stand_in_script() {
        if std::process::Command::new("python3")
            .arg("--version")
            .output()
            .is_err()
        {
            return; // no interpreter on this machine
        }
        let dir = dataset();
        let cache = tempfile::tempdir().unwrap();
        let script = cache.path().join("fake_milvus.py");
        std::fs::write(
            &script,
            r#"
import json, sys
a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
assert a["--max-base"] == "300" and a["--queries"] == "10", a
assert a["--ef"] == "16,32" and a["--nq"] == "1,100" and a["--batch"] == "50", a
assert "--labels" not in a, a
speed = 1000 if a["--name"] == "quiver" else 250
for i, ef in enumerate([16, 32]):
    for nq in (1, 100):
        print(json.dumps({"system": a["--name"], "index": "hnsw", "uri": a["--uri"],
            "params": {"m": 16, "ef": ef}, "recall": 0.9 + 0.05 * i, "qps": speed * nq / (i + 1),
            "p50_ms": 1.0, "p99_ms": 2.0, "build_s": 1.0, "insert_rows_per_s": 5000.0,
            "nq": nq, "filter": None}))
if a["--uri"].startswith("http://broken"):
    sys.exit("server said no")
"#,
        )
        .unwrap();
        let (d, c, s) = (
            dir.path().to_str().unwrap(),
            cache.path().to_str().unwrap(),
            script.to_str().unwrap(),
        );
        let cli = parse(&[
            "quiver-bench",
            "milvus",
            "--dataset",
            d,
            "--cache-dir",
            c,
            "--max-base",
            "300",
            "--queries",
            "10",
            "--uri",
            "/tmp/lite.db",
            "--uri",
            "http://127.0.0.1:19530",
            "--uri",
            "http://broken:1",
            "--name",
            ",,broken",
            "--ef",
            "16,32",
            "--batch",
            "50",
            "--python",
            "python3",
            "--milvus-script",
            s,
            "--json",
        ]);
        assert!(cli.json());
        let out = execute(&cli).unwrap();
        assert_eq!(out.records.len(), 12);
        assert_eq!(out.failures.len(), 1);
        assert!(out.failures[0].to_string().contains("broken"));
        let systems: Vec<&str> = out.records.iter().map(|r| r.system.as_str()).collect();
        assert_eq!(systems[0], "milvus-lite");
        assert_eq!(systems[4], "quiver");
        assert!(out
            .records
            .iter()
            .all(|r| r.dataset == out.records[0].dataset));
        assert!(out.extra.contains("quiver/other ratios"), "{}", out.extra);
        assert!(out.extra.contains("4.00x"), "{}", out.extra);
    }
}
