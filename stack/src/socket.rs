//! Socket handles and the generational table that backs them.

use std::io;

/// An opaque socket handle: a slot index plus a generation, so a handle kept after
/// its socket closed can never reach the socket that reuses the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId {
    index: u32,
    generation: u32,
}

impl SocketId {
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// A slab of sockets addressed by [`SocketId`].
#[derive(Debug)]
pub struct SocketTable<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for SocketTable<T> {
    fn default() -> Self {
        SocketTable { slots: Vec::new(), free: Vec::new(), len: 0 }
    }
}

fn stale() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "stale or unknown socket handle")
}

impl<T> SocketTable<T> {
    pub fn insert(&mut self, value: T) -> SocketId {
        self.len += 1;
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.0 = slot.0.wrapping_add(1);
                slot.1 = Some(value);
                SocketId { index, generation: slot.0 }
            }
            None => {
                let index = self.slots.len() as u32;
                self.slots.push((0, Some(value)));
                SocketId { index, generation: 0 }
            }
        }
    }

    pub fn get(&self, id: SocketId) -> io::Result<&T> {
        match self.slots.get(id.index as usize) {
            Some((generation, Some(v))) if *generation == id.generation => Ok(v),
            _ => Err(stale()),
        }
    }

    pub fn get_mut(&mut self, id: SocketId) -> io::Result<&mut T> {
        match self.slots.get_mut(id.index as usize) {
            Some((generation, Some(v))) if *generation == id.generation => Ok(v),
            _ => Err(stale()),
        }
    }

    pub fn remove(&mut self, id: SocketId) -> Option<T> {
        match self.slots.get_mut(id.index as usize) {
            Some((generation, slot @ Some(_))) if *generation == id.generation => {
                self.free.push(id.index);
                self.len -= 1;
                slot.take()
            }
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every live socket with its id.
    pub fn iter(&self) -> impl Iterator<Item = (SocketId, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, (generation, v))| {
            v.as_ref().map(|v| (SocketId { index: i as u32, generation: *generation }, v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_ids_are_refused() {
        let mut t = SocketTable::default();
        let a = t.insert("a");
        assert_eq!(*t.get(a).unwrap(), "a");
        assert_eq!(t.remove(a), Some("a"));
        let b = t.insert("b");
        assert_eq!(a.index(), b.index());
        assert!(t.get(a).is_err());
        assert_eq!(t.remove(a), None);
        assert_eq!(*t.get(b).unwrap(), "b");
        assert_eq!(t.len(), 1);
    }
}
