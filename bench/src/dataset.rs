//! Loading a benchmark dataset: a folder in TEXMEX layout (`base.fvecs`,
//! `query.fvecs`, `groundtruth.ivecs`), optionally converted first by the
//! folder's own `make_fvecs.py` into a cache folder, cut to `--max-base`
//! base vectors and `--queries` queries, with the ground truth recomputed
//! exactly (FLAT index, all threads) when the base is cut or the folder has
//! none.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use quiver_index::{build_index, BuildOptions, IndexKind, Metric, SearchParams};

use crate::error::{BenchError, Result};
use crate::vecs::{count_records, read_fvecs, read_ivecs, write_ivecs, Vecs};

/// What to load.
#[derive(Debug, Clone)]
pub struct DatasetOptions {
    /// The dataset folder (may be read-only).
    pub dir: PathBuf,
    /// Where converted files and recomputed ground truth go.
    pub cache_dir: PathBuf,
    pub metric: Metric,
    /// Keep only the first `max_base` base vectors.
    pub max_base: Option<usize>,
    /// Keep only the first `queries` queries.
    pub queries: Option<usize>,
    /// Neighbours per query needed in the ground truth.
    pub k: usize,
    /// Threads for recomputing the ground truth.
    pub threads: usize,
    /// Python interpreter for a converter script.
    pub python: String,
}

/// A loaded dataset, ready to benchmark.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The folder's name, e.g. `fashion-mnist-784-euclidean`.
    pub name: String,
    pub metric: Metric,
    pub dim: usize,
    pub base: Vec<f32>,
    pub queries: Vec<f32>,
    /// True neighbours of each query, closest first (at least `k`).
    pub truth: Vec<Vec<u32>>,
    /// Files holding exactly this data (for the peer scripts):
    /// `base.fvecs` and `query.fvecs` may hold more rows than were kept
    /// (read their first `base_rows()` / `query_rows()`); the ground truth
    /// file matches the kept rows.
    pub base_file: PathBuf,
    pub query_file: PathBuf,
    pub truth_file: PathBuf,
    /// Whether the ground truth was recomputed here.
    pub truth_recomputed: bool,
}

impl Dataset {
    pub fn base_rows(&self) -> usize {
        self.base.len() / self.dim
    }

    pub fn query_rows(&self) -> usize {
        self.queries.len() / self.dim
    }

    pub fn query(&self, i: usize) -> &[f32] {
        &self.queries[i * self.dim..(i + 1) * self.dim]
    }
}

/// Where the benchmark keeps what it makes: `$HOME/.cache/quiver-bench`.
pub fn bench_cache_root() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("quiver-bench")
}

/// The default cache folder of a dataset:
/// `$HOME/.cache/quiver-bench/<dataset-name>`.
pub fn default_cache_dir(dataset: &Path) -> PathBuf {
    bench_cache_root().join(dataset_name(dataset))
}

/// The interpreter of a Python virtual environment the tool's scripts run
/// in: `$<env_var>/bin/python`, else `$HOME/.cache/quiver-bench/<venv>/bin/python`.
pub fn venv_python(env_var: &str, venv: &str) -> PathBuf {
    std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| bench_cache_root().join(venv))
        .join("bin/python")
}

