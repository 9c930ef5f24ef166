//! The free-frame list: UMEM frame addresses that userspace owns and that no ring and no
//! token holds. Every frame is, at any moment, in exactly one place — a free list, a
//! ring, or lent out as an rx/tx token — and moves between them only by value, so a
//! frame can be neither lost nor handed to the kernel twice.
//!
//! The list is allocated once with room for every frame it may ever hold; pushing never
//! allocates. A push beyond that capacity can only mean a frame was returned twice (a
//! bug, or a corrupt descriptor from the kernel); it is refused and the caller counts it.

/// A LIFO stack of free frame addresses (LIFO keeps recently used frames cache-warm).
#[derive(Debug)]
pub struct FrameStack {
    addrs: Vec<u64>,
    capacity: usize,
}

impl FrameStack {
    /// An empty stack with room for `capacity` frames.
    pub fn with_capacity(capacity: usize) -> FrameStack {
        FrameStack { addrs: Vec::with_capacity(capacity), capacity }
    }

    /// A full stack holding frames `first..first + count` of `frame_size` bytes each.
    pub fn range(first: u32, count: u32, frame_size: u32) -> FrameStack {
        let mut stack = FrameStack::with_capacity(count as usize);
        // Push in reverse so that the lowest addresses are handed out first.
        for i in (first..first + count).rev() {
            stack.addrs.push(u64::from(i) * u64::from(frame_size));
        }
        stack
    }

    /// Take a frame.
    #[inline]
    pub fn pop(&mut self) -> Option<u64> {
        self.addrs.pop()
    }

    /// Return a frame. `Err(addr)` when the stack is already full (a double return).
    #[inline]
    pub fn push(&mut self, addr: u64) -> Result<(), u64> {
        if self.addrs.len() >= self.capacity {
            return Err(addr);
        }
        self.addrs.push(addr);
        Ok(())
    }

    /// The free frames, in no particular order.
    pub fn as_slice(&self) -> &[u64] {
        &self.addrs
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_hands_out_low_frames_first() {
        let mut s = FrameStack::range(2, 3, 4096);
        assert_eq!(s.len(), 3);
        assert_eq!(s.pop(), Some(2 * 4096));
        assert_eq!(s.pop(), Some(3 * 4096));
        assert_eq!(s.pop(), Some(4 * 4096));
        assert_eq!(s.pop(), None);
    }

    #[test]
    fn push_never_grows_past_capacity() {
        let mut s = FrameStack::with_capacity(2);
        let before = s.addrs.capacity();
        assert_eq!(s.push(0), Ok(()));
        assert_eq!(s.push(4096), Ok(()));
        assert_eq!(s.push(8192), Err(8192));
        assert_eq!(s.len(), 2);
        assert_eq!(s.addrs.capacity(), before, "no reallocation");
    }
}
