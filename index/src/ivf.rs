//! IVF_FLAT: an inverted file over k-means lists of full-precision vectors,
//! and the list structure it shares with [`crate::ivf_sq8`].
//!
//! **Build.** `nlist` centroids are trained by seeded k-means
//! (`kmeans.rs`: k-means++ seeding, at most 10 Lloyd iterations on a
//! sample of at most `max(40 * nlist, 10_000)` rows); `nlist` is reduced to
//! the row count when larger. Every row then goes to its nearest centroid.
//! Each list stores its row ids (ascending) and, contiguously in the same
//! order, its vectors, so a probe is one sequential scan.
//!
//! **Metrics.** The centroid assignment and the probe order use, per metric:
//! L2 → squared L2; cosine → `1 - a·b` on unit vectors (spherical k-means
//! over normalized rows); negative inner product → rows assigned by squared
//! L2 (k-means on the raw vectors), lists probed by `-(q·c)`; L1 → L1
//! (mean update). Rows are scored exactly as FLAT scores them (the raw
//! vectors are kept; cosine uses precomputed row norms), so reported
//! distances are [`Metric::distance`] values rounded to `f32` and probing
//! every list gives FLAT's answer bit for bit.
//!
//! **Search.** Lists are ranked by centroid distance and the first `nprobe`
//! ([`SearchParams::nprobe`], default [`DEFAULT_NPROBE`], clamped to
//! `1..=nlist`) are scanned. More lists are scanned, in the same order,
//! while fewer than `k` rows were admitted, so `k` rows come back whenever
//! the index holds `k` allowed rows.
//!
//! **Filtered search.** The filter is checked before a row is scored.
//! Probing continues past `nprobe` lists until the admitted rows number at
//! least the rows held by the first `nprobe` lists, i.e. the search scores as
//! many *allowed* candidates as an unfiltered search scores rows, which
//! keeps recall against the exact filtered answer close to the unfiltered
//! recall (a filter allowing a fraction `f` costs about `nprobe / f` lists).
//! When the filter allows fewer than [`EXACT_SCAN_FRACTION`] of the rows,
//! or so few that `nprobe / f` would reach every list anyway (`f` from
//! [`RowFilter::allowed_fraction`] or a sample of rows), every list is
//! scanned without ranking the centroids: an exact scan of the allowed
//! rows.
//!
//! **Serialized payload** (after the common header of `serial.rs`):
//! `nlist u32`, `seed u64`, centroids (`nlist * dim` f32), list sizes
//! (`nlist` u32), row ids in list order (`n` u32); IVF_FLAT then has the
//! vectors in list order (`n * dim` f32). Loading checks that the sizes add
//! up to `n` and that the ids are a permutation of `0..n`.

use std::ops::Range;

use rand::SeedableRng;

use crate::distance::normalize;
use crate::distance::{cosine_from_parts, inner_product, l1, l2_squared, Metric};
use crate::index::{
    estimate_allowed_fraction, validate_vectors, BuildOptions, IndexError, IndexKind, Neighbor,
    RowFilter, SearchParams, VectorIndex, MAX_NLIST,
};
use crate::kmeans::{self, Assign};
use crate::serial::{corrupt, Header, Reader, Writer};
use crate::topk::TopK;

/// Default lists probed (pgvector's `ivfflat.probes` default).
pub const DEFAULT_NPROBE: usize = 1;
/// Below this estimated allowed fraction a filtered search scans every list.
pub const EXACT_SCAN_FRACTION: f64 = 0.01;

/// A top-k candidate key: `(row, position in list order)`; ordered by row
/// first, and rows are unique, so ties are broken by row as FLAT does.
pub(crate) type Key = (u32, u32);

/// The inverted lists: centroids and, per list, the row ids it holds.
#[derive(Debug, Clone)]
pub(crate) struct Lists {
    pub metric: Metric,
    pub dim: usize,
    pub n: usize,
    pub seed: u64,
    /// `nlist * dim` floats; unit vectors for cosine.
    pub centroids: Vec<f32>,
    /// `nlist + 1` boundaries into `ids` (and the per-row payloads).
    pub offsets: Vec<u32>,
    /// Row ids in list order, ascending within a list.
    pub ids: Vec<u32>,
}

