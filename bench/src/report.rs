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
    /// `milvus` mode: the URI pymilvus was pointed at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// `milvus` mode: rows per second of the batched pymilvus inserts of
    /// the base (client-side conversion included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insert_rows_per_s: Option<f64>,
    /// `milvus` mode: query vectors per `search` call. `qps` counts every
    /// query vector; `p50_ms`/`p99_ms` are per call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nq: Option<usize>,
    /// `milvus` mode: the filter expression of the searches (`null`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
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

/// The human table of every record, grouped as given (the client layout
/// of [`client_table`] when the records come from the `milvus` mode).
pub fn table(records: &[Record]) -> String {
    if !records.is_empty() && records.iter().all(|r| r.nq.is_some()) {
        return client_table(records);
    }
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

/// The table of `milvus` mode records: one row per system, sweep point,
/// `nq` and filter; latencies are per `search` call.
pub fn client_table(records: &[Record]) -> String {
    let header = [
        "system",
        "version",
        "build",
        "search",
        "nq",
        "filter",
        "recall",
        "QPS",
        "p50 ms/call",
        "p99 ms/call",
        "build s",
        "insert rows/s",
    ];
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.system.clone(),
                r.version.clone().unwrap_or_else(|| "-".into()),
                r.build_params(),
                r.search_params(),
                r.nq.map_or_else(|| "-".into(), |n| n.to_string()),
                r.filter.clone().unwrap_or_else(|| "-".into()),
                format!("{:.4}", r.recall),
                format!("{:.0}", r.qps),
                format!("{:.3}", r.p50_ms),
                format!("{:.3}", r.p99_ms),
                opt(r.build_s, 2),
                opt(r.insert_rows_per_s, 0),
            ]
        })
        .collect();
    render(&header, &rows)
}

