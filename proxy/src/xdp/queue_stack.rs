//! One worker's stack in xdp mode: the per-core smol stack on its AF_XDP queue, which
//! also publishes the queue's counters.
//!
//! Every operation is the smol stack's own. Once a second (checked after each poll,
//! whose timeout is capped so that an idle worker still reports), the queue's datapath
//! counters (userspace and the kernel's `XDP_STATISTICS`), its stack's unmatched frames
//! and gauges, and its flow-steering hand-offs are copied into the `xdp.queue_<n>`
//! stats block that only this worker writes; every tenth time they are also logged at
//! debug level, and when the worker's stack is dropped (sluice exiting) the queue's
//! totals are logged at info level. Nothing is added to the packet path.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_datapath::{XskDevice, XskStats};
use sluice_stack::smol::{SmolStack, SmolStats, SteeringStats};
use sluice_stack::{Accepted, Events, Interest, ListenOptions, SocketId, Stack, StackStats, Token, Wake};

use crate::stats::{Counter, XdpQueueStats};

/// How often the counters are published.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// Publications between two debug log lines.
const LOG_EVERY: u32 = 10;

/// Counter values as last published, to add only the difference.
#[derive(Debug, Default, Clone, Copy)]
struct Published {
    xsk: XskStats,
    steering: SteeringStats,
    smol: SmolStats,
}

/// A queue's smol stack plus its stats publisher.
pub(crate) struct QueueStack {
    inner: SmolStack<XskDevice>,
    queue: u32,
    stats: Arc<XdpQueueStats>,
    last: Published,
    next_publish: Instant,
    publications: u32,
}

fn advance(counter: &Counter, before: u64, now: u64) {
    counter.add(now.saturating_sub(before));
}

impl QueueStack {
    pub fn new(inner: SmolStack<XskDevice>, stats: Arc<XdpQueueStats>) -> QueueStack {
        let queue = inner.device().queue();
        QueueStack {
            inner,
            queue,
            stats,
            last: Published::default(),
            next_publish: Instant::now() + PUBLISH_EVERY,
            publications: 0,
        }
    }

    /// Copy the queue's counters into its stats block (and, now and then, the log).
    fn publish(&mut self) {
        let xsk = match self.inner.device().stats() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(queue = self.queue, "cannot read XDP_STATISTICS: {e}");
                return;
            }
        };
        let smol = self.inner.smol_stats();
        let steering = self.inner.steering_stats();
        let (s, l) = (&self.stats, &self.last);
        advance(&s.rx_packets, l.xsk.rx_packets, xsk.rx_packets);
        advance(&s.rx_bytes, l.xsk.rx_bytes, xsk.rx_bytes);
        advance(&s.tx_packets, l.xsk.tx_packets, xsk.tx_packets);
        advance(&s.tx_bytes, l.xsk.tx_bytes, xsk.tx_bytes);
        advance(&s.rx_fill_ring_empty, l.xsk.rx_fill_ring_empty, xsk.rx_fill_ring_empty);
        advance(&s.rx_ring_full, l.xsk.rx_ring_full, xsk.rx_ring_full);
        advance(&s.rx_dropped, l.xsk.rx_dropped, xsk.rx_dropped);
        advance(&s.rx_invalid, l.xsk.rx_invalid, xsk.rx_invalid);
        advance(&s.tx_ring_full, l.xsk.tx_ring_full, xsk.tx_ring_full);
        advance(&s.tx_invalid, l.xsk.tx_invalid, xsk.tx_invalid);
        advance(&s.tx_kicks, l.xsk.tx_kicks, xsk.tx_kicks);
        advance(&s.rx_wakeups, l.xsk.rx_wakeups, xsk.rx_wakeups);
        advance(&s.rx_no_socket, l.smol.rx_unmatched, smol.rx_unmatched);
        let (h, lh) = (&steering.handoff, &l.steering.handoff);
        advance(&s.handoff_sent, lh.sent, h.sent);
        advance(&s.handoff_received, lh.received, h.received);
        advance(&s.handoff_dropped, lh.dropped(), h.dropped());
        advance(&s.handoff_wakeups, lh.wakeups, h.wakeups);
        advance(&s.neighbors_shared, l.steering.neighbors_shared, steering.neighbors_shared);
        advance(&s.neighbors_learned, l.steering.neighbors_learned, steering.neighbors_learned);
        advance(&s.accepts, l.smol.accepts, smol.accepts);
        advance(&s.connects, l.smol.connects, smol.connects);
        advance(&s.connect_exhausted, l.smol.connect_exhausted, smol.connect_exhausted);
        advance(&s.listen_overflows, l.smol.listen_overflows, smol.listen_overflows);
        advance(&s.syn_dropped_no_slot, l.smol.syn_dropped_no_slot, smol.syn_dropped_no_slot);
        advance(&s.syn_took_closed_tuple, l.smol.syn_took_closed_tuple, smol.syn_took_closed_tuple);
        advance(&s.rst_undelivered, l.smol.rst_undelivered, smol.rst_undelivered);
        advance(&s.arp_requests, l.smol.arp_requests, smol.arp_requests);
        advance(&s.time_wait_evicted, l.smol.time_wait_evicted, smol.time_wait_evicted);
        advance(&s.rx_no_buffer, l.smol.rx_no_buffer, smol.rx_no_buffer);
        advance(&s.tx_no_buffer, l.smol.tx_no_buffer, smol.tx_no_buffer);
        s.connections.set(i64::try_from(smol.connections).unwrap_or(i64::MAX));
        s.time_wait.set(i64::try_from(smol.time_wait).unwrap_or(i64::MAX));
        s.buffer_bytes.set(i64::try_from(smol.buffer_bytes).unwrap_or(i64::MAX));
        self.last = Published { xsk, steering, smol };
        self.publications = self.publications.wrapping_add(1);
        if self.publications % LOG_EVERY == 0 {
            tracing::debug!(
                queue = self.queue,
                rx_packets = xsk.rx_packets,
                rx_bytes = xsk.rx_bytes,
                tx_packets = xsk.tx_packets,
                tx_bytes = xsk.tx_bytes,
                drops = xsk.drops(),
                rx_fill_ring_empty = xsk.rx_fill_ring_empty,
                tx_ring_full = xsk.tx_ring_full,
                invalid = xsk.rx_invalid + xsk.tx_invalid,
                no_socket = smol.rx_unmatched,
                handoff_sent = h.sent,
                handoff_received = h.received,
                handoff_dropped = h.dropped(),
                connections = smol.connections,
                "xdp queue counters"
            );
        }
    }
}

