//! Column builders of the COPY decoder: one Arrow builder per copied column,
//! fed with text or binary field values.

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    Array, ArrayRef, BooleanBuilder, FixedSizeListArray, Float32Array, Float32Builder,
    Float64Builder, Int64Builder, StringArray, StringBuilder,
};
use arrow::compute::{cast, cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use quiver_common::schema::{vector_dim, JSON_METADATA_KEY};
use quiver_common::vector;

use super::errors::sqlstate;
use super::params::vector_from_binary;

/// Microseconds between the Unix epoch and the Postgres epoch (2000-01-01).
pub(crate) const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A value that does not fit its column: SQLSTATE and message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        code,
        message: message.into(),
    }
}

fn syntax(type_name: &str, text: &str) -> FieldError {
    err(
        "22P02",
        format!("invalid input syntax for type {type_name}: \"{text}\""),
    )
}

fn binary_format() -> FieldError {
    err("22P03", "incorrect binary data format")
}

/// The Postgres name of a column type, for messages.
pub(crate) fn pg_type_name(field: &Field) -> String {
    match field.data_type() {
        DataType::Boolean => "boolean".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Utf8 if is_json(field) => "jsonb".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        DataType::Timestamp(_, None) => "timestamp without time zone".into(),
        dt if vector_dim(dt).is_some() => "vector".into(),
        other => other.to_string(),
    }
}

/// True for a `JSONB` column (stored as UTF-8 text).
pub(crate) fn is_json(field: &Field) -> bool {
    field.metadata().get(JSON_METADATA_KEY).map(String::as_str) == Some("json")
}

/// Parses Postgres' boolean input forms.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn int_range(data_type: &DataType) -> (i64, i64) {
    match data_type {
        DataType::Int16 => (i16::MIN as i64, i16::MAX as i64),
        DataType::Int32 => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
}

fn is_infinity_literal(text: &str) -> bool {
    let t = text
        .trim()
        .trim_start_matches(['+', '-'])
        .to_ascii_lowercase();
    t == "inf" || t == "infinity"
}

enum Kind {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Utf8 {
        builder: StringBuilder,
        json: bool,
    },
    /// Binary timestamps, as integers of the column's unit.
    Timestamp {
        builder: Int64Builder,
        unit: TimeUnit,
    },
    Vector {
        item: FieldRef,
        dim: usize,
        values: Vec<f32>,
        nulls: NullBufferBuilder,
    },
    /// Text converted with Arrow's cast from Utf8 when the batch is cut
    /// (text timestamps and any other type); the line of each row is kept
    /// to report the value that does not convert.
    Cast {
        builder: StringBuilder,
        lines: Vec<usize>,
    },
}

/// The builder of one copied column.
pub(crate) struct Column {
    data_type: DataType,
    type_name: String,
    nullable: bool,
    kind: Kind,
}

impl Column {
    pub fn new(field: &FieldRef, binary: bool) -> Self {
        let data_type = field.data_type().clone();
        let kind = match &data_type {
            DataType::Boolean => Kind::Bool(BooleanBuilder::new()),
            DataType::Int16 | DataType::Int32 | DataType::Int64 => Kind::Int(Int64Builder::new()),
            DataType::Float32 => Kind::F32(Float32Builder::new()),
            DataType::Float64 => Kind::F64(Float64Builder::new()),
            DataType::Utf8 => Kind::Utf8 {
                builder: StringBuilder::new(),
                json: is_json(field),
            },
            DataType::Timestamp(unit, _) if binary => Kind::Timestamp {
                builder: Int64Builder::new(),
                unit: *unit,
            },
            DataType::FixedSizeList(item, dim) if vector_dim(&data_type).is_some() => {
                Kind::Vector {
                    item: item.clone(),
                    dim: *dim as usize,
                    values: Vec::new(),
                    nulls: NullBufferBuilder::new(1024),
                }
            }
            _ => Kind::Cast {
                builder: StringBuilder::new(),
                lines: Vec::new(),
            },
        };
        Self {
            type_name: pg_type_name(field),
            nullable: field.is_nullable(),
            data_type,
            kind,
        }
    }

    /// Appends NULL (23502 for a NOT NULL column; the caller words the message).
    pub fn push_null(&mut self) -> Result<(), FieldError> {
        if !self.nullable {
            return Err(err("23502", "null value violates not-null constraint"));
        }
        match &mut self.kind {
            Kind::Bool(b) => b.append_null(),
            Kind::Int(b) | Kind::Timestamp { builder: b, .. } => b.append_null(),
            Kind::F32(b) => b.append_null(),
            Kind::F64(b) => b.append_null(),
            Kind::Utf8 { builder, .. } => builder.append_null(),
            Kind::Vector {
                dim, values, nulls, ..
            } => {
                values.extend(std::iter::repeat_n(0.0, *dim));
                nulls.append_null();
            }
            Kind::Cast { builder, lines } => {
                builder.append_null();
                lines.push(0);
            }
        }
        Ok(())
    }

