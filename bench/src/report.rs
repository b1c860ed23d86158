//! Measurement records, the human table and the JSON lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::metrics::qps_at_recall;

/// One measurement point: one system, one index configuration, one set of
/// search parameters. Printed as one JSON line with `--json`; the peer
/// script prints the same shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(default)]
    pub dataset: String,
    /// `quiver`, `quiver-sql`, `hnswlib`, `faiss`, `usearch`, ...
    pub system: String,
    /// Index kind as the system calls it (`hnsw`, `ivfflat`, `flat`, ...).
    pub index: String,
    /// Library version (peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Build and search parameters (`m`, `ef_construction`, `ef`, ...).
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Mean recall@k against the ground truth.
    pub recall: f64,
    #[serde(default = "default_k")]
    pub k: usize,
    /// Queries per second, one query at a time on one thread (for `sql`
    /// mode: with all `clients` concurrent connections). For Python peers
    /// this is a Python loop calling the library once per query, so it
    /// includes the interpreter's per-call overhead.
    pub qps: f64,
    /// Python peers only: one batched call on one thread (no per-query
    /// Python overhead), the fair single-thread comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qps_batch_1t: Option<f64>,
    /// All threads: Quiver runs `threads` threads taking queries from a
    /// shared counter; peers make one batched call with `threads` threads.
    #[serde(default)]
    pub qps_all_cores: Option<f64>,
    /// Latency percentiles of the one-query-at-a-time run.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Index build seconds (`sql`: the `CREATE INDEX` statement).
    #[serde(default)]
    pub build_s: Option<f64>,
    /// Bytes held by the index.
    #[serde(default)]
    pub mem_bytes: Option<u64>,
    /// How `mem_bytes` was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_method: Option<String>,
    /// Threads of the all-core run (and of the build, where configurable).
    #[serde(default)]
    pub threads: usize,
    #[serde(default)]
    pub queries: usize,
    #[serde(default)]
    pub base_rows: usize,
    /// `sql` mode: concurrent client connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<usize>,
    /// `sql` mode: rows per second of the binary `COPY` of the base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_rows_per_s: Option<f64>,
}

fn default_k() -> usize {
    10
}

impl Record {
    /// The system plus the index, e.g. `faiss HNSWFlat`.
    pub fn label(&self) -> String {
        format!("{} {}", self.system, self.index)
    }

    /// Search parameters only (those that vary within a sweep).
    pub fn search_params(&self) -> String {
        self.params_matching(|k| SEARCH_KEYS.contains(&k))
    }

    /// Build parameters (constant within a sweep).
    pub fn build_params(&self) -> String {
        self.params_matching(|k| !SEARCH_KEYS.contains(&k))
    }

    fn params_matching(&self, keep: impl Fn(&str) -> bool) -> String {
        let parts: Vec<String> = self
            .params
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(",")
        }
    }
}

/// Parameter names that are search-time knobs.
const SEARCH_KEYS: &[&str] = &["ef", "ef_search", "nprobe", "probes"];

/// Builds a `params` map from `(name, value)` pairs.
pub fn params<const N: usize>(
    pairs: [(&str, Option<usize>); N],
) -> BTreeMap<String, serde_json::Value> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), serde_json::Value::from(v))))
        .collect()
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// The human table of every record, grouped as given.
pub fn table(records: &[Record]) -> String {
    let header = [
        "system",
        "index",
        "build",
        "search",
        "recall",
        "QPS 1t|clients",
        "QPS 1t batch",
        "QPS all",
        "p50 ms",
        "p99 ms",
        "build s",
        "mem MiB",
    ];
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let all = match (r.qps_all_cores, r.clients) {
                (Some(q), _) => format!("{q:.0} ({}t)", r.threads),
                (None, _) => "-".into(),
            };
            let one = match r.clients {
                Some(c) => format!("{:.0} ({c} cl)", r.qps),
                None => format!("{:.0}", r.qps),
            };
            let system = match &r.version {
                Some(v) => format!("{} {v}", r.system),
                None => r.system.clone(),
            };
            vec![
                system,
                r.index.clone(),
                r.build_params(),
                r.search_params(),
                format!("{:.4}", r.recall),
                one,
                opt(r.qps_batch_1t, 0),
                all,
                format!("{:.3}", r.p50_ms),
                format!("{:.3}", r.p99_ms),
                opt(r.build_s, 2),
                opt(r.mem_bytes.map(|b| b as f64 / (1 << 20) as f64), 1),
            ]
        })
        .collect();
    render(&header, &rows)
}

/// Recall targets of the ratio table.
pub const RECALL_TARGETS: [f64; 3] = [0.90, 0.95, 0.99];

