//! `quiver-common` owns the vocabulary every other Quiver crate shares:
//!
//! * [`status::StatusCode`] — the error kinds of the whole system; every crate's
//!   error enum reports one, and the protocol front ends map them exhaustively
//!   to SQLSTATE (Postgres) and to Milvus status codes.
//! * [`schema`] — column types, table schemas and their Arrow form
//!   (a `vector(n)` column is a `FixedSizeList<Float32, n>`).
//! * [`vector`] — the pgvector text format and its validation rules.
//! * [`time_zone`] — the session setting `TimeZone` and `timestamptz` offsets.
//! * [`timestamp`] — 64-bit hybrid timestamps (46 bits physical ms + 18 bits logical).
//! * [`config`] — the one configuration struct, loaded as defaults < TOML < env < flags.
//! * [`limits`] — documented hard limits (dimension, top-k, request size).

pub mod config;
pub mod json_text;
pub mod limits;
pub mod schema;
pub mod status;
pub mod time_zone;
pub mod timestamp;
pub mod vector;
