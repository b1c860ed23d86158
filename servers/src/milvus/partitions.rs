//! Partitions, the partition key and load state.
//!
//! A collection always has Milvus' `_default` partition. Creating another
//! one adds a hidden text column, [`PARTITION_COLUMN`], to the table: a row
//! of partition `p` holds `'p'` there, a row of `_default` holds NULL (so a
//! table written before it had partitions, or by SQL, is all `_default`).
//! The partition list, the partition key and which partitions are loaded
//! are durable options of the table ([`PARTITIONS_OPTION`],
//! [`PARTITION_KEY_OPTION`], [`LOADED_OPTION`]). Reads and deletes naming
//! partitions, and reads of a partly released collection, become a
//! predicate on the hidden column, so they take the same filtered-search
//! path as any filter.
//!
//! With a partition key (`is_partition_key` on an Int64 or VarChar field)
//! the collection has `num_partitions` partitions `_default_0` … that the
//! key's hash chooses, as in Milvus; requests may not name them.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::logical_expr::lit;
use milvus::proto::schema::CollectionSchema;
use serde::{Deserialize, Serialize};

use quiver_common::schema::{ColumnDef, ColumnType};
use quiver_sql::handler::ddl::{AddColumn, CatalogChange, TableRef};

use super::door::MilvusDoor;
use super::hidden_columns::{column, PARTITION_COLUMN};
use super::status::DoorError;
use super::validate;

/// The hidden column naming a row's partition (NULL: `_default`).
/// Milvus' default partition.
pub(super) const DEFAULT_PARTITION: &str = "_default";
/// The table option listing the created partitions (JSON).
const PARTITIONS_OPTION: &str = "milvus.partitions";
/// The table option naming the partition key field and partition count (JSON).
const PARTITION_KEY_OPTION: &str = "milvus.partition_key";
/// The table option listing the loaded partitions (JSON); absent: all.
const LOADED_OPTION: &str = "milvus.loaded";
/// Milvus' `rootCoord.maxPartitionNum`.
const MAX_PARTITIONS: usize = 1024;
/// Partitions of a partition-key collection when the request names none.
const DEFAULT_KEY_PARTITIONS: i64 = 16;

/// Milvus' codes: collection not loaded, partition not found, partition
/// not loaded.
const COLLECTION_NOT_LOADED: i32 = 101;
const PARTITION_NOT_FOUND: i32 = 200;
const PARTITION_NOT_LOADED: i32 = 201;

/// A created partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Partition {
    pub name: String,
    pub id: i64,
    /// Hybrid timestamp of its creation.
    pub created: u64,
}

/// A collection's partition key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PartitionKey {
    pub field: String,
    pub partitions: u32,
}

/// A collection's partitions and which of them are loaded.
#[derive(Debug, Clone)]
pub(super) struct Partitions {
    collection: String,
    /// Every partition, `_default` first, in creation order.
    pub all: Vec<Partition>,
    pub key: Option<PartitionKey>,
    /// The loaded partitions; `None`: all of them.
    loaded: Option<BTreeSet<String>>,
}

fn partition_not_found(name: &str) -> DoorError {
    DoorError::new(
        PARTITION_NOT_FOUND,
        format!("partition not found[partition={name}]"),
    )
}

fn key_mode_error() -> DoorError {
    DoorError::invalid(
        "not support manually specifying the partition names if partition key mode is used"
            .to_string(),
    )
}

fn decode<T: for<'a> Deserialize<'a>>(text: Option<&String>) -> Result<Option<T>, DoorError> {
    text.map(|t| serde_json::from_str(t))
        .transpose()
        .map_err(|e| DoorError::internal(format!("corrupt partition options: {e}")))
}

fn encode<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("partition options serialize")
}

impl PartitionKey {
    /// The table option recording this partition key.
    pub fn option(&self) -> (String, Option<String>) {
        (PARTITION_KEY_OPTION.to_string(), Some(encode(self)))
    }
}

