//! Neighbours: teaching a stack a neighbour's MAC address without waiting for ARP, and
//! asking for one per neighbour.
//!
//! Per-core stacks share one IP and MAC on a NIC, but an ARP reply lands on one queue,
//! hence one core: the other cores' stacks would never resolve the gateway. smoltcp's
//! neighbour cache has no public insert, so [`Core::add_neighbor`] feeds the interface a
//! synthetic ARP reply (from the neighbour, to this stack) through the normal ingress
//! path: the cache is filled exactly as a real reply would fill it, and connections
//! stalled on ARP are retried. A worker that learns a neighbour (or knows its gateway
//! from configuration) hands it to every core this way.
//!
//! smoltcp sends at most one ARP request a second per interface, and a connection that
//! waits for a neighbour retries once a second too: a neighbour that never answers (the
//! source of a spoofed SYN, a host gone) would take that one request every second and
//! starve every other neighbour, so that no new peer could be reached. [`Core::solicit`]
//! asks for each neighbour a connection waits for itself, once a second per neighbour,
//! as Linux's per-neighbour ARP state does.

use std::io;

use smoltcp::phy::{Device, Medium, TxToken};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Ipv4Address,
};

use super::core::Core;
use super::steer::Origin;

/// How often one neighbour is asked again.
const SOLICIT_INTERVAL: Duration = Duration::from_secs(1);
/// Neighbours remembered as asked; beyond, those asked longest ago are forgotten.
const MAX_SOLICITED: usize = 1024;

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

    /// A connection to `remote` has a segment to send but no MAC for its next hop: ask
    /// for it with an ARP request, unless this neighbour was asked less than a second ago.
    pub fn solicit<D: Device>(&mut self, dev: &mut D, remote: Ipv4Address, now: Instant) {
        if self.caps.medium != Medium::Ethernet {
            return;
        }
        let hop = if self.cfg.address.contains_addr(&remote) { remote } else { self.cfg.gateway.unwrap_or(remote) };
        if !self.cfg.address.contains_addr(&hop) {
            return; // No route: nobody to ask.
        }
        if self.solicited.get(&hop).is_some_and(|at| now < *at + SOLICIT_INTERVAL) {
            return;
        }
        if self.solicited.len() >= MAX_SOLICITED {
            self.solicited.retain(|_, at| now < *at + SOLICIT_INTERVAL);
            if self.solicited.len() >= MAX_SOLICITED {
                return;
            }
        }
        let Some(tx) = dev.transmit(now) else {
            return;
        };
        let ours = self.cfg.hardware_addr;
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: ours,
            source_protocol_addr: self.cfg.address.address(),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: hop,
        };
        let eth =
            EthernetRepr { src_addr: ours, dst_addr: EthernetAddress::BROADCAST, ethertype: EthernetProtocol::Arp };
        tx.consume(eth.buffer_len() + arp.buffer_len(), |buf| {
            let mut f = EthernetFrame::new_unchecked(buf);
            eth.emit(&mut f);
            arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
        });
        self.solicited.insert(hop, now);
        self.stats.arp_requests += 1;
    }
}
