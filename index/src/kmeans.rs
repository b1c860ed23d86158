//! Seeded k-means for the IVF coarse quantizer.
//!
//! Training runs on a sample of at most `max(TRAIN_PER_LIST * k,
//! MIN_TRAIN)` rows (all rows when there are fewer), drawn with the build
//! seed. Centroids start from k-means++ seeding (D² sampling) and are refined
//! by at most [`MAX_ITERATIONS`] Lloyd iterations, stopping early once fewer
//! than one point in a thousand changes cluster. A cluster left empty by an
//! iteration is re-seeded with the point that is farthest from its own
//! centroid (distinct points for distinct empty clusters).
//!
//! The assignment distance depends on the metric (see [`Assign`]); the
//! update step is always the mean (renormalized for cosine, i.e. spherical
//! k-means). The assignment steps, the dominant cost, are split over the
//! available cores with scoped threads; every point's assignment is
//! independent, so the result does not depend on the thread count.

use rand::rngs::StdRng;
use rand::Rng;

use crate::distance::{inner_product, l1, l2_squared, normalize};

/// Upper bound on Lloyd iterations (as faiss trains its IVF quantizers):
/// later iterations barely move IVF recall but cost a full pass each.
pub const MAX_ITERATIONS: usize = 10;
/// Training points per list (faiss warns below 39).
pub const TRAIN_PER_LIST: usize = 40;
/// Training points used even for few lists (when the data has them).
pub const MIN_TRAIN: usize = 10_000;
/// Below this many multiply-adds a step runs on one thread.
const PARALLEL_WORK: usize = 1 << 22;

/// How a point is assigned to a centroid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Assign {
    /// Squared Euclidean distance (L2 and inner-product indexes).
    L2,
    /// `1 - a·b` on unit vectors (cosine indexes; spherical k-means).
    UnitDot,
    /// Taxicab distance (L1 indexes).
    L1,
}

impl Assign {
    #[inline]
    pub(crate) fn dist(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Assign::L2 => l2_squared(a, b),
            Assign::UnitDot => 1.0 - inner_product(a, b),
            Assign::L1 => l1(a, b),
        }
    }
}

/// Number of training points for `k` lists over `n` rows.
pub(crate) fn train_size(n: usize, k: usize) -> usize {
    n.min(k.saturating_mul(TRAIN_PER_LIST).max(MIN_TRAIN))
}

/// Nearest centroid of `x`: `(index, distance)`, ties to the lower index.
#[inline]
pub(crate) fn nearest(assign: Assign, x: &[f32], centroids: &[f32], dim: usize) -> (u32, f32) {
    let mut best = (0u32, f32::INFINITY);
    for (c, centroid) in centroids.chunks_exact(dim).enumerate() {
        let d = assign.dist(x, centroid);
        if d < best.1 {
            best = (c as u32, d);
        }
    }
    best
}

/// Runs `f(start, chunk)` over contiguous chunks of `out`, on several
/// threads when `work` (multiply-adds) is large enough.
fn par_chunks<T: Send>(out: &mut [T], work: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let threads = if work < PARALLEL_WORK {
        1
    } else {
        std::thread::available_parallelism()
            .map(|t| t.get())
            .unwrap_or(1)
            .min(out.len().max(1))
    };
    if threads <= 1 {
        f(0, out);
        return;
    }
    let chunk = out.len().div_ceil(threads);
    std::thread::scope(|s| {
        for (i, part) in out.chunks_mut(chunk).enumerate() {
            let f = &f;
            s.spawn(move || f(i * chunk, part));
        }
    });
}

/// The nearest centroid of every point of `points` (row-major, `dim` wide).
pub(crate) fn assign_all(
    assign: Assign,
    points: &[f32],
    dim: usize,
    centroids: &[f32],
) -> Vec<(u32, f32)> {
    let n = points.len() / dim;
    let mut out = vec![(0u32, 0f32); n];
    let work = n * (centroids.len() / dim) * dim;
    par_chunks(&mut out, work, |start, part| {
        for (i, slot) in part.iter_mut().enumerate() {
            let row = start + i;
            *slot = nearest(assign, &points[row * dim..(row + 1) * dim], centroids, dim);
        }
    });
    out
}

