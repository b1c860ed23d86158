//! Result columns in PostgreSQL's text output where the row encoder's
//! differs, rendered before encoding as COPY renders them: `float4` /
//! `float8` ([`format_float`]: the shortest digits that read back as the
//! same value, `1e+20`, `1.5e-07`, `Infinity`, `NaN`, `-0`, not `5.0`,
//! `1e20`, `inf`), arrays of them (`{1.5,2}`), and `timestamp` /
//! `timestamptz` (`2024-01-02 03:04:05.5+00`, not `...05.500000`; in the
//! session's `TimeZone`).
//! Columns sent in binary keep their bytes. COPY's text output uses the
//! same functions (a leaf module: both ask it).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type, TimeUnit};
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;
use quiver_common::time_zone::{format_offset, SessionTimeZone};

/// Microseconds since the Unix epoch of a timestamp value.
pub(crate) fn timestamp_micros(column: &ArrayRef, unit: TimeUnit, row: usize) -> i64 {
    let raw = match unit {
        TimeUnit::Second => column
            .as_primitive::<arrow::datatypes::TimestampSecondType>()
            .value(row),
        TimeUnit::Millisecond => column
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
            .value(row),
        TimeUnit::Microsecond => column
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .value(row),
        TimeUnit::Nanosecond => column
            .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
            .value(row),
    };
    match unit {
        TimeUnit::Second => raw.saturating_mul(1_000_000),
        TimeUnit::Millisecond => raw.saturating_mul(1_000),
        TimeUnit::Microsecond => raw,
        TimeUnit::Nanosecond => raw.div_euclid(1_000),
    }
}

