//! Building and loading an index of any kind: [`build_index`] and
//! [`load_index`] choose FLAT, HNSW, IVF_FLAT or IVF_SQ8 from an
//! [`IndexKind`]. The only module that names every index type; nothing in
//! the crate imports it (`index` re-exports both functions).

use crate::distance::Metric;
use crate::flat::FlatIndex;
use crate::hnsw::HnswIndex;
use crate::index::{BuildOptions, IndexError, IndexKind, VectorIndex};
use crate::ivf::IvfFlatIndex;
use crate::ivf_sq8::IvfSq8Index;
use crate::serial::{Header, Reader};

/// Builds an index of `kind` over `vectors` (`n * dim` floats, row-major).
pub fn build_index(
    kind: IndexKind,
    metric: Metric,
    dim: usize,
    vectors: &[f32],
    options: &BuildOptions,
) -> Result<Box<dyn VectorIndex>, IndexError> {
    Ok(match kind {
        IndexKind::Flat => Box::new(FlatIndex::build(metric, dim, vectors)?),
        IndexKind::Hnsw => Box::new(HnswIndex::build(metric, dim, vectors, options)?),
        IndexKind::IvfFlat => Box::new(IvfFlatIndex::build(metric, dim, vectors, options)?),
        IndexKind::IvfSq8 => Box::new(IvfSq8Index::build(metric, dim, vectors, options)?),
    })
}

/// Loads bytes written by [`VectorIndex::to_bytes`]. Corrupt or truncated
/// input yields an error, never a panic.
pub fn load_index(bytes: &[u8]) -> Result<Box<dyn VectorIndex>, IndexError> {
    let mut reader = Reader::open(bytes)?;
    let header = Header::read(&mut reader)?;
    let index: Box<dyn VectorIndex> = match header.kind {
        IndexKind::Flat => Box::new(FlatIndex::read(&header, &mut reader)?),
        IndexKind::Hnsw => Box::new(HnswIndex::read(&header, &mut reader)?),
        IndexKind::IvfFlat => Box::new(IvfFlatIndex::read(&header, &mut reader)?),
        IndexKind::IvfSq8 => Box::new(IvfSq8Index::read(&header, &mut reader)?),
    };
    reader.finish()?;
    Ok(index)
}
