//! Bind parameters to DataFusion `ParamValues`.
//!
//! arrow-pg decodes every Postgres type it knows (in text or binary, with
//! the client's declared types first and ours as the fallback). Vector
//! parameters bound to a `vector(n)` slot are decoded here as well, so that
//! their errors carry pgvector's wording and SQLSTATE
//! (`expected 3 dimensions, not 2`, 22000) rather than a generic one.

use std::sync::Arc;

use arrow::array::{FixedSizeListArray, Float32Array};
use arrow::datatypes::{DataType, Field, FieldRef};
use arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use arrow_pg::datatypes::PG_VECTOR_TYPE_OID;
use datafusion::common::{ParamValues, ScalarValue};
use pgwire::api::portal::Portal;
use pgwire::api::Type;
use pgwire::error::PgWireResult;
use quiver_common::schema::vector_dim;
use quiver_common::vector::{self, VectorError};
use quiver_sql::error::SqlError;

use super::errors::{pg_error, sql_err, PROTOCOL_VIOLATION};
use super::formats::is_binary;

/// Decodes pgvector's binary form: int16 dimension, int16 unused, then the
/// float4 elements, all big-endian.
pub(crate) fn vector_from_binary(raw: &[u8]) -> Result<Vec<f32>, SqlError> {
    let bad = || SqlError::Query {
        code: quiver_common::status::StatusCode::InvalidValue,
        message: "invalid binary data for type vector".to_string(),
    };
    if raw.len() < 4 {
        return Err(bad());
    }
    let dim = u16::from_be_bytes([raw[0], raw[1]]) as usize;
    let body = &raw[4..];
    if body.len() != dim * 4 {
        return Err(bad());
    }
    let values: Vec<f32> = body
        .chunks_exact(4)
        .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    vector::validate(&values)?;
    Ok(values)
}

/// One `vector(dim)` value as a DataFusion scalar of `data_type`.
pub(crate) fn vector_scalar(
    data_type: &DataType,
    values: Option<Vec<f32>>,
) -> PgWireResult<ScalarValue> {
    let DataType::FixedSizeList(field, dim) = data_type else {
        return Err(sql_err(SqlError::Internal(format!(
            "{data_type} is not a vector type"
        ))));
    };
    let Some(values) = values else {
        return ScalarValue::try_from(data_type).map_err(|e| sql_err(e.into()));
    };
    vector::check_dimension(*dim as usize, values.len()).map_err(|e| sql_err(e.into()))?;
    let child: Arc<Field> = field.clone();
    let array =
        FixedSizeListArray::try_new(child, *dim, Arc::new(Float32Array::from(values)), None)
            .map_err(|e| sql_err(e.into()))?;
    Ok(ScalarValue::FixedSizeList(Arc::new(array)))
}

/// Decodes a vector parameter we own (see the module docs): pgvector's
/// binary form, or its text form (also when sent as binary `text`, whose
/// bytes are the same UTF-8).
fn decode_vector<S>(
    portal: &Portal<S>,
    idx: usize,
    data_type: &DataType,
    as_text: bool,
) -> PgWireResult<ScalarValue> {
    let value = match portal.parameters.get(idx).and_then(|p| p.as_ref()) {
        None => None,
        Some(raw) if !as_text => Some(vector_from_binary(raw).map_err(sql_err)?),
        Some(raw) => {
            let text = std::str::from_utf8(raw).map_err(|_| {
                sql_err(SqlError::Vector(VectorError::Syntax(
                    String::from_utf8_lossy(raw).into_owned(),
                )))
            })?;
            Some(vector::parse_text(text).map_err(|e| sql_err(e.into()))?)
        }
    };
    vector_scalar(data_type, value)
}

/// How a parameter inferred as a vector is decoded here: `Some(true)` from
/// text, `Some(false)` from pgvector binary, `None` when left to arrow-pg
/// (the client declared another type, such as `float4[]`).
fn owned_vector_form(hint: Option<&Type>, binary: bool) -> Option<bool> {
    match hint {
        None => Some(!binary),
        Some(t) if *t == Type::UNKNOWN || t.oid() == PG_VECTOR_TYPE_OID => Some(!binary),
        Some(t) if *t == Type::TEXT || *t == Type::VARCHAR => Some(true),
        Some(_) => None,
    }
}

