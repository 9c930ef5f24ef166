//! Receive and transmit storage of one smol stack's connections, lent when data needs it
//! and taken back when it is drained, so an idle connection holds none.
//!
//! Every socket is made without storage (`tcp::Socket::new_detached`, our smoltcp patch):
//! it still advertises the window of its configured receive buffer. Storage of exactly
//! `rx_buffer` or `tx_buffer` bytes is attached when a segment with payload arrives or
//! the application writes, and detached as soon as the receive buffer is read empty (with
//! nothing waiting for reassembly) or every sent byte is acknowledged. Storage in use is
//! bounded by `buffer_memory`, half of it for each direction, so that receive buffers
//! full of bytes waiting to be forwarded can never take the send storage that forwarding
//! them needs (nor the reverse); beyond it a segment with payload is dropped before smoltcp
//! sees it (counted in `rx_no_buffer`; the peer retransmits it) and a write returns
//! `WouldBlock` (counted in `tx_no_buffer`; the writer is woken when storage comes back).
//! Up to `buffer_keep` detached buffers per direction are kept for reuse, so a busy stack
//! does not allocate per request; the rest go back to the allocator.

use smoltcp::socket::tcp::{self, SocketBuffer};

use super::slab::Key;

pub(crate) struct Buffers {
    rx_size: usize,
    tx_size: usize,
    rx_free: Vec<SocketBuffer<'static>>,
    tx_free: Vec<SocketBuffer<'static>>,
    keep: usize,
    /// Most bytes attached per direction.
    limit: usize,
    rx_attached: usize,
    tx_attached: usize,
    /// Bytes of storage attached to connections now (both directions).
    pub attached: usize,
    /// Connections whose write found no storage: woken when some comes back.
    pub waiters: Vec<Key>,
}

impl Buffers {
    pub fn new(rx_size: usize, tx_size: usize, limit: usize, keep: usize) -> Buffers {
        Buffers {
            rx_size,
            tx_size,
            rx_free: Vec::with_capacity(keep),
            tx_free: Vec::with_capacity(keep),
            keep,
            limit: limit / 2,
            rx_attached: 0,
            tx_attached: 0,
            attached: 0,
            waiters: Vec::new(),
        }
    }

    /// A socket of this stack's buffer sizes with no storage attached.
    pub fn socket(&self) -> tcp::Socket<'static> {
        tcp::Socket::new_detached(self.rx_size, self.tx_size)
    }

    fn take(&mut self, rx: bool) -> Option<SocketBuffer<'static>> {
        let (size, used) =
            if rx { (self.rx_size, &mut self.rx_attached) } else { (self.tx_size, &mut self.tx_attached) };
        if *used + size > self.limit {
            return None;
        }
        *used += size;
        self.attached += size;
        let free = if rx { &mut self.rx_free } else { &mut self.tx_free };
        Some(free.pop().unwrap_or_else(|| SocketBuffer::new(vec![0u8; size])))
    }

    fn give(&mut self, rx: bool, buffer: SocketBuffer<'static>) {
        let used = if rx { &mut self.rx_attached } else { &mut self.tx_attached };
        *used = used.saturating_sub(buffer.capacity());
        self.attached = self.attached.saturating_sub(buffer.capacity());
        let free = if rx { &mut self.rx_free } else { &mut self.tx_free };
        if free.len() < self.keep {
            free.push(buffer);
        }
    }

    /// Attach receive storage to `socket` if it has none. False: none is free.
    pub fn attach_rx(&mut self, socket: &mut tcp::Socket<'static>) -> bool {
        if !socket.recv_detached() {
            return true;
        }
        match self.take(true) {
            Some(b) => match socket.attach_recv_buffer(b) {
                Ok(()) => true,
                Err(b) => {
                    self.give(true, b);
                    false
                }
            },
            None => false,
        }
    }

    /// Attach transmit storage to `socket` if it has none. False: none is free.
    pub fn attach_tx(&mut self, socket: &mut tcp::Socket<'static>) -> bool {
        if !socket.send_detached() {
            return true;
        }
        match self.take(false) {
            Some(b) => match socket.attach_send_buffer(b) {
                Ok(()) => true,
                Err(b) => {
                    self.give(false, b);
                    false
                }
            },
            None => false,
        }
    }

    /// Take back whatever storage `socket` no longer needs. True if any came back.
    pub fn shed(&mut self, socket: &mut tcp::Socket<'static>) -> bool {
        let mut freed = false;
        if let Some(b) = socket.detach_recv_buffer() {
            self.give(true, b);
            freed = true;
        }
        if let Some(b) = socket.detach_send_buffer() {
            self.give(false, b);
            freed = true;
        }
        freed
    }

    /// Take back all storage of a socket that is done with (CLOSED or TIME-WAIT, its
    /// owner gone): unread bytes are discarded.
    pub fn reclaim(&mut self, socket: &mut tcp::Socket<'static>) -> bool {
        while socket.recv(|b| (b.len(), b.len())).unwrap_or(0) > 0 {}
        self.shed(socket)
    }

    /// Detached buffers kept for reuse (both directions).
    pub fn idle(&self) -> usize {
        self.rx_free.len() + self.tx_free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_bounded_and_reused() {
        // 2 KiB: one 1 KiB buffer a direction.
        let mut b = Buffers::new(1024, 1024, 2048, 1);
        let mut s1 = b.socket();
        let mut s2 = b.socket();
        assert!(s1.recv_detached() && s1.send_detached());
        assert_eq!((s1.recv_capacity(), s1.send_capacity()), (1024, 1024));
        assert!(b.attach_rx(&mut s1));
        assert!(!b.attach_rx(&mut s2), "the receive half is used up");
        assert!(b.attach_tx(&mut s1), "receive storage never takes the send half");
        assert!(!b.attach_tx(&mut s2));
        assert_eq!(b.attached, 2048);
        assert!(s2.recv_detached());
        assert!(b.shed(&mut s1));
        assert_eq!((b.attached, b.idle()), (0, 2));
        assert!(b.attach_rx(&mut s2));
        assert_eq!(b.idle(), 1, "the kept receive buffer was reused");
        assert!(!b.shed(&mut s1), "nothing left to take back");
    }
}
