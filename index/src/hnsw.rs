//! HNSW (Malkov & Yashunin, "Efficient and robust approximate nearest
//! neighbor search using Hierarchical Navigable Small World graphs").
//!
//! Layout: vectors live in one contiguous `Vec<f32>`; layer-0 neighbour
//! lists live in one `Vec<u32>` with a fixed stride of `2m + 1` per node
//! (`[count, ids...]`); upper layers (only ~1/m of the nodes have any) live
//! in a second flat `Vec<u32>` with stride `m + 1` per (node, layer).
//!
//! Node levels come from a seeded `StdRng`, and nodes are inserted in row
//! order, so a given (data, options) pair always yields the same graph.
//! Neighbours are chosen with the paper's heuristic (Algorithm 4, without
//! `extendCandidates` or `keepPrunedConnections`).
//!
//! Cosine: vectors (and queries) are normalized to unit length and the graph
//! works on `1 - a·b`; a zero vector stays zero and reports NaN, as
//! [`crate::distance::cosine_distance`] does. L2 works on squared distances
//! internally and reports the square root.
//!
//! Filtered search walks the graph as usual but admits only allowed rows to
//! the result set, so disallowed nodes still serve as stepping stones. When
//! the filter allows fewer than [`EXACT_SCAN_FRACTION`] of the rows (from
//! [`RowFilter::allowed_fraction`] or a sample of rows), or when the graph
//! walk finds fewer than `k` rows, the search falls back to an exact scan of
//! the allowed rows, so `k` rows are returned whenever `k` rows are allowed.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use rand::{Rng, SeedableRng};

use crate::distance::{inner_product, l1, l2_squared, Metric};
use crate::flat::exact_scan;
use crate::index::{
    validate_vectors, BuildOptions, IndexError, IndexKind, Neighbor, RowFilter, SearchParams,
    VectorIndex,
};
use crate::serial::{corrupt, Header, Reader, Writer};
use crate::visited::{Visited, VISITED};

/// Default `ef_search` (pgvector's `hnsw.ef_search` default).
pub const DEFAULT_EF_SEARCH: usize = 40;
/// Below this estimated allowed fraction a filtered search scans exactly.
pub const EXACT_SCAN_FRACTION: f64 = 0.02;
/// Highest layer a node may be assigned.
const MAX_LEVEL: u8 = 24;
/// Rows sampled to estimate a filter's selectivity.
const FILTER_SAMPLE: usize = 512;

/// A candidate: internal distance and node id, ordered by `(d, id)`.
#[derive(Debug, Clone, Copy)]
struct Cand {
    d: f32,
    id: u32,
}

impl PartialEq for Cand {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        self.d
            .total_cmp(&other.d)
            .then_with(|| self.id.cmp(&other.id))
    }
}

/// A hierarchical navigable small world graph index.
#[derive(Debug, Clone)]
pub struct HnswIndex {
    metric: Metric,
    dim: usize,
    n: usize,
    m: usize,
    ef_construction: usize,
    seed: u64,
    /// Row-major vectors; unit-normalized for cosine.
    vectors: Vec<f32>,
    levels: Vec<u8>,
    /// `n * (2m + 1)`: per node `[count, ids...]`.
    layer0: Vec<u32>,
    /// Per node with level >= 1: `level` blocks of `[count, ids...]`, stride `m + 1`.
    upper: Vec<u32>,
    /// Offset of each node's first upper block in `upper`.
    upper_start: Vec<usize>,
    entry: u32,
    max_level: u8,
}

