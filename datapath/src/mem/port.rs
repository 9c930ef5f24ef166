//! One port of an in-memory network: the smoltcp `phy::Device` and [`Datapath`] a stack
//! runs on. Transmit tokens fill a pooled buffer and put it on the wire (faults applied
//! there); receive tokens lend a due frame and give its buffer back afterwards; `wait`
//! sleeps on the port's condition variable until a frame is due, the timeout passes or a
//! waker fires.

use std::cell::RefCell;
use std::io;
use std::sync::{Arc, Condvar};

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::EthernetAddress;

use super::{InFlight, MemNetwork, PortStats, Shared, CACHE_BATCH, CACHE_HIGH};
use crate::{Datapath, DatapathWaker};

/// One end of a [`MemNetwork`]: a smoltcp device and a [`Datapath`].
pub struct MemPort {
    pub(super) shared: Arc<Shared>,
    pub(super) index: usize,
    pub(super) mac: EthernetAddress,
    pub(super) signal: Arc<Condvar>,
    pub(super) cache: RefCell<Vec<Vec<u8>>>,
    pub(super) caps: DeviceCapabilities,
}

impl MemPort {
    pub fn index(&self) -> usize {
        self.index
    }

    /// The port's MAC address (use it as the stack's hardware address).
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    pub fn network(&self) -> MemNetwork {
        MemNetwork { shared: Arc::clone(&self.shared) }
    }

    pub fn stats(&self) -> PortStats {
        self.shared.lock().ports[self.index].stats
    }

    fn take_buffer(&self) -> Vec<u8> {
        let mut cache = self.cache.borrow_mut();
        if cache.is_empty() {
            let mut st = self.shared.lock();
            let from = st.pool.len().saturating_sub(CACHE_BATCH);
            cache.extend(st.pool.drain(from..));
        }
        let frame_len = self.caps.max_transmission_unit;
        cache.pop().unwrap_or_else(|| Vec::with_capacity(frame_len))
    }

    fn recycle(&self, buffer: Vec<u8>) {
        let mut cache = self.cache.borrow_mut();
        cache.push(buffer);
        if cache.len() > CACHE_HIGH {
            let from = cache.len() - CACHE_BATCH;
            self.shared.lock().pool.extend(cache.drain(from..));
        }
    }

    /// Put a filled frame on the wire: apply this port's faults and queue it at its
    /// destination(s).
    fn send(&self, frame: Vec<u8>, sent_at: Instant) {
        let config = &self.shared.config;
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        let me = self.index;
        let fate = {
            let port = &mut st.ports[me];
            port.stats.tx_frames += 1;
            port.injector.fate()
        };
        if fate.dropped {
            st.ports[me].stats.lost += 1;
            st.pool.push(frame);
            return;
        }
        if fate.copies > 1 {
            st.ports[me].stats.duplicated += 1;
        }
        if fate.reordered {
            st.ports[me].stats.reordered += 1;
        }
        let due = if fate.delay == Duration::ZERO { Instant::ZERO } else { sent_at + fate.delay };
        let unicast = match config.medium {
            Medium::Ethernet if frame.len() >= 6 => {
                let dst = EthernetAddress::from_bytes(&frame[..6]);
                if dst.is_unicast() {
                    st.ports.iter().enumerate().position(|(i, p)| i != me && p.mac == dst)
                } else {
                    None
                }
            }
            _ => None,
        };
        let targets = match unicast {
            Some(_) => 1,
            None => st.ports.len() - 1,
        };
        let mut remaining = targets * fate.copies as usize;
        if remaining == 0 {
            st.pool.push(frame);
            return;
        }
        let mut original = Some(frame);
        for _ in 0..fate.copies {
            for to in 0..st.ports.len() {
                if to == me || unicast.is_some_and(|u| u != to) {
                    continue;
                }
                remaining -= 1;
                // The last delivery takes the original buffer; the others get copies.
                let frame = if remaining == 0 {
                    original.take().unwrap_or_default()
                } else {
                    let mut dup = st.pool.pop().unwrap_or_default();
                    dup.clear();
                    dup.extend_from_slice(original.as_deref().unwrap_or(&[]));
                    dup
                };
                let seq = st.seq;
                st.seq += 1;
                let port = &mut st.ports[to];
                if port.queue.len() >= config.queue_limit {
                    port.stats.overflowed += 1;
                    st.pool.push(frame);
                    continue;
                }
                port.queue.push(InFlight { due, seq, frame });
                if port.waiting {
                    port.signal.notify_one();
                }
            }
        }
    }
}

