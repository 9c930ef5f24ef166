//! The worker's connection table: slots addressed by index and generation.
//!
//! Tokens carry a slot index and a sub-id (which socket of the connection); timers
//! carry index and generation, so a timer outliving its connection is ignored. Freed
//! slots are recycled only after the current event batch, so a late event in the batch
//! never reaches a connection that took over the slot (it would be a spurious event at
//! worst, which every handler tolerates anyway).

use crate::timer::TimerKey;

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

#[derive(Debug)]
pub struct ConnTable<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    /// Freed during this batch; reusable after `recycle`.
    freed: Vec<u32>,
    len: usize,
}

impl<T> Default for ConnTable<T> {
    fn default() -> Self {
        ConnTable { slots: Vec::new(), free: Vec::new(), freed: Vec::new(), len: 0 }
    }
}

impl<T> ConnTable<T> {
    pub fn insert(&mut self, value: T) -> TimerKey {
        self.len += 1;
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.generation = slot.generation.wrapping_add(1);
                slot.value = Some(value);
                TimerKey { index, generation: slot.generation }
            }
            None => {
                let index = self.slots.len() as u32;
                self.slots.push(Slot { generation: 0, value: Some(value) });
                TimerKey { index, generation: 0 }
            }
        }
    }

    /// The live value at `index` with its key.
    pub fn get_mut(&mut self, index: usize) -> Option<(TimerKey, &mut T)> {
        let slot = self.slots.get_mut(index)?;
        let generation = slot.generation;
        slot.value.as_mut().map(|v| (TimerKey { index: index as u32, generation }, v))
    }

    /// The live value for `key` (index and generation must match).
    pub fn get_key_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// The live value for `key`, shared.
    pub fn get(&self, key: TimerKey) -> Option<&T> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_ref()
    }

    pub fn remove(&mut self, key: TimerKey) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let v = slot.value.take()?;
        self.freed.push(key.index);
        self.len -= 1;
        Some(v)
    }

    /// Make slots freed during the last batch reusable.
    pub fn recycle(&mut self) {
        self.free.append(&mut self.freed);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Slots ever allocated (live, freed and reusable): the table's memory.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keys of every live entry.
    pub fn keys(&self) -> Vec<TimerKey> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some())
            .map(|(i, s)| TimerKey { index: i as u32, generation: s.generation })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_recycle_after_batch_with_new_generation() {
        let mut t = ConnTable::default();
        let a = t.insert("a");
        assert_eq!(t.remove(a), Some("a"));
        let b = t.insert("b");
        assert_ne!(a.index, b.index, "not reused within the batch");
        t.recycle();
        let c = t.insert("c");
        assert_eq!(c.index, a.index);
        assert_ne!(c.generation, a.generation);
        assert!(t.get_key_mut(a).is_none());
        assert_eq!(t.get_key_mut(c).copied(), Some("c"));
        assert_eq!(t.len(), 2);
    }
}
