//! The door over a stand-in [`QueryHandler`]: a handler that records what
//! it is asked and answers from a fixed catalog (one table, `items`, in
//! schema `public`) shows that the Milvus door needs nothing but that seam —
//! the protocol-neutral trait alone (no command tags, transactions or COPY,
//! which are the Postgres door's `PgHandler`), and sessions of its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::DataType;
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::execution::memory_pool::{MemoryPool, UnboundedMemoryPool};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use milvus::proto::milvus::milvus_service_server::MilvusService;
use milvus::proto::milvus::*;
use milvus::proto::schema::{
    field_data, scalar_field, vector_field, DataType as MilvusType, FieldData, FloatArray,
    LongArray, ScalarField, VectorField,
};
use parking_lot::Mutex;
use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};
use quiver_sql::error::{Result, SqlError};
use quiver_sql::handler::{
    IndexInfo, Output, Prepared, QueryHandler, SearchKnobs, Session, SessionInfo, SessionState,
    WriteKind, Written,
};
use tonic::Request;

use super::MilvusDoor;

/// A handler with one table, `public.items` (`id` bigint key, `vec`
/// vector(2), five rows), that logs every call and runs typed plans over
/// its rows; it refuses SQL text, which the Milvus door never sends.
struct Recorder {
    calls: Mutex<Vec<String>>,
}

impl Recorder {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::new(Vec::new()),
        })
    }

    fn log(&self, call: impl Into<String>) {
        self.calls.lock().push(call.into());
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().clone()
    }

    fn items() -> TableSchema {
        TableSchema {
            columns: vec![
                ColumnDef {
                    nullable: false,
                    ..ColumnDef::new("id", ColumnType::Int64)
                },
                ColumnDef {
                    nullable: false,
                    ..ColumnDef::new("vec", ColumnType::Vector { dim: 2 })
                },
            ],
            primary_key: 0,
        }
    }

    fn lookup(&self, database: &str, table: &str) -> Result<TableSchema> {
        if (database, table) == ("public", "items") {
            Ok(Self::items())
        } else {
            Err(SqlError::table_not_found(database, table))
        }
    }
}

/// The stand-in's session: the user it was opened for, no settings.
struct StandInSession {
    user: String,
}

impl SessionState for StandInSession {
    fn user(&self) -> &str {
        &self.user
    }

    fn memory_pool(&self) -> Arc<dyn MemoryPool> {
        Arc::new(UnboundedMemoryPool::default())
    }
}

#[async_trait]
impl QueryHandler for Recorder {
    async fn new_session(&self, info: SessionInfo) -> Result<Session> {
        self.log(format!("new_session {}", info.user));
        Ok(Session::new(StandInSession { user: info.user }))
    }

    fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        Ok(Parser::parse_sql(&PostgreSqlDialect {}, sql)?)
    }

    async fn prepare(&self, _session: &mut Session, _statement: &Statement) -> Result<Prepared> {
        Err(SqlError::unsupported("prepare"))
    }

    async fn execute(
        &self,
        _session: &mut Session,
        statement: &Statement,
        _params: Option<ParamValues>,
    ) -> Result<Output> {
        self.log(format!("execute {statement}"));
        Err(SqlError::unsupported("SQL text in the stand-in"))
    }

    async fn table_scan(
        &self,
        _session: &mut Session,
        database: &str,
        table: &str,
    ) -> Result<datafusion::logical_expr::LogicalPlanBuilder> {
        self.log(format!("table_scan {database}.{table}"));
        let schema = self.lookup(database, table)?.arrow_schema();
        let ids = Int64Array::from(vec![1, 2, 3, 4, 5]);
        let DataType::FixedSizeList(item, 2) = schema.field(1).data_type().clone() else {
            return Err(SqlError::Internal("items.vec is vector(2)".into()));
        };
        let vectors = arrow::array::FixedSizeListArray::try_new(
            item,
            2,
            Arc::new(arrow::array::Float32Array::from(vec![0.5; 10])),
            None,
        )?;
        let rows = RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(vectors)])?;
        let rows = datafusion::datasource::MemTable::try_new(schema, vec![vec![rows]])?;
        Ok(datafusion::logical_expr::LogicalPlanBuilder::scan(
            table,
            datafusion::datasource::provider_as_source(Arc::new(rows)),
            None,
        )?)
    }

    fn scalar_function(
        &self,
        _session: &mut Session,
        name: &str,
    ) -> Result<Arc<datafusion::logical_expr::ScalarUDF>> {
        Err(SqlError::unsupported(format!(
            "function {name} in the stand-in"
        )))
    }

    async fn execute_plan(
        &self,
        _session: &mut Session,
        plan: datafusion::logical_expr::LogicalPlan,
    ) -> Result<Output> {
        self.log("execute_plan");
        let frame = datafusion::prelude::SessionContext::new()
            .execute_logical_plan(plan)
            .await?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        Ok(Output::Rows {
            schema,
            stream: frame.execute_stream().await?,
        })
    }

    async fn execute_keyed_plan(
        &self,
        _session: &mut Session,
        _plan: quiver_sql::handler::KeyedPlan<'_>,
        _params: ParamValues,
    ) -> Result<Output> {
        Err(SqlError::unsupported("typed plans in the stand-in"))
    }

    async fn delete_where(
        &self,
        _session: &mut Session,
        _database: &str,
        _table: &str,
        _filter: datafusion::logical_expr::Expr,
    ) -> Result<usize> {
        Err(SqlError::unsupported("typed deletes in the stand-in"))
    }

    async fn change_catalog(
        &self,
        _session: &mut Session,
        change: quiver_sql::handler::ddl::CatalogChange,
    ) -> Result<bool> {
        self.log(format!("change_catalog {change:?}"));
        Ok(true)
    }

    async fn databases(&self) -> Result<Vec<String>> {
        Ok(vec!["public".into()])
    }

    async fn table_schema(&self, database: &str, table: &str) -> Result<TableSchema> {
        self.log(format!("table_schema {database}.{table}"));
        self.lookup(database, table)
    }

    fn set_search_knobs(&self, _session: &mut Session, knobs: SearchKnobs) -> Result<()> {
        self.log(format!(
            "search_knobs ef={:?} probes={:?}",
            knobs.ef_search, knobs.probes
        ));
        Ok(())
    }

    async fn table_shards(&self, database: &str, table: &str) -> Result<u32> {
        // The stand-in's tables each have one shard.
        self.lookup(database, table).map(|_| 1)
    }

    async fn indexes(&self, _database: &str, _table: &str) -> Result<Vec<IndexInfo>> {
        Ok(Vec::new())
    }

    async fn tables(&self, database: &str) -> Result<Vec<String>> {
        Ok(if database == "public" {
            vec!["items".into()]
        } else {
            Vec::new()
        })
    }

    async fn table_options(&self, database: &str, table: &str) -> Result<BTreeMap<String, String>> {
        self.lookup(database, table).map(|_| BTreeMap::new())
    }

    async fn set_table_options(
        &self,
        database: &str,
        table: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<()> {
        self.log(format!("set_table_options {database}.{table} {changes:?}"));
        Ok(())
    }

    async fn allocate_timestamp(&self) -> Result<u64> {
        Ok(1000 << 18)
    }

    async fn read_timestamp(&self) -> Result<u64> {
        Ok(1000 << 18)
    }

    async fn flush(&self, database: &str, table: &str) -> Result<()> {
        self.log(format!("flush {database}.{table}"));
        self.lookup(database, table).map(|_| ())
    }

    async fn compact(&self, database: &str, table: &str) -> Result<usize> {
        self.log(format!("compact {database}.{table}"));
        self.lookup(database, table).map(|_| 0)
    }

    async fn write(
        &self,
        _session: &mut Session,
        database: &str,
        table: &str,
        rows: RecordBatch,
        sent: &[String],
        kind: WriteKind,
    ) -> Result<Written> {
        self.log(format!(
            "write {database}.{table} {} rows {sent:?} {kind:?}",
            rows.num_rows()
        ));
        Ok(Written { rows, ts: 77 })
    }
}

fn door() -> (Arc<Recorder>, MilvusDoor) {
    let recorder = Recorder::new();
    (recorder.clone(), MilvusDoor::new(recorder))
}

