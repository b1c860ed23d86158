//! `HybridSearch`: each sub-search run, their ranked lists fused per query
//! by the request's ranker (RRF or weighted), the fused hits' fields read.

use std::collections::HashMap;

use milvus::proto::common::KeyValuePair;
use milvus::proto::milvus::{HybridSearchRequest, SearchResults};
use milvus::proto::schema::{i_ds, SearchResultData};

use super::collection::Collection;
use super::door::MilvusDoor;
use super::request::param;
use super::rows::{ids_of, output_field, pk_requested};
use super::status::{ok_status, DoorError};
use super::validate;

impl MilvusDoor {
    /// `HybridSearch`: runs each sub-search, fuses the ranked lists per
    /// query with the request's ranker (RRF or weighted), then reads the
    /// output fields of the fused hits.
    pub(super) async fn do_hybrid_search(
        &self,
        database: &str,
        r: &HybridSearchRequest,
    ) -> Result<SearchResults, DoorError> {
        let Collection { table, arrays, .. } = self
            .collection_to_read(
                database,
                &r.collection_name,
                r.consistency_level,
                r.guarantee_timestamp,
            )
            .await?;
        if r.requests.is_empty() {
            return Err(DoorError::invalid(
                "hybrid search has no search requests".to_string(),
            ));
        }
        let (limit, offset) = validate::hybrid_window(
            param(&r.rank_params, "limit"),
            param(&r.rank_params, "offset"),
        )?;
        let ranker = Ranker::from_params(&r.rank_params, r.requests.len())?;
        let mut lists = Vec::with_capacity(r.requests.len());
        for sub in &r.requests {
            let mut sub = sub.clone();
            sub.collection_name = r.collection_name.clone();
            sub.output_fields.clear();
            sub.partition_names = r.partition_names.clone();
            let (results, metric) = self.search_with_metric(database, &sub).await?;
            lists.push((results.results.unwrap_or_default(), metric));
        }
        let nq = lists[0].0.num_queries;
        if lists.iter().any(|(l, _)| l.num_queries != nq) {
            return Err(DoorError::invalid(
                "the nq of every search request of a hybrid search must be the same".to_string(),
            ));
        }
        let mut fused_keys = Vec::new();
        let mut fused_scores = Vec::new();
        let mut topks = Vec::new();
        for q in 0..nq as usize {
            let ranked: Vec<Vec<(String, f32)>> =
                lists.iter().map(|(l, _)| hits_of(l, q)).collect();
            let metrics: Vec<&str> = lists.iter().map(|(_, m)| m.as_str()).collect();
            let fused = ranker.fuse(&ranked, &metrics);
            let page: Vec<(String, f32)> = fused.into_iter().skip(offset).take(limit).collect();
            topks.push(page.len() as i64);
            for (key, score) in page {
                fused_keys.push(key);
                fused_scores.push(score);
            }
        }
        let columns = self.output_columns(&table, &r.output_fields, true)?;
        let batch = self
            .rows_by_keys(database, &r.collection_name, &table, &columns, &fused_keys)
            .await?;
        let mut fields_data = Vec::new();
        for (pos, &i) in columns
            .iter()
            .enumerate()
            .skip(usize::from(!pk_requested(&table, &r.output_fields)))
        {
            let column = &table.columns[i];
            fields_data.push(output_field(
                &table,
                &arrays,
                column,
                batch.column(pos),
                &r.output_fields,
            )?);
        }
        Ok(SearchResults {
            status: Some(ok_status()),
            results: Some(SearchResultData {
                num_queries: nq,
                top_k: limit as i64,
                fields_data,
                scores: fused_scores,
                ids: Some(ids_of(&table, batch.column(0))?),
                topks,
                output_fields: columns
                    .iter()
                    .skip(usize::from(!pk_requested(&table, &r.output_fields)))
                    .map(|&i| table.columns[i].name.clone())
                    .collect(),
                primary_field_name: table.pk().name.clone(),
                ..Default::default()
            }),
            collection_name: r.collection_name.clone(),
            ..Default::default()
        })
    }
}

/// The reranker of a hybrid search.
pub(super) enum Ranker {
    /// Reciprocal rank fusion: a hit scores `sum 1 / (k + rank)` (rank from 1).
    Rrf { k: f64 },
    /// A weighted sum of each list's scores, optionally normalized to
    /// [0, 1] per metric first (`norm_score`).
    Weighted { weights: Vec<f64>, normalize: bool },
}

