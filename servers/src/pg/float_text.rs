//! `float4` / `float8` result columns in PostgreSQL's text output, as
//! `COPY` writes them ([`format_float`]: the shortest digits that read back
//! as the same value, `1e+20`, `1.5e-07`, `Infinity`, `NaN`, `-0`), not
//! the encoder's `5.0`, `1e20`, `inf`. Columns sent as text are rendered
//! here before encoding; binary ones keep their IEEE bytes.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use pgwire::api::portal::Format;

use super::formats::is_binary;

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

/// `batch` with its float columns sent as text rendered as PostgreSQL
/// renders them (as text columns: the encoder writes their bytes).
pub(crate) fn render_floats(batch: RecordBatch, format: &Format) -> RecordBatch {
    let floats = |(i, column): (usize, &ArrayRef)| {
        matches!(column.data_type(), DataType::Float32 | DataType::Float64) && !is_binary(format, i)
    };
    if !batch.columns().iter().enumerate().any(floats) {
        return batch;
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            if !floats((i, column)) {
                return column.clone();
            }
            let text: StringArray = match column.data_type() {
                DataType::Float64 => column
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.map(|v| format_float(v, false)))
                    .collect(),
                _ => column
                    .as_primitive::<Float32Type>()
                    .iter()
                    .map(|v| v.map(|v| format_float(f64::from(v), true)))
                    .collect(),
            };
            Arc::new(text) as ArrayRef
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
        let rendered = render_floats(batch, &Format::Individual(vec![0, 0, 0, 1]));
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
}