impl Partitions {
    /// A collection's partitions from its table options.
    pub fn from_options(
        collection: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Self, DoorError> {
        let key: Option<PartitionKey> = decode(options.get(PARTITION_KEY_OPTION))?;
        let created: Vec<Partition> = decode(options.get(PARTITIONS_OPTION))?.unwrap_or_default();
        let loaded: Option<BTreeSet<String>> = decode(options.get(LOADED_OPTION))?;
        let all = match &key {
            Some(key) => (0..key.partitions)
                .map(|i| Partition {
                    name: format!("{DEFAULT_PARTITION}_{i}"),
                    id: 1 + i as i64,
                    created: 0,
                })
                .collect(),
            None => std::iter::once(Partition {
                name: DEFAULT_PARTITION.to_string(),
                id: 1,
                created: 0,
            })
            .chain(created)
            .collect(),
        };
        Ok(Partitions {
            collection: collection.to_string(),
            all,
            key,
            loaded,
        })
    }

    /// The partition names, in creation order.
    pub fn names(&self) -> Vec<String> {
        self.all.iter().map(|p| p.name.clone()).collect()
    }

    pub fn exists(&self, name: &str) -> bool {
        self.all.iter().any(|p| p.name == name)
    }

    pub fn is_loaded(&self, name: &str) -> bool {
        self.loaded.as_ref().is_none_or(|set| set.contains(name))
    }

    /// Whether any partition is loaded (Milvus' collection load state).
    pub fn collection_loaded(&self) -> bool {
        self.loaded.as_ref().is_none_or(|set| !set.is_empty())
    }

    /// Partitions are not created or dropped by hand in partition-key mode.
    fn refuse_in_key_mode(&self, action: &str) -> Result<(), DoorError> {
        match &self.key {
            Some(key) => Err(DoorError::invalid(format!(
                "disable {action} partition if partition key mode is used (partition key field {})",
                key.field
            ))),
            None => Ok(()),
        }
    }

    fn check_named(&self, names: &[String]) -> Result<(), DoorError> {
        if self.key.is_some() && !names.is_empty() {
            return Err(key_mode_error());
        }
        match names.iter().find(|n| !self.exists(n)) {
            Some(missing) => Err(partition_not_found(missing)),
            None => Ok(()),
        }
    }

    /// The predicate of a read or delete over the partitions `names`
    /// (`None`: every row is in scope).
    fn predicate_expr_for<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> Option<datafusion::logical_expr::Expr> {
        let chosen: BTreeSet<&str> = names.into_iter().map(String::as_str).collect();
        if self.key.is_some() || self.all.iter().all(|p| chosen.contains(p.name.as_str())) {
            return None;
        }
        let column = column(PARTITION_COLUMN);
        let named: Vec<datafusion::logical_expr::Expr> = chosen
            .iter()
            .filter(|n| **n != DEFAULT_PARTITION)
            .map(|n| lit(n.to_string()))
            .collect();
        let in_named = (!named.is_empty()).then(|| column.clone().in_list(named, false));
        Some(match (chosen.contains(DEFAULT_PARTITION), in_named) {
            (true, Some(in_named)) => column.is_null().or(in_named),
            (true, None) => column.is_null(),
            (false, Some(in_named)) => in_named,
            (false, None) => lit(false),
        })
    }

    /// The predicate of a search or query over `names` (none: the loaded
    /// partitions); named and read partitions must exist and be loaded.
    pub fn read_scope(
        &self,
        names: &[String],
    ) -> Result<Option<datafusion::logical_expr::Expr>, DoorError> {
        self.check_named(names)?;
        if !self.collection_loaded() {
            return Err(DoorError::new(
                COLLECTION_NOT_LOADED,
                format!("collection not loaded[collection={}]", self.collection),
            ));
        }
        if let Some(unloaded) = names.iter().find(|n| !self.is_loaded(n)) {
            return Err(DoorError::new(
                PARTITION_NOT_LOADED,
                format!("partition not loaded[partition={unloaded}]"),
            ));
        }
        Ok(match (&self.loaded, names.is_empty()) {
            (_, false) => self.predicate_expr_for(names),
            (Some(loaded), true) => self.predicate_expr_for(loaded),
            (None, true) => None,
        })
    }

    /// The predicate of a delete in one partition (empty: every partition).
    pub fn write_scope(
        &self,
        name: &str,
    ) -> Result<Option<datafusion::logical_expr::Expr>, DoorError> {
        if name.is_empty() {
            return Ok(None);
        }
        let names = [name.to_string()];
        self.check_named(&names)?;
        Ok(self.predicate_expr_for(&names))
    }

    /// The value an insert into `name` stores in [`PARTITION_COLUMN`]
    /// (`None`: `_default`, stored as NULL).
    pub fn insert_target(&self, name: &str) -> Result<Option<String>, DoorError> {
        if name.is_empty() {
            return Ok(None);
        }
        self.check_named(&[name.to_string()])?;
        Ok((name != DEFAULT_PARTITION).then(|| name.to_string()))
    }
}

/// The partition key of a new collection's schema (validated as Milvus
/// does), with its partition count.
pub(super) fn partition_key_of(
    schema: &CollectionSchema,
    num_partitions: i64,
) -> Result<Option<PartitionKey>, DoorError> {
    use milvus::proto::schema::DataType as T;
    let keys: Vec<_> = schema
        .fields
        .iter()
        .filter(|f| f.is_partition_key)
        .collect();
    let field = match keys.as_slice() {
        [] if num_partitions > 0 => {
            return Err(DoorError::invalid(
                "num_partitions should only be specified with partition key field enabled"
                    .to_string(),
            ))
        }
        [] => return Ok(None),
        [one] => *one,
        _ => {
            return Err(DoorError::invalid(
                "there are more than one partition key field in the collection schema".to_string(),
            ))
        }
    };
    if field.is_primary_key {
        return Err(DoorError::invalid(format!(
            "the partition key field must not be primary field (field {})",
            field.name
        )));
    }
    if field.nullable {
        return Err(DoorError::invalid(format!(
            "partition key field not support nullable (field {})",
            field.name
        )));
    }
    if field.data_type != T::Int64 as i32 && field.data_type != T::VarChar as i32 {
        return Err(DoorError::invalid(format!(
            "the data type of partition key should be Int64 or VarChar (field {})",
            field.name
        )));
    }
    let partitions = if num_partitions == 0 {
        DEFAULT_KEY_PARTITIONS
    } else {
        num_partitions
    };
    if partitions < 1 || partitions as usize > MAX_PARTITIONS {
        return Err(DoorError::invalid(format!(
            "partition number ({partitions}) exceeds max configuration ({MAX_PARTITIONS})"
        )));
    }
    Ok(Some(PartitionKey {
        field: field.name.clone(),
        partitions: partitions as u32,
    }))
}

/// The partition (index into `_default_0` …) Milvus hashes an Int64 key to:
/// murmur3 (x86, 32 bit, seed 0) of its little-endian bytes, top bit cleared.
fn int_key_partition(key: i64, partitions: u32) -> u32 {
    let hash = murmur3::murmur3_32(&mut std::io::Cursor::new(key.to_le_bytes()), 0)
        .expect("hashing a byte array cannot fail");
    (hash & 0x7fff_ffff) % partitions
}

/// The partition a VarChar key is hashed to: CRC-32 (IEEE) of its first
/// 100 bytes.
fn text_key_partition(key: &str, partitions: u32) -> u32 {
    let bytes = key.as_bytes();
    crc32fast::hash(&bytes[..bytes.len().min(100)]) % partitions
}

impl MilvusDoor {
    /// A collection's partitions (the collection must exist).
    pub(super) async fn partitions(
        &self,
        database: &str,
        collection: &str,
    ) -> Result<Partitions, DoorError> {
        self.table(database, collection).await?;
        let options = self.handler.table_options(database, collection).await?;
        Partitions::from_options(collection, &options)
    }

