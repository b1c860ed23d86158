//! The `MilvusService` trait implemented by [`MilvusDoor`]: one entry point
//! per RPC, each resolving the request's database and collection, calling
//! the door and wrapping the result or error in the RPC's reply.

use milvus::proto::common::{KeyValuePair, Status};
use milvus::proto::milvus::milvus_service_server::MilvusService;
use milvus::proto::milvus::*;
use quiver_sql::handler::WriteKind;
use tonic::{Request, Response};

use super::door::MilvusDoor;
use super::partitions;
use super::request::{database_name, request_database};
use super::status::{code, error_status, ok_status, status_of, DoorError, RpcResult};

/// The version reported to clients (the Milvus API level Quiver speaks).
const MILVUS_API_VERSION: &str = "v2.6.0";

macro_rules! reply {
    ($result:expr, $ok:expr, $err:expr) => {
        match $result {
            Ok(value) => Ok(Response::new($ok(value))),
            Err(e) => Ok(Response::new($err(error_status(&e)))),
        }
    };
}

#[tonic::async_trait]
impl MilvusService for MilvusDoor {
    async fn connect(&self, _r: Request<ConnectRequest>) -> RpcResult<ConnectResponse> {
        Ok(Response::new(ConnectResponse {
            status: Some(ok_status()),
            server_info: Some(milvus::proto::common::ServerInfo {
                build_tags: MILVUS_API_VERSION.into(),
                deploy_mode: "STANDALONE".into(),
                reserved: [("quiver".to_string(), env!("CARGO_PKG_VERSION").to_string())].into(),
                ..Default::default()
            }),
            identifier: 1,
        }))
    }

    async fn get_version(&self, _r: Request<GetVersionRequest>) -> RpcResult<GetVersionResponse> {
        Ok(Response::new(GetVersionResponse {
            status: Some(ok_status()),
            version: MILVUS_API_VERSION.into(),
        }))
    }

    async fn check_health(
        &self,
        _r: Request<CheckHealthRequest>,
    ) -> RpcResult<CheckHealthResponse> {
        Ok(Response::new(CheckHealthResponse {
            status: Some(ok_status()),
            is_healthy: true,
            ..Default::default()
        }))
    }

