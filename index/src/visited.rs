//! A reusable visited-node set for graph searches.

/// Visited set with epoch stamps, so clearing is O(1): a node is visited
/// when its stamp equals the current epoch. Stamps are 16 bits (half the
/// cache footprint of 32), so every 65,535 resets the stamps are zeroed once.
#[derive(Default)]
pub(crate) struct Visited {
    marks: Vec<u16>,
    epoch: u16,
}

impl Visited {
    /// Starts a new search over nodes `0..n`, with nothing visited.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_clears_and_survives_epoch_wrap() {
        let mut v = Visited::default();
        for round in 0..70_000u32 {
            v.reset(10);
            let id = round % 10;
            assert!(v.insert(id), "round {round}");
            assert!(!v.insert(id));
            // Stale marks from earlier rounds never count as visited.
            assert!(v.insert((id + 1) % 10), "round {round}");
        }
    }
}