impl Ranker {
    fn from_params(params: &[KeyValuePair], lists: usize) -> Result<Self, DoorError> {
        let strategy = param(params, "strategy")
            .unwrap_or("rrf")
            .to_ascii_lowercase();
        let knobs: serde_json::Value = match param(params, "params") {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| DoorError::invalid(format!("invalid ranker params: {e}")))?,
            None => serde_json::Value::Null,
        };
        match strategy.as_str() {
            "rrf" => {
                let k = knobs.get("k").and_then(|v| v.as_f64()).unwrap_or(60.0);
                if !(k > 0.0 && k < 16_384.0) {
                    return Err(DoorError::invalid(format!(
                        "the k of the RRF ranker must be in (0, 16384), got {k}"
                    )));
                }
                Ok(Ranker::Rrf { k })
            }
            "weighted" => {
                let weights: Vec<f64> = knobs
                    .get("weights")
                    .and_then(|w| w.as_array())
                    .map(|w| w.iter().filter_map(|v| v.as_f64()).collect())
                    .unwrap_or_default();
                if weights.len() != lists {
                    return Err(DoorError::invalid(format!(
                        "the weighted ranker has {} weights for {lists} search requests",
                        weights.len()
                    )));
                }
                if weights.iter().any(|w| !(0.0..=1.0).contains(w)) {
                    return Err(DoorError::invalid(
                        "the weights of the weighted ranker must be in [0, 1]".to_string(),
                    ));
                }
                let normalize = knobs
                    .get("norm_score")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(true);
                Ok(Ranker::Weighted { weights, normalize })
            }
            other => Err(DoorError::unsupported(format!("the {other} ranker"))),
        }
    }

    /// Fuses ranked lists of (primary key, score), best first; the result
    /// is sorted by fused score, best first (ties by key).
    fn fuse(&self, lists: &[Vec<(String, f32)>], metrics: &[&str]) -> Vec<(String, f32)> {
        let mut totals: HashMap<String, f64> = HashMap::new();
        for (list_index, list) in lists.iter().enumerate() {
            for (rank, (key, score)) in list.iter().enumerate() {
                let contribution = match self {
                    Ranker::Rrf { k } => 1.0 / (k + rank as f64 + 1.0),
                    Ranker::Weighted { weights, normalize } => {
                        let score = *score as f64;
                        let score = if *normalize {
                            normalized_score(metrics[list_index], score)
                        } else {
                            score
                        };
                        weights[list_index] * score
                    }
                };
                *totals.entry(key.clone()).or_insert(0.0) += contribution;
            }
        }
        let mut fused: Vec<(String, f32)> =
            totals.into_iter().map(|(k, s)| (k, s as f32)).collect();
        fused.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        fused
    }
}

/// A score mapped to [0, 1], larger is better: `1 - 2 atan(d) / pi` for L2
/// distances, `0.5 + atan(s) / pi` for inner products, `(1 + s) / 2` for
/// cosine similarities.
pub(super) fn normalized_score(metric: &str, score: f64) -> f64 {
    match metric.to_ascii_uppercase().as_str() {
        "L2" => 1.0 - 2.0 * score.atan() / std::f64::consts::PI,
        "IP" => 0.5 + score.atan() / std::f64::consts::PI,
        _ => (1.0 + score) / 2.0,
    }
}

