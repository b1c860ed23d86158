//! Collection aliases: a second name of a collection, usable wherever a
//! request names a collection (search, query, writes, describe, load,
//! indexes, partitions). An alias is kept, durably, as an option of the
//! table it points at ([`ALIASES_OPTION`]), so it follows the table through
//! a rename and is gone with it.

use milvus::proto::milvus::*;
use tonic::Request;

use super::door::MilvusDoor;
use super::request::{database_name, request_database};
use super::status::DoorError;

/// The table option listing a table's aliases, comma-separated.
const ALIASES_OPTION: &str = "milvus.aliases";

/// Milvus' codes: alias not found, alias and collection name conflict,
/// alias already pointing at another collection.
const ALIAS_NOT_FOUND: i32 = 1600;
const ALIAS_NAME_CONFLICT: i32 = 1601;
const ALIAS_EXISTS: i32 = 1602;

/// A request naming one collection (perhaps by an alias) in a database.
pub(super) trait NamesCollection {
    fn db_name(&self) -> &str;
    fn collection_name_mut(&mut self) -> &mut String;
}

macro_rules! names_collection {
    ($($request:ty),* $(,)?) => {
        $(impl NamesCollection for $request {
            fn db_name(&self) -> &str {
                &self.db_name
            }
            fn collection_name_mut(&mut self) -> &mut String {
                &mut self.collection_name
            }
        })*
    };
}

names_collection!(
    DescribeCollectionRequest,
    HasCollectionRequest,
    GetCollectionStatisticsRequest,
    LoadCollectionRequest,
    ReleaseCollectionRequest,
    GetLoadStateRequest,
    GetLoadingProgressRequest,
    InsertRequest,
    UpsertRequest,
    DeleteRequest,
    SearchRequest,
    HybridSearchRequest,
    QueryRequest,
    CreateIndexRequest,
    DescribeIndexRequest,
    GetIndexStateRequest,
    GetIndexBuildProgressRequest,
    DropIndexRequest,
    ShowPartitionsRequest,
    HasPartitionRequest,
    GetPartitionStatisticsRequest,
    LoadPartitionsRequest,
    ReleasePartitionsRequest,
    CreatePartitionRequest,
    DropPartitionRequest,
    GetFlushStateRequest,
    AlterCollectionRequest,
    ManualCompactionRequest,
);

