//! Collections and databases: create (from a Milvus schema), list, count,
//! describe, rename, alter, drop.

use milvus::proto::common::KeyValuePair;
use milvus::proto::milvus::{
    AlterCollectionRequest, AlterDatabaseRequest, CreateCollectionRequest, RenameCollectionRequest,
};
use milvus::proto::schema::CollectionSchema;
use prost::Message;
use quiver_sql::handler::ddl::{
    CatalogChange, CreateDatabase, CreateTable, DropDatabase, DropTable, RenameTable, TableRef,
};
use quiver_sql::handler::DEFAULT_DATABASE;

use super::convert;
use super::door::MilvusDoor;
use super::request::{database_name, schema_of};
use super::status::{code, DoorError};
use super::{arrays, consistency, partitions, validate};

impl MilvusDoor {
    /// The rows of a collection.
    pub(super) async fn row_count(&self, database: &str, name: &str) -> Result<i64, DoorError> {
        self.table(database, name).await?;
        self.count_rows(database, name, None).await
    }

    /// A database's collections, sorted by name.
    pub(super) async fn collections(&self, database: &str) -> Result<Vec<String>, DoorError> {
        Ok(self.handler.tables(database).await?)
    }

    pub(super) async fn do_create_collection(
        &self,
        database: &str,
        r: &CreateCollectionRequest,
    ) -> Result<(), DoorError> {
        validate::collection_name(&r.collection_name)?;
        self.check_not_alias(database, &r.collection_name).await?;
        let schema = milvus::proto::schema::CollectionSchema::decode(r.schema.as_slice())
            .map_err(|e| DoorError::invalid(format!("invalid collection schema: {e}")))?;
        if !schema.name.is_empty() && schema.name != r.collection_name {
            return Err(DoorError::invalid(format!(
                "collection name [{}] not matches schema name [{}]",
                r.collection_name, schema.name
            )));
        }
        if !schema
            .fields
            .iter()
            .any(|f| convert::is_vector_type(f.data_type))
        {
            return Err(DoorError::invalid(
                "schema does not contain vector field: invalid parameter".to_string(),
            ));
        }
        // Creating an existing collection with the same fields succeeds, as
        // in Milvus; with other fields it is an error.
        if let Ok(existing) = self.collection(database, &r.collection_name).await {
            let mut described = convert::collection_schema(&r.collection_name, &existing.table);
            existing.arrays.describe(&mut described);
            let existing = described;
            let same = existing.fields.len() == schema.fields.len()
                && existing.fields.iter().zip(&schema.fields).all(|(a, b)| {
                    let param = |f: &milvus::proto::schema::FieldSchema, key: &str| {
                        f.type_params
                            .iter()
                            .find(|kv| kv.key == key)
                            .map(|kv| kv.value.clone())
                    };
                    a.name == b.name
                        && a.data_type == b.data_type
                        && a.element_type == b.element_type
                        && a.is_primary_key == b.is_primary_key
                        && a.nullable == b.nullable
                        && param(a, "dim") == param(b, "dim")
                        && param(a, "max_length") == param(b, "max_length")
                        && param(a, "max_capacity") == param(b, "max_capacity")
                });
            return if same {
                Ok(())
            } else {
                Err(DoorError::invalid(format!(
                    "create duplicate collection with different parameters, collection: {}",
                    r.collection_name
                )))
            };
        }
        // Milvus: at most 16 shards; zero or less means the default, one.
        let max_shards = quiver_common::limits::MAX_SHARDS;
        if r.shards_num > max_shards as i32 {
            return Err(DoorError::new(
                code::UNEXPECTED,
                format!("maximum shards's number should be limited to {max_shards}"),
            ));
        }
        let shards = r.shards_num.max(1) as u32;
        let key = partitions::partition_key_of(&schema, r.num_partitions)?;
        let level = consistency::checked_level(r.consistency_level)?;
        let (stored, arrays) = arrays::ArrayFields::split(&schema)?;
        self.change_catalog(CatalogChange::CreateTable(CreateTable {
            table: TableRef::new(database, &r.collection_name),
            schema: convert::table_schema(&stored)?,
            shards,
            if_not_exists: false,
            in_block: None,
        }))
        .await?;
        // What the table's columns do not say, written at once.
        let options: Vec<_> = std::iter::once(consistency::level_option(level))
            .chain(arrays.option())
            .chain(key.as_ref().map(partitions::PartitionKey::option))
            .collect();
        self.handler
            .set_table_options(database, &r.collection_name, &options)
            .await
            .map_err(DoorError::from)
    }