/// The hits of query `q` of a search result as (primary key text, score).
pub(super) fn hits_of(result: &SearchResultData, q: usize) -> Vec<(String, f32)> {
    let start: usize = result.topks[..q].iter().map(|&n| n as usize).sum();
    let count = result.topks.get(q).copied().unwrap_or(0) as usize;
    let keys: Vec<String> = match result.ids.as_ref().and_then(|i| i.id_field.as_ref()) {
        Some(i_ds::IdField::IntId(a)) => a.data[start..start + count]
            .iter()
            .map(i64::to_string)
            .collect(),
        Some(i_ds::IdField::StrId(a)) => a.data[start..start + count].to_vec(),
        _ => Vec::new(),
    };
    keys.into_iter()
        .zip(result.scores[start..start + count].iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use milvus::proto::schema::{IDs, LongArray, StringArray};

    use super::*;

    fn kv(key: &str, value: &str) -> KeyValuePair {
        KeyValuePair {
            key: key.into(),
            value: value.into(),
        }
    }

    fn hits(list: &[(&str, f32)]) -> Vec<(String, f32)> {
        list.iter().map(|(k, s)| (k.to_string(), *s)).collect()
    }

    #[test]
    fn rankers_are_read_and_checked() {
        assert!(matches!(
            Ranker::from_params(&[], 2).unwrap(),
            Ranker::Rrf { k } if k == 60.0
        ));
        let rrf = Ranker::from_params(&[kv("strategy", "RRF"), kv("params", r#"{"k": 10}"#)], 2);
        assert!(matches!(rrf.unwrap(), Ranker::Rrf { k } if k == 10.0));
        for k in ["0", "16384", "-1"] {
            let params = [
                kv("strategy", "rrf"),
                kv("params", &format!(r#"{{"k": {k}}}"#)),
            ];
            let e = Ranker::from_params(&params, 2).err().unwrap();
            assert_eq!(e.code, 1100, "{k}");
            assert!(e.message.contains("(0, 16384)"), "{}", e.message);
        }
        let weighted = [
            kv("strategy", "weighted"),
            kv("params", r#"{"weights": [0.3, 0.7], "norm_score": false}"#),
        ];
        match Ranker::from_params(&weighted, 2).unwrap() {
            Ranker::Weighted { weights, normalize } => {
                assert_eq!(weights, vec![0.3, 0.7]);
                assert!(!normalize);
            }
            Ranker::Rrf { .. } => panic!("not weighted"),
        }
        let e = Ranker::from_params(&weighted, 3).err().unwrap();
        assert_eq!(
            e.message,
            "the weighted ranker has 2 weights for 3 search requests"
        );
        let out_of_range = [
            kv("strategy", "weighted"),
            kv("params", r#"{"weights": [1.5]}"#),
        ];
        assert!(Ranker::from_params(&out_of_range, 1).is_err());
        let e = Ranker::from_params(&[kv("strategy", "decay")], 1)
            .err()
            .unwrap();
        assert_eq!(e.message, "the decay ranker is not supported yet by Quiver");
        let e = Ranker::from_params(&[kv("params", "{")], 1).err().unwrap();
        assert!(
            e.message.starts_with("invalid ranker params"),
            "{}",
            e.message
        );
    }

    #[test]
    fn rrf_sums_reciprocal_ranks() {
        let ranker = Ranker::Rrf { k: 60.0 };
        let a = hits(&[("1", 0.9), ("2", 0.8)]);
        let b = hits(&[("2", 5.0), ("3", 4.0)]);
        let fused = ranker.fuse(&[a, b], &["COSINE", "L2"]);
        let keys: Vec<&str> = fused.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["2", "1", "3"]);
        assert!((fused[0].1 - (1.0 / 62.0 + 1.0 / 61.0) as f32).abs() < 1e-6);
        assert!((fused[1].1 - (1.0 / 61.0) as f32).abs() < 1e-6);
        // Equal scores: ties go by key.
        let tied = ranker.fuse(&[hits(&[("b", 1.0)]), hits(&[("a", 1.0)])], &["IP", "IP"]);
        assert_eq!(tied[0].0, "a");
    }

    #[test]
    fn weighted_sums_normalized_scores() {
        let ranker = Ranker::Weighted {
            weights: vec![0.5, 1.0],
            normalize: true,
        };
        let fused = ranker.fuse(
            &[hits(&[("1", 0.0)]), hits(&[("1", 0.0), ("2", 1.0)])],
            &["COSINE", "L2"],
        );
        // 1: 0.5 * (1 + 0) / 2 + 1.0 * (1 - 0) = 1.25; 2: 1 - 2 atan(1) / pi = 0.5
        assert_eq!(fused[0].0, "1");
        assert!((fused[0].1 - 1.25).abs() < 1e-6);
        assert!((fused[1].1 - 0.5).abs() < 1e-6);
        let raw = Ranker::Weighted {
            weights: vec![0.5],
            normalize: false,
        };
        assert_eq!(
            raw.fuse(&[hits(&[("1", 4.0)])], &["IP"]),
            hits(&[("1", 2.0)])
        );
    }

    #[test]
    fn scores_normalize_per_metric() {
        assert!((normalized_score("L2", 0.0) - 1.0).abs() < 1e-12);
        assert!((normalized_score("l2", 1.0) - 0.5).abs() < 1e-12);
        assert!((normalized_score("IP", 0.0) - 0.5).abs() < 1e-12);
        assert!((normalized_score("COSINE", -1.0)).abs() < 1e-12);
        assert!((normalized_score("COSINE", 1.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn hits_are_sliced_per_query() {
        let result = SearchResultData {
            topks: vec![2, 0, 1],
            scores: vec![0.9, 0.8, 0.7],
            ids: Some(IDs {
                id_field: Some(i_ds::IdField::IntId(LongArray {
                    data: vec![10, 11, 12],
                })),
            }),
            ..Default::default()
        };
        assert_eq!(hits_of(&result, 0), hits(&[("10", 0.9), ("11", 0.8)]));
        assert_eq!(hits_of(&result, 1), hits(&[]));
        assert_eq!(hits_of(&result, 2), hits(&[("12", 0.7)]));
        let text = SearchResultData {
            topks: vec![1],
            scores: vec![0.5],
            ids: Some(IDs {
                id_field: Some(i_ds::IdField::StrId(StringArray {
                    data: vec!["a".into()],
                })),
            }),
            ..Default::default()
        };
        assert_eq!(hits_of(&text, 0), hits(&[("a", 0.5)]));
    }
}
