//! The vector index trait family: one object-safe trait, [`VectorIndex`],
//! implemented by every index kind, and the types every kind shares (kinds,
//! options, filters, results, errors). The building ([`build_index`]) and
//! loading ([`load_index`]) entry points that dispatch on [`IndexKind`] live
//! in `dispatch` (they name every kind) and are re-exported here.
//!
//! Rows are identified by their position `0..n` in the vectors given to
//! [`build_index`]. Every search returns at most `k` [`Neighbor`]s ordered by
//! `(distance, row)`, which matches an exact `ORDER BY dist, row`.

use std::cmp::Ordering;

use thiserror::Error;

use crate::distance::Metric;

pub use crate::dispatch::{build_index, load_index};

/// Which index structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexKind {
    /// Exact scan; the reference for every approximate index.
    Flat,
    /// Hierarchical navigable small world graph.
    Hnsw,
    /// Inverted file: k-means lists of full-precision vectors.
    IvfFlat,
    /// Inverted file with 8-bit scalar-quantized vectors.
    IvfSq8,
}

impl IndexKind {
    /// The index method name as written in `CREATE INDEX ... USING`.
    pub fn name(self) -> &'static str {
        match self {
            IndexKind::Flat => "flat",
            IndexKind::Hnsw => "hnsw",
            IndexKind::IvfFlat => "ivfflat",
            IndexKind::IvfSq8 => "ivf_sq8",
        }
    }

    /// Whether the index stores quantized codes instead of the vectors (its
    /// distances are approximate; callers re-rank its candidates exactly).
    pub fn is_quantized(self) -> bool {
        matches!(self, IndexKind::IvfSq8)
    }

    /// Parses an index method name, ignoring ASCII case: `flat`, `hnsw`,
    /// `ivfflat` (or `ivf_flat`), `ivf_sq8`.
    pub fn parse(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        Some(match lower.as_str() {
            "flat" => IndexKind::Flat,
            "hnsw" => IndexKind::Hnsw,
            "ivfflat" | "ivf_flat" => IndexKind::IvfFlat,
            "ivf_sq8" => IndexKind::IvfSq8,
            _ => return None,
        })
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            IndexKind::Flat => 1,
            IndexKind::Hnsw => 2,
            IndexKind::IvfFlat => 3,
            IndexKind::IvfSq8 => 4,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(IndexKind::Flat),
            2 => Some(IndexKind::Hnsw),
            3 => Some(IndexKind::IvfFlat),
            4 => Some(IndexKind::IvfSq8),
            _ => None,
        }
    }
}

/// Per-query knobs; `None` means the index default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchParams {
    /// HNSW `ef_search` (candidate list size); default `max(40, k)`.
    pub ef: Option<usize>,
    /// IVF lists to probe, clamped to `1..=nlist`; default 1 (pgvector's
    /// `ivfflat.probes` default). Unused by FLAT and HNSW.
    pub nprobe: Option<usize>,
    /// IVF_SQ8 exact re-rank, as a candidate multiplier: `Some(m)` with
    /// `m >= 1` fetches the `k * m` best rows by code distance and re-scores
    /// them exactly with the raw vectors given to
    /// [`VectorIndex::search_with_raw`]. `None` or `Some(0)`, or no raw
    /// vectors, means no re-rank (code distances are reported). Ignored by
    /// the other kinds, whose distances are already exact.
    pub rerank: Option<usize>,
}

/// A predicate over row ids, evaluated during search.
pub trait RowFilter: Sync {
    /// Whether `row` may appear in the result.
    fn allows(&self, row: u32) -> bool;

    /// The fraction of rows allowed, when the filter knows it cheaply.
    /// Indexes use it to choose between graph traversal and an exact scan of
    /// the allowed rows; `None` makes them estimate it by sampling.
    fn allowed_fraction(&self) -> Option<f64> {
        None
    }
}

impl<F: Fn(u32) -> bool + Sync> RowFilter for F {
    fn allows(&self, row: u32) -> bool {
        self(row)
    }
}

/// Rows sampled to estimate a filter's selectivity when it cannot say.
const FILTER_SAMPLE: usize = 512;

/// The fraction of rows `0..n` that `filter` allows: its own answer when it
/// knows it, else an evenly spaced sample of rows.
pub(crate) fn estimate_allowed_fraction(filter: &dyn RowFilter, n: usize) -> f64 {
    if let Some(f) = filter.allowed_fraction() {
        return f;
    }
    let samples = n.min(FILTER_SAMPLE);
    if samples == 0 {
        return 1.0;
    }
    let allowed = (0..samples)
        .filter(|&i| filter.allows((i * n / samples) as u32))
        .count();
    allowed as f64 / samples as f64
}

/// A fixed-size set of allowed rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowBitmap {
    words: Vec<u64>,
    len: usize,
    count: usize,
}

