//! The Milvus door sends no SQL text: a whole Milvus workflow — databases,
//! collections (sharded, with a dynamic field, a default value, a
//! partition key), indexes, partitions, inserts, statistics, queries,
//! searches, deletes by filter, renames and drops — runs through a real
//! `Instance` behind a handler that refuses to parse or execute SQL, and
//! every answer is the one the data gives.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF};
use datafusion::sql::sqlparser::ast::Statement;
use milvus::proto::common::{
    KeyValuePair, PlaceholderGroup, PlaceholderType, PlaceholderValue, Status,
};
use milvus::proto::milvus::milvus_service_server::MilvusService;
use milvus::proto::milvus::*;
use milvus::proto::schema::{
    field_data, scalar_field, value_field, vector_field, CollectionSchema, DataType, FieldData,
    FieldSchema, FloatArray, LongArray, ScalarField, ValueField, VectorField,
};
use parking_lot::Mutex;
use prost::Message;
use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_common::schema::TableSchema;
use quiver_servers::milvus::MilvusDoor;
use quiver_sql::error::{Result, SqlError};
use quiver_sql::handler::ddl::CatalogChange;
use quiver_sql::handler::{
    IndexInfo, KeyedPlan, Output, Prepared, QueryHandler, SearchKnobs, Session, SessionInfo,
    WriteKind, Written,
};
use quiver_sql::Instance;
use tonic::Request;

/// The `Instance` behind a handler that answers every protocol-neutral
/// call as the instance does, but refuses SQL text (and records it).
struct NoSqlText {
    inner: Arc<Instance>,
    sql: Mutex<Vec<String>>,
}

impl NoSqlText {
    fn refuse(&self, what: String) -> SqlError {
        self.sql.lock().push(what.clone());
        SqlError::unsupported(format!("SQL text through the Milvus door: {what}"))
    }
}

#[async_trait]
impl QueryHandler for NoSqlText {
    async fn new_session(&self, info: SessionInfo) -> Result<Session> {
        self.inner.new_session(info).await
    }
    fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        Err(self.refuse(sql.to_string()))
    }
    async fn prepare(&self, _session: &mut Session, statement: &Statement) -> Result<Prepared> {
        Err(self.refuse(statement.to_string()))
    }
    async fn execute(
        &self,
        _session: &mut Session,
        statement: &Statement,
        _params: Option<ParamValues>,
    ) -> Result<Output> {
        Err(self.refuse(statement.to_string()))
    }
    async fn databases(&self) -> Result<Vec<String>> {
        self.inner.databases().await
    }
    async fn table_schema(&self, database: &str, table: &str) -> Result<TableSchema> {
        self.inner.table_schema(database, table).await
    }
    async fn table_shards(&self, database: &str, table: &str) -> Result<u32> {
        self.inner.table_shards(database, table).await
    }
    async fn table_scan(
        &self,
        session: &mut Session,
        database: &str,
        table: &str,
    ) -> Result<LogicalPlanBuilder> {
        self.inner.table_scan(session, database, table).await
    }
    fn scalar_function(&self, session: &mut Session, name: &str) -> Result<Arc<ScalarUDF>> {
        self.inner.scalar_function(session, name)
    }
    async fn execute_plan(&self, session: &mut Session, plan: LogicalPlan) -> Result<Output> {
        self.inner.execute_plan(session, plan).await
    }
    async fn execute_keyed_plan(
        &self,
        session: &mut Session,
        plan: KeyedPlan<'_>,
        params: ParamValues,
    ) -> Result<Output> {
        self.inner.execute_keyed_plan(session, plan, params).await
    }
    async fn delete_where(
        &self,
        session: &mut Session,
        database: &str,
        table: &str,
        filter: Expr,
    ) -> Result<usize> {
        self.inner
            .delete_where(session, database, table, filter)
            .await
    }
    fn set_search_knobs(&self, session: &mut Session, knobs: SearchKnobs) -> Result<()> {
        self.inner.set_search_knobs(session, knobs)
    }
    async fn change_catalog(&self, session: &mut Session, change: CatalogChange) -> Result<bool> {
        self.inner.change_catalog(session, change).await
    }
    async fn indexes(&self, database: &str, table: &str) -> Result<Vec<IndexInfo>> {
        self.inner.indexes(database, table).await
    }
    async fn tables(&self, database: &str) -> Result<Vec<String>> {
        self.inner.tables(database).await
    }
    async fn table_options(&self, database: &str, table: &str) -> Result<BTreeMap<String, String>> {
        self.inner.table_options(database, table).await
    }
    async fn set_table_options(
        &self,
        database: &str,
        table: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<()> {
        self.inner.set_table_options(database, table, changes).await
    }
    async fn allocate_timestamp(&self) -> Result<u64> {
        self.inner.allocate_timestamp().await
    }
    async fn read_timestamp(&self) -> Result<u64> {
        self.inner.read_timestamp().await
    }
    async fn flush(&self, database: &str, table: &str) -> Result<()> {
        self.inner.flush(database, table).await
    }
    async fn compact(&self, database: &str, table: &str) -> Result<usize> {
        self.inner.compact(database, table).await
    }
    async fn write(
        &self,
        session: &mut Session,
        database: &str,
        table: &str,
        rows: RecordBatch,
        sent: &[String],
        kind: WriteKind,
    ) -> Result<Written> {
        self.inner
            .write(session, database, table, rows, sent, kind)
            .await
    }
}

