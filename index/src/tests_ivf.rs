//! IVF_FLAT and IVF_SQ8: recall against exact ground truth for every metric
//! (SQ8 with and without re-rank), filtered search at several
//! selectivities, memory, exactness with every list probed, serialization
//! round trips and corrupt input, and parameter handling.

use crate::eval::{clustered_vectors, ground_truth, random_vectors, recall};
use crate::index::{
    build_index, load_index, BuildOptions, ContiguousVectors, IndexError, IndexKind, Neighbor,
    RawVectors, RowBitmap, RowFilter, SearchParams, VectorIndex,
};
use crate::Metric;

const METRICS: [Metric; 4] = [
    Metric::L2,
    Metric::Cosine,
    Metric::NegativeInnerProduct,
    Metric::L1,
];
const IVF: [IndexKind; 2] = [IndexKind::IvfFlat, IndexKind::IvfSq8];
const K: usize = 10;

fn options(nlist: usize) -> BuildOptions {
    BuildOptions {
        nlist,
        ..BuildOptions::default()
    }
}

fn build(
    kind: IndexKind,
    metric: Metric,
    dim: usize,
    data: &[f32],
    nlist: usize,
) -> Box<dyn VectorIndex> {
    build_index(kind, metric, dim, data, &options(nlist)).unwrap()
}

fn params(nprobe: usize, rerank: Option<usize>) -> SearchParams {
    SearchParams {
        nprobe: Some(nprobe),
        rerank,
        ..SearchParams::default()
    }
}

fn rows(v: &[Neighbor]) -> Vec<u32> {
    v.iter().map(|n| n.row).collect()
}

/// Mean recall@K over `queries`; checks count, order and the filter.
fn mean_recall(
    index: &dyn VectorIndex,
    data: &[f32],
    queries: &[f32],
    p: &SearchParams,
    filter: Option<&dyn RowFilter>,
    raw: Option<&dyn RawVectors>,
) -> f64 {
    let dim = index.dim();
    let mut total = 0.0;
    let mut count = 0;
    for q in queries.chunks_exact(dim) {
        let exact = ground_truth(index.metric(), dim, data, q, K, filter);
        let got = index.search_with_raw(q, K, p, filter, raw);
        assert_eq!(got.len(), exact.len(), "result count");
        assert!(got.windows(2).all(|w| w[0] <= w[1]), "sorted");
        if let Some(f) = filter {
            assert!(got.iter().all(|n| f.allows(n.row)), "filter honoured");
        }
        total += recall(&exact, &got);
        count += 1;
    }
    total / count as f64
}

/// `n` x 32 vectors around `clusters` centres with noise wide enough that
/// clusters overlap, and queries drawn around the same centres.
fn data_set(n: usize, clusters: usize, spread: f32) -> (usize, Vec<f32>, Vec<f32>) {
    let dim = 32;
    let data = clustered_vectors(n, dim, clusters, spread, 5);
    let queries = clustered_vectors(60, dim, clusters, spread, 5)
        .iter()
        .zip(random_vectors(60, dim, 6))
        .map(|(x, e)| x + e)
        .collect();
    (dim, data, queries)
}

/// Overlapping clusters: the probe count limits recall.
fn hard_data() -> (usize, Vec<f32>, Vec<f32>) {
    data_set(6000, 200, 8.0)
}

#[test]
fn recall_every_metric_and_kind() {
    let (dim, data, queries) = hard_data();
    let raw_vectors = ContiguousVectors::new(dim, &data).unwrap();
    let raw: &dyn RawVectors = &raw_vectors;
    for metric in METRICS {
        let flat = build(IndexKind::IvfFlat, metric, dim, &data, 64);
        let sq8 = build(IndexKind::IvfSq8, metric, dim, &data, 64);
        let p = params(24, None);
        let r_flat = mean_recall(flat.as_ref(), &data, &queries, &p, None, None);
        let r_codes = mean_recall(sq8.as_ref(), &data, &queries, &p, None, None);
        // Raw vectors without `rerank` change nothing.
        let same = mean_recall(sq8.as_ref(), &data, &queries, &p, None, Some(raw));
        assert_eq!(same, r_codes);
        let p = params(24, Some(4));
        let r_rerank = mean_recall(sq8.as_ref(), &data, &queries, &p, None, Some(raw));
        eprintln!(
            "{metric:?} nlist 64 nprobe 24 recall@{K}: ivfflat {r_flat:.4} \
             ivf_sq8 {r_codes:.4} ivf_sq8+rerank x4 {r_rerank:.4}"
        );
        assert!(r_flat >= 0.95, "ivfflat {metric:?}: {r_flat}");
        assert!(r_codes >= 0.93, "ivf_sq8 {metric:?}: {r_codes}");
        assert!(r_rerank >= 0.95, "ivf_sq8 rerank {metric:?}: {r_rerank}");
        assert!(r_rerank >= r_codes && r_flat >= r_rerank, "{metric:?}");
    }
}

