//! Decoding `COPY ... FROM STDIN` data (text, CSV, binary) into Arrow batches.
//!
//! The decoder is incremental: [`CopyDecoder::feed`] takes CopyData payloads
//! as they arrive (records may span payloads), keeps only the unfinished
//! record as raw bytes and decodes complete records into column builders,
//! cutting a batch every [`MAX_BATCH_ROWS`] rows. Nothing is inserted while
//! decoding, so malformed input anywhere fails the whole COPY.
//!
//! What the decoder holds (decoded batches, the rows being built, the
//! unfinished record) is reserved against the session's memory pool after
//! every payload, so a COPY buffering more than the statement memory limit
//! fails with `53200` (the rest of its data is read and dropped).

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use quiver_sql::handler::pg::{CopyFormat, CopySpec};

use super::copy_cols::{unescape_text, Column, FieldError};
use super::errors::pg_error;
use pgwire::error::PgWireError;

/// Rows per decoded batch handed to the engine.
pub(crate) const MAX_BATCH_ROWS: usize = 50_000;
/// Raw bytes per decoded batch (wide vectors cut batches earlier).
const MAX_BATCH_BYTES: usize = 64 << 20;
/// Most decoded data one COPY may hold before it is inserted.
pub(crate) const MAX_COPY_BYTES: usize = 1 << 30;

const BINARY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// A COPY input error: SQLSTATE, message and where it happened.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CopyError {
    pub code: &'static str,
    pub message: String,
    /// `COPY t, line 3, column v: "[1,2]"`, as Postgres' CONTEXT.
    pub context: Option<String>,
    /// Postgres' DETAIL and HINT (out of memory).
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl CopyError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            context: None,
            detail: None,
            hint: None,
        }
    }

    /// `53200 out of memory` for a refused reservation.
    fn out_of_memory(err: datafusion::error::DataFusionError) -> Self {
        match quiver_sql::error::SqlError::from(err) {
            quiver_sql::error::SqlError::OutOfMemory { detail, hint } => Self {
                detail: Some(detail),
                hint,
                ..Self::new("53200", "out of memory")
            },
            other => Self::new("XX000", other.to_string()),
        }
    }

    /// The pgwire error; the context (table, line, column) goes to CONTEXT,
    /// as Postgres reports it.
    pub fn into_pg(self) -> PgWireError {
        match pg_error(self.code, self.message) {
            PgWireError::UserError(mut info) => {
                info.where_context = self.context;
                info.detail = self.detail;
                info.hint = self.hint;
                PgWireError::UserError(info)
            }
            other => other,
        }
    }
}

fn bad_format(message: impl Into<String>) -> CopyError {
    CopyError::new("22P04", message)
}

/// Shortens a value quoted in an error context.
fn snippet(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}

/// Incremental decoder of one COPY FROM STDIN.
pub(crate) struct CopyDecoder {
    spec: CopySpec,
    schema: SchemaRef,
    columns: Vec<Column>,
    pending: Vec<u8>,
    /// Lines (tuples, for binary) consumed so far.
    line: usize,
    builder_rows: usize,
    builder_bytes: usize,
    held_bytes: usize,
    batches: Vec<RecordBatch>,
    /// Text/CSV: the header line is still to skip. Binary: the file header is still to read.
    header_pending: bool,
    /// The end-of-data marker (`\.` or the binary trailer) was seen.
    done: bool,
    /// Bytes at the start of `pending` already known to hold no line end
    /// (an unfinished record is not rescanned until one arrives).
    scanned: usize,
    /// Most bytes held (decoded batches plus pending input).
    limit: usize,
    /// What is held, reserved against the session's memory pool.
    reservation: Option<MemoryReservation>,
}

impl CopyDecoder {
    pub fn new(spec: &CopySpec) -> Self {
        let binary = spec.format == CopyFormat::Binary;
        Self {
            spec: spec.clone(),
            schema: spec.schema.clone(),
            columns: spec
                .schema
                .fields()
                .iter()
                .map(|f| Column::new(f, binary))
                .collect(),
            pending: Vec::new(),
            line: 0,
            builder_rows: 0,
            builder_bytes: 0,
            held_bytes: 0,
            batches: Vec::new(),
            header_pending: binary || spec.header,
            done: false,
            scanned: 0,
            limit: MAX_COPY_BYTES,
            reservation: spec
                .memory
                .as_ref()
                .map(|pool| MemoryConsumer::new("COPY FROM STDIN").register(pool)),
        }
    }

