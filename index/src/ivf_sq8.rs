//! IVF_SQ8: the IVF lists of [`crate::ivf`] with every vector stored as one
//! byte per dimension.
//!
//! **Encoding.** Rows are encoded as residuals from their list centroid
//! (`r = x - c`, `x` unit-normalized first for cosine), which spans a much
//! smaller range than the vectors themselves. Per dimension `j` the
//! quantizer keeps the minimum `min_j` and step `delta_j = (max_j -
//! min_j) / 255` of the residuals over all rows; a component is stored as
//! `round((r_j - min_j) / delta_j)` and stands for `min_j + code_j *
//! delta_j`. The index keeps only the codes, the centroids, the row ids and
//! the per-dimension `min`/`delta` (plus, for L2, one float per row, and for
//! cosine the ids of zero-norm rows, which report NaN as FLAT does), never
//! the `f32` vectors: about a quarter of FLAT's memory.
//!
//! **Distances on codes.** Per probed list the query is moved into the
//! list's code space once, and each row is then scored straight from its
//! bytes, without decoding it to a vector:
//! - L2: `qm = q - c - min`, `d² = Σ (qm_j - delta_j code_j)²`, evaluated
//!   as `‖qm‖² - 2 Σ (qm_j delta_j) code_j + ‖delta ∘ code‖²` with the last
//!   term kept per row (4 bytes, recomputed from the codes on load), so a
//!   row costs one multiply-add per byte;
//! - L1: `Σ |qm_j - delta_j code_j|`;
//! - inner product / cosine: `q·x = q·c + q·min + Σ (q_j delta_j) code_j`,
//!   where the first two terms are per list and `q ∘ delta` per query.
//!
//! These distances are approximate, and are what [`VectorIndex::search`]
//! reports. **Re-rank:** with [`SearchParams::rerank`] `= Some(m)` and raw
//! vectors passed to [`VectorIndex::search_with_raw`], the `k * m` best rows
//! by code distance are re-scored exactly (FLAT's distances) and the best
//! `k` of them returned.
//!
//! **Serialized payload:** the lists (see [`crate::ivf`]), then `min` and
//! `delta` (`dim` f32 each), the codes in list order (`n * dim` bytes) and
//! the zero-norm rows (`u64` count, then u32 ids).

use crate::distance::normalize;
use crate::distance::{inner_product, Metric};
use crate::index::{
    validate_vectors, BuildOptions, IndexError, IndexKind, Neighbor, RawVectors, RowFilter,
    SearchParams, VectorIndex,
};
use crate::ivf::{coarse_query, exact_score, Key, Lists};
use crate::serial::{corrupt, Header, Reader, Writer};

const LANES: usize = 16;

/// Inverted-file index over 8-bit scalar-quantized residuals.
#[derive(Debug, Clone)]
pub struct IvfSq8Index {
    lists: Lists,
    /// Per-dimension minimum of the residuals.
    vmin: Vec<f32>,
    /// Per-dimension quantization step (0 for a constant dimension).
    delta: Vec<f32>,
    /// `n * dim` codes in list order.
    codes: Vec<u8>,
    /// Cosine only: rows with zero norm (their distance is NaN), ascending.
    zero_rows: Vec<u32>,
    /// L2 only: `‖delta ∘ code‖²` per row in list order, derived from the
    /// codes (not serialized).
    code_sq: Vec<f32>,
}

