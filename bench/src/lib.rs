//! `quiver-bench` owns Quiver's benchmark tool: it measures recall@k, QPS
//! (one thread and all cores), p50/p99 latency, build time and index memory
//! of vector search on TEXMEX-format datasets, and prints a table for people
//! or one JSON object per measurement point.
//!
//! It sits on top of the workspace and uses only `quiver-index` from it
//! (never the engine crates): the `index` mode drives
//! `quiver_index::build_index` / `VectorIndex::search` in-process; the `sql`
//! mode goes through the Postgres door like any client would (tokio-postgres,
//! binary `COPY`, `CREATE INDEX`, one prepared statement); the `peers` mode
//! adds peer libraries (hnswlib, faiss-cpu, usearch) run by
//! `bench/peers/run_peer.py` on the same data and ground truth, and reports
//! Quiver/peer QPS ratios at fixed recall targets; the `milvus` mode drives
//! Milvus-API servers (Quiver's Milvus door, milvus-lite) with pymilvus
//! through `bench/milvus/run_milvus.py` and reports Quiver/other ratios.
//!
//! - [`vecs`]: `.fvecs` / `.ivecs` reading and writing.
//! - [`dataset`]: dataset folders, the converter cache, subsets and exact
//!   ground truth.
//! - [`metrics`]: recall@k, percentiles, QPS at a recall target.
//! - [`inproc`], [`sql`], [`peers`], [`milvus`]: the four modes.
//! - [`report`]: records, the human table, the ratio table, JSON lines.
//! - [`cli`]: the command line.

pub mod cli;
pub mod dataset;
pub mod error;
pub mod inproc;
pub mod metrics;
pub mod milvus;
pub mod peers;
pub mod report;
pub mod sql;
pub mod vecs;

pub use error::{BenchError, Result};
