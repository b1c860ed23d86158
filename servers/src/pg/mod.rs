//! The Postgres wire protocol front end (pgwire).
//!
//! This module owns the Postgres protocol — startup, the simple and extended
//! query protocols, COPY, cancel requests, ParameterStatus, SQLSTATEs — and
//! knows nothing about storage: everything it does goes through
//! [`PgHandler`](quiver_sql::handler::pg::PgHandler) — the protocol-neutral
//! [`QueryHandler`](quiver_sql::handler::QueryHandler), which parses, describes
//! and executes statements, plus what only Postgres has: command tags,
//! transaction effects and COPY (inserting decoded COPY rows).
//!
//! * [`serve`] — the accept loop (connection limit); one handler set and one session per connection;
//! * `conn` — one connection's loop: startup, checked frames to pgwire's
//!   dispatcher, idle and startup timeouts;
//! * [`frame`] — reading and checking frames before pgwire decodes them
//!   (message limits, the receive budget, protocol layout);
//! * `handlers` — one connection's handler set: startup, server parameters,
//!   cancel registration, error logging;
//! * `session` — the simple/extended query and COPY handlers of a connection;
//! * `encode` — Arrow results to rows (vectors as pgvector's `vector`),
//!   statement timeout and cancel around execution and streams;
//! * `params` — Bind parameters to DataFusion `ParamValues`;
//! * `copy` — the COPY FROM STDIN sub-protocol (collecting CopyData, inserting at CopyDone);
//! * `copy_in` / `copy_cols` — decoding COPY FROM STDIN data (text, CSV, binary);
//! * `copy_out` — encoding COPY TO STDOUT rows and streaming them;
//! * [`errors`] — status codes to SQLSTATE.

mod conn;
mod copy;
mod copy_cols;
mod copy_in;
mod copy_out;
mod encode;
mod error_position;
pub mod errors;
mod formats;
pub mod frame;
mod handlers;
mod params;
mod server;
mod session;
pub mod text_output;

#[cfg(test)]
mod copy_tests;
#[cfg(test)]
mod door_tests;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod wire_tests;

pub use conn::ConnectionLimits;
pub use handlers::SERVER_VERSION;
pub use server::{bind_unix_socket, serve, serve_on, unix_socket_path, PgServerOptions};
