//! `quiver-sql` is the SQL frontend of the access layer: it turns
//! statements into operations over the role APIs and the engine, and
//! streams results back. It speaks no wire protocol; the protocol servers
//! (`quiver-servers`: Postgres and Milvus) sit on top of it and reach it
//! through one seam, [`handler`].
//!
//! * [`handler`] — the seam: [`QueryHandler`] (protocol-neutral: sessions,
//!   parse, describe, execute, the catalog reads and writes a door needs),
//!   [`handler::pg::PgHandler`] (what only the Postgres door needs: command
//!   tags, transaction effects, COPY), and the opaque [`handler::Session`];
//! * [`error`] — [`SqlError`], its status code, and the catalog data a door
//!   words errors from ([`error::ErrorSubject`]);
//! * [`complexity`] — the bound on expression trees, checked on a
//!   statement's tokens before it is parsed (both doors: the Milvus door
//!   holds its translated filters to it too);
//! * [`instance`] — [`Instance`], the handler over the roles' APIs:
//!   statement routing (DDL and DML to the catalog and storage, COPY to the
//!   COPY path, everything else planned once by DataFusion, prepared plans
//!   cached per session).

pub mod cast_errors;
pub mod complexity;
pub mod error;
pub mod handler;
pub mod instance;

pub use error::{Result, SqlError};
pub use handler::pg::{PgHandler, PgHandlerRef};
pub use handler::{QueryHandler, QueryHandlerRef};
pub use instance::Instance;
