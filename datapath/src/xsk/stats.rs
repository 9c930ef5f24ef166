//! Per-queue datapath counters: what one AF_XDP queue received and sent, and every
//! packet it dropped, by reason. Userspace counts live in the queue's own halves and cost
//! a plain add; the kernel's counters (`XDP_STATISTICS`) are merged in only when the
//! counters are read, never on the packet path.

use std::ops::AddAssign;

/// Counters of one queue (or, summed with `+=`, of several). A plain `Copy` value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets the kernel dropped because the fill ring was empty
    /// (`rx_fill_ring_empty_descs`).
    pub rx_fill_ring_empty: u64,
    /// Packets the kernel dropped because the rx ring was full (`rx_ring_full`).
    pub rx_ring_full: u64,
    /// Other kernel rx drops, e.g. a frame larger than a UMEM chunk (`rx_dropped`).
    pub rx_dropped: u64,
    /// Invalid rx descriptors: ones pointing outside the UMEM (ours) plus invalid fill
    /// ring addresses (the kernel's `rx_invalid_descs`).
    pub rx_invalid: u64,
    /// Packets dropped because no tx frame or tx ring slot was free.
    pub tx_ring_full: u64,
    /// Invalid tx descriptors (the kernel's `tx_invalid_descs`), invalid completion
    /// addresses and frames larger than a UMEM chunk (ours).
    pub tx_invalid: u64,
    /// `sendto` calls made because the tx ring asked for a wakeup.
    pub tx_kicks: u64,
    /// `recvfrom` calls made because the fill ring asked for a wakeup.
    pub rx_wakeups: u64,
}

impl XskStats {
    /// Merge the kernel's `XDP_STATISTICS` into userspace counts.
    pub(crate) fn with_kernel(mut self, k: &libc::xdp_statistics) -> XskStats {
        self.rx_fill_ring_empty += k.rx_fill_ring_empty_descs;
        self.rx_ring_full += k.rx_ring_full;
        self.rx_dropped += k.rx_dropped;
        self.rx_invalid += k.rx_invalid_descs;
        self.tx_invalid += k.tx_invalid_descs;
        self
    }

    /// All drops, whatever the reason.
    pub fn drops(&self) -> u64 {
        self.rx_fill_ring_empty
            + self.rx_ring_full
            + self.rx_dropped
            + self.rx_invalid
            + self.tx_ring_full
            + self.tx_invalid
    }
}

impl AddAssign for XskStats {
    fn add_assign(&mut self, o: XskStats) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.rx_fill_ring_empty += o.rx_fill_ring_empty;
        self.rx_ring_full += o.rx_ring_full;
        self.rx_dropped += o.rx_dropped;
        self.rx_invalid += o.rx_invalid;
        self.tx_ring_full += o.tx_ring_full;
        self.tx_invalid += o.tx_invalid;
        self.tx_kicks += o.tx_kicks;
        self.rx_wakeups += o.rx_wakeups;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_counters_merge_by_reason() {
        let ours = XskStats { rx_packets: 5, rx_invalid: 1, tx_ring_full: 2, ..Default::default() };
        let k = libc::xdp_statistics {
            rx_dropped: 3,
            rx_invalid_descs: 4,
            tx_invalid_descs: 5,
            rx_ring_full: 6,
            rx_fill_ring_empty_descs: 7,
            tx_ring_empty_descs: 100,
        };
        let s = ours.with_kernel(&k);
        assert_eq!(s.rx_packets, 5);
        assert_eq!(s.rx_invalid, 5);
        assert_eq!(s.rx_dropped, 3);
        assert_eq!(s.tx_invalid, 5);
        assert_eq!(s.rx_ring_full, 6);
        assert_eq!(s.rx_fill_ring_empty, 7);
        assert_eq!(s.drops(), 7 + 6 + 3 + 5 + 2 + 5);
        let mut sum = s;
        sum += s;
        assert_eq!(sum.rx_fill_ring_empty, 14);
    }
}