impl HnswIndex {
    /// Builds over `vectors` (`n * dim` floats, row-major).
    pub fn build(
        metric: Metric,
        dim: usize,
        vectors: &[f32],
        options: &BuildOptions,
    ) -> Result<Self, IndexError> {
        options.validate_hnsw()?;
        let n = validate_vectors(dim, vectors)?;
        let mut stored = vectors.to_vec();
        if metric == Metric::Cosine {
            stored.chunks_exact_mut(dim).for_each(normalize);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
        let ml = 1.0 / (options.m as f64).ln();
        let levels: Vec<u8> = (0..n)
            .map(|_| {
                let u: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
                ((-u.ln() * ml).floor() as u64).min(MAX_LEVEL as u64) as u8
            })
            .collect();
        let mut index = Self::empty(metric, dim, options, stored, levels);
        let mut visited = Visited::default();
        let mut q = vec![0f32; dim];
        for row in 0..n as u32 {
            q.copy_from_slice(index.vector(row));
            index.insert(row, &q, &mut visited);
        }
        Ok(index)
    }

    /// An index with the given vectors and levels and no links yet.
    fn empty(
        metric: Metric,
        dim: usize,
        options: &BuildOptions,
        vectors: Vec<f32>,
        levels: Vec<u8>,
    ) -> Self {
        let n = levels.len();
        let m = options.m;
        let (upper_start, upper_len) = upper_layout(&levels, m);
        Self {
            metric,
            dim,
            n,
            m,
            ef_construction: options.ef_construction,
            seed: options.seed,
            vectors,
            levels,
            layer0: vec![0; n * (2 * m + 1)],
            upper: vec![0; upper_len],
            upper_start,
            entry: 0,
            max_level: 0,
        }
    }

    /// Build parameters: `(m, ef_construction, seed)`.
    pub fn params(&self) -> (usize, usize, u64) {
        (self.m, self.ef_construction, self.seed)
    }

    /// Number of layers above layer 0.
    pub fn max_level(&self) -> usize {
        self.max_level as usize
    }

    /// The stored (for cosine: normalized) vector of `row`.
    fn vector(&self, row: u32) -> &[f32] {
        let i = row as usize * self.dim;
        &self.vectors[i..i + self.dim]
    }

    /// Internal distance: squared L2, `1 - a·b` on unit vectors, `-a·b`, L1.
    #[inline]
    fn dist(&self, q: &[f32], row: u32) -> f32 {
        let v = self.vector(row);
        match self.metric {
            Metric::L2 => l2_squared(q, v),
            Metric::Cosine => 1.0 - inner_product(q, v),
            Metric::NegativeInnerProduct => -inner_product(q, v),
            Metric::L1 => l1(q, v),
        }
    }

    /// The distance reported to callers, in [`Metric::distance`] units.
    fn reported(&self, q: &[f32], row: u32) -> f32 {
        let v = self.vector(row);
        match self.metric {
            Metric::L2 => l2_squared(q, v).sqrt(),
            Metric::Cosine => {
                if inner_product(v, v) == 0.0 {
                    f32::NAN
                } else {
                    1.0 - inner_product(q, v).clamp(-1.0, 1.0)
                }
            }
            Metric::NegativeInnerProduct => -inner_product(q, v),
            Metric::L1 => l1(q, v),
        }
    }

    fn cap(&self, layer: usize) -> usize {
        if layer == 0 {
            2 * self.m
        } else {
            self.m
        }
    }

    /// Start of the `[count, ids...]` block of `node` at `layer`.
    #[inline]
    fn block(&self, node: u32, layer: usize) -> usize {
        if layer == 0 {
            node as usize * (2 * self.m + 1)
        } else {
            self.upper_start[node as usize] + (layer - 1) * (self.m + 1)
        }
    }

    #[inline]
    fn links(&self, node: u32, layer: usize) -> &[u32] {
        let b = self.block(node, layer);
        let list = if layer == 0 {
            &self.layer0
        } else {
            &self.upper
        };
        let count = list[b] as usize;
        &list[b + 1..b + 1 + count]
    }

    fn set_links(&mut self, node: u32, layer: usize, ids: impl ExactSizeIterator<Item = u32>) {
        let b = self.block(node, layer);
        let list = if layer == 0 {
            &mut self.layer0
        } else {
            &mut self.upper
        };
        list[b] = ids.len() as u32;
        for (slot, id) in list[b + 1..].iter_mut().zip(ids) {
            *slot = id;
        }
    }

    /// Greedy descent to the closest node on one layer.
    fn greedy(&self, q: &[f32], mut cur: Cand, layer: usize) -> Cand {
        loop {
            let mut moved = false;
            for &nb in self.links(cur.id, layer) {
                let c = Cand {
                    d: self.dist(q, nb),
                    id: nb,
                };
                if c < cur {
                    cur = c;
                    moved = true;
                }
            }
            if !moved {
                return cur;
            }
        }
    }

    /// Best-first search of one layer (Algorithm 2). Only nodes the filter
    /// allows enter the result, but every node may be expanded. Returns up
    /// to `ef` results, closest first.
    fn search_layer(
        &self,
        q: &[f32],
        entries: &[Cand],
        ef: usize,
        layer: usize,
        filter: Option<&dyn RowFilter>,
        visited: &mut Visited,
    ) -> Vec<Cand> {
        visited.reset(self.n);
        let admit = |id: u32| filter.is_none_or(|f| f.allows(id));
        let mut candidates: BinaryHeap<Reverse<Cand>> = BinaryHeap::with_capacity(ef * 2);
        let mut results: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef + 1);
        for &e in entries {
            if visited.insert(e.id) {
                candidates.push(Reverse(e));
                if admit(e.id) {
                    results.push(e);
                }
            }
        }
        while results.len() > ef {
            results.pop();
        }
        while let Some(Reverse(c)) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| c > *w) {
                break;
            }
            for &nb in self.links(c.id, layer) {
                if !visited.insert(nb) {
                    continue;
                }
                let cand = Cand {
                    d: self.dist(q, nb),
                    id: nb,
                };
                if results.len() < ef || results.peek().is_some_and(|w| cand < *w) {
                    candidates.push(Reverse(cand));
                    if admit(nb) {
                        results.push(cand);
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        results.into_sorted_vec()
    }

    /// The neighbour selection heuristic: walk candidates closest first and
    /// keep one only if it is closer to the base than to every kept one.
    fn select(&self, sorted: &[Cand], keep: usize) -> Vec<Cand> {
        let mut out: Vec<Cand> = Vec::with_capacity(keep);
        for &c in sorted {
            if out.len() >= keep {
                break;
            }
            let v = self.vector(c.id);
            if out.iter().all(|r| self.dist(v, r.id) >= c.d) {
                out.push(c);
            }
        }
        out
    }

    /// Inserts `row` (Algorithm 1); `q` is its stored vector.
    fn insert(&mut self, row: u32, q: &[f32], visited: &mut Visited) {
        let level = self.levels[row as usize];
        if row == 0 {
            self.entry = 0;
            self.max_level = level;
            return;
        }
        let mut ep = Cand {
            d: self.dist(q, self.entry),
            id: self.entry,
        };
        for layer in (level as usize + 1..=self.max_level as usize).rev() {
            ep = self.greedy(q, ep, layer);
        }
        let mut entries = vec![ep];
        for layer in (0..=level.min(self.max_level) as usize).rev() {
            let found = self.search_layer(q, &entries, self.ef_construction, layer, None, visited);
            let chosen = self.select(&found, self.m);
            self.set_links(row, layer, chosen.iter().map(|c| c.id));
            for c in &chosen {
                self.connect(c.id, row, c.d, layer);
            }
            entries = found;
        }
        if level > self.max_level {
            self.max_level = level;
            self.entry = row;
        }
    }

    /// Adds `new` to `node`'s list at `layer`, re-selecting when full.
    fn connect(&mut self, node: u32, new: u32, d: f32, layer: usize) {
        let current = self.links(node, layer);
        if current.len() < self.cap(layer) {
            let ids: Vec<u32> = current.iter().copied().chain([new]).collect();
            self.set_links(node, layer, ids.into_iter());
            return;
        }
        let base = self.vector(node);
        let mut cands: Vec<Cand> = current
            .iter()
            .map(|&id| Cand {
                d: self.dist(base, id),
                id,
            })
            .chain([Cand { d, id: new }])
            .collect();
        cands.sort_unstable();
        let chosen = self.select(&cands, self.cap(layer));
        self.set_links(node, layer, chosen.into_iter().map(|c| c.id));
    }

    /// Estimated fraction of rows `filter` allows.
    fn allowed_fraction(&self, filter: &dyn RowFilter) -> f64 {
        if let Some(f) = filter.allowed_fraction() {
            return f;
        }
        let samples = self.n.min(FILTER_SAMPLE);
        let allowed = (0..samples)
            .filter(|&i| filter.allows((i * self.n / samples) as u32))
            .count();
        allowed as f64 / samples as f64
    }

    fn exact(&self, q: &[f32], k: usize, filter: Option<&dyn RowFilter>) -> Vec<Neighbor> {
        exact_scan(self.metric, self.dim, &self.vectors, &[], q, k, filter)
    }

    pub(crate) fn read(header: &Header, r: &mut Reader<'_>) -> Result<Self, IndexError> {
        let (n, dim) = (header.n, header.dim);
        let m = r.u32()? as usize;
        let ef_construction = r.u32()? as usize;
        let seed = r.u64()?;
        let options = BuildOptions {
            m,
            ef_construction,
            seed,
            ..BuildOptions::default()
        };
        options
            .validate_hnsw()
            .map_err(|e| corrupt(format!("bad build options: {e}")))?;
        let entry = r.u32()?;
        let max_level = r.u8()?;
        if max_level > MAX_LEVEL {
            return Err(corrupt("level out of range"));
        }
        let levels = r.bytes(n)?.to_vec();
        if levels.iter().any(|&l| l > max_level) {
            return Err(corrupt("node level above max level"));
        }
        if n == 0 {
            if entry != 0 || max_level != 0 {
                return Err(corrupt("entry point in an empty graph"));
            }
        } else if entry as usize >= n || levels[entry as usize] != max_level {
            return Err(corrupt("bad entry point"));
        }
        let vectors = header.read_vectors(r)?;
        let mut index = Self::empty(header.metric, dim, &options, vectors, levels);
        index.entry = entry;
        index.max_level = max_level;
        index.layer0 = r.u32s(index.layer0.len())?;
        let upper_len = r.len_u64()?;
        if upper_len != index.upper.len() {
            return Err(corrupt("upper layer size does not match levels"));
        }
        index.upper = r.u32s(upper_len)?;
        for node in 0..n as u32 {
            for layer in 0..=index.levels[node as usize] as usize {
                let b = index.block(node, layer);
                let list = if layer == 0 {
                    &index.layer0
                } else {
                    &index.upper
                };
                if list[b] as usize > index.cap(layer) {
                    return Err(corrupt("neighbour count above capacity"));
                }
                if index.links(node, layer).iter().any(|&id| {
                    id as usize >= n || index.levels[id as usize] < layer as u8 || id == node
                }) {
                    return Err(corrupt("neighbour id out of range"));
                }
            }
        }
        Ok(index)
    }
}

/// Offsets of each node's upper blocks and the total upper length.
fn upper_layout(levels: &[u8], m: usize) -> (Vec<usize>, usize) {
    let mut next = 0usize;
    let starts = levels
        .iter()
        .map(|&l| {
            let start = next;
            next += l as usize * (m + 1);
            start
        })
        .collect();
    (starts, next)
}

/// Scales `v` to unit length; leaves a zero vector alone.
fn normalize(v: &mut [f32]) {
    let norm = (inner_product(v, v) as f64).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x = (*x as f64 / norm) as f32);
    }
}

