//! aarch64 kernels with NEON (Advanced SIMD), which every aarch64 CPU has:
//! this module is compiled only when the target enables `neon`, so no run-time
//! detection is needed. Four 4-lane accumulators, then a 4-lane step, then
//! a scalar tail.

use std::arch::aarch64::*;

macro_rules! neon_kernel {
    ($(#[$doc:meta])* $name:ident, |$acc:ident, $x:ident, $y:ident| $step:expr, |$sx:ident, $sy:ident| $scalar:expr) => {
        $(#[$doc])*
        pub(super) fn $name(a: &[f32], b: &[f32]) -> f32 {
            assert_eq!(a.len(), b.len(), "vectors of different lengths");
            let n = a.len();
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            // SAFETY: NEON is enabled for the whole target (module cfg); every
            // load reads 4 floats at offsets `i..i + 4 <= n` of both slices.
            unsafe {
                let mut accs = [vdupq_n_f32(0.0); 4];
                let mut i = 0;
                while i + 16 <= n {
                    for (j, $acc) in accs.iter_mut().enumerate() {
                        let $x = vld1q_f32(pa.add(i + 4 * j));
                        let $y = vld1q_f32(pb.add(i + 4 * j));
                        *$acc = $step;
                    }
                    i += 16;
                }
                while i + 4 <= n {
                    let $acc = &mut accs[0];
                    let $x = vld1q_f32(pa.add(i));
                    let $y = vld1q_f32(pb.add(i));
                    *$acc = $step;
                    i += 4;
                }
                let total = vaddq_f32(vaddq_f32(accs[0], accs[1]), vaddq_f32(accs[2], accs[3]));
                let mut sum = vaddvq_f32(total);
                while i < n {
                    let ($sx, $sy) = (*pa.add(i), *pb.add(i));
                    sum += $scalar;
                    i += 1;
                }
                sum
            }
        }
    };
}

neon_kernel!(
    /// Squared Euclidean distance.
    l2_squared,
    |acc, x, y| {
        let d = vsubq_f32(x, y);
        vfmaq_f32(*acc, d, d)
    },
    |x, y| (x - y) * (x - y)
);

neon_kernel!(
    /// Inner product.
    inner_product,
    |acc, x, y| vfmaq_f32(*acc, x, y),
    |x, y| x * y
);

neon_kernel!(
    /// L1 (taxicab) distance.
    l1,
    |acc, x, y| vaddq_f32(*acc, vabdq_f32(x, y)),
    |x, y| (x - y).abs()
);

/// The NEON kernel set.
pub(super) fn sets() -> Vec<super::kernels::Kernels> {
    vec![super::kernels::Kernels {
        name: "neon",
        l2_squared,
        inner_product,
        l1,
    }]
}
