//! Tests of the COPY decoders and encoders.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array,
    Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{
    DataType, Field, Float32Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use quiver_common::schema::{vector_arrow_type, JSON_METADATA_KEY};
use quiver_sql::handler::pg::{CopyFormat, CopySpec};

use super::copy_cols::unescape_text;
use super::copy_in::{CopyDecoder, CopyError, MAX_BATCH_ROWS};
use super::copy_out::CopyEncoder;
use super::text_output::{format_float, format_timestamp};

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

/// id bigint not null, v vector(3), s text
fn items() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", vector_arrow_type(3), true),
        Field::new("s", DataType::Utf8, true),
    ]))
}

fn spec(schema: SchemaRef, format: CopyFormat) -> CopySpec {
    let csv = format == CopyFormat::Csv;
    CopySpec {
        database: "public".into(),
        table: "items".into(),
        schema,
        format,
        delimiter: if csv { b',' } else { b'\t' },
        null: if csv { String::new() } else { "\\N".into() },
        header: false,
        quote: b'"',
        memory: None,
    }
}

fn decode(spec: &CopySpec, data: &[u8]) -> Result<Vec<RecordBatch>, CopyError> {
    let mut decoder = CopyDecoder::new(spec);
    decoder.feed(data)?;
    decoder.finish()
}

/// Feeds one byte at a time: records spanning CopyData messages.
fn decode_bytewise(spec: &CopySpec, data: &[u8]) -> Result<Vec<RecordBatch>, CopyError> {
    let mut decoder = CopyDecoder::new(spec);
    for b in data {
        decoder.feed(std::slice::from_ref(b))?;
    }
    decoder.finish()
}

fn one(batches: Vec<RecordBatch>) -> RecordBatch {
    assert_eq!(batches.len(), 1, "{batches:?}");
    batches.into_iter().next().unwrap()
}

fn vector_row(batch: &RecordBatch, column: usize, row: usize) -> Option<Vec<f32>> {
    let list = batch
        .column(column)
        .as_any()
        .downcast_ref::<FixedSizeListArray>()
        .unwrap();
    if list.is_null(row) {
        return None;
    }
    Some(
        list.value(row)
            .as_primitive::<Float32Type>()
            .values()
            .to_vec(),
    )
}

#[test]
fn text_format_rows_nulls_and_escapes() {
    let data = b"1\t[1,2,3]\thello\n2\t\\N\ttab\\there\\\\ and \\n newline\r\n3\t[4, 5, 6]\t\\N\n\\.\nignored";
    for batches in [
        decode(&spec(items(), CopyFormat::Text), data),
        decode_bytewise(&spec(items(), CopyFormat::Text), data),
    ] {
        let batch = one(batches.unwrap());
        assert_eq!(batch.num_rows(), 3);
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values().to_vec(), vec![1, 2, 3]);
        assert_eq!(vector_row(&batch, 1, 0), Some(vec![1.0, 2.0, 3.0]));
        assert_eq!(vector_row(&batch, 1, 1), None);
        assert_eq!(vector_row(&batch, 1, 2), Some(vec![4.0, 5.0, 6.0]));
        let s = batch.column(2).as_string::<i32>();
        assert_eq!(s.value(0), "hello");
        assert_eq!(s.value(1), "tab\there\\ and \n newline");
        assert!(s.is_null(2));
        assert_eq!(batch.schema(), items());
    }
}

#[test]
fn text_format_last_line_without_newline_and_header() {
    let mut spec = spec(items(), CopyFormat::Text);
    spec.header = true;
    let batch = one(decode(&spec, b"id\tv\ts\n7\t[0,0,1]\tx").unwrap());
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(0), 7);
}

