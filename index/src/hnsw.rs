//! HNSW (Malkov & Yashunin, "Efficient and robust approximate nearest
//! neighbor search using Hierarchical Navigable Small World graphs").
//!
//! Layout: vectors live in one contiguous `Vec<f32>`; layer-0 neighbour
//! lists live in one `Vec<u32>` with a fixed stride of `2m + 1` per node
//! (`[count, ids...]`); upper layers (only ~1/m of the nodes have any) live
//! in a second flat `Vec<u32>` with stride `m + 1` per (node, layer).
//!
//! Node levels come from a seeded `StdRng`, and nodes are inserted in row
//! order. Neighbours are chosen with the paper's heuristic (Algorithm 4,
//! without `extendCandidates` or `keepPrunedConnections`).
//!
//! Building: with one thread (`BuildOptions::threads == 1`) a given (data,
//! options) pair always yields the same graph. With more, the first
//! [`SERIAL_ROWS`] rows are inserted by one thread and the rest by all of
//! them, each taking the next row; as in hnswlib, every node's neighbour
//! lists have their own lock (a thread holds at most one at a time, so
//! there is no lock order to get wrong), and a node inserted above the
//! current top level holds the entry-point lock for its whole insertion. The
//! interleaving, and so the graph, then varies from build to build.
//!
//! Searching: the distance kernel is looked up once per search, buffers
//! (visited set, heaps) are per-thread and reused, and since vectors are
//! large and scattered, every fresh neighbour's first cache line is
//! prefetched as soon as the neighbour list is read, and the whole next
//! vector while the current one is compared.
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

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering as MemOrder};
use std::sync::{Mutex, MutexGuard};

use rand::{Rng, SeedableRng};

use crate::distance::{inner_product, kernels, normalize, Metric};
use crate::flat::exact_scan;
use crate::index::{
    estimate_allowed_fraction, validate_vectors, BuildOptions, IndexError, IndexKind, Neighbor,
    RowFilter, SearchParams, VectorIndex,
};
use crate::serial::{corrupt, Header, Reader, Writer};
use crate::visited::Visited;

/// Default `ef_search` (pgvector's `hnsw.ef_search` default).
pub const DEFAULT_EF_SEARCH: usize = 40;
/// Below this estimated allowed fraction a filtered search scans exactly.
pub const EXACT_SCAN_FRACTION: f64 = 0.02;
/// Highest layer a node may be assigned.
const MAX_LEVEL: u8 = 24;
/// Rows a parallel build inserts with one thread before starting the others:
/// concurrent inserts into a small graph miss each other often enough to
/// cost recall, and a graph this small builds quickly anyway. It also makes
/// builds of up to this many rows deterministic whatever the thread count.
pub const SERIAL_ROWS: usize = 2048;

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

/// Hints the CPU to bring the cache line at `p` into L1 (`L1 = true`) or
/// L2. Never faults, whatever `p` is; a no-op off x86-64.
#[inline(always)]
fn prefetch<T, const L1: bool>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it reads nothing and never faults.
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        if L1 {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
        } else {
            _mm_prefetch::<_MM_HINT_T1>(p as *const i8);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Internal distances over the stored vectors, with the distance kernel
/// looked up once rather than per call.
#[derive(Clone, Copy)]
struct Space<'a> {
    metric: Metric,
    dim: usize,
    vectors: &'a [f32],
    kernel: fn(&[f32], &[f32]) -> f32,
}

impl<'a> Space<'a> {
    fn new(metric: Metric, dim: usize, vectors: &'a [f32]) -> Self {
        let k = kernels();
        let kernel = match metric {
            Metric::L2 => k.l2_squared,
            Metric::Cosine | Metric::NegativeInnerProduct => k.inner_product,
            Metric::L1 => k.l1,
        };
        Self {
            metric,
            dim,
            vectors,
            kernel,
        }
    }

    #[inline]
    fn vector(&self, row: u32) -> &'a [f32] {
        let i = row as usize * self.dim;
        &self.vectors[i..i + self.dim]
    }

    /// Internal distance: squared L2, `1 - a·b` on unit vectors, `-a·b`, L1.
    #[inline]
    fn dist(&self, q: &[f32], row: u32) -> f32 {
        let d = (self.kernel)(q, self.vector(row));
        match self.metric {
            Metric::Cosine => 1.0 - d,
            Metric::NegativeInnerProduct => -d,
            Metric::L2 | Metric::L1 => d,
        }
    }

    /// Starts loading the first cache line of `row`'s vector into L1.
    #[inline]
    fn prefetch_head(&self, row: u32) {
        prefetch::<_, true>(self.vectors.as_ptr().wrapping_add(row as usize * self.dim));
    }

    /// Starts loading all of `row`'s vector into L2.
    #[inline]
    fn prefetch_all(&self, row: u32) {
        let start = self.vectors.as_ptr().wrapping_add(row as usize * self.dim) as *const u8;
        for line in 0..(self.dim * 4).div_ceil(64) {
            prefetch::<_, false>(start.wrapping_add(line * 64));
        }
    }
}

