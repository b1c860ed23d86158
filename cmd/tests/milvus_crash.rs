//! Crash recovery through the Milvus door: partitions, their rows, the
//! partition key, the shard count and load state are all acknowledged state. The server is
//! SIGKILLed after each change and must come back with every one of them.

mod support;

use support::{free_port, private_tempdir};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use milvus::proto::common::{LoadState, PlaceholderGroup, PlaceholderType, PlaceholderValue};
use milvus::proto::milvus::milvus_service_client::MilvusServiceClient;
use milvus::proto::milvus::*;
use milvus::proto::schema::{
    field_data, scalar_field, vector_field, CollectionSchema, DataType, FieldData, FieldSchema,
    FloatArray, LongArray, ScalarField, VectorField,
};
use prost::Message;
use tonic::transport::Channel;

/// Kills the server when the test ends, passing or failing.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    fn start(dir: &std::path::Path, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args(["standalone", "--data-dir"])
            .arg(dir)
            .args([
                "--pg-addr",
                "127.0.0.1:0",
                "--milvus-addr",
                &format!("127.0.0.1:{port}"),
                "--seal-rows",
                "7",
            ])
            .env("QUIVER__SEGMENT__MAINTENANCE_INTERVAL_MS", "100")
            .env("QUIVER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("quiver starts");
        Self(child)
    }

    fn sigkill(mut self) {
        // SAFETY: kill(2) on a child's pid touches no memory of this process.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

async fn connect(port: u16) -> MilvusServiceClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
        match endpoint.connect().await {
            Ok(channel) => return MilvusServiceClient::new(channel),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("server did not come back: {e}"),
        }
    }
}

fn ok(status: Option<milvus::proto::common::Status>, what: &str) {
    let status = status.unwrap_or_default();
    assert_eq!(status.code, 0, "{what}: {}", status.reason);
}

const COLLECTION: &str = "parts";
const KEYED: &str = "keyed";

fn schema(name: &str, partition_key: bool) -> Vec<u8> {
    let field = |id, name: &str, data_type: DataType| FieldSchema {
        field_id: id,
        name: name.into(),
        data_type: data_type as i32,
        ..Default::default()
    };
    let mut key = field(101, "k", DataType::Int64);
    key.is_partition_key = partition_key;
    CollectionSchema {
        name: name.into(),
        fields: vec![
            FieldSchema {
                is_primary_key: true,
                ..field(100, "id", DataType::Int64)
            },
            key,
            FieldSchema {
                type_params: vec![milvus::proto::common::KeyValuePair {
                    key: "dim".into(),
                    value: "2".into(),
                }],
                ..field(102, "v", DataType::FloatVector)
            },
        ],
        ..Default::default()
    }
    .encode_to_vec()
}

