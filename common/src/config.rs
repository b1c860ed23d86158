//! The one configuration struct of the `quiver` binary.
//!
//! Precedence, lowest first: built-in defaults < TOML file (`--config`) <
//! environment (`QUIVER__SECTION__KEY=value`, e.g. `QUIVER__PG__ADDR`) <
//! command-line flags. Every field documents its default; `deploy/config/quiver.toml`
//! is an example that a test parses.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Top-level configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuiverConfig {
    /// Directory for the meta store, WAL and (local) object storage. Default `./quiver-data`.
    pub data_dir: PathBuf,
    /// Postgres wire protocol front end.
    pub pg: PgConfig,
    /// Milvus gRPC front end.
    pub milvus: MilvusConfig,
    /// Meta store (catalog and cluster metadata).
    pub meta: MetaConfig,
    /// Object storage (segment, index and delete-log files).
    pub objects: ObjectsConfig,
    /// Write-ahead log.
    pub wal: WalConfig,
    /// Growing/sealed segment lifecycle.
    pub segment: SegmentConfig,
    /// Memory limits of queries (per statement and for the whole server).
    pub memory: MemoryConfig,
    /// How the roles are wired.
    pub cluster: ClusterConfig,
}

/// How the roles are wired (`[cluster]`, `QUIVER__CLUSTER__*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Every in-process call across a role seam encodes its request and
    /// reply to bytes and decodes them, as a transport would (the
    /// coordinator API as its serde messages, writes and result rows as
    /// Arrow IPC, search and scan fragments as protobuf messages with
    /// DataFusion expressions in `datafusion-proto` form): the proof that
    /// a process boundary can go there. Slower; for tests. Default false.
    pub serialize_seams: bool,
}

/// Postgres front end settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgConfig {
    /// Listen address. Default `127.0.0.1:5433`.
    pub addr: String,
    /// Largest accepted protocol message in bytes. Default 256 MiB.
    pub max_message_bytes: usize,
    /// Directory of a Unix-domain socket to listen on as well, named as
    /// PostgreSQL names it (`DIR/.s.PGSQL.<port>`, so `psql -h DIR -p PORT`
    /// finds it). Local clients skip the TCP stack. Default empty: none.
    pub unix_socket_dir: String,
    /// Connections served at once, TCP and Unix socket together; the next
    /// one is refused with `53300 sorry, too many clients already`.
    /// Default 100 (PostgreSQL's `max_connections`).
    pub max_connections: usize,
    /// Bytes of large messages (over 64 KiB) all connections may buffer at
    /// once; a message waits for its share, so the server's receive memory
    /// stays bounded. At least `max_message_bytes`. Default 1 GiB.
    pub receive_budget_bytes: usize,
    /// Time a new connection has to finish its startup handshake. Default
    /// 60000 (PostgreSQL's `authentication_timeout`).
    pub startup_timeout_ms: u64,
    /// A message that stops arriving midway (no byte for this long) closes
    /// its connection; 0 turns this off. Default 60000.
    pub stalled_message_timeout_ms: u64,
    /// Default `statement_timeout` of every session (milliseconds; 0: off,
    /// PostgreSQL's default). Sessions change theirs with `SET`.
    pub statement_timeout_ms: u64,
    /// Default `idle_session_timeout` (milliseconds; 0: off, PostgreSQL's default).
    pub idle_session_timeout_ms: u64,
    /// Default `idle_in_transaction_session_timeout` (milliseconds; 0: off,
    /// PostgreSQL's default).
    pub idle_in_transaction_session_timeout_ms: u64,
}

/// Milvus front end settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MilvusConfig {
    /// Listen address. Default `127.0.0.1:19530` (Milvus' port); empty
    /// disables the Milvus door.
    pub addr: String,
    /// Largest accepted gRPC message in bytes. Default 64 MiB (Milvus' own
    /// default receive limit).
    pub max_message_bytes: usize,
    /// Client connections served at once; every request on a connection
    /// past the limit fails with gRPC `RESOURCE_EXHAUSTED`. Default 1024.
    pub max_connections: usize,
}

