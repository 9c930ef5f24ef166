//! A bounded byte queue for data that could not be written yet.
//!
//! Relaying reads into a per-worker scratch buffer and writes straight to the other
//! side; only what the other side would not take is queued here. The queue owns memory
//! only while it holds data, and its length is what backpressure is decided on: the
//! reader stops reading while the queue is at or above its limit
//! (`per_connection_buffer_limit_bytes`).

/// A FIFO byte queue that frees its memory when drained.
#[derive(Debug, Default)]
pub struct Buffer {
    data: Vec<u8>,
    start: usize,
}

impl Buffer {
    pub fn new() -> Buffer {
        Buffer::default()
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.data.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queued bytes, oldest first.
    pub fn as_slice(&self) -> &[u8] {
        &self.data[self.start..]
    }

    /// Queue bytes at the end.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.data.len() / 2 {
            self.data.drain(..self.start);
            self.start = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    /// The backing vector, for appending at the end (encoders write here).
    pub fn tail(&mut self) -> &mut Vec<u8> {
        if self.start > 0 && self.start >= self.data.len() / 2 {
            self.data.drain(..self.start);
            self.start = 0;
        }
        &mut self.data
    }

    /// Drop `n` bytes from the front (they were written).
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.data.len() {
            self.clear();
        }
    }

    /// Forget everything and give the memory back when it is large.
    pub fn clear(&mut self) {
        self.start = 0;
        self.data.clear();
        if self.data.capacity() > 64 * 1024 {
            self.data = Vec::new();
        }
    }

    /// Memory held (for accounting).
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_release() {
        let mut b = Buffer::new();
        b.extend(b"hello ");
        b.extend(b"world");
        assert_eq!(b.as_slice(), b"hello world");
        b.consume(6);
        assert_eq!(b.as_slice(), b"world");
        b.extend(b"!");
        assert_eq!(b.as_slice(), b"world!");
        b.consume(100);
        assert!(b.is_empty());
        b.extend(&vec![7u8; 200_000]);
        b.consume(200_000);
        assert_eq!(b.capacity(), 0, "large buffers are released when drained");
    }
}
