//! The meta store on etcd (`meta.backend = "etcd"`): every key of the
//! [`MetaStore`] lives under the configured root (`meta.root`, e.g.
//! `/quiver/<cluster-name>/`), so several clusters can share one etcd.
//!
//! The trait maps onto etcd's v3 API one to one: a key's version is its
//! `mod_revision`, the store revision etcd's (cluster-wide) revision, a
//! [`MetaBatch`] one etcd transaction (its conditions compares on
//! `mod_revision` / `create_revision == 0`, its writes the success branch),
//! a prefix watch an etcd watch starting just after the revision read when
//! it is created. etcd refuses a transaction naming a key twice, so a batch
//! is collapsed to its net effect first (the last put of a key; a key both
//! put and deleted is deleted). Batches are checked against
//! [`MAX_TXN_OPS`](super::MAX_TXN_OPS) and
//! [`MAX_TXN_BYTES`](super::MAX_TXN_BYTES) before they are sent, so the
//! same batch fails the same way here and in the embedded store.
//!
//! Every request has a deadline ([`EtcdOptions::request_timeout`]); an
//! unreachable etcd is a [`StorageError::ServiceUnavailable`] naming the
//! endpoints, never a hang. Leases ([`EtcdMetaStore::grant_lease`]) bind
//! keys to a session: they disappear when the lease is revoked or its
//! holder stops renewing it.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use futures::StreamExt;

use super::{
    EventKind, KeyValue, MetaBatch, MetaStore, TxnOutcome, Versioned, WatchEvent, WatchStream,
};
use crate::error::{Result, StorageError};

/// Keys read per range request of a scan (all pages at one revision).
const SCAN_PAGE: i64 = 512;

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// `http://host:port` (or `host:port`) of each member.
    pub endpoints: Vec<String>,
    /// Prefix of every key (`meta.root`); a `/` is added when missing.
    pub root: String,
    /// Deadline of establishing a connection.
    pub connect_timeout: Duration,
    /// Deadline of every request (a watch's creation included).
    pub request_timeout: Duration,
}

impl EtcdOptions {
    /// Options with the default deadlines: 5 s to connect, 10 s a request.
    pub fn new(endpoints: Vec<String>, root: impl Into<String>) -> Self {
        Self {
            endpoints,
            root: root.into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A [`MetaStore`] on an etcd cluster.
#[derive(Clone)]
pub struct EtcdMetaStore {
    client: Client,
    /// The root, ending in `/`.
    root: String,
    endpoints: String,
    request_timeout: Duration,
}

impl std::fmt::Debug for EtcdMetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdMetaStore")
            .field("endpoints", &self.endpoints)
            .field("root", &self.root)
            .finish()
    }
}

/// A lease granted by etcd: keys put with it ([`EtcdMetaStore::put_leased`])
/// are deleted when it expires (its holder stopped calling
/// [`EtcdMetaStore::keep_alive`] for `ttl` seconds) or is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    /// Seconds it lives without a renewal, as etcd granted it.
    pub ttl: i64,
}

impl EtcdMetaStore {
    /// Connects and checks that etcd answers (within the deadlines), so a
    /// wrong or unreachable endpoint is reported at startup.
    pub async fn connect(options: EtcdOptions) -> Result<Self> {
        let endpoints = options.endpoints.join(",");
        if options.endpoints.is_empty() {
            return Err(StorageError::ServiceUnavailable {
                service: "etcd",
                endpoints,
                detail: "no endpoint configured (meta.etcd_endpoints)".into(),
            });
        }
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_timeout(options.request_timeout);
        let client = tokio::time::timeout(
            options.connect_timeout,
            Client::connect(&options.endpoints, Some(connect)),
        )
        .await
        .map_err(|_| StorageError::ServiceUnavailable {
            service: "etcd",
            endpoints: endpoints.clone(),
            detail: format!("no connection within {:?}", options.connect_timeout),
        })?
        .map_err(|e| unavailable(&endpoints, e))?;
        let mut root = options.root;
        if !root.ends_with('/') {
            root.push('/');
        }
        if root.len() > super::MAX_ROOT_BYTES {
            return Err(StorageError::ServiceUnavailable {
                service: "etcd",
                endpoints,
                detail: format!(
                    "meta.root \"{root}\" is {} bytes long, at most {} allowed (every key carries it within etcd's request limit)",
                    root.len(),
                    super::MAX_ROOT_BYTES
                ),
            });
        }
        let store = Self {
            client,
            root,
            endpoints,
            request_timeout: options.request_timeout,
        };
        store.revision().await?;
        Ok(store)
    }

