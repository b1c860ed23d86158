//! Range and group-by searches: candidates fetched in growing numbers,
//! best first, until the hits are picked (range bounds on Milvus' score
//! scale, groups of a scalar field).

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};

use super::convert;
use super::door::{DoorSession, MilvusDoor};
use super::status::DoorError;
use super::typed_search::TypedSearch;

impl MilvusDoor {
    /// Range and group-by searches: fetches a growing number of nearest
    /// rows per query (4x each round, at most [`MAX_TOP_K`] rows) until the
    /// picker is satisfied or the candidates run out, then keeps the
    /// picked rows.
    ///
    /// [`MAX_TOP_K`]: quiver_common::limits::MAX_TOP_K
    pub(super) async fn expanding_search(
        &self,
        session: &mut DoorSession,
        search: &TypedSearch,
        knobs: &serde_json::Value,
        queries: &[Vec<f32>],
        dim: u32,
        pick: &Picker<'_>,
    ) -> Result<Vec<RecordBatch>, DoorError> {
        let cap = quiver_common::limits::MAX_TOP_K;
        let wanted = (pick.topk + pick.offset) * pick.group.map_or(1, |g| g.size);
        let mut out = Vec::with_capacity(queries.len());
        for query in queries {
            let mut limit = (wanted * 2).clamp(16, cap);
            loop {
                let batch = self
                    .search_queries(
                        session,
                        search,
                        (limit, 0),
                        knobs,
                        std::slice::from_ref(query),
                        dim,
                    )
                    .await?
                    .pop()
                    .unwrap_or_else(|| {
                        RecordBatch::new_empty(Arc::new(arrow::datatypes::Schema::empty()))
                    });
                let (rows, done) = pick.pick(&batch)?;
                if done || batch.num_rows() < limit || limit >= cap {
                    let indices = arrow::array::UInt32Array::from(
                        rows.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                    );
                    let taken = if batch.num_columns() == 0 {
                        batch
                    } else {
                        arrow::compute::take_record_batch(&batch, &indices)
                            .map_err(|e| DoorError::internal(e.to_string()))?
                    };
                    out.push(taken);
                    break;
                }
                limit = (limit * 4).min(cap);
            }
        }
        Ok(out)
    }
}

/// Group-by search: hits per distinct value of a scalar field.
pub(super) struct Grouping {
    /// The grouped column.
    pub(super) index: usize,
    /// Hits per group (`group_size`, default 1).
    pub(super) size: usize,
    /// Only groups with `size` hits count as complete (`strict_group_size`).
    pub(super) strict: bool,
}

/// Range search bounds on Milvus' score scale: for L2 (smaller is better)
/// `range_filter <= score < radius`, for IP and COSINE (larger is better)
/// `radius < score <= range_filter`.
#[derive(Debug, Clone, Copy)]
pub(super) struct RangeFilter {
    radius: f64,
    range_filter: Option<f64>,
    smaller_is_better: bool,
}

impl RangeFilter {
    pub(super) fn from_knobs(
        knobs: &serde_json::Value,
        metric: &str,
    ) -> Result<Option<Self>, DoorError> {
        let number = |key: &str| -> Result<Option<f64>, DoorError> {
            match knobs.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .filter(|f| f.is_finite())
                    .map(Some)
                    .ok_or_else(|| DoorError::invalid(format!("{key} must be a number"))),
            }
        };
        let Some(radius) = number("radius")? else {
            if knobs.get("range_filter").is_some() {
                return Err(DoorError::invalid(
                    "range_filter is set without radius".to_string(),
                ));
            }
            return Ok(None);
        };
        let range_filter = number("range_filter")?;
        let smaller_is_better = metric.eq_ignore_ascii_case("L2");
        if let Some(bound) = range_filter {
            let ordered = if smaller_is_better {
                bound < radius
            } else {
                bound > radius
            };
            if !ordered {
                return Err(DoorError::invalid(format!(
                    "range_filter ({bound}) must be {} radius ({radius}) for metric {metric}",
                    if smaller_is_better {
                        "less than"
                    } else {
                        "greater than"
                    }
                )));
            }
        }
        Ok(Some(Self {
            radius,
            range_filter,
            smaller_is_better,
        }))
    }

    /// Whether a score is inside; `Err(())` when it and every worse score
    /// are outside (the candidates are sorted best first).
    pub(super) fn admits(&self, score: f64) -> Result<bool, ()> {
        if self.smaller_is_better {
            if score >= self.radius {
                return Err(());
            }
            Ok(self.range_filter.is_none_or(|b| score >= b))
        } else {
            if score <= self.radius {
                return Err(());
            }
            Ok(self.range_filter.is_none_or(|b| score <= b))
        }
    }
}