impl RowBitmap {
    /// A bitmap over rows `0..len` with nothing allowed.
    pub fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
            len,
            count: 0,
        }
    }

    /// A bitmap over rows `0..len` allowing exactly `rows` (ids `>= len` are
    /// ignored).
    pub fn from_rows(len: usize, rows: impl IntoIterator<Item = u32>) -> Self {
        let mut bitmap = Self::new(len);
        for row in rows {
            bitmap.insert(row);
        }
        bitmap
    }

    /// Allows `row`; returns whether it was newly allowed.
    pub fn insert(&mut self, row: u32) -> bool {
        let i = row as usize;
        if i >= self.len {
            return false;
        }
        let (w, bit) = (i / 64, 1u64 << (i % 64));
        let new = self.words[w] & bit == 0;
        self.words[w] |= bit;
        self.count += new as usize;
        new
    }

    /// Whether `row` is allowed.
    #[inline]
    pub fn contains(&self, row: u32) -> bool {
        let i = row as usize;
        i < self.len && self.words[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// Number of allowed rows.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Number of rows the bitmap covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the bitmap covers no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl RowFilter for RowBitmap {
    fn allows(&self, row: u32) -> bool {
        self.contains(row)
    }

    fn allowed_fraction(&self) -> Option<f64> {
        (self.len > 0).then(|| self.count as f64 / self.len as f64)
    }
}

/// Raw (full-precision) vectors supplied at search time to indexes that do
/// not keep them, for exact re-ranking. `vector(row)` is the vector given to
/// [`build_index`] for `row`; a slice of the wrong length (e.g. an unknown
/// row) means the vector is unavailable and the row keeps its approximate
/// distance.
pub trait RawVectors: Sync {
    fn vector(&self, row: u32) -> &[f32];
}

/// [`RawVectors`] over contiguous row-major vectors, `dim` floats per row.
#[derive(Debug, Clone, Copy)]
pub struct ContiguousVectors<'a> {
    dim: usize,
    data: &'a [f32],
}

impl<'a> ContiguousVectors<'a> {
    /// Wraps `data` (`n * dim` floats); errors when `dim` is zero or does not
    /// divide the length.
    pub fn new(dim: usize, data: &'a [f32]) -> Result<Self, IndexError> {
        if dim == 0 {
            return Err(IndexError::InvalidParameter(
                "dimension must be at least 1".into(),
            ));
        }
        let leftover = data.len() - data.len() / dim * dim;
        if leftover != 0 {
            return Err(IndexError::DimensionMismatch {
                expected: dim,
                actual: leftover,
            });
        }
        Ok(Self { dim, data })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl RawVectors for ContiguousVectors<'_> {
    /// The row's vector, or an empty slice for a row out of range.
    fn vector(&self, row: u32) -> &[f32] {
        let start = row as usize * self.dim;
        self.data.get(start..start + self.dim).unwrap_or(&[])
    }
}

/// One search result. Ordered by `(distance, row)`; NaN sorts last.
#[derive(Debug, Clone, Copy)]
pub struct Neighbor {
    pub row: u32,
    pub distance: f32,
}

impl PartialEq for Neighbor {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Neighbor {}

impl PartialOrd for Neighbor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Neighbor {
    fn cmp(&self, other: &Self) -> Ordering {
        sort_key(self.distance)
            .total_cmp(&sort_key(other.distance))
            .then_with(|| self.row.cmp(&other.row))
    }
}

/// NaN (e.g. cosine against a zero vector) sorts after every number.
#[inline]
pub(crate) fn sort_key(d: f32) -> f32 {
    if d.is_nan() {
        f32::INFINITY
    } else {
        d
    }
}

/// Index build failures and corrupt serialized indexes.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum IndexError {
    /// A build option or input outside its valid range.
    #[error("{0}")]
    InvalidParameter(String),
    /// A vector or query of the wrong dimension.
    #[error("expected {expected} dimensions, not {actual}")]
    DimensionMismatch { expected: usize, actual: usize },
    /// Serialized bytes that do not describe a valid index.
    #[error("corrupt index: {0}")]
    Corrupt(String),
    /// Serialized by a newer (or unknown) format version.
    #[error("unsupported index format version {0}")]
    UnsupportedVersion(u16),
    /// Loading or building an index with no data where data is required.
    #[error("index is empty")]
    Empty,
}

/// Options for [`build_index`]; FLAT ignores them all, HNSW uses `m`,
/// `ef_construction` and `seed`, IVF uses `nlist` and `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOptions {
    /// Build threads; 0 (the default) uses the available parallelism. A
    /// parallel HNSW build is not deterministic (beyond its first
    /// `hnsw::SERIAL_ROWS` rows): set 1 for the same graph from the same seed.
    pub threads: usize,
    /// HNSW max neighbours per node on upper layers (2m on layer 0).
    pub m: usize,
    /// HNSW candidate list size while building.
    pub ef_construction: usize,
    /// Seed for the HNSW level generator and the IVF k-means; same seed,
    /// same index.
    pub seed: u64,
    /// IVF list (k-means cluster) count, `1..=65536`; default 100
    /// (pgvector's `lists` default). Reduced to the row count when larger.
    pub nlist: usize,
}