#[test]
fn text_format_errors_carry_sqlstate_and_line() {
    let spec = spec(items(), CopyFormat::Text);
    let err = decode(&spec, b"1\t[1,2,3]\ta\nx\t[1,2,3]\tb\n").unwrap_err();
    assert_eq!(err.code, "22P02");
    assert_eq!(err.message, "invalid input syntax for type bigint: \"x\"");
    assert_eq!(
        err.context.as_deref(),
        Some("COPY items, line 2, column id: \"x\"")
    );

    let err = decode(&spec, b"1\t[1,2]\ta\n").unwrap_err();
    assert_eq!(err.code, "22000");
    assert_eq!(err.message, "expected 3 dimensions, not 2");
    assert!(err.context.unwrap().contains("line 1, column v"));

    let err = decode(&spec, b"1\t[1,NaN,2]\ta\n").unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        ("22000", "NaN not allowed in vector")
    );

    let err = decode(&spec, b"1\t[1,x,2]\ta\n").unwrap_err();
    assert_eq!(err.code, "22P02");
    assert_eq!(
        err.message,
        "invalid input syntax for type vector: \"[1,x,2]\""
    );

    let err = decode(&spec, b"1\t[1,2,3]\n").unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        ("22P04", "missing data for column \"s\"")
    );

    let err = decode(&spec, b"1\t[1,2,3]\ta\tb\n").unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        ("22P04", "extra data after last expected column")
    );

    let err = decode(&spec, b"\\N\t[1,2,3]\ta\n").unwrap_err();
    assert_eq!(err.code, "23502");
    assert_eq!(
        err.message,
        "null value in column \"id\" of relation \"items\" violates not-null constraint"
    );

    let pg = err.into_pg();
    match pg {
        pgwire::error::PgWireError::UserError(info) => {
            assert_eq!(info.code, "23502");
            assert_eq!(
                info.where_context.as_deref(),
                Some("COPY items, line 1, column id")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn scalar_types_in_text() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("b", DataType::Boolean, true),
        Field::new("i", DataType::Int32, true),
        Field::new("r", DataType::Float32, true),
        Field::new("d", DataType::Float64, true),
        Field::new("t", ts_type(), true),
        Field::new("j", DataType::Utf8, true)
            .with_metadata([(JSON_METADATA_KEY.to_string(), "json".to_string())].into()),
    ]));
    let spec = spec(schema, CopyFormat::Text);
    let data = b"t\t-5\tNaN\t-Infinity\t2024-01-02 03:04:05+00\t{\"a\": 1}\n\
                 false\t7\t1.5\t2.25\t2024-01-02 03:04:05.5+02:00\t[1,2]\n";
    let batch = one(decode(&spec, data).unwrap());
    let b = batch
        .column(0)
        .as_any()
        .downcast_ref::<BooleanArray>()
        .unwrap();
    assert!(b.value(0) && !b.value(1));
    let i = batch
        .column(1)
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap();
    assert_eq!(i.values().to_vec(), vec![-5, 7]);
    let r = batch
        .column(2)
        .as_any()
        .downcast_ref::<Float32Array>()
        .unwrap();
    assert!(r.value(0).is_nan());
    assert_eq!(r.value(1), 1.5);
    let d = batch
        .column(3)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(d.value(0), f64::NEG_INFINITY);
    let t = batch
        .column(4)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(t.value(0), 1_704_164_645_000_000);
    assert_eq!(t.value(1), 1_704_164_645_500_000 - 2 * 3_600_000_000);
    assert_eq!(batch.column(4).data_type(), &ts_type());
    let j = batch
        .column(5)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(j.value(0), "{\"a\": 1}");

    let err = decode(&spec, b"maybe\t1\t1\t1\t2024-01-01\t{}\n").unwrap_err();
    assert_eq!(
        err.message,
        "invalid input syntax for type boolean: \"maybe\""
    );
    let err = decode(&spec, b"t\t3000000000\t1\t1\t2024-01-01\t{}\n").unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            "22003",
            "value \"3000000000\" is out of range for type integer"
        )
    );
    let err = decode(
        &spec,
        b"t\t1\t1\t1\t2024-01-01\t{}\nt\t1\t1\t1\tyesterday\t{}\n",
    )
    .unwrap_err();
    assert_eq!(err.code, "22P02");
    assert!(
        err.message.contains("timestamp with time zone"),
        "{}",
        err.message
    );
    assert!(err.context.unwrap().contains("line 2, column t"));
    let err = decode(&spec, b"t\t1\t1\t1\t2024-01-01\t{oops\n").unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        ("22P02", "invalid input syntax for type json: \"{oops\"")
    );
}

#[test]
fn csv_quotes_headers_and_nulls() {
    let mut spec = spec(items(), CopyFormat::Csv);
    spec.header = true;
    let data = b"id,v,s\n10,\"[0,0,1]\",\"date, sweet\"\n11,\"[0.5,0.5,0]\",\n12,,\"\"\n13,\"[1,1,1]\",\"multi\nline \"\"quoted\"\"\"\r\n";
    for batches in [decode(&spec, data), decode_bytewise(&spec, data)] {
        let batch = one(batches.unwrap());
        assert_eq!(batch.num_rows(), 4);
        let s = batch.column(2).as_string::<i32>();
        assert_eq!(s.value(0), "date, sweet");
        assert!(s.is_null(1), "empty unquoted is NULL");
        assert_eq!(s.value(2), "", "empty quoted is an empty string");
        assert!(s.is_valid(2));
        assert_eq!(s.value(3), "multi\nline \"quoted\"");
        assert_eq!(vector_row(&batch, 1, 1), Some(vec![0.5, 0.5, 0.0]));
        assert_eq!(vector_row(&batch, 1, 2), None);
    }
}

