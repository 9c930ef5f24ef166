//! TIME-WAIT without sockets.
//!
//! When a connection this stack closed first reaches TIME-WAIT and the application has
//! let go of it, its smoltcp socket (and both buffers) is recycled at once and only its
//! 4-tuple stays behind in the flow table, with an expiry, for `time_wait`: a few dozen
//! bytes instead of a whole socket, so churn exhausts neither memory nor sockets. While
//! quarantined:
//!
//! - a retransmitted FIN (our last ACK was lost) is answered with a stateless ACK built
//!   from the segment itself: `SEQ = SEG.ACK`, `ACK = SEG.SEQ + SEG.LEN + 1`;
//! - a new SYN for a listener reopens the tuple (as Linux accepts one in TIME-WAIT);
//! - RSTs are ignored (RFC 1337) and anything else is dropped;
//! - `connect` may reuse the tuple after `time_wait_reuse` (Linux's `tcp_tw_reuse`).
//!
//! Records expire in FIFO order (they all last the same); beyond `max_time_wait` the
//! oldest are dropped early, like Linux's `tcp_max_tw_buckets`.

use std::collections::{HashMap, VecDeque};

use smoltcp::phy::{ChecksumCapabilities, Medium, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr,
    TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

use super::flow::{Flow, FlowKey, Segment};

/// The quarantined tuples, oldest first.
#[derive(Default)]
pub(crate) struct TimeWait {
    queue: VecDeque<(Instant, FlowKey)>,
    count: usize,
}

impl TimeWait {
    /// Records currently quarantined.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Quarantine `key` until `expires`. Returns how many older records were dropped to
    /// stay within `max`.
    pub fn insert(&mut self, flows: &mut HashMap<FlowKey, Flow>, key: FlowKey, expires: Instant, max: usize) -> u64 {
        if let Some(Flow::TimeWait { .. }) = flows.insert(key, Flow::TimeWait { expires }) {
            self.count -= 1;
        }
        self.count += 1;
        self.queue.push_back((expires, key));
        let mut evicted = 0;
        while self.count > max.max(1) {
            match self.pop_front(flows) {
                Some(true) => evicted += 1,
                Some(false) => {}
                None => break,
            }
        }
        evicted
    }

    /// A record left the flow table some other way (reused by a SYN or a connect).
    pub fn forget(&mut self) {
        self.count = self.count.saturating_sub(1);
    }

    /// Drop every record that expired at `now`.
    pub fn expire(&mut self, now: Instant, flows: &mut HashMap<FlowKey, Flow>) {
        while let Some(&(expires, _)) = self.queue.front() {
            if expires > now {
                break;
            }
            self.pop_front(flows);
        }
    }

    /// Pop the oldest queue entry: `Some(true)` when it was a live record (now removed),
    /// `Some(false)` when stale (the tuple was reused, or quarantined again later).
    fn pop_front(&mut self, flows: &mut HashMap<FlowKey, Flow>) -> Option<bool> {
        let (expires, key) = self.queue.pop_front()?;
        if flows.get(&key) == Some(&Flow::TimeWait { expires }) {
            flows.remove(&key);
            self.count -= 1;
            return Some(true);
        }
        Some(false)
    }
}

/// Answer a retransmitted FIN on a TIME-WAIT tuple with a bare ACK, built statelessly.
/// Returns false (sending nothing) for anything that must not be answered: segments
/// without FIN, RSTs, or a bad checksum.
pub(crate) fn ack_retransmitted_fin<T: TxToken>(
    tx: T,
    frame: &[u8],
    seg: &Segment,
    medium: Medium,
    our_mac: EthernetAddress,
    caps: &ChecksumCapabilities,
) -> bool {
    if !seg.fin || seg.rst || seg.syn {
        return false;
    }
    let header = if medium == Medium::Ethernet { EthernetFrame::<&[u8]>::header_len() } else { 0 };
    let Some(ip) = frame.get(header..) else {
        return false;
    };
    let (Ok(ipv4), local, remote) = (Ipv4Packet::new_checked(ip), seg.key.local, seg.key.remote) else {
        return false;
    };
    let Ok(tcp) = TcpPacket::new_checked(ipv4.payload()) else {
        return false;
    };
    if caps.tcp.rx() && !tcp.verify_checksum(&IpAddress::Ipv4(remote), &IpAddress::Ipv4(local)) {
        return false;
    }
    let reply = TcpRepr {
        src_port: seg.key.local_port,
        dst_port: seg.key.remote_port,
        control: TcpControl::None,
        seq_number: TcpSeqNumber(seg.ack_number as i32),
        ack_number: Some(TcpSeqNumber(seg.seq.wrapping_add(seg.payload_len as u32).wrapping_add(1) as i32)),
        window_len: 0,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let ip_repr = Ipv4Repr {
        src_addr: local,
        dst_addr: remote,
        next_header: IpProtocol::Tcp,
        payload_len: reply.buffer_len(),
        hop_limit: 64,
    };
    let len = header + ip_repr.buffer_len() + reply.buffer_len();
    tx.consume(len, |buf| {
        let ip_buf = if let (Medium::Ethernet, Some(dst)) = (medium, seg.src_mac) {
            let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
            EthernetRepr { src_addr: our_mac, dst_addr: dst, ethertype: EthernetProtocol::Ipv4 }.emit(&mut eth);
            &mut buf[header..]
        } else {
            &mut buf[..]
        };
        let mut packet = Ipv4Packet::new_unchecked(ip_buf);
        ip_repr.emit(&mut packet, caps);
        let mut tcp = TcpPacket::new_unchecked(packet.payload_mut());
        reply.emit(&mut tcp, &IpAddress::Ipv4(local), &IpAddress::Ipv4(remote), caps);
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::Ipv4Address;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            local: Ipv4Address::new(10, 99, 0, 1),
            remote: Ipv4Address::new(10, 99, 0, 2),
            local_port: port,
            remote_port: 80,
        }
    }

    #[test]
    fn records_expire_in_order_and_stay_bounded() {
        let mut flows = HashMap::new();
        let mut tw = TimeWait::default();
        assert_eq!(tw.insert(&mut flows, key(1), Instant::from_secs(10), 2), 0);
        assert_eq!(tw.insert(&mut flows, key(2), Instant::from_secs(11), 2), 0);
        assert_eq!(tw.insert(&mut flows, key(3), Instant::from_secs(12), 2), 1, "oldest evicted");
        assert!(!flows.contains_key(&key(1)));
        assert_eq!(tw.len(), 2);
        // key(2) reused by a new connection: its queue entry goes stale.
        flows.insert(key(2), Flow::Conn(crate::smol::slab::Slab::default().insert(())));
        tw.forget();
        tw.expire(Instant::from_secs(11), &mut flows);
        assert!(flows.contains_key(&key(2)), "a reused tuple is not expired");
        assert_eq!(tw.len(), 1);
        tw.expire(Instant::from_secs(12), &mut flows);
        assert!(!flows.contains_key(&key(3)));
        assert_eq!(tw.len(), 0);
    }
}