/// Largest accepted [`BuildOptions::nlist`].
pub const MAX_NLIST: usize = 65536;

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            threads: 0,
            m: 16,
            ef_construction: 200,
            seed: 0x5157_4956_4552,
            nlist: 100,
        }
    }
}

impl BuildOptions {
    /// Checks the options an index of `kind` uses.
    pub fn validate(&self, kind: IndexKind) -> Result<(), IndexError> {
        match kind {
            IndexKind::Flat => Ok(()),
            IndexKind::Hnsw => self.validate_hnsw(),
            IndexKind::IvfFlat | IndexKind::IvfSq8 => self.validate_ivf(),
        }
    }

    /// Checks the HNSW ranges (pgvector's limits and wording).
    pub fn validate_hnsw(&self) -> Result<(), IndexError> {
        if !(2..=100).contains(&self.m) {
            return Err(IndexError::InvalidParameter(
                "m must be between 2 and 100".into(),
            ));
        }
        if !(4..=1000).contains(&self.ef_construction) {
            return Err(IndexError::InvalidParameter(
                "ef_construction must be between 4 and 1000".into(),
            ));
        }
        if self.ef_construction < 2 * self.m {
            return Err(IndexError::InvalidParameter(
                "ef_construction must be greater than or equal to 2 * m".into(),
            ));
        }
        Ok(())
    }

    /// Checks the IVF ranges.
    pub fn validate_ivf(&self) -> Result<(), IndexError> {
        if !(1..=MAX_NLIST).contains(&self.nlist) {
            return Err(IndexError::InvalidParameter(format!(
                "nlist must be between 1 and {MAX_NLIST}"
            )));
        }
        Ok(())
    }
}

/// A searchable vector index over rows `0..len()`.
pub trait VectorIndex: Send + Sync {
    fn kind(&self) -> IndexKind;
    fn metric(&self) -> Metric;
    fn dim(&self) -> usize;
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` nearest rows, closest first, ties by row; only rows the filter
    /// allows. A query of the wrong dimension yields no rows (use
    /// [`VectorIndex::try_search`] to get an error instead).
    fn search(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        filter: Option<&dyn RowFilter>,
    ) -> Vec<Neighbor>;

    /// [`VectorIndex::search`], rejecting a query of the wrong dimension.
    fn try_search(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        filter: Option<&dyn RowFilter>,
    ) -> Result<Vec<Neighbor>, IndexError> {
        if query.len() != self.dim() {
            return Err(IndexError::DimensionMismatch {
                expected: self.dim(),
                actual: query.len(),
            });
        }
        Ok(self.search(query, k, params, filter))
    }

    /// [`VectorIndex::search`] with the raw vectors at hand, for indexes that
    /// store approximate vectors and can re-rank exactly (IVF_SQ8 with
    /// [`SearchParams::rerank`]). The default ignores `raw`.
    fn search_with_raw(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        filter: Option<&dyn RowFilter>,
        raw: Option<&dyn RawVectors>,
    ) -> Vec<Neighbor> {
        let _ = raw;
        self.search(query, k, params, filter)
    }

    /// Versioned little-endian serialization, readable by [`load_index`].
    fn to_bytes(&self) -> Vec<u8>;

    /// Approximate heap bytes held.
    fn memory_bytes(&self) -> usize;
}

/// Checks build inputs shared by every kind; returns the row count.
pub(crate) fn validate_vectors(dim: usize, vectors: &[f32]) -> Result<usize, IndexError> {
    if dim == 0 {
        return Err(IndexError::InvalidParameter(
            "dimension must be at least 1".into(),
        ));
    }
    if dim > u32::MAX as usize {
        return Err(IndexError::InvalidParameter(
            "dimension must fit in 32 bits".into(),
        ));
    }
    let n = vectors.len() / dim;
    let leftover = vectors.len() - n * dim;
    if leftover != 0 {
        return Err(IndexError::DimensionMismatch {
            expected: dim,
            actual: leftover,
        });
    }
    if n >= u32::MAX as usize {
        return Err(IndexError::InvalidParameter(
            "too many rows for one index".into(),
        ));
    }
    if let Some(i) = vectors.iter().position(|x| !x.is_finite()) {
        return Err(IndexError::InvalidParameter(format!(
            "row {} contains NaN or infinity",
            i / dim
        )));
    }
    Ok(n)
}
