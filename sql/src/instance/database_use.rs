//! Which databases the instance's sessions are connected to, so that
//! `DROP DATABASE` refuses a database other sessions use, as PostgreSQL
//! does (`55006`, "database \"x\" is being accessed by other users"). A
//! leaf of the instance.

use std::collections::HashMap;
use std::sync::Arc;

use std::sync::Mutex;

/// Sessions per database (the databases sessions named at startup).
#[derive(Debug, Default, Clone)]
pub(crate) struct DatabaseUses(Arc<Mutex<HashMap<String, usize>>>);

/// One session's use of a database: counted while it lives.
#[derive(Debug)]
pub(crate) struct DatabaseUse {
    uses: DatabaseUses,
    name: String,
}

impl DatabaseUses {
    /// Counts a session connected to `name` until the returned use drops.
    pub(crate) fn enter(&self, name: &str) -> DatabaseUse {
        *self.lock().entry(name.to_string()).or_default() += 1;
        DatabaseUse {
            uses: self.clone(),
            name: name.to_string(),
        }
    }

    /// The counts (a poisoned lock only means a panic elsewhere mid-count;
    /// the counts stay usable).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many sessions are connected to `name`.
    pub(crate) fn sessions(&self, name: &str) -> usize {
        self.lock().get(name).copied().unwrap_or(0)
    }
}

impl Drop for DatabaseUse {
    fn drop(&mut self) {
        let mut uses = self.uses.lock();
        if let Some(count) = uses.get_mut(&self.name) {
            *count -= 1;
            if *count == 0 {
                uses.remove(&self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_use_counts_while_it_lives() {
        let uses = DatabaseUses::default();
        let first = uses.enter("x");
        let second = uses.enter("x");
        assert_eq!(uses.sessions("x"), 2);
        assert_eq!(uses.sessions("y"), 0);
        drop(first);
        assert_eq!(uses.sessions("x"), 1);
        drop(second);
        assert_eq!(uses.sessions("x"), 0);
    }
}
