//! Ingress demultiplexing: which socket a received frame belongs to.
//!
//! [`classify`] reads just enough of a frame (Ethernet, IPv4 and TCP headers, through
//! smoltcp's checked views, so no input can make it panic) to name the connection's
//! 4-tuple and the TCP flags the demultiplexer needs. Checksums are not verified here:
//! smoltcp verifies them when the one socket chosen processes the segment. The flow
//! table maps a 4-tuple to its connection or to a TIME-WAIT record in O(1).

use std::net::{SocketAddr, SocketAddrV4};

use smoltcp::phy::Medium;
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Address,
    Ipv4Packet, TcpPacket,
};

use super::slab::Key;

/// A connection's 4-tuple, seen from this stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FlowKey {
    pub local: Ipv4Address,
    pub remote: Ipv4Address,
    pub local_port: u16,
    pub remote_port: u16,
}

impl FlowKey {
    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.local, self.local_port))
    }

    pub fn remote_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.remote, self.remote_port))
    }
}

/// What a flow-table entry points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Conn(Key),
    /// A closed connection's 4-tuple, quarantined until `expires`.
    TimeWait {
        expires: Instant,
    },
}

/// The header fields of a received TCP segment that demultiplexing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub key: FlowKey,
    pub syn: bool,
    pub ack: bool,
    pub rst: bool,
    pub fin: bool,
    pub seq: u32,
    pub ack_number: u32,
    pub payload_len: usize,
    /// Source MAC on an Ethernet medium: where a stateless reply goes.
    pub src_mac: Option<EthernetAddress>,
}

/// A received frame, sorted for dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Classified {
    Tcp(Segment),
    /// ARP; for a request, the address asked about.
    Arp {
        request_for: Option<Ipv4Address>,
    },
    /// Anything else (ICMP, UDP, fragments, malformed): smoltcp handles or drops it.
    Other,
}

/// Sort a raw frame without trusting any of it.
pub(crate) fn classify(frame: &[u8], medium: Medium) -> Classified {
    let (ip, src_mac) = match medium {
        Medium::Ethernet => {
            let Ok(eth) = EthernetFrame::new_checked(frame) else {
                return Classified::Other;
            };
            match eth.ethertype() {
                EthernetProtocol::Ipv4 => (eth.payload(), Some(eth.src_addr())),
                EthernetProtocol::Arp => return classify_arp(eth.payload()),
                _ => return Classified::Other,
            }
        }
        _ => (frame, None),
    };
    let Ok(ipv4) = Ipv4Packet::new_checked(ip) else {
        return Classified::Other;
    };
    if ipv4.next_header() != IpProtocol::Tcp || ipv4.more_frags() || ipv4.frag_offset() != 0 {
        return Classified::Other;
    }
    let Ok(tcp) = TcpPacket::new_checked(ipv4.payload()) else {
        return Classified::Other;
    };
    Classified::Tcp(Segment {
        key: FlowKey {
            local: ipv4.dst_addr(),
            remote: ipv4.src_addr(),
            local_port: tcp.dst_port(),
            remote_port: tcp.src_port(),
        },
        syn: tcp.syn(),
        ack: tcp.ack(),
        rst: tcp.rst(),
        fin: tcp.fin(),
        seq: tcp.seq_number().0 as u32,
        ack_number: tcp.ack_number().0 as u32,
        payload_len: tcp.payload().len(),
        src_mac,
    })
}

fn classify_arp(payload: &[u8]) -> Classified {
    let request_for =
        ArpPacket::new_checked(payload).ok().and_then(|p| ArpRepr::parse(&p).ok()).and_then(|repr| match repr {
            ArpRepr::EthernetIpv4 { operation: ArpOperation::Request, target_protocol_addr, .. } => {
                Some(target_protocol_addr)
            }
            _ => None,
        });
    Classified::Arp { request_for }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{EthernetRepr, IpAddress, Ipv4Repr, TcpControl, TcpRepr, TcpSeqNumber};

    fn syn_frame() -> Vec<u8> {
        let src = Ipv4Address::new(10, 99, 0, 2);
        let dst = Ipv4Address::new(10, 99, 0, 1);
        let tcp = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(7),
            ack_number: None,
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = vec![0u8; 14 + 20 + tcp.buffer_len()];
        let caps = ChecksumCapabilities::default();
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut f);
        let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
        ip.emit(&mut p, &caps);
        let mut t = TcpPacket::new_unchecked(p.payload_mut());
        tcp.emit(&mut t, &IpAddress::Ipv4(src), &IpAddress::Ipv4(dst), &caps);
        buf
    }

    #[test]
    fn a_syn_names_its_tuple() {
        let Classified::Tcp(seg) = classify(&syn_frame(), Medium::Ethernet) else {
            panic!("not tcp");
        };
        assert_eq!(seg.key.local_addr(), "10.99.0.1:80".parse().unwrap());
        assert_eq!(seg.key.remote_addr(), "10.99.0.2:40000".parse().unwrap());
        assert!(seg.syn && !seg.ack && !seg.rst && !seg.fin);
        assert_eq!(seg.seq, 7);
        assert_eq!(seg.src_mac, Some(EthernetAddress([2, 0, 0, 0, 0, 2])));
        let Classified::Tcp(same) = classify(&syn_frame()[14..], Medium::Ip) else {
            panic!("not tcp on Medium::Ip");
        };
        assert_eq!(same.key, seg.key);
    }

    #[test]
    fn truncated_or_garbage_frames_are_other() {
        let frame = syn_frame();
        for len in 0..frame.len() {
            let c = classify(&frame[..len], Medium::Ethernet);
            assert!(matches!(c, Classified::Other), "len {len}: {c:?}");
        }
        let mut arp = frame.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(classify(&arp, Medium::Ethernet), Classified::Arp { request_for: None });
        assert_eq!(classify(&[0xff; 80], Medium::Ethernet), Classified::Other);
    }
}
