//! Geometry and bind options of an AF_XDP socket, with the limits the kernel enforces
//! checked up front so that a bad value fails with its name rather than an errno.

use super::busy_poll::BusyPoll;
use super::umem::XDP_PACKET_HEADROOM;
use crate::error::XdpError;

/// Ethernet header length, on top of the IP MTU.
pub const ETHERNET_HEADER: u32 = 14;
/// Descriptors fetched from the rx ring per batch.
pub const RX_BATCH: usize = 64;
/// Unpublished tx descriptors that trigger an early flush.
pub const TX_BATCH: u32 = 64;

/// How the socket binds (`XDP_COPY` / `XDP_ZEROCOPY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Let the kernel choose: zero-copy where the driver supports it, else copy.
    #[default]
    Auto,
    /// Force copy mode (`XDP_COPY`); works with every driver and with SKB attach.
    Copy,
    /// Force zero-copy (`XDP_ZEROCOPY`); fails unless the driver supports it (DRV only).
    ZeroCopy,
}

/// Geometry and options of one AF_XDP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XskConfig {
    pub bind: BindMode,
    /// UMEM frame size: a power of two in 2048..=page size. Bounds the MTU (received
    /// data starts 256 bytes into the frame).
    pub frame_size: u32,
    /// rx ring entries (power of two). The rx pool has twice as many frames and the
    /// fill ring holds all of them.
    pub rx_ring: u32,
    /// tx ring entries (power of two); also the tx pool and completion ring size.
    pub tx_ring: u32,
    /// Use `XDP_USE_NEED_WAKEUP` (saves syscalls; leave on).
    pub need_wakeup: bool,
    /// Preferred busy polling (`--busy-poll`, see [`BusyPoll`]); `None`: interrupts and
    /// softirqs drive the queue, as usual.
    pub busy_poll: Option<BusyPoll>,
}

impl Default for XskConfig {
    fn default() -> XskConfig {
        XskConfig {
            bind: BindMode::Auto,
            frame_size: 4096,
            rx_ring: 2048,
            tx_ring: 2048,
            need_wakeup: true,
            busy_poll: None,
        }
    }
}

impl XskConfig {
    /// Frames in the rx pool.
    pub fn rx_frames(&self) -> u32 {
        self.rx_ring * 2
    }

    /// Frames in the tx pool.
    pub fn tx_frames(&self) -> u32 {
        self.tx_ring
    }

    /// Largest frame (Ethernet header included) that fits both directions.
    pub fn max_frame(&self) -> u32 {
        self.frame_size - XDP_PACKET_HEADROOM
    }

    pub(crate) fn validate(&self) -> Result<(), XdpError> {
        let bad = |what: String| Err(XdpError::InvalidConfig { what });
        if !self.frame_size.is_power_of_two() || !(2048..=4096).contains(&self.frame_size) {
            return bad(format!("frame size {} must be 2048 or 4096", self.frame_size));
        }
        for (name, n) in [("rx ring", self.rx_ring), ("tx ring", self.tx_ring)] {
            if !n.is_power_of_two() || !(64..=32768).contains(&n) {
                return bad(format!("{name} size {n} must be a power of two in 64..=32768"));
            }
        }
        Ok(())
    }
}
