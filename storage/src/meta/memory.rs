//! [`MemoryMetaStore`]: a volatile meta store for tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use tokio::sync::broadcast;

use super::{
    event_channel, watch_stream, EventBatch, KeyValue, MetaBatch, MetaStore, TxnOutcome, Versioned,
    WatchStream,
};
use crate::error::Result;

/// Volatile [`MetaStore`] for tests: a `BTreeMap` behind a lock, with the
/// same versions, transactions, watch and limits as the durable stores.
/// Clones are handles of the same store.
#[derive(Debug, Clone)]
pub struct MemoryMetaStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: RwLock<State>,
    events: broadcast::Sender<EventBatch>,
}

#[derive(Debug, Default)]
struct State {
    map: BTreeMap<String, Versioned>,
    revision: u64,
}

impl Default for MemoryMetaStore {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: RwLock::new(State::default()),
                events: event_channel(),
            }),
        }
    }
}

impl MemoryMetaStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl MetaStore for MemoryMetaStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        Ok(self.inner.state.read().map.get(key).cloned())
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let state = self.inner.state.read();
        Ok(state
            .map
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                value: v.value.clone(),
                version: v.version,
            })
            .collect())
    }

    async fn txn(&self, batch: MetaBatch) -> Result<TxnOutcome> {
        batch.check_limits()?;
        let mut state = self.inner.state.write();
        let current = state.revision;
        let holds = batch
            .conditions
            .iter()
            .all(|c| c.holds(state.map.get(c.key()).map(|v| v.version)));
        if !holds {
            return Ok(TxnOutcome {
                succeeded: false,
                revision: current,
            });
        }
        let revision = current + 1;
        let events = batch.events(revision, |key| Ok(state.map.get(key).map(|v| v.version)))?;
        if events.is_empty() {
            return Ok(TxnOutcome {
                succeeded: true,
                revision: current,
            });
        }
        for (k, v) in batch.puts {
            state.map.insert(
                k,
                Versioned {
                    value: v,
                    version: revision,
                },
            );
        }
        for k in batch.deletes {
            state.map.remove(&k);
        }
        state.revision = revision;
        // Sent under the lock, so events go out in revision order.
        let _ = self.inner.events.send(Arc::new(events));
        Ok(TxnOutcome {
            succeeded: true,
            revision,
        })
    }

    async fn revision(&self) -> Result<u64> {
        Ok(self.inner.state.read().revision)
    }

    async fn watch_prefix(&self, prefix: &str) -> Result<WatchStream> {
        Ok(watch_stream(
            self.inner.events.subscribe(),
            prefix.to_string(),
        ))
    }
}
