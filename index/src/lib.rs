//! `quiver-index` owns vector math and vector indexes: the distance kernels
//! every search uses ([`distance`]), exact top-k selection ([`topk`]), and
//! the index trait family ([`index`]) with its implementations.
//!
//! Every index implements [`VectorIndex`]: k-nearest-neighbour search over
//! rows `0..n` (the positions of the vectors given to [`build_index`]),
//! results ordered by `(distance, row)`, an optional [`RowFilter`] that
//! restricts which rows may be returned, and a versioned, checksummed
//! little-endian serialization read back by [`load_index`] (corrupt bytes are
//! an [`IndexError`], never a panic).
//!
//! - [`flat`]: FLAT, an exact scan; the reference for approximate indexes.
//! - [`hnsw`]: HNSW, a hierarchical navigable small world graph with
//!   heuristic neighbour selection, parallel builds (seeded and deterministic
//!   with one thread), cosine via
//!   normalized inner product, and filtered search that falls back to an
//!   exact scan of the allowed rows when the filter is very selective.
//! - [`ivf`]: IVF_FLAT, an inverted file over seeded k-means lists with
//!   contiguous per-list vectors, `nprobe` probing and filtered search that
//!   keeps probing lists until enough allowed rows were scored.
//! - [`ivf_sq8`]: IVF_SQ8, the same lists over 8-bit scalar-quantized
//!   residuals (about a quarter of FLAT's memory), with distances computed
//!   on the codes and optional exact re-ranking from caller-supplied raw
//!   vectors ([`RawVectors`], [`VectorIndex::search_with_raw`]).
//! - [`eval`]: data generators and recall helpers for tests and benchmarks.
//!
//! Kernels use AVX-512F or AVX2+FMA on x86-64 (detected once at run time),
//! NEON on aarch64, and portable lane loops elsewhere; the f64 reference
//! versions exist for tests.

mod dispatch;
pub mod distance;
pub mod eval;
pub mod flat;
pub mod hnsw;
pub mod index;
pub mod ivf;
pub mod ivf_sq8;
mod kmeans;
mod serial;
pub mod topk;
mod visited;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ivf;

pub use distance::Metric;
pub use flat::FlatIndex;
pub use hnsw::HnswIndex;
pub use index::{
    build_index, load_index, BuildOptions, ContiguousVectors, IndexError, IndexKind, Neighbor,
    RawVectors, RowBitmap, RowFilter, SearchParams, VectorIndex, MAX_NLIST,
};
pub use ivf::IvfFlatIndex;
pub use ivf_sq8::IvfSq8Index;
pub use serial::FORMAT_VERSION;
