//! The COPY sub-protocol: collecting `COPY FROM STDIN` data (decoded by
//! `copy_in`, inserted through the handler at CopyDone) and streaming
//! `COPY TO STDOUT` rows.

use std::fmt::Debug;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use futures::sink::{Sink, SinkExt};
use futures::stream::{BoxStream, StreamExt};
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::Tag;
use pgwire::api::ClientInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyOutResponse};
use pgwire::messages::response::CommandComplete;
use pgwire::messages::PgWireBackendMessage;

use super::copy_in::CopyError;
use super::copy_out::CopyEncoder;
use super::encode::Guard;
use super::errors::{pg_error, sql_err, PROTOCOL_VIOLATION, QUERY_CANCELED};
use super::session::{Connection, CopyIn};
use crate::handler::CopySpec;

/// CopyData payloads of `COPY TO STDOUT` are cut at about this size.
const COPY_OUT_CHUNK: usize = 64 * 1024;

/// Streams `COPY ... TO STDOUT`: CopyOutResponse, CopyData, CopyDone; returns the row count.
pub(super) async fn copy_out<C>(
    client: &mut C,
    spec: &CopySpec,
    mut batches: BoxStream<'static, PgWireResult<RecordBatch>>,
) -> PgWireResult<usize>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let encoder = CopyEncoder::new(spec, &spec.schema);
    let columns = spec.schema.fields().len();
    let format = encoder.format_code();
    client
        .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            format,
            columns as i16,
            vec![format as i16; columns],
        )))
        .await?;
    let mut buf = encoder.start();
    let mut rows = 0;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        for row in 0..batch.num_rows() {
            encoder
                .encode_row(&batch, row, &mut buf)
                .map_err(CopyError::into_pg)?;
            rows += 1;
            if buf.len() >= COPY_OUT_CHUNK {
                let data = Bytes::from(std::mem::take(&mut buf));
                client
                    .feed(PgWireBackendMessage::CopyData(CopyData::new(data)))
                    .await?;
            }
        }
    }
    buf.extend_from_slice(&encoder.end());
    if !buf.is_empty() {
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(Bytes::from(
                buf,
            ))))
            .await?;
    }
    client
        .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    Ok(rows)
}

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

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.state.copy.lock().take();
        pg_error(
            QUERY_CANCELED,
            format!("COPY from stdin failed: {}", fail.message),
        )
    }
}
