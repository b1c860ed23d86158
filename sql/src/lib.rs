//! `quiver-sql` is the access layer: it turns requests from either protocol
//! into engine operations and streams results back.
//!
//! * [`complexity`] — the bound on expression trees, checked on a
//!   statement's tokens before it is parsed (both doors);
//! * [`handler`] — [`handler::QueryHandler`], the one seam protocol front ends use;
//! * [`instance`] — [`instance::Instance`], the handler over a Quiver engine:
//!   statement routing (DDL and DML to the catalog and storage, COPY to the
//!   COPY path, everything else planned once by DataFusion);
//! * [`pg`] — the Postgres wire protocol front end (pgwire), which knows
//!   nothing of storage.

pub mod complexity;
pub mod error;
pub mod handler;
pub mod instance;
pub mod milvus;
pub mod pg;

pub use error::{Result, SqlError};
pub use handler::pg::{PgHandler, PgHandlerRef};
pub use handler::{QueryHandler, QueryHandlerRef};
pub use instance::Instance;
