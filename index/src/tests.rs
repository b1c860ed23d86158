//! Crate-level tests of the index family: FLAT exactness, HNSW recall
//! against FLAT (plain and filtered), serialization, and error handling.

use crate::eval::{clustered_vectors, ground_truth, random_vectors, recall};
use crate::index::{
    build_index, load_index, BuildOptions, IndexError, IndexKind, Neighbor, RowBitmap, RowFilter,
    SearchParams, VectorIndex,
};
use crate::Metric;

const DIM: usize = 32;
const N: usize = 2000;
const QUERIES: usize = 100;
const K: usize = 10;
const METRICS: [Metric; 4] = [
    Metric::L2,
    Metric::Cosine,
    Metric::NegativeInnerProduct,
    Metric::L1,
];

fn build(kind: IndexKind, metric: Metric, dim: usize, data: &[f32]) -> Box<dyn VectorIndex> {
    build_index(kind, metric, dim, data, &BuildOptions::default()).unwrap()
}

/// Mean recall@K of `index` against the exact answer over the query set.
fn mean_recall(
    index: &dyn VectorIndex,
    data: &[f32],
    queries: &[f32],
    filter: Option<&dyn RowFilter>,
) -> f64 {
    let mut total = 0.0;
    let mut count = 0;
    for q in queries.chunks_exact(index.dim()) {
        let exact = ground_truth(index.metric(), index.dim(), data, q, K, filter);
        let got = index.search(q, K, &SearchParams::default(), filter);
        assert_eq!(got.len(), exact.len(), "result count");
        assert!(
            got.windows(2).all(|w| w[0] <= w[1]),
            "sorted by (distance, row)"
        );
        if let Some(f) = filter {
            assert!(got.iter().all(|n| f.allows(n.row)));
        }
        total += recall(&exact, &got);
        count += 1;
    }
    total / count as f64
}

#[test]
fn flat_equals_brute_force() {
    for metric in METRICS {
        let mut data = random_vectors(300, 7, 1);
        // Duplicate rows so ties must be broken by row id.
        let dup: Vec<f32> = data[..7 * 20].to_vec();
        data.extend_from_slice(&dup);
        let index = build(IndexKind::Flat, metric, 7, &data);
        for (qi, q) in random_vectors(20, 7, 2).chunks_exact(7).enumerate() {
            let mut brute: Vec<Neighbor> = data
                .chunks_exact(7)
                .enumerate()
                .map(|(row, v)| Neighbor {
                    row: row as u32,
                    distance: metric.distance(q, v) as f32,
                })
                .collect();
            brute.sort();
            let k = [1, 5, 17, 320, 1000][qi % 5];
            brute.truncate(k);
            let got = index.search(q, k, &SearchParams::default(), None);
            assert_eq!(got.len(), brute.len());
            for (g, b) in got.iter().zip(&brute) {
                assert_eq!(g.row, b.row, "{metric:?}");
                assert_eq!(g.distance.to_bits(), b.distance.to_bits(), "{metric:?}");
            }
        }
    }
}

#[test]
fn hnsw_recall_random_and_clustered() {
    let sets = [
        ("random", random_vectors(N, DIM, 11)),
        ("clustered", clustered_vectors(N, DIM, 20, 2.0, 12)),
    ];
    for (name, data) in &sets {
        let queries = if *name == "random" {
            random_vectors(QUERIES, DIM, 13)
        } else {
            clustered_vectors(QUERIES, DIM, 20, 2.5, 12)
        };
        for metric in METRICS {
            let index = build(IndexKind::Hnsw, metric, DIM, data);
            let r = mean_recall(index.as_ref(), data, &queries, None);
            eprintln!("hnsw recall@{K} {name} {metric:?}: {r:.4}");
            assert!(r >= 0.95, "{name} {metric:?} recall {r}");
        }
    }
}

#[test]
fn hnsw_filtered_recall() {
    let data = random_vectors(N, DIM, 21);
    let queries = random_vectors(QUERIES, DIM, 22);
    for metric in [Metric::L2, Metric::Cosine, Metric::NegativeInnerProduct] {
        let index = build(IndexKind::Hnsw, metric, DIM, &data);
        for percent in [50u32, 10, 1] {
            // Hashed rather than striped so allowed rows are scattered.
            let closure = move |row: u32| row.wrapping_mul(2_654_435_761) % 100 < percent;
            let bitmap = RowBitmap::from_rows(N, (0..N as u32).filter(|&r| closure(r)));
            let r1 = mean_recall(index.as_ref(), &data, &queries, Some(&closure));
            let r2 = mean_recall(index.as_ref(), &data, &queries, Some(&bitmap));
            eprintln!("hnsw filtered {percent}% {metric:?}: closure {r1:.4} bitmap {r2:.4}");
            assert!(r1 >= 0.95 && r2 >= 0.95, "{percent}% {metric:?}: {r1} {r2}");
        }
    }
}