impl Default for MilvusConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:19530".into(),
            max_message_bytes: 64 * 1024 * 1024,
            max_connections: 1024,
        }
    }
}

/// Memory limits of query execution: every statement draws from its
/// session's query budget, and every query budget from the server's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Most memory one statement may hold while it runs (sorts, joins,
    /// aggregates, vector searches, scans, result encoding, buffered
    /// writes), in bytes. A session may lower its own limit with `SET
    /// quiver.query_memory_limit`, never raise it past this value.
    /// Default 1 GiB.
    pub query_limit_bytes: usize,
    /// Most memory all running statements together may hold, in bytes.
    /// Default 0: half of the machine's memory (the cgroup limit when one
    /// is set and lower), read at startup.
    pub server_limit_bytes: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            query_limit_bytes: DEFAULT_QUERY_MEMORY_LIMIT,
            server_limit_bytes: 0,
        }
    }
}

/// Default of `memory.query_limit_bytes`: 1 GiB.
pub const DEFAULT_QUERY_MEMORY_LIMIT: usize = 1 << 30;
/// Smallest accepted memory limit (PostgreSQL's smallest `work_mem`): 64 KiB.
pub const MIN_MEMORY_LIMIT: usize = 64 << 10;
/// The server budget when the machine's memory cannot be read: 4 GiB.
const FALLBACK_SERVER_MEMORY: usize = 4 << 30;

impl MemoryConfig {
    /// The server-wide budget in bytes: `server_limit_bytes`, or half of
    /// the memory available to the process when it is 0.
    pub fn server_limit(&self) -> usize {
        if self.server_limit_bytes > 0 {
            return self.server_limit_bytes;
        }
        available_memory()
            .map(|m| m / 2)
            .unwrap_or(FALLBACK_SERVER_MEMORY)
            .max(MIN_MEMORY_LIMIT)
    }

    /// The per-statement limit in bytes: `query_limit_bytes`, never more
    /// than the server budget.
    pub fn query_limit(&self) -> usize {
        self.query_limit_bytes.min(self.server_limit())
    }
}

/// Memory available to this process: physical memory (`/proc/meminfo`), or
/// the cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`) limit when lower.
pub fn available_memory() -> Option<usize> {
    let physical = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            kib.checked_mul(1024)
        });
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .find_map(|text| text.trim().parse::<usize>().ok());
    match (physical, cgroup) {
        (Some(p), Some(c)) => Some(p.min(c)),
        (p, c) => p.or(c),
    }
}

/// Meta store settings (`[meta]`, `QUIVER__META__*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaConfig {
    /// `local` (default: a redb file, `<data_dir>/meta.redb`) or `etcd`
    /// (the keys under `root` on the etcd of `etcd_endpoints`).
    pub backend: MetaBackend,
    /// etcd endpoints (`host:port`), a TOML array or, in the environment, a
    /// comma-separated list. Default `["127.0.0.1:2379"]`. Used by `etcd`.
    #[serde(deserialize_with = "string_or_list")]
    pub etcd_endpoints: Vec<String>,
    /// Prefix of every key Quiver writes to etcd, so clusters can share
    /// one. Default `/quiver/standalone`. Used by `etcd`.
    pub root: String,
    /// Deadline of connecting to etcd, at startup and on reconnecting
    /// (milliseconds). Default 5,000. Used by `etcd`.
    pub etcd_connect_timeout_ms: u64,
    /// Deadline of every etcd request (milliseconds): a request etcd does
    /// not answer in time fails with `etcd at <endpoints> is unavailable`.
    /// Default 10,000. Used by `etcd`.
    pub etcd_request_timeout_ms: u64,
}

impl Default for MetaConfig {
    fn default() -> Self {
        Self {
            backend: MetaBackend::Local,
            etcd_endpoints: vec!["127.0.0.1:2379".into()],
            root: "/quiver/standalone".into(),
            etcd_connect_timeout_ms: 5_000,
            etcd_request_timeout_ms: 10_000,
        }
    }
}