/// The last component of the dataset folder.
pub fn dataset_name(dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    canonical.file_name().map_or_else(
        || "dataset".to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Finds `base.fvecs` and `query.fvecs`: in the dataset folder, else in the
/// cache folder, else runs the folder's `make_fvecs.py CACHE_DIR`.
fn locate_vectors(opts: &DatasetOptions) -> Result<(PathBuf, PathBuf)> {
    for dir in [&opts.dir, &opts.cache_dir] {
        let (base, query) = (dir.join("base.fvecs"), dir.join("query.fvecs"));
        if base.is_file() && query.is_file() {
            return Ok((base, query));
        }
    }
    let converter = opts.dir.join("make_fvecs.py");
    if !converter.is_file() {
        return Err(BenchError::Dataset(format!(
            "{} has no base.fvecs/query.fvecs (nor {}) and no make_fvecs.py to make them",
            opts.dir.display(),
            opts.cache_dir.display()
        )));
    }
    std::fs::create_dir_all(&opts.cache_dir).map_err(|e| BenchError::io(&opts.cache_dir, e))?;
    eprintln!(
        "converting {} with {} into {} ...",
        opts.dir.display(),
        converter.display(),
        opts.cache_dir.display()
    );
    let command = format!(
        "{} {} {}",
        opts.python,
        converter.display(),
        opts.cache_dir.display()
    );
    let output = Command::new(&opts.python)
        .arg(&converter)
        .arg(&opts.cache_dir)
        .output()
        .map_err(|e| BenchError::Converter {
            command: command.clone(),
            status: "not started".into(),
            stderr: e.to_string(),
        })?;
    if !output.status.success() {
        let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        stderr.push_str(&String::from_utf8_lossy(&output.stdout));
        return Err(BenchError::Converter {
            command,
            status: output.status.to_string(),
            stderr: stderr.trim().to_string(),
        });
    }
    let (base, query) = (
        opts.cache_dir.join("base.fvecs"),
        opts.cache_dir.join("query.fvecs"),
    );
    if !base.is_file() || !query.is_file() {
        return Err(BenchError::Converter {
            command,
            status: output.status.to_string(),
            stderr: "finished without writing base.fvecs and query.fvecs".into(),
        });
    }
    Ok((base, query))
}

/// Loads the dataset described by `opts`.
pub fn load(opts: &DatasetOptions) -> Result<Dataset> {
    if opts.k == 0 {
        return Err(BenchError::Argument("k must be at least 1".into()));
    }
    let (base_file, query_file) = locate_vectors(opts)?;
    let total_base = count_records(&base_file)?;
    let keep_base = opts.max_base.map_or(total_base, |m| m.min(total_base));
    if keep_base == 0 {
        return Err(BenchError::Argument("--max-base must be at least 1".into()));
    }
    let base = read_fvecs(&base_file, Some(keep_base))?;
    let mut queries = read_fvecs(&query_file, opts.queries)?;
    if queries.dim != base.dim {
        return Err(BenchError::Dataset(format!(
            "{} has dimension {} but {} has {}",
            query_file.display(),
            queries.dim,
            base_file.display(),
            base.dim
        )));
    }
    if let Some(n) = opts.queries {
        if n == 0 {
            return Err(BenchError::Argument("--queries must be at least 1".into()));
        }
        queries.truncate(n);
    }
    let nq = queries.len();
    let truth_in_dir = [&opts.dir, &opts.cache_dir]
        .into_iter()
        .map(|d| d.join("groundtruth.ivecs"))
        .find(|p| p.is_file());

    let subset = keep_base < total_base;
    let (truth, truth_file, truth_recomputed) = match truth_in_dir {
        Some(path) if !subset => {
            let gt = read_ivecs(&path, Some(nq))?;
            (check_truth(&path, gt, nq, opts.k, keep_base)?, path, false)
        }
        _ => {
            if subset {
                eprintln!(
                    "recomputing exact ground truth for {nq} queries over the first {keep_base} base vectors ..."
                );
            } else {
                eprintln!(
                    "no groundtruth.ivecs: computing exact ground truth for {nq} queries ..."
                );
            }
            let truth = exact_truth(
                opts.metric,
                base.dim,
                &base.data,
                &queries.data,
                opts.k,
                opts.threads,
            )?;
            std::fs::create_dir_all(&opts.cache_dir)
                .map_err(|e| BenchError::io(&opts.cache_dir, e))?;
            let path = opts.cache_dir.join(format!(
                "groundtruth-{}-base{}-q{}-k{}.ivecs",
                opts.metric.function_name(),
                keep_base,
                nq,
                opts.k
            ));
            let flat: Vec<i32> = truth.iter().flatten().map(|&r| r as i32).collect();
            write_ivecs(&path, opts.k, &flat)?;
            (truth, path, true)
        }
    };

    Ok(Dataset {
        name: dataset_name(&opts.dir),
        metric: opts.metric,
        dim: base.dim,
        base: base.data,
        queries: queries.data,
        truth,
        base_file,
        query_file,
        truth_file,
        truth_recomputed,
    })
}

/// Checks a ground truth file against the kept data.
fn check_truth(
    path: &Path,
    gt: Vecs<i32>,
    nq: usize,
    k: usize,
    base_rows: usize,
) -> Result<Vec<Vec<u32>>> {
    if gt.len() < nq {
        return Err(BenchError::Dataset(format!(
            "{} has {} rows but {nq} queries are used",
            path.display(),
            gt.len()
        )));
    }
    if gt.dim < k {
        return Err(BenchError::Dataset(format!(
            "{} has {} neighbours per query, fewer than k = {k}",
            path.display(),
            gt.dim
        )));
    }
    let mut truth = Vec::with_capacity(nq);
    for q in 0..nq {
        let row = gt.row(q);
        let mut ids = Vec::with_capacity(row.len());
        for &id in row {
            if id < 0 || id as usize >= base_rows {
                return Err(BenchError::Dataset(format!(
                    "{}: query {q} lists neighbour {id}, but the base has {base_rows} vectors",
                    path.display()
                )));
            }
            ids.push(id as u32);
        }
        truth.push(ids);
    }
    Ok(truth)
}

/// Exact k nearest neighbours of every query with Quiver's FLAT index,
/// `threads` threads taking queries from a shared counter.
pub fn exact_truth(
    metric: Metric,
    dim: usize,
    base: &[f32],
    queries: &[f32],
    k: usize,
    threads: usize,
) -> Result<Vec<Vec<u32>>> {
    let flat = build_index(IndexKind::Flat, metric, dim, base, &BuildOptions::default())?;
    let nq = queries.len() / dim;
    let next = AtomicUsize::new(0);
    let params = SearchParams::default();
    let mut parts: Vec<Vec<(usize, Vec<u32>)>> = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= nq {
                            break out;
                        }
                        let q = &queries[i * dim..(i + 1) * dim];
                        let ids = flat
                            .search(q, k, &params, None)
                            .into_iter()
                            .map(|n| n.row)
                            .collect();
                        out.push((i, ids));
                    }
                })
            })
            .collect();
        parts = handles
            .into_iter()
            .map(|h| h.join().expect("ground truth thread panicked"))
            .collect();
    });
    let mut truth = vec![Vec::new(); nq];
    for (i, ids) in parts.into_iter().flatten() {
        truth[i] = ids;
    }
    Ok(truth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vecs::write_fvecs;

    fn opts(dir: &Path, cache: &Path) -> DatasetOptions {
        DatasetOptions {
            dir: dir.to_path_buf(),
            cache_dir: cache.to_path_buf(),
            metric: Metric::L2,
            max_base: None,
            queries: None,
            k: 2,
            threads: 2,
            python: "python3".into(),
        }
    }

    /// Base points on a line: 0, 1, ..., 9 (dim 2, second coordinate 0).
    fn write_line(dir: &Path) {
        let base: Vec<f32> = (0..10).flat_map(|i| [i as f32, 0.0]).collect();
        write_fvecs(&dir.join("base.fvecs"), 2, &base).unwrap();
        write_fvecs(&dir.join("query.fvecs"), 2, &[0.1, 0.0, 8.8, 0.0, 4.2, 0.0]).unwrap();
    }

    #[test]
    fn reads_ground_truth_and_recomputes_for_subsets() {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        write_line(dir.path());
        write_ivecs(
            &dir.path().join("groundtruth.ivecs"),
            3,
            &[0, 1, 2, 9, 8, 7, 4, 5, 3],
        )
        .unwrap();
        let full = load(&opts(dir.path(), cache.path())).unwrap();
        assert_eq!((full.base_rows(), full.query_rows(), full.dim), (10, 3, 2));
        assert!(!full.truth_recomputed);
        assert_eq!(full.truth[1], vec![9, 8, 7]);

        let mut o = opts(dir.path(), cache.path());
        o.max_base = Some(5);
        o.queries = Some(2);
        let cut = load(&o).unwrap();
        assert!(cut.truth_recomputed);
        assert_eq!(cut.base_rows(), 5);
        assert_eq!(cut.truth, vec![vec![0, 1], vec![4, 3]]);
        let written = read_ivecs(&cut.truth_file, None).unwrap();
        assert_eq!(written.data, vec![0, 1, 4, 3]);
    }

    #[test]
    fn clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let err = load(&opts(dir.path(), cache.path())).unwrap_err();
        assert!(err.to_string().contains("no make_fvecs.py"), "{err}");

        write_line(dir.path());
        // Ground truth pointing past the base.
        write_ivecs(
            &dir.path().join("groundtruth.ivecs"),
            2,
            &[0, 1, 9, 10, 4, 5],
        )
        .unwrap();
        let err = load(&opts(dir.path(), cache.path())).unwrap_err();
        assert!(err.to_string().contains("neighbour 10"), "{err}");
        // Too few neighbours per query.
        write_ivecs(&dir.path().join("groundtruth.ivecs"), 1, &[0, 9, 4]).unwrap();
        let err = load(&opts(dir.path(), cache.path())).unwrap_err();
        assert!(err.to_string().contains("fewer than k = 2"), "{err}");
        // Queries of another dimension.
        write_fvecs(&dir.path().join("query.fvecs"), 3, &[0.0; 3]).unwrap();
        let err = load(&opts(dir.path(), cache.path())).unwrap_err();
        assert!(err.to_string().contains("dimension 3"), "{err}");
    }

    #[test]
    fn runs_the_converter_into_the_cache() {
        if Command::new("python3").arg("--version").output().is_err() {
            return; // no interpreter on this machine
        }
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let script = r#"
import os, struct, sys
out = sys.argv[1]
def write(name, rows):
    with open(os.path.join(out, name), "wb") as f:
        for r in rows:
            f.write(struct.pack("<i", len(r)) + struct.pack("<%df" % len(r), *r))
write("base.fvecs", [[float(i), 0.0] for i in range(6)])
write("query.fvecs", [[5.2, 0.0]])
"#;
        std::fs::write(dir.path().join("make_fvecs.py"), script).unwrap();
        let data = load(&opts(dir.path(), cache.path())).unwrap();
        assert_eq!(data.base_rows(), 6);
        assert!(data.base_file.starts_with(cache.path()));
        // No ground truth anywhere: computed exactly.
        assert_eq!(data.truth, vec![vec![5, 4]]);

        let failing = tempfile::tempdir().unwrap();
        std::fs::write(
            failing.path().join("make_fvecs.py"),
            "import sys\nsys.exit('checksum MISMATCH')\n",
        )
        .unwrap();
        let err = load(&opts(failing.path(), &failing.path().join("cache"))).unwrap_err();
        assert!(matches!(err, BenchError::Converter { .. }), "{err}");
        assert!(err.to_string().contains("MISMATCH"), "{err}");
    }
}
