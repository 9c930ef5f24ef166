//! Flow steering: every flow is served by the core that owns it, whichever queue its
//! frames arrive on.
//!
//! A downstream flow belongs to the core whose queue received its SYN (that core's
//! stack holds the connection); an upstream flow belongs to the core whose ephemeral
//! port range its local port lies in (that core opened it). The NIC's RSS hash — or,
//! on veth, the peer's transmit queue — may deliver a frame elsewhere. The receiving
//! stack looks every TCP segment up in its own flow table first, so the common case
//! costs nothing extra; only on a miss does it ask [`FlowSteering`]:
//!
//! - the local port lies in another core's ephemeral range and no listener has it:
//!   hand the frame to that core (an upstream reply);
//! - otherwise (a listener's port, or no owner by port): the flow, if it exists, is a
//!   downstream flow another core accepted; hand the frame to the next core, counting
//!   hops, until every core has looked it up. The last one answers it as a stray (RST).
//!   Nothing is shared between cores but the frame itself.
//! - A SYN is always served where it arrived: that is what makes its core the owner.
//!
//! Neighbours: an ARP frame that reaches one core's queue is processed there and a copy
//! goes to every other core, which only learns the sender's address from it (so the
//! gateway, resolved by one core, is known to all; and no core answers twice).
//!
//! Hand-offs travel through [`Handoff`] and are counted on both ends.

use std::io;

use smoltcp::phy::Device;
use smoltcp::time::Instant;
use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol};

use super::core::Core;
use super::handoff::{Handoff, HandoffStats, Parcel, ParcelKind};

/// Where a received frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// This core's own datapath queue: it may be handed on or shared.
    Device,
    /// Another core handed it over after `hops` cores looked it up.
    Handed(u8),
    /// Made up by the stack itself (a synthetic ARP reply): never handed on.
    Local,
}

/// One core's flow-steering state: the port ranges of all cores and its hand-off end.
pub struct FlowSteering {
    handoff: Handoff,
    /// `(first, last, core)` of every core's ephemeral range, sorted by `first`.
    ranges: Vec<(u16, u16, usize)>,
    /// A handed-over frame that found no transmit slot; retried next round.
    deferred: Option<Parcel>,
    /// ARP copies sent to (and learned from) other cores.
    pub(crate) neighbors_shared: u64,
    pub(crate) neighbors_learned: u64,
}

impl std::fmt::Debug for FlowSteering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowSteering").field("handoff", &self.handoff).field("ranges", &self.ranges).finish()
    }
}

/// Counters of one core's flow steering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SteeringStats {
    pub handoff: HandoffStats,
    /// ARP frames copied to the other cores.
    pub neighbors_shared: u64,
    /// Neighbours learned from another core's ARP copy.
    pub neighbors_learned: u64,
}