/// Postgres' float output: shortest round-trip digits, exponent form
/// outside 1e-4..1e15 (1e6 for `real`), `NaN`, `Infinity`, `-Infinity`.
pub fn format_float(value: f64, single: bool) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let sci = if single {
        format!("{:e}", value as f32)
    } else {
        format!("{value:e}")
    };
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let limit = if single { 6 } else { 15 };
    if value != 0.0 && (exponent < -4 || exponent >= limit) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else if single {
        format!("{}", value as f32)
    } else {
        format!("{value}")
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` of microseconds since the Unix epoch:
/// a `timestamp` as it is (`zone` `None`), a `timestamptz` in `zone` with
/// its offset there (`+00`, `-05`, `+05:30`).
pub(crate) fn format_timestamp(micros: i64, zone: Option<&SessionTimeZone>) -> String {
    let offset = zone.map(|z| z.offset_at(micros));
    let micros = micros.saturating_add(i64::from(offset.unwrap_or(0)) * 1_000_000);
    let days = micros.div_euclid(86_400_000_000);
    let in_day = micros.rem_euclid(86_400_000_000);
    let (year, month, day) = civil_from_days(days);
    let secs = in_day / 1_000_000;
    let frac = in_day % 1_000_000;
    let mut out = format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    if let Some(offset) = offset {
        out.push_str(&format_offset(offset));
    }
    out
}

/// Gregorian (year, month, day) of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Whether the encoder's text of a column reported as `field` (its type
/// and format) is not PostgreSQL's, so [`column_text`] renders it.
fn rendered_here(field: &FieldInfo, data_type: &DataType) -> bool {
    if field.format() != FieldFormat::Text {
        return false;
    }
    let reported = field.datatype();
    match data_type {
        DataType::Float32 | DataType::Float64 => {
            *reported == Type::FLOAT4 || *reported == Type::FLOAT8
        }
        DataType::Timestamp(..) => *reported == Type::TIMESTAMP || *reported == Type::TIMESTAMPTZ,
        // Not a vector: pgvector's type has its own text (`[1,2,3]`).
        DataType::List(item) => {
            matches!(item.data_type(), DataType::Float32 | DataType::Float64)
                && (*reported == Type::FLOAT4_ARRAY || *reported == Type::FLOAT8_ARRAY)
        }
        _ => false,
    }
}

/// The text of value `row` of `column` (a type [`rendered_here`]);
/// `timestamptz` values in `zone`.
fn value_text(column: &ArrayRef, row: usize, zone: &SessionTimeZone) -> String {
    match column.data_type() {
        DataType::Float64 => format_float(column.as_primitive::<Float64Type>().value(row), false),
        DataType::Float32 => format_float(
            f64::from(column.as_primitive::<Float32Type>().value(row)),
            true,
        ),
        DataType::Timestamp(unit, with_zone) => format_timestamp(
            timestamp_micros(column, *unit, row),
            with_zone.is_some().then_some(zone),
        ),
        _ => String::new(),
    }
}

/// A column's values as PostgreSQL's text; an array column's elements
/// (the encoder writes the braces and separators).
fn column_text(column: &ArrayRef, zone: &SessionTimeZone) -> ArrayRef {
    let text = |values: &ArrayRef| -> StringArray {
        (0..values.len())
            .map(|row| (!values.is_null(row)).then(|| value_text(values, row, zone)))
            .collect()
    };
    match column.data_type() {
        DataType::List(item) => {
            let list = column.as_list::<i32>();
            let values = text(list.values());
            let field = Arc::new(item.as_ref().clone().with_data_type(DataType::Utf8));
            match ListArray::try_new(
                field,
                list.offsets().clone(),
                Arc::new(values),
                list.nulls().cloned(),
            ) {
                Ok(rendered) => Arc::new(rendered),
                Err(_) => column.clone(),
            }
        }
        _ => Arc::new(text(column)),
    }
}

/// `batch` with its columns sent as text whose encoder text is not
/// PostgreSQL's rendered here, as text columns (the encoder writes their
/// bytes under the column's own type). `fields` are the columns as the
/// client was told of them; `timestamptz` values are shown in `zone`.
pub(crate) fn render_text_columns(
    batch: RecordBatch,
    fields: &[FieldInfo],
    zone: &SessionTimeZone,
) -> RecordBatch {
    let rendered = |(i, column): (usize, &ArrayRef)| {
        fields
            .get(i)
            .is_some_and(|field| rendered_here(field, column.data_type()))
    };
    if !batch.columns().iter().enumerate().any(rendered) {
        return batch;
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            if rendered((i, column)) {
                column_text(column, zone)
            } else {
                column.clone()
            }
        })
        .collect();
    let fields: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .zip(&columns)
        .map(|(field, column)| {
            Arc::new(
                field
                    .as_ref()
                    .clone()
                    .with_data_type(column.data_type().clone()),
            )
        })
        .collect();
    let schema = Arc::new(arrow::datatypes::Schema::new_with_metadata(
        fields,
        batch.schema().metadata().clone(),
    ));
    RecordBatch::try_new(schema, columns).unwrap_or(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float32Array, Float64Array, Int64Array};
    use arrow::datatypes::{Field, Schema};

    fn info(datatype: Type, format: FieldFormat) -> FieldInfo {
        FieldInfo::new("c".into(), None, None, datatype, format)
    }

    #[test]
    fn text_columns_read_as_postgresql_writes_them_binary_ones_stay() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Float64, true),
            Field::new("b", DataType::Float32, true),
            Field::new("c", DataType::Int64, true),
            Field::new("d", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(vec![Some(5.0), Some(1e20), None])),
                Arc::new(Float32Array::from(vec![
                    Some(f32::INFINITY),
                    Some(0.1),
                    Some(-0.0),
                ])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Float64Array::from(vec![1.5e-7, f64::NAN, 2.0])),
            ],
        )
        .unwrap();
        // Columns 0, 1 and 3 as text, 3 in binary.
        let fields = [
            info(Type::FLOAT8, FieldFormat::Text),
            info(Type::FLOAT4, FieldFormat::Text),
            info(Type::INT8, FieldFormat::Text),
            info(Type::FLOAT8, FieldFormat::Binary),
        ];
        let rendered = render_text_columns(batch, &fields, &SessionTimeZone::default());
        let text = |i: usize| -> Vec<Option<String>> {
            rendered
                .column(i)
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_string))
                .collect()
        };
        assert_eq!(text(0), [Some("5".into()), Some("1e+20".into()), None]);
        assert_eq!(
            text(1),
            [
                Some("Infinity".into()),
                Some("0.1".into()),
                Some("-0".into())
            ]
        );
        assert_eq!(rendered.column(2).data_type(), &DataType::Int64);
        assert_eq!(rendered.column(3).data_type(), &DataType::Float64);
    }

    #[test]
    fn float_arrays_and_timestamps_read_as_postgresql_writes_them() {
        use arrow::array::{ListArray, TimestampMicrosecondArray};
        use arrow::datatypes::Float64Type;
        let list = ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
            Some(vec![Some(1.5), Some(2.0), None]),
            None,
        ]);
        let zoned = TimestampMicrosecondArray::from(vec![Some(1_704_164_645_500_000), None])
            .with_timezone("+00:00");
        let plain = TimestampMicrosecondArray::from(vec![Some(1_704_164_645_000_000), None]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("l", list.data_type().clone(), true),
            Field::new("z", zoned.data_type().clone(), true),
            Field::new("p", plain.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(list), Arc::new(zoned), Arc::new(plain)],
        )
        .unwrap();
        let fields = [
            info(Type::FLOAT8_ARRAY, FieldFormat::Text),
            info(Type::TIMESTAMPTZ, FieldFormat::Text),
            info(Type::TIMESTAMP, FieldFormat::Text),
        ];
        let rendered = render_text_columns(batch, &fields, &SessionTimeZone::default());
        let first = |i: usize| rendered.column(i).as_string::<i32>().value(0).to_string();
        let items = rendered.column(0).as_list::<i32>().value(0);
        let items: Vec<Option<&str>> = items.as_string::<i32>().iter().collect();
        assert_eq!(items, [Some("1.5"), Some("2"), None]);
        assert_eq!(first(1), "2024-01-02 03:04:05.5+00");
        assert_eq!(first(2), "2024-01-02 03:04:05");
        assert!(rendered.column(0).is_null(1) && rendered.column(1).is_null(1));
    }
}
