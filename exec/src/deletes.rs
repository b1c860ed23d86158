//! Deletes applied at read time.
//!
//! A delete of key `k` at timestamp `d` hides every row with key `k` written
//! at a timestamp `< d`, for readers whose timestamp is `>= d`. An upsert is a
//! delete and an insert at the same timestamp, so the new row survives.

use std::collections::HashMap;

use crate::pk::{PkRef, PkValue};

/// Every delete of one table, by key, with their timestamps.
#[derive(Debug, Default, Clone)]
pub struct DeleteMap {
    ints: HashMap<i64, Vec<u64>>,
    strs: HashMap<String, Vec<u64>>,
    len: usize,
}

impl DeleteMap {
    /// Records a delete of `pk` at `ts`.
    pub fn insert(&mut self, pk: &PkValue, ts: u64) {
        let list = match pk {
            PkValue::Int(v) => self.ints.entry(*v).or_default(),
            PkValue::Str(s) => self.strs.entry(s.clone()).or_default(),
        };
        if !list.contains(&ts) {
            list.push(ts);
            self.len += 1;
        }
    }

    /// Number of (key, timestamp) delete entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no deletes are recorded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the row written at `row_ts` with key `pk` is deleted for a reader at `read_ts`.
    #[inline]
    pub fn hides(&self, pk: PkRef<'_>, row_ts: u64, read_ts: u64) -> bool {
        let list = match pk {
            PkRef::Int(v) => self.ints.get(&v),
            PkRef::Str(s) => self.strs.get(s),
        };
        match list {
            Some(list) => list.iter().any(|d| *d > row_ts && *d <= read_ts),
            None => false,
        }
    }

    /// The timestamps `pk` was deleted at (empty when never).
    pub fn timestamps(&self, pk: PkRef<'_>) -> &[u64] {
        let list = match pk {
            PkRef::Int(v) => self.ints.get(&v),
            PkRef::Str(s) => self.strs.get(s),
        };
        list.map_or(&[], Vec::as_slice)
    }

    /// All entries, for persisting.
    pub fn entries(&self) -> Vec<(PkValue, u64)> {
        let mut out = Vec::with_capacity(self.len);
        for (k, list) in &self.ints {
            out.extend(list.iter().map(|ts| (PkValue::Int(*k), *ts)));
        }
        for (k, list) in &self.strs {
            out.extend(list.iter().map(|ts| (PkValue::Str(k.clone()), *ts)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_hides_only_older_rows_for_newer_readers() {
        let mut map = DeleteMap::default();
        map.insert(&PkValue::Int(1), 10);
        assert!(map.hides(PkRef::Int(1), 5, 10));
        assert!(!map.hides(PkRef::Int(1), 5, 9), "reader before the delete");
        assert!(
            !map.hides(PkRef::Int(1), 10, 20),
            "upsert row at the delete ts"
        );
        assert!(!map.hides(PkRef::Int(2), 5, 20));
    }
}