    /// Appends a value in text form (`line` locates conversion errors found later).
    pub fn push_text(&mut self, raw: &[u8], line: usize) -> Result<(), FieldError> {
        let text = std::str::from_utf8(raw)
            .map_err(|_| err("22021", "invalid byte sequence for encoding \"UTF8\""))?;
        let type_name = &self.type_name;
        match &mut self.kind {
            Kind::Bool(b) => {
                b.append_value(parse_bool(text).ok_or_else(|| syntax(type_name, text))?);
            }
            Kind::Int(b) => {
                let value: i64 = match text.trim().parse::<i128>() {
                    Ok(v) => i64::try_from(v).map_err(|_| out_of_range(type_name, text))?,
                    Err(_) => return Err(syntax(type_name, text)),
                };
                let (min, max) = int_range(&self.data_type);
                if value < min || value > max {
                    return Err(out_of_range(type_name, text));
                }
                b.append_value(value);
            }
            Kind::F32(b) => {
                let value: f32 = text.trim().parse().map_err(|_| syntax(type_name, text))?;
                if value.is_infinite() && !is_infinity_literal(text) {
                    return Err(float_out_of_range(type_name, text));
                }
                b.append_value(value);
            }
            Kind::F64(b) => {
                let value: f64 = text.trim().parse().map_err(|_| syntax(type_name, text))?;
                if value.is_infinite() && !is_infinity_literal(text) {
                    return Err(float_out_of_range(type_name, text));
                }
                b.append_value(value);
            }
            Kind::Utf8 { builder, json } => {
                if *json && serde_json::from_str::<serde_json::Value>(text).is_err() {
                    return Err(syntax("json", text));
                }
                builder.append_value(text);
            }
            Kind::Vector {
                dim, values, nulls, ..
            } => {
                let parsed = vector::parse_text(text).map_err(vector_error)?;
                vector::check_dimension(*dim, parsed.len()).map_err(vector_error)?;
                values.extend_from_slice(&parsed);
                nulls.append_non_null();
            }
            Kind::Timestamp { .. } => {
                return Err(err("XX000", "binary timestamp builder fed text"))
            }
            Kind::Cast { builder, lines } => {
                builder.append_value(text);
                lines.push(line);
            }
        }
        Ok(())
    }

    /// Appends a value in the binary COPY form of its type.
    pub fn push_binary(&mut self, raw: &[u8]) -> Result<(), FieldError> {
        match &mut self.kind {
            Kind::Bool(b) => match raw {
                [v] => b.append_value(*v != 0),
                _ => return Err(binary_format()),
            },
            Kind::Int(b) => {
                let value = read_int(raw).ok_or_else(binary_format)?;
                let (min, max) = int_range(&self.data_type);
                if value < min || value > max {
                    return Err(err("22003", format!("{} out of range", self.type_name)));
                }
                b.append_value(value);
            }
            Kind::F32(b) => b.append_value(read_float(raw).ok_or_else(binary_format)? as f32),
            Kind::F64(b) => b.append_value(read_float(raw).ok_or_else(binary_format)?),
            Kind::Utf8 { builder, json } => {
                // Binary jsonb starts with its format version, 1.
                let raw = match raw {
                    [1, rest @ ..] if *json => rest,
                    _ => raw,
                };
                let text = std::str::from_utf8(raw)
                    .map_err(|_| err("22021", "invalid byte sequence for encoding \"UTF8\""))?;
                builder.append_value(text);
            }
            Kind::Timestamp { builder, unit } => {
                let bytes: [u8; 8] = raw.try_into().map_err(|_| binary_format())?;
                let micros = i64::from_be_bytes(bytes)
                    .checked_add(PG_EPOCH_OFFSET_MICROS)
                    .ok_or_else(|| err("22008", "timestamp out of range"))?;
                let value = match unit {
                    TimeUnit::Second => Some(micros.div_euclid(1_000_000)),
                    TimeUnit::Millisecond => Some(micros.div_euclid(1_000)),
                    TimeUnit::Microsecond => Some(micros),
                    TimeUnit::Nanosecond => micros.checked_mul(1_000),
                };
                builder.append_value(value.ok_or_else(|| err("22008", "timestamp out of range"))?);
            }
            Kind::Vector {
                dim, values, nulls, ..
            } => {
                let parsed = vector_from_binary(raw).map_err(|e| FieldError {
                    code: sqlstate(e.status_code()),
                    message: e.to_string(),
                })?;
                vector::check_dimension(*dim, parsed.len()).map_err(vector_error)?;
                values.extend_from_slice(&parsed);
                nulls.append_non_null();
            }
            Kind::Cast { .. } => {
                return Err(err(
                    "0A000",
                    format!(
                        "binary COPY into a column of type {} is not supported",
                        self.type_name
                    ),
                ))
            }
        }
        Ok(())
    }