/// Meta store backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaBackend {
    Local,
    Etcd,
}

impl MetaBackend {
    /// The name as configured.
    pub fn name(self) -> &'static str {
        match self {
            MetaBackend::Local => "local",
            MetaBackend::Etcd => "etcd",
        }
    }
}

/// Object storage settings (`[objects]`, `QUIVER__OBJECTS__*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectsConfig {
    /// `local` (default: files under `<data_dir>/objects`) or `s3` (any
    /// S3-compatible store, MinIO included; credentials from the `AWS_*`
    /// environment variables).
    pub backend: ObjectsBackend,
    /// S3 endpoint URL (e.g. `http://127.0.0.1:9000` for MinIO). Default
    /// empty: AWS's endpoint for the region. Used by `s3`.
    pub s3_endpoint: String,
    /// S3 bucket. Default empty; required by `s3`.
    pub s3_bucket: String,
    /// S3 region. Default `us-east-1`. Used by `s3`.
    pub s3_region: String,
    /// Path inside the bucket every object lives under (Milvus'
    /// `rootPath`), so clusters can share a bucket: each removes objects
    /// no record of its own points at. Default empty: the bucket's root.
    /// Used by `s3`.
    pub s3_prefix: String,
    /// Deadline of one attempt of an S3 request (milliseconds). Default
    /// 30,000. Used by `s3`.
    pub s3_request_timeout_ms: u64,
    /// How long a failing S3 request keeps being retried (backoff on
    /// throttling, 5xx and dropped connections) before it fails
    /// (milliseconds); a request ends at the latest after this plus one
    /// attempt. Default 30,000. Used by `s3`.
    pub s3_retry_timeout_ms: u64,
}

impl Default for ObjectsConfig {
    fn default() -> Self {
        Self {
            backend: ObjectsBackend::Local,
            s3_endpoint: String::new(),
            s3_bucket: String::new(),
            s3_region: "us-east-1".into(),
            s3_prefix: String::new(),
            s3_request_timeout_ms: 30_000,
            s3_retry_timeout_ms: 30_000,
        }
    }
}

/// Object storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectsBackend {
    Local,
    S3,
}

impl ObjectsBackend {
    /// The name as configured.
    pub fn name(self) -> &'static str {
        match self {
            ObjectsBackend::Local => "local",
            ObjectsBackend::S3 => "s3",
        }
    }
}

/// WAL backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalBackend {
    Local,
    ObjectStore,
}

impl WalBackend {
    /// The name as configured.
    pub fn name(self) -> &'static str {
        match self {
            WalBackend::Local => "local",
            WalBackend::ObjectStore => "object_store",
        }
    }
}

/// A list given as a TOML array or as one comma-separated string (as an
/// environment variable gives it).
fn string_or_list<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StringOrList {
        One(String),
        Many(Vec<String>),
    }
    Ok(match StringOrList::deserialize(deserializer)? {
        StringOrList::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        StringOrList::Many(list) => list,
    })
}

/// WAL settings (`[wal]`, `QUIVER__WAL__*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalConfig {
    /// `local` (default: segment files under `<data_dir>/wal`) or
    /// `object_store` (one object per group commit in the object store of
    /// `[objects]`, under `wal/default`: no local file holds a write).
    pub backend: WalBackend,
    /// `always` (default: fsync before acknowledging) or `never` (benchmarks only).
    pub sync: WalSync,
    /// Roll to a new WAL file past this size. Default 64 MiB.
    pub segment_bytes: u64,
}

/// WAL sync policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WalSync {
    Always,
    Never,
}

/// Segment lifecycle settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentConfig {
    /// Seal a growing segment at this many rows. Default 100,000.
    pub seal_rows: usize,
    /// Seal a growing segment at this many bytes. Default 256 MiB.
    pub seal_bytes: usize,
    /// Compact when a table has at least this many small sealed segments. Default 4.
    pub compaction_min_segments: usize,
    /// A sealed segment smaller than this many rows counts as small. One
    /// compaction step merges small segments (smallest first) until the
    /// group holds this many rows, so a merged segment, whose indexes the
    /// step builds, has fewer than twice this many. Default 50,000.
    pub compaction_small_rows: usize,
    /// Background maintenance (flush, compaction, index builds) period in
    /// milliseconds; the first pass runs right after startup. Default 1000.
    pub maintenance_interval_ms: u64,
}