/// k-means++ seeding: the first centroid uniformly, each next one with
/// probability proportional to the distance to the closest chosen one.
fn seed_centroids(
    assign: Assign,
    points: &[f32],
    dim: usize,
    k: usize,
    rng: &mut StdRng,
) -> Vec<f32> {
    let m = points.len() / dim;
    let point = |i: usize| &points[i * dim..(i + 1) * dim];
    let mut centroids = Vec::with_capacity(k * dim);
    let first = rng.gen_range(0..m);
    centroids.extend_from_slice(point(first));
    let mut closest = vec![0f32; m];
    par_chunks(&mut closest, m * dim, |start, part| {
        for (i, d) in part.iter_mut().enumerate() {
            *d = assign.dist(point(start + i), point(first)).max(0.0);
        }
    });
    for _ in 1..k {
        let total: f64 = closest.iter().map(|&d| d as f64).sum();
        let pick = if total > 0.0 {
            let mut target = rng.gen::<f64>() * total;
            let mut pick = None;
            for (i, &d) in closest.iter().enumerate() {
                if d > 0.0 {
                    pick = Some(i);
                    target -= d as f64;
                    if target < 0.0 {
                        break;
                    }
                }
            }
            // Rounding may leave `target` just above zero: the last
            // positive-weight point is then the pick.
            pick.unwrap_or(m - 1)
        } else {
            // Every point coincides with a centroid: duplicates only.
            rng.gen_range(0..m)
        };
        let c = point(pick).to_vec();
        centroids.extend_from_slice(&c);
        par_chunks(&mut closest, m * dim, |start, part| {
            for (i, d) in part.iter_mut().enumerate() {
                let nd = assign.dist(point(start + i), &c).max(0.0);
                if nd < *d {
                    *d = nd;
                }
            }
        });
    }
    centroids
}

/// Trains `k` centroids (`k * dim` floats) on `points`. Requires
/// `1 <= k <= points.len() / dim`; for [`Assign::UnitDot`] the points must
/// already be unit (or zero) vectors.
pub(crate) fn train(
    assign: Assign,
    points: &[f32],
    dim: usize,
    k: usize,
    rng: &mut StdRng,
) -> Vec<f32> {
    let m = points.len() / dim;
    debug_assert!(k >= 1 && k <= m);
    let mut centroids = seed_centroids(assign, points, dim, k, rng);
    let mut labels = vec![u32::MAX; m];
    for _ in 0..MAX_ITERATIONS {
        let assigned = assign_all(assign, points, dim, &centroids);
        let changed = assigned
            .iter()
            .zip(&labels)
            .filter(|(a, &l)| a.0 != l)
            .count();
        for (l, a) in labels.iter_mut().zip(&assigned) {
            *l = a.0;
        }
        if changed == 0 {
            break;
        }
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (i, &l) in labels.iter().enumerate() {
            let l = l as usize;
            counts[l] += 1;
            let sum = &mut sums[l * dim..(l + 1) * dim];
            for (s, &x) in sum.iter_mut().zip(&points[i * dim..(i + 1) * dim]) {
                *s += x as f64;
            }
        }
        for (c, &count) in counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let centroid = &mut centroids[c * dim..(c + 1) * dim];
            for (x, s) in centroid.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                *x = (s / count as f64) as f32;
            }
            if assign == Assign::UnitDot {
                normalize(centroid);
            }
        }
        let empty: Vec<usize> = (0..k).filter(|&c| counts[c] == 0).collect();
        if !empty.is_empty() {
            // Farthest points first (ties by index), one per empty cluster.
            let mut far: Vec<usize> = (0..m).collect();
            far.sort_by(|&a, &b| assigned[b].1.total_cmp(&assigned[a].1).then(a.cmp(&b)));
            for (&c, &p) in empty.iter().zip(&far) {
                centroids[c * dim..(c + 1) * dim].copy_from_slice(&points[p * dim..(p + 1) * dim]);
            }
        }
        if empty.is_empty() && changed * 1000 < m {
            break;
        }
    }
    centroids
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::eval::clustered_vectors;

    #[test]
    fn finds_well_separated_clusters() {
        let dim = 8;
        let data = clustered_vectors(800, dim, 8, 0.5, 3);
        let mut rng = StdRng::seed_from_u64(1);
        let centroids = train(Assign::L2, &data, dim, 8, &mut rng);
        let labels = assign_all(Assign::L2, &data, dim, &centroids);
        // Rows are assigned round-robin to generating centres: rows i and
        // i + 8 share a centre, so they must share a cluster.
        for i in 0..792 {
            assert_eq!(labels[i].0, labels[i + 8].0, "row {i}");
        }
        let distinct: std::collections::HashSet<u32> = labels.iter().map(|l| l.0).collect();
        assert_eq!(distinct.len(), 8);
    }

    #[test]
    fn duplicates_and_k_equal_n() {
        let dim = 3;
        let data = vec![1.0f32; 5 * dim];
        let mut rng = StdRng::seed_from_u64(2);
        let centroids = train(Assign::L1, &data, dim, 5, &mut rng);
        assert_eq!(centroids.len(), 5 * dim);
        assert!(centroids.iter().all(|&x| x == 1.0));
    }

    #[test]
    fn train_size_bounds() {
        assert_eq!(train_size(500, 100), 500);
        assert_eq!(train_size(1_000_000, 10), MIN_TRAIN);
        assert_eq!(train_size(1_000_000, 1000), 1000 * TRAIN_PER_LIST);
    }
}