#[test]
fn csv_errors() {
    let spec = spec(items(), CopyFormat::Csv);
    let err = decode(&spec, b"1,\"[1,2,3]\",\"open\n").unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        ("22P04", "unterminated CSV quoted field")
    );
    let err = decode(&spec, b"1,\"[1,2,3]\",a\n2,\"[1,2]\",b\n").unwrap_err();
    assert_eq!(err.message, "expected 3 dimensions, not 2");
    assert!(err.context.unwrap().contains("line 2"));
    let err = decode(&spec, b"1\n").unwrap_err();
    assert_eq!(err.code, "22P04");
}

fn binary_copy(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
    let mut out = b"PGCOPY\n\xff\r\n\0".to_vec();
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&4i32.to_be_bytes());
    out.extend_from_slice(b"skip");
    for row in rows {
        out.extend_from_slice(&(row.len() as i16).to_be_bytes());
        for field in row {
            match field {
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(bytes) => {
                    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                    out.extend_from_slice(bytes);
                }
            }
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

fn pgvector(values: &[f32]) -> Vec<u8> {
    let mut out = (values.len() as i16).to_be_bytes().to_vec();
    out.extend_from_slice(&0i16.to_be_bytes());
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

#[test]
fn binary_format() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", vector_arrow_type(3), true),
        Field::new("label", DataType::Int32, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("x", DataType::Float64, true),
        Field::new("t", ts_type(), true),
        Field::new("j", DataType::Utf8, true)
            .with_metadata([(JSON_METADATA_KEY.to_string(), "json".to_string())].into()),
    ]));
    let spec = spec(schema, CopyFormat::Binary);
    let rows = vec![
        vec![
            Some(1i64.to_be_bytes().to_vec()),
            Some(pgvector(&[1.0, 2.0, 3.0])),
            Some(5i32.to_be_bytes().to_vec()),
            Some(vec![1]),
            Some(2.5f64.to_be_bytes().to_vec()),
            Some(0i64.to_be_bytes().to_vec()),
            Some(b"\x01{\"k\":true}".to_vec()),
        ],
        vec![
            Some(2i64.to_be_bytes().to_vec()),
            None,
            None,
            None,
            None,
            None,
            None,
        ],
    ];
    let data = binary_copy(&rows);
    for batches in [decode(&spec, &data), decode_bytewise(&spec, &data)] {
        let batch = one(batches.unwrap());
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(
            batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(1),
            2
        );
        assert_eq!(vector_row(&batch, 1, 0), Some(vec![1.0, 2.0, 3.0]));
        assert_eq!(vector_row(&batch, 1, 1), None);
        assert_eq!(
            batch
                .column(2)
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap()
                .value(0),
            5
        );
        let t = batch.column(5).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(t.value(0), 946_684_800_000_000, "2000-01-01 in Unix micros");
        assert_eq!(batch.column(6).as_string::<i32>().value(0), "{\"k\":true}");
    }

    let bad = binary_copy(&[vec![
        Some(1i64.to_be_bytes().to_vec()),
        Some(pgvector(&[1.0, 2.0])),
        None,
        None,
        None,
        None,
        None,
    ]]);
    let err = decode(&spec, &bad).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        ("22000", "expected 3 dimensions, not 2")
    );
    let err = decode(&spec, &binary_copy(&[vec![None]])).unwrap_err();
    assert_eq!(err.code, "22P04");
    let err = decode(&spec, b"NOTPGCOPY-----------------").unwrap_err();
    assert_eq!(err.message, "COPY file signature not recognized");
    let mut truncated = binary_copy(&rows);
    truncated.truncate(truncated.len() - 5);
    assert_eq!(
        decode(&spec, &truncated).unwrap_err().message,
        "unexpected EOF in COPY data"
    );
}

#[test]
fn large_inputs_are_cut_into_batches() {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let spec = spec(schema, CopyFormat::Text);
    let rows = MAX_BATCH_ROWS * 2 + 10;
    let data: String = (0..rows).map(|i| format!("{i}\n")).collect();
    let batches = decode(&spec, data.as_bytes()).unwrap();
    assert_eq!(
        batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
        vec![MAX_BATCH_ROWS, MAX_BATCH_ROWS, 10]
    );
}

