//! `index` mode: Quiver's indexes in-process, through
//! `quiver_index::build_index` and `VectorIndex::search`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use quiver_index::{
    build_index, BuildOptions, ContiguousVectors, IndexKind, SearchParams, VectorIndex,
};

use crate::dataset::Dataset;
use crate::error::{BenchError, Result};
use crate::metrics::{mean_recall, percentile_ms};
use crate::report::{params, Record};

/// Index kinds known to the tool, for messages.
pub const KNOWN_KINDS: &str = "flat, hnsw, ivfflat, ivf_sq8";

/// Maps an `--index` name to a `quiver-index` kind. Adding a kind that
/// `quiver-index` gained is a line here (plus its build option, e.g.
/// `nlist`, in [`build_options`]); [`sweep`] and [`record_params`] already
/// treat every kind other than FLAT and HNSW as an IVF kind (`nprobe`).
pub fn parse_index_kind(name: &str) -> Result<IndexKind> {
    match name.to_ascii_lowercase().as_str() {
        "flat" => Ok(IndexKind::Flat),
        "hnsw" => Ok(IndexKind::Hnsw),
        "ivfflat" | "ivf_flat" => Ok(IndexKind::IvfFlat),
        "ivf_sq8" | "ivfsq8" => Ok(IndexKind::IvfSq8),
        _ => Err(BenchError::UnknownIndex(
            name.to_string(),
            KNOWN_KINDS.to_string(),
        )),
    }
}

/// Build parameters given on the command line.
#[derive(Debug, Clone)]
pub struct BuildArgs {
    pub m: usize,
    pub ef_construction: usize,
    pub nlist: Option<usize>,
}

/// `quiver-index` build options from the command line; fields the tool
/// does not set keep their defaults.
pub fn build_options(args: &BuildArgs) -> BuildOptions {
    BuildOptions {
        m: args.m,
        ef_construction: args.ef_construction,
        nlist: args.nlist.unwrap_or(BuildOptions::default().nlist),
        threads: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        ..BuildOptions::default()
    }
}

/// The search parameters to sweep for `kind`: one point per `ef` for HNSW,
/// one per `nprobe` for IVF kinds, a single point for FLAT.
pub fn sweep(kind: IndexKind, ef: &[usize], nprobe: &[usize]) -> Vec<SearchParams> {
    match kind {
        IndexKind::Flat => vec![SearchParams::default()],
        IndexKind::Hnsw => ef
            .iter()
            .map(|&e| SearchParams {
                ef: Some(e),
                ..SearchParams::default()
            })
            .collect(),
        IndexKind::IvfFlat => nprobe
            .iter()
            .map(|&p| SearchParams {
                nprobe: Some(p),
                ..SearchParams::default()
            })
            .collect(),
        // The quantized index re-ranks 2k candidates with the stored vectors
        // (as the engine does with a segment's rows).
        IndexKind::IvfSq8 => nprobe
            .iter()
            .map(|&p| SearchParams {
                nprobe: Some(p),
                rerank: Some(SQ8_RERANK),
                ..SearchParams::default()
            })
            .collect(),
    }
}

/// Re-rank multiplier of IVF_SQ8 sweeps.
pub const SQ8_RERANK: usize = 2;

/// One search, handing the raw vectors to indexes that re-rank with them.
fn search_one(
    index: &dyn VectorIndex,
    raw: &ContiguousVectors<'_>,
    query: &[f32],
    k: usize,
    point: &SearchParams,
) -> Vec<quiver_index::Neighbor> {
    index.search_with_raw(query, k, point, None, Some(raw))
}

/// The `params` of a record: build parameters that matter for `kind` plus
/// the search parameters of the point.
pub fn record_params(
    kind: IndexKind,
    build: &BuildArgs,
    point: &SearchParams,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    match kind {
        IndexKind::Flat => params([]),
        IndexKind::Hnsw => params([
            ("m", Some(build.m)),
            ("ef_construction", Some(build.ef_construction)),
            ("ef", point.ef),
        ]),
        _ => params([
            ("nlist", build.nlist),
            ("nprobe", point.nprobe),
            ("rerank", point.rerank),
        ]),
    }
}

/// What to run in `index` mode.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    pub kind: IndexKind,
    pub build: BuildArgs,
    pub sweep: Vec<SearchParams>,
    /// Threads of the all-core run.
    pub threads: usize,
    pub k: usize,
    /// Timed passes per point; the fastest counts.
    pub repeat: usize,
}

