//! What the servers' integration tests share: a session on a real
//! `Instance`, running SQL text through it to its batches (to set up what a
//! door then serves), and its functions as filter lowering looks them up.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use datafusion::logical_expr::ScalarUDF;
use futures::StreamExt;
use quiver_servers::milvus::filter::{FilterError, FunctionSource};
use quiver_sql::handler::{Output, QueryHandler, Session, SessionInfo};
use quiver_sql::Instance;

/// A session of user `t` on the default database.
pub async fn session(instance: &Instance) -> Session {
    instance
        .new_session(SessionInfo {
            user: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap()
}

/// Runs every statement of `sql`, collecting the rows they return.
pub async fn run(
    instance: &Instance,
    session: &mut Session,
    sql: &str,
) -> quiver_sql::Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for statement in instance.parse(sql)? {
        if let Output::Rows { mut stream, .. } = instance.execute(session, &statement, None).await?
        {
            while let Some(batch) = stream.next().await {
                out.push(batch?);
            }
        }
    }
    Ok(out)
}

/// A session's functions, as the Milvus door looks them up to lower a
/// filter.
pub struct SessionFunctions<'a> {
    pub instance: &'a Instance,
    pub session: Mutex<&'a mut Session>,
}

impl FunctionSource for SessionFunctions<'_> {
    fn function(&self, name: &str) -> Result<Arc<ScalarUDF>, FilterError> {
        let mut session = self.session.lock().unwrap();
        self.instance
            .scalar_function(&mut session, name)
            .map_err(|e| FilterError {
                position: 0,
                message: e.to_string(),
            })
    }
}
