//! FLAT: an exact scan over contiguous vectors. Every distance is computed
//! exactly as [`Metric::distance`] computes it (rounded to `f32`) and the
//! `k` best are kept by [`TopK`] with the row id as tie-break, so the result
//! is the exact `ORDER BY dist, row` answer. It is the reference every
//! approximate index is tested against, and the fallback they use for very
//! selective filters.

use crate::distance::{cosine_from_parts, inner_product, Metric};
use crate::index::{
    validate_vectors, IndexError, IndexKind, Neighbor, RowFilter, SearchParams, VectorIndex,
};
use crate::serial::{Header, Reader, Writer};
use crate::topk::TopK;

/// Exact-scan index.
#[derive(Debug, Clone)]
pub struct FlatIndex {
    metric: Metric,
    dim: usize,
    n: usize,
    vectors: Vec<f32>,
    /// Squared norms, kept for cosine only (empty otherwise).
    sq_norms: Vec<f32>,
}

impl FlatIndex {
    /// Builds over `vectors` (`n * dim` floats, row-major).
    pub fn build(metric: Metric, dim: usize, vectors: &[f32]) -> Result<Self, IndexError> {
        let n = validate_vectors(dim, vectors)?;
        Ok(Self::from_parts(metric, dim, n, vectors.to_vec()))
    }

    fn from_parts(metric: Metric, dim: usize, n: usize, vectors: Vec<f32>) -> Self {
        let sq_norms = if metric == Metric::Cosine {
            vectors
                .chunks_exact(dim)
                .map(|v| inner_product(v, v))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            metric,
            dim,
            n,
            vectors,
            sq_norms,
        }
    }

    /// The vector of `row`.
    pub fn vector(&self, row: u32) -> &[f32] {
        let i = row as usize * self.dim;
        &self.vectors[i..i + self.dim]
    }

    pub(crate) fn read(header: &Header, r: &mut Reader<'_>) -> Result<Self, IndexError> {
        let vectors = header.read_vectors(r)?;
        Ok(Self::from_parts(
            header.metric,
            header.dim,
            header.n,
            vectors,
        ))
    }
}

/// Exact top-k over row-major `vectors` (`dim` floats per row), scoring with
/// [`Metric::distance`] semantics. `sq_norms` may hold precomputed squared
/// norms for cosine (or be empty). Shared by FLAT and the HNSW fallback.
pub(crate) fn exact_scan(
    metric: Metric,
    dim: usize,
    vectors: &[f32],
    sq_norms: &[f32],
    query: &[f32],
    k: usize,
    filter: Option<&dyn RowFilter>,
) -> Vec<Neighbor> {
    if k == 0 || query.len() != dim {
        return Vec::new();
    }
    let q_sq = inner_product(query, query);
    let score = |row: usize| -> f32 {
        let v = &vectors[row * dim..(row + 1) * dim];
        let d = match metric {
            Metric::Cosine => {
                let v_sq = sq_norms
                    .get(row)
                    .copied()
                    .unwrap_or_else(|| inner_product(v, v));
                cosine_from_parts(inner_product(query, v), q_sq, v_sq)
            }
            other => other.distance(query, v),
        };
        d as f32
    };
    let mut top = TopK::new(k);
    for row in 0..vectors.len() / dim {
        if let Some(f) = filter {
            if !f.allows(row as u32) {
                continue;
            }
        }
        // Rank on the reported f32 value so ties are broken by row exactly
        // as the caller sees them.
        top.push(score(row) as f64, row as u32);
    }
    top.into_sorted()
        .into_iter()
        .map(|s| Neighbor {
            row: s.key,
            // TopK maps NaN to infinity; report the true value.
            distance: score(s.key as usize),
        })
        .collect()
}

impl VectorIndex for FlatIndex {
    fn kind(&self) -> IndexKind {
        IndexKind::Flat
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.n
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        _params: &SearchParams,
        filter: Option<&dyn RowFilter>,
    ) -> Vec<Neighbor> {
        exact_scan(
            self.metric,
            self.dim,
            &self.vectors,
            &self.sq_norms,
            query,
            k,
            filter,
        )
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_header(IndexKind::Flat, self.metric, self.dim, self.n);
        w.f32s(&self.vectors);
        w.finish()
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + (self.vectors.capacity() + self.sq_norms.capacity()) * 4
    }
}
