//! Segment statistics (min, max and null count per column) and the pruning
//! of segments a filter cannot match, with DataFusion's `PruningPredicate`.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::pruning::PrunableStatistics;
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, Statistics};
use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;

use crate::source::{adapt_batch, Segment};

/// Whether min/max statistics are worth keeping for a column type (scalar
/// types a filter compares; not vectors, lists or JSON text blobs).
fn has_min_max(data_type: &DataType) -> bool {
    data_type.is_primitive()
        || matches!(
            data_type,
            DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
}

/// Exact statistics of `batches` in the storage schema `schema`.
pub fn segment_statistics(batches: &[RecordBatch], schema: &SchemaRef) -> Statistics {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let adapted: Vec<RecordBatch> = batches
        .iter()
        .filter_map(|b| adapt_batch(b, schema).ok())
        .collect();
    if adapted.len() != batches.len() {
        return Statistics::new_unknown(schema);
    }
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let mut stat = ColumnStatistics::new_unknown();
            let nulls: usize = adapted.iter().map(|b| b.column(i).null_count()).sum();
            stat.null_count = Precision::Exact(nulls);
            if has_min_max(field.data_type()) {
                if let (Ok(mut min), Ok(mut max)) = (
                    MinAccumulator::try_new(field.data_type()),
                    MaxAccumulator::try_new(field.data_type()),
                ) {
                    let ok = adapted.iter().all(|b| {
                        let col = [b.column(i).clone()];
                        min.update_batch(&col).is_ok() && max.update_batch(&col).is_ok()
                    });
                    if let (true, Ok(lo), Ok(hi)) = (ok, min.evaluate(), max.evaluate()) {
                        stat.min_value = Precision::Exact(lo);
                        stat.max_value = Precision::Exact(hi);
                    }
                }
            }
            stat
        })
        .collect();
    Statistics {
        num_rows: Precision::Exact(rows),
        total_byte_size: Precision::Absent,
        column_statistics: columns,
    }
}

/// Which segments `filter` may match: `true` keeps a segment. Segments
/// without statistics (growing ones) are always kept, and so is everything
/// when the filter cannot be turned into a pruning predicate.
pub fn segments_to_search(
    segments: &[Segment],
    filter: Option<&Arc<dyn PhysicalExpr>>,
    schema: &SchemaRef,
) -> Vec<bool> {
    let keep_all = vec![true; segments.len()];
    let Some(filter) = filter else {
        return keep_all;
    };
    if segments.iter().all(|s| s.stats.is_none()) {
        return keep_all;
    }
    let Some(predicate) = PruningPredicateBuilder::new()
        .with_file_schema(schema.clone())
        .build(filter.clone())
    else {
        return keep_all;
    };
    let stats: Vec<Arc<Statistics>> = segments
        .iter()
        .map(|s| {
            s.stats
                .clone()
                .filter(|st| st.column_statistics.len() == schema.fields().len())
                .unwrap_or_else(|| Arc::new(Statistics::new_unknown(schema)))
        })
        .collect();
    predicate
        .prune(&PrunableStatistics::new(stats, schema.clone()))
        .unwrap_or(keep_all)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};

    use super::*;
    use crate::source::SegmentKind;

    fn segment(id: u64, ids: Vec<i64>, names: Vec<&str>, schema: &SchemaRef) -> Segment {
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap();
        let stats = segment_statistics(std::slice::from_ref(&batch), schema);
        Segment {
            id,
            shard: 0,
            kind: SegmentKind::Sealed,
            rows: batch.num_rows(),
            batches: Arc::new(vec![batch]),
            indexes: Vec::new(),
            stats: Some(Arc::new(stats)),
        }
    }

    #[test]
    fn min_max_skip_segments_the_filter_cannot_match() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let segments = vec![
            segment(1, vec![1, 2, 3], vec!["a", "b", "c"], &schema),
            segment(2, vec![10, 20, 30], vec!["x", "y", "z"], &schema),
        ];
        let stats = segments[1].stats.as_ref().unwrap();
        assert_eq!(
            stats.column_statistics[0].min_value,
            Precision::Exact(ScalarValue::Int64(Some(10)))
        );
        let id_gt = |v: i64| -> Arc<dyn PhysicalExpr> {
            Arc::new(BinaryExpr::new(
                Arc::new(Column::new("id", 0)),
                Operator::Gt,
                Arc::new(Literal::new(ScalarValue::Int64(Some(v)))),
            ))
        };
        assert_eq!(
            segments_to_search(&segments, Some(&id_gt(5)), &schema),
            vec![false, true]
        );
        assert_eq!(
            segments_to_search(&segments, Some(&id_gt(100)), &schema),
            vec![false, false]
        );
        assert_eq!(
            segments_to_search(&segments, None, &schema),
            vec![true, true]
        );
        let name_eq: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("name", 1)),
            Operator::Eq,
            Arc::new(Literal::new(ScalarValue::Utf8(Some("b".into())))),
        ));
        assert_eq!(
            segments_to_search(&segments, Some(&name_eq), &schema),
            vec![true, false]
        );
    }
}