impl Lists {
    /// Trains the centroids on `stored` (`n * dim`, normalized for cosine)
    /// and assigns every row to its nearest centroid.
    pub fn build(
        metric: Metric,
        dim: usize,
        stored: &[f32],
        options: &BuildOptions,
    ) -> Result<Self, IndexError> {
        options.validate_ivf()?;
        let n = validate_vectors(dim, stored)?;
        let nlist = options.nlist.min(n);
        let mut lists = Lists {
            metric,
            dim,
            n,
            seed: options.seed,
            centroids: Vec::new(),
            offsets: vec![0],
            ids: Vec::new(),
        };
        if n == 0 {
            return Ok(lists);
        }
        let assign = assign_of(metric);
        let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
        let m = kmeans::train_size(n, nlist);
        let centroids = if m == n {
            kmeans::train(assign, stored, dim, nlist, &mut rng)
        } else {
            let mut sample = rand::seq::index::sample(&mut rng, n, m).into_vec();
            sample.sort_unstable();
            let mut points = Vec::with_capacity(m * dim);
            for &i in &sample {
                points.extend_from_slice(&stored[i * dim..(i + 1) * dim]);
            }
            kmeans::train(assign, &points, dim, nlist, &mut rng)
        };
        let labels = kmeans::assign_all(assign, stored, dim, &centroids);
        let mut counts = vec![0u32; nlist];
        for &(l, _) in &labels {
            counts[l as usize] += 1;
        }
        let mut offsets = Vec::with_capacity(nlist + 1);
        offsets.push(0u32);
        for c in &counts {
            offsets.push(offsets.last().unwrap() + c);
        }
        let mut next: Vec<u32> = offsets[..nlist].to_vec();
        let mut ids = vec![0u32; n];
        for (row, &(l, _)) in labels.iter().enumerate() {
            ids[next[l as usize] as usize] = row as u32;
            next[l as usize] += 1;
        }
        lists.centroids = centroids;
        lists.offsets = offsets;
        lists.ids = ids;
        Ok(lists)
    }

    /// Number of lists (0 for an empty index).
    pub fn nlist(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Positions (in list order) of the rows of `list`.
    #[inline]
    pub fn range(&self, list: usize) -> Range<usize> {
        self.offsets[list] as usize..self.offsets[list + 1] as usize
    }

    pub fn centroid(&self, list: usize) -> &[f32] {
        &self.centroids[list * self.dim..(list + 1) * self.dim]
    }

    /// Gathers per-row payloads (`width` items per row, indexed by row) into
    /// list order.
    pub fn gather<T: Copy>(&self, by_row: &[T], width: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(by_row.len());
        for &row in &self.ids {
            let i = row as usize * width;
            out.extend_from_slice(&by_row[i..i + width]);
        }
        out
    }

    /// Lists ordered by centroid distance to `q` (normalized for cosine).
    fn probe_order(&self, q: &[f32]) -> Vec<u32> {
        let mut scored: Vec<(f32, u32)> = self
            .centroids
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(l, c)| {
                let d = match self.metric {
                    Metric::L2 => l2_squared(q, c),
                    Metric::Cosine | Metric::NegativeInnerProduct => -inner_product(q, c),
                    Metric::L1 => l1(q, c),
                };
                (d, l as u32)
            })
            .collect();
        scored.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        scored.into_iter().map(|(_, l)| l).collect()
    }

    /// Estimated fraction of rows `filter` allows.
    fn allowed_fraction(&self, filter: &dyn RowFilter) -> f64 {
        estimate_allowed_fraction(filter, self.n)
    }