#[test]
fn unescapes_text_fields() {
    assert_eq!(unescape_text(b"a\\tb\\\\c\\nd\\re"), b"a\tb\\c\nd\re");
    assert_eq!(unescape_text(b"\\101\\x42\\q"), b"ABq");
    assert_eq!(unescape_text(b"trailing\\"), b"trailing\\");
}

fn sample_batch() -> RecordBatch {
    let v = FixedSizeListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        3,
        Arc::new(Float32Array::from(vec![1.0, 2.5, -3.0, 0.0, 0.0, 0.0])),
        Some(vec![true, false].into()),
    )
    .unwrap();
    RecordBatch::try_new(
        items(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(v),
            Arc::new(StringArray::from(vec![Some("a,b\t\"c\"\nd\\"), None])),
        ],
    )
    .unwrap()
}

fn encode_all(spec: &CopySpec, batch: &RecordBatch) -> Vec<u8> {
    let encoder = CopyEncoder::new(spec, &batch.schema());
    let mut out = encoder.start();
    for row in 0..batch.num_rows() {
        encoder.encode_row(batch, row, &mut out).unwrap();
    }
    out.extend_from_slice(&encoder.end());
    out
}

#[test]
fn encodes_text_and_csv() {
    let batch = sample_batch();
    let text = encode_all(&spec(items(), CopyFormat::Text), &batch);
    assert_eq!(
        String::from_utf8(text.clone()).unwrap(),
        "1\t[1,2.5,-3]\ta,b\\t\"c\"\\nd\\\\\n2\t\\N\t\\N\n"
    );
    assert_eq!(
        one(decode(&spec(items(), CopyFormat::Text), &text).unwrap()),
        batch
    );

    let mut csv_spec = spec(items(), CopyFormat::Csv);
    csv_spec.header = true;
    let csv = encode_all(&csv_spec, &batch);
    assert_eq!(
        String::from_utf8(csv.clone()).unwrap(),
        "id,v,s\n1,\"[1,2.5,-3]\",\"a,b\t\"\"c\"\"\nd\\\"\n2,,\n"
    );
    assert_eq!(one(decode(&csv_spec, &csv).unwrap()), batch);
}

#[test]
fn binary_round_trip() {
    let batch = sample_batch();
    let spec = spec(items(), CopyFormat::Binary);
    let data = encode_all(&spec, &batch);
    assert!(data.starts_with(b"PGCOPY\n\xff\r\n\0"));
    assert!(data.ends_with(&[0xff, 0xff]));
    assert_eq!(one(decode(&spec, &data).unwrap()), batch);
}

#[test]
fn formats_floats_and_timestamps_like_postgres() {
    assert_eq!(format_float(1.0, false), "1");
    assert_eq!(format_float(0.1, false), "0.1");
    assert_eq!(format_float(1e15, false), "1e+15");
    assert_eq!(format_float(1e14, false), "100000000000000");
    assert_eq!(format_float(1.5e-5, false), "1.5e-05");
    assert_eq!(format_float(0.1f32 as f64, true), "0.1");
    assert_eq!(format_float(1234567.0, true), "1.234567e+06");
    assert_eq!(format_float(f64::NAN, false), "NaN");
    assert_eq!(format_float(f64::NEG_INFINITY, true), "-Infinity");
    let utc = quiver_common::time_zone::SessionTimeZone::default();
    assert_eq!(format_timestamp(0, Some(&utc)), "1970-01-01 00:00:00+00");
    assert_eq!(
        format_timestamp(1_704_164_645_500_000, Some(&utc)),
        "2024-01-02 03:04:05.5+00"
    );
    assert_eq!(format_timestamp(-1, None), "1969-12-31 23:59:59.999999");
    assert_eq!(
        format_timestamp(951_782_400_000_000, Some(&utc)),
        "2000-02-29 00:00:00+00"
    );
}

#[test]
fn oversized_copy_is_refused() {
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    let spec = spec(schema, CopyFormat::Text);
    let mut decoder = CopyDecoder::with_limit(&spec, 1 << 20);
    // One unterminated line larger than the limit.
    let chunk = vec![b'x'; 64 << 10];
    let mut result = Ok(());
    for _ in 0..17 {
        result = decoder.feed(&chunk);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result.unwrap_err().code, "54000");
    let mut decoder = CopyDecoder::with_limit(&spec, 1 << 20);
    for _ in 0..100 {
        decoder.feed(b"short line\n").unwrap();
    }
    assert_eq!(decoder.finish().unwrap()[0].num_rows(), 100);
}