/// `reference`/other ratios of `milvus` mode records: per other system and
/// per (nq, filter) group, QPS at each recall target (see
/// [`qps_at_recall`]) and the best recall of the sweep, then insert rate
/// and build time. A ratio above 1 means `reference` is faster.
pub fn client_ratio_table(reference: &str, records: &[Record]) -> String {
    let mut systems: Vec<&str> = Vec::new();
    let mut groups: Vec<(Option<usize>, Option<String>)> = Vec::new();
    for r in records {
        if r.system != reference && !systems.contains(&r.system.as_str()) {
            systems.push(&r.system);
        }
        let group = (r.nq, r.filter.clone());
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".into(),
    };
    let of = |system: &str, group: &(Option<usize>, Option<String>)| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter(|r| r.system == system && r.nq == group.0 && r.filter == group.1)
            .map(|r| (r.recall, r.qps))
            .collect()
    };
    let best = |curve: &[(f64, f64)]| curve.iter().map(|p| p.0).reduce(f64::max);
    let reference_qps = format!("{reference} QPS");
    let header = [
        "other",
        "nq",
        "filter",
        "recall",
        reference_qps.as_str(),
        "other QPS",
        "ratio",
    ];
    let mut rows = Vec::new();
    for other in &systems {
        for group in &groups {
            let (mine, theirs) = (of(reference, group), of(other, group));
            if mine.is_empty() || theirs.is_empty() {
                continue;
            }
            let (nq, filter) = (
                group.0.map_or_else(|| "-".into(), |n| n.to_string()),
                group.1.clone().unwrap_or_else(|| "-".into()),
            );
            for target in RECALL_TARGETS {
                let (a, b) = (qps_at_recall(&mine, target), qps_at_recall(&theirs, target));
                rows.push(vec![
                    other.to_string(),
                    nq.clone(),
                    filter.clone(),
                    format!("{target:.2}"),
                    opt(a, 0),
                    opt(b, 0),
                    ratio(a, b),
                ]);
            }
            rows.push(vec![
                other.to_string(),
                nq,
                filter,
                "best".into(),
                opt(best(&mine), 4),
                opt(best(&theirs), 4),
                "(recall)".into(),
            ]);
        }
    }
    let mut out = render(&header, &rows);
    let first = |system: &str| records.iter().find(|r| r.system == system);
    let ingest_header = [
        "system",
        "insert rows/s",
        "insert ratio",
        "build s",
        "build ratio",
    ];
    let mut ingest = Vec::new();
    if let Some(me) = first(reference) {
        for system in std::iter::once(&reference).chain(systems.iter()) {
            let Some(r) = first(system) else { continue };
            ingest.push(vec![
                system.to_string(),
                opt(r.insert_rows_per_s, 0),
                ratio(me.insert_rows_per_s, r.insert_rows_per_s),
                opt(r.build_s, 2),
                ratio(r.build_s, me.build_s),
            ]);
        }
    }
    out.push('\n');
    out.push_str(&render(&ingest_header, &ingest));
    let _ = writeln!(
        out,
        "QPS at a recall target: linear interpolation between the two Pareto-optimal sweep points \
         that bracket it (n/a when no point reaches it); best = the best recall of the sweep. \
         Ratios: {reference} QPS / other QPS, {reference} insert rows/s / other's, other's build \
         s / {reference}'s (above 1: {reference} faster). QPS counts query vectors; nq = query \
         vectors per search call."
    );
    out
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

    fn client(
        system: &str,
        ef: usize,
        nq: usize,
        filter: Option<&str>,
        recall: f64,
        qps: f64,
    ) -> Record {
        Record {
            system: system.into(),
            index: "hnsw".into(),
            params: params([("m", Some(16)), ("ef", Some(ef))]),
            recall,
            qps,
            build_s: Some(if system == "quiver" { 2.0 } else { 8.0 }),
            insert_rows_per_s: Some(if system == "quiver" { 30000.0 } else { 10000.0 }),
            nq: Some(nq),
            filter: filter.map(str::to_string),
            ..Record::default()
        }
    }

    #[test]
    fn client_tables() {
        let records = vec![
            client("quiver", 16, 1, None, 0.90, 1000.0),
            client("quiver", 64, 1, None, 0.99, 500.0),
            client("quiver", 16, 1, Some("label == 3"), 0.95, 800.0),
            client("milvus-lite", 16, 1, None, 0.92, 250.0),
            client("milvus-lite", 64, 1, None, 0.995, 100.0),
            client("milvus-lite", 16, 1, Some("label == 3"), 0.40, 900.0),
        ];
        let t = table(&records);
        assert!(
            t.contains("insert rows/s") && t.contains("label == 3"),
            "{t}"
        );
        assert!(!t.contains("QPS all"), "{t}");
        // The new fields travel in the JSON lines, and only when set.
        let v = serde_json::to_value(&records[2]).unwrap();
        assert_eq!(v["nq"], 1);
        assert_eq!(v["filter"], "label == 3");
        assert_eq!(v["insert_rows_per_s"], 30000.0);
        assert!(v.get("uri").is_none());

        let r = client_ratio_table("quiver", &records);
        let at90 = r
            .lines()
            .find(|l| l.starts_with("milvus-lite") && l.contains(" - ") && l.contains("0.90"))
            .unwrap();
        // Quiver 1000 at 0.90; milvus-lite's fastest point above 0.90 is 250.
        assert!(at90.contains("4.00x"), "{r}");
        let filtered = r
            .lines()
            .find(|l| l.contains("label == 3") && l.contains("0.90"))
            .unwrap();
        assert!(filtered.contains("n/a"), "{r}");
        let best = r
            .lines()
            .find(|l| l.contains("label == 3") && l.contains("best"))
            .unwrap();
        assert!(best.contains("0.9500") && best.contains("0.4000"), "{r}");
        // Insert 30000/10000, build 8/2.
        let ingest = r.lines().rfind(|l| l.starts_with("milvus-lite")).unwrap();
        assert!(ingest.contains("3.00x") && ingest.contains("4.00x"), "{r}");
    }
}