fn aliases_in(options: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    options
        .get(ALIASES_OPTION)
        .map(|list| {
            list.split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn alias_not_found(database: &str, alias: &str) -> DoorError {
    DoorError::new(
        ALIAS_NOT_FOUND,
        format!(
            "alias not found[database={}][alias={alias}]",
            database_name(database)
        ),
    )
}

impl MilvusDoor {
    /// The request's database and the request, its collection name
    /// resolved when it is an alias.
    pub(super) async fn resolved<R: NamesCollection>(&self, r: Request<R>) -> (String, R) {
        let database = request_database(&r, r.get_ref().db_name());
        let mut request = r.into_inner();
        let name = request.collection_name_mut();
        if self.handler.table_schema(&database, name).await.is_err() {
            if let Some(target) = self.alias_target(&database, name).await {
                *name = target;
            }
        }
        (database, request)
    }

    /// The collection an alias names, if one does.
    pub(super) async fn alias_target(&self, database: &str, alias: &str) -> Option<String> {
        for table in self.handler.tables(database).await.unwrap_or_default() {
            let options = self.handler.table_options(database, &table).await;
            if options.is_ok_and(|options| aliases_in(&options).iter().any(|a| a == alias)) {
                return Some(table);
            }
        }
        None
    }

    /// The aliases of one collection.
    pub(super) async fn aliases_of(&self, database: &str, collection: &str) -> Vec<String> {
        self.handler
            .table_options(database, collection)
            .await
            .map(|options| aliases_in(&options))
            .unwrap_or_default()
    }

    async fn write_aliases(
        &self,
        database: &str,
        collection: &str,
        aliases: &[String],
    ) -> Result<(), DoorError> {
        let value = (!aliases.is_empty()).then(|| aliases.join(","));
        self.handler
            .set_table_options(database, collection, &[(ALIASES_OPTION.to_string(), value)])
            .await
            .map_err(DoorError::from)
    }

    /// `CreateAlias`: the collection must exist and the alias be free (or
    /// already its own).
    pub(super) async fn do_create_alias(
        &self,
        database: &str,
        r: &CreateAliasRequest,
    ) -> Result<(), DoorError> {
        let _changing = self.alias_changes.lock().await;
        super::validate::alias_name(&r.alias)?;
        self.table(database, &r.collection_name).await?;
        if self.handler.table_schema(database, &r.alias).await.is_ok() {
            return Err(DoorError::new(
                ALIAS_NAME_CONFLICT,
                format!(
                    "alias and collection name conflict[database={}][alias={}]",
                    database_name(database),
                    r.alias
                ),
            ));
        }
        match self.alias_target(database, &r.alias).await {
            Some(target) if target == r.collection_name => Ok(()),
            Some(target) => Err(DoorError::new(
                ALIAS_EXISTS,
                format!(
                    "alias exists and already aliased to another collection, alias: {}, collection: {}, other collection: {target}",
                    r.alias, r.collection_name
                ),
            )),
            None => {
                let mut aliases = self.aliases_of(database, &r.collection_name).await;
                aliases.push(r.alias.clone());
                self.write_aliases(database, &r.collection_name, &aliases)
                    .await
            }
        }
    }

    /// `DropAlias`: dropping an alias that does not exist succeeds, as in Milvus.
    pub(super) async fn do_drop_alias(&self, database: &str, alias: &str) -> Result<(), DoorError> {
        let _changing = self.alias_changes.lock().await;
        match self.alias_target(database, alias).await {
            Some(target) => self.remove_alias(database, &target, alias).await,
            None => Ok(()),
        }
    }

    /// `AlterAlias`: points an existing alias at another collection.
    pub(super) async fn do_alter_alias(
        &self,
        database: &str,
        r: &AlterAliasRequest,
    ) -> Result<(), DoorError> {
        let _changing = self.alias_changes.lock().await;
        self.table(database, &r.collection_name).await?;
        let target = self
            .alias_target(database, &r.alias)
            .await
            .ok_or_else(|| alias_not_found(database, &r.alias))?;
        if target == r.collection_name {
            return Ok(());
        }
        let mut moved = self.aliases_of(database, &r.collection_name).await;
        moved.push(r.alias.clone());
        self.write_aliases(database, &r.collection_name, &moved)
            .await?;
        self.remove_alias(database, &target, &r.alias).await
    }

    async fn remove_alias(
        &self,
        database: &str,
        collection: &str,
        alias: &str,
    ) -> Result<(), DoorError> {
        let kept: Vec<String> = self
            .aliases_of(database, collection)
            .await
            .into_iter()
            .filter(|a| a != alias)
            .collect();
        self.write_aliases(database, collection, &kept).await
    }

    /// `DescribeAlias`: the collection an alias names.
    pub(super) async fn do_describe_alias(
        &self,
        database: &str,
        alias: &str,
    ) -> Result<String, DoorError> {
        self.alias_target(database, alias)
            .await
            .ok_or_else(|| alias_not_found(database, alias))
    }

    /// `ListAliases`: of one collection, or of the whole database.
    pub(super) async fn do_list_aliases(
        &self,
        database: &str,
        collection: &str,
    ) -> Result<Vec<String>, DoorError> {
        if !collection.is_empty() {
            self.table(database, collection).await?;
            return Ok(self.aliases_of(database, collection).await);
        }
        let mut aliases = Vec::new();
        for table in self.handler.tables(database).await? {
            aliases.extend(self.aliases_of(database, &table).await);
        }
        Ok(aliases)
    }

    /// A collection may be dropped only by its name, and only once it has
    /// no aliases (Milvus 2.4 and later).
    pub(super) async fn check_droppable(
        &self,
        database: &str,
        name: &str,
    ) -> Result<(), DoorError> {
        if self.handler.table_schema(database, name).await.is_err() {
            if self.alias_target(database, name).await.is_some() {
                return Err(DoorError::invalid(format!(
                    "cannot drop the collection via alias = {name}"
                )));
            }
            return Ok(());
        }
        let aliases = self.aliases_of(database, name).await;
        if !aliases.is_empty() {
            return Err(DoorError::invalid(format!(
                "unable to drop the collection [{name}] because it has associated aliases [{}], please remove all aliases before dropping the collection",
                aliases.join(", ")
            )));
        }
        Ok(())
    }

    /// A new collection's name must not be an alias.
    pub(super) async fn check_not_alias(
        &self,
        database: &str,
        name: &str,
    ) -> Result<(), DoorError> {
        match self.alias_target(database, name).await {
            Some(target) => Err(DoorError::new(
                ALIAS_NAME_CONFLICT,
                format!("collection name [{name}] conflicts with an existing alias of collection {target}"),
            )),
            None => Ok(()),
        }
    }
}