/// Read access to neighbour lists, shared by the finished index (plain
/// slices) and the build (per-node locks).
trait Graph: Sync {
    /// Copies `node`'s neighbours at `layer` into `out`.
    fn neighbours(&self, node: u32, layer: usize, out: &mut Vec<u32>);
    /// Hints that `node`'s layer-0 list will be read soon.
    fn prefetch_links(&self, _node: u32) {}
}

/// Per-thread buffers reused across searches, so a search allocates nothing
/// once warm.
#[derive(Default)]
struct Scratch {
    visited: Visited,
    candidates: BinaryHeap<Reverse<Cand>>,
    results: BinaryHeap<Cand>,
    links: Vec<u32>,
    fresh: Vec<u32>,
    /// The output of [`search_layer`], closest first.
    found: Vec<Cand>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Greedy descent to the closest node on one layer.
fn greedy<G: Graph>(
    graph: &G,
    space: &Space<'_>,
    q: &[f32],
    mut cur: Cand,
    layer: usize,
    links: &mut Vec<u32>,
) -> Cand {
    loop {
        let mut moved = false;
        graph.neighbours(cur.id, layer, links);
        for &nb in links.iter() {
            let c = Cand {
                d: space.dist(q, nb),
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

/// Best-first search of one layer (Algorithm 2) from `entries`, leaving up
/// to `ef` results, closest first, in `s.found`. Only nodes the filter
/// allows enter the result, but every node may be expanded. `n` is the node
/// count.
#[allow(clippy::too_many_arguments)]
fn search_layer<G: Graph>(
    graph: &G,
    space: &Space<'_>,
    n: usize,
    q: &[f32],
    entries: &[Cand],
    ef: usize,
    layer: usize,
    filter: Option<&dyn RowFilter>,
    s: &mut Scratch,
) {
    let Scratch {
        visited,
        candidates,
        results,
        links,
        fresh,
        found,
        ..
    } = s;
    visited.reset(n);
    candidates.clear();
    results.clear();
    let admit = |id: u32| filter.is_none_or(|f| f.allows(id));
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
        graph.neighbours(c.id, layer, links);
        fresh.clear();
        fresh.extend(links.iter().copied().filter(|&nb| visited.insert(nb)));
        // Vectors are far apart in memory and usually not cached: start
        // every fresh vector's first line at once (the misses overlap), then
        // pull in the whole of the next vector while computing the current.
        for &nb in fresh.iter() {
            space.prefetch_head(nb);
        }
        for (i, &nb) in fresh.iter().enumerate() {
            if let Some(&next) = fresh.get(i + 1) {
                space.prefetch_all(next);
            }
            let cand = Cand {
                d: space.dist(q, nb),
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
        if let Some(Reverse(next)) = candidates.peek() {
            graph.prefetch_links(next.id);
        }
    }
    found.clear();
    found.extend(results.drain());
    found.sort_unstable();
}

/// The neighbour selection heuristic: walk candidates closest first and
/// keep one only if it is closer to the base than to every kept one.
fn select(space: &Space<'_>, sorted: &[Cand], keep: usize, out: &mut Vec<Cand>) {
    out.clear();
    for &c in sorted {
        if out.len() >= keep {
            break;
        }
        let v = space.vector(c.id);
        if out.iter().all(|r| space.dist(v, r.id) >= c.d) {
            out.push(c);
        }
    }
}

/// Layout of the neighbour lists: layer 0 has stride `2m + 1` per node;
/// upper layers are `level` blocks of stride `m + 1` from `upper_start`.
#[derive(Clone, Copy)]
struct Layout<'a> {
    m: usize,
    upper_start: &'a [usize],
}

impl Layout<'_> {
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
}

/// The graph while it is built: neighbour lists in atomics, each node's
/// lists guarded by the node's lock (readers copy a list under the lock, so
/// they always see a consistent one).
struct BuildGraph<'a> {
    layout: Layout<'a>,
    layer0: Vec<AtomicU32>,
    upper: Vec<AtomicU32>,
    locks: Vec<Mutex<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl BuildGraph<'_> {
    fn list(&self, layer: usize) -> &[AtomicU32] {
        if layer == 0 {
            &self.layer0
        } else {
            &self.upper
        }
    }

    /// Reads a list; the caller holds `node`'s lock.
    fn read_locked(&self, node: u32, layer: usize, out: &mut Vec<u32>) {
        let b = self.layout.block(node, layer);
        let list = self.list(layer);
        let count = list[b].load(MemOrder::Relaxed) as usize;
        out.clear();
        out.extend(
            list[b + 1..b + 1 + count]
                .iter()
                .map(|a| a.load(MemOrder::Relaxed)),
        );
    }

    /// Writes a list; the caller holds `node`'s lock.
    fn write_locked(&self, node: u32, layer: usize, ids: impl ExactSizeIterator<Item = u32>) {
        let b = self.layout.block(node, layer);
        let list = self.list(layer);
        list[b].store(ids.len() as u32, MemOrder::Relaxed);
        for (slot, id) in list[b + 1..].iter().zip(ids) {
            slot.store(id, MemOrder::Relaxed);
        }
    }
}

impl Graph for BuildGraph<'_> {
    fn neighbours(&self, node: u32, layer: usize, out: &mut Vec<u32>) {
        let _guard = lock(&self.locks[node as usize]);
        self.read_locked(node, layer, out);
    }
}

/// Shared state of a (possibly parallel) build.
struct Builder<'a> {
    graph: BuildGraph<'a>,
    space: Space<'a>,
    levels: &'a [u8],
    ef_construction: usize,
    /// `(entry point, max level)`; held for a whole insert by the thread
    /// inserting a node above the current max level.
    top: Mutex<(u32, u8)>,
}

impl Builder<'_> {
    /// Inserts `row` (Algorithm 1).
    fn insert(&self, row: u32, s: &mut Scratch, entries: &mut Vec<Cand>, chosen: &mut Vec<Cand>) {
        let space = &self.space;
        let layout = self.graph.layout;
        let n = self.levels.len();
        let q = space.vector(row);
        let level = self.levels[row as usize];
        let top = lock(&self.top);
        let (entry, max_level) = *top;
        let held = if level > max_level {
            Some(top)
        } else {
            drop(top);
            None
        };
        let mut ep = Cand {
            d: space.dist(q, entry),
            id: entry,
        };
        for layer in (level as usize + 1..=max_level as usize).rev() {
            ep = greedy(&self.graph, space, q, ep, layer, &mut s.links);
        }
        entries.clear();
        entries.push(ep);
        // In a parallel build other threads can link to `row` (see
        // `set_own_links`) and so lead this search to it: never select it.
        let not_self = move |id: u32| id != row;
        for layer in (0..=level.min(max_level) as usize).rev() {
            search_layer(
                &self.graph,
                space,
                n,
                q,
                entries,
                self.ef_construction,
                layer,
                Some(&not_self),
                s,
            );
            select(space, &s.found, layout.m, chosen);
            self.set_own_links(row, layer, chosen, s);
            for c in chosen.iter() {
                self.connect(c.id, row, c.d, layer, s);
            }
            entries.clear();
            entries.extend_from_slice(&s.found);
        }
        if let Some(mut top) = held {
            *top = (row, level);
        }
    }

