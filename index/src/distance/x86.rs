//! x86-64 kernels: AVX-512F and AVX2+FMA, chosen at run time.
//!
//! Each `unsafe` kernel requires its target features; the safe wrappers at
//! the bottom are only handed out (through [`super::kernels::Kernels`]) after
//! `is_x86_feature_detected!` confirmed them, and they check that both
//! slices have the same length, so every load stays in bounds.
//!
//! Tails: AVX-512 finishes with one masked load (masked-out lanes are never
//! read, so they cannot fault); AVX2 finishes with `vmaskmovps` the same way.

use std::arch::x86_64::*;

// ---------------------------------------------------------------- AVX-512F

/// Sum of the 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn hsum512(v: __m512) -> f32 {
    _mm512_reduce_add_ps(v)
}

/// # Safety
/// The CPU must support AVX-512F and `a.len() == b.len()`.
#[target_feature(enable = "avx512f")]
unsafe fn l2_squared_avx512(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the caller guarantees what `# Safety` above requires (the
    // target features, equal lengths); every offset used stays below `n`.
    unsafe {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let d = _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 16 * j)),
                    _mm512_loadu_ps(pb.add(i + 16 * j)),
                );
                *acc = _mm512_fmadd_ps(d, d, *acc);
            }
            i += 64;
        }
        while i + 16 <= n {
            let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            let d = _mm512_sub_ps(
                _mm512_maskz_loadu_ps(mask, pa.add(i)),
                _mm512_maskz_loadu_ps(mask, pb.add(i)),
            );
            acc[1] = _mm512_fmadd_ps(d, d, acc[1]);
        }
        hsum512(_mm512_add_ps(
            _mm512_add_ps(acc[0], acc[1]),
            _mm512_add_ps(acc[2], acc[3]),
        ))
    }
}

/// # Safety
/// The CPU must support AVX-512F and `a.len() == b.len()`.
#[target_feature(enable = "avx512f")]
unsafe fn inner_product_avx512(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the caller guarantees what `# Safety` above requires (the
    // target features, equal lengths); every offset used stays below `n`.
    unsafe {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 16 * j)),
                    _mm512_loadu_ps(pb.add(i + 16 * j)),
                    *acc,
                );
            }
            i += 64;
        }
        while i + 16 <= n {
            acc[0] = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(i)),
                _mm512_loadu_ps(pb.add(i)),
                acc[0],
            );
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            acc[1] = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(mask, pa.add(i)),
                _mm512_maskz_loadu_ps(mask, pb.add(i)),
                acc[1],
            );
        }
        hsum512(_mm512_add_ps(
            _mm512_add_ps(acc[0], acc[1]),
            _mm512_add_ps(acc[2], acc[3]),
        ))
    }
}

/// # Safety
/// The CPU must support AVX-512F and `a.len() == b.len()`.
#[target_feature(enable = "avx512f")]
unsafe fn l1_avx512(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the caller guarantees what `# Safety` above requires (the
    // target features, equal lengths); every offset used stays below `n`.
    unsafe {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let d = _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 16 * j)),
                    _mm512_loadu_ps(pb.add(i + 16 * j)),
                );
                *acc = _mm512_add_ps(*acc, _mm512_abs_ps(d));
            }
            i += 64;
        }
        while i + 16 <= n {
            let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            acc[0] = _mm512_add_ps(acc[0], _mm512_abs_ps(d));
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            let d = _mm512_sub_ps(
                _mm512_maskz_loadu_ps(mask, pa.add(i)),
                _mm512_maskz_loadu_ps(mask, pb.add(i)),
            );
            acc[1] = _mm512_add_ps(acc[1], _mm512_abs_ps(d));
        }
        hsum512(_mm512_add_ps(
            _mm512_add_ps(acc[0], acc[1]),
            _mm512_add_ps(acc[2], acc[3]),
        ))
    }
}