    /// A decoder holding at most `limit` bytes.
    #[cfg(test)]
    pub fn with_limit(spec: &CopySpec, limit: usize) -> Self {
        Self {
            limit,
            ..Self::new(spec)
        }
    }

    /// Decodes the complete records of one more CopyData payload.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), CopyError> {
        if self.done {
            return Ok(());
        }
        self.pending.extend_from_slice(data);
        self.process(false)?;
        let held = self.held_bytes + self.builder_bytes + self.pending.len();
        if let Some(reservation) = &self.reservation {
            reservation
                .try_resize(held)
                .map_err(CopyError::out_of_memory)?;
        }
        if held > self.limit {
            return Err(CopyError::new(
                "54000",
                format!(
                    "COPY FROM STDIN data exceeds the limit of {} bytes; split it into several COPY commands",
                    self.limit
                ),
            ));
        }
        Ok(())
    }

    /// The reservation of what the decoder holds, for the caller to keep
    /// until the decoded rows are inserted.
    pub fn take_reservation(&mut self) -> Option<MemoryReservation> {
        self.reservation.take()
    }

    /// Decodes what is left and returns every batch.
    pub fn finish(mut self) -> Result<Vec<RecordBatch>, CopyError> {
        if !self.done {
            self.process(true)?;
        }
        if !self.done && !self.pending.is_empty() {
            return Err(bad_format("unexpected EOF in COPY data"));
        }
        self.flush()?;
        Ok(self.batches)
    }

    fn process(&mut self, eof: bool) -> Result<(), CopyError> {
        let consumed = match self.spec.format {
            CopyFormat::Text => self.process_text(eof)?,
            CopyFormat::Csv => self.process_csv(eof)?,
            CopyFormat::Binary => self.process_binary()?,
        };
        if self.done {
            self.pending = Vec::new();
        } else {
            self.pending.drain(..consumed);
        }
        Ok(())
    }

    fn context(&self, line: usize, column: Option<usize>, raw: Option<&[u8]>) -> String {
        let mut out = format!("COPY {}, line {line}", self.spec.table);
        if let Some(c) = column {
            out.push_str(&format!(", column {}", self.schema.field(c).name()));
        }
        if let Some(raw) = raw {
            out.push_str(&format!(": \"{}\"", snippet(raw)));
        }
        out
    }

    fn at(
        &self,
        mut err: CopyError,
        line: usize,
        column: Option<usize>,
        raw: Option<&[u8]>,
    ) -> CopyError {
        err.context = Some(self.context(line, column, raw));
        err
    }

    /// Appends one decoded row; `fields` are raw (text, already unescaped) or binary values.
    fn push_row(
        &mut self,
        line: usize,
        fields: &[Option<Vec<u8>>],
        record_len: usize,
    ) -> Result<(), CopyError> {
        let binary = self.spec.format == CopyFormat::Binary;
        for (idx, value) in fields.iter().enumerate() {
            let result = match value {
                None => self.columns[idx].push_null(),
                Some(raw) if binary => self.columns[idx].push_binary(raw),
                Some(raw) => self.columns[idx].push_text(raw, line),
            };
            if let Err(FieldError { code, message }) = result {
                let raw = if binary { None } else { value.as_deref() };
                let err = CopyError::new(code, message);
                let err = if code == "23502" {
                    CopyError::new(
                        code,
                        format!(
                            "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                            self.schema.field(idx).name(),
                            self.spec.table
                        ),
                    )
                } else {
                    err
                };
                return Err(self.at(err, line, Some(idx), raw));
            }
        }
        self.builder_rows += 1;
        self.builder_bytes += record_len;
        if self.builder_rows >= MAX_BATCH_ROWS || self.builder_bytes >= MAX_BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Cuts the rows decoded so far into a batch.
    fn flush(&mut self) -> Result<(), CopyError> {
        if self.builder_rows == 0 {
            return Ok(());
        }
        let mut arrays = Vec::with_capacity(self.columns.len());
        for (idx, column) in self.columns.iter_mut().enumerate() {
            match column.finish() {
                Ok(array) => arrays.push(array),
                Err((line, FieldError { code, message })) => {
                    let err = CopyError::new(code, message);
                    return Err(self.at(err, line, Some(idx), None));
                }
            }
        }
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| CopyError::new("XX000", format!("building COPY batch: {e}")))?;
        self.held_bytes += batch.get_array_memory_size();
        self.batches.push(batch);
        self.builder_rows = 0;
        self.builder_bytes = 0;
        Ok(())
    }

    /// Text format: one row a line, fields split on the delimiter, backslash escapes.
    fn process_text(&mut self, eof: bool) -> Result<usize, CopyError> {
        let mut pos = 0;
        let mut skip = std::mem::take(&mut self.scanned);
        while !self.done && pos < self.pending.len() {
            let from = pos + skip;
            skip = 0;
            let (end, next) = match memchr(b'\n', &self.pending[from..]) {
                Some(i) => (from + i, from + i + 1),
                None if eof => (self.pending.len(), self.pending.len()),
                None => {
                    self.scanned = self.pending.len() - pos;
                    break;
                }
            };
            let mut record = self.pending[pos..end].to_vec();
            pos = next;
            if record.last() == Some(&b'\r') {
                record.pop();
            }
            self.line += 1;
            if self.header_pending {
                self.header_pending = false;
                continue;
            }
            if record == b"\\." {
                self.done = true;
                break;
            }
            let fields = self.split_text(&record)?;
            self.push_row(self.line, &fields, record.len())?;
        }
        Ok(pos)
    }

    fn split_text(&self, record: &[u8]) -> Result<Vec<Option<Vec<u8>>>, CopyError> {
        let delimiter = self.spec.delimiter;
        let null = self.spec.null.as_bytes();
        let mut raw_fields: Vec<&[u8]> = Vec::with_capacity(self.columns.len());
        let mut start = 0;
        let mut i = 0;
        while i < record.len() {
            if record[i] == b'\\' {
                i += 2;
                continue;
            }
            if record[i] == delimiter {
                raw_fields.push(&record[start..i]);
                start = i + 1;
            }
            i += 1;
        }
        raw_fields.push(&record[start.min(record.len())..]);
        self.check_count(raw_fields.len(), record)?;
        Ok(raw_fields
            .into_iter()
            .map(|raw| {
                if raw == null {
                    None
                } else {
                    Some(unescape_text(raw))
                }
            })
            .collect())
    }

    fn check_count(&self, got: usize, record: &[u8]) -> Result<(), CopyError> {
        let want = self.columns.len();
        if got < want {
            let err = bad_format(format!(
                "missing data for column \"{}\"",
                self.schema.field(got).name()
            ));
            return Err(self.at(err, self.line, None, Some(record)));
        }
        if got > want {
            let err = bad_format("extra data after last expected column");
            return Err(self.at(err, self.line, None, Some(record)));
        }
        Ok(())
    }

    /// CSV: RFC 4180 quoting, records may span lines inside quotes.
    fn process_csv(&mut self, eof: bool) -> Result<usize, CopyError> {
        let unseen = &self.pending[self.scanned.min(self.pending.len())..];
        if !eof && !unseen.iter().any(|&b| b == b'\n' || b == b'\r') {
            // A record only ends at a line end: nothing new can be complete.
            self.scanned = self.pending.len();
            return Ok(0);
        }
        self.scanned = 0;
        let mut pos = 0;
        while !self.done && pos < self.pending.len() {
            let Some((fields, next)) = self.scan_csv(pos, eof)? else {
                break;
            };
            let record_len = next - pos;
            let newlines = self.pending[pos..next]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            let start_line = self.line + 1;
            self.line += newlines.max(1);
            pos = next;
            if self.header_pending {
                self.header_pending = false;
                continue;
            }
            if fields.len() == 1 && !fields[0].1 && fields[0].0 == b"\\." {
                self.done = true;
                break;
            }
            if let Err(mut e) = self.check_count(fields.len(), &[]) {
                e.context = Some(self.context(start_line, None, None));
                return Err(e);
            }
            let null = self.spec.null.as_bytes();
            let values: Vec<Option<Vec<u8>>> = fields
                .into_iter()
                .map(|(value, quoted)| {
                    if !quoted && value == null {
                        None
                    } else {
                        Some(value)
                    }
                })
                .collect();
            self.push_row(start_line, &values, record_len)?;
        }
        self.scanned = self.pending.len() - pos;
        Ok(pos)
    }

    /// Scans one CSV record from `pos`: its fields (value, was quoted) and
    /// the position after it, or `None` when more data is needed.
    #[allow(clippy::type_complexity)]
    fn scan_csv(
        &self,
        pos: usize,
        eof: bool,
    ) -> Result<Option<(Vec<(Vec<u8>, bool)>, usize)>, CopyError> {
        let buf = &self.pending;
        let (delimiter, quote) = (self.spec.delimiter, self.spec.quote);
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut current = Vec::new();
        let mut quoted = false;
        let mut in_quotes = false;
        let mut i = pos;
        while i < buf.len() {
            let c = buf[i];
            if in_quotes {
                if c == quote {
                    match buf.get(i + 1) {
                        Some(&next) if next == quote => {
                            current.push(quote);
                            i += 1;
                        }
                        None if !eof => return Ok(None),
                        _ => in_quotes = false,
                    }
                } else {
                    current.push(c);
                }
            } else if c == quote {
                in_quotes = true;
                quoted = true;
            } else if c == delimiter {
                fields.push((std::mem::take(&mut current), quoted));
                quoted = false;
            } else if c == b'\n' || c == b'\r' {
                let next = match (c, buf.get(i + 1)) {
                    (b'\r', Some(b'\n')) => i + 2,
                    (b'\r', None) if !eof => return Ok(None),
                    _ => i + 1,
                };
                fields.push((current, quoted));
                return Ok(Some((fields, next)));
            } else {
                current.push(c);
            }
            i += 1;
        }
        if !eof {
            return Ok(None);
        }
        if in_quotes {
            let err = bad_format("unterminated CSV quoted field");
            return Err(self.at(err, self.line + 1, None, None));
        }
        fields.push((current, quoted));
        Ok(Some((fields, buf.len())))
    }

    /// Binary: the PGCOPY header, then tuples until the -1 trailer.
    fn process_binary(&mut self) -> Result<usize, CopyError> {
        let mut pos = 0;
        if self.header_pending {
            let buf = &self.pending;
            if buf.len() < BINARY_SIGNATURE.len() + 8 {
                if !BINARY_SIGNATURE.starts_with(&buf[..buf.len().min(BINARY_SIGNATURE.len())]) {
                    return Err(bad_format("COPY file signature not recognized"));
                }
                return Ok(0);
            }
            if !buf.starts_with(BINARY_SIGNATURE) {
                return Err(bad_format("COPY file signature not recognized"));
            }
            let flags = read_i32(buf, 11);
            if flags & (1 << 16) != 0 {
                return Err(CopyError::new(
                    "0A000",
                    "COPY binary data with OIDs is not supported",
                ));
            }
            if flags & 0xffff != 0 {
                return Err(bad_format(
                    "unrecognized critical flags in COPY file header",
                ));
            }
            let extension = read_i32(buf, 15);
            if extension < 0 {
                return Err(bad_format("invalid COPY file header (wrong length)"));
            }
            let end = 19 + extension as usize;
            if buf.len() < end {
                return Ok(0);
            }
            pos = end;
            self.header_pending = false;
        }
        while !self.done {
            let Some((fields, next)) = self.scan_tuple(pos)? else {
                break;
            };
            let record_len = next - pos;
            pos = next;
            match fields {
                None => self.done = true,
                Some(fields) => {
                    self.line += 1;
                    self.push_row(self.line, &fields, record_len)?;
                }
            }
        }
        Ok(pos)
    }

    /// One binary tuple at `pos`: `Some(None)` for the trailer, `None` when incomplete.
    #[allow(clippy::type_complexity)]
    fn scan_tuple(
        &self,
        pos: usize,
    ) -> Result<Option<(Option<Vec<Option<Vec<u8>>>>, usize)>, CopyError> {
        let buf = &self.pending;
        if buf.len() < pos + 2 {
            return Ok(None);
        }
        let count = i16::from_be_bytes([buf[pos], buf[pos + 1]]);
        if count == -1 {
            return Ok(Some((None, pos + 2)));
        }
        if count < 0 || count as usize != self.columns.len() {
            let err = bad_format(format!(
                "row field count is {count}, expected {}",
                self.columns.len()
            ));
            return Err(self.at(err, self.line + 1, None, None));
        }
        let mut at = pos + 2;
        let mut fields = Vec::with_capacity(count as usize);
        for _ in 0..count {
            if buf.len() < at + 4 {
                return Ok(None);
            }
            let len = read_i32(buf, at);
            at += 4;
            if len == -1 {
                fields.push(None);
                continue;
            }
            if len < 0 {
                let err = bad_format(format!("invalid field size {len}"));
                return Err(self.at(err, self.line + 1, None, None));
            }
            let end = at + len as usize;
            if buf.len() < end {
                return Ok(None);
            }
            fields.push(Some(buf[at..end].to_vec()));
            at = end;
        }
        Ok(Some((Some(fields), at)))
    }
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}