impl FlowSteering {
    /// Steering for `handoff`'s core, where `ephemeral[i]` is core `i`'s (inclusive)
    /// ephemeral port range. The ranges must not overlap; there must be one per core.
    pub fn new(handoff: Handoff, ephemeral: &[(u16, u16)]) -> io::Result<FlowSteering> {
        let bad = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, format!("flow steering: {what}")));
        if ephemeral.len() != handoff.cores() {
            return bad("one ephemeral port range per core is needed");
        }
        if handoff.cores() > usize::from(u8::MAX) {
            return bad("at most 255 cores");
        }
        let mut ranges: Vec<(u16, u16, usize)> =
            ephemeral.iter().enumerate().map(|(core, &(first, last))| (first, last, core)).collect();
        ranges.sort_unstable();
        if ranges.iter().any(|r| r.0 == 0 || r.0 > r.1) || ranges.windows(2).any(|w| w[0].1 >= w[1].0) {
            return bad("ephemeral ranges must be non-empty, without port 0, and must not overlap");
        }
        Ok(FlowSteering { handoff, ranges, deferred: None, neighbors_shared: 0, neighbors_learned: 0 })
    }

    pub fn core(&self) -> usize {
        self.handoff.core()
    }

    /// This core's ephemeral range.
    pub fn own_range(&self) -> (u16, u16) {
        let me = self.core();
        self.ranges.iter().find(|r| r.2 == me).map(|r| (r.0, r.1)).unwrap_or((0, 0))
    }

    pub fn stats(&self) -> SteeringStats {
        SteeringStats {
            handoff: self.handoff.stats(),
            neighbors_shared: self.neighbors_shared,
            neighbors_learned: self.neighbors_learned,
        }
    }

    /// The core whose ephemeral range holds `port`.
    fn port_owner(&self, port: u16) -> Option<usize> {
        let i = self.ranges.partition_point(|r| r.0 <= port);
        let r = self.ranges.get(i.checked_sub(1)?)?;
        (port <= r.1).then_some(r.2)
    }

    /// For a segment that matched no flow here and opens nothing: the core to hand it
    /// to and the hop count it carries, or `None` to answer it here.
    fn route_miss(&self, port: u16, listening: bool, origin: Origin) -> Option<(usize, u8)> {
        let (me, cores) = (self.core(), self.handoff.cores());
        let seen = match origin {
            Origin::Device => 1,
            Origin::Handed(hops) => hops.saturating_add(1),
            Origin::Local => return None,
        };
        if !listening {
            if let Some(owner) = self.port_owner(port) {
                // An upstream reply: its owner decides (and never hands it on).
                return (owner != me && origin == Origin::Device).then_some((owner, seen));
            }
        }
        (usize::from(seen) < cores).then_some(((me + 1) % cores, seen))
    }

    /// Whether a frame is waiting to be taken (in the inbox or deferred).
    pub(crate) fn has_pending(&self) -> bool {
        self.deferred.is_some() || self.handoff.has_pending()
    }

    pub(crate) fn park(&self) -> bool {
        self.deferred.is_none() && self.handoff.park()
    }

    pub(crate) fn unpark(&self) {
        self.handoff.unpark();
    }

    pub(crate) fn flush_wakes(&mut self) {
        self.handoff.flush_wakes();
    }
}

/// Whether an Ethernet frame is ARP.
fn is_arp(frame: &[u8]) -> bool {
    EthernetFrame::new_checked(frame).is_ok_and(|f| f.ethertype() == EthernetProtocol::Arp)
}

impl Core {
    /// A TCP segment for no flow here (not a SYN): hand it to the core that may own it.
    /// True when it was handed over (or dropped trying); false to answer it here.
    pub(crate) fn steer_miss(&mut self, frame: &[u8], port: u16, origin: Origin) -> bool {
        let listening = self.ports.is_listening(port);
        let Some(st) = self.steer.as_mut() else {
            return false;
        };
        let Some((to, hops)) = st.route_miss(port, listening, origin) else {
            return false;
        };
        st.handoff.send(to, frame, hops, ParcelKind::Flow);
        true
    }

    /// An ARP frame this core processed: let the other cores learn its sender.
    pub(crate) fn share_neighbor(&mut self, frame: &[u8], origin: Origin) {
        let Some(st) = self.steer.as_mut() else {
            return;
        };
        if origin != Origin::Device {
            return;
        }
        let me = st.core();
        for to in (0..st.handoff.cores()).filter(|&c| c != me) {
            if st.handoff.send(to, frame, 1, ParcelKind::Neighbor) {
                st.neighbors_shared += 1;
            }
        }
    }

    /// Process the frames other cores handed over, at most `budget`; returns how many.
    pub(crate) fn handoff_ingress<D: Device>(&mut self, dev: &mut D, now: Instant, budget: usize) -> usize {
        let mut done = 0;
        while done < budget {
            let Some(st) = self.steer.as_mut() else {
                break;
            };
            let Some(parcel) = st.deferred.take().or_else(|| st.handoff.recv()) else {
                break;
            };
            match parcel.kind {
                ParcelKind::Neighbor => self.learn_neighbor(parcel.frame(), now),
                ParcelKind::Flow => {
                    let Some(tx) = dev.transmit(now) else {
                        // No room to answer: keep it for the next round.
                        if let Some(st) = self.steer.as_mut() {
                            st.deferred = Some(parcel);
                        }
                        break;
                    };
                    self.ingress_from(parcel.frame(), tx, now, Origin::Handed(parcel.hops));
                }
            }
            if let Some(st) = self.steer.as_mut() {
                st.handoff.recycle(parcel);
            }
            done += 1;
        }
        done
    }