// ---------------------------------------------------------------- AVX2+FMA

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum256(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Load mask for the first `r` (< 8) lanes: `r` all-ones words then zeros.
#[inline]
#[target_feature(enable = "avx2")]
fn tail_mask256(r: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(r as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// All bits but the sign.
#[inline]
#[target_feature(enable = "avx2")]
fn abs256(v: __m256) -> __m256 {
    _mm256_andnot_ps(_mm256_set1_ps(-0.0), v)
}

/// # Safety
/// The CPU must support AVX2 and FMA, and `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn l2_squared_avx2(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the caller guarantees what `# Safety` above requires (the
    // target features, equal lengths); every offset used stays below `n`.
    unsafe {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let d = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm256_loadu_ps(pb.add(i + 8 * j)),
                );
                *acc = _mm256_fmadd_ps(d, d, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
            i += 8;
        }
        if i < n {
            let mask = tail_mask256(n - i);
            let d = _mm256_sub_ps(
                _mm256_maskload_ps(pa.add(i), mask),
                _mm256_maskload_ps(pb.add(i), mask),
            );
            acc[1] = _mm256_fmadd_ps(d, d, acc[1]);
        }
        hsum256(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ))
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA, and `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn inner_product_avx2(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the caller guarantees what `# Safety` above requires (the
    // target features, equal lengths); every offset used stays below `n`.
    unsafe {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm256_loadu_ps(pb.add(i + 8 * j)),
                    *acc,
                );
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i)),
                _mm256_loadu_ps(pb.add(i)),
                acc[0],
            );
            i += 8;
        }
        if i < n {
            let mask = tail_mask256(n - i);
            acc[1] = _mm256_fmadd_ps(
                _mm256_maskload_ps(pa.add(i), mask),
                _mm256_maskload_ps(pb.add(i), mask),
                acc[1],
            );
        }
        hsum256(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ))
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA, and `a.len() == b.len()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn l1_avx2(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the caller guarantees what `# Safety` above requires (the
    // target features, equal lengths); every offset used stays below `n`.
    unsafe {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let d = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm256_loadu_ps(pb.add(i + 8 * j)),
                );
                *acc = _mm256_add_ps(*acc, abs256(d));
            }
            i += 32;
        }
        while i + 8 <= n {
            let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            acc[0] = _mm256_add_ps(acc[0], abs256(d));
            i += 8;
        }
        if i < n {
            let mask = tail_mask256(n - i);
            let d = _mm256_sub_ps(
                _mm256_maskload_ps(pa.add(i), mask),
                _mm256_maskload_ps(pb.add(i), mask),
            );
            acc[1] = _mm256_add_ps(acc[1], abs256(d));
        }
        hsum256(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ))
    }
}

// ---------------------------------------------------------------- wrappers

/// Safe entry points. Only reachable through the kernel sets built by
/// [`sets`], which checks the CPU features first.
macro_rules! wrapper {
    ($name:ident, $kernel:ident) => {
        fn $name(a: &[f32], b: &[f32]) -> f32 {
            assert_eq!(a.len(), b.len(), "vectors of different lengths");
            // SAFETY: handed out only after feature detection (see `sets`);
            // equal lengths checked above.
            unsafe { $kernel(a, b) }
        }
    };
}

wrapper!(l2_squared_avx512_checked, l2_squared_avx512);
wrapper!(inner_product_avx512_checked, inner_product_avx512);
wrapper!(l1_avx512_checked, l1_avx512);
wrapper!(l2_squared_avx2_checked, l2_squared_avx2);
wrapper!(inner_product_avx2_checked, inner_product_avx2);
wrapper!(l1_avx2_checked, l1_avx2);

/// The x86-64 kernel sets this CPU supports, best first.
pub(super) fn sets() -> Vec<super::kernels::Kernels> {
    let mut out = Vec::new();
    if is_x86_feature_detected!("avx512f") {
        out.push(super::kernels::Kernels {
            name: "avx512",
            l2_squared: l2_squared_avx512_checked,
            inner_product: inner_product_avx512_checked,
            l1: l1_avx512_checked,
        });
    }
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        out.push(super::kernels::Kernels {
            name: "avx2",
            l2_squared: l2_squared_avx2_checked,
            inner_product: inner_product_avx2_checked,
            l1: l1_avx2_checked,
        });
    }
    out
}