fn ok(status: Option<Status>) {
    let status = status.unwrap_or_default();
    assert_eq!(status.code, 0, "{status:?}");
}

/// Calls an RPC of the door whose reply is a bare `Status` and checks it
/// is a success.
macro_rules! ok_call {
    ($door:ident . $rpc:ident ( $request:expr )) => {
        ok(Some(
            $door
                .$rpc(Request::new($request))
                .await
                .unwrap()
                .into_inner(),
        ))
    };
}

fn kv(key: &str, value: &str) -> KeyValuePair {
    KeyValuePair {
        key: key.into(),
        value: value.into(),
    }
}

fn field(name: &str, data_type: DataType, params: &[(&str, &str)]) -> FieldSchema {
    FieldSchema {
        name: name.into(),
        data_type: data_type as i32,
        type_params: params.iter().map(|(k, v)| kv(k, v)).collect(),
        ..Default::default()
    }
}

/// `id` Int64 key, `tag` Int64, `title` VarChar(32) defaulting to `none`,
/// `v` FloatVector(2); dynamic fields on.
fn docs_schema() -> Vec<u8> {
    let mut id = field("id", DataType::Int64, &[]);
    id.is_primary_key = true;
    let mut title = field("title", DataType::VarChar, &[("max_length", "32")]);
    title.default_value = Some(ValueField {
        data: Some(value_field::Data::StringData("none".into())),
    });
    title.nullable = true;
    CollectionSchema {
        name: "docs".into(),
        fields: vec![
            id,
            field("tag", DataType::Int64, &[]),
            title,
            field("v", DataType::FloatVector, &[("dim", "2")]),
        ],
        enable_dynamic_field: true,
        ..Default::default()
    }
    .encode_to_vec()
}

