//! Seeded link impairments for the in-memory datapath: loss, duplication, reordering,
//! delay and a bounded receive queue, in the spirit of smoltcp's `phy::FaultInjector`.
//!
//! Every decision is drawn from a per-port xorshift generator seeded from the network
//! seed and the port number, so a single-threaded simulation replays bit for bit. The
//! generator is never consulted when all probabilities are zero, so enabling a fault on
//! one port does not change the draws of another.

use smoltcp::time::Duration;

/// What a port's egress does to the frames it sends. All probabilities are in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Probability that a frame is dropped on the wire.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back by `reorder_delay`, so that frames sent
    /// after it overtake it.
    pub reorder: f64,
    /// Extra delay of a reordered frame.
    pub reorder_delay: Duration,
    /// One-way latency added to every frame.
    pub delay: Duration,
}

impl Faults {
    /// A perfect wire: nothing lost, duplicated, reordered or delayed.
    pub const NONE: Faults = Faults {
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        reorder_delay: Duration::from_millis(1),
        delay: Duration::ZERO,
    };

    /// Whether any impairment draws from the generator.
    pub(crate) fn is_random(&self) -> bool {
        self.loss > 0.0 || self.duplicate > 0.0 || self.reorder > 0.0
    }

    /// Check the probabilities; a bad value is a configuration error, not a panic.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        for p in [self.loss, self.duplicate, self.reorder] {
            if !(0.0..=1.0).contains(&p) {
                return Err("fault probabilities must lie in 0.0..=1.0");
            }
        }
        Ok(())
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults::NONE
    }
}

/// The fate of one transmitted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fate {
    pub dropped: bool,
    pub copies: u8,
    /// Delay added to this frame, on top of the timestamp it was sent at.
    pub delay: Duration,
    pub reordered: bool,
}

/// A port's generator plus its fault settings.
#[derive(Debug, Clone)]
pub(crate) struct Injector {
    pub faults: Faults,
    state: u64,
}

impl Injector {
    pub fn new(faults: Faults, seed: u64, port: usize) -> Injector {
        // splitmix64 of (seed, port) so that neighbouring ports get unrelated streams.
        let mut z = seed ^ (port as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Injector { faults, state: z | 1 }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform draw in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Decide what happens to the next frame.
    pub fn fate(&mut self) -> Fate {
        let f = self.faults;
        let mut fate = Fate { dropped: false, copies: 1, delay: f.delay, reordered: false };
        if !f.is_random() {
            return fate;
        }
        if self.chance(f.loss) {
            fate.dropped = true;
            return fate;
        }
        if self.chance(f.duplicate) {
            fate.copies = 2;
        }
        if self.chance(f.reorder) {
            fate.reordered = true;
            fate.delay += f.reorder_delay;
        }
        fate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_fates() {
        let faults = Faults { loss: 0.1, duplicate: 0.05, reorder: 0.05, ..Faults::NONE };
        let mut a = Injector::new(faults, 7, 0);
        let mut b = Injector::new(faults, 7, 0);
        let mut c = Injector::new(faults, 7, 1);
        let fa: Vec<Fate> = (0..1000).map(|_| a.fate()).collect();
        let fb: Vec<Fate> = (0..1000).map(|_| b.fate()).collect();
        let fc: Vec<Fate> = (0..1000).map(|_| c.fate()).collect();
        assert_eq!(fa, fb);
        assert_ne!(fa, fc, "ports draw from different streams");
        let lost = fa.iter().filter(|f| f.dropped).count();
        assert!((50..150).contains(&lost), "about 10 % lost, got {lost}");
        assert!(fa.iter().any(|f| f.copies == 2));
        assert!(fa.iter().any(|f| f.reordered && f.delay == Duration::from_millis(1)));
    }

    #[test]
    fn perfect_wire_never_draws() {
        let mut a = Injector::new(Faults::NONE, 1, 0);
        let before = a.state;
        for _ in 0..10 {
            assert_eq!(a.fate(), Fate { dropped: false, copies: 1, delay: Duration::ZERO, reordered: false });
        }
        assert_eq!(a.state, before);
    }

    #[test]
    fn bad_probability_is_refused() {
        assert!(Faults { loss: 1.5, ..Faults::NONE }.validate().is_err());
        assert!(Faults { reorder: -0.1, ..Faults::NONE }.validate().is_err());
        assert!(Faults::NONE.validate().is_ok());
    }
}
