//! The Milvus door's searches as typed plans through a real `Instance`:
//! a filtered search of several vectors answers what the same search in
//! SQL answers, and its plan is made once per request shape — later
//! vectors and later requests of that shape only rebind the cached
//! physical search plan; another shape (a new filter) plans anew.

mod support;

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use milvus::proto::common::{KeyValuePair, PlaceholderGroup, PlaceholderType, PlaceholderValue};
use milvus::proto::milvus::milvus_service_server::MilvusService;
use milvus::proto::milvus::{search_request, LoadCollectionRequest, SearchRequest};
use milvus::proto::schema::i_ds::IdField;
use prost::Message;
use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_servers::milvus::MilvusDoor;
use quiver_sql::Instance;
use support::{run, session};

const QUERIES: [[f32; 3]; 3] = [[1.0, 0.0, 0.0], [10.0, 10.0, 0.5], [-3.0, 4.0, 2.0]];

fn search(filter: &str) -> tonic::Request<SearchRequest> {
    let group = PlaceholderGroup {
        placeholders: vec![PlaceholderValue {
            tag: "$0".into(),
            r#type: PlaceholderType::FloatVector as i32,
            values: QUERIES
                .iter()
                .map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect())
                .collect(),
            ..Default::default()
        }],
    };
    let params = [
        ("anns_field", "v"),
        ("topk", "4"),
        ("metric_type", "L2"),
        ("params", "{}"),
    ];
    tonic::Request::new(SearchRequest {
        collection_name: "docs".into(),
        dsl: filter.into(),
        search_params: params
            .iter()
            .map(|(k, v)| KeyValuePair {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        search_input: Some(search_request::SearchInput::PlaceholderGroup(
            group.encode_to_vec(),
        )),
        nq: QUERIES.len() as i64,
        ..Default::default()
    })
}

#[tokio::test]
async fn milvus_searches_are_typed_plans_made_once_per_shape() {
    let dir = tempfile::tempdir().unwrap();
    let config = QuiverConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let instance = Arc::new(Instance::new(Engine::open(config).await.unwrap()));
    let mut s = session(&instance).await;
    let rows: Vec<String> = (0..60)
        .map(|i| {
            format!(
                "({i}, {}, '[{}, {}, {}]')",
                i % 4,
                i % 7,
                i / 5,
                (i % 3) as f32 * 0.5
            )
        })
        .collect();
    run(
        &instance,
        &mut s,
        &format!(
            "CREATE TABLE docs (id BIGINT PRIMARY KEY, tag INT, v vector(3)); \
             INSERT INTO docs VALUES {}",
            rows.join(", ")
        ),
    )
    .await
    .unwrap();
    let door = MilvusDoor::new(instance.clone());
    let loaded = door
        .load_collection(tonic::Request::new(LoadCollectionRequest {
            collection_name: "docs".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(loaded.code, 0, "{loaded:?}");

    let plans_before = instance.reused_search_plans();
    let reply = door
        .search(search("tag in [1, 3]"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status.clone().unwrap_or_default().code,
        0,
        "{reply:?}"
    );
    let results = reply.results.unwrap();
    assert_eq!(results.topks, [4, 4, 4]);
    let Some(IdField::IntId(ids)) = results.ids.unwrap().id_field else {
        panic!("no int ids");
    };
    // What SQL answers for the same searches.
    let mut expected: Vec<i64> = Vec::new();
    for q in QUERIES {
        let batches = run(
            &instance,
            &mut s,
            &format!(
                "SELECT id FROM docs WHERE tag IN (1, 3) ORDER BY v <-> '[{}, {}, {}]', id LIMIT 4",
                q[0], q[1], q[2]
            ),
        )
        .await
        .unwrap();
        for b in batches {
            expected.extend(b.column(0).as_primitive::<Int64Type>().values().iter());
        }
    }
    assert_eq!(ids.data, expected);
    // The first vector planned; the two others only rebound its plan.
    assert_eq!(instance.reused_search_plans(), plans_before + 2);

    // The same shape again: nothing planned.
    let again = door
        .search(search("tag in [1, 3]"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.status.unwrap_or_default().code, 0);
    assert_eq!(instance.reused_search_plans(), plans_before + 5);

    // Another filter is another plan.
    let other = door.search(search("tag == 2")).await.unwrap().into_inner();
    assert_eq!(other.status.unwrap_or_default().code, 0);
    assert_eq!(instance.reused_search_plans(), plans_before + 7);
    let Some(IdField::IntId(other_ids)) = other.results.unwrap().ids.unwrap().id_field else {
        panic!("no int ids");
    };
    assert!(other_ids.data.iter().all(|id| id % 4 == 2), "{other_ids:?}");
}
