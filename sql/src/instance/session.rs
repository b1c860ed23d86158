//! [`SqlSession`]: what the [`Instance`](super::Instance) keeps per session
//! behind the opaque [`Session`] a front end holds — its own DataFusion
//! context (so `SET` stays in it), its settings and timeouts, its memory
//! pool, its prepared plans and its transaction block. A leaf of the
//! instance: it imports only the plan cache, the database-use count and
//! the transaction block.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::memory_pool::MemoryPool;
use datafusion::prelude::SessionContext;
use quiver_exec::memory::QueryMemoryPool;

use super::block_catalog::SharedBlockTables;
use super::database_use::DatabaseUse;
use super::plan_cache::PlanCache;
use super::transaction_block::TransactionBlock;
use crate::error::{Result, SqlError};
use crate::handler::{NoticeSink, Session, SessionState};

/// Per-connection state: its own DataFusion context and settings.
pub(crate) struct SqlSession {
    pub(crate) ctx: SessionContext,
    pub(crate) settings: BTreeMap<String, String>,
    pub(crate) statement_timeout: Option<Duration>,
    /// `idle_session_timeout`: close the connection when idle this long.
    pub(crate) idle_session_timeout: Option<Duration>,
    /// `idle_in_transaction_session_timeout`: likewise inside a transaction block.
    pub(crate) idle_in_transaction_session_timeout: Option<Duration>,
    pub(crate) user: String,
    /// The database (schema) the connection named at startup, when it is
    /// one of its own: first on the default `search_path`.
    pub(crate) database: Option<String>,
    /// Counts the session as connected to `database` while it lives (a
    /// guard, never read).
    pub(crate) _database_use: Option<DatabaseUse>,
    /// Where NOTICE messages of the running statement go (set by the front end).
    pub(crate) notices: Option<NoticeSink>,
    /// Optimized plans of prepared queries, reused with new parameters.
    pub(crate) plans: PlanCache,
    /// The memory budget of the session's running statement (its
    /// DataFusion memory pool), drawing from the server's.
    pub(crate) memory: Arc<QueryMemoryPool>,
    /// The open transaction block, if any.
    pub(crate) transaction: Option<TransactionBlock>,
    /// The catalog changes of the open block, shared with the session's
    /// DataFusion catalog (which shows them to this session only).
    pub(crate) block_tables: SharedBlockTables,
}

impl SqlSession {
    /// The instance's state of a session it opened.
    pub(crate) fn of(session: &mut Session) -> Result<&mut SqlSession> {
        session
            .state_mut()
            .ok_or_else(|| SqlError::Internal("a session opened by another handler".into()))
    }

    /// Sends a NOTICE to the client, if the front end listens.
    pub(crate) fn notice(&self, message: impl Into<String>) {
        if let Some(sink) = &self.notices {
            let _ = sink.send(message.into());
        }
    }

    /// The memory pool the session's statements reserve from.
    pub(crate) fn memory_pool(&self) -> Arc<dyn MemoryPool> {
        self.memory.clone()
    }

    /// A clone of the notice sink, for work that reports progress.
    pub(crate) fn notice_sink(&self) -> Option<NoticeSink> {
        self.notices.clone()
    }
}

impl SessionState for SqlSession {
    fn user(&self) -> &str {
        &self.user
    }

    fn memory_pool(&self) -> Arc<dyn MemoryPool> {
        SqlSession::memory_pool(self)
    }

    fn setting(&self, name: &str) -> Option<&str> {
        self.settings
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    fn statement_timeout(&self) -> Option<Duration> {
        self.statement_timeout
    }

    fn idle_session_timeout(&self) -> Option<Duration> {
        self.idle_session_timeout
    }

    fn idle_in_transaction_session_timeout(&self) -> Option<Duration> {
        self.idle_in_transaction_session_timeout
    }

    fn set_notice_sink(&mut self, sink: Option<NoticeSink>) {
        self.notices = sink;
    }
}

impl Drop for SqlSession {
    fn drop(&mut self) {
        // pg_catalog holds the session's catalog list, which holds the catalog
        // holding pg_catalog: break the cycle so the session (and its engine
        // reference) is freed.
        if let Some(catalog) = self.ctx.catalog(quiver_planner::session::CATALOG_NAME) {
            let _ = catalog.deregister_schema("pg_catalog", false);
        }
    }
}