#[test]
fn filter_allowing_few_rows_returns_them_all() {
    let data = random_vectors(N, DIM, 31);
    let index = build(IndexKind::Hnsw, Metric::L2, DIM, &data);
    let q = &data[..DIM];
    for allowed in [0usize, 1, 3, 10, 25] {
        let rows: Vec<u32> = (0..allowed as u32).map(|i| i * 79 + 5).collect();
        let bitmap = RowBitmap::from_rows(N, rows.iter().copied());
        let got = index.search(q, 10, &SearchParams::default(), Some(&bitmap));
        assert_eq!(got.len(), allowed.min(10));
        let exact = ground_truth(Metric::L2, DIM, &data, q, 10, Some(&bitmap));
        assert_eq!(got, exact);
    }
}

#[test]
fn larger_ef_does_not_hurt() {
    let data = clustered_vectors(N, DIM, 10, 3.0, 41);
    let queries = random_vectors(20, DIM, 42);
    let index = build(IndexKind::Hnsw, Metric::L2, DIM, &data);
    for q in queries.chunks_exact(DIM) {
        let params = SearchParams {
            ef: Some(400),
            ..SearchParams::default()
        };
        let got = index.search(q, K, &params, None);
        let exact = ground_truth(Metric::L2, DIM, &data, q, K, None);
        assert!(recall(&exact, &got) >= 0.9);
    }
}

#[test]
fn k_larger_than_n_and_k_zero() {
    let data = random_vectors(50, 8, 51);
    for kind in [IndexKind::Flat, IndexKind::Hnsw] {
        for metric in METRICS {
            let index = build(kind, metric, 8, &data);
            let q = &data[8..16];
            let got = index.search(q, 500, &SearchParams::default(), None);
            let exact = ground_truth(metric, 8, &data, q, 500, None);
            assert_eq!(got.len(), 50);
            let rows = |v: &[Neighbor]| v.iter().map(|n| n.row).collect::<Vec<_>>();
            assert_eq!(rows(&got), rows(&exact), "{kind:?} {metric:?}");
            assert!(index
                .search(q, 0, &SearchParams::default(), None)
                .is_empty());
        }
    }
}

#[test]
fn empty_index() {
    for kind in [IndexKind::Flat, IndexKind::Hnsw] {
        let index = build(kind, Metric::Cosine, 4, &[]);
        assert_eq!(index.len(), 0);
        assert!(index.is_empty());
        let q = [1.0, 0.0, 0.0, 0.0];
        assert!(index
            .search(&q, 5, &SearchParams::default(), None)
            .is_empty());
        let loaded = load_index(&index.to_bytes()).unwrap();
        assert_eq!(loaded.len(), 0);
        assert_eq!(loaded.kind(), kind);
    }
}

#[test]
fn cosine_zero_vectors_report_nan_last() {
    let mut data = random_vectors(40, 4, 61);
    data[4..8].fill(0.0);
    for kind in [IndexKind::Flat, IndexKind::Hnsw] {
        let index = build(kind, Metric::Cosine, 4, &data);
        let got = index.search(&data[..4], 40, &SearchParams::default(), None);
        assert_eq!(got.len(), 40);
        assert_eq!(got[39].row, 1);
        assert!(got[39].distance.is_nan());
        let zero = index.search(&[0.0; 4], 3, &SearchParams::default(), None);
        assert_eq!(zero.iter().map(|n| n.row).collect::<Vec<_>>(), [0, 1, 2]);
    }
}

#[test]
fn round_trip_gives_identical_results() {
    let data = clustered_vectors(1000, 16, 8, 1.5, 71);
    let queries = random_vectors(30, 16, 72);
    let filter = |row: u32| row % 3 != 1;
    for kind in [IndexKind::Flat, IndexKind::Hnsw] {
        for metric in METRICS {
            let index = build(kind, metric, 16, &data);
            let bytes = index.to_bytes();
            let loaded = load_index(&bytes).unwrap();
            assert_eq!(loaded.kind(), kind);
            assert_eq!(loaded.metric(), metric);
            assert_eq!((loaded.dim(), loaded.len()), (16, 1000));
            assert_eq!(loaded.to_bytes(), bytes);
            assert!(loaded.memory_bytes() >= 1000 * 16 * 4);
            for q in queries.chunks_exact(16) {
                let p = SearchParams::default();
                assert_eq!(index.search(q, 7, &p, None), loaded.search(q, 7, &p, None));
                assert_eq!(
                    index.search(q, 7, &p, Some(&filter)),
                    loaded.search(q, 7, &p, Some(&filter))
                );
            }
        }
    }
}