#[test]
fn rerank_recovers_quantization_loss() {
    // Separated clusters, every list probed: only quantization loses rows.
    let (dim, data, queries) = data_set(6000, 60, 6.0);
    let raw = ContiguousVectors::new(dim, &data).unwrap();
    for metric in METRICS {
        let sq8 = build(IndexKind::IvfSq8, metric, dim, &data, 64);
        let codes = mean_recall(sq8.as_ref(), &data, &queries, &params(64, None), None, None);
        let p = params(64, Some(4));
        let reranked = mean_recall(sq8.as_ref(), &data, &queries, &p, None, Some(&raw));
        eprintln!("{metric:?} ivf_sq8 all lists: codes {codes:.4} rerank x4 {reranked:.4}");
        assert!(codes >= 0.97, "{metric:?}: {codes}");
        assert!(reranked >= 0.995, "{metric:?}: {reranked}");
    }
}

#[test]
fn more_probes_raise_recall() {
    let (dim, data, queries) = hard_data();
    let index = build(IndexKind::IvfFlat, Metric::L2, dim, &data, 64);
    let r: Vec<f64> = [1, 4, 16, 64]
        .iter()
        .map(|&np| {
            mean_recall(
                index.as_ref(),
                &data,
                &queries,
                &params(np, None),
                None,
                None,
            )
        })
        .collect();
    eprintln!("ivfflat L2 recall by nprobe 1/4/16/64: {r:?}");
    // A superset of lists can only keep the exact rows already found.
    assert!(r.windows(2).all(|w| w[0] <= w[1]), "{r:?}");
    assert!(r[0] < 0.9, "one probe should miss rows on this data: {r:?}");
    assert_eq!(r[3], 1.0);
    // The default probes one list.
    let default = mean_recall(
        index.as_ref(),
        &data,
        &queries,
        &SearchParams::default(),
        None,
        None,
    );
    assert_eq!(default, r[0]);
}

#[test]
fn every_list_probed_equals_flat() {
    let data = clustered_vectors(1500, 12, 10, 4.0, 7);
    let queries = random_vectors(25, 12, 8);
    let filter = |row: u32| row % 7 != 3;
    for metric in METRICS {
        let flat =
            build_index(IndexKind::Flat, metric, 12, &data, &BuildOptions::default()).unwrap();
        let ivf = build(IndexKind::IvfFlat, metric, 12, &data, 16);
        for q in queries.chunks_exact(12) {
            for f in [None, Some(&filter as &dyn RowFilter)] {
                let exact = flat.search(q, 25, &SearchParams::default(), f);
                let got = ivf.search(q, 25, &params(16, None), f);
                assert_eq!(rows(&got), rows(&exact), "{metric:?}");
                for (g, e) in got.iter().zip(&exact) {
                    assert_eq!(g.distance.to_bits(), e.distance.to_bits(), "{metric:?}");
                }
                // nprobe beyond nlist is clamped.
                assert_eq!(ivf.search(q, 25, &params(1000, None), f), got);
            }
        }
    }
}