/// Receive token: owns the frame, returns its buffer to the port afterwards.
pub struct MemRxToken<'a> {
    port: &'a MemPort,
    frame: Vec<u8>,
}

impl phy::RxToken for MemRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let r = f(&self.frame);
        self.port.recycle(self.frame);
        r
    }
}

/// Transmit token: fills a pooled buffer, then puts it on the wire.
pub struct MemTxToken<'a> {
    port: &'a MemPort,
    sent_at: Instant,
}

impl phy::TxToken for MemTxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut frame = self.port.take_buffer();
        frame.clear();
        frame.resize(len, 0);
        let r = f(&mut frame);
        self.port.send(frame, self.sent_at);
        r
    }
}

impl phy::Device for MemPort {
    type RxToken<'a>
        = MemRxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = MemTxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, timestamp: Instant) -> Option<(MemRxToken<'_>, MemTxToken<'_>)> {
        let frame = {
            let mut st = self.shared.lock();
            let port = &mut st.ports[self.index];
            match port.queue.peek() {
                Some(f) if f.due <= timestamp => {
                    port.stats.rx_frames += 1;
                    port.queue.pop().map(|f| f.frame)
                }
                Some(_) => {
                    // A delayed frame: `wait` needs the real time to sleep until it is due.
                    port.last_ts = timestamp;
                    port.last_real = Some(std::time::Instant::now());
                    None
                }
                None => {
                    port.last_ts = timestamp;
                    port.last_real = None;
                    None
                }
            }
        }?;
        let port = &*self;
        Some((MemRxToken { port, frame }, MemTxToken { port, sent_at: timestamp }))
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<MemTxToken<'_>> {
        Some(MemTxToken { port: self, sent_at: timestamp })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

struct MemWaker {
    shared: Arc<Shared>,
    index: usize,
}

impl DatapathWaker for MemWaker {
    fn wake(&self) -> io::Result<()> {
        let mut st = self.shared.lock();
        let port = &mut st.ports[self.index];
        port.woken = true;
        if port.waiting {
            port.signal.notify_one();
        }
        Ok(())
    }
}

impl Datapath for MemPort {
    fn wait(&mut self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        let mut st = self.shared.lock();
        let port = &mut st.ports[self.index];
        if port.woken {
            port.woken = false;
            return Ok(());
        }
        let now = port.last_ts + port.last_real.map_or(Duration::ZERO, |at| Duration::from(at.elapsed()));
        let due_in =
            port.queue.peek().map(|f| if f.due <= now { std::time::Duration::ZERO } else { (f.due - now).into() });
        let limit = match (timeout, due_in) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if limit == Some(std::time::Duration::ZERO) {
            return Ok(());
        }
        port.waiting = true;
        let signal = Arc::clone(&self.signal);
        st = match limit {
            None => signal.wait(st).unwrap_or_else(|e| e.into_inner()),
            Some(d) => signal.wait_timeout(st, d).unwrap_or_else(|e| e.into_inner()).0,
        };
        let port = &mut st.ports[self.index];
        port.waiting = false;
        port.woken = false;
        Ok(())
    }

    fn waker(&self) -> io::Result<Arc<dyn DatapathWaker>> {
        Ok(Arc::new(MemWaker { shared: Arc::clone(&self.shared), index: self.index }))
    }
}