    /// The column of the rows appended since the last call; on a value that
    /// does not convert, its line and the error.
    pub fn finish(&mut self) -> Result<ArrayRef, (usize, FieldError)> {
        let internal = |e: arrow::error::ArrowError| (0, err("XX000", e.to_string()));
        Ok(match &mut self.kind {
            Kind::Bool(b) => Arc::new(b.finish()),
            Kind::Int(b) => cast(&b.finish(), &self.data_type).map_err(internal)?,
            Kind::F32(b) => Arc::new(b.finish()),
            Kind::F64(b) => Arc::new(b.finish()),
            Kind::Utf8 { builder, .. } => Arc::new(builder.finish()),
            Kind::Timestamp { builder, .. } => {
                cast(&builder.finish(), &self.data_type).map_err(internal)?
            }
            Kind::Vector {
                item,
                dim,
                values,
                nulls,
            } => {
                let values = Float32Array::from(std::mem::take(values));
                let array = FixedSizeListArray::try_new(
                    item.clone(),
                    *dim as i32,
                    Arc::new(values),
                    nulls.finish(),
                )
                .map_err(internal)?;
                Arc::new(array)
            }
            Kind::Cast { builder, lines } => {
                let strings: StringArray = builder.finish();
                let lines = std::mem::take(lines);
                let options = CastOptions {
                    safe: true,
                    ..Default::default()
                };
                let out = cast_with_options(&strings, &self.data_type, &options).map_err(|e| {
                    (
                        lines.first().copied().unwrap_or(0),
                        err("0A000", e.to_string()),
                    )
                })?;
                for (i, line) in lines.iter().enumerate() {
                    if strings.is_valid(i) && out.is_null(i) {
                        return Err((*line, syntax(&self.type_name, strings.value(i))));
                    }
                }
                out
            }
        })
    }
}

fn out_of_range(type_name: &str, text: &str) -> FieldError {
    err(
        "22003",
        format!("value \"{text}\" is out of range for type {type_name}"),
    )
}

fn float_out_of_range(type_name: &str, text: &str) -> FieldError {
    err(
        "22003",
        format!("\"{text}\" is out of range for type {type_name}"),
    )
}

fn vector_error(e: vector::VectorError) -> FieldError {
    FieldError {
        code: sqlstate(e.status_code()),
        message: e.to_string(),
    }
}

/// A big-endian int2, int4 or int8.
fn read_int(raw: &[u8]) -> Option<i64> {
    match raw.len() {
        2 => Some(i16::from_be_bytes(raw.try_into().ok()?) as i64),
        4 => Some(i32::from_be_bytes(raw.try_into().ok()?) as i64),
        8 => Some(i64::from_be_bytes(raw.try_into().ok()?)),
        _ => None,
    }
}

/// A big-endian float4 or float8.
fn read_float(raw: &[u8]) -> Option<f64> {
    match raw.len() {
        4 => Some(f32::from_be_bytes(raw.try_into().ok()?) as f64),
        8 => Some(f64::from_be_bytes(raw.try_into().ok()?)),
        _ => None,
    }
}

/// Undoes the text format's backslash escapes (`\t`, `\n`, `\\`, octal, `\x` hex...).
pub(crate) fn unescape_text(raw: &[u8]) -> Vec<u8> {
    if !raw.contains(&b'\\') {
        return raw.to_vec();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' || i + 1 == raw.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let e = raw[i + 1];
        i += 2;
        match e {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = (e - b'0') as u32;
                let mut digits = 1;
                while digits < 3 && i < raw.len() && (b'0'..=b'7').contains(&raw[i]) {
                    value = value * 8 + (raw[i] - b'0') as u32;
                    i += 1;
                    digits += 1;
                }
                out.push(value as u8);
            }
            b'x' if i < raw.len() && raw[i].is_ascii_hexdigit() => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 && i < raw.len() && raw[i].is_ascii_hexdigit() {
                    value = value * 16 + (raw[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    digits += 1;
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
    out
}