    async fn alloc_timestamp(
        &self,
        _r: Request<AllocTimestampRequest>,
    ) -> RpcResult<AllocTimestampResponse> {
        let result = self.timestamp().await;
        reply!(
            result,
            |timestamp| AllocTimestampResponse {
                status: Some(ok_status()),
                timestamp,
            },
            |s| AllocTimestampResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn list_databases(
        &self,
        _r: Request<ListDatabasesRequest>,
    ) -> RpcResult<ListDatabasesResponse> {
        reply!(
            self.database_names().await,
            |db_names| ListDatabasesResponse {
                status: Some(ok_status()),
                db_names,
                ..Default::default()
            },
            |s| ListDatabasesResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn create_database(&self, r: Request<CreateDatabaseRequest>) -> RpcResult<Status> {
        let result = self.do_create_database(&r.get_ref().db_name).await;
        Ok(Response::new(status_of(result)))
    }

    async fn drop_database(&self, r: Request<DropDatabaseRequest>) -> RpcResult<Status> {
        let result = self.do_drop_database(&r.get_ref().db_name).await;
        Ok(Response::new(status_of(result)))
    }

    async fn create_collection(&self, r: Request<CreateCollectionRequest>) -> RpcResult<Status> {
        let database = request_database(&r, &r.get_ref().db_name);
        let result = self.do_create_collection(&database, r.get_ref()).await;
        Ok(Response::new(status_of(result)))
    }

    async fn drop_collection(&self, r: Request<DropCollectionRequest>) -> RpcResult<Status> {
        let database = request_database(&r, &r.get_ref().db_name);
        let result = self
            .do_drop_collection(&database, &r.get_ref().collection_name)
            .await;
        Ok(Response::new(status_of(result)))
    }

    async fn has_collection(&self, r: Request<HasCollectionRequest>) -> RpcResult<BoolResponse> {
        let (database, q) = self.resolved(r).await;
        let result = self.do_has_collection(&database, &q.collection_name).await;
        reply!(
            result,
            |value| BoolResponse {
                status: Some(ok_status()),
                value,
            },
            |s| BoolResponse {
                status: Some(s),
                value: false,
            }
        )
    }

    async fn describe_collection(
        &self,
        r: Request<DescribeCollectionRequest>,
    ) -> RpcResult<DescribeCollectionResponse> {
        let (database, q) = self.resolved(r).await;
        let name = q.collection_name;
        let result = async {
            let (schema, num_partitions) = self.described(&database, &name).await?;
            let shards = self.handler.table_shards(&database, &name).await?;
            Ok::<_, DoorError>(DescribeCollectionResponse {
                status: Some(ok_status()),
                schema: Some(schema),
                aliases: self.aliases_of(&database, &name).await,
                collection_name: name.clone(),
                db_name: database_name(&database),
                shards_num: shards as i32,
                num_partitions,
                consistency_level: self.consistency_level(&database, &name).await,
                ..Default::default()
            })
        }
        .await;
        reply!(result, |response| response, |s| {
            DescribeCollectionResponse {
                status: Some(s),
                ..Default::default()
            }
        })
    }

    #[allow(deprecated)] // in_memory_percentages: old clients still read it
    async fn show_collections(
        &self,
        r: Request<ShowCollectionsRequest>,
    ) -> RpcResult<ShowCollectionsResponse> {
        let database = request_database(&r, &r.get_ref().db_name);
        let result = self.collections(&database).await;
        reply!(
            result,
            |names: Vec<String>| ShowCollectionsResponse {
                status: Some(ok_status()),
                collection_ids: (1..=names.len() as i64).collect(),
                in_memory_percentages: vec![100; names.len()],
                query_service_available: vec![true; names.len()],
                collection_names: names,
                ..Default::default()
            },
            |s| ShowCollectionsResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn get_collection_statistics(
        &self,
        r: Request<GetCollectionStatisticsRequest>,
    ) -> RpcResult<GetCollectionStatisticsResponse> {
        let (database, q) = self.resolved(r).await;
        let name = q.collection_name.clone();
        let result = self.row_count(&database, &name).await;
        reply!(
            result,
            |rows: i64| GetCollectionStatisticsResponse {
                status: Some(ok_status()),
                stats: vec![KeyValuePair {
                    key: "row_count".into(),
                    value: rows.to_string()
                }],
            },
            |s| GetCollectionStatisticsResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn load_collection(&self, r: Request<LoadCollectionRequest>) -> RpcResult<Status> {
        // Sealed segments and their indexes are always in memory in
        // Quiver; loading makes the collection readable again.
        let (database, q) = self.resolved(r).await;
        let result = self.do_load(&database, &q.collection_name, &[]).await;
        Ok(Response::new(status_of(result)))
    }

    async fn release_collection(&self, r: Request<ReleaseCollectionRequest>) -> RpcResult<Status> {
        let (database, q) = self.resolved(r).await;
        let result = self.do_release(&database, &q.collection_name, &[]).await;
        Ok(Response::new(status_of(result)))
    }

    async fn get_load_state(
        &self,
        r: Request<GetLoadStateRequest>,
    ) -> RpcResult<GetLoadStateResponse> {
        use milvus::proto::common::LoadState;
        let (database, q) = self.resolved(r).await;
        // A missing collection is `NotExist`, as Milvus answers.
        let result = match self
            .load_state(&database, &q.collection_name, &q.partition_names)
            .await
        {
            Ok(true) => Ok(LoadState::Loaded),
            Ok(false) => Ok(LoadState::NotLoad),
            Err(e) if e.code == code::COLLECTION_NOT_FOUND => Ok(LoadState::NotExist),
            Err(e) => Err(e),
        };
        reply!(
            result,
            |state| GetLoadStateResponse {
                status: Some(ok_status()),
                state: state as i32,
            },
            |s| GetLoadStateResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn get_loading_progress(
        &self,
        r: Request<GetLoadingProgressRequest>,
    ) -> RpcResult<GetLoadingProgressResponse> {
        let (database, q) = self.resolved(r).await;
        let result = self.table(&database, &q.collection_name).await;
        reply!(
            result,
            |_| GetLoadingProgressResponse {
                status: Some(ok_status()),
                progress: 100,
                refresh_progress: 100,
            },
            |s| GetLoadingProgressResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn create_index(&self, r: Request<CreateIndexRequest>) -> RpcResult<Status> {
        let (database, q) = self.resolved(r).await;
        let result = self.do_create_index(&database, &q).await;
        Ok(Response::new(status_of(result)))
    }

    async fn describe_index(
        &self,
        r: Request<DescribeIndexRequest>,
    ) -> RpcResult<DescribeIndexResponse> {
        let (database, q) = self.resolved(r).await;
        let result = self
            .index_descriptions(&database, &q.collection_name, &q.field_name, &q.index_name)
            .await;
        reply!(
            result,
            |index_descriptions| DescribeIndexResponse {
                status: Some(ok_status()),
                index_descriptions
            },
            |s| DescribeIndexResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn get_index_state(
        &self,
        r: Request<GetIndexStateRequest>,
    ) -> RpcResult<GetIndexStateResponse> {
        let (database, q) = self.resolved(r).await;
        let result = self
            .index_descriptions(&database, &q.collection_name, &q.field_name, &q.index_name)
            .await;
        reply!(
            result,
            |d: Vec<IndexDescription>| GetIndexStateResponse {
                status: Some(ok_status()),
                state: d[0].state,
                ..Default::default()
            },
            |s| GetIndexStateResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn get_index_build_progress(
        &self,
        r: Request<GetIndexBuildProgressRequest>,
    ) -> RpcResult<GetIndexBuildProgressResponse> {
        let (database, q) = self.resolved(r).await;
        let result = self
            .index_descriptions(&database, &q.collection_name, &q.field_name, &q.index_name)
            .await;
        reply!(
            result,
            |d: Vec<IndexDescription>| GetIndexBuildProgressResponse {
                status: Some(ok_status()),
                indexed_rows: d[0].indexed_rows,
                total_rows: d[0].total_rows,
            },
            |s| GetIndexBuildProgressResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn drop_index(&self, r: Request<DropIndexRequest>) -> RpcResult<Status> {
        let (database, q) = self.resolved(r).await;
        let result = self.do_drop_index(&database, &q).await;
        Ok(Response::new(status_of(result)))
    }

    async fn insert(&self, r: Request<InsertRequest>) -> RpcResult<MutationResult> {
        let (database, q) = self.resolved(r).await;
        let result = self
            .do_insert(
                &database,
                &q.collection_name,
                &q.fields_data,
                q.num_rows,
                &q.partition_name,
                WriteKind::Insert,
            )
            .await;
        reply!(result, |m| m, |s| MutationResult {
            status: Some(s),
            ..Default::default()
        })
    }

    async fn upsert(&self, r: Request<UpsertRequest>) -> RpcResult<MutationResult> {
        let (database, q) = self.resolved(r).await;
        let kind = if q.partial_update {
            WriteKind::Merge {
                columns: Vec::new(),
            }
        } else {
            WriteKind::Upsert
        };
        let result = if q.field_ops.is_empty() {
            self.do_insert(
                &database,
                &q.collection_name,
                &q.fields_data,
                q.num_rows,
                &q.partition_name,
                kind,
            )
            .await
        } else {
            Err(DoorError::unsupported(
                "upsert with field operations (field_ops)".to_string(),
            ))
        };
        reply!(result, |m| m, |s| MutationResult {
            status: Some(s),
            ..Default::default()
        })
    }

    async fn delete(&self, r: Request<DeleteRequest>) -> RpcResult<MutationResult> {
        let (database, q) = self.resolved(r).await;
        let result = self.do_delete(&database, &q).await;
        reply!(result, |m| m, |s| MutationResult {
            status: Some(s),
            ..Default::default()
        })
    }

    async fn flush(&self, r: Request<FlushRequest>) -> RpcResult<FlushResponse> {
        let database = request_database(&r, &r.get_ref().db_name);
        let result = self
            .do_flush(&database, &r.get_ref().collection_names)
            .await;
        reply!(
            result,
            |ts| FlushResponse {
                status: Some(ok_status()),
                db_name: database_name(&database),
                coll_flush_ts: r
                    .get_ref()
                    .collection_names
                    .iter()
                    .map(|c| (c.clone(), ts))
                    .collect(),
                ..Default::default()
            },
            |s| FlushResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn get_flush_state(
        &self,
        r: Request<GetFlushStateRequest>,
    ) -> RpcResult<GetFlushStateResponse> {
        let (database, q) = self.resolved(r).await;
        let result = self
            .flushed(&database, &q.collection_name, q.flush_ts)
            .await;
        reply!(
            result,
            |flushed| GetFlushStateResponse {
                status: Some(ok_status()),
                flushed,
            },
            |s| GetFlushStateResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn rename_collection(&self, r: Request<RenameCollectionRequest>) -> RpcResult<Status> {
        let database = request_database(&r, &r.get_ref().db_name);
        let result = self.do_rename_collection(&database, r.get_ref()).await;
        Ok(Response::new(status_of(result)))
    }

    async fn alter_collection(&self, r: Request<AlterCollectionRequest>) -> RpcResult<Status> {
        let (database, q) = self.resolved(r).await;
        let result = self.do_alter_collection(&database, &q).await;
        Ok(Response::new(status_of(result)))
    }

    async fn describe_database(
        &self,
        r: Request<DescribeDatabaseRequest>,
    ) -> RpcResult<DescribeDatabaseResponse> {
        let result = self.existing_database(&r.get_ref().db_name).await;
        reply!(
            result,
            |db: String| DescribeDatabaseResponse {
                status: Some(ok_status()),
                db_name: database_name(&db),
                ..Default::default()
            },
            |s| DescribeDatabaseResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn alter_database(&self, r: Request<AlterDatabaseRequest>) -> RpcResult<Status> {
        let result = self.do_alter_database(r.get_ref()).await;
        Ok(Response::new(status_of(result)))
    }

    async fn create_partition(&self, r: Request<CreatePartitionRequest>) -> RpcResult<Status> {
        let (database, q) = self.resolved(r).await;
        let result = self
            .do_create_partition(&database, &q.collection_name, &q.partition_name)
            .await;
        Ok(Response::new(status_of(result)))
    }

    async fn drop_partition(&self, r: Request<DropPartitionRequest>) -> RpcResult<Status> {
        let (database, q) = self.resolved(r).await;
        let result = self
            .do_drop_partition(&database, &q.collection_name, &q.partition_name)
            .await;
        Ok(Response::new(status_of(result)))
    }

    async fn has_partition(&self, r: Request<HasPartitionRequest>) -> RpcResult<BoolResponse> {
        let (database, q) = self.resolved(r).await;
        let result = self
            .partitions(&database, &q.collection_name)
            .await
            .map(|p| p.exists(&q.partition_name));
        reply!(
            result,
            |value| BoolResponse {
                status: Some(ok_status()),
                value,
            },
            |s| BoolResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn show_partitions(
        &self,
        r: Request<ShowPartitionsRequest>,
    ) -> RpcResult<ShowPartitionsResponse> {
        let (database, q) = self.resolved(r).await;
        let result = self
            .shown_partitions(&database, &q.collection_name, &q.partition_names)
            .await;
        #[allow(deprecated)] // in_memory_percentages: old clients still read it
        let ok = |(p, shown): (partitions::Partitions, Vec<partitions::Partition>)| {
            ShowPartitionsResponse {
                status: Some(ok_status()),
                in_memory_percentages: shown
                    .iter()
                    .map(|x| if p.is_loaded(&x.name) { 100 } else { 0 })
                    .collect(),
                partition_i_ds: shown.iter().map(|x| x.id).collect(),
                created_timestamps: shown.iter().map(|x| x.created).collect(),
                // A hybrid timestamp's physical part is milliseconds.
                created_utc_timestamps: shown.iter().map(|x| x.created >> 18).collect(),
                partition_names: shown.into_iter().map(|x| x.name).collect(),
            }
        };
        reply!(result, ok, |s| ShowPartitionsResponse {
            status: Some(s),
            ..Default::default()
        })
    }

    async fn load_partitions(&self, r: Request<LoadPartitionsRequest>) -> RpcResult<Status> {
        let (database, q) = self.resolved(r).await;
        let result = if q.partition_names.is_empty() {
            Err(DoorError::invalid("partition names are empty".to_string()))
        } else {
            self.do_load(&database, &q.collection_name, &q.partition_names)
                .await
        };
        Ok(Response::new(status_of(result)))
    }

    async fn release_partitions(&self, r: Request<ReleasePartitionsRequest>) -> RpcResult<Status> {
        let (database, q) = self.resolved(r).await;
        let result = if q.partition_names.is_empty() {
            Err(DoorError::invalid("partition names are empty".to_string()))
        } else {
            self.do_release(&database, &q.collection_name, &q.partition_names)
                .await
        };
        Ok(Response::new(status_of(result)))
    }

    async fn get_partition_statistics(
        &self,
        r: Request<GetPartitionStatisticsRequest>,
    ) -> RpcResult<GetPartitionStatisticsResponse> {
        let (database, q) = self.resolved(r).await;
        let result = self
            .partition_rows(&database, &q.collection_name, &q.partition_name)
            .await;
        reply!(
            result,
            |rows: i64| GetPartitionStatisticsResponse {
                status: Some(ok_status()),
                stats: vec![KeyValuePair {
                    key: "row_count".into(),
                    value: rows.to_string()
                }],
            },
            |s| GetPartitionStatisticsResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn manual_compaction(
        &self,
        r: Request<ManualCompactionRequest>,
    ) -> RpcResult<ManualCompactionResponse> {
        let (database, q) = self.resolved(r).await;
        let result = self.do_compact(&database, &q.collection_name).await;
        reply!(
            result,
            |(id, merged): (i64, usize)| ManualCompactionResponse {
                status: Some(ok_status()),
                compaction_id: id,
                compaction_plan_count: i32::from(merged > 0),
            },
            |s| ManualCompactionResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn get_compaction_state(
        &self,
        r: Request<GetCompactionStateRequest>,
    ) -> RpcResult<GetCompactionStateResponse> {
        let result = self.compaction_state(r.get_ref().compaction_id).await;
        reply!(
            result,
            |_| GetCompactionStateResponse {
                status: Some(ok_status()),
                state: milvus::proto::common::CompactionState::Completed as i32,
                completed_plan_no: 1,
                ..Default::default()
            },
            |s| GetCompactionStateResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn create_alias(&self, r: Request<CreateAliasRequest>) -> RpcResult<Status> {
        let database = request_database(&r, &r.get_ref().db_name);
        let result = self.do_create_alias(&database, r.get_ref()).await;
        Ok(Response::new(status_of(result)))
    }

    async fn drop_alias(&self, r: Request<DropAliasRequest>) -> RpcResult<Status> {
        let database = request_database(&r, &r.get_ref().db_name);
        let result = self.do_drop_alias(&database, &r.get_ref().alias).await;
        Ok(Response::new(status_of(result)))
    }

    async fn alter_alias(&self, r: Request<AlterAliasRequest>) -> RpcResult<Status> {
        let database = request_database(&r, &r.get_ref().db_name);
        let result = self.do_alter_alias(&database, r.get_ref()).await;
        Ok(Response::new(status_of(result)))
    }

    async fn describe_alias(
        &self,
        r: Request<DescribeAliasRequest>,
    ) -> RpcResult<DescribeAliasResponse> {
        let database = request_database(&r, &r.get_ref().db_name);
        let alias = r.get_ref().alias.clone();
        let result = self.do_describe_alias(&database, &alias).await;
        reply!(
            result,
            |collection| DescribeAliasResponse {
                status: Some(ok_status()),
                db_name: database_name(&database),
                alias: alias.clone(),
                collection,
            },
            |s| DescribeAliasResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn list_aliases(&self, r: Request<ListAliasesRequest>) -> RpcResult<ListAliasesResponse> {
        let database = request_database(&r, &r.get_ref().db_name);
        let collection = r.get_ref().collection_name.clone();
        let result = self.do_list_aliases(&database, &collection).await;
        reply!(
            result,
            |aliases| ListAliasesResponse {
                status: Some(ok_status()),
                db_name: database_name(&database),
                collection_name: collection.clone(),
                aliases,
            },
            |s| ListAliasesResponse {
                status: Some(s),
                ..Default::default()
            }
        )
    }

    async fn search(&self, r: Request<SearchRequest>) -> RpcResult<SearchResults> {
        let (database, q) = self.resolved(r).await;
        let result = self.do_search(&database, &q).await;
        reply!(result, |s| s, |s| SearchResults {
            status: Some(s),
            ..Default::default()
        })
    }

    async fn hybrid_search(&self, r: Request<HybridSearchRequest>) -> RpcResult<SearchResults> {
        let (database, q) = self.resolved(r).await;
        let result = self.do_hybrid_search(&database, &q).await;
        reply!(result, |s| s, |s| SearchResults {
            status: Some(s),
            ..Default::default()
        })
    }

    async fn query(&self, r: Request<QueryRequest>) -> RpcResult<QueryResults> {
        let (database, q) = self.resolved(r).await;
        let result = self.do_query(&database, &q).await;
        reply!(result, |q| q, |s| QueryResults {
            status: Some(s),
            ..Default::default()
        })
    }
}
