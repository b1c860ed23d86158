//! Recall, latency percentiles and QPS at a recall target.

use std::time::Duration;

/// recall@k of one query: the fraction of the first `k` true neighbours
/// (`truth`, closest first) found among the first `k` returned ids. Ids, not
/// distances, are compared, so ties at the k-th distance can cost recall
/// even for an exact search.
pub fn recall_at_k(truth: &[u32], got: &[u32], k: usize) -> f64 {
    let (hits, wanted) = hits_at_k(truth, got, k);
    if wanted == 0 {
        return 1.0;
    }
    hits as f64 / wanted as f64
}

/// `(found, wanted)` of [`recall_at_k`].
fn hits_at_k(truth: &[u32], got: &[u32], k: usize) -> (usize, usize) {
    let want = &truth[..k.min(truth.len())];
    let got = &got[..k.min(got.len())];
    (want.iter().filter(|t| got.contains(t)).count(), want.len())
}

/// Mean recall@k over all queries (`truth[i]` against `got[i]`), as total
/// hits over total wanted neighbours (exact, no float drift).
pub fn mean_recall(truth: &[Vec<u32>], got: &[Vec<u32>], k: usize) -> f64 {
    if got.is_empty() {
        return 0.0;
    }
    let (hits, wanted) = truth
        .iter()
        .zip(got)
        .map(|(t, g)| hits_at_k(t, g, k))
        .fold((0, 0), |(h, w), (a, b)| (h + a, w + b));
    if wanted == 0 {
        return 1.0;
    }
    hits as f64 / wanted as f64
}

/// The `p`-th percentile (0..=100) by nearest rank, in milliseconds.
pub fn percentile_ms(latencies: &[Duration], p: f64) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    let mut sorted: Vec<Duration> = latencies.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted[idx].as_secs_f64() * 1e3
}

/// QPS reachable at `target` recall, from the sweep points
/// `(recall, qps)`: among the Pareto-optimal points (no other point has at
/// least the recall and more QPS), linear interpolation of QPS between the
/// last point below the target and the first point at or above it. If every
/// point is at or above the target, the fastest such point; if no point
/// reaches it, `None` (no extrapolation).
pub fn qps_at_recall(points: &[(f64, f64)], target: f64) -> Option<f64> {
    let mut pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(r, q)| r.is_finite() && q.is_finite())
        .collect();
    // Highest recall first, then highest QPS, so a sweep keeps a point only
    // when it is faster than every point of higher recall.
    pts.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)));
    let mut frontier: Vec<(f64, f64)> = Vec::new();
    for p in pts {
        if frontier.last().is_none_or(|last| p.1 > last.1) {
            frontier.push(p);
        }
    }
    frontier.reverse(); // recall ascending, QPS descending
    let above = frontier.iter().position(|p| p.0 >= target)?;
    if above == 0 {
        return Some(frontier[0].1);
    }
    let (r0, q0) = frontier[above - 1];
    let (r1, q1) = frontier[above];
    Some(q0 + (q1 - q0) * (target - r0) / (r1 - r0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall() {
        assert_eq!(recall_at_k(&[1, 2, 3, 4], &[4, 3, 9, 8], 4), 0.5);
        // Only the first k of each side count.
        assert_eq!(recall_at_k(&[1, 2, 3, 4], &[2, 1, 3], 2), 1.0);
        assert_eq!(recall_at_k(&[1, 2, 3, 4], &[3, 4, 1, 2], 2), 0.0);
        // Short answers miss.
        assert_eq!(recall_at_k(&[1, 2], &[], 2), 0.0);
        assert_eq!(recall_at_k(&[], &[1], 10), 1.0);
        let truth = vec![vec![1, 2], vec![3, 4]];
        let got = vec![vec![1, 2], vec![3, 5]];
        assert_eq!(mean_recall(&truth, &got, 2), 0.75);
    }

    #[test]
    fn percentiles() {
        let lat: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&lat, 50.0), 50.0);
        assert_eq!(percentile_ms(&lat, 99.0), 99.0);
        assert_eq!(percentile_ms(&lat, 100.0), 100.0);
        assert_eq!(percentile_ms(&[Duration::from_millis(3)], 99.0), 3.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
    }

    #[test]
    fn qps_interpolation() {
        let sweep = [(0.80, 1000.0), (0.90, 800.0), (0.96, 500.0), (0.995, 200.0)];
        assert_eq!(qps_at_recall(&sweep, 0.90), Some(800.0));
        let at95 = qps_at_recall(&sweep, 0.95).unwrap();
        assert!((at95 - 550.0).abs() < 1e-9, "{at95}");
        let at99 = qps_at_recall(&sweep, 0.99).unwrap();
        assert!((at99 - (500.0 - 300.0 * 0.03 / 0.035)).abs() < 1e-9);
        // Beyond the best recall: unknown, never extrapolated.
        assert_eq!(qps_at_recall(&sweep, 0.999), None);
        // Every point above the target: the fastest one.
        assert_eq!(qps_at_recall(&sweep, 0.5), Some(1000.0));
        // Order of the sweep does not matter.
        let mut shuffled = sweep;
        shuffled.reverse();
        assert_eq!(qps_at_recall(&shuffled, 0.95), qps_at_recall(&sweep, 0.95));
        assert_eq!(qps_at_recall(&[], 0.9), None);
    }

    #[test]
    fn qps_interpolation_skips_dominated_points() {
        // A noisy point (0.93, 300) is slower than the 0.96 point: it is
        // dominated and ignored, so 0.92 interpolates between 0.90 and 0.96.
        let sweep = [(0.90, 800.0), (0.93, 300.0), (0.96, 500.0)];
        let q = qps_at_recall(&sweep, 0.92).unwrap();
        assert!((q - 700.0).abs() < 1e-9, "{q}");
        // Equal recall: the faster point counts.
        let sweep = [(0.95, 100.0), (0.95, 400.0)];
        assert_eq!(qps_at_recall(&sweep, 0.95), Some(400.0));
    }
}
