//! Helpers for recall tests and benchmark tools: deterministic data sets,
//! exact ground truth and recall.

use std::time::Instant;

use rand::{Rng, SeedableRng};

use crate::distance::Metric;
use crate::flat::exact_scan;
use crate::index::{
    build_index, BuildOptions, IndexError, IndexKind, Neighbor, RowFilter, SearchParams,
};

/// `n * dim` floats uniform in `[-1, 1)`, from a seeded RNG.
pub fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n * dim).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

/// `n * dim` floats around `clusters` random centres (uniform in `[-10, 10)`)
/// with uniform noise of half-width `spread`, rows assigned round-robin.
pub fn clustered_vectors(
    n: usize,
    dim: usize,
    clusters: usize,
    spread: f32,
    seed: u64,
) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let clusters = clusters.max(1);
    let centres: Vec<f32> = (0..clusters * dim)
        .map(|_| rng.gen_range(-10.0..10.0))
        .collect();
    let mut out = Vec::with_capacity(n * dim);
    for row in 0..n {
        let c = &centres[(row % clusters) * dim..(row % clusters + 1) * dim];
        out.extend(c.iter().map(|x| x + rng.gen_range(-spread..spread)));
    }
    out
}

/// Exact filtered k-NN over row-major `vectors` (the FLAT answer).
pub fn ground_truth(
    metric: Metric,
    dim: usize,
    vectors: &[f32],
    query: &[f32],
    k: usize,
    filter: Option<&dyn RowFilter>,
) -> Vec<Neighbor> {
    exact_scan(metric, dim, vectors, &[], query, k, filter)
}

/// Fraction of `exact` rows present in `approx` (1.0 when `exact` is empty).
pub fn recall(exact: &[Neighbor], approx: &[Neighbor]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let hits = exact
        .iter()
        .filter(|e| approx.iter().any(|a| a.row == e.row))
        .count();
    hits as f64 / exact.len() as f64
}

/// Build time, search latency and recall of one index configuration.
#[derive(Debug, Clone)]
pub struct EvalReport {
    pub kind: IndexKind,
    pub metric: Metric,
    pub rows: usize,
    pub dim: usize,
    pub build_seconds: f64,
    pub mean_search_micros: f64,
    pub mean_recall: f64,
    pub memory_bytes: usize,
}

/// Builds `kind` over `data`, runs every query (k nearest, `params`,
/// optional filter) and compares with the exact answer. The exact scans are
/// not included in the search time.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    kind: IndexKind,
    metric: Metric,
    dim: usize,
    data: &[f32],
    queries: &[f32],
    k: usize,
    options: &BuildOptions,
    params: &SearchParams,
    filter: Option<&dyn RowFilter>,
) -> Result<EvalReport, IndexError> {
    let start = Instant::now();
    let index = build_index(kind, metric, dim, data, options)?;
    let build_seconds = start.elapsed().as_secs_f64();
    let mut search = 0.0;
    let mut total_recall = 0.0;
    let mut count = 0usize;
    for q in queries.chunks_exact(dim) {
        let start = Instant::now();
        let got = index.try_search(q, k, params, filter)?;
        search += start.elapsed().as_secs_f64();
        total_recall += recall(&ground_truth(metric, dim, data, q, k, filter), &got);
        count += 1;
    }
    let count_f = count.max(1) as f64;
    Ok(EvalReport {
        kind,
        metric,
        rows: index.len(),
        dim,
        build_seconds,
        mean_search_micros: search * 1e6 / count_f,
        mean_recall: if count == 0 {
            1.0
        } else {
            total_recall / count_f
        },
        memory_bytes: index.memory_bytes(),
    })
}