    async fn write_loaded(
        &self,
        database: &str,
        collection: &str,
        partitions: &Partitions,
        loaded: BTreeSet<String>,
    ) -> Result<(), DoorError> {
        let all = partitions.all.iter().all(|p| loaded.contains(&p.name));
        let value = (!all).then(|| encode(&loaded));
        self.handler
            .set_table_options(database, collection, &[(LOADED_OPTION.to_string(), value)])
            .await
            .map_err(DoorError::from)
    }

    /// The partitions `names` (all when empty), with the collection's
    /// partitions.
    pub(super) async fn shown_partitions(
        &self,
        database: &str,
        collection: &str,
        names: &[String],
    ) -> Result<(Partitions, Vec<Partition>), DoorError> {
        let p = self.partitions(database, collection).await?;
        let shown = if names.is_empty() {
            p.all.clone()
        } else {
            names
                .iter()
                .map(|name| {
                    p.all
                        .iter()
                        .find(|x| &x.name == name)
                        .cloned()
                        .ok_or_else(|| partition_not_found(name))
                })
                .collect::<Result<_, _>>()?
        };
        Ok((p, shown))
    }

    /// `CreatePartition`: adds the hidden partition column on first use,
    /// then lists the partition. Creating an existing partition succeeds.
    pub(super) async fn do_create_partition(
        &self,
        database: &str,
        collection: &str,
        name: &str,
    ) -> Result<(), DoorError> {
        let _changing = self.partition_changes.write().await;
        let partitions = self.partitions(database, collection).await?;
        partitions.refuse_in_key_mode("create")?;
        validate::partition_name(name)?;
        if partitions.exists(name) {
            return Ok(());
        }
        if partitions.all.len() >= MAX_PARTITIONS {
            return Err(DoorError::invalid(format!(
                "partition number ({}) exceeds max configuration ({MAX_PARTITIONS}), collection: {collection}",
                partitions.all.len()
            )));
        }
        let table = self.table(database, collection).await?;
        if let Some(i) = table.column_index(PARTITION_COLUMN) {
            if !matches!(table.columns[i].column_type, ColumnType::Text { .. }) {
                return Err(DoorError::invalid(format!(
                    "collection {collection} has a column {PARTITION_COLUMN} that is not text: it cannot have partitions"
                )));
            }
        }
        self.change_catalog(CatalogChange::AddColumn(AddColumn {
            table: TableRef::new(database, collection),
            column: ColumnDef::new(PARTITION_COLUMN, ColumnType::Text { max_len: None }),
            if_not_exists: true,
        }))
        .await?;
        let created = self.handler.allocate_timestamp().await?;
        let mut listed: Vec<Partition> = partitions.all[1..].to_vec();
        listed.push(Partition {
            name: name.to_string(),
            id: created as i64,
            created,
        });
        self.handler
            .set_table_options(
                database,
                collection,
                &[(PARTITIONS_OPTION.to_string(), Some(encode(&listed)))],
            )
            .await?;
        // A partition created while the whole collection is loaded is
        // loaded; in a partly loaded collection it is not.
        if let Some(loaded) = partitions.loaded {
            self.write_loaded(
                database,
                collection,
                &self.partitions(database, collection).await?,
                loaded,
            )
            .await?;
        }
        Ok(())
    }

