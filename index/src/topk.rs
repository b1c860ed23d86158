//! Exact top-k selection with deterministic tie-breaking.
//!
//! Candidates are `(distance, tiebreak)` pairs; the result is ordered by
//! distance ascending, then by the tiebreak key ascending (the primary key in
//! Quiver), which is the order an exact `ORDER BY dist, pk` returns. NaN
//! distances sort last, as Postgres sorts NaN above every number.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One scored candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored<K> {
    pub distance: f64,
    pub key: K,
}

impl<K: Ord> Eq for Scored<K> {}

impl<K: Ord> PartialOrd for Scored<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord> Ord for Scored<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then_with(|| self.key.cmp(&other.key))
    }
}

/// Keeps the k smallest candidates seen.
#[derive(Debug)]
pub struct TopK<K: Ord> {
    k: usize,
    heap: BinaryHeap<Scored<K>>,
}

impl<K: Ord> TopK<K> {
    /// An empty selector for `k` results.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k.min(1 << 16) + 1),
        }
    }

    /// The current worst kept distance, when k candidates are held.
    #[inline]
    pub fn threshold(&self) -> Option<f64> {
        if self.heap.len() < self.k {
            None
        } else {
            self.heap.peek().map(|s| s.distance)
        }
    }

    /// Offers a candidate.
    #[inline]
    pub fn push(&mut self, distance: f64, key: K) {
        if self.k == 0 {
            return;
        }
        let distance = if distance.is_nan() {
            f64::INFINITY
        } else {
            distance
        };
        let candidate = Scored { distance, key };
        if self.heap.len() < self.k {
            self.heap.push(candidate);
        } else if let Some(worst) = self.heap.peek() {
            if candidate < *worst {
                self.heap.pop();
                self.heap.push(candidate);
            }
        }
    }

    /// Merges another selector into this one.
    pub fn merge(&mut self, other: TopK<K>) {
        for s in other.heap {
            self.push(s.distance, s.key);
        }
    }

    /// The kept candidates, closest first.
    pub fn into_sorted(self) -> Vec<Scored<K>> {
        self.heap.into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_smallest_with_key_tiebreak() {
        let mut top = TopK::new(3);
        for (d, k) in [
            (5.0, 1),
            (1.0, 9),
            (1.0, 3),
            (2.0, 4),
            (f64::NAN, 0),
            (1.0, 5),
        ] {
            top.push(d, k);
        }
        let keys: Vec<i32> = top.into_sorted().into_iter().map(|s| s.key).collect();
        assert_eq!(keys, vec![3, 5, 9]);
    }
}
