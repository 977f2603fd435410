//! Which nodes a walk has already scored: one mark per slot, stamped with the walk's number so
//! that starting a new walk costs nothing (the marks are cleared only when the number wraps).

/// Visit marks for one walk at a time (see the module docs).
#[derive(Default)]
pub struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    /// Starts a new walk over `n` slots.
    pub fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
    }

    /// Marks `slot`; true if this walk had not visited it.
    pub fn insert(&mut self, slot: u32) -> bool {
        let mark = &mut self.marks[slot as usize];
        let fresh = *mark != self.epoch;
        *mark = self.epoch;
        fresh
    }
}
