//! The simulator's connections: every agent's neighbours in one flat table of `max_degree`
//! slots per agent, in connection order.
//!
//! Every message delivered first checks that its sender is still a neighbour. With a list per
//! agent that check read a separate allocation for each of ten thousand agents, one more cache
//! miss before every message; the whole table is a few hundred kilobytes and stays cached.

/// Neighbour lists of agents `0..`, each at most `stride` long.
pub(crate) struct Mesh {
    stride: usize,
    lens: Vec<u32>,
    slots: Vec<u32>,
}

impl Mesh {
    /// An empty table for agents with up to `max_degree` neighbours.
    pub(crate) fn new(max_degree: usize) -> Self {
        Mesh {
            stride: max_degree,
            lens: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// Adds the next agent, with no neighbours.
    pub(crate) fn add_agent(&mut self) {
        self.lens.push(0);
        self.slots.resize(self.slots.len() + self.stride, 0);
    }

    /// `a`'s neighbours, in connection order.
    pub(crate) fn of(&self, a: u32) -> &[u32] {
        let start = a as usize * self.stride;
        self.slots
            .get(start..start + self.len(a))
            .unwrap_or_default()
    }

    pub(crate) fn len(&self, a: u32) -> usize {
        self.lens.get(a as usize).copied().unwrap_or(0) as usize
    }

    pub(crate) fn contains(&self, a: u32, b: u32) -> bool {
        self.of(a).contains(&b)
    }

    /// Appends `b` to `a`'s neighbours; false (and nothing changes) if `a` has `max_degree`.
    pub(crate) fn push(&mut self, a: u32, b: u32) -> bool {
        let len = self.len(a);
        if len >= self.stride {
            return false;
        }
        self.slots[a as usize * self.stride + len] = b;
        self.lens[a as usize] += 1;
        true
    }

    /// Removes `b` from `a`'s neighbours, keeping the others in order.
    pub(crate) fn remove(&mut self, a: u32, b: u32) {
        let start = a as usize * self.stride;
        let len = self.len(a);
        let row = &mut self.slots[start..start + len];
        if let Some(i) = row.iter().position(|&x| x == b) {
            row.copy_within(i + 1.., i);
            self.lens[a as usize] -= 1;
        }
    }

    /// Empties `a`'s neighbours and returns them.
    pub(crate) fn take(&mut self, a: u32) -> Vec<u32> {
        let out = self.of(a).to_vec();
        if let Some(l) = self.lens.get_mut(a as usize) {
            *l = 0;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_connection_order_and_their_bound() {
        let mut m = Mesh::new(3);
        for _ in 0..3 {
            m.add_agent();
        }
        assert!(m.of(1).is_empty());
        assert!(m.push(1, 0) && m.push(1, 2) && m.push(1, 7));
        assert!(!m.push(1, 9), "a full row refuses");
        assert_eq!(m.of(1), &[0, 2, 7]);
        assert!(m.of(0).is_empty() && m.of(2).is_empty(), "rows are apart");
        m.remove(1, 2);
        assert_eq!(m.of(1), &[0, 7]);
        m.remove(1, 5);
        assert_eq!(m.len(1), 2);
        assert!(m.contains(1, 7) && !m.contains(1, 2) && !m.contains(0, 7));
        assert!(m.push(1, 4));
        assert_eq!(m.take(1), vec![0, 7, 4]);
        assert_eq!(m.len(1), 0);
        assert!(m.of(5).is_empty(), "an unknown agent has no neighbours");
    }
}