#[test]
fn reranked_distances_are_exact() {
    let data = clustered_vectors(2000, 24, 20, 3.0, 9);
    let raw = ContiguousVectors::new(24, &data).unwrap();
    for metric in METRICS {
        let index = build(IndexKind::IvfSq8, metric, 24, &data, 20);
        for q in random_vectors(10, 24, 10).chunks_exact(24) {
            let got = index.search_with_raw(q, K, &params(20, Some(8)), None, Some(&raw));
            let exact = ground_truth(metric, 24, &data, q, K, None);
            assert_eq!(got.len(), K);
            for n in &got {
                // FLAT's value for the row, bit for bit.
                let d = metric.distance(q, &data[n.row as usize * 24..][..24]) as f32;
                assert_eq!(n.distance.to_bits(), d.to_bits(), "{metric:?}");
            }
            assert!(recall(&exact, &got) >= 0.9, "{metric:?}");
            // Code distances approximate the exact ones.
            let approx = index.search(q, K, &params(20, None), None);
            for n in &approx {
                let e = metric.distance(q, &data[n.row as usize * 24..][..24]) as f32;
                assert!(
                    (n.distance - e).abs() <= 0.05 * e.abs().max(1.0),
                    "{metric:?} {} vs {e}",
                    n.distance
                );
            }
        }
    }
}

#[test]
fn filtered_search_returns_k_rows_with_high_recall() {
    let (dim, data, queries) = data_set(10_000, 300, 8.0);
    let n = 10_000;
    let raw = ContiguousVectors::new(dim, &data).unwrap();
    for kind in IVF {
        for metric in [Metric::L2, Metric::Cosine, Metric::NegativeInnerProduct] {
            let index = build(kind, metric, dim, &data, 100);
            let p = params(30, (kind == IndexKind::IvfSq8).then_some(4));
            let unfiltered = mean_recall(index.as_ref(), &data, &queries, &p, None, Some(&raw));
            eprintln!("{kind:?} {metric:?} unfiltered: {unfiltered:.4}");
            for per_mille in [500u32, 100, 10, 1] {
                // Hashed so that allowed rows are scattered over the lists.
                let closure = move |row: u32| row.wrapping_mul(2_654_435_761) % 1000 < per_mille;
                let bitmap = RowBitmap::from_rows(n, (0..n as u32).filter(|&r| closure(r)));
                assert!(bitmap.count() >= K, "enough allowed rows");
                let r1 = mean_recall(
                    index.as_ref(),
                    &data,
                    &queries,
                    &p,
                    Some(&closure),
                    Some(&raw),
                );
                let r2 = mean_recall(
                    index.as_ref(),
                    &data,
                    &queries,
                    &p,
                    Some(&bitmap),
                    Some(&raw),
                );
                eprintln!(
                    "{kind:?} {metric:?} filter {per_mille}/1000: closure {r1:.4} bitmap {r2:.4}"
                );
                assert!(
                    r1 >= 0.95 && r2 >= 0.95,
                    "{kind:?} {metric:?} {per_mille}: {r1} {r2}"
                );
            }
        }
    }
}

#[test]
fn few_allowed_rows_or_small_lists_still_give_k_rows() {
    let data = random_vectors(3000, 16, 13);
    for kind in IVF {
        let index = build(kind, Metric::L2, 16, &data, 300);
        let q = &data[..16];
        // One probe holds ~10 rows; asking for 50 must still give 50.
        assert_eq!(index.search(q, 50, &params(1, None), None).len(), 50);
        for allowed in [0usize, 1, 3, 10, 25] {
            let rows_allowed: Vec<u32> = (0..allowed as u32).map(|i| i * 97 + 5).collect();
            let bitmap = RowBitmap::from_rows(3000, rows_allowed.iter().copied());
            let got = index.search(q, 10, &params(1, None), Some(&bitmap));
            assert_eq!(got.len(), allowed.min(10), "{kind:?}");
            let exact = ground_truth(Metric::L2, 16, &data, q, 10, Some(&bitmap));
            if kind == IndexKind::IvfFlat {
                assert_eq!(got, exact);
            } else {
                assert!(recall(&exact, &got) >= 0.9);
            }
        }
    }
}