impl Drop for QueueStack {
    /// The queue's totals, once, as the worker exits.
    fn drop(&mut self) {
        self.publish();
        let s = &self.stats;
        let drops = s.rx_fill_ring_empty.get()
            + s.rx_ring_full.get()
            + s.rx_dropped.get()
            + s.rx_invalid.get()
            + s.tx_ring_full.get()
            + s.tx_invalid.get();
        tracing::info!(
            queue = self.queue,
            rx_packets = s.rx_packets.get(),
            rx_bytes = s.rx_bytes.get(),
            tx_packets = s.tx_packets.get(),
            tx_bytes = s.tx_bytes.get(),
            drops,
            rx_fill_ring_empty = s.rx_fill_ring_empty.get(),
            rx_ring_full = s.rx_ring_full.get(),
            tx_ring_full = s.tx_ring_full.get(),
            invalid = s.rx_invalid.get() + s.tx_invalid.get(),
            no_socket = s.rx_no_socket.get(),
            handoff_sent = s.handoff_sent.get(),
            handoff_received = s.handoff_received.get(),
            handoff_dropped = s.handoff_dropped.get(),
            accepts = s.accepts.get(),
            connects = s.connects.get(),
            "xdp queue totals"
        );
    }
}

impl Stack for QueueStack {
    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        let until = self.next_publish.saturating_duration_since(Instant::now());
        let timeout = Some(timeout.map_or(until, |t| t.min(until)));
        self.inner.poll(events, timeout)?;
        let now = Instant::now();
        if now >= self.next_publish {
            self.next_publish = now + PUBLISH_EVERY;
            self.publish();
        }
        Ok(())
    }

    fn waker(&mut self, token: Token) -> io::Result<Arc<dyn Wake>> {
        self.inner.waker(token)
    }

    fn listen(&mut self, addr: SocketAddr, opts: &ListenOptions) -> io::Result<SocketId> {
        self.inner.listen(addr, opts)
    }

    fn accept(&mut self, listener: SocketId) -> io::Result<Accepted> {
        self.inner.accept(listener)
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<SocketId> {
        self.inner.connect(addr)
    }

    fn connect_result(&mut self, socket: SocketId) -> io::Result<()> {
        self.inner.connect_result(socket)
    }

    fn read(&mut self, socket: SocketId, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(socket, buf)
    }

    fn peek(&mut self, socket: SocketId, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.peek(socket, buf)
    }

    fn write(&mut self, socket: SocketId, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(socket, buf)
    }

    fn write_vectored(&mut self, socket: SocketId, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_vectored(socket, bufs)
    }

    fn shutdown_write(&mut self, socket: SocketId) -> io::Result<()> {
        self.inner.shutdown_write(socket)
    }

    fn close(&mut self, socket: SocketId) {
        self.inner.close(socket)
    }

    fn abort(&mut self, socket: SocketId) {
        self.inner.abort(socket)
    }

    fn local_addr(&self, socket: SocketId) -> io::Result<SocketAddr> {
        self.inner.local_addr(socket)
    }

    fn peer_addr(&self, socket: SocketId) -> io::Result<SocketAddr> {
        self.inner.peer_addr(socket)
    }

    fn original_dst(&self, socket: SocketId) -> io::Result<Option<SocketAddr>> {
        self.inner.original_dst(socket)
    }

    fn register(&mut self, socket: SocketId, token: Token, interest: Interest) -> io::Result<()> {
        self.inner.register(socket, token, interest)
    }

    fn reregister(&mut self, socket: SocketId, token: Token, interest: Interest) -> io::Result<()> {
        self.inner.reregister(socket, token, interest)
    }

    fn deregister(&mut self, socket: SocketId) -> io::Result<()> {
        self.inner.deregister(socket)
    }

    fn stats(&self) -> StackStats {
        self.inner.stats()
    }
}