    /// Sets `row`'s list at `layer` to `chosen`. In a parallel build other
    /// threads may already have linked themselves into that list (they can
    /// reach `row` from the layer above); their links are kept, re-selecting
    /// when the union is over capacity. With one thread the list is empty.
    fn set_own_links(&self, row: u32, layer: usize, chosen: &[Cand], s: &mut Scratch) {
        let _guard = lock(&self.graph.locks[row as usize]);
        self.graph.read_locked(row, layer, &mut s.links);
        if s.links.is_empty() {
            self.graph
                .write_locked(row, layer, chosen.iter().map(|c| c.id));
            return;
        }
        let space = &self.space;
        let q = space.vector(row);
        let mut union: Vec<Cand> = chosen.to_vec();
        for &id in &s.links {
            if !chosen.iter().any(|c| c.id == id) {
                union.push(Cand {
                    d: space.dist(q, id),
                    id,
                });
            }
        }
        union.sort_unstable();
        let cap = self.graph.layout.cap(layer);
        if union.len() > cap {
            let mut kept = Vec::with_capacity(cap);
            select(space, &union, cap, &mut kept);
            union = kept;
        }
        self.graph
            .write_locked(row, layer, union.iter().map(|c| c.id));
    }

    /// Adds `new` to `node`'s list at `layer`, re-selecting when full.
    fn connect(&self, node: u32, new: u32, d: f32, layer: usize, s: &mut Scratch) {
        let space = &self.space;
        let cap = self.graph.layout.cap(layer);
        let _guard = lock(&self.graph.locks[node as usize]);
        self.graph.read_locked(node, layer, &mut s.links);
        if s.links.contains(&new) {
            // `node`, built concurrently, already chose `new` itself.
            return;
        }
        if s.links.len() < cap {
            s.links.push(new);
            self.graph
                .write_locked(node, layer, s.links.iter().copied());
            return;
        }
        let base = space.vector(node);
        let mut cands: Vec<Cand> = s
            .links
            .iter()
            .map(|&id| Cand {
                d: space.dist(base, id),
                id,
            })
            .chain([Cand { d, id: new }])
            .collect();
        cands.sort_unstable();
        let mut kept = Vec::with_capacity(cap);
        select(space, &cands, cap, &mut kept);
        self.graph
            .write_locked(node, layer, kept.iter().map(|c| c.id));
    }
}

