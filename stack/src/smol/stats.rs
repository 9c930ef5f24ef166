//! Counters and gauges of one smol stack, read by the worker for stats.

/// Counters (monotonic) and gauges (current values) of one per-core smol stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmolStats {
    /// Connections taken with `accept`.
    pub accepts: u64,
    /// Connections started with `connect`.
    pub connects: u64,
    /// Connects refused because no local port or connection slot was free.
    pub connect_exhausted: u64,
    /// SYNs dropped because the listener's backlog was full.
    pub listen_overflows: u64,
    /// SYNs dropped because the stack held `max_connections` already.
    pub syn_dropped_no_slot: u64,
    /// Frames taken from the datapath.
    pub rx_frames: u64,
    /// IP frames handed to the datapath by connections.
    pub tx_frames: u64,
    /// Frames for no connection and no listener (smoltcp answers with RST where due).
    pub rx_unmatched: u64,
    /// Retransmitted FINs answered from a TIME-WAIT record.
    pub time_wait_acks: u64,
    /// TIME-WAIT records dropped early to stay within `max_time_wait`.
    pub time_wait_evicted: u64,
    /// TIME-WAIT tuples reused by `connect` (after `time_wait_reuse`).
    pub time_wait_reused: u64,
    /// SYNs that opened a new connection on the tuple of a CLOSED connection its owner
    /// had not released yet.
    pub syn_took_closed_tuple: u64,
    /// Connections released with their final RST unsent: the peer had no route or
    /// answered no ARP request for `UNDELIVERED_RST_LIMIT` (a spoofed SYN, a host gone).
    pub rst_undelivered: u64,
    /// ARP requests the stack sent itself, at most one a second per neighbour, for
    /// connections waiting for a neighbour's MAC.
    pub arp_requests: u64,
    /// Connection visits by poll rounds (egress, deadlines, readiness). Grows with
    /// traffic and due timers, never with the number of idle connections.
    pub visits: u64,
    /// Segments with payload dropped because no receive storage was free within
    /// `buffer_memory` (the peer retransmits them).
    pub rx_no_buffer: u64,
    /// Writes refused (`WouldBlock`) because no send storage was free within
    /// `buffer_memory` (the writer is woken when storage comes back).
    pub tx_no_buffer: u64,
    /// Gauge: bytes of receive and send storage attached to connections.
    pub buffer_bytes: u64,
    /// Gauge: drained buffers kept for reuse.
    pub idle_buffers: u64,
    /// Gauge: connections held (any state, orphans included).
    pub connections: u64,
    /// Gauge: TIME-WAIT records held.
    pub time_wait: u64,
    /// Gauge: sockets allocated and idle in the reuse cache or listener pools.
    pub idle_sockets: u64,
}