/// Builds the index and measures every sweep point.
pub fn run(data: &Dataset, cfg: &IndexConfig) -> Result<Vec<Record>> {
    eprintln!(
        "quiver: building {} over {} x {} ...",
        cfg.kind.name(),
        data.base_rows(),
        data.dim
    );
    let start = Instant::now();
    let index = build_index(
        cfg.kind,
        data.metric,
        data.dim,
        &data.base,
        &build_options(&cfg.build),
    )?;
    let build_s = start.elapsed().as_secs_f64();
    let mem_bytes = index.memory_bytes() as u64;
    eprintln!("quiver: built in {build_s:.2} s");
    let mut records = Vec::new();
    for point in &cfg.sweep {
        let m = measure(index.as_ref(), data, point, cfg.k, cfg.threads, cfg.repeat);
        let record = Record {
            dataset: data.name.clone(),
            system: "quiver".into(),
            index: cfg.kind.name().into(),
            params: record_params(cfg.kind, &cfg.build, point),
            recall: m.recall,
            k: cfg.k,
            qps: m.qps,
            qps_all_cores: Some(m.qps_all),
            p50_ms: m.p50_ms,
            p99_ms: m.p99_ms,
            build_s: Some(build_s),
            mem_bytes: Some(mem_bytes),
            mem_method: Some("VectorIndex::memory_bytes".into()),
            threads: cfg.threads,
            queries: data.query_rows(),
            base_rows: data.base_rows(),
            ..Record::default()
        };
        eprintln!(
            "quiver: {} recall {:.4} qps {:.0} all {:.0}",
            record.search_params(),
            m.recall,
            m.qps,
            m.qps_all
        );
        records.push(record);
    }
    Ok(records)
}

/// Results of one sweep point.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub recall: f64,
    pub qps: f64,
    pub qps_all: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs every query on one thread (timing each), then on `threads` threads
/// taking queries from a shared counter; each `repeat` times, keeping the
/// fastest pass of each (latency percentiles from the fastest one-thread
/// pass).
pub fn measure(
    index: &dyn VectorIndex,
    data: &Dataset,
    point: &SearchParams,
    k: usize,
    threads: usize,
    repeat: usize,
) -> Measurement {
    let nq = data.query_rows();
    let raw = ContiguousVectors::new(data.dim, &data.base).expect("base rows match dim");
    // Warm-up: caches and page faults, not measured.
    for i in 0..nq.min(100) {
        search_one(index, &raw, data.query(i), k, point);
    }
    let mut best: Option<(Duration, Vec<Duration>)> = None;
    let mut recall = 0.0;
    for pass in 0..repeat.max(1) {
        let mut latencies = Vec::with_capacity(nq);
        let mut results = Vec::with_capacity(nq);
        let start = Instant::now();
        for i in 0..nq {
            let t = Instant::now();
            let got = search_one(index, &raw, data.query(i), k, point);
            latencies.push(t.elapsed());
            results.push(got.into_iter().map(|n| n.row).collect::<Vec<u32>>());
        }
        let wall = start.elapsed();
        if pass == 0 {
            recall = mean_recall(&data.truth, &results, k);
        }
        if best.as_ref().is_none_or(|(b, _)| wall < *b) {
            best = Some((wall, latencies));
        }
    }
    let (single, latencies) = best.expect("at least one pass");
    let all = (0..repeat.max(1))
        .map(|_| run_parallel(index, data, point, k, threads))
        .min()
        .expect("at least one pass");
    Measurement {
        recall,
        qps: nq as f64 / single.as_secs_f64(),
        qps_all: nq as f64 / all.as_secs_f64(),
        p50_ms: percentile_ms(&latencies, 50.0),
        p99_ms: percentile_ms(&latencies, 99.0),
    }
}

/// Wall time of all queries on `threads` threads sharing a counter.
fn run_parallel(
    index: &dyn VectorIndex,
    data: &Dataset,
    point: &SearchParams,
    k: usize,
    threads: usize,
) -> Duration {
    let nq = data.query_rows();
    let raw = ContiguousVectors::new(data.dim, &data.base).expect("base rows match dim");
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= nq {
                    break;
                }
                std::hint::black_box(search_one(index, &raw, data.query(i), k, point));
            });
        }
    });
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(parse_index_kind("HNSW").unwrap(), IndexKind::Hnsw);
        assert_eq!(parse_index_kind("flat").unwrap(), IndexKind::Flat);
        let err = parse_index_kind("annoy").unwrap_err();
        assert!(matches!(err, BenchError::UnknownIndex(..)));
        assert!(err.to_string().contains("unknown index kind `annoy`"));
        assert!(matches!(
            parse_index_kind("ivf_sq8"),
            Err(BenchError::UnsupportedIndex { .. }) | Ok(_)
        ));
        assert_eq!(sweep(IndexKind::Hnsw, &[10, 20], &[]).len(), 2);
        assert_eq!(sweep(IndexKind::Flat, &[10, 20], &[1]).len(), 1);
    }
}