/// Decodes the bound parameters of `portal` given the inferred types of the
/// prepared statement. `None` when the statement takes no parameters.
pub(crate) fn decode_params<S: Clone>(
    portal: &Portal<S>,
    inferred: &[Option<FieldRef>],
) -> PgWireResult<Option<ParamValues>> {
    let supplied = portal.parameter_len();
    if supplied < inferred.len() {
        return Err(pg_error(
            PROTOCOL_VIOLATION,
            format!(
                "bind message supplies {supplied} parameters, but prepared statement requires {}",
                inferred.len()
            ),
        ));
    }
    if supplied == 0 {
        return Ok(None);
    }
    let hints = &portal.statement.parameter_types;
    let mut own: Vec<Option<ScalarValue>> = vec![None; supplied];
    let mut arrow_types: Vec<Option<&DataType>> = Vec::with_capacity(supplied);
    let mut server_types: Vec<Option<Type>> = Vec::with_capacity(supplied);
    for (idx, slot) in own.iter_mut().enumerate() {
        let field = inferred.get(idx).and_then(|f| f.as_ref());
        let data_type = field.map(|f| f.data_type());
        server_types.push(field.map(|f| super::encode::param_pg_type(Some(f))));
        let hint = hints.get(idx).and_then(|t| t.as_ref());
        let binary = is_binary(&portal.parameter_format, idx);
        match (data_type, owned_vector_form(hint, binary)) {
            (Some(dt), Some(as_text)) if vector_dim(dt).is_some() => {
                *slot = Some(decode_vector(portal, idx, dt, as_text)?);
                arrow_types.push(None);
            }
            (other, _) => arrow_types.push(other),
        }
    }
    if own.iter().all(Option::is_some) {
        // Every parameter is a vector decoded above: nothing left for
        // arrow-pg (which would decode the vectors once more).
        return Ok(Some(ParamValues::List(
            own.into_iter().flatten().map(ScalarValue::into).collect(),
        )));
    }
    let server_refs: Vec<Option<&Type>> = server_types.iter().map(|t| t.as_ref()).collect();
    let mut params = deserialize_parameters_with_server_types(portal, &arrow_types, &server_refs)?;
    if let ParamValues::List(values) = &mut params {
        for (value, mine) in values.iter_mut().zip(own) {
            if let Some(mine) = mine {
                value.value = mine;
            }
        }
    }
    Ok(Some(params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgwire::api::portal::Format;
    use quiver_common::schema::vector_arrow_type;

    fn binary(values: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(values.len() as u16).to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        for v in values {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    #[test]
    fn decodes_binary_vectors() {
        assert_eq!(
            vector_from_binary(&binary(&[1.0, -2.5])).unwrap(),
            vec![1.0, -2.5]
        );
        assert!(vector_from_binary(&[0, 2, 0, 0, 1]).is_err());
        let err = vector_from_binary(&binary(&[f32::NAN])).unwrap_err();
        assert_eq!(err.to_string(), "NaN not allowed in vector");
    }

    #[test]
    fn vector_scalars_check_the_dimension() {
        let dt = vector_arrow_type(3);
        let s = vector_scalar(&dt, Some(vec![1.0, 2.0, 3.0])).unwrap();
        assert_eq!(s.data_type(), dt);
        let null = vector_scalar(&dt, None).unwrap();
        assert!(null.is_null());
        let err = vector_scalar(&dt, Some(vec![1.0, 2.0])).unwrap_err();
        match err {
            pgwire::error::PgWireError::UserError(info) => {
                assert_eq!(info.code, "22000");
                assert_eq!(info.message, "expected 3 dimensions, not 2");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn formats_are_read_safely() {
        assert!(!is_binary(&Format::UnifiedText, 3));
        assert!(is_binary(&Format::UnifiedBinary, 0));
        assert!(is_binary(&Format::Individual(vec![0, 1]), 1));
        assert!(!is_binary(&Format::Individual(vec![0, 1]), 5));
    }

    #[test]
    fn vector_forms() {
        assert_eq!(owned_vector_form(None, false), Some(true));
        assert_eq!(owned_vector_form(None, true), Some(false));
        assert_eq!(owned_vector_form(Some(&Type::TEXT), true), Some(true));
        assert_eq!(owned_vector_form(Some(&Type::FLOAT4_ARRAY), true), None);
    }
}
