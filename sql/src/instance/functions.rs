//! Postgres system functions clients call at connect time: `version()`,
//! `to_regtype(text)`, `current_setting(text)`, `pg_typeof(any)`,
//! `current_schema()` and `current_schemas(bool)`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int32Array, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The version string `SELECT version()` returns.
pub fn version_string() -> String {
    format!(
        "PostgreSQL 16.0 (Quiver {}) on {}, compiled by rustc",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// OID of a type name as `to_regtype` resolves it, for the types Quiver serves.
pub fn type_oid(name: &str) -> Option<i32> {
    let name = name.trim().trim_matches('"').to_ascii_lowercase();
    let name = name
        .rsplit('.')
        .next()
        .unwrap_or(&name)
        .trim_matches('"')
        .to_string();
    Some(match name.as_str() {
        "vector" => arrow_pg::datatypes::PG_VECTOR_TYPE_OID as i32,
        "bool" | "boolean" => 16,
        "char" | "\"char\"" => 18,
        "name" => 19,
        "bpchar" | "character" => 1042,
        "time" => 1083,
        "interval" => 1186,
        "bit" => 1560,
        "varbit" | "bit varying" => 1562,
        "bytea" => 17,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "integer" | "int" => 23,
        "text" => 25,
        "oid" => 26,
        "json" => 114,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "varchar" | "character varying" => 1043,
        "date" => 1082,
        "timestamp" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "numeric" => 1700,
        "uuid" => 2950,
        "jsonb" => 3802,
        _ => return None,
    })
}

macro_rules! simple_udf {
    ($name:ident, $sql:expr) => {
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct $name {
            signature: Signature,
        }
        impl $name {
            fn new(signature: Signature) -> Self {
                Self { signature }
            }
        }
    };
}

simple_udf!(VersionUdf, "version");
simple_udf!(ToRegtypeUdf, "to_regtype");
simple_udf!(PgTypeofUdf, "pg_typeof");

/// The PostgreSQL name of the type a value of `data_type` has, as
/// `pg_typeof` answers it (`unknown` for an untyped NULL).
pub fn pg_type_name(data_type: &DataType) -> String {
    if quiver_common::schema::vector_dim(data_type).is_some() {
        return "vector".to_string();
    }
    match data_type {
        DataType::Null => "unknown",
        DataType::Boolean => "boolean",
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 => "bigint",
        DataType::UInt64 | DataType::Decimal128(..) | DataType::Decimal256(..) => "numeric",
        DataType::Float16 | DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea",
        DataType::FixedSizeBinary(16) => "uuid",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone",
        DataType::Timestamp(_, None) => "timestamp without time zone",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        DataType::Interval(_) | DataType::Duration(_) => "interval",
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::FixedSizeList(item, _) => {
            return format!("{}[]", pg_type_name(item.data_type()));
        }
        DataType::Struct(_) => "record",
        _ => "unknown",
    }
    .to_string()
}

impl ScalarUDFImpl for PgTypeofUdf {
    fn name(&self) -> &str {
        "pg_typeof"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = pg_type_name(&args.args[0].data_type());
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

impl ScalarUDFImpl for VersionUdf {
    fn name(&self) -> &str {
        "version"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            version_string(),
        ))))
    }
}

impl ScalarUDFImpl for ToRegtypeUdf {
    fn name(&self) -> &str {
        "to_regtype"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &args.args[0] {
            ColumnarValue::Scalar(s) => {
                let name = match s {
                    ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                        v.clone()
                    }
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Int32(
                    name.as_deref().and_then(type_oid),
                )))
            }
            ColumnarValue::Array(array) => {
                let strings = arrow::compute::cast(array, &DataType::Utf8)?;
                let strings = strings.as_string::<i32>();
                let out: Int32Array = strings.iter().map(|s| s.and_then(type_oid)).collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
        }
    }
}

/// `current_setting(name)` over a snapshot of the session's settings.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CurrentSettingUdf {
    signature: Signature,
    settings: BTreeMap<String, String>,
}

impl ScalarUDFImpl for CurrentSettingUdf {
    fn name(&self) -> &str {
        "current_setting"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let lookup = |name: &str| self.settings.get(&name.to_ascii_lowercase()).cloned();
        match &args.args[0] {
            ColumnarValue::Scalar(s) => {
                let value = match s {
                    ScalarValue::Utf8(Some(v))
                    | ScalarValue::LargeUtf8(Some(v))
                    | ScalarValue::Utf8View(Some(v)) => lookup(v),
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(value)))
            }
            ColumnarValue::Array(array) => {
                let strings = arrow::compute::cast(array, &DataType::Utf8)?;
                let strings = strings.as_string::<i32>();
                let out: StringArray = (0..strings.len())
                    .map(|i| {
                        if strings.is_null(i) {
                            None
                        } else {
                            lookup(strings.value(i))
                        }
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
        }
    }
}

/// The session-independent system functions.
pub fn system_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(VersionUdf::new(Signature::nullary(Volatility::Stable))),
        ScalarUDF::from(ToRegtypeUdf::new(Signature::string(1, Volatility::Stable))),
        ScalarUDF::from(PgTypeofUdf::new(Signature::any(1, Volatility::Immutable))),
    ]
}

/// `current_setting` bound to the given settings.
pub fn current_setting_function(settings: &BTreeMap<String, String>) -> ScalarUDF {
    ScalarUDF::from(CurrentSettingUdf {
        signature: Signature::one_of(
            vec![
                datafusion::logical_expr::TypeSignature::String(1),
                datafusion::logical_expr::TypeSignature::Any(2),
            ],
            Volatility::Stable,
        ),
        settings: settings.clone(),
    })
}

/// `current_schema()` and `current_schemas(include_implicit)` of a session
/// whose `search_path` names `schemas` that exist, in order: the first of
/// them (NULL when none exists), and all of them (`pg_catalog` first when
/// implicit schemas are asked for).
pub fn current_schema_functions(schemas: &[String]) -> [ScalarUDF; 2] {
    use arrow::array::ListArray;
    use datafusion::logical_expr::create_udf;
    let current = schemas.first().cloned();
    let current_schema = create_udf(
        "current_schema",
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(current.clone())))
        }),
    );
    let schemas = schemas.to_vec();
    let item = Arc::new(arrow::datatypes::Field::new("item", DataType::Utf8, true));
    let list_type = DataType::List(item.clone());
    let current_schemas = create_udf(
        "current_schemas",
        vec![DataType::Boolean],
        list_type,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let implicit = arrays[0].as_boolean();
            let lists: Vec<Option<Vec<Option<String>>>> = (0..implicit.len())
                .map(|row| {
                    if implicit.is_null(row) {
                        return None;
                    }
                    let mut names: Vec<Option<String>> = Vec::new();
                    if implicit.value(row) {
                        names.push(Some("pg_catalog".to_string()));
                    }
                    names.extend(schemas.iter().cloned().map(Some));
                    Some(names)
                })
                .collect();
            let mut offsets = vec![0i32];
            let mut values: Vec<Option<String>> = Vec::new();
            let mut valid = Vec::with_capacity(lists.len());
            for list in lists {
                valid.push(list.is_some());
                values.extend(list.unwrap_or_default());
                offsets.push(values.len() as i32);
            }
            let array = ListArray::try_new(
                item.clone(),
                arrow::buffer::OffsetBuffer::new(offsets.into()),
                Arc::new(StringArray::from(values)),
                Some(valid.into()),
            )?;
            Ok(ColumnarValue::Array(Arc::new(array)))
        }),
    );
    [current_schema, current_schemas]
}