    /// The probe loop shared by the IVF kinds. `coarse` is the query in the
    /// centroids' space, or `None` to scan every list (exact). `scan(list,
    /// top)` scores the rows of `list` the filter admits into `top` and
    /// returns how many it admitted. Returns the `fetch` best candidates,
    /// closest first (NaN mapped to infinity, as [`TopK`] does).
    pub fn probe(
        &self,
        coarse: Option<&[f32]>,
        fetch: usize,
        params: &SearchParams,
        filter: Option<&dyn RowFilter>,
        mut scan: impl FnMut(usize, &mut TopK<Key>) -> usize,
    ) -> Vec<(f32, Key)> {
        let nlist = self.nlist();
        let mut top = TopK::new(fetch);
        if fetch == 0 || nlist == 0 {
            return Vec::new();
        }
        let nprobe = params.nprobe.unwrap_or(DEFAULT_NPROBE).clamp(1, nlist);
        // A filter allowing a fraction `f` makes the loop below probe about
        // `nprobe / f` lists: when that is every list, skip the ranking.
        let exact = coarse.is_none()
            || filter.is_some_and(|f| {
                let f = self.allowed_fraction(f);
                f < EXACT_SCAN_FRACTION || f * nlist as f64 <= nprobe as f64
            });
        let order: Vec<u32> = match coarse {
            Some(q) if !exact => self.probe_order(q),
            _ => (0..nlist as u32).collect(),
        };
        let nprobe = if exact { nlist } else { nprobe };
        let (mut first_rows, mut admitted) = (0usize, 0usize);
        for (i, &list) in order.iter().enumerate() {
            if i >= nprobe && admitted >= fetch.max(first_rows) {
                break;
            }
            admitted += scan(list as usize, &mut top);
            if i < nprobe {
                first_rows += self.range(list as usize).len();
            }
        }
        top.into_sorted()
            .into_iter()
            .map(|s| (s.distance as f32, s.key))
            .collect()
    }

    /// Writes `nlist`, the seed, the centroids, the list sizes and the ids.
    pub fn write(&self, w: &mut Writer) {
        w.u32(self.nlist() as u32);
        w.u64(self.seed);
        w.f32s(&self.centroids);
        let sizes: Vec<u32> = self.offsets.windows(2).map(|p| p[1] - p[0]).collect();
        w.u32s(&sizes);
        w.u32s(&self.ids);
    }

    /// Reads what [`Lists::write`] wrote, checking every invariant.
    pub fn read(header: &Header, r: &mut Reader<'_>) -> Result<Self, IndexError> {
        let (n, dim) = (header.n, header.dim);
        let nlist = r.u32()? as usize;
        if nlist > MAX_NLIST || nlist > n || (n > 0 && nlist == 0) {
            return Err(corrupt("list count out of range"));
        }
        let seed = r.u64()?;
        let count = nlist
            .checked_mul(dim)
            .ok_or_else(|| corrupt("centroid size overflows"))?;
        let centroids = r.f32s(count)?;
        if centroids.iter().any(|x| !x.is_finite()) {
            return Err(corrupt("non-finite centroid component"));
        }
        let sizes = r.u32s(nlist)?;
        let mut offsets = Vec::with_capacity(nlist + 1);
        offsets.push(0u32);
        let mut total = 0u64;
        for &s in &sizes {
            total += s as u64;
            if total > n as u64 {
                return Err(corrupt("list sizes exceed the row count"));
            }
            offsets.push(total as u32);
        }
        if total != n as u64 {
            return Err(corrupt("list sizes do not add up to the row count"));
        }
        let ids = r.u32s(n)?;
        let mut seen = vec![false; n];
        for &id in &ids {
            match seen.get_mut(id as usize) {
                Some(s) if !*s => *s = true,
                _ => return Err(corrupt("list row id out of range or repeated")),
            }
        }
        Ok(Lists {
            metric: header.metric,
            dim,
            n,
            seed,
            centroids,
            offsets,
            ids,
        })
    }

    pub fn memory_bytes(&self) -> usize {
        (self.centroids.capacity() + self.offsets.capacity() + self.ids.capacity()) * 4
    }
}

/// The k-means assignment distance for `metric`.
pub(crate) fn assign_of(metric: Metric) -> Assign {
    match metric {
        Metric::L2 | Metric::NegativeInnerProduct => Assign::L2,
        Metric::Cosine => Assign::UnitDot,
        Metric::L1 => Assign::L1,
    }
}

/// The query in the centroids' space: normalized for cosine; `None` when a
/// cosine query has zero norm (every distance is NaN: scan everything).
pub(crate) fn coarse_query(metric: Metric, query: &[f32]) -> Option<Vec<f32>> {
    let mut q = query.to_vec();
    if metric == Metric::Cosine {
        normalize(&mut q);
        if inner_product(&q, &q) == 0.0 {
            return None;
        }
    }
    Some(q)
}