fn rows(collection: &str, partition: &str, ids: &[i64]) -> InsertRequest {
    let long = |name: &str, values: Vec<i64>| FieldData {
        r#type: DataType::Int64 as i32,
        field_name: name.into(),
        field: Some(field_data::Field::Scalars(ScalarField {
            data: Some(scalar_field::Data::LongData(LongArray { data: values })),
            ..Default::default()
        })),
        ..Default::default()
    };
    InsertRequest {
        collection_name: collection.into(),
        partition_name: partition.into(),
        num_rows: ids.len() as u32,
        fields_data: vec![
            long("id", ids.to_vec()),
            long("k", ids.iter().map(|i| i * 3).collect()),
            FieldData {
                r#type: DataType::FloatVector as i32,
                field_name: "v".into(),
                field: Some(field_data::Field::Vectors(VectorField {
                    dim: 2,
                    data: Some(vector_field::Data::FloatVector(FloatArray {
                        data: ids.iter().flat_map(|&i| [i as f32, 1.0]).collect(),
                    })),
                    ..Default::default()
                })),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

/// The ids a query over `partitions` returns (an error's code otherwise).
async fn ids_in(
    client: &mut MilvusServiceClient<Channel>,
    collection: &str,
    partitions: &[&str],
) -> Result<Vec<i64>, i32> {
    let reply = client
        .query(QueryRequest {
            collection_name: collection.into(),
            expr: "id >= 0".into(),
            output_fields: vec!["id".into()],
            partition_names: partitions.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        })
        .await
        .expect("query rpc")
        .into_inner();
    let status = reply.status.unwrap_or_default();
    if status.code != 0 {
        return Err(status.code);
    }
    let mut ids: Vec<i64> = reply
        .fields_data
        .iter()
        .find(|f| f.field_name == "id")
        .and_then(|f| match &f.field {
            Some(field_data::Field::Scalars(ScalarField {
                data: Some(scalar_field::Data::LongData(l)),
                ..
            })) => Some(l.data.clone()),
            _ => None,
        })
        .unwrap_or_default();
    ids.sort_unstable();
    Ok(ids)
}

async fn partitions(client: &mut MilvusServiceClient<Channel>, collection: &str) -> Vec<String> {
    let reply = client
        .show_partitions(ShowPartitionsRequest {
            collection_name: collection.into(),
            ..Default::default()
        })
        .await
        .expect("show partitions rpc")
        .into_inner();
    ok(reply.status, "show partitions");
    reply.partition_names
}

async fn load_state(
    client: &mut MilvusServiceClient<Channel>,
    collection: &str,
    partition: &str,
) -> LoadState {
    let reply = client
        .get_load_state(GetLoadStateRequest {
            collection_name: collection.into(),
            partition_names: if partition.is_empty() {
                vec![]
            } else {
                vec![partition.into()]
            },
            ..Default::default()
        })
        .await
        .expect("load state rpc")
        .into_inner();
    ok(reply.status, "load state");
    LoadState::try_from(reply.state).expect("a load state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_and_load_state_survive_sigkill() {
    // The server demands a private (0700) data directory.
    let dir = private_tempdir();
    let port = free_port();
    let server = Server::start(dir.path(), port);
    let mut client = connect(port).await;

    for (name, keyed) in [(COLLECTION, false), (KEYED, true)] {
        let reply = client
            .create_collection(CreateCollectionRequest {
                collection_name: name.into(),
                schema: schema(name, keyed),
                num_partitions: if keyed { 4 } else { 0 },
                // The keyed collection's rows spread over 3 shards.
                shards_num: if keyed { 3 } else { 0 },
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ok(Some(reply), "create collection");
    }
    for p in ["p1", "p2"] {
        let reply = client
            .create_partition(CreatePartitionRequest {
                collection_name: COLLECTION.into(),
                partition_name: p.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ok(Some(reply), "create partition");
    }
    let p1: Vec<i64> = (0..20).collect();
    let p2: Vec<i64> = (100..115).collect();
    let default: Vec<i64> = (200..209).collect();
    for (partition, ids) in [("p1", &p1), ("p2", &p2), ("", &default)] {
        let reply = client
            .insert(rows(COLLECTION, partition, ids))
            .await
            .unwrap()
            .into_inner();
        ok(reply.status, "insert");
    }
    let reply = client
        .insert(rows(KEYED, "", &p1))
        .await
        .unwrap()
        .into_inner();
    ok(reply.status, "insert keyed");
    let reply = client
        .release_partitions(ReleasePartitionsRequest {
            collection_name: COLLECTION.into(),
            partition_names: vec!["p2".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    ok(Some(reply), "release p2");

    server.sigkill();
    let server = Server::start(dir.path(), port);
    let mut client = connect(port).await;

    assert_eq!(
        partitions(&mut client, COLLECTION).await,
        ["_default", "p1", "p2"]
    );
    assert_eq!(
        ids_in(&mut client, COLLECTION, &["p1"]).await,
        Ok(p1.clone())
    );
    assert_eq!(
        ids_in(&mut client, COLLECTION, &["_default"]).await,
        Ok(default.clone())
    );
    assert_eq!(
        load_state(&mut client, COLLECTION, "p2").await,
        LoadState::NotLoad
    );
    assert_eq!(ids_in(&mut client, COLLECTION, &["p2"]).await, Err(201));
    let every_loaded: Vec<i64> = p1.iter().chain(&default).copied().collect();
    assert_eq!(ids_in(&mut client, COLLECTION, &[]).await, Ok(every_loaded));
    // The partition key and its partitions came back too.
    let described = client
        .describe_collection(DescribeCollectionRequest {
            collection_name: KEYED.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    ok(described.status.clone(), "describe keyed");
    assert_eq!(described.num_partitions, 4);
    assert_eq!(described.shards_num, 3);
    let key = described.schema.unwrap().fields;
    assert!(key.iter().any(|f| f.name == "k" && f.is_partition_key));
    assert_eq!(
        partitions(&mut client, KEYED).await,
        ["_default_0", "_default_1", "_default_2", "_default_3"]
    );
    assert_eq!(ids_in(&mut client, KEYED, &[]).await, Ok(p1.clone()));

    // Load p2 again, release and drop p1; all survive the next kill.
    let reply = client
        .load_partitions(LoadPartitionsRequest {
            collection_name: COLLECTION.into(),
            partition_names: vec!["p2".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    ok(Some(reply), "load p2");
    let reply = client
        .release_partitions(ReleasePartitionsRequest {
            collection_name: COLLECTION.into(),
            partition_names: vec!["p1".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    ok(Some(reply), "release p1");
    let reply = client
        .drop_partition(DropPartitionRequest {
            collection_name: COLLECTION.into(),
            partition_name: "p1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    ok(Some(reply), "drop p1");

    server.sigkill();
    let _server = Server::start(dir.path(), port);
    let mut client = connect(port).await;

    assert_eq!(
        partitions(&mut client, COLLECTION).await,
        ["_default", "p2"]
    );
    assert_eq!(
        load_state(&mut client, COLLECTION, "").await,
        LoadState::Loaded
    );
    let left: Vec<i64> = p2.iter().chain(&default).copied().collect();
    assert_eq!(ids_in(&mut client, COLLECTION, &[]).await, Ok(left));
    assert_eq!(ids_in(&mut client, COLLECTION, &["p1"]).await, Err(200));
    // A search in p2 finds p2's nearest row.
    let query = PlaceholderGroup {
        placeholders: vec![PlaceholderValue {
            tag: "$0".into(),
            r#type: PlaceholderType::FloatVector as i32,
            values: vec![[0.0f32, 1.0].iter().flat_map(|x| x.to_le_bytes()).collect()],
            ..Default::default()
        }],
    };
    let reply = client
        .search(SearchRequest {
            collection_name: COLLECTION.into(),
            partition_names: vec!["p2".into()],
            search_input: Some(search_request::SearchInput::PlaceholderGroup(
                query.encode_to_vec(),
            )),
            search_params: [("topk", "1"), ("metric_type", "L2"), ("anns_field", "v")]
                .into_iter()
                .map(|(k, v)| milvus::proto::common::KeyValuePair {
                    key: k.into(),
                    value: v.into(),
                })
                .collect(),
            nq: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    ok(reply.status, "search p2");
    let ids = reply.results.unwrap().ids.unwrap();
    assert_eq!(
        ids.id_field,
        Some(milvus::proto::schema::i_ds::IdField::IntId(LongArray {
            data: vec![100]
        }))
    );
}