/// Picks the hits of a range or group-by search from candidates sorted
/// best first.
pub(super) struct Picker<'a> {
    pub(super) metric: &'a str,
    pub(super) range: Option<RangeFilter>,
    pub(super) group: Option<&'a Grouping>,
    pub(super) topk: usize,
    pub(super) offset: usize,
    /// Column of the distance in the candidate batch.
    pub(super) distance_at: usize,
    /// Column of the grouped field in the candidate batch.
    pub(super) group_at: Option<usize>,
}

impl Picker<'_> {
    /// The rows kept (after `offset`, at most `topk` hits or groups) and
    /// whether more candidates could not change them.
    pub(super) fn pick(&self, batch: &RecordBatch) -> Result<(Vec<usize>, bool), DoorError> {
        if batch.num_columns() == 0 {
            return Ok((Vec::new(), true));
        }
        let distances = convert::float_column(batch, self.distance_at)?;
        let keys: Option<Vec<String>> = match self.group_at {
            Some(at) => {
                let column = batch.column(at);
                let format = arrow::util::display::ArrayFormatter::try_new(
                    column.as_ref(),
                    &Default::default(),
                )
                .map_err(|e| DoorError::internal(e.to_string()))?;
                Some(
                    (0..batch.num_rows())
                        .map(|i| {
                            if column.is_null(i) {
                                "\0null".to_string()
                            } else {
                                format.value(i).to_string()
                            }
                        })
                        .collect(),
                )
            }
            None => None,
        };
        let wanted = self.topk + self.offset;
        let mut exhausted = false;
        let mut accepted: Vec<usize> = Vec::new();
        // Group key -> rows, in order of each group's best hit.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (row, distance) in distances.iter().enumerate() {
            let score = convert::milvus_score(self.metric, *distance) as f64;
            if let Some(range) = &self.range {
                match range.admits(score) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(()) => {
                        exhausted = true;
                        break;
                    }
                }
            }
            match (&keys, self.group) {
                (Some(keys), Some(group)) => {
                    let key = &keys[row];
                    match groups.iter().position(|(k, _)| k == key) {
                        Some(g) if groups[g].1.len() < group.size => groups[g].1.push(row),
                        Some(_) => {}
                        None if groups.len() < wanted => groups.push((key.clone(), vec![row])),
                        None => {}
                    }
                }
                _ => {
                    accepted.push(row);
                    if accepted.len() == wanted {
                        break;
                    }
                }
            }
        }
        let done = exhausted
            || match self.group {
                Some(group) => {
                    groups.len() == wanted
                        && (!group.strict
                            || groups.iter().all(|(_, rows)| rows.len() == group.size))
                }
                None => accepted.len() == wanted,
            };
        let rows = match self.group {
            Some(_) => groups
                .into_iter()
                .skip(self.offset)
                .take(self.topk)
                .flat_map(|(_, rows)| rows)
                .collect(),
            None => accepted
                .into_iter()
                .skip(self.offset)
                .take(self.topk)
                .collect(),
        };
        Ok((rows, done))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Float64Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn range_bounds_follow_the_metric() {
        let l2 = serde_json::json!({"radius": 10.0, "range_filter": 2});
        let r = RangeFilter::from_knobs(&l2, "L2").unwrap().unwrap();
        // L2: range_filter <= score < radius, smaller is better.
        assert_eq!(r.admits(1.0), Ok(false));
        assert_eq!(r.admits(2.0), Ok(true));
        assert_eq!(r.admits(9.9), Ok(true));
        assert_eq!(r.admits(10.0), Err(()));
        let ip = serde_json::json!({"radius": "0.2", "range_filter": 0.9});
        let r = RangeFilter::from_knobs(&ip, "IP").unwrap().unwrap();
        // IP, COSINE: radius < score <= range_filter, larger is better.
        assert_eq!(r.admits(0.95), Ok(false));
        assert_eq!(r.admits(0.9), Ok(true));
        assert_eq!(r.admits(0.2), Err(()));
        let open = RangeFilter::from_knobs(&serde_json::json!({"radius": 0.5}), "COSINE")
            .unwrap()
            .unwrap();
        assert_eq!(open.admits(1.0), Ok(true));
        assert!(RangeFilter::from_knobs(&serde_json::json!({}), "L2")
            .unwrap()
            .is_none());
    }

    #[test]
    fn range_bounds_are_checked() {
        let message = |knobs: serde_json::Value, metric: &str| {
            RangeFilter::from_knobs(&knobs, metric).unwrap_err().message
        };
        assert_eq!(
            message(serde_json::json!({"range_filter": 1}), "L2"),
            "range_filter is set without radius"
        );
        assert_eq!(
            message(serde_json::json!({"radius": "x"}), "L2"),
            "radius must be a number"
        );
        assert_eq!(
            message(serde_json::json!({"radius": 1, "range_filter": 2}), "L2"),
            "range_filter (2) must be less than radius (1) for metric L2"
        );
        assert_eq!(
            message(
                serde_json::json!({"radius": 0.5, "range_filter": 0.1}),
                "IP"
            ),
            "range_filter (0.1) must be greater than radius (0.5) for metric IP"
        );
    }

    /// Candidates best first: (key, distance, group value).
    fn candidates(rows: &[(i64, f64, Option<i64>)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("g", DataType::Int64, true),
            Field::new("d", DataType::Float64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn picking_in_range() {
        let range = RangeFilter::from_knobs(
            &serde_json::json!({"radius": 5.0, "range_filter": 1.0}),
            "L2",
        )
        .unwrap();
        let pick = Picker {
            metric: "L2",
            range,
            group: None,
            topk: 2,
            offset: 0,
            distance_at: 2,
            group_at: None,
        };
        // Scores are L2 distances (squared): 0.25, 1, 4, 9.
        let batch = candidates(&[
            (1, 0.5, None),
            (2, 1.0, None),
            (3, 2.0, None),
            (4, 3.0, None),
        ]);
        assert_eq!(pick.pick(&batch).unwrap(), (vec![1, 2], true));
        // Fewer candidates than wanted and none out of range: more may come.
        let short = candidates(&[(1, 0.5, None), (2, 1.0, None)]);
        assert_eq!(pick.pick(&short).unwrap(), (vec![1], false));
        // No columns: an empty search.
        let none = RecordBatch::new_empty(Arc::new(Schema::empty()));
        assert_eq!(pick.pick(&none).unwrap(), (vec![], true));
    }

    #[test]
    fn picking_groups() {
        let group = Grouping {
            index: 1,
            size: 2,
            strict: true,
        };
        let pick = Picker {
            metric: "L2",
            range: None,
            group: Some(&group),
            topk: 2,
            offset: 1,
            distance_at: 2,
            group_at: Some(1),
        };
        let batch = candidates(&[
            (1, 0.1, Some(7)),
            (2, 0.2, Some(8)),
            (3, 0.3, Some(7)),
            (4, 0.4, Some(7)),
            (5, 0.5, None),
            (6, 0.6, Some(9)),
            (7, 0.7, None),
        ]);
        // Groups in order of their best hit: 7 (rows 0, 2), 8 (1), null
        // (4, 6); the offset skips group 7. Group 8 has one hit only, so a
        // strict grouping wants more candidates.
        assert_eq!(pick.pick(&batch).unwrap(), (vec![1, 4, 6], false));
        let loose = Grouping {
            strict: false,
            ..group
        };
        let pick = Picker {
            group: Some(&loose),
            ..pick
        };
        assert_eq!(pick.pick(&batch).unwrap(), (vec![1, 4, 6], true));
    }
}
