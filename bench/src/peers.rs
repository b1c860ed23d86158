//! `peers` mode: peer libraries from PyPI (hnswlib, faiss-cpu, usearch)
//! measured by `bench/peers/run_peer.py` in the virtual environment made by
//! `bench/peers/setup.sh`, one process per peer, on exactly the data and
//! ground truth Quiver is measured on.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::dataset::Dataset;
use crate::error::{BenchError, Result};
use crate::report::Record;

/// Peers the script knows, with the index kind each one stands for.
pub const PEERS: &[(&str, &str)] = &[
    ("hnswlib", "hnsw"),
    ("faiss-hnsw", "hnsw"),
    ("usearch", "hnsw"),
    ("faiss-ivfflat", "ivfflat"),
    ("faiss-flat", "flat"),
];

/// The peers compared with Quiver's `index` kind by default.
pub fn default_peers(index: &str) -> Vec<String> {
    let index = index.to_ascii_lowercase();
    PEERS
        .iter()
        .filter(|(_, kind)| *kind == index)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Checks peer names.
pub fn check_peers(names: &[String]) -> Result<()> {
    for name in names {
        if !PEERS.iter().any(|(p, _)| p == name) {
            let known: Vec<&str> = PEERS.iter().map(|(p, _)| *p).collect();
            return Err(BenchError::Argument(format!(
                "unknown peer `{name}` (known: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// The interpreter of the peers' virtual environment:
/// `$QUIVER_BENCH_PEERS_VENV/bin/python`, else
/// `$HOME/.cache/quiver-bench/peers-venv/bin/python`.
pub fn default_python() -> PathBuf {
    crate::dataset::venv_python("QUIVER_BENCH_PEERS_VENV", "peers-venv")
}

/// The peer script in this checkout.
pub fn default_script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/peers/run_peer.py"))
}

/// How to run the peers.
#[derive(Debug, Clone)]
pub struct PeersConfig {
    pub python: PathBuf,
    pub script: PathBuf,
    pub peers: Vec<String>,
    pub metric: &'static str,
    pub m: usize,
    pub ef_construction: usize,
    pub nlist: usize,
    pub ef: Vec<usize>,
    pub nprobe: Vec<usize>,
    pub threads: usize,
    pub k: usize,
    pub repeat: usize,
}

fn list(values: &[usize]) -> String {
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The script's command line for one peer.
pub fn command(data: &Dataset, cfg: &PeersConfig, peer: &str) -> Command {
    let mut cmd = Command::new(&cfg.python);
    cmd.arg(&cfg.script)
        .args(["--peer", peer])
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
        .args(["--nlist", &cfg.nlist.to_string()])
        .args(["--ef", &list(&cfg.ef)])
        .args(["--nprobe", &list(&cfg.nprobe)])
        .args(["--threads", &cfg.threads.to_string()])
        .args(["--repeat", &cfg.repeat.max(1).to_string()]);
    cmd
}

/// Runs one peer; its progress goes to our stderr, its JSON lines become
/// records.
pub fn run_peer(data: &Dataset, cfg: &PeersConfig, peer: &str) -> Result<Vec<Record>> {
    let fail = |message: String| BenchError::Peer {
        peer: peer.into(),
        message,
    };
    if !cfg.python.exists() {
        return Err(fail(format!(
            "{} not found: run bench/peers/setup.sh (or pass --python)",
            cfg.python.display()
        )));
    }
    eprintln!("peer {peer}: running {}", cfg.script.display());
    let output = command(data, cfg, peer)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| fail(format!("cannot start {}: {e}", cfg.python.display())))?;
    if !output.status.success() {
        return Err(fail(format!("script exited with {}", output.status)));
    }
    parse_lines(&String::from_utf8_lossy(&output.stdout), &data.name).map_err(fail)
}

/// Parses the script's JSON lines (other lines are ignored).
pub fn parse_lines(stdout: &str, dataset: &str) -> std::result::Result<Vec<Record>, String> {
    let mut records = Vec::new();
    for line in stdout.lines().map(str::trim).filter(|l| l.starts_with('{')) {
        let mut record: Record =
            serde_json::from_str(line).map_err(|e| format!("bad JSON line `{line}`: {e}"))?;
        record.dataset = dataset.to_string();
        records.push(record);
    }
    if records.is_empty() {
        return Err("printed no measurements".into());
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_names() {
        assert_eq!(
            default_peers("HNSW"),
            vec!["hnswlib", "faiss-hnsw", "usearch"]
        );
        assert_eq!(default_peers("ivfflat"), vec!["faiss-ivfflat"]);
        assert!(check_peers(&["usearch".into()]).is_ok());
        let err = check_peers(&["annoy".into()]).unwrap_err();
        assert!(err.to_string().contains("unknown peer `annoy`"));
    }

    #[test]
    fn parses_script_output() {
        let out = "building...\n{\"system\":\"hnswlib\",\"index\":\"hnsw\",\"params\":{\"ef\":10},\"recall\":0.8,\"qps\":1000,\"p50_ms\":0.9,\"p99_ms\":1.5}\n";
        let records = parse_lines(out, "ds").unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].dataset, "ds");
        assert!(parse_lines("nothing\n", "ds").is_err());
        assert!(parse_lines("{broken\n", "ds").is_err());
    }
}