impl Default for QuiverConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./quiver-data"),
            pg: PgConfig::default(),
            milvus: MilvusConfig::default(),
            meta: MetaConfig::default(),
            objects: ObjectsConfig::default(),
            wal: WalConfig::default(),
            segment: SegmentConfig::default(),
            memory: MemoryConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:5433".into(),
            max_message_bytes: crate::limits::MAX_REQUEST_BYTES,
            unix_socket_dir: String::new(),
            max_connections: 100,
            receive_budget_bytes: 1024 * 1024 * 1024,
            startup_timeout_ms: 60_000,
            stalled_message_timeout_ms: 60_000,
            statement_timeout_ms: 0,
            idle_session_timeout_ms: 0,
            idle_in_transaction_session_timeout_ms: 0,
        }
    }
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            backend: WalBackend::Local,
            sync: WalSync::Always,
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            seal_rows: 100_000,
            seal_bytes: 256 * 1024 * 1024,
            compaction_min_segments: 4,
            compaction_small_rows: 50_000,
            maintenance_interval_ms: 1000,
        }
    }
}

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "QUIVER__";

impl QuiverConfig {
    /// Loads the configuration: defaults, then `file`, then `env` variables
    /// (`QUIVER__SECTION__KEY`), then `overrides` (dotted keys from CLI flags).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[(&str, toml::Value)],
    ) -> Result<Self, ConfigError> {
        let mut merged = toml::Value::try_from(QuiverConfig::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let file_value: toml::Value = toml::from_str(&text)
                .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
            merge(&mut merged, file_value);
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            set_path(&mut merged, &path, parse_scalar(&value))?;
        }
        for (key, value) in overrides {
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            set_path(&mut merged, &path, value.clone())?;
        }
        let config: QuiverConfig = merged
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.segment.seal_rows == 0 {
            return Err(ConfigError::Invalid("segment.seal_rows must be > 0".into()));
        }
        if self.pg.max_connections == 0 || self.milvus.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "pg.max_connections and milvus.max_connections must be > 0".into(),
            ));
        }
        if self.pg.receive_budget_bytes < self.pg.max_message_bytes {
            return Err(ConfigError::Invalid(format!(
                "pg.receive_budget_bytes ({}) must be at least pg.max_message_bytes ({})",
                self.pg.receive_budget_bytes, self.pg.max_message_bytes
            )));
        }
        if self.wal.segment_bytes < 4096 {
            return Err(ConfigError::Invalid(
                "wal.segment_bytes must be >= 4096".into(),
            ));
        }
        let deadlines = [
            (
                "meta.etcd_connect_timeout_ms",
                self.meta.etcd_connect_timeout_ms,
            ),
            (
                "meta.etcd_request_timeout_ms",
                self.meta.etcd_request_timeout_ms,
            ),
            (
                "objects.s3_request_timeout_ms",
                self.objects.s3_request_timeout_ms,
            ),
        ];
        if let Some((name, _)) = deadlines.iter().find(|(_, ms)| *ms == 0) {
            return Err(ConfigError::Invalid(format!("{name} must be > 0")));
        }
        if !self.meta.root.starts_with('/') {
            return Err(ConfigError::Invalid(format!(
                "meta.root must start with \"/\", not \"{}\"",
                self.meta.root
            )));
        }
        if self.memory.query_limit_bytes < MIN_MEMORY_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "memory.query_limit_bytes must be >= {MIN_MEMORY_LIMIT}"
            )));
        }
        if self.memory.server_limit_bytes != 0 && self.memory.server_limit_bytes < MIN_MEMORY_LIMIT
        {
            return Err(ConfigError::Invalid(format!(
                "memory.server_limit_bytes must be 0 (automatic) or >= {MIN_MEMORY_LIMIT}"
            )));
        }
        Ok(())
    }
}