#[test]
fn sq8_memory_is_a_quarter_of_flat() {
    let dim = 64;
    let data = clustered_vectors(5000, dim, 50, 3.0, 15);
    for metric in METRICS {
        let flat = build_index(
            IndexKind::Flat,
            metric,
            dim,
            &data,
            &BuildOptions::default(),
        )
        .unwrap();
        let ivf = build(IndexKind::IvfFlat, metric, dim, &data, 64);
        let sq8 = build(IndexKind::IvfSq8, metric, dim, &data, 64);
        let ratio = flat.memory_bytes() as f64 / sq8.memory_bytes() as f64;
        eprintln!(
            "{metric:?} memory: flat {} ivfflat {} ivf_sq8 {} (flat/sq8 {ratio:.2})",
            flat.memory_bytes(),
            ivf.memory_bytes(),
            sq8.memory_bytes()
        );
        assert!(ratio >= 3.0, "{metric:?}: {ratio}");
        // Codes (1 byte per component) are counted; no f32 copy is kept.
        assert!(sq8.memory_bytes() >= 5000 * dim);
        assert!(sq8.memory_bytes() < 5000 * dim * 2);
        assert!(ivf.memory_bytes() >= flat.memory_bytes());
    }
}

#[test]
fn round_trip_gives_identical_results() {
    let data = clustered_vectors(1200, 16, 8, 2.0, 17);
    let queries = random_vectors(20, 16, 18);
    let raw = ContiguousVectors::new(16, &data).unwrap();
    let filter = |row: u32| row % 3 != 1;
    for kind in IVF {
        for metric in METRICS {
            let index = build(kind, metric, 16, &data, 12);
            let bytes = index.to_bytes();
            let loaded = load_index(&bytes).unwrap();
            assert_eq!(loaded.kind(), kind);
            assert_eq!(loaded.metric(), metric);
            assert_eq!((loaded.dim(), loaded.len()), (16, 1200));
            assert_eq!(loaded.to_bytes(), bytes);
            assert_eq!(loaded.memory_bytes(), index.memory_bytes());
            for q in queries.chunks_exact(16) {
                for p in [params(1, None), params(3, Some(2))] {
                    for f in [None, Some(&filter as &dyn RowFilter)] {
                        let a = index.search_with_raw(q, 7, &p, f, Some(&raw));
                        let b = loaded.search_with_raw(q, 7, &p, f, Some(&raw));
                        assert_eq!(a.len(), 7);
                        assert_eq!(rows(&a), rows(&b));
                        let bits = |v: &[Neighbor]| {
                            v.iter().map(|n| n.distance.to_bits()).collect::<Vec<_>>()
                        };
                        assert_eq!(bits(&a), bits(&b));
                    }
                }
            }
        }
    }
}

#[test]
fn builds_are_deterministic_per_seed() {
    let data = random_vectors(2000, 8, 19);
    for kind in IVF {
        let a = build(kind, Metric::L2, 8, &data, 20).to_bytes();
        let b = build(kind, Metric::L2, 8, &data, 20).to_bytes();
        assert_eq!(a, b);
        let other = BuildOptions {
            seed: 42,
            ..options(20)
        };
        let c = build_index(kind, Metric::L2, 8, &data, &other)
            .unwrap()
            .to_bytes();
        assert_ne!(a, c);
    }
}

fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn corrupt_bytes_are_errors_not_panics() {
    let mut data = random_vectors(40, 4, 21);
    data[8..12].fill(0.0); // a zero row: SQ8 cosine records it
    for kind in IVF {
        for metric in [Metric::L2, Metric::Cosine] {
            let bytes = build(kind, metric, 4, &data, 5).to_bytes();
            assert!(load_index(&bytes).is_ok());
            for len in 0..bytes.len() {
                assert!(
                    load_index(&bytes[..len]).is_err(),
                    "{kind:?} truncated to {len}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(load_index(&longer).is_err());
            for i in 0..bytes.len() {
                for bit in [0x01u8, 0x10, 0x80] {
                    let mut flipped = bytes.clone();
                    flipped[i] ^= bit;
                    assert!(load_index(&flipped).is_err(), "{kind:?} flip at {i}");
                    // With a valid checksum the structural checks must hold:
                    // an error or a usable index, never a panic.
                    if let Ok(index) = load_index(&reseal(flipped)) {
                        let q = &data[..4];
                        let _ = index.search(q, 5, &params(2, None), None);
                        let raw = ContiguousVectors::new(4, &data).unwrap();
                        let _ = index.search_with_raw(q, 5, &params(5, Some(3)), None, Some(&raw));
                    }
                }
            }
            for len in 10..bytes.len() - 4 {
                let mut cut = bytes[..len].to_vec();
                cut.extend_from_slice(&[0; 4]);
                assert!(
                    load_index(&reseal(cut)).is_err(),
                    "{kind:?} resealed cut {len}"
                );
            }
        }
    }
}

#[test]
fn corrupt_structure_is_reported() {
    let data = random_vectors(30, 4, 23);
    let bytes = build(IndexKind::IvfFlat, Metric::L2, 4, &data, 3).to_bytes();
    // Header is 20 bytes; then nlist (u32) and the seed (u64).
    let mut zero_lists = bytes.clone();
    zero_lists[20..24].copy_from_slice(&0u32.to_le_bytes());
    assert!(matches!(
        load_index(&reseal(zero_lists)),
        Err(IndexError::Corrupt(_))
    ));
    let mut too_many = bytes.clone();
    too_many[20..24].copy_from_slice(&31u32.to_le_bytes());
    assert!(matches!(
        load_index(&reseal(too_many)),
        Err(IndexError::Corrupt(_))
    ));
    // The ids follow the 3 centroids and 3 sizes: repeat the first id.
    let ids = 20 + 4 + 8 + 3 * 4 * 4 + 3 * 4;
    let mut repeated = bytes;
    let first: [u8; 4] = repeated[ids..ids + 4].try_into().unwrap();
    repeated[ids + 4..ids + 8].copy_from_slice(&first);
    assert!(matches!(
        load_index(&reseal(repeated)),
        Err(IndexError::Corrupt(_))
    ));
}

#[test]
fn parameters_and_edge_cases() {
    let data = random_vectors(50, 8, 25);
    for kind in IVF {
        for nlist in [0usize, 65_537] {
            let err = build_index(kind, Metric::L2, 8, &data, &options(nlist)).err();
            assert_eq!(
                err.map(|e| e.to_string()),
                Some("nlist must be between 1 and 65536".to_string())
            );
        }
        // nlist above the row count is reduced to it.
        let index = build_index(kind, Metric::L2, 8, &data, &options(65_536)).unwrap();
        let loaded = load_index(&index.to_bytes()).unwrap();
        for q in data.chunks_exact(8).take(5) {
            let got = loaded.search(q, 3, &params(1, None), None);
            assert_eq!(got.len(), 3);
        }
        assert_eq!(
            build_index(kind, Metric::L2, 8, &data, &options(1))
                .unwrap()
                .len(),
            50
        );
        for metric in METRICS {
            let index = build(kind, metric, 8, &data, 4);
            let q = &data[8..16];
            let got = index.search(q, 500, &params(1, None), None);
            let exact = ground_truth(metric, 8, &data, q, 500, None);
            assert_eq!(got.len(), 50);
            if kind == IndexKind::IvfFlat {
                assert_eq!(rows(&got), rows(&exact), "{kind:?} {metric:?}");
            }
            assert!(index.search(q, 0, &params(1, None), None).is_empty());
            assert!(index
                .search(&[1.0; 3], 3, &params(1, None), None)
                .is_empty());
            assert_eq!(
                index.try_search(&[1.0; 3], 3, &params(1, None), None).err(),
                Some(IndexError::DimensionMismatch {
                    expected: 8,
                    actual: 3
                })
            );
        }
        let empty = build(kind, Metric::Cosine, 4, &[], 10);
        assert!(empty.is_empty());
        assert!(empty
            .search(&[1.0, 0.0, 0.0, 0.0], 5, &params(3, None), None)
            .is_empty());
        let loaded = load_index(&empty.to_bytes()).unwrap();
        assert_eq!((loaded.kind(), loaded.len()), (kind, 0));
        let mut nan = data.clone();
        nan[5] = f32::NAN;
        assert!(build_index(kind, Metric::L2, 8, &nan, &options(4)).is_err());
        assert!(matches!(
            build_index(kind, Metric::L2, 8, &data[..7], &options(4)),
            Err(IndexError::DimensionMismatch { .. })
        ));
    }
}

#[test]
fn cosine_zero_vectors_report_nan_last() {
    let mut data = random_vectors(40, 4, 27);
    data[4..8].fill(0.0);
    let raw = ContiguousVectors::new(4, &data).unwrap();
    for kind in IVF {
        let index = build(kind, Metric::Cosine, 4, &data, 4);
        for r in [None, Some(&raw as &dyn RawVectors)] {
            let got = index.search_with_raw(&data[..4], 40, &params(1, Some(2)), None, r);
            assert_eq!(got.len(), 40);
            assert_eq!(got[39].row, 1, "{kind:?}");
            assert!(got[39].distance.is_nan());
            let zero = index.search_with_raw(&[0.0; 4], 3, &params(1, Some(2)), None, r);
            assert_eq!(rows(&zero), [0, 1, 2], "{kind:?}");
            assert!(zero.iter().all(|n| n.distance.is_nan()));
        }
    }
}

#[test]
fn raw_vectors_wrapper() {
    let data: Vec<f32> = (0..12).map(|x| x as f32).collect();
    let raw = ContiguousVectors::new(4, &data).unwrap();
    assert_eq!(raw.len(), 3);
    assert_eq!(raw.vector(1), &[4.0, 5.0, 6.0, 7.0]);
    assert!(raw.vector(3).is_empty());
    assert!(raw.vector(u32::MAX).is_empty());
    assert!(ContiguousVectors::new(5, &data).is_err());
    assert!(ContiguousVectors::new(0, &data).is_err());
    // Rows the raw vectors do not cover keep their code distance.
    let short = ContiguousVectors::new(4, &data[..4]).unwrap();
    let index = build(IndexKind::IvfSq8, Metric::L2, 4, &data, 1);
    let got = index.search_with_raw(&data[8..], 3, &params(1, Some(2)), None, Some(&short));
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].row, 2);
}