/// The thread count `options.threads` stands for.
fn build_threads(options: &BuildOptions) -> usize {
    match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
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

impl Graph for HnswIndex {
    #[inline]
    fn neighbours(&self, node: u32, layer: usize, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(self.links(node, layer));
    }

    #[inline]
    fn prefetch_links(&self, node: u32) {
        prefetch::<_, true>(
            self.layer0
                .as_ptr()
                .wrapping_add(node as usize * (2 * self.m + 1)),
        );
    }
}

impl HnswIndex {
    /// Builds over `vectors` (`n * dim` floats, row-major), with
    /// `options.threads` threads. Nodes are inserted in row order by one
    /// thread, or taken in row order by several.
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
        if n == 0 {
            return Ok(index);
        }
        let builder = Builder {
            graph: BuildGraph {
                layout: index.layout(),
                layer0: index.layer0.iter().map(|_| AtomicU32::new(0)).collect(),
                upper: index.upper.iter().map(|_| AtomicU32::new(0)).collect(),
                locks: (0..n).map(|_| Mutex::new(())).collect(),
            },
            space: Space::new(metric, dim, &index.vectors),
            levels: &index.levels,
            ef_construction: options.ef_construction,
            top: Mutex::new((0, index.levels[0])),
        };
        // Row 0 is the first entry point; the others are taken in row order,
        // the first SERIAL_ROWS by this thread alone.
        let next = AtomicUsize::new(1);
        let work = |end: usize| {
            let mut s = Scratch::default();
            let (mut entries, mut chosen) = (Vec::new(), Vec::new());
            loop {
                let row = next.fetch_add(1, MemOrder::Relaxed);
                if row >= end {
                    break;
                }
                builder.insert(row as u32, &mut s, &mut entries, &mut chosen);
            }
        };
        let threads = build_threads(options).clamp(1, n);
        let serial_end = if threads == 1 { n } else { n.min(SERIAL_ROWS) };
        work(serial_end);
        if serial_end < n {
            next.store(serial_end, MemOrder::Relaxed);
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| work(n));
                }
            });
        }
        let (entry, max_level) = *lock(&builder.top);
        let layer0 = builder
            .graph
            .layer0
            .into_iter()
            .map(AtomicU32::into_inner)
            .collect();
        let upper = builder
            .graph
            .upper
            .into_iter()
            .map(AtomicU32::into_inner)
            .collect();
        index.layer0 = layer0;
        index.upper = upper;
        index.entry = entry;
        index.max_level = max_level;
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

    fn layout(&self) -> Layout<'_> {
        Layout {
            m: self.m,
            upper_start: &self.upper_start,
        }
    }

    fn space(&self) -> Space<'_> {
        Space::new(self.metric, self.dim, &self.vectors)
    }

    /// The stored (for cosine: normalized) vector of `row`.
    fn vector(&self, row: u32) -> &[f32] {
        let i = row as usize * self.dim;
        &self.vectors[i..i + self.dim]
    }

    /// The distance reported to callers, in [`Metric::distance`] units, from
    /// the internal distance `d` of `row` to `q`.
    fn reported(&self, q: &[f32], row: u32, d: f32) -> f32 {
        match self.metric {
            Metric::L2 => d.sqrt(),
            Metric::Cosine => {
                let v = self.vector(row);
                if inner_product(v, v) == 0.0 {
                    f32::NAN
                } else {
                    1.0 - inner_product(q, v).clamp(-1.0, 1.0)
                }
            }
            Metric::NegativeInnerProduct | Metric::L1 => d,
        }
    }

    fn cap(&self, layer: usize) -> usize {
        self.layout().cap(layer)
    }

    #[inline]
    fn block(&self, node: u32, layer: usize) -> usize {
        self.layout().block(node, layer)
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

    /// Estimated fraction of rows `filter` allows.
    fn allowed_fraction(&self, filter: &dyn RowFilter) -> f64 {
        estimate_allowed_fraction(filter, self.n)
    }

    fn exact(&self, q: &[f32], k: usize, filter: Option<&dyn RowFilter>) -> Vec<Neighbor> {
        exact_scan(self.metric, self.dim, &self.vectors, &[], q, k, filter)
    }

    /// [`VectorIndex::search`] with the given scratch buffers.
    fn search_with(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        filter: Option<&dyn RowFilter>,
        s: &mut Scratch,
    ) -> Vec<Neighbor> {
        let normalized: Vec<f32>;
        let q = if self.metric == Metric::Cosine {
            let mut v = query.to_vec();
            normalize(&mut v);
            if inner_product(&v, &v) == 0.0 {
                return self.exact(&v, k, filter);
            }
            normalized = v;
            &normalized[..]
        } else {
            query
        };
        if let Some(f) = filter {
            if self.allowed_fraction(f) < EXACT_SCAN_FRACTION {
                return self.exact(q, k, filter);
            }
        }
        let ef = params.ef.unwrap_or(DEFAULT_EF_SEARCH).max(k);
        let space = self.space();
        let mut ep = Cand {
            d: space.dist(q, self.entry),
            id: self.entry,
        };
        for layer in (1..=self.max_level as usize).rev() {
            ep = greedy(self, &space, q, ep, layer, &mut s.links);
        }
        search_layer(self, &space, self.n, q, &[ep], ef, 0, filter, s);
        let mut out: Vec<Neighbor> = s
            .found
            .iter()
            .map(|c| Neighbor {
                row: c.id,
                distance: self.reported(q, c.id, c.d),
            })
            .collect();
        out.sort_unstable();
        out.truncate(k);
        if out.len() < k.min(self.n) {
            // Disconnected region or a filter the walk could not satisfy.
            return self.exact(q, k, filter);
        }
        out
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
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => self.search_with(query, k, params, filter, &mut s),
            // A filter that itself searches on this thread.
            Err(_) => self.search_with(query, k, params, filter, &mut Scratch::default()),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{clustered_vectors, ground_truth, recall};
    use crate::index::load_index;

    #[test]
    fn parallel_build_is_well_formed_and_finds_neighbours() {
        let (dim, n) = (8, SERIAL_ROWS + 3000);
        let data = clustered_vectors(n, dim, 30, 2.0, 3);
        let opts = BuildOptions {
            m: 8,
            ef_construction: 64,
            threads: 4,
            ..BuildOptions::default()
        };
        let index = HnswIndex::build(Metric::L2, dim, &data, &opts).unwrap();
        for node in 0..n as u32 {
            for layer in 0..=index.levels[node as usize] as usize {
                let mut ids = index.links(node, layer).to_vec();
                assert!(ids.len() <= index.cap(layer));
                assert!(!ids.contains(&node), "self link");
                ids.sort_unstable();
                ids.dedup();
                assert_eq!(ids.len(), index.links(node, layer).len(), "duplicate link");
            }
        }
        // The loader's structural checks accept it.
        let loaded = load_index(&index.to_bytes()).unwrap();
        let queries = clustered_vectors(50, dim, 30, 2.5, 4);
        let params = SearchParams {
            ef: Some(64),
            ..SearchParams::default()
        };
        let mut total = 0.0;
        for q in queries.chunks_exact(dim) {
            let exact = ground_truth(Metric::L2, dim, &data, q, 10, None);
            let got = loaded.search(q, 10, &params, None);
            assert_eq!(got, index.search(q, 10, &params, None));
            total += recall(&exact, &got);
        }
        assert!(total / 50.0 >= 0.9, "recall {}", total / 50.0);
    }

    #[test]
    fn small_builds_are_deterministic_whatever_the_thread_count() {
        let data = clustered_vectors(SERIAL_ROWS, 4, 10, 1.0, 5);
        let build = |threads| {
            let opts = BuildOptions {
                m: 4,
                ef_construction: 16,
                threads,
                ..BuildOptions::default()
            };
            HnswIndex::build(Metric::L2, 4, &data, &opts)
                .unwrap()
                .to_bytes()
        };
        assert_eq!(build(1), build(3));
    }
}