/// Quiver/peer QPS ratios at each recall target. QPS at a target is
/// interpolated between sweep points (see [`qps_at_recall`]). Three ratios:
/// single thread against the peer's batched single-thread call, single
/// thread against the peer's per-query Python loop, and all cores against
/// the peer's all-core batched call.
pub fn ratio_table(quiver: &[Record], peers: &[Record]) -> String {
    let curve = |recs: &[&Record], f: &dyn Fn(&Record) -> Option<f64>| -> Vec<(f64, f64)> {
        recs.iter()
            .filter_map(|r| f(r).map(|q| (r.recall, q)))
            .collect()
    };
    let quiver_refs: Vec<&Record> = quiver.iter().collect();
    let q1 = curve(&quiver_refs, &|r| Some(r.qps));
    let qall = curve(&quiver_refs, &|r| r.qps_all_cores);
    let mut labels: Vec<String> = Vec::new();
    for p in peers {
        if !labels.contains(&p.label()) {
            labels.push(p.label());
        }
    }
    let header = [
        "peer",
        "recall",
        "Quiver QPS 1t",
        "peer QPS 1t batch",
        "ratio 1t/batch",
        "peer QPS 1t loop",
        "ratio 1t/loop",
        "Quiver QPS all",
        "peer QPS all",
        "ratio all",
    ];
    let mut rows = Vec::new();
    for label in labels {
        let recs: Vec<&Record> = peers.iter().filter(|p| p.label() == label).collect();
        let batch = curve(&recs, &|r| r.qps_batch_1t);
        let lp = curve(&recs, &|r| Some(r.qps));
        let all = curve(&recs, &|r| r.qps_all_cores);
        for target in RECALL_TARGETS {
            let at = |c: &[(f64, f64)]| qps_at_recall(c, target);
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                _ => "n/a".into(),
            };
            let (qv1, qvall) = (at(&q1), at(&qall));
            let (pb, pl, pa) = (at(&batch), at(&lp), at(&all));
            rows.push(vec![
                label.clone(),
                format!("{target:.2}"),
                opt(qv1, 0),
                opt(pb, 0),
                ratio(qv1, pb),
                opt(pl, 0),
                ratio(qv1, pl),
                opt(qvall, 0),
                opt(pa, 0),
                ratio(qvall, pa),
            ]);
        }
    }
    let mut out = render(&header, &rows);
    let _ = writeln!(
        out,
        "QPS at a recall target: linear interpolation between the two Pareto-optimal sweep points \
         that bracket it (n/a when no point reaches it). 1t batch = one library call for all \
         queries on one thread; 1t loop = one Python call per query."
    );
    out
}

/// Renders rows as an aligned text table.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut first = true;
        for (cell, w) in cells.zip(&widths) {
            if !first {
                out.push_str("  ");
            }
            first = false;
            let _ = write!(out, "{cell:<w$}");
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(&mut out, &mut header.iter().copied());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut out, &mut rule.iter().map(|s| s.as_str()));
    for row in rows {
        line(&mut out, &mut row.iter().map(|s| s.as_str()));
    }
    out
}

/// Prints the records: JSON lines on stdout with `json` (the table then
/// goes to stderr), else the table on stdout.
pub fn emit(records: &[Record], json: bool, extra: &str) {
    let text = format!("{}{extra}", table(records));
    if json {
        for r in records {
            println!(
                "{}",
                serde_json::to_string(r).expect("a record always serializes")
            );
        }
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(system: &str, recall: f64, qps: f64, batch: Option<f64>, all: Option<f64>) -> Record {
        Record {
            system: system.into(),
            index: "hnsw".into(),
            params: params([("m", Some(16)), ("ef", Some(10)), ("nprobe", None)]),
            recall,
            qps,
            qps_batch_1t: batch,
            qps_all_cores: all,
            ..Record::default()
        }
    }

    #[test]
    fn json_shape() {
        let r = rec("quiver", 0.9, 100.0, None, Some(190.0));
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        for key in [
            "dataset",
            "system",
            "index",
            "params",
            "recall",
            "qps",
            "qps_all_cores",
            "p50_ms",
            "p99_ms",
            "build_s",
            "mem_bytes",
            "threads",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["params"], serde_json::json!({"ef": 10, "m": 16}));
        assert!(v.get("qps_batch_1t").is_none());
        // What the peer script prints parses back.
        let line = r#"{"system":"faiss","index":"HNSWFlat","params":{"M":16,"ef":40},
            "recall":0.95,"qps":900.5,"qps_batch_1t":1500,"qps_all_cores":2900,
            "p50_ms":1.1,"p99_ms":2.0,"build_s":12.5,"mem_bytes":200000000,"threads":2}"#;
        let peer: Record = serde_json::from_str(line).unwrap();
        assert_eq!(peer.qps_batch_1t, Some(1500.0));
        assert_eq!(peer.search_params(), "ef=40");
        assert_eq!(peer.build_params(), "M=16");
        assert_eq!(peer.k, 10);
    }

    #[test]
    fn ratios() {
        let quiver = vec![
            rec("quiver", 0.90, 1000.0, None, Some(1900.0)),
            rec("quiver", 1.0, 500.0, None, Some(950.0)),
        ];
        let peers = vec![
            rec("lib", 0.90, 400.0, Some(800.0), Some(1600.0)),
            rec("lib", 0.96, 300.0, Some(600.0), Some(1200.0)),
        ];
        let t = ratio_table(&quiver, &peers);
        let line90 = t.lines().find(|l| l.contains("0.90")).unwrap();
        // 1000/800, 1000/400, 1900/1600
        assert!(line90.contains("1.25x"), "{t}");
        assert!(line90.contains("2.50x"), "{t}");
        assert!(line90.contains("1.19x"), "{t}");
        let line99 = t.lines().find(|l| l.contains("0.99")).unwrap();
        assert!(line99.contains("n/a"), "{t}");
        assert!(table(&quiver).contains("quiver"));
    }
}