    /// The root every key is stored under (ends in `/`).
    pub fn root(&self) -> &str {
        &self.root
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.root)
    }

    fn error(&self, e: etcd_client::Error) -> StorageError {
        unavailable(&self.endpoints, e)
    }

    /// The error of a request that got no answer within the deadline.
    fn timed_out(&self) -> StorageError {
        StorageError::ServiceUnavailable {
            service: "etcd",
            endpoints: self.endpoints.clone(),
            detail: format!("no answer within {:?}", self.request_timeout),
        }
    }

    /// Runs one request under the request deadline.
    async fn deadline<T>(
        &self,
        request: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.request_timeout, request).await {
            Ok(result) => result.map_err(|e| self.error(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// The user key of a stored key (the root stripped).
    fn user_key(&self, key: &[u8]) -> Result<String> {
        let key = std::str::from_utf8(key)
            .map_err(|_| StorageError::Meta("etcd returned a key that is not UTF-8".into()))?;
        key.strip_prefix(&self.root)
            .map(str::to_string)
            .ok_or_else(|| StorageError::Meta(format!("etcd returned key {key} outside the root")))
    }

    /// Grants a lease of `ttl` seconds.
    pub async fn grant_lease(&self, ttl: i64) -> Result<Lease> {
        let mut leases = self.client.lease_client();
        let granted = self.deadline(leases.grant(ttl, None)).await?;
        Ok(Lease {
            id: granted.id(),
            ttl: granted.ttl(),
        })
    }

    /// Renews a lease once; returns the seconds it now lives (0: it had
    /// already expired or was revoked, and its keys are gone).
    pub async fn keep_alive(&self, lease: Lease) -> Result<i64> {
        let renew = async {
            let mut leases = self.client.lease_client();
            let (mut keeper, mut replies) = leases.keep_alive(lease.id).await?;
            keeper.keep_alive().await?;
            replies.message().await
        };
        match tokio::time::timeout(self.request_timeout, renew).await {
            Ok(Ok(Some(reply))) => Ok(reply.ttl().max(0)),
            Ok(Ok(None)) => Err(StorageError::ServiceUnavailable {
                service: "etcd",
                endpoints: self.endpoints.clone(),
                detail: format!("lease {} renewal got no answer", lease.id),
            }),
            // etcd answers a renewal of a lease it no longer has so.
            Ok(Err(etcd_client::Error::LeaseKeepAliveError(m))) if m.contains("not found") => Ok(0),
            Ok(Err(e)) => Err(self.error(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Revokes a lease: its keys are deleted at once.
    pub async fn revoke_lease(&self, lease: Lease) -> Result<()> {
        let mut leases = self.client.lease_client();
        self.deadline(leases.revoke(lease.id)).await?;
        Ok(())
    }

    /// Puts `key` bound to `lease`; returns its version.
    pub async fn put_leased(&self, key: &str, value: Vec<u8>, lease: Lease) -> Result<u64> {
        let mut kv = self.client.kv_client();
        let options = PutOptions::new().with_lease(lease.id);
        let reply = self
            .deadline(kv.put(self.full_key(key), value, Some(options)))
            .await?;
        Ok(header_revision(reply.header()))
    }
}

fn unavailable(endpoints: &str, e: etcd_client::Error) -> StorageError {
    StorageError::ServiceUnavailable {
        service: "etcd",
        endpoints: endpoints.to_string(),
        detail: e.to_string(),
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> u64 {
    header.map_or(0, |h| h.revision().max(0) as u64)
}

/// The smallest key after every key starting with `prefix` (etcd's range end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The batch's writes as etcd accepts them (each key once): the puts in
/// batch order, a key put twice with its last value, none of the keys the
/// batch also deletes; then the deletes, each once.
fn net_writes(batch: &MetaBatch) -> (Vec<(&str, &[u8])>, BTreeSet<&str>) {
    let deletes: BTreeSet<&str> = batch.deletes.iter().map(String::as_str).collect();
    let mut puts: Vec<(&str, &[u8])> = Vec::with_capacity(batch.puts.len());
    for (key, value) in &batch.puts {
        if deletes.contains(key.as_str()) {
            continue;
        }
        match puts.iter_mut().find(|(k, _)| *k == key.as_str()) {
            Some(put) => put.1 = value.as_slice(),
            None => puts.push((key.as_str(), value.as_slice())),
        }
    }
    (puts, deletes)
}

#[async_trait]
impl MetaStore for EtcdMetaStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        let mut kv = self.client.kv_client();
        let reply = self.deadline(kv.get(self.full_key(key), None)).await?;
        Ok(reply.kvs().first().map(|found| Versioned {
            value: found.value().to_vec(),
            version: found.mod_revision().max(0) as u64,
        }))
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let start = self.full_key(prefix).into_bytes();
        let end = prefix_end(&start);
        let mut kv = self.client.kv_client();
        let mut out = Vec::new();
        let mut from = start;
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(SCAN_PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let reply = self.deadline(kv.get(from.clone(), Some(options))).await?;
            if revision == 0 {
                revision = reply.header().map_or(0, |h| h.revision());
            }
            for found in reply.kvs() {
                out.push(KeyValue {
                    key: self.user_key(found.key())?,
                    value: found.value().to_vec(),
                    version: found.mod_revision().max(0) as u64,
                });
            }
            match reply.kvs().last() {
                Some(last) if reply.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    async fn txn(&self, batch: MetaBatch) -> Result<TxnOutcome> {
        batch.check_limits()?;
        if batch.is_empty() {
            return Ok(TxnOutcome {
                succeeded: true,
                revision: self.revision().await?,
            });
        }
        let compares: Vec<Compare> = batch
            .conditions
            .iter()
            .map(|condition| match condition {
                super::Condition::Version { key, version } => {
                    Compare::mod_revision(self.full_key(key), CompareOp::Equal, *version as i64)
                }
                super::Condition::Absent { key } => {
                    Compare::create_revision(self.full_key(key), CompareOp::Equal, 0)
                }
            })
            .collect();
        let (puts, deletes) = net_writes(&batch);
        let mut writes: Vec<TxnOp> = puts
            .into_iter()
            .map(|(key, value)| TxnOp::put(self.full_key(key), value.to_vec(), None))
            .collect();
        writes.extend(
            deletes
                .into_iter()
                .map(|key| TxnOp::delete(self.full_key(key), None)),
        );
        let mut kv = self.client.kv_client();
        let reply = self
            .deadline(kv.txn(Txn::new().when(compares).and_then(writes)))
            .await?;
        Ok(TxnOutcome {
            succeeded: reply.succeeded(),
            revision: header_revision(reply.header()),
        })
    }

    async fn revision(&self) -> Result<u64> {
        let mut kv = self.client.kv_client();
        let options = GetOptions::new().with_count_only();
        let reply = self
            .deadline(kv.get(self.root.clone(), Some(options)))
            .await?;
        Ok(header_revision(reply.header()))
    }

    async fn watch_prefix(&self, prefix: &str) -> Result<WatchStream> {
        // From the revision current now: every later change is streamed,
        // and a read after this call reflects everything before.
        let from = self.revision().await? as i64 + 1;
        let mut watches = self.client.watch_client();
        let options = WatchOptions::new().with_prefix().with_start_revision(from);
        let (watcher, replies) = self
            .deadline(watches.watch(self.full_key(prefix), Some(options)))
            .await?;
        struct State {
            store: EtcdMetaStore,
            // Keeps the watch open: dropping it cancels the watch.
            _watcher: etcd_client::Watcher,
            replies: etcd_client::WatchStream,
            pending: VecDeque<WatchEvent>,
            done: bool,
        }
        let state = State {
            store: self.clone(),
            _watcher: watcher,
            replies,
            pending: VecDeque::new(),
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(
            state,
            move |mut state| async move {
                loop {
                    if let Some(event) = state.pending.pop_front() {
                        return Some((Ok(event), state));
                    }
                    if state.done {
                        return None;
                    }
                    let reply = match state.replies.next().await {
                        None => return None,
                        Some(Err(e)) => {
                            state.done = true;
                            return Some((Err(state.store.error(e)), state));
                        }
                        Some(Ok(reply)) => reply,
                    };
                    if reply.canceled() {
                        state.done = true;
                        let error = if reply.compact_revision() > 0 {
                            // The events before the compaction are gone.
                            StorageError::WatchLagged {
                                missed: (reply.compact_revision() - from).max(1) as u64,
                            }
                        } else {
                            StorageError::ServiceUnavailable {
                                service: "etcd",
                                endpoints: state.store.endpoints.clone(),
                                detail: format!("watch canceled: {}", reply.cancel_reason()),
                            }
                        };
                        return Some((Err(error), state));
                    }
                    for event in reply.events() {
                        let Some(kv) = event.kv() else { continue };
                        let key = match state.store.user_key(kv.key()) {
                            Ok(key) => key,
                            Err(e) => return Some((Err(e), state)),
                        };
                        let kind = match event.event_type() {
                            EventType::Put => EventKind::Put,
                            EventType::Delete => EventKind::Delete,
                        };
                        state.pending.push_back(WatchEvent {
                            kind,
                            key,
                            value: match kind {
                                EventKind::Put => kv.value().to_vec(),
                                EventKind::Delete => Vec::new(),
                            },
                            revision: kv.mod_revision().max(0) as u64,
                        });
                    }
                }
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"/q/a"), b"/q/b".to_vec());
        assert_eq!(prefix_end(&[b'a', 0xff]), vec![b'b']);
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }

    #[test]
    fn a_batch_names_each_key_once() {
        let batch = MetaBatch::new()
            .put("a", b"1".to_vec())
            .put("b", b"2".to_vec())
            .put("a", b"3".to_vec())
            .delete("b")
            .delete("c")
            .delete("c");
        let (puts, deletes) = net_writes(&batch);
        assert_eq!(puts, vec![("a", &b"3"[..])]);
        assert_eq!(deletes.into_iter().collect::<Vec<_>>(), vec!["b", "c"]);
    }
}
