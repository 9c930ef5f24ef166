//! Settings of one per-core smol stack: addressing, ports, buffers and TCP timers.
//!
//! Defaults are sized for a proxy: 128 KiB receive and send buffers per connection
//! (window scaling on: a 128 KiB receive buffer advertises a shift of 2), taken only while
//! data needs them, from at most 1 GiB of buffer storage per core (see `buffers`), Nagle off,
//! CUBIC congestion control, a LISTEN-socket pool of 8 per listener, TIME-WAIT kept as a
//! record of under 100 bytes for 60 s (at most 65 536 per core) instead of a whole socket.
//! [`SmolConfig::validate`] turns every bad value into an `InvalidInput` error.

use std::io;

use smoltcp::socket::tcp::CongestionControl;
use smoltcp::time::Duration;
use smoltcp::wire::{EthernetAddress, Ipv4Address, Ipv4Cidr};

/// Per-stack settings. Build with [`SmolConfig::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct SmolConfig {
    /// MAC of this stack on an Ethernet datapath (ignored on `Medium::Ip`).
    pub hardware_addr: EthernetAddress,
    /// The interface address and its on-link prefix, e.g. `10.99.1.1/24`.
    pub address: Ipv4Cidr,
    /// Next hop for destinations outside `address`'s prefix.
    pub gateway: Option<Ipv4Address>,
    /// Accept segments for any destination address (smoltcp `any_ip`): an accepted
    /// connection's local address is then its original destination. On by default; turn
    /// it off for plain hosts (test clients and origins) that share a network with one.
    pub any_ip: bool,
    /// Answer ARP for every address of the prefix (proxy ARP), so that on-link clients
    /// reach virtual addresses directly. Off by default: the stack answers ARP for its
    /// own address only, and (with `any_ip`) still accepts traffic for any destination
    /// that is sent to its MAC, e.g. routed through it as a gateway.
    pub proxy_arp: bool,
    /// Inclusive range of local ports for `connect`, owned by this core so that return
    /// traffic can be steered back to it.
    pub ephemeral_ports: (u16, u16),
    /// Receive buffer per connection (also the largest advertised window).
    pub rx_buffer: usize,
    /// Send buffer per connection.
    pub tx_buffer: usize,
    /// Most bytes of receive and send storage attached to this stack's connections at
    /// once, half for each direction. A connection holds storage only while it has bytes
    /// to read or to have acknowledged; beyond this, arriving payload is dropped (the
    /// peer retransmits it) and writes wait.
    pub buffer_memory: usize,
    /// Drained buffers kept for reuse, per direction; the rest are freed.
    pub buffer_keep: usize,
    /// Most connections (established, embryonic and closing) this stack holds.
    pub max_connections: usize,
    /// Idle LISTEN sockets each listener keeps ready (capped by its backlog).
    pub listen_pool: usize,
    /// Closed sockets kept for reuse so that steady churn does not allocate.
    pub socket_cache: usize,
    /// How long a closed connection's 4-tuple stays in TIME-WAIT.
    pub time_wait: Duration,
    /// TIME-WAIT records kept at most; the oldest are dropped beyond this.
    pub max_time_wait: usize,
    /// A `connect` may reuse a 4-tuple that has been in TIME-WAIT this long (like
    /// Linux's `tcp_tw_reuse`), so ports never run out under churn.
    pub time_wait_reuse: Duration,
    /// A handshake (either side) that does not complete in this time fails.
    pub handshake_timeout: Duration,
    /// A closed connection that hears nothing from its peer for this long is dropped
    /// (FIN-WAIT-2, LAST-ACK, CLOSING; Linux's `tcp_fin_timeout`).
    pub fin_timeout: Duration,
    /// Delayed-ACK time (`None`: ACK at once).
    pub ack_delay: Option<Duration>,
    /// TCP keep-alive interval (`None`: off, as for kernel sockets by default).
    pub keep_alive: Option<Duration>,
    pub congestion: CongestionControl,
    /// Frames taken from the datapath per poll round; more wait for the next round.
    pub ingress_budget: usize,
    /// Seed for initial sequence numbers (and anything else smoltcp randomises).
    pub random_seed: u64,
}

