//! `quiver-index` owns vector math: the distance kernels every search uses
//! ([`distance`]) and exact top-k selection ([`topk`]). Approximate indexes
//! (HNSW, IVF, quantized) join this crate behind one trait family.
//!
//! Kernels are written as fixed-width lane loops with independent
//! accumulators so the compiler emits SIMD code (SSE/AVX on x86-64, NEON on
//! arm) without `unsafe`; the scalar reference versions exist for tests.

pub mod distance;
pub mod topk;

pub use distance::Metric;
