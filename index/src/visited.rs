//! A reusable visited-node set for graph searches.

use std::cell::RefCell;

/// Visited set with epoch stamps, so clearing is O(1).
#[derive(Default)]
pub(crate) struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    pub(crate) fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `id`; returns whether it was unvisited.
    #[inline]
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        let slot = &mut self.marks[id as usize];
        let fresh = *slot != self.epoch;
        *slot = self.epoch;
        fresh
    }
}

thread_local! {
    pub(crate) static VISITED: RefCell<Visited> = RefCell::new(Visited::default());
}