fn longs(name: &str, values: Vec<i64>) -> FieldData {
    FieldData {
        r#type: DataType::Int64 as i32,
        field_name: name.into(),
        field: Some(field_data::Field::Scalars(ScalarField {
            data: Some(scalar_field::Data::LongData(LongArray { data: values })),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn vectors(name: &str, values: Vec<f32>) -> FieldData {
    FieldData {
        r#type: DataType::FloatVector as i32,
        field_name: name.into(),
        field: Some(field_data::Field::Vectors(VectorField {
            dim: 2,
            data: Some(vector_field::Data::FloatVector(FloatArray { data: values })),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Rows `ids`, each with `tag = id % 3` and vector `[id, 0]`.
fn insert(collection: &str, partition: &str, ids: std::ops::Range<i64>) -> InsertRequest {
    let ids: Vec<i64> = ids.collect();
    InsertRequest {
        collection_name: collection.into(),
        partition_name: partition.into(),
        num_rows: ids.len() as u32,
        fields_data: vec![
            longs("tag", ids.iter().map(|i| i % 3).collect()),
            vectors("v", ids.iter().flat_map(|&i| [i as f32, 0.0]).collect()),
            longs("id", ids),
        ],
        ..Default::default()
    }
}

async fn row_count(door: &MilvusDoor, collection: &str) -> i64 {
    let reply = door
        .get_collection_statistics(Request::new(GetCollectionStatisticsRequest {
            collection_name: collection.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    ok(reply.status);
    reply.stats[0].value.parse().unwrap()
}

async fn partition_rows(door: &MilvusDoor, collection: &str, partition: &str) -> i64 {
    let reply = door
        .get_partition_statistics(Request::new(GetPartitionStatisticsRequest {
            collection_name: collection.into(),
            partition_name: partition.into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    ok(reply.status);
    reply.stats[0].value.parse().unwrap()
}

/// The ids a query selects, sorted.
async fn query_ids(door: &MilvusDoor, collection: &str, expr: &str) -> Vec<i64> {
    let reply = door
        .query(Request::new(QueryRequest {
            collection_name: collection.into(),
            expr: expr.into(),
            output_fields: vec!["id".into()],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    ok(reply.status);
    let Some(field_data::Field::Scalars(ScalarField {
        data: Some(scalar_field::Data::LongData(ids)),
        ..
    })) = reply
        .fields_data
        .into_iter()
        .find(|f| f.field_name == "id")
        .and_then(|f| f.field)
    else {
        panic!("no id column");
    };
    let mut ids = ids.data;
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn a_whole_milvus_workflow_sends_no_sql_text() {
    let dir = tempfile::tempdir().unwrap();
    let config = QuiverConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let instance = Arc::new(Instance::new(Engine::open(config).await.unwrap()));
    let handler = Arc::new(NoSqlText {
        inner: instance,
        sql: Mutex::new(Vec::new()),
    });
    let door = MilvusDoor::new(handler.clone());

    // Databases.
    ok_call!(door.create_database(CreateDatabaseRequest {
        db_name: "scratch".into(),
        ..Default::default()
    }));
    let listed = door
        .list_databases(Request::new(ListDatabasesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.db_names.contains(&"scratch".to_string()));
    ok_call!(door.drop_database(DropDatabaseRequest {
        db_name: "scratch".into(),
        ..Default::default()
    }));

    // A sharded collection with an index, loaded, with a partition.
    ok_call!(door.create_collection(CreateCollectionRequest {
        collection_name: "docs".into(),
        schema: docs_schema(),
        shards_num: 2,
        ..Default::default()
    }));
    let described = door
        .describe_collection(Request::new(DescribeCollectionRequest {
            collection_name: "docs".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    ok(described.status);
    assert_eq!(described.shards_num, 2);
    let schema = described.schema.unwrap();
    assert!(schema.enable_dynamic_field);
    let title = schema.fields.iter().find(|f| f.name == "title").unwrap();
    assert_eq!(
        title.default_value.as_ref().and_then(|v| v.data.clone()),
        Some(value_field::Data::StringData("none".into()))
    );
    ok_call!(door.create_index(CreateIndexRequest {
        collection_name: "docs".into(),
        field_name: "v".into(),
        index_name: "v_idx".into(),
        extra_params: vec![
            kv("index_type", "HNSW"),
            kv("metric_type", "L2"),
            kv("params", r#"{"M": 8, "efConstruction": 32}"#),
        ],
        ..Default::default()
    }));
    ok_call!(door.load_collection(LoadCollectionRequest {
        collection_name: "docs".into(),
        ..Default::default()
    }));
    ok_call!(door.create_partition(CreatePartitionRequest {
        collection_name: "docs".into(),
        partition_name: "p1".into(),
        ..Default::default()
    }));

    // Rows, in the default partition and in p1.
    for request in [insert("docs", "", 0..12), insert("docs", "p1", 100..105)] {
        let reply = door
            .insert(Request::new(request))
            .await
            .unwrap()
            .into_inner();
        ok(reply.status);
    }
    ok(door
        .flush(Request::new(FlushRequest {
            collection_names: vec!["docs".into()],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .status);
    assert_eq!(row_count(&door, "docs").await, 17);
    assert_eq!(partition_rows(&door, "docs", "p1").await, 5);
    assert_eq!(partition_rows(&door, "docs", "_default").await, 12);
    assert_eq!(
        query_ids(&door, "docs", "tag == 2 and id < 100").await,
        [2, 5, 8, 11]
    );
    // The default value filled the title no insert sent.
    assert_eq!(
        query_ids(&door, "docs", "title == \"none\"").await.len(),
        17
    );

    // A filtered search: the nearest of [3, 0] among tag 0.
    let group = PlaceholderGroup {
        placeholders: vec![PlaceholderValue {
            tag: "$0".into(),
            r#type: PlaceholderType::FloatVector as i32,
            values: vec![[3.0f32, 0.0].iter().flat_map(|x| x.to_le_bytes()).collect()],
            ..Default::default()
        }],
    };
    let reply = door
        .search(Request::new(SearchRequest {
            collection_name: "docs".into(),
            dsl: "tag == 0".into(),
            search_params: vec![
                kv("anns_field", "v"),
                kv("topk", "2"),
                kv("metric_type", "L2"),
                kv("params", r#"{"ef": 16}"#),
            ],
            search_input: Some(search_request::SearchInput::PlaceholderGroup(
                group.encode_to_vec(),
            )),
            nq: 1,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    ok(reply.status);
    let Some(milvus::proto::schema::i_ds::IdField::IntId(ids)) =
        reply.results.unwrap().ids.unwrap().id_field
    else {
        panic!("no int ids");
    };
    assert_eq!(ids.data, [3, 0]);

    // A filter over the expression limits is refused with Milvus' 1100
    // naming the limit: by a search (lowered when its plan is built) as by
    // a query (lowered at once).
    let too_deep = format!("id{} > 0", " + 1".repeat(200));
    let reply = door
        .search(Request::new(SearchRequest {
            collection_name: "docs".into(),
            dsl: too_deep.clone(),
            search_params: vec![
                kv("anns_field", "v"),
                kv("topk", "2"),
                kv("metric_type", "L2"),
            ],
            search_input: Some(search_request::SearchInput::PlaceholderGroup(
                group.encode_to_vec(),
            )),
            nq: 1,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let queried = door
        .query(Request::new(QueryRequest {
            collection_name: "docs".into(),
            expr: too_deep,
            output_fields: vec!["id".into()],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    for status in [reply.status.unwrap(), queried.status.unwrap()] {
        assert_eq!(status.code, 1100, "{}", status.reason);
        assert!(
            status.reason.contains("quiver limit max_expression_depth"),
            "{}",
            status.reason
        );
    }

    // A delete by filter, then a partition dropped with its rows.
    let deleted = door
        .delete(Request::new(DeleteRequest {
            collection_name: "docs".into(),
            expr: "tag == 1 and id < 100".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    ok(deleted.status);
    assert_eq!(deleted.delete_cnt, 4);
    assert_eq!(row_count(&door, "docs").await, 13);
    ok_call!(door.release_partitions(ReleasePartitionsRequest {
        collection_name: "docs".into(),
        partition_names: vec!["p1".into()],
        ..Default::default()
    }));
    ok_call!(door.drop_partition(DropPartitionRequest {
        collection_name: "docs".into(),
        partition_name: "p1".into(),
        ..Default::default()
    }));
    assert_eq!(row_count(&door, "docs").await, 8);

    // The index described and dropped; the collection renamed and dropped.
    let indexes = door
        .describe_index(Request::new(DescribeIndexRequest {
            collection_name: "docs".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    ok(indexes.status);
    assert_eq!(indexes.index_descriptions[0].index_name, "v_idx");
    ok_call!(door.release_collection(ReleaseCollectionRequest {
        collection_name: "docs".into(),
        ..Default::default()
    }));
    ok_call!(door.drop_index(DropIndexRequest {
        collection_name: "docs".into(),
        field_name: "v".into(),
        index_name: "v_idx".into(),
        ..Default::default()
    }));
    ok_call!(door.rename_collection(RenameCollectionRequest {
        old_name: "docs".into(),
        new_name: "docs2".into(),
        ..Default::default()
    }));
    let shown = door
        .show_collections(Request::new(ShowCollectionsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    ok(shown.status);
    assert_eq!(shown.collection_names, ["docs2"]);
    ok_call!(door.drop_collection(DropCollectionRequest {
        collection_name: "docs2".into(),
        ..Default::default()
    }));

    // A partition-key collection: its partitions' counts add up.
    let mut id = field("id", DataType::Int64, &[]);
    id.is_primary_key = true;
    let mut tag = field("tag", DataType::Int64, &[]);
    tag.is_partition_key = true;
    let keyed = CollectionSchema {
        name: "keyed".into(),
        fields: vec![id, tag, field("v", DataType::FloatVector, &[("dim", "2")])],
        ..Default::default()
    };
    ok_call!(door.create_collection(CreateCollectionRequest {
        collection_name: "keyed".into(),
        schema: keyed.encode_to_vec(),
        num_partitions: 4,
        ..Default::default()
    }));
    ok(door
        .insert(Request::new(insert("keyed", "", 0..30)))
        .await
        .unwrap()
        .into_inner()
        .status);
    let mut total = 0;
    for i in 0..4 {
        total += partition_rows(&door, "keyed", &format!("_default_{i}")).await;
    }
    assert_eq!(total, 30);

    let sql = handler.sql.lock().clone();
    assert!(sql.is_empty(), "the Milvus door sent SQL text: {sql:?}");
}