    /// `DropPartition`: deletes the partition's rows, then unlists it.
    /// Dropping a partition that does not exist succeeds, as in Milvus.
    pub(super) async fn do_drop_partition(
        &self,
        database: &str,
        collection: &str,
        name: &str,
    ) -> Result<(), DoorError> {
        let _changing = self.partition_changes.write().await;
        let partitions = self.partitions(database, collection).await?;
        partitions.refuse_in_key_mode("drop")?;
        if name == DEFAULT_PARTITION {
            return Err(DoorError::invalid(
                "default partition cannot be deleted".to_string(),
            ));
        }
        if !partitions.exists(name) {
            return Ok(());
        }
        if partitions.collection_loaded() && partitions.is_loaded(name) {
            return Err(DoorError::invalid(
                "partition cannot be dropped, partition is loaded, please release it first"
                    .to_string(),
            ));
        }
        // Rows first: a crash in between leaves an empty listed partition,
        // never rows of an unlisted one.
        let mut session = self.session().await?;
        let deleted = self
            .handler
            .delete_where(
                &mut session.session,
                database,
                collection,
                column(PARTITION_COLUMN).eq(lit(name)),
            )
            .await;
        self.give_back(session);
        deleted?;
        let listed: Vec<Partition> = partitions.all[1..]
            .iter()
            .filter(|p| p.name != name)
            .cloned()
            .collect();
        let mut changes = vec![(PARTITIONS_OPTION.to_string(), Some(encode(&listed)))];
        if let Some(mut loaded) = partitions.loaded {
            loaded.remove(name);
            changes.push((LOADED_OPTION.to_string(), Some(encode(&loaded))));
        }
        self.handler
            .set_table_options(database, collection, &changes)
            .await
            .map_err(DoorError::from)
    }

    /// `LoadCollection` (`names` empty) or `LoadPartitions`.
    pub(super) async fn do_load(
        &self,
        database: &str,
        collection: &str,
        names: &[String],
    ) -> Result<(), DoorError> {
        let _changing = self.partition_changes.write().await;
        let partitions = self.partitions(database, collection).await?;
        partitions.check_named(names)?;
        let mut loaded = partitions.loaded.clone().unwrap_or_default();
        if names.is_empty() {
            loaded.extend(partitions.names());
        } else {
            loaded.extend(names.iter().cloned());
        }
        self.write_loaded(database, collection, &partitions, loaded)
            .await
    }