impl VectorIndex for HnswIndex {
    fn kind(&self) -> IndexKind {
        IndexKind::Hnsw
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
        params: &SearchParams,
        filter: Option<&dyn RowFilter>,
    ) -> Vec<Neighbor> {
        if k == 0 || self.n == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let mut q = query.to_vec();
        if self.metric == Metric::Cosine {
            normalize(&mut q);
            if inner_product(&q, &q) == 0.0 {
                return self.exact(&q, k, filter);
            }
        }
        if let Some(f) = filter {
            if self.allowed_fraction(f) < EXACT_SCAN_FRACTION {
                return self.exact(&q, k, filter);
            }
        }
        let ef = params.ef.unwrap_or(DEFAULT_EF_SEARCH).max(k);
        let mut ep = Cand {
            d: self.dist(&q, self.entry),
            id: self.entry,
        };
        for layer in (1..=self.max_level as usize).rev() {
            ep = self.greedy(&q, ep, layer);
        }
        let found = VISITED.with(|v| {
            let mut visited = v.borrow_mut();
            self.search_layer(&q, &[ep], ef, 0, filter, &mut visited)
        });
        let mut out: Vec<Neighbor> = found
            .iter()
            .map(|c| Neighbor {
                row: c.id,
                distance: self.reported(&q, c.id),
            })
            .collect();
        out.sort_unstable();
        out.truncate(k);
        if out.len() < k.min(self.n) {
            // Disconnected region or a filter the walk could not satisfy.
            return self.exact(&q, k, filter);
        }
        out
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_header(IndexKind::Hnsw, self.metric, self.dim, self.n);
        w.u32(self.m as u32);
        w.u32(self.ef_construction as u32);
        w.u64(self.seed);
        w.u32(self.entry);
        w.u8(self.max_level);
        w.bytes(&self.levels);
        w.f32s(&self.vectors);
        w.u32s(&self.layer0);
        w.u64(self.upper.len() as u64);
        w.u32s(&self.upper);
        w.finish()
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.vectors.capacity() * 4
            + self.levels.capacity()
            + (self.layer0.capacity() + self.upper.capacity()) * 4
            + self.upper_start.capacity() * std::mem::size_of::<usize>()
    }
}