    /// Learn the sender of another core's ARP frame (without answering it).
    fn learn_neighbor(&mut self, frame: &[u8], now: Instant) {
        if !is_arp(frame) {
            return;
        }
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        let repr = ArpPacket::new_checked(eth.payload()).ok().and_then(|p| ArpRepr::parse(&p).ok());
        let Some(ArpRepr::EthernetIpv4 { operation, source_hardware_addr, source_protocol_addr, .. }) = repr else {
            return;
        };
        if !matches!(operation, ArpOperation::Request | ArpOperation::Reply) {
            return;
        }
        if self.add_neighbor(source_protocol_addr, source_hardware_addr, now).is_ok() {
            if let Some(st) = self.steer.as_mut() {
                st.neighbors_learned += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smol::handoff::HandoffConfig;
    use sluice_datapath::DatapathWaker;
    use std::sync::Arc;

    struct Nop;
    impl DatapathWaker for Nop {
        fn wake(&self) -> io::Result<()> {
            Ok(())
        }
    }

    fn steering(cores: usize, ranges: &[(u16, u16)]) -> Vec<io::Result<FlowSteering>> {
        let wakers = (0..cores).map(|_| Arc::new(Nop) as Arc<dyn DatapathWaker>).collect();
        Handoff::fabric(wakers, &HandoffConfig { inbox: 4, frame_size: 64 })
            .into_iter()
            .map(|h| FlowSteering::new(h, ranges))
            .collect()
    }

    #[test]
    fn ranges_are_checked() {
        assert!(steering(2, &[(100, 199)]).remove(0).is_err(), "one per core");
        assert!(steering(2, &[(100, 199), (150, 250)]).remove(0).is_err(), "overlap");
        assert!(steering(2, &[(0, 10), (11, 20)]).remove(0).is_err(), "port 0");
        assert!(steering(2, &[(20, 10), (30, 40)]).remove(0).is_err(), "empty");
        let s = steering(2, &[(200, 299), (100, 199)]).remove(1).unwrap();
        assert_eq!(s.own_range(), (100, 199));
    }

    #[test]
    fn upstream_replies_go_to_the_port_owner_downstream_misses_circulate() {
        let mut all = steering(3, &[(1000, 1999), (2000, 2999), (3000, 3999)]);
        let s1 = all.remove(1).unwrap();
        assert_eq!(s1.port_owner(999), None);
        assert_eq!(s1.port_owner(1000), Some(0));
        assert_eq!(s1.port_owner(2999), Some(1));
        assert_eq!(s1.port_owner(3999), Some(2));
        assert_eq!(s1.port_owner(4000), None);
        // An upstream reply on the wrong queue goes to its owner, once.
        assert_eq!(s1.route_miss(1500, false, Origin::Device), Some((0, 1)));
        assert_eq!(s1.route_miss(1500, false, Origin::Handed(1)), None);
        // Our own port with no flow: a stray, answered here.
        assert_eq!(s1.route_miss(2500, false, Origin::Device), None);
        // A listener's port (even inside a range) or an unowned port: next core, until
        // all three have looked.
        assert_eq!(s1.route_miss(80, true, Origin::Device), Some((2, 1)));
        assert_eq!(s1.route_miss(1500, true, Origin::Device), Some((2, 1)));
        assert_eq!(s1.route_miss(8080, false, Origin::Handed(1)), Some((2, 2)));
        assert_eq!(s1.route_miss(8080, false, Origin::Handed(2)), None);
        assert_eq!(s1.route_miss(80, true, Origin::Local), None);
    }

    #[test]
    fn a_single_core_never_hands_off() {
        let s = steering(1, &[(1000, 1999)]).remove(0).unwrap();
        assert_eq!(s.route_miss(80, true, Origin::Device), None);
        assert_eq!(s.route_miss(1500, false, Origin::Device), None);
    }
}
