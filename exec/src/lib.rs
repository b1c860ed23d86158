//! `quiver-exec` owns query execution over Quiver's segments:
//!
//! * [`source`] — the [`source::TableSource`] contract the storage roles
//!   implement: a consistent snapshot of a table's growing and sealed segments
//!   plus its deletes at a read timestamp, and row visibility (MVCC) rules.
//! * [`table`] — [`table::QuiverTable`], the DataFusion `TableProvider`, and its
//!   [`table::SegmentScanExec`] scan operator.
//! * [`vector_search`] — [`vector_search::VectorSearchExec`], the physical
//!   top-k nearest-neighbour operator, and [`search`], what it does per
//!   segment: filter bitmap, index search or exact scan chosen by the
//!   allowed fraction, exact re-ranking, merge with ties broken by primary
//!   key. Segments are searched in parallel on the bounded [`pool`];
//!   [`stats`] skips segments by min/max statistics.
//! * [`memory`] — the per-statement and server-wide memory budgets (a
//!   DataFusion `MemoryPool`), which the search and scan operators reserve
//!   against in bulk.
//! * [`catalog`] — DataFusion catalog/schema providers over a
//!   [`catalog::CatalogSource`].
//!
//! This crate knows nothing of protocols or of how segments are stored.

pub mod catalog;
pub mod deletes;
pub mod memory;
pub mod pk;
pub mod pool;
pub mod search;
pub mod source;
pub mod stats;
pub mod table;
pub mod vector_search;
