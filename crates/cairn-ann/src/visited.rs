//! Which nodes a walk has already scored: one byte per slot, stamped with the walk's number so
//! that starting a new walk costs nothing (the marks are cleared only when the number wraps,
//! every 255 walks). A byte rather than a wider stamp keeps the marks of a million slots in a
//! core's L2 cache: the walk checks one for every neighbour it meets.

/// Visit marks for one walk at a time (see the module docs).
#[derive(Default)]
pub struct Visited {
    marks: Vec<u8>,
    epoch: u8,
}

impl Visited {
    /// Starts a new walk over `n` slots.
    pub fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `slot`; true if this walk had not visited it.
    #[inline]
    pub fn insert(&mut self, slot: u32) -> bool {
        let mark = &mut self.marks[slot as usize];
        let fresh = *mark != self.epoch;
        *mark = self.epoch;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_walk_starts_unmarked_even_when_the_stamp_wraps() {
        // Every stamp comes back after 255 walks: a mark left that long ago must not count.
        for later in 1..600 {
            let mut v = Visited::default();
            v.reset(2);
            assert!(v.insert(0));
            assert!(!v.insert(0), "a second visit in one walk is seen");
            for _ in 0..later {
                v.reset(2);
            }
            assert!(v.insert(0), "{later} walks later");
        }
    }
}
