//! Local ports: the per-core ephemeral range for `connect`, and listening ports.
//!
//! A connect takes the next port of the core's range (round robin from a cursor) whose
//! 4-tuple with the destination is free, so ports are shared across destinations the way
//! Linux shares them, and return traffic lands on the owning core. Ports with a listener
//! are never handed out. The scan is bounded by the range length and happens per
//! connect, never per packet.

use std::collections::HashMap;

/// Listening ports and the ephemeral-port cursor.
pub(crate) struct Ports {
    first: u16,
    last: u16,
    next: u16,
    listening: HashMap<u16, u32>,
}

impl Ports {
    /// `range` is inclusive and validated by the config (non-empty, no port 0).
    pub fn new(range: (u16, u16), seed: u64) -> Ports {
        let (first, last) = range;
        let span = u64::from(last - first) + 1;
        let next = first + (seed % span) as u16;
        Ports { first, last, next, listening: HashMap::new() }
    }

    pub fn is_listening(&self, port: u16) -> bool {
        self.listening.contains_key(&port)
    }

    pub fn listen(&mut self, port: u16) {
        *self.listening.entry(port).or_insert(0) += 1;
    }

    pub fn unlisten(&mut self, port: u16) {
        if let Some(n) = self.listening.get_mut(&port) {
            *n -= 1;
            if *n == 0 {
                self.listening.remove(&port);
            }
        }
    }

    /// The next port of the range, without a listener, that `usable` accepts.
    pub fn pick(&mut self, mut usable: impl FnMut(u16) -> bool) -> Option<u16> {
        let span = u32::from(self.last - self.first) + 1;
        for _ in 0..span {
            let port = self.next;
            self.next = if port == self.last { self.first } else { port + 1 };
            if !self.is_listening(port) && usable(port) {
                return Some(port);
            }
        }
        None
    }

    /// A free port for a listener asked to bind port 0.
    pub fn pick_listen(&mut self) -> Option<u16> {
        let span = u32::from(self.last - self.first) + 1;
        (0..span).map(|i| self.first + i as u16).find(|p| !self.is_listening(*p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_listeners_and_busy_ports() {
        let mut p = Ports::new((100, 103), 0);
        p.listen(101);
        assert_eq!(p.pick(|_| true), Some(100));
        assert_eq!(p.pick(|_| true), Some(102));
        assert_eq!(p.pick(|port| port != 103), Some(100));
        assert_eq!(p.pick(|_| false), None);
        p.unlisten(101);
        assert!(!p.is_listening(101));
        assert_eq!(p.pick_listen(), Some(100));
    }

    #[test]
    fn the_seed_spreads_the_start() {
        let mut p = Ports::new((1000, 1009), 13);
        assert_eq!(p.pick(|_| true), Some(1003));
    }
}