#[test]
fn kind_names_parse_and_codes() {
    for (name, kind) in [
        ("flat", IndexKind::Flat),
        ("HNSW", IndexKind::Hnsw),
        ("ivfflat", IndexKind::IvfFlat),
        ("IVF_FLAT", IndexKind::IvfFlat),
        ("ivf_sq8", IndexKind::IvfSq8),
        ("Ivf_Sq8", IndexKind::IvfSq8),
    ] {
        assert_eq!(IndexKind::parse(name), Some(kind), "{name}");
    }
    for kind in [
        IndexKind::Flat,
        IndexKind::Hnsw,
        IndexKind::IvfFlat,
        IndexKind::IvfSq8,
    ] {
        assert_eq!(IndexKind::parse(kind.name()), Some(kind));
        assert_eq!(IndexKind::from_code(kind.code()), Some(kind));
    }
    assert_eq!(IndexKind::IvfFlat.name(), "ivfflat");
    assert_eq!(IndexKind::IvfSq8.name(), "ivf_sq8");
    for bad in ["", "ivf", "ivfsq", "hnsw2", "ivf-flat"] {
        assert_eq!(IndexKind::parse(bad), None, "{bad}");
    }
}

#[test]
fn sq8_codes_decode_within_half_a_step() {
    let dim = 16;
    let data = clustered_vectors(800, dim, 8, 3.0, 29);
    for metric in [Metric::L2, Metric::Cosine] {
        let built = crate::IvfSq8Index::build(metric, dim, &data, &options(8)).unwrap();
        let mut worst = 0f32;
        for row in [0u32, 1, 57, 799] {
            let mut x = data[row as usize * dim..][..dim].to_vec();
            if metric == Metric::Cosine {
                crate::distance::normalize(&mut x);
            }
            let decoded = built.decode(row).unwrap();
            for (a, b) in x.iter().zip(&decoded) {
                worst = worst.max((a - b).abs());
            }
        }
        // Residuals span at most ~2 * 3.0 (uniform noise of half-width 3
        // around the centre, plus centroid error): a step is < 0.05.
        let bound = if metric == Metric::Cosine { 0.01 } else { 0.05 };
        assert!(worst <= bound, "{metric:?}: {worst}");
        assert!(built.decode(800).is_none());
        assert_eq!(built.list_sizes().iter().sum::<usize>(), 800);
        assert_eq!(built.nlist(), 8);
    }
}
