//! Portable kernels: fixed-width lane loops with independent accumulators,
//! which the compiler vectorizes for the baseline target (SSE2 on x86-64,
//! NEON on aarch64). The fallback on every CPU, and the set the SIMD kernels
//! are compared with in benchmarks.

const LANES: usize = 16;

/// Squared Euclidean distance.
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    let mut acc = [0f32; LANES];
    let (xs, x_tail) = a.as_chunks::<LANES>();
    let (ys, y_tail) = b.as_chunks::<LANES>();
    for (x, y) in xs.iter().zip(ys) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in x_tail.iter().zip(y_tail) {
        let d = x - y;
        sum += d * d;
    }
    sum
}

/// Inner product.
pub fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    let mut acc = [0f32; LANES];
    let (xs, x_tail) = a.as_chunks::<LANES>();
    let (ys, y_tail) = b.as_chunks::<LANES>();
    for (x, y) in xs.iter().zip(ys) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in x_tail.iter().zip(y_tail) {
        sum += x * y;
    }
    sum
}

/// L1 (taxicab) distance.
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    let mut acc = [0f32; LANES];
    let (xs, x_tail) = a.as_chunks::<LANES>();
    let (ys, y_tail) = b.as_chunks::<LANES>();
    for (x, y) in xs.iter().zip(ys) {
        for i in 0..LANES {
            acc[i] += (x[i] - y[i]).abs();
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in x_tail.iter().zip(y_tail) {
        sum += (x - y).abs();
    }
    sum
}
