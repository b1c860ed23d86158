//! What the servers' integration tests share: a session on a real
//! `Instance` and running SQL text through it to its batches (to set up
//! what a door then serves).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use arrow::array::RecordBatch;
use futures::StreamExt;
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