impl SmolConfig {
    /// Defaults for a stack at `address` with MAC `hardware_addr`.
    pub fn new(hardware_addr: EthernetAddress, address: Ipv4Cidr) -> SmolConfig {
        SmolConfig {
            hardware_addr,
            address,
            gateway: None,
            any_ip: true,
            proxy_arp: false,
            ephemeral_ports: (32768, 60999),
            rx_buffer: 128 * 1024,
            tx_buffer: 128 * 1024,
            buffer_memory: 1 << 30,
            buffer_keep: 256,
            max_connections: 1 << 20,
            listen_pool: 8,
            socket_cache: 1024,
            time_wait: Duration::from_secs(60),
            max_time_wait: 65_536,
            time_wait_reuse: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(60),
            fin_timeout: Duration::from_secs(60),
            ack_delay: Some(Duration::from_millis(10)),
            keep_alive: None,
            congestion: CongestionControl::Cubic,
            ingress_budget: 256,
            random_seed: 0,
        }
    }

    /// Check every field; the error names the field.
    pub fn validate(&self) -> io::Result<()> {
        let bad = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, format!("smol config: {what}")));
        if !self.hardware_addr.is_unicast() {
            return bad("hardware_addr must be a unicast MAC");
        }
        let ip = self.address.address();
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || self.address.prefix_len() > 32 {
            return bad("address must be a unicast IPv4 address with a prefix of at most 32");
        }
        if let Some(gw) = self.gateway {
            if !self.address.contains_addr(&gw) || gw == ip {
                return bad("gateway must be another address inside the interface prefix");
            }
        }
        let (lo, hi) = self.ephemeral_ports;
        if lo == 0 || lo > hi {
            return bad("ephemeral_ports must be a non-empty range of non-zero ports");
        }
        for (name, size) in [("rx_buffer", self.rx_buffer), ("tx_buffer", self.tx_buffer)] {
            if !(1024..=(1 << 30)).contains(&size) {
                return bad(&format!("{name} must lie in 1 KiB..=1 GiB"));
            }
        }
        if self.buffer_memory / 2 < self.rx_buffer.max(self.tx_buffer) {
            return bad("buffer_memory must hold at least two of the larger of rx_buffer and tx_buffer");
        }
        if self.max_connections == 0 || self.ingress_budget == 0 {
            return bad("max_connections and ingress_budget must be positive");
        }
        if self.time_wait_reuse > self.time_wait {
            return bad("time_wait_reuse must not exceed time_wait");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> SmolConfig {
        SmolConfig::new(EthernetAddress([2, 0, 0, 0, 0, 1]), Ipv4Cidr::new(Ipv4Address::new(10, 99, 0, 1), 24))
    }

    #[test]
    fn defaults_are_valid() {
        base().validate().unwrap();
    }

    #[test]
    fn bad_values_are_refused_with_their_name() {
        let mut c = base();
        c.ephemeral_ports = (5000, 4000);
        assert!(c.validate().unwrap_err().to_string().contains("ephemeral_ports"));
        let mut c = base();
        c.rx_buffer = 10;
        assert!(c.validate().unwrap_err().to_string().contains("rx_buffer"));
        let mut c = base();
        c.buffer_memory = c.rx_buffer;
        assert!(c.validate().unwrap_err().to_string().contains("buffer_memory"));
        let mut c = base();
        c.gateway = Some(Ipv4Address::new(192, 168, 0, 1));
        assert!(c.validate().unwrap_err().to_string().contains("gateway"));
        let mut c = base();
        c.hardware_addr = EthernetAddress::BROADCAST;
        assert!(c.validate().is_err());
    }
}
