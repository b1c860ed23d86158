//! `quiver-servers` is the protocol side of the access layer: the servers
//! clients connect to. Each speaks its wire protocol and nothing else: every
//! statement, catalog read and write goes through the SQL frontend's seam,
//! `quiver_sql::handler` — the protocol-neutral `QueryHandler` (and, for
//! the Postgres door only, its extension `PgHandler`), the opaque sessions
//! it opens, and `SqlError` with its status code and catalog data. The
//! servers know nothing of storage, the catalog's implementation or the
//! engine.
//!
//! * [`pg`] — the Postgres wire protocol server (pgwire): startup, the
//!   simple and extended query protocols, COPY, cancel requests, SQLSTATEs;
//! * [`milvus`] — the Milvus gRPC server (`MilvusService` from
//!   `milvus-sdk-rust` over tonic): collections as tables, the Milvus
//!   filter-expression translator, searches as SQL.

pub mod milvus;
pub mod pg;
