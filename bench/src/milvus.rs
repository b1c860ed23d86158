//! `milvus` mode: any server speaking the Milvus API (Quiver's Milvus door,
//! milvus-lite, a Milvus standalone) driven by pymilvus, one
//! `bench/milvus/run_milvus.py` process per URI in the virtual environment
//! made by `bench/milvus/setup.sh`, on exactly the data and ground truth the
//! other modes use. Each target creates a collection, inserts the base in
//! batches, builds an HNSW index and sweeps ef for every `nq` (query
//! vectors per search call) and, when the dataset has labels, a filtered
//! search; the records are then compared with a reference system's at
//! fixed recall targets.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::dataset::Dataset;
use crate::error::{BenchError, Result};
use crate::peers::parse_lines;
use crate::report::Record;

/// The base labels of a dataset folder: Fashion-MNIST's training labels,
/// whose order is the order of its base rows (the 60,000 training images).
pub const LABELS_FILE: &str = "train-labels-idx1-ubyte.gz";

/// The system name of a URI: `milvus-lite` for a local `.db` file (which
/// pymilvus serves with milvus-lite), `quiver` otherwise.
pub fn system_name(uri: &str) -> String {
    if uri.ends_with(".db") {
        "milvus-lite".into()
    } else {
        "quiver".into()
    }
}

/// One server to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub uri: String,
    /// `system` of its records.
    pub name: String,
}

/// Pairs URIs with names: the i-th name belongs to the i-th URI, missing
/// names come from [`system_name`]. Names must differ.
pub fn targets(uris: &[String], names: &[String]) -> Result<Vec<Target>> {
    if uris.is_empty() {
        return Err(BenchError::Argument("pass at least one --uri".into()));
    }
    if names.len() > uris.len() {
        return Err(BenchError::Argument(format!(
            "{} --name values for {} --uri values",
            names.len(),
            uris.len()
        )));
    }
    let targets: Vec<Target> = uris
        .iter()
        .enumerate()
        .map(|(i, uri)| Target {
            uri: uri.clone(),
            name: names
                .get(i)
                .filter(|n| !n.is_empty())
                .cloned()
                .unwrap_or_else(|| system_name(uri)),
        })
        .collect();
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].iter().any(|o| o.name == t.name) {
            return Err(BenchError::Argument(format!(
                "two targets are named `{}`: pass --name for each --uri",
                t.name
            )));
        }
    }
    Ok(targets)
}

/// The system the others are compared with: `quiver` when a target has
/// that name, else the first target.
pub fn reference(targets: &[Target]) -> Option<&str> {
    targets
        .iter()
        .find(|t| t.name == "quiver")
        .or(targets.first())
        .map(|t| t.name.as_str())
}

/// The labels file of a dataset folder, if it has one.
pub fn labels_in(dir: &Path) -> Option<PathBuf> {
    Some(dir.join(LABELS_FILE)).filter(|p| p.is_file())
}

/// The interpreter of the milvus virtual environment:
/// `$QUIVER_BENCH_MILVUS_VENV/bin/python`, else
/// `$HOME/.cache/quiver-bench/milvus-venv/bin/python`.
pub fn default_python() -> PathBuf {
    crate::dataset::venv_python("QUIVER_BENCH_MILVUS_VENV", "milvus-venv")
}

/// The script in this checkout.
pub fn default_script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/milvus/run_milvus.py"))
}

/// How to run the targets.
#[derive(Debug, Clone)]
pub struct MilvusConfig {
    pub python: PathBuf,
    pub script: PathBuf,
    pub metric: &'static str,
    pub m: usize,
    pub ef_construction: usize,
    pub ef: Vec<usize>,
    /// Query vectors per search call, one sweep per value.
    pub nq: Vec<usize>,
    /// Rows per insert call.
    pub batch: usize,
    pub collection: String,
    /// Labels of the base rows (filtered search only with them).
    pub labels: Option<PathBuf>,
    pub filter_label: i64,
    pub token: Option<String>,
    pub k: usize,
    pub repeat: usize,
}

impl MilvusConfig {
    /// Checks the sweep (Milvus wants ef ≥ limit).
    pub fn check(&self) -> Result<()> {
        if self.ef.is_empty() || self.ef.iter().any(|&ef| ef < self.k) {
            return Err(BenchError::Argument(format!(
                "--ef values must be at least k = {} (Milvus rejects ef < limit)",
                self.k
            )));
        }
        if self.nq.is_empty() || self.nq.contains(&0) {
            return Err(BenchError::Argument(
                "--nq values must be at least 1".into(),
            ));
        }
        if self.batch == 0 {
            return Err(BenchError::Argument("--batch must be at least 1".into()));
        }
        if self.collection.is_empty() {
            return Err(BenchError::Argument(
                "--collection must not be empty".into(),
            ));
        }
        Ok(())
    }
}