    /// `ReleaseCollection` (`names` empty) or `ReleasePartitions`.
    pub(super) async fn do_release(
        &self,
        database: &str,
        collection: &str,
        names: &[String],
    ) -> Result<(), DoorError> {
        let _changing = self.partition_changes.write().await;
        let partitions = self.partitions(database, collection).await?;
        partitions.check_named(names)?;
        let mut loaded = partitions
            .loaded
            .clone()
            .unwrap_or_else(|| partitions.names().into_iter().collect());
        if names.is_empty() {
            loaded.clear();
        } else {
            for name in names {
                loaded.remove(name);
            }
        }
        self.write_loaded(database, collection, &partitions, loaded)
            .await
    }

    /// `GetLoadState` of a collection (`partition` empty) or a partition.
    pub(super) async fn load_state(
        &self,
        database: &str,
        collection: &str,
        names: &[String],
    ) -> Result<bool, DoorError> {
        let partitions = self.partitions(database, collection).await?;
        if names.is_empty() {
            return Ok(partitions.collection_loaded());
        }
        if let Some(missing) = names.iter().find(|n| !partitions.exists(n)) {
            return Err(partition_not_found(missing));
        }
        Ok(names.iter().all(|n| partitions.is_loaded(n)))
    }

    /// The rows of one partition.
    pub(super) async fn partition_rows(
        &self,
        database: &str,
        collection: &str,
        name: &str,
    ) -> Result<i64, DoorError> {
        let partitions = self.partitions(database, collection).await?;
        if !partitions.exists(name) {
            return Err(partition_not_found(name));
        }
        let Some(key) = &partitions.key else {
            let filter = partitions.predicate_expr_for([&name.to_string()]);
            return self.count_rows(database, collection, filter).await;
        };
        // A partition-key partition holds the rows whose key hashes to it.
        let index: u32 = name
            .rsplit('_')
            .next()
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| partition_not_found(name))?;
        let batches = self
            .typed_plan(database, collection, |_, scan| {
                Ok(scan.project(vec![column(&key.field)])?.build()?)
            })
            .await?;
        let mut rows = 0;
        for batch in &batches {
            let keys = batch.column(0);
            let hits = match keys.data_type() {
                DataType::Int64 => keys
                    .as_primitive::<Int64Type>()
                    .iter()
                    .flatten()
                    .filter(|k| int_key_partition(*k, key.partitions) == index)
                    .count(),
                _ => {
                    let text = arrow::compute::cast(keys, &DataType::Utf8)
                        .map_err(|e| DoorError::internal(e.to_string()))?;
                    text.as_string::<i32>()
                        .iter()
                        .flatten()
                        .filter(|k| text_key_partition(k, key.partitions) == index)
                        .count()
                }
            };
            rows += hits as i64;
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partitions(names: &[&str], loaded: Option<&[&str]>) -> Partitions {
        Partitions {
            collection: "c".into(),
            all: names
                .iter()
                .enumerate()
                .map(|(i, n)| Partition {
                    name: n.to_string(),
                    id: i as i64,
                    created: 0,
                })
                .collect(),
            key: None,
            loaded: loaded.map(|l| l.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scopes_become_predicates_on_the_hidden_column() {
        let p = partitions(&["_default", "p1", "p2"], None);
        assert_eq!(p.read_scope(&[]).unwrap(), None);
        assert_eq!(
            p.read_scope(&names(&["p1"]))
                .unwrap()
                .map(|e| e.to_string())
                .as_deref(),
            Some("$partition IN ([Utf8(\"p1\")])")
        );
        assert_eq!(
            p.read_scope(&names(&["_default", "p2"]))
                .unwrap()
                .map(|e| e.to_string())
                .as_deref(),
            Some("$partition IS NULL OR $partition IN ([Utf8(\"p2\")])")
        );
        assert_eq!(
            p.read_scope(&names(&["_default"]))
                .unwrap()
                .map(|e| e.to_string())
                .as_deref(),
            Some("$partition IS NULL")
        );
        assert_eq!(
            p.read_scope(&names(&["p2", "p1", "_default"])).unwrap(),
            None
        );
        assert_eq!(p.read_scope(&names(&["nope"])).unwrap_err().code, 200);
        assert_eq!(p.write_scope("").unwrap(), None);
        assert_eq!(
            p.write_scope("p2")
                .unwrap()
                .map(|e| e.to_string())
                .as_deref(),
            Some("$partition IN ([Utf8(\"p2\")])")
        );
        assert_eq!(p.insert_target("_default").unwrap(), None);
        assert_eq!(p.insert_target("p1").unwrap().as_deref(), Some("p1"));
        assert_eq!(p.insert_target("nope").unwrap_err().code, 200);
    }

    #[test]
    fn released_partitions_are_not_read() {
        let p = partitions(&["_default", "p1", "p2"], Some(&["_default", "p1"]));
        assert_eq!(
            p.read_scope(&[]).unwrap().map(|e| e.to_string()).as_deref(),
            Some("$partition IS NULL OR $partition IN ([Utf8(\"p1\")])")
        );
        assert_eq!(p.read_scope(&names(&["p2"])).unwrap_err().code, 201);
        assert!(p.collection_loaded());
        let released = partitions(&["_default", "p1"], Some(&[]));
        assert!(!released.collection_loaded());
        assert_eq!(released.read_scope(&[]).unwrap_err().code, 101);
        // Writes do not need loaded partitions.
        assert_eq!(
            released
                .write_scope("p1")
                .unwrap()
                .map(|e| e.to_string())
                .as_deref(),
            Some("$partition IN ([Utf8(\"p1\")])")
        );
    }

    #[test]
    fn partition_key_mode_refuses_named_partitions() {
        let mut p = partitions(&["_default_0", "_default_1"], None);
        p.key = Some(PartitionKey {
            field: "k".into(),
            partitions: 2,
        });
        assert_eq!(p.read_scope(&[]).unwrap(), None);
        assert_eq!(
            p.read_scope(&names(&["_default_0"])).unwrap_err().code,
            1100
        );
        assert_eq!(p.insert_target("_default_1").unwrap_err().code, 1100);
        assert_eq!(p.insert_target("").unwrap(), None);
    }

    #[test]
    fn partition_keys_are_validated_as_milvus_does() {
        use milvus::proto::schema::{DataType as T, FieldSchema};
        let field = |name: &str, data_type: T, key: bool, primary: bool| FieldSchema {
            name: name.into(),
            data_type: data_type as i32,
            is_partition_key: key,
            is_primary_key: primary,
            ..Default::default()
        };
        let schema = |fields| CollectionSchema {
            fields,
            ..Default::default()
        };
        let id = field("id", T::Int64, false, true);
        let keyed = schema(vec![id.clone(), field("k", T::VarChar, true, false)]);
        let key = partition_key_of(&keyed, 0).unwrap().unwrap();
        assert_eq!((key.field.as_str(), key.partitions), ("k", 16));
        assert_eq!(
            partition_key_of(&keyed, 64).unwrap().unwrap().partitions,
            64
        );
        assert!(partition_key_of(&keyed, 1025).is_err());
        let plain = schema(vec![id.clone()]);
        assert!(partition_key_of(&plain, 0).unwrap().is_none());
        assert!(partition_key_of(&plain, 4).is_err());
        let two = schema(vec![
            id.clone(),
            field("a", T::Int64, true, false),
            field("b", T::Int64, true, false),
        ]);
        assert!(partition_key_of(&two, 0).is_err());
        let primary = schema(vec![field("id", T::Int64, true, true)]);
        assert!(partition_key_of(&primary, 0).is_err());
        let float = schema(vec![id, field("f", T::Float, true, false)]);
        assert!(partition_key_of(&float, 0).is_err());
    }

    #[test]
    fn keys_hash_as_milvus_does() {
        // Reference values from the Python mmh3 package.
        assert_eq!(
            murmur3::murmur3_32(&mut std::io::Cursor::new([0u8; 8]), 0).unwrap(),
            0x6385_2afc
        );
        for (key, partition) in [(0, 12), (1, 4), (7, 3), (-5, 14), (123_456_789, 1)] {
            assert_eq!(int_key_partition(key, 16), partition, "key {key}");
        }
        let spread: BTreeSet<u32> = (0..200).map(|k| int_key_partition(k, 16)).collect();
        assert_eq!(spread.len(), 16, "200 keys reach all 16 partitions");
        // Reference values from Python's zlib.crc32 (Go's crc32.ChecksumIEEE).
        assert_eq!(text_key_partition("key", u32::MAX), 2_324_736_937);
        assert_eq!(text_key_partition("tenant-3", 1000), 367_093_971 % 1000);
        // Only the first 100 bytes count.
        assert_eq!(
            text_key_partition(&"x".repeat(300), u32::MAX),
            1_577_999_759
        );
    }
}
