//! The COPY FROM STDIN sub-protocol of a connection: collecting CopyData
//! (decoded by `copy_in`, inserted through the handler at CopyDone) and
//! CopyFail. Streaming `COPY TO STDOUT` rows is `copy_out`'s.

use std::fmt::Debug;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use futures::sink::{Sink, SinkExt};
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::Tag;
use pgwire::api::ClientInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::response::CommandComplete;
use pgwire::messages::PgWireBackendMessage;

use super::copy_in::CopyError;
use super::encode::Guard;
use super::errors::{pg_error, sql_err, PROTOCOL_VIOLATION, QUERY_CANCELED};
use super::session::{Connection, CopyIn};

#[async_trait]
impl CopyHandler for Connection {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut copy = self.state.copy.lock();
        let Some(copy) = copy.as_mut() else {
            return Err(pg_error(PROTOCOL_VIOLATION, "unexpected COPY data"));
        };
        // Errors are kept for CopyDone: the client is still sending data.
        if let Some(decoder) = copy.decoder.as_mut() {
            if let Err(e) = decoder.feed(&copy_data.data) {
                copy.error = Some(e);
                copy.decoder = None;
            }
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let done = self.finish_copy_in(client).await;
        if done.is_err() {
            // A COPY that fails aborts the session's transaction block (what
            // it buffered must not commit).
            self.state.abort_transaction(&*client).await;
        }
        done
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.state.copy.lock().take();
        self.state.abort_transaction(&*client).await;
        pg_error(
            QUERY_CANCELED,
            format!("COPY from stdin failed: {}", fail.message),
        )
    }
}

impl Connection {
    /// Inserts the rows of a finished COPY FROM STDIN and answers its tag.
    async fn finish_copy_in<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let copy = self.state.copy.lock().take();
        let Some(CopyIn {
            spec,
            decoder,
            error,
        }) = copy
        else {
            return Err(pg_error(PROTOCOL_VIOLATION, "unexpected COPY done"));
        };
        if let Some(e) = error {
            return Err(e.into_pg());
        }
        let Some(mut decoder) = decoder else {
            return Err(pg_error("XX000", "COPY decoder missing"));
        };
        // The decoded rows stay reserved until each batch is inserted.
        let held = decoder.take_reservation();
        let batches = decoder.finish().map_err(CopyError::into_pg)?;
        let decoded: usize = batches.iter().map(RecordBatch::num_rows).sum();
        tracing::debug!(table = %spec.table, rows = decoded, batches = batches.len(), "COPY FROM STDIN decoded");
        let mut rows = 0;
        {
            let mut session = self.state.session(client).await?;
            let guard = Guard::new(session.statement_timeout(), None);
            for batch in batches {
                let size = batch.get_array_memory_size();
                rows += guard
                    .run(self.state.handler.copy_in(&mut session, &spec, batch))
                    .await?
                    .map_err(sql_err)?;
                if let Some(held) = &held {
                    held.shrink(size.min(held.size()));
                }
            }
        }
        client
            .send(PgWireBackendMessage::CommandComplete(
                CommandComplete::from(Tag::new("COPY").with_rows(rows)),
            ))
            .await?;
        Ok(())
    }
}
