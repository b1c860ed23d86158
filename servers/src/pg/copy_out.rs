//! `COPY ... TO STDOUT`: encoding rows in text, CSV or binary format and
//! streaming them to the client ([`copy_out`]: CopyOutResponse, CopyData,
//! CopyDone).

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, Float32Array, ListArray,
    RecordBatch,
};
use arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Schema,
    UInt16Type, UInt32Type, UInt8Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use bytes::Bytes;
use futures::sink::{Sink, SinkExt};
use futures::stream::{BoxStream, StreamExt};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyOutResponse};
use pgwire::messages::PgWireBackendMessage;
use quiver_common::vector;
use quiver_sql::handler::pg::{CopyFormat, CopySpec};

use super::copy_cols::{is_json, pg_type_name, PG_EPOCH_OFFSET_MICROS};
use super::copy_in::CopyError;
use super::text_output::{format_float, format_timestamp, timestamp_micros};
use quiver_common::time_zone::SessionTimeZone;

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

const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Encodes rows of one `COPY ... TO STDOUT`.
pub(crate) struct CopyEncoder {
    format: CopyFormat,
    delimiter: u8,
    null: String,
    quote: u8,
    header: bool,
    fields: Vec<Field>,
}

impl CopyEncoder {
    pub fn new(spec: &CopySpec, schema: &Schema) -> Self {
        Self {
            format: spec.format,
            delimiter: spec.delimiter,
            null: spec.null.clone(),
            quote: spec.quote,
            header: spec.header,
            fields: schema.fields().iter().map(|f| f.as_ref().clone()).collect(),
        }
    }

    /// The CopyOutResponse format code: 0 text/CSV, 1 binary.
    pub fn format_code(&self) -> i8 {
        i8::from(self.format == CopyFormat::Binary)
    }

    /// What precedes the rows: the binary file header or the CSV header line.
    pub fn start(&self) -> Vec<u8> {
        match self.format {
            CopyFormat::Binary => BINARY_HEADER.to_vec(),
            CopyFormat::Csv if self.header => {
                let mut out = Vec::new();
                for (i, f) in self.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(self.delimiter);
                    }
                    self.csv_value(f.name(), &mut out);
                }
                out.push(b'\n');
                out
            }
            _ => Vec::new(),
        }
    }

    /// What follows the rows: the binary trailer.
    pub fn end(&self) -> Vec<u8> {
        match self.format {
            CopyFormat::Binary => (-1i16).to_be_bytes().to_vec(),
            _ => Vec::new(),
        }
    }

    /// Appends row `row` of `batch`.
    pub fn encode_row(
        &self,
        batch: &RecordBatch,
        row: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CopyError> {
        if self.format == CopyFormat::Binary {
            out.extend_from_slice(&(batch.num_columns() as i16).to_be_bytes());
            for (column, field) in batch.columns().iter().zip(&self.fields) {
                if column.is_null(row) {
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                    continue;
                }
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                binary_value(column, field, row, out)?;
                let len = (out.len() - at - 4) as i32;
                out[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
            return Ok(());
        }
        for (i, (column, field)) in batch.columns().iter().zip(&self.fields).enumerate() {
            if i > 0 {
                out.push(self.delimiter);
            }
            match text_value(column, field, row)? {
                None => out.extend_from_slice(self.null.as_bytes()),
                Some(text) if self.format == CopyFormat::Csv => self.csv_value(&text, out),
                Some(text) => self.text_escape(&text, out),
            }
        }
        out.push(b'\n');
        Ok(())
    }

    fn text_escape(&self, text: &str, out: &mut Vec<u8>) {
        for &b in text.as_bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                8 => out.extend_from_slice(b"\\b"),
                12 => out.extend_from_slice(b"\\f"),
                11 => out.extend_from_slice(b"\\v"),
                d if d == self.delimiter => {
                    out.push(b'\\');
                    out.push(d);
                }
                other => out.push(other),
            }
        }
    }

    fn csv_value(&self, text: &str, out: &mut Vec<u8>) {
        let needs_quotes = text == self.null
            || text == "\\."
            || text
                .bytes()
                .any(|b| b == self.delimiter || b == self.quote || b == b'\n' || b == b'\r');
        if !needs_quotes {
            out.extend_from_slice(text.as_bytes());
            return;
        }
        out.push(self.quote);
        for &b in text.as_bytes() {
            if b == self.quote {
                out.push(self.quote);
            }
            out.push(b);
        }
        out.push(self.quote);
    }
}

fn unsupported(field: &Field) -> CopyError {
    CopyError::new(
        "0A000",
        format!(
            "binary COPY of a column of type {} is not supported",
            pg_type_name(field)
        ),
    )
}

