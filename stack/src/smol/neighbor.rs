//! Teaching a stack a neighbour's MAC address without waiting for ARP.
//!
//! Per-core stacks share one IP and MAC on a NIC, but an ARP reply lands on one queue,
//! hence one core: the other cores' stacks would never resolve the gateway. smoltcp's
//! neighbour cache has no public insert, so [`Core::add_neighbor`] feeds the interface a
//! synthetic ARP reply (from the neighbour, to this stack) through the normal ingress
//! path: the cache is filled exactly as a real reply would fill it, and connections
//! stalled on ARP are retried. A worker that learns a neighbour (or knows its gateway
//! from configuration) hands it to every core this way.

use std::io;

use smoltcp::phy::{Medium, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Ipv4Address,
};

use super::core::Core;
use super::steer::Origin;

/// A transmit token that sends nothing (processing an ARP reply answers nothing).
struct Discard;

impl TxToken for Discard {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut small = [0u8; 128];
        match small.get_mut(..len) {
            Some(buf) => f(buf),
            None => f(&mut vec![0u8; len]),
        }
    }
}

impl Core {
    /// Record that `ip` (on-link) is at `mac`.
    pub fn add_neighbor(&mut self, ip: Ipv4Address, mac: EthernetAddress, now: Instant) -> io::Result<()> {
        if self.caps.medium != Medium::Ethernet {
            return Ok(());
        }
        if !mac.is_unicast() || !self.cfg.address.contains_addr(&ip) || ip.is_broadcast() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a neighbour is an on-link unicast IPv4 address with a unicast MAC",
            ));
        }
        let ours = self.cfg.hardware_addr;
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: mac,
            source_protocol_addr: ip,
            target_hardware_addr: ours,
            target_protocol_addr: self.cfg.address.address(),
        };
        let eth = EthernetRepr { src_addr: mac, dst_addr: ours, ethertype: EthernetProtocol::Arp };
        let mut frame = [0u8; 42];
        let mut f = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.emit(&mut f);
        arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
        self.ingress_from(&frame, Discard, now, Origin::Local);
        Ok(())
    }
}