impl IvfSq8Index {
    /// Builds over `vectors` (`n * dim` floats, row-major). The vectors are
    /// not kept.
    pub fn build(
        metric: Metric,
        dim: usize,
        vectors: &[f32],
        options: &BuildOptions,
    ) -> Result<Self, IndexError> {
        options.validate_ivf()?;
        let n = validate_vectors(dim, vectors)?;
        let mut zero_rows = Vec::new();
        let unit;
        let stored = if metric == Metric::Cosine {
            let mut v = vectors.to_vec();
            for (row, x) in v.chunks_exact_mut(dim).enumerate() {
                normalize(x);
                if inner_product(x, x) == 0.0 {
                    zero_rows.push(row as u32);
                }
            }
            unit = v;
            &unit[..]
        } else {
            vectors
        };
        let lists = Lists::build(metric, dim, stored, options)?;
        // Residuals in list order.
        let mut residuals = lists.gather(stored, dim);
        for list in 0..lists.nlist() {
            let c = lists.centroid(list).to_vec();
            for pos in lists.range(list) {
                for (x, cj) in residuals[pos * dim..(pos + 1) * dim].iter_mut().zip(&c) {
                    *x -= cj;
                }
            }
        }
        let (mut vmin, mut vmax) = (vec![f32::INFINITY; dim], vec![f32::NEG_INFINITY; dim]);
        for r in residuals.chunks_exact(dim) {
            for j in 0..dim {
                vmin[j] = vmin[j].min(r[j]);
                vmax[j] = vmax[j].max(r[j]);
            }
        }
        if n == 0 {
            vmin.fill(0.0);
            vmax.fill(0.0);
        }
        let delta: Vec<f32> = vmin
            .iter()
            .zip(&vmax)
            .map(|(lo, hi)| {
                let d = (hi - lo) / 255.0;
                if d.is_finite() && d > 0.0 {
                    d
                } else {
                    0.0
                }
            })
            .collect();
        let mut codes = vec![0u8; n * dim];
        for (code, r) in codes.chunks_exact_mut(dim).zip(residuals.chunks_exact(dim)) {
            for j in 0..dim {
                if delta[j] > 0.0 {
                    code[j] = ((r[j] - vmin[j]) / delta[j]).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        let code_sq = code_sq_norms(metric, &codes, &delta, dim);
        Ok(Self {
            lists,
            vmin,
            delta,
            codes,
            zero_rows,
            code_sq,
        })
    }

    /// Number of lists (the requested `nlist`, or the row count if smaller).
    pub fn nlist(&self) -> usize {
        self.lists.nlist()
    }

    /// Rows per list.
    pub fn list_sizes(&self) -> Vec<usize> {
        (0..self.nlist())
            .map(|l| self.lists.range(l).len())
            .collect()
    }

    /// The approximate (decoded) vector of `row`, unit-normalized for
    /// cosine; for inspection and tests, not used by search.
    pub fn decode(&self, row: u32) -> Option<Vec<f32>> {
        let pos = self.lists.ids.iter().position(|&r| r == row)?;
        let list = self.lists.offsets.partition_point(|&o| o as usize <= pos) - 1;
        let dim = self.lists.dim;
        let code = &self.codes[pos * dim..(pos + 1) * dim];
        Some(
            (0..dim)
                .map(|j| {
                    self.lists.centroid(list)[j] + self.vmin[j] + self.delta[j] * code[j] as f32
                })
                .collect(),
        )
    }

    pub(crate) fn read(header: &Header, r: &mut Reader<'_>) -> Result<Self, IndexError> {
        let lists = Lists::read(header, r)?;
        let dim = header.dim;
        let vmin = r.f32s(dim)?;
        let delta = r.f32s(dim)?;
        if vmin.iter().chain(&delta).any(|x| !x.is_finite()) || delta.iter().any(|&d| d < 0.0) {
            return Err(corrupt("bad quantizer parameters"));
        }
        let count = header
            .n
            .checked_mul(dim)
            .ok_or_else(|| corrupt("code size overflows"))?;
        let codes = r.bytes(count)?.to_vec();
        let zeros = r.len_u64()?;
        if zeros > header.n || (zeros > 0 && header.metric != Metric::Cosine) {
            return Err(corrupt("zero-row count out of range"));
        }
        let zero_rows = r.u32s(zeros)?;
        if zero_rows.windows(2).any(|w| w[0] >= w[1])
            || zero_rows.last().is_some_and(|&z| z as usize >= header.n)
        {
            return Err(corrupt("zero rows not ascending row ids"));
        }
        let code_sq = code_sq_norms(header.metric, &codes, &delta, dim);
        Ok(Self {
            lists,
            vmin,
            delta,
            codes,
            zero_rows,
            code_sq,
        })
    }

    /// The `fetch` best rows by code distance: `(distance, (row, pos))`.
    fn candidates(
        &self,
        query: &[f32],
        fetch: usize,
        params: &SearchParams,
        filter: Option<&dyn RowFilter>,
    ) -> Vec<(f32, Key)> {
        let l = &self.lists;
        let dim = l.dim;
        let coarse = coarse_query(l.metric, query);
        // Cosine scores the normalized query; a zero query scores NaN.
        let q: &[f32] = coarse.as_deref().unwrap_or(query);
        let zero_query = coarse.is_none();
        let qd: Vec<f32> = q.iter().zip(&self.delta).map(|(a, b)| a * b).collect();
        let q_min = inner_product(q, &self.vmin);
        let mut qm = vec![0f32; dim];
        let mut qa = vec![0f32; dim];
        l.probe(coarse.as_deref(), fetch, params, filter, |list, top| {
            // The query moves into the list's code space on the first
            // admitted row: a selective filter skips most lists' set-up.
            let mut base = None;
            let mut admitted = 0;
            for pos in l.range(list) {
                let row = l.ids[pos];
                if filter.is_some_and(|f| !f.allows(row)) {
                    continue;
                }
                admitted += 1;
                let base = *base.get_or_insert_with(|| {
                    let c = l.centroid(list);
                    match l.metric {
                        Metric::L2 | Metric::L1 => {
                            let parts = q.iter().zip(c).zip(&self.vmin);
                            for (m, ((a, b), lo)) in qm.iter_mut().zip(parts) {
                                *m = a - b - lo;
                            }
                            if l.metric == Metric::L1 {
                                return 0.0;
                            }
                            for ((a, m), d) in qa.iter_mut().zip(&qm).zip(&self.delta) {
                                *a = m * d;
                            }
                            inner_product(&qm, &qm)
                        }
                        Metric::Cosine | Metric::NegativeInnerProduct => {
                            inner_product(q, c) + q_min
                        }
                    }
                });
                let code = &self.codes[pos * dim..(pos + 1) * dim];
                let d = match l.metric {
                    Metric::L2 => (base - 2.0 * sq_dot(&qa, code) + self.code_sq[pos])
                        .max(0.0)
                        .sqrt(),
                    Metric::L1 => sq_l1(&qm, &self.delta, code),
                    Metric::NegativeInnerProduct => -(base + sq_dot(&qd, code)),
                    Metric::Cosine => {
                        if zero_query || self.is_zero_row(row) {
                            f32::NAN
                        } else {
                            1.0 - (base + sq_dot(&qd, code)).clamp(-1.0, 1.0)
                        }
                    }
                };
                top.push(d as f64, (row, pos as u32));
            }
            admitted
        })
    }

    #[inline]
    fn is_zero_row(&self, row: u32) -> bool {
        !self.zero_rows.is_empty() && self.zero_rows.binary_search(&row).is_ok()
    }
}

/// `‖delta ∘ code‖²` per row for L2 (empty for the other metrics).
fn code_sq_norms(metric: Metric, codes: &[u8], delta: &[f32], dim: usize) -> Vec<f32> {
    if metric != Metric::L2 {
        return Vec::new();
    }
    codes
        .chunks_exact(dim)
        .map(|code| {
            code.iter()
                .zip(delta)
                .map(|(&c, &d)| (d * c as f32) * (d * c as f32))
                .sum()
        })
        .collect()
}

/// Undoes [`crate::topk::TopK`]'s NaN-to-infinity mapping: only cosine
/// code distances can be NaN, and they are never infinite.
#[inline]
fn nan_back(metric: Metric, d: f32) -> f32 {
    if metric == Metric::Cosine && d.is_infinite() {
        f32::NAN
    } else {
        d
    }
}

/// `Σ |qm_j - delta_j * code_j|`.
#[inline]
fn sq_l1(qm: &[f32], delta: &[f32], code: &[u8]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = code.len() / LANES;
    for c in 0..chunks {
        let (q, s, x) = (
            &qm[c * LANES..(c + 1) * LANES],
            &delta[c * LANES..(c + 1) * LANES],
            &code[c * LANES..(c + 1) * LANES],
        );
        for i in 0..LANES {
            acc[i] += (q[i] - s[i] * x[i] as f32).abs();
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * LANES..code.len() {
        sum += (qm[i] - delta[i] * code[i] as f32).abs();
    }
    sum
}

/// `Σ qd_j * code_j`.
#[inline]
fn sq_dot(qd: &[f32], code: &[u8]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = code.len() / LANES;
    for c in 0..chunks {
        let (q, x) = (
            &qd[c * LANES..(c + 1) * LANES],
            &code[c * LANES..(c + 1) * LANES],
        );
        for i in 0..LANES {
            acc[i] += q[i] * x[i] as f32;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * LANES..code.len() {
        sum += qd[i] * code[i] as f32;
    }
    sum
}

impl VectorIndex for IvfSq8Index {
    fn kind(&self) -> IndexKind {
        IndexKind::IvfSq8
    }

    fn metric(&self) -> Metric {
        self.lists.metric
    }

    fn dim(&self) -> usize {
        self.lists.dim
    }

    fn len(&self) -> usize {
        self.lists.n
    }

    /// Code distances only (no raw vectors to re-rank with).
    fn search(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        filter: Option<&dyn RowFilter>,
    ) -> Vec<Neighbor> {
        self.search_with_raw(query, k, params, filter, None)
    }

    fn search_with_raw(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        filter: Option<&dyn RowFilter>,
        raw: Option<&dyn RawVectors>,
    ) -> Vec<Neighbor> {
        let dim = self.lists.dim;
        if k == 0 || self.lists.n == 0 || query.len() != dim {
            return Vec::new();
        }
        let rerank = raw.zip(params.rerank.filter(|&m| m > 0));
        let fetch = rerank.map_or(k, |(_, m)| k.saturating_mul(m));
        let found = self.candidates(query, fetch, params, filter);
        let mut out: Vec<Neighbor> = match rerank {
            None => found
                .into_iter()
                .map(|(d, (row, _))| Neighbor {
                    row,
                    distance: nan_back(self.lists.metric, d),
                })
                .collect(),
            Some((raw, _)) => {
                let q_sq = inner_product(query, query);
                found
                    .into_iter()
                    .map(|(d, (row, _))| {
                        let v = raw.vector(row);
                        let distance = if v.len() == dim {
                            exact_score(self.lists.metric, query, q_sq, v, inner_product(v, v))
                        } else {
                            nan_back(self.lists.metric, d)
                        };
                        Neighbor { row, distance }
                    })
                    .collect()
            }
        };
        out.sort_unstable();
        out.truncate(k);
        out
    }

    fn to_bytes(&self) -> Vec<u8> {
        let l = &self.lists;
        let mut w = Writer::with_header(IndexKind::IvfSq8, l.metric, l.dim, l.n);
        l.write(&mut w);
        w.f32s(&self.vmin);
        w.f32s(&self.delta);
        w.bytes(&self.codes);
        w.u64(self.zero_rows.len() as u64);
        w.u32s(&self.zero_rows);
        w.finish()
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.lists.memory_bytes()
            + (self.vmin.capacity()
                + self.delta.capacity()
                + self.zero_rows.capacity()
                + self.code_sq.capacity())
                * 4
            + self.codes.capacity()
    }
}