/// The elements of a vector value (`FixedSizeList<Float32>` or `List<Float32>`).
fn vector_values(column: &ArrayRef, row: usize) -> Option<Vec<f32>> {
    let values = if let Some(list) = column.as_any().downcast_ref::<FixedSizeListArray>() {
        list.value(row)
    } else if let Some(list) = column.as_any().downcast_ref::<ListArray>() {
        list.value(row)
    } else {
        return None;
    };
    let floats = values.as_any().downcast_ref::<Float32Array>()?;
    Some(floats.iter().map(|v| v.unwrap_or(f32::NAN)).collect())
}

fn is_float_list(data_type: &DataType) -> bool {
    matches!(data_type, DataType::FixedSizeList(item, _) | DataType::List(item) if item.data_type() == &DataType::Float32)
}

fn binary_value(
    column: &ArrayRef,
    field: &Field,
    row: usize,
    out: &mut Vec<u8>,
) -> Result<(), CopyError> {
    match column.data_type() {
        DataType::Boolean => out.push(u8::from(column.as_boolean().value(row))),
        DataType::Int8 => out.extend_from_slice(
            &(column.as_primitive::<Int8Type>().value(row) as i16).to_be_bytes(),
        ),
        DataType::UInt8 => out.extend_from_slice(
            &(column.as_primitive::<UInt8Type>().value(row) as i16).to_be_bytes(),
        ),
        DataType::Int16 => {
            out.extend_from_slice(&column.as_primitive::<Int16Type>().value(row).to_be_bytes());
        }
        DataType::UInt16 => out.extend_from_slice(
            &(column.as_primitive::<UInt16Type>().value(row) as i32).to_be_bytes(),
        ),
        DataType::Int32 => {
            out.extend_from_slice(&column.as_primitive::<Int32Type>().value(row).to_be_bytes());
        }
        DataType::UInt32 => out.extend_from_slice(
            &(column.as_primitive::<UInt32Type>().value(row) as i64).to_be_bytes(),
        ),
        DataType::Int64 => {
            out.extend_from_slice(&column.as_primitive::<Int64Type>().value(row).to_be_bytes());
        }
        DataType::Float32 => out.extend_from_slice(
            &column
                .as_primitive::<Float32Type>()
                .value(row)
                .to_be_bytes(),
        ),
        DataType::Float64 => out.extend_from_slice(
            &column
                .as_primitive::<Float64Type>()
                .value(row)
                .to_be_bytes(),
        ),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            if is_json(field) {
                out.push(1);
            }
            out.extend_from_slice(string_value(column, row).as_bytes());
        }
        DataType::Timestamp(unit, _) => {
            let micros =
                timestamp_micros(column, *unit, row).saturating_sub(PG_EPOCH_OFFSET_MICROS);
            out.extend_from_slice(&micros.to_be_bytes());
        }
        dt if is_float_list(dt) => {
            let values = vector_values(column, row).ok_or_else(|| unsupported(field))?;
            out.extend_from_slice(&(values.len() as u16).to_be_bytes());
            out.extend_from_slice(&0u16.to_be_bytes());
            for v in values {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        _ => return Err(unsupported(field)),
    }
    Ok(())
}

fn string_value(column: &ArrayRef, row: usize) -> &str {
    match column.data_type() {
        DataType::LargeUtf8 => column.as_string::<i64>().value(row),
        DataType::Utf8View => column.as_string_view().value(row),
        _ => column.as_string::<i32>().value(row),
    }
}

/// The text form of one value as Postgres prints it; `None` for NULL.
pub(crate) fn text_value(
    column: &ArrayRef,
    field: &Field,
    row: usize,
) -> Result<Option<String>, CopyError> {
    if column.is_null(row) {
        return Ok(None);
    }
    let text = match column.data_type() {
        DataType::Boolean => {
            let b: &BooleanArray = column.as_boolean();
            (if b.value(row) { "t" } else { "f" }).to_string()
        }
        DataType::Float32 => {
            format_float(column.as_primitive::<Float32Type>().value(row) as f64, true)
        }
        DataType::Float64 => format_float(column.as_primitive::<Float64Type>().value(row), false),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            string_value(column, row).to_string()
        }
        DataType::Timestamp(unit, tz) => format_timestamp(
            timestamp_micros(column, *unit, row),
            tz.is_some().then_some(&SessionTimeZone::default()),
        ),
        dt if is_float_list(dt) => match vector_values(column, row) {
            Some(values) => vector::format_text(&values),
            None => return Err(unsupported(field)),
        },
        _ => {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())
                .map_err(|e| CopyError::new("0A000", e.to_string()))?;
            formatter.value(row).to_string()
        }
    };
    Ok(Some(text))
}