fn list(values: &[usize]) -> String {
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The script's command line for one target.
pub fn command(data: &Dataset, cfg: &MilvusConfig, target: &Target) -> Command {
    let mut cmd = Command::new(&cfg.python);
    cmd.arg(&cfg.script)
        .args(["--uri", &target.uri])
        .args(["--name", &target.name])
        .arg("--base")
        .arg(&data.base_file)
        .args(["--max-base", &data.base_rows().to_string()])
        .arg("--query")
        .arg(&data.query_file)
        .args(["--queries", &data.query_rows().to_string()])
        .arg("--groundtruth")
        .arg(&data.truth_file)
        .args(["--metric", cfg.metric])
        .args(["--k", &cfg.k.to_string()])
        .args(["--m", &cfg.m.to_string()])
        .args(["--ef-construction", &cfg.ef_construction.to_string()])
        .args(["--ef", &list(&cfg.ef)])
        .args(["--nq", &list(&cfg.nq)])
        .args(["--batch", &cfg.batch.to_string()])
        .args(["--collection", &cfg.collection])
        .args(["--filter-label", &cfg.filter_label.to_string()])
        .args(["--repeat", &cfg.repeat.max(1).to_string()]);
    if let Some(labels) = &cfg.labels {
        cmd.arg("--labels").arg(labels);
    }
    if let Some(token) = &cfg.token {
        cmd.args(["--token", token]);
    }
    cmd
}

/// What one target produced: its records, and why it failed if it did
/// (the script measures every point it can, so a failed run may still
/// have records).
#[derive(Debug, Default)]
pub struct TargetRun {
    pub records: Vec<Record>,
    pub failure: Option<BenchError>,
}

/// Runs one target; its progress goes to our stderr, its JSON lines become
/// records.
pub fn run_target(data: &Dataset, cfg: &MilvusConfig, target: &Target) -> TargetRun {
    let fail = |message: String| BenchError::Milvus {
        system: target.name.clone(),
        uri: target.uri.clone(),
        message,
    };
    // A bare command name (`python3`) is looked up on PATH when started.
    if cfg.python.components().count() > 1 && !cfg.python.exists() {
        return TargetRun {
            records: Vec::new(),
            failure: Some(fail(format!(
                "{} not found: run bench/milvus/setup.sh (or pass --python)",
                cfg.python.display()
            ))),
        };
    }
    eprintln!(
        "{} ({}): running {}",
        target.name,
        target.uri,
        cfg.script.display()
    );
    let output = match command(data, cfg, target).stderr(Stdio::inherit()).output() {
        Ok(output) => output,
        Err(e) => {
            return TargetRun {
                records: Vec::new(),
                failure: Some(fail(format!("cannot start {}: {e}", cfg.python.display()))),
            }
        }
    };
    let parsed = parse_lines(&String::from_utf8_lossy(&output.stdout), &data.name);
    match (output.status.success(), parsed) {
        (true, Ok(records)) => TargetRun {
            records,
            failure: None,
        },
        (true, Err(e)) => TargetRun {
            records: Vec::new(),
            failure: Some(fail(e)),
        },
        (false, parsed) => TargetRun {
            records: parsed.unwrap_or_default(),
            failure: Some(fail(format!(
                "script exited with {} (its stderr above says why)",
                output.status
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_and_reference() {
        assert_eq!(system_name("/tmp/x.db"), "milvus-lite");
        assert_eq!(system_name("http://127.0.0.1:19530"), "quiver");
        let t = targets(&strings(&["/tmp/a.db", "http://127.0.0.1:19530"]), &[]).unwrap();
        assert_eq!(
            t.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["milvus-lite", "quiver"]
        );
        assert_eq!(reference(&t), Some("quiver"));
        let t = targets(
            &strings(&["http://a:1", "http://b:2"]),
            &strings(&["milvus"]),
        )
        .unwrap();
        assert_eq!(
            (t[0].name.as_str(), t[1].name.as_str()),
            ("milvus", "quiver")
        );
        let t = targets(&strings(&["/a.db"]), &strings(&["lite"])).unwrap();
        assert_eq!(reference(&t), Some("lite"));

        let err = targets(&strings(&["/a.db", "/b.db"]), &[]).unwrap_err();
        assert!(err.to_string().contains("two targets are named"), "{err}");
        assert!(targets(&[], &[]).is_err());
        assert!(targets(&strings(&["/a.db"]), &strings(&["x", "y"])).is_err());
    }

    #[test]
    fn checks_the_sweep() {
        let cfg = MilvusConfig {
            python: "python3".into(),
            script: default_script(),
            metric: "l2",
            m: 16,
            ef_construction: 200,
            ef: vec![16, 32],
            nq: vec![1, 100],
            batch: 1000,
            collection: "c".into(),
            labels: None,
            filter_label: 3,
            token: None,
            k: 10,
            repeat: 1,
        };
        assert!(cfg.check().is_ok());
        let low_ef = MilvusConfig {
            ef: vec![8, 16],
            ..cfg.clone()
        };
        assert!(low_ef.check().unwrap_err().to_string().contains("ef"));
        let zero_nq = MilvusConfig {
            nq: vec![0],
            ..cfg.clone()
        };
        assert!(zero_nq.check().is_err());
        let zero_batch = MilvusConfig { batch: 0, ..cfg };
        assert!(zero_batch.check().is_err());
        assert!(default_script().is_file());
    }
}
