//! `quiver-exec` owns query execution over Quiver's segments:
//!
//! * [`table_source`] — the [`table_source::TableSource`] contract the storage
//!   roles implement; [`source`] — a consistent snapshot of a table's growing and sealed segments
//!   plus its deletes at a read timestamp, and row visibility (MVCC) rules.
//! * [`table`] — [`table::QuiverTable`], the DataFusion `TableProvider`, and its
//!   [`table::SegmentScanExec`] scan operator.
//! * [`vector_search`] — [`vector_search::VectorSearchExec`], the physical
//!   top-k nearest-neighbour operator, and [`search`], what it does per
//!   segment: filter bitmap, index search or exact scan chosen by the
//!   allowed fraction, exact re-ranking, merge with ties broken by primary
//!   key. A search is scattered to the table's [`fragments`] (per shard,
//!   its sealed and its growing segments) and their partial top-k lists
//!   merged ([`fragment_wire`]: the same calls through encoded messages).
//!   Segments are searched in parallel on the bounded [`pool`];
//!   [`stats`] skips segments by min/max statistics.
//! * [`lateral_search`] — [`lateral_search::LateralSearchExec`], a lateral
//!   k-nearest-neighbour join: one search plan run for each probe row.
//! * [`memory`] — the per-statement and server-wide memory budgets (a
//!   DataFusion `MemoryPool`), which the search and scan operators reserve
//!   against in bulk.
//! * [`catalog`] — DataFusion catalog/schema providers over a
//!   [`catalog::CatalogSource`].
//!
//! This crate knows nothing of protocols or of how segments are stored.

pub mod catalog;
pub mod deletes;
pub mod fragment_wire;
pub mod fragments;
pub mod lateral_search;
pub mod memory;
pub mod pk;
pub mod pool;
pub mod search;
pub mod source;
pub mod stats;
pub mod table;
pub mod table_source;
pub mod transaction_view;
pub mod vector_search;
