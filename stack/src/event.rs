//! Readiness events (mio's `Event` and `Events`).

use crate::Token;

/// One readiness event for a registered socket or a waker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    token: Token,
    flags: u8,
}

impl Event {
    pub const READABLE: u8 = 1;
    pub const WRITABLE: u8 = 2;
    pub const READ_CLOSED: u8 = 4;
    pub const WRITE_CLOSED: u8 = 8;
    pub const ERROR: u8 = 16;

    pub const fn new(token: Token, flags: u8) -> Event {
        Event { token, flags }
    }

    pub fn token(&self) -> Token {
        self.token
    }

    pub fn flags(&self) -> u8 {
        self.flags
    }

    pub fn is_readable(&self) -> bool {
        self.flags & Self::READABLE != 0
    }

    pub fn is_writable(&self) -> bool {
        self.flags & Self::WRITABLE != 0
    }

    /// The peer will send no more (FIN received, or the connection is gone).
    pub fn is_read_closed(&self) -> bool {
        self.flags & Self::READ_CLOSED != 0
    }

    /// Nothing more can be written (reset, or our side shut down).
    pub fn is_write_closed(&self) -> bool {
        self.flags & Self::WRITE_CLOSED != 0
    }

    /// The socket has a pending error (reset, refused connect).
    pub fn is_error(&self) -> bool {
        self.flags & Self::ERROR != 0
    }
}

/// A reusable batch of events filled by `Stack::poll`.
#[derive(Debug)]
pub struct Events {
    list: Vec<Event>,
    capacity: usize,
}

impl Events {
    /// Room for up to `capacity` events per poll (the rest wait for the next poll).
    pub fn with_capacity(capacity: usize) -> Events {
        Events { list: Vec::with_capacity(capacity), capacity: capacity.max(1) }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Event> {
        self.list.iter()
    }

    /// Whether another event fits in this batch.
    pub fn is_full(&self) -> bool {
        self.list.len() >= self.capacity
    }

    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// Append an event (backends only). Returns false when the batch is full.
    pub fn push(&mut self, event: Event) -> bool {
        if self.is_full() {
            return false;
        }
        self.list.push(event);
        true
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}