#[test]
fn builds_are_deterministic_per_seed() {
    let data = random_vectors(500, 8, 81);
    let opts = BuildOptions {
        threads: 1,
        ..BuildOptions::default()
    };
    let a = build_index(IndexKind::Hnsw, Metric::L2, 8, &data, &opts).unwrap();
    let b = build_index(IndexKind::Hnsw, Metric::L2, 8, &data, &opts).unwrap();
    assert_eq!(a.to_bytes(), b.to_bytes());
}

fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn corrupt_bytes_are_errors_not_panics() {
    let data = random_vectors(60, 4, 91);
    for kind in [IndexKind::Flat, IndexKind::Hnsw] {
        let bytes = build(kind, Metric::L2, 4, &data).to_bytes();
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
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x10;
            assert!(load_index(&flipped).is_err(), "{kind:?} flip at {i}");
            // With a valid checksum the structural checks must still hold:
            // any outcome but a panic is acceptable.
            let _ = load_index(&reseal(flipped));
        }
        // Every truncation, re-checksummed, reaches the structural checks.
        for len in 10..bytes.len() - 4 {
            let mut cut = bytes[..len].to_vec();
            cut.extend_from_slice(&[0; 4]);
            assert!(
                load_index(&reseal(cut)).is_err(),
                "{kind:?} resealed cut {len}"
            );
        }
    }
    let mut bad_version = build(IndexKind::Flat, Metric::L2, 4, &data).to_bytes();
    bad_version[4] = 9;
    assert_eq!(
        load_index(&bad_version).err(),
        Some(IndexError::UnsupportedVersion(9))
    );
    // A huge declared row count must not allocate or panic.
    let mut huge = build(IndexKind::Flat, Metric::L2, 4, &data).to_bytes();
    huge[12..20].copy_from_slice(&(u32::MAX as u64 - 2).to_le_bytes());
    assert!(matches!(
        load_index(&reseal(huge)),
        Err(IndexError::Corrupt(_))
    ));
}

#[test]
fn parameter_errors() {
    let data = random_vectors(10, 4, 101);
    let err = |opts: BuildOptions| {
        build_index(IndexKind::Hnsw, Metric::L2, 4, &data, &opts)
            .err()
            .map(|e| e.to_string())
    };
    let d = BuildOptions::default();
    let m_msg = Some("m must be between 2 and 100".to_string());
    assert_eq!(err(BuildOptions { m: 1, ..d }), m_msg);
    assert_eq!(err(BuildOptions { m: 101, ..d }), m_msg);
    let ef_msg = Some("ef_construction must be between 4 and 1000".to_string());
    assert_eq!(
        err(BuildOptions {
            ef_construction: 3,
            ..d
        }),
        ef_msg
    );
    assert_eq!(
        err(BuildOptions {
            ef_construction: 1001,
            ..d
        }),
        ef_msg
    );
    assert!(err(BuildOptions {
        m: 2,
        ef_construction: 4,
        ..d
    })
    .is_none());
    assert!(err(BuildOptions {
        m: 16,
        ef_construction: 20,
        ..d
    })
    .is_some());
    for kind in [IndexKind::Flat, IndexKind::Hnsw] {
        let opts = &BuildOptions::default();
        assert!(matches!(
            build_index(kind, Metric::L2, 0, &[], opts),
            Err(IndexError::InvalidParameter(_))
        ));
        assert!(matches!(
            build_index(kind, Metric::L2, 4, &data[..7], opts),
            Err(IndexError::DimensionMismatch { .. })
        ));
        let mut nan = data.clone();
        nan[5] = f32::NAN;
        assert!(build_index(kind, Metric::L2, 4, &nan, opts).is_err());
        let index = build(kind, Metric::L2, 4, &data);
        let p = SearchParams::default();
        assert!(index.search(&[1.0; 3], 3, &p, None).is_empty());
        assert_eq!(
            index.try_search(&[1.0; 3], 3, &p, None).err(),
            Some(IndexError::DimensionMismatch {
                expected: 4,
                actual: 3
            })
        );
    }
}
