//! Distance kernels.
//!
//! Conventions follow pgvector: `L2` is the Euclidean distance (`<->`),
//! `Cosine` is `1 - cosine similarity` (`<=>`), `NegativeInnerProduct` is
//! `-(a·b)` (`<#>`), `L1` the taxicab distance (`<+>`). Smaller is closer for
//! every metric, so one top-k routine serves them all.
//!
//! # Kernels
//!
//! [`l2_squared`], [`inner_product`] and [`l1`] dispatch to the best kernel
//! set the CPU supports, chosen once (on first use) and cached in a static of
//! function pointers, so the hot path pays one indirect call and no feature
//! detection:
//!
//! - x86-64: AVX-512F (16 lanes, masked tail), else AVX2+FMA (8 lanes,
//!   masked tail), detected at run time with `is_x86_feature_detected!`;
//! - aarch64: NEON (part of the base target);
//! - everywhere: [`portable`](Kernels::portable) lane loops the compiler
//!   vectorizes for the baseline target.
//!
//! [`active_kernels`] names the chosen set and [`available_kernels`] lists
//! every set this CPU can run, so tests and benchmarks can call each one
//! explicitly. Different sets sum in different orders, so results may differ
//! in the last bits between machines (never between calls on one machine).

use std::sync::OnceLock;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod arm;
mod kernels;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use kernels::Kernels;

static AVAILABLE: OnceLock<Vec<Kernels>> = OnceLock::new();

/// Every kernel set this CPU can run, best first; the last is always
/// [`Kernels::portable`].
pub fn available_kernels() -> &'static [Kernels] {
    AVAILABLE.get_or_init(|| {
        #[allow(unused_mut)]
        let mut sets = Vec::new();
        #[cfg(target_arch = "x86_64")]
        sets.extend(x86::sets());
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        sets.extend(arm::sets());
        sets.push(Kernels::portable());
        sets
    })
}

static ACTIVE: OnceLock<Kernels> = OnceLock::new();

/// The kernel set every distance function uses: the first of
/// [`available_kernels`].
#[inline]
pub fn kernels() -> &'static Kernels {
    ACTIVE.get_or_init(|| available_kernels()[0])
}

/// The name of the active kernel set (see [`Kernels::name`]).
pub fn active_kernels() -> &'static str {
    kernels().name
}

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

/// Squared Euclidean distance, with the active kernel set.
///
/// # Panics
/// When `a` and `b` have different lengths.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    (kernels().l2_squared)(a, b)
}

/// Inner product, with the active kernel set.
///
/// # Panics
/// When `a` and `b` have different lengths.
#[inline]
pub fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    (kernels().inner_product)(a, b)
}

/// L1 (taxicab) distance, with the active kernel set.
///
/// # Panics
/// When `a` and `b` have different lengths.
#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    (kernels().l1)(a, b)
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

/// Scales `v` to unit length; leaves a zero vector alone.
pub fn normalize(v: &mut [f32]) {
    let norm = (inner_product(v, v) as f64).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x = (*x as f64 / norm) as f32);
    }
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
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// `|got - want| <= rel * scale + abs`, where `scale` bounds the rounding
    /// error of any summation order (the sum of the absolute terms).
    fn close(got: f32, want: f64, scale: f64) -> bool {
        (got as f64 - want).abs() <= 2e-5 * scale + 1e-30
    }

    /// Checks every available kernel set against the f64 reference.
    fn check_all(a: &[f32], b: &[f32]) -> Result<(), String> {
        let l2 = reference::l2_squared(a, b);
        let ip = reference::inner_product(a, b);
        let ip_scale: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (*x as f64 * *y as f64).abs())
            .sum();
        let l1 = reference::l1(a, b);
        for k in available_kernels() {
            let n = a.len();
            let got = (k.l2_squared)(a, b);
            if !close(got, l2, l2) {
                return Err(format!("{} l2_squared len {n}: {got} vs {l2}", k.name));
            }
            let got = (k.inner_product)(a, b);
            if !close(got, ip, ip_scale) {
                return Err(format!("{} inner_product len {n}: {got} vs {ip}", k.name));
            }
            let got = (k.l1)(a, b);
            if !close(got, l1, l1) {
                return Err(format!("{} l1 len {n}: {got} vs {l1}", k.name));
            }
        }
        Ok(())
    }

    /// Element values: small, large and mixed magnitudes.
    fn element() -> impl Strategy<Value = f32> {
        prop_oneof![
            -1.0f32..1.0,
            -1e4f32..1e4,
            (-3.0f32..3.0).prop_map(|e| 10f32.powf(e))
        ]
    }

    /// Two vectors of one random length in `0..=2100`, starting at a random
    /// offset into their buffers so loads are unaligned.
    fn pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, usize, usize)> {
        (0usize..=2100, 0usize..16, 0usize..16).prop_flat_map(|(n, oa, ob)| {
            (
                prop::collection::vec(element(), n + oa),
                prop::collection::vec(element(), n + ob),
                Just(oa),
                Just(ob),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn every_kernel_matches_f64_reference((a, b, oa, ob) in pair()) {
            check_all(&a[oa..], &b[ob..]).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn every_length_up_to_80() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for n in 0..=80 {
            let a: Vec<f32> = (0..n).map(|_| rng.gen_range(-10.0..10.0)).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.gen_range(-10.0..10.0)).collect();
            check_all(&a, &b).unwrap();
        }
    }

    #[test]
    fn active_set_is_the_best_available() {
        let all = available_kernels();
        assert_eq!(all.last().unwrap().name, "portable");
        assert_eq!(active_kernels(), all[0].name);
        #[cfg(target_arch = "x86_64")]
        {
            let names: Vec<&str> = all.iter().map(|k| k.name).collect();
            assert_eq!(
                names.contains(&"avx512"),
                std::arch::is_x86_feature_detected!("avx512f")
            );
            assert_eq!(
                names.contains(&"avx2"),
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            );
        }
        eprintln!(
            "kernel sets: {:?}",
            all.iter().map(|k| k.name).collect::<Vec<_>>()
        );
    }

    #[test]
    #[should_panic(expected = "different lengths")]
    fn different_lengths_panic() {
        l2_squared(&[1.0, 2.0], &[1.0]);
    }

    #[test]
    fn different_lengths_panic_in_every_set() {
        for k in available_kernels() {
            for f in [k.l2_squared, k.inner_product, k.l1] {
                let r = std::panic::catch_unwind(|| f(&[1.0; 20], &[1.0; 19]));
                assert!(r.is_err(), "{}", k.name);
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