    /// The databases a client sees: the catalog's schemas without the
    /// system ones, `public` as `default`.
    pub(super) async fn database_names(&self) -> Result<Vec<String>, DoorError> {
        Ok(self
            .handler
            .databases()
            .await?
            .iter()
            .filter(|d| {
                !matches!(
                    d.as_str(),
                    "information_schema" | "pg_catalog" | "quiver_catalog"
                )
            })
            .map(|d| database_name(d))
            .collect())
    }

    /// The schema of database `db_name`, which must exist.
    pub(super) async fn existing_database(&self, db_name: &str) -> Result<String, DoorError> {
        let database = schema_of(db_name);
        if self.handler.databases().await?.contains(&database) {
            Ok(database)
        } else {
            Err(DoorError::database_not_found(db_name))
        }
    }

    pub(super) async fn do_create_database(&self, db_name: &str) -> Result<(), DoorError> {
        let name = schema_of(db_name);
        validate::database_name(db_name)?;
        self.change_catalog(CatalogChange::CreateDatabase(CreateDatabase {
            name,
            if_not_exists: false,
        }))
        .await
        .map(|_| ())
    }

    pub(super) async fn do_drop_database(&self, db_name: &str) -> Result<(), DoorError> {
        let name = schema_of(db_name);
        validate::database_name(db_name)?;
        if name == DEFAULT_DATABASE {
            return Err(DoorError::invalid("can not drop default database".into()));
        }
        self.change_catalog(CatalogChange::DropDatabase(DropDatabase {
            name,
            if_exists: false,
            cascade: false,
        }))
        .await
        .map(|_| ())
    }

    pub(super) async fn do_alter_database(
        &self,
        r: &AlterDatabaseRequest,
    ) -> Result<(), DoorError> {
        self.existing_database(&r.db_name).await?;
        no_properties("database", &r.properties, &r.delete_keys)
    }

    pub(super) async fn do_drop_collection(
        &self,
        database: &str,
        name: &str,
    ) -> Result<(), DoorError> {
        validate::collection_name(name)?;
        self.check_droppable(database, name).await?;
        self.change_catalog(CatalogChange::DropTable(DropTable {
            table: TableRef::new(database, name),
            if_exists: true,
            in_block: None,
        }))
        .await
        .map(|_| ())
    }

    pub(super) async fn do_has_collection(
        &self,
        database: &str,
        name: &str,
    ) -> Result<bool, DoorError> {
        validate::collection_name(name)?;
        Ok(self.handler.table_schema(database, name).await.is_ok())
    }

    /// A collection's schema as Milvus describes it, and its partition count.
    pub(super) async fn described(
        &self,
        database: &str,
        name: &str,
    ) -> Result<(CollectionSchema, i64), DoorError> {
        let c = self.collection(database, name).await?;
        let mut schema = convert::collection_schema(name, &c.table);
        c.arrays.describe(&mut schema);
        if let Some(key) = &c.partitions.key {
            for field in &mut schema.fields {
                field.is_partition_key = field.name == key.field;
            }
        }
        Ok((schema, c.partitions.all.len() as i64))
    }

    pub(super) async fn do_rename_collection(
        &self,
        database: &str,
        q: &RenameCollectionRequest,
    ) -> Result<(), DoorError> {
        if !q.new_db_name.is_empty() && schema_of(&q.new_db_name) != database {
            return Err(DoorError::unsupported(
                "renaming a collection into another database".to_string(),
            ));
        }
        self.table(database, &q.old_name).await?;
        validate::collection_name(&q.new_name)?;
        self.check_not_alias(database, &q.new_name).await?;
        self.change_catalog(CatalogChange::RenameTable(RenameTable {
            table: TableRef::new(database, &q.old_name),
            new_name: q.new_name.clone(),
        }))
        .await
        .map(|_| ())
    }

    pub(super) async fn do_alter_collection(
        &self,
        database: &str,
        q: &AlterCollectionRequest,
    ) -> Result<(), DoorError> {
        self.table(database, &q.collection_name).await?;
        no_properties("collection", &q.properties, &q.delete_keys)
    }
}

/// Accepts a request that sets or deletes no properties (Quiver keeps
/// none for collections or databases yet).
pub(super) fn no_properties(
    what: &str,
    set: &[KeyValuePair],
    deleted: &[String],
) -> Result<(), DoorError> {
    let keys: Vec<&str> = set
        .iter()
        .map(|kv| kv.key.as_str())
        .chain(deleted.iter().map(String::as_str))
        .collect();
    if keys.is_empty() {
        Ok(())
    } else {
        Err(DoorError::unsupported(format!(
            "{what} properties ({})",
            keys.join(", ")
        )))
    }
}