#[tokio::test]
async fn describe_reads_the_catalog_and_runs_no_sql() {
    let (recorder, door) = door();
    let reply = door
        .describe_collection(Request::new(DescribeCollectionRequest {
            collection_name: "items".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status.unwrap().code, 0);
    assert_eq!(reply.db_name, "default");
    let fields: Vec<_> = reply
        .schema
        .unwrap()
        .fields
        .into_iter()
        .map(|f| (f.name, f.is_primary_key))
        .collect();
    assert_eq!(
        fields,
        [("id".to_string(), true), ("vec".to_string(), false)]
    );
    let calls = recorder.calls();
    assert!(
        calls.contains(&"table_schema public.items".to_string()),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.starts_with("execute")), "{calls:?}");
}

#[tokio::test]
async fn a_missing_collection_is_answered_in_milvus_words() {
    let (_, door) = door();
    let reply = door
        .describe_collection(Request::new(DescribeCollectionRequest {
            collection_name: "nope".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let status = reply.status.unwrap();
    assert_eq!(status.code, 100);
    assert_eq!(
        status.reason,
        "collection not found[database=default][collection=nope]"
    );
    // Compaction looks the collection up first, like every other RPC.
    let reply = door
        .manual_compaction(Request::new(ManualCompactionRequest {
            collection_name: "nope".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status.unwrap().code, 100);
    // A database that does not exist is the database's error.
    let reply = door
        .describe_collection(Request::new(DescribeCollectionRequest {
            db_name: "elsewhere".into(),
            collection_name: "items".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let status = reply.status.unwrap();
    assert_eq!(
        (status.code, status.reason.as_str()),
        (800, "database not found[database=elsewhere]")
    );
}

#[tokio::test]
async fn drop_is_a_catalog_change_and_statistics_a_typed_count() {
    let (recorder, door) = door();
    let status = door
        .drop_collection(Request::new(DropCollectionRequest {
            collection_name: "items".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.code, 0, "{status:?}");
    let reply = door
        .get_collection_statistics(Request::new(GetCollectionStatisticsRequest {
            collection_name: "items".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.stats[0].key, "row_count");
    assert_eq!(reply.stats[0].value, "5");
    let calls = recorder.calls();
    let asked: Vec<&str> = calls
        .iter()
        .map(String::as_str)
        .filter(|c| {
            c.starts_with("change_catalog")
                || c.starts_with("table_scan")
                || c.starts_with("execute")
        })
        .collect();
    assert_eq!(
        asked,
        [
            "change_catalog DropTable(DropTable { table: TableRef { database: \"public\", name: \"items\" }, if_exists: true, in_block: None })",
            "table_scan public.items",
            "execute_plan",
        ]
    );
    // One session, pooled between the two RPCs.
    let sessions = calls
        .iter()
        .filter(|c| c.starts_with("new_session"))
        .count();
    assert_eq!(sessions, 1);
}

#[tokio::test]
async fn an_insert_is_one_write_of_the_rows() {
    let (recorder, door) = door();
    let fields = vec![
        FieldData {
            r#type: MilvusType::Int64 as i32,
            field_name: "id".into(),
            field: Some(field_data::Field::Scalars(ScalarField {
                data: Some(scalar_field::Data::LongData(LongArray { data: vec![1, 2] })),
                ..Default::default()
            })),
            ..Default::default()
        },
        FieldData {
            r#type: MilvusType::FloatVector as i32,
            field_name: "vec".into(),
            field: Some(field_data::Field::Vectors(VectorField {
                dim: 2,
                data: Some(vector_field::Data::FloatVector(FloatArray {
                    data: vec![0.0, 1.0, 1.0, 0.0],
                })),
                ..Default::default()
            })),
            ..Default::default()
        },
    ];
    let reply = door
        .insert(Request::new(InsertRequest {
            collection_name: "items".into(),
            fields_data: fields,
            num_rows: 2,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status.unwrap().code, 0);
    assert_eq!(reply.insert_cnt, 2);
    assert_eq!(reply.timestamp, 77);
    assert_eq!(
        reply.i_ds.unwrap().id_field,
        Some(milvus::proto::schema::i_ds::IdField::IntId(LongArray {
            data: vec![1, 2]
        }))
    );
    // Milvus' insert keeps the newest row of a key: an upsert.
    let writes: Vec<String> = recorder
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("write"))
        .collect();
    assert_eq!(
        writes,
        ["write public.items 2 rows [\"id\", \"vec\"] Upsert"]
    );
    let flushed = door
        .flush(Request::new(FlushRequest {
            collection_names: vec!["items".into()],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(flushed.status.unwrap().code, 0);
    assert!(recorder.calls().contains(&"flush public.items".to_string()));
}
