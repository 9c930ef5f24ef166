//! Device adapters that let smoltcp's `Interface` see one frame or one socket at a time.
//!
//! [`OneShot`] lends the interface a single received frame (already demultiplexed by
//! the stack) together with the datapath's reply token, so `poll_ingress_single` runs
//! against a one-socket `SocketSet`. [`Egress`] forwards transmissions to the datapath
//! and counts what went out: IP frames versus ARP, and whether the device ran out of
//! transmit slots. Neither copies a frame or allocates.

use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

/// A received frame, lent by reference.
pub(crate) struct FrameRx<'f>(&'f [u8]);

impl RxToken for FrameRx<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.0)
    }
}

/// A device holding exactly one received frame and the token to answer it with.
pub(crate) struct OneShot<'f, T> {
    frame: Option<&'f [u8]>,
    tx: Option<T>,
    caps: &'f DeviceCapabilities,
}

impl<'f, T: TxToken> OneShot<'f, T> {
    pub fn new(frame: &'f [u8], tx: T, caps: &'f DeviceCapabilities) -> Self {
        OneShot { frame: Some(frame), tx: Some(tx), caps }
    }
}

impl<T: TxToken> Device for OneShot<'_, T> {
    type RxToken<'a>
        = FrameRx<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = T
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(FrameRx<'_>, T)> {
        let frame = self.frame.take()?;
        let tx = self.tx.take()?;
        Some((FrameRx(frame), tx))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<T> {
        self.tx.take()
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

/// What one egress pass put on the wire.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct EgressCount {
    /// Frames carrying IP (anything but ARP).
    pub ip_frames: u32,
    /// The device refused a transmit token.
    pub exhausted: bool,
}

/// Counts the transmissions of one socket's egress.
pub(crate) struct Egress<'d, D> {
    dev: &'d mut D,
    caps: &'d DeviceCapabilities,
    pub count: EgressCount,
}

impl<'d, D: Device> Egress<'d, D> {
    pub fn new(dev: &'d mut D, caps: &'d DeviceCapabilities) -> Self {
        Egress { dev, caps, count: EgressCount::default() }
    }
}

/// A transmit token that reports whether it carried IP.
pub(crate) struct CountTx<'c, T> {
    inner: T,
    medium: Medium,
    ip_frames: &'c mut u32,
}

impl<T: TxToken> TxToken for CountTx<'_, T> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let (medium, ip_frames) = (self.medium, self.ip_frames);
        self.inner.consume(len, |buf| {
            let r = f(buf);
            let arp = medium == Medium::Ethernet && buf.get(12..14) == Some(&[0x08, 0x06][..]);
            if !arp {
                *ip_frames += 1;
            }
            r
        })
    }
}

impl<D: Device> Device for Egress<'_, D> {
    type RxToken<'a>
        = D::RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = CountTx<'a, D::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        None
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        let medium = self.caps.medium;
        match self.dev.transmit(timestamp) {
            Some(inner) => Some(CountTx { inner, medium, ip_frames: &mut self.count.ip_frames }),
            None => {
                self.count.exhausted = true;
                None
            }
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}