fn parse_scalar(text: &str) -> toml::Value {
    if let Ok(i) = text.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(b) = text.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    toml::Value::String(text.to_string())
}

fn merge(base: &mut toml::Value, top: toml::Value) {
    match (base, top) {
        (toml::Value::Table(base), toml::Value::Table(top)) => {
            for (key, value) in top {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, top) => *base = top,
    }
}

fn set_path(
    root: &mut toml::Value,
    path: &[String],
    value: toml::Value,
) -> Result<(), ConfigError> {
    let mut node = root;
    for (i, part) in path.iter().enumerate() {
        let table = node.as_table_mut().ok_or_else(|| {
            ConfigError::Invalid(format!("{} is not a section", path[..i].join(".")))
        })?;
        if i + 1 == path.len() {
            table.insert(part.clone(), value);
            return Ok(());
        }
        node = table
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    Err(ConfigError::Invalid("empty configuration key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\n[pg]\naddr = \"0.0.0.0:1\"\n[segment]\nseal_rows = 7\n",
        )
        .unwrap();
        let env = vec![
            ("QUIVER__PG__ADDR".to_string(), "0.0.0.0:2".to_string()),
            ("QUIVER__SEGMENT__SEAL_ROWS".to_string(), "9".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let flags = [("segment.seal_rows", toml::Value::Integer(11))];
        let config = QuiverConfig::load(Some(&file), env, &flags).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.pg.addr, "0.0.0.0:2");
        assert_eq!(config.segment.seal_rows, 11);
        assert_eq!(config.wal.sync, WalSync::Always);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = QuiverConfig::load(None, vec![("QUIVER__PG__NOPE".into(), "1".into())], &[]);
        assert!(err.is_err());
    }

    #[test]
    fn example_config_parses() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/quiver.toml");
        let config = QuiverConfig::load(Some(&example), Vec::new(), &[]).unwrap();
        assert_eq!(config.pg.addr, "127.0.0.1:5433");
        // The example documents the defaults.
        assert_eq!(config, QuiverConfig::default());
    }

    #[test]
    fn real_services_example_parses() {
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/real-services.toml");
        let config = QuiverConfig::load(Some(&example), Vec::new(), &[]).unwrap();
        assert_eq!(config.meta.backend, MetaBackend::Etcd);
        assert_eq!(config.meta.etcd_endpoints, vec!["http://127.0.0.1:2379"]);
        assert_eq!(config.meta.root, "/quiver/prod");
        assert_eq!(config.objects.backend, ObjectsBackend::S3);
        assert_eq!(config.objects.s3_bucket, "quiver");
        assert_eq!(config.objects.s3_prefix, "prod");
        assert_eq!(config.wal.backend, WalBackend::ObjectStore);
        // Only the storage sections differ from the defaults.
        assert_eq!(
            QuiverConfig {
                meta: QuiverConfig::default().meta,
                objects: QuiverConfig::default().objects,
                wal: QuiverConfig::default().wal,
                ..config
            },
            QuiverConfig::default()
        );
    }

    #[test]
    fn storage_backends_from_file_and_env() {
        let config = QuiverConfig::default();
        assert_eq!(config.meta.backend, MetaBackend::Local);
        assert_eq!(config.objects.backend, ObjectsBackend::Local);
        assert_eq!(config.wal.backend, WalBackend::Local);
        assert_eq!(config.meta.root, "/quiver/standalone");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.toml");
        std::fs::write(
            &file,
            "[meta]\nbackend = \"etcd\"\netcd_endpoints = [\"a:2379\", \"b:2379\"]\n\
             [wal]\nbackend = \"object_store\"\nsegment_bytes = 8192\n",
        )
        .unwrap();
        let config = QuiverConfig::load(Some(&file), Vec::new(), &[]).unwrap();
        assert_eq!(config.meta.backend, MetaBackend::Etcd);
        assert_eq!(config.meta.etcd_endpoints, vec!["a:2379", "b:2379"]);
        assert_eq!(config.wal.backend, WalBackend::ObjectStore);
        assert_eq!(config.wal.segment_bytes, 8192, "other [wal] keys stay");

        let env = [
            ("QUIVER__META__BACKEND", "etcd"),
            (
                "QUIVER__META__ETCD_ENDPOINTS",
                "http://e1:2379, http://e2:2379",
            ),
            ("QUIVER__META__ROOT", "/quiver/prod"),
            ("QUIVER__OBJECTS__BACKEND", "s3"),
            ("QUIVER__OBJECTS__S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("QUIVER__OBJECTS__S3_BUCKET", "vectors"),
            ("QUIVER__OBJECTS__S3_REGION", "eu-west-1"),
            ("QUIVER__OBJECTS__S3_PREFIX", "prod/objects"),
            ("QUIVER__WAL__BACKEND", "object_store"),
            ("QUIVER__META__ETCD_REQUEST_TIMEOUT_MS", "1500"),
            ("QUIVER__META__ETCD_CONNECT_TIMEOUT_MS", "700"),
            ("QUIVER__OBJECTS__S3_REQUEST_TIMEOUT_MS", "2000"),
            ("QUIVER__OBJECTS__S3_RETRY_TIMEOUT_MS", "0"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let config = QuiverConfig::load(None, env, &[]).unwrap();
        assert_eq!(config.meta.backend, MetaBackend::Etcd);
        assert_eq!(
            config.meta.etcd_endpoints,
            vec!["http://e1:2379", "http://e2:2379"]
        );
        assert_eq!(config.meta.root, "/quiver/prod");
        assert_eq!(config.objects.backend, ObjectsBackend::S3);
        assert_eq!(config.objects.s3_endpoint, "http://127.0.0.1:9000");
        assert_eq!(config.objects.s3_bucket, "vectors");
        assert_eq!(config.objects.s3_region, "eu-west-1");
        assert_eq!(config.objects.s3_prefix, "prod/objects");
        assert_eq!(config.wal.backend, WalBackend::ObjectStore);
        assert_eq!(config.meta.etcd_request_timeout_ms, 1500);
        assert_eq!(config.meta.etcd_connect_timeout_ms, 700);
        assert_eq!(config.objects.s3_request_timeout_ms, 2000);
        assert_eq!(config.objects.s3_retry_timeout_ms, 0, "no retries");

        for (key, value) in [
            ("QUIVER__META__BACKEND", "zookeeper"),
            ("QUIVER__OBJECTS__BACKEND", "gcs"),
            ("QUIVER__WAL__BACKEND", "kafka"),
            ("QUIVER__META__ROOT", "relative"),
            ("QUIVER__META__ETCD_REQUEST_TIMEOUT_MS", "0"),
            ("QUIVER__META__ETCD_CONNECT_TIMEOUT_MS", "0"),
            ("QUIVER__OBJECTS__S3_REQUEST_TIMEOUT_MS", "0"),
        ] {
            let env = vec![(key.to_string(), value.to_string())];
            assert!(QuiverConfig::load(None, env, &[]).is_err(), "{key}={value}");
        }
    }

    #[test]
    fn memory_limits_default_and_validate() {
        let config = QuiverConfig::default();
        assert_eq!(config.memory.query_limit_bytes, 1 << 30);
        let server = config.memory.server_limit();
        assert!(server >= MIN_MEMORY_LIMIT);
        if let Some(available) = available_memory() {
            assert_eq!(server, (available / 2).max(MIN_MEMORY_LIMIT));
        }
        assert!(config.memory.query_limit() <= server);
        let set = MemoryConfig {
            query_limit_bytes: 8 << 20,
            server_limit_bytes: 4 << 20,
        };
        assert_eq!(set.server_limit(), 4 << 20);
        assert_eq!(set.query_limit(), 4 << 20, "capped by the server budget");
        let env = vec![(
            "QUIVER__MEMORY__QUERY_LIMIT_BYTES".to_string(),
            "1000".to_string(),
        )];
        assert!(QuiverConfig::load(None, env, &[]).is_err());
    }
}