/// Exact score of `v` against `query`, as FLAT computes it; `v_sq` is the
/// squared norm of `v` for cosine (ignored otherwise).
#[inline]
pub(crate) fn exact_score(metric: Metric, query: &[f32], q_sq: f32, v: &[f32], v_sq: f32) -> f32 {
    match metric {
        Metric::Cosine => cosine_from_parts(inner_product(query, v), q_sq, v_sq) as f32,
        other => other.distance(query, v) as f32,
    }
}

/// Inverted-file index over full-precision vectors.
#[derive(Debug, Clone)]
pub struct IvfFlatIndex {
    lists: Lists,
    /// Raw vectors in list order.
    vectors: Vec<f32>,
    /// Squared norms in list order, for cosine only (empty otherwise).
    sq_norms: Vec<f32>,
}

impl IvfFlatIndex {
    /// Builds over `vectors` (`n * dim` floats, row-major).
    pub fn build(
        metric: Metric,
        dim: usize,
        vectors: &[f32],
        options: &BuildOptions,
    ) -> Result<Self, IndexError> {
        options.validate_ivf()?;
        validate_vectors(dim, vectors)?;
        let lists = if metric == Metric::Cosine {
            let mut unit = vectors.to_vec();
            unit.chunks_exact_mut(dim).for_each(normalize);
            Lists::build(metric, dim, &unit, options)?
        } else {
            Lists::build(metric, dim, vectors, options)?
        };
        let vectors = lists.gather(vectors, dim);
        Ok(Self::from_parts(lists, vectors))
    }

    fn from_parts(lists: Lists, vectors: Vec<f32>) -> Self {
        let sq_norms = if lists.metric == Metric::Cosine {
            vectors
                .chunks_exact(lists.dim)
                .map(|v| inner_product(v, v))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            lists,
            vectors,
            sq_norms,
        }
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

    pub(crate) fn read(header: &Header, r: &mut Reader<'_>) -> Result<Self, IndexError> {
        let lists = Lists::read(header, r)?;
        let vectors = header.read_vectors(r)?;
        Ok(Self::from_parts(lists, vectors))
    }

    #[inline]
    fn score(&self, query: &[f32], q_sq: f32, pos: usize) -> f32 {
        let dim = self.lists.dim;
        let v = &self.vectors[pos * dim..(pos + 1) * dim];
        let v_sq = self.sq_norms.get(pos).copied().unwrap_or(0.0);
        exact_score(self.lists.metric, query, q_sq, v, v_sq)
    }
}

impl VectorIndex for IvfFlatIndex {
    fn kind(&self) -> IndexKind {
        IndexKind::IvfFlat
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

    fn search(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        filter: Option<&dyn RowFilter>,
    ) -> Vec<Neighbor> {
        if k == 0 || self.lists.n == 0 || query.len() != self.lists.dim {
            return Vec::new();
        }
        let coarse = coarse_query(self.lists.metric, query);
        let q_sq = inner_product(query, query);
        let ids = &self.lists.ids;
        let found = self
            .lists
            .probe(coarse.as_deref(), k, params, filter, |list, top| {
                let mut admitted = 0;
                for pos in self.lists.range(list) {
                    let row = ids[pos];
                    if filter.is_some_and(|f| !f.allows(row)) {
                        continue;
                    }
                    admitted += 1;
                    top.push(self.score(query, q_sq, pos) as f64, (row, pos as u32));
                }
                admitted
            });
        found
            .into_iter()
            .map(|(d, (row, pos))| Neighbor {
                row,
                // TopK maps NaN to infinity; report the true value.
                distance: if d.is_finite() {
                    d
                } else {
                    self.score(query, q_sq, pos as usize)
                },
            })
            .collect()
    }

    fn to_bytes(&self) -> Vec<u8> {
        let l = &self.lists;
        let mut w = Writer::with_header(IndexKind::IvfFlat, l.metric, l.dim, l.n);
        l.write(&mut w);
        w.f32s(&self.vectors);
        w.finish()
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.lists.memory_bytes()
            + (self.vectors.capacity() + self.sq_norms.capacity()) * 4
    }
}
