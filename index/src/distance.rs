//! Distance kernels.
//!
//! Conventions follow pgvector: `L2` is the Euclidean distance (`<->`),
//! `Cosine` is `1 - cosine similarity` (`<=>`), `NegativeInnerProduct` is
//! `-(a·b)` (`<#>`), `L1` the taxicab distance (`<+>`). Smaller is closer for
//! every metric, so one top-k routine serves them all.

const LANES: usize = 16;

/// A distance metric; smaller values are closer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    L2,
    Cosine,
    NegativeInnerProduct,
    L1,
}

impl Metric {
    /// Distance between two vectors of equal length.
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Metric::L2 => (l2_squared(a, b) as f64).sqrt(),
            Metric::Cosine => cosine_distance(a, b),
            Metric::NegativeInnerProduct => -(inner_product(a, b) as f64),
            Metric::L1 => l1(a, b) as f64,
        }
    }

    /// The pgvector function name of the metric.
    pub fn function_name(self) -> &'static str {
        match self {
            Metric::L2 => "l2_distance",
            Metric::Cosine => "cosine_distance",
            Metric::NegativeInnerProduct => "negative_inner_product",
            Metric::L1 => "l1_distance",
        }
    }

    /// The pgvector operator of the metric.
    pub fn operator(self) -> &'static str {
        match self {
            Metric::L2 => "<->",
            Metric::Cosine => "<=>",
            Metric::NegativeInnerProduct => "<#>",
            Metric::L1 => "<+>",
        }
    }
}

/// Squared Euclidean distance.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let chunks = a.len() / LANES;
    for c in 0..chunks {
        let x = &a[c * LANES..(c + 1) * LANES];
        let y = &b[c * LANES..(c + 1) * LANES];
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * LANES..a.len() {
        let d = a[i] - b[i];
        sum += d * d;
    }
    sum
}

/// Inner product.
#[inline]
pub fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let chunks = a.len() / LANES;
    for c in 0..chunks {
        let x = &a[c * LANES..(c + 1) * LANES];
        let y = &b[c * LANES..(c + 1) * LANES];
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * LANES..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

/// L1 (taxicab) distance.
#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let chunks = a.len() / LANES;
    for c in 0..chunks {
        let x = &a[c * LANES..(c + 1) * LANES];
        let y = &b[c * LANES..(c + 1) * LANES];
        for i in 0..LANES {
            acc[i] += (x[i] - y[i]).abs();
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * LANES..a.len() {
        sum += (a[i] - b[i]).abs();
    }
    sum
}

/// `1 - cos(a, b)`; NaN when either vector has zero norm (as pgvector).
#[inline]
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    cosine_from_parts(
        inner_product(a, b),
        inner_product(a, a),
        inner_product(b, b),
    )
}

/// `1 - cos` from a precomputed dot product and squared norms; bit-identical
/// to [`cosine_distance`] when the parts come from [`inner_product`]. Lets an
/// exact scan precompute row norms without changing a single result.
#[inline]
pub fn cosine_from_parts(dot: f32, a_sq_norm: f32, b_sq_norm: f32) -> f64 {
    let (dot, na, nb) = (dot as f64, a_sq_norm as f64, b_sq_norm as f64);
    if na == 0.0 || nb == 0.0 {
        return f64::NAN;
    }
    let sim = (dot / (na * nb).sqrt()).clamp(-1.0, 1.0);
    1.0 - sim
}

/// Euclidean norm.
pub fn norm(a: &[f32]) -> f64 {
    (inner_product(a, a) as f64).sqrt()
}

/// Scalar reference implementations, used to test the lane kernels.
pub mod reference {
    /// Squared L2, one element at a time in f64.
    pub fn l2_squared(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| ((*x - *y) as f64).powi(2))
            .sum()
    }
    /// Inner product in f64.
    pub fn inner_product(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }
    /// L1 in f64.
    pub fn l1(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| ((*x - *y) as f64).abs()).sum()
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn kernels_match_reference_on_random_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for dim in [1usize, 3, 15, 16, 17, 64, 100, 784] {
            for _ in 0..20 {
                let a: Vec<f32> = (0..dim).map(|_| rng.gen_range(-10.0..10.0)).collect();
                let b: Vec<f32> = (0..dim).map(|_| rng.gen_range(-10.0..10.0)).collect();
                let tol = |x: f64| 1e-4 * x.abs().max(1.0);
                let r = reference::l2_squared(&a, &b);
                assert!(
                    (l2_squared(&a, &b) as f64 - r).abs() <= tol(r),
                    "l2 dim {dim}"
                );
                let r = reference::inner_product(&a, &b);
                assert!(
                    (inner_product(&a, &b) as f64 - r).abs() <= tol(r) + 1e-2,
                    "ip dim {dim}"
                );
                let r = reference::l1(&a, &b);
                assert!((l1(&a, &b) as f64 - r).abs() <= tol(r), "l1 dim {dim}");
            }
        }
    }

    #[test]
    fn pgvector_conventions() {
        let a = [1.0, 2.0, 3.0];
        let b = [4.0, 5.0, 6.0];
        assert!((Metric::L2.distance(&a, &b) - 27f64.sqrt()).abs() < 1e-6);
        assert!((Metric::NegativeInnerProduct.distance(&a, &b) + 32.0).abs() < 1e-6);
        assert!((Metric::L1.distance(&a, &b) - 9.0).abs() < 1e-6);
        assert!(Metric::Cosine.distance(&a, &a).abs() < 1e-6);
        assert!(Metric::Cosine.distance(&a, &[0.0, 0.0, 0.0]).is_nan());
    }
}
