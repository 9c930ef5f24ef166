//! Watermark flow control for the HTTP/1 proxy path (Envoy's `WatermarkBuffer`).
//!
//! Every buffer between a source and a sink is bounded by the owning side's
//! `per_connection_buffer_limit_bytes` (the listener's for downstream buffers, the
//! cluster's for upstream ones): that limit is the high watermark, half of it the low
//! watermark. Reading from the source stops once a buffer it feeds reaches the high
//! watermark and resumes only when the buffer has drained to the low one, so a slow
//! reader holds at most about `downstream limit + upstream limit` per stream, whatever
//! the response size. Buffers that went idle give their memory back ([`IDLE_KEEP`]).

/// Capacity an idle buffer may keep (a pooled upstream connection, a downstream
/// connection between requests); anything above is released.
pub const IDLE_KEEP: usize = 4 * 1024;

/// Floor of the upstream input's limit: a response head (Envoy's 80 KiB) or trailers
/// must fit whole to be parsed, whatever the cluster's buffer limit.
pub const MIN_UPSTREAM_INPUT: usize = 96 * 1024;

/// The upstream input's high watermark: the cluster's buffer limit, at least
/// [`MIN_UPSTREAM_INPUT`].
pub fn upstream_input_limit(cluster_limit: u32) -> usize {
    (cluster_limit as usize).max(MIN_UPSTREAM_INPUT)
}

/// A watermark crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// The buffer reached the high watermark: pause the source.
    High,
    /// The buffer drained to the low watermark: resume the source.
    Low,
}

/// One buffer's watermark state (hysteresis between the high and low watermarks).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    above: bool,
}

impl Watermark {
    /// Whether the buffer is above its high watermark (its source is paused).
    pub fn above(&self) -> bool {
        self.above
    }

    /// Update with the buffer's length against `high` (low = `high / 2`).
    pub fn update(&mut self, len: usize, high: usize) -> Option<Crossing> {
        if !self.above && len >= high {
            self.above = true;
            Some(Crossing::High)
        } else if self.above && len <= high / 2 {
            self.above = false;
            Some(Crossing::Low)
        } else {
            None
        }
    }
}

/// Make room for `want` more bytes in `v`, growing it (amortized, as `Vec` does) but
/// never past `limit + want`: plain doubling would leave a buffer at the high watermark
/// holding up to twice the limit.
pub fn reserve_within(v: &mut Vec<u8>, want: usize, limit: usize) {
    if v.capacity() - v.len() >= want {
        return;
    }
    let target = (v.capacity() * 2).min(limit + want).max(v.len() + want);
    v.reserve_exact(target - v.len());
}

/// [`reserve_within`] for an output vector written from `*pos` on: the bytes already
/// written are dropped first once they are half of it, so a peer that drains slowly but
/// never completely does not keep the vector growing.
pub fn make_room(v: &mut Vec<u8>, pos: &mut usize, want: usize, limit: usize) {
    if *pos > 0 && *pos * 2 >= v.len() {
        v.drain(..*pos);
        *pos = 0;
    }
    reserve_within(v, want, limit + *pos);
}

/// Release a drained vector's memory when it holds more than [`IDLE_KEEP`]; a vector
/// still holding bytes keeps just what they need.
pub fn shrink_idle(v: &mut Vec<u8>, pos: &mut usize) {
    if *pos > 0 {
        v.drain(..*pos);
        *pos = 0;
    }
    if v.is_empty() {
        if v.capacity() > IDLE_KEEP {
            *v = Vec::new();
        }
    } else {
        v.shrink_to(v.len().max(IDLE_KEEP));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_at_high_and_resumes_at_low() {
        let mut w = Watermark::default();
        assert_eq!(w.update(99, 100), None);
        assert_eq!(w.update(100, 100), Some(Crossing::High));
        assert!(w.above());
        assert_eq!(w.update(51, 100), None, "still above the low watermark");
        assert!(w.above());
        assert_eq!(w.update(50, 100), Some(Crossing::Low));
        assert!(!w.above());
        assert_eq!(w.update(80, 100), None);
    }

    #[test]
    fn growth_stops_at_the_limit() {
        let mut v = Vec::new();
        for _ in 0..16 {
            reserve_within(&mut v, 64 * 1024 + 64, 1 << 20);
            v.extend_from_slice(&[0u8; 64 * 1024]);
        }
        assert_eq!(v.len(), 1 << 20);
        assert!(v.capacity() <= (1 << 20) + 64 * 1024 + 64, "{}", v.capacity());
    }

    #[test]
    fn written_prefix_is_dropped_before_growing() {
        let mut v = vec![1u8; 1 << 20];
        let mut pos = (1 << 20) - 10;
        make_room(&mut v, &mut pos, 64 * 1024, 1 << 20);
        assert_eq!((pos, v.len()), (0, 10));
        assert!(v.capacity() >= 10 + 64 * 1024);
    }

    #[test]
    fn idle_buffers_release_memory() {
        let mut v = vec![0u8; 1 << 20];
        let mut pos = v.len();
        shrink_idle(&mut v, &mut pos);
        assert_eq!(v.capacity(), 0);
        let mut v = Vec::with_capacity(1 << 20);
        v.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut pos = 4;
        shrink_idle(&mut v, &mut pos);
        assert_eq!(v, b"/ HTTP/1.1\r\n");
        assert!(v.capacity() <= 2 * IDLE_KEEP);
    }
}
