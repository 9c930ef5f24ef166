//! Verdicts of the steering program on hand-built frames, through the kernel's own
//! `BPF_PROG_TEST_RUN`. Built with fallback `XDP_DROP`, so "sent to sluice" (a redirect
//! to an empty XSKMAP slot) reads as `Drop` and "left to the kernel" as `Pass`.

use super::*;
use crate::testnet;

const OWNED: Ipv4Addr = Ipv4Addr::new(10, 99, 11, 2);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 99, 11, 3);
const SLUICE: XdpAction = XdpAction::Drop;
const KERNEL: XdpAction = XdpAction::Pass;

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn arp(target: Ipv4Addr) -> Vec<u8> {
    let mut f = eth(0x0806);
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 10, 99, 11, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// IPv4 with `options` 4-byte option words, protocol `proto`, then `l4`.
fn ipv4(dst: Ipv4Addr, proto: u8, options: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(0x0800);
    let ihl = 5 + options;
    let total = u16::from(ihl) * 4 + l4.len() as u16;
    f.push(0x40 | ihl);
    f.push(0);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1]);
    f.extend_from_slice(&frag.to_be_bytes());
    f.extend_from_slice(&[64, proto, 0, 0, 10, 99, 11, 1]);
    f.extend_from_slice(&dst.octets());
    f.extend(std::iter::repeat_n(1u8, usize::from(options) * 4));
    f.extend_from_slice(l4);
    f
}

fn tcp(dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    tcp_with(dst, dport, 0, 0)
}

fn tcp_with(dst: Ipv4Addr, dport: u16, options: u8, frag: u16) -> Vec<u8> {
    let mut seg = vec![0xc0, 0x00];
    seg.extend_from_slice(&dport.to_be_bytes());
    seg.extend_from_slice(&[0; 8]);
    seg.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    ipv4(dst, 6, options, frag, &seg)
}

fn verdict(s: &Steering, frame: &[u8]) -> XdpAction {
    let v = s.program().test_run(frame).expect("BPF_PROG_TEST_RUN");
    XdpAction::from_u32(v).expect("a valid XDP action")
}

fn load(cfg: &SteeringConfig) -> Option<Steering> {
    if !testnet::require_root("steering program test") {
        return None;
    }
    Some(Steering::load(cfg, 4, XdpAction::Drop).unwrap_or_else(|e| panic!("{e}")))
}

#[test]
fn owned_arp_and_tcp_go_to_sluice_the_rest_to_the_kernel() {
    let cfg = SteeringConfig { owned: vec![OWNED], ..Default::default() };
    let Some(s) = load(&cfg) else { return };
    assert_eq!(verdict(&s, &arp(OWNED)), SLUICE);
    assert_eq!(verdict(&s, &arp(OTHER)), KERNEL);
    assert_eq!(verdict(&s, &tcp(OWNED, 80)), SLUICE);
    assert_eq!(verdict(&s, &tcp(OWNED, 22)), SLUICE, "no port filter: every port");
    assert_eq!(verdict(&s, &tcp(OTHER, 80)), KERNEL);
    assert_eq!(verdict(&s, &ipv4(OWNED, 17, 0, 0, &[0; 8])), KERNEL, "UDP");
    assert_eq!(verdict(&s, &ipv4(OWNED, 1, 0, 0, &[8, 0, 0, 0, 0, 0, 0, 0])), KERNEL, "ICMP");
    let mut v6 = eth(0x86dd);
    v6.extend_from_slice(&[0x60; 40]);
    assert_eq!(verdict(&s, &v6), KERNEL, "IPv6");
}

#[test]
fn malformed_frames_go_to_the_kernel() {
    let cfg = SteeringConfig { owned: vec![OWNED], ..Default::default() };
    let Some(s) = load(&cfg) else { return };
    // Truncated IPv4 header and truncated ARP.
    let mut short = tcp(OWNED, 80);
    short.truncate(14 + 19);
    assert_eq!(verdict(&s, &short), KERNEL);
    let mut short_arp = arp(OWNED);
    short_arp.truncate(41);
    assert_eq!(verdict(&s, &short_arp), KERNEL);
    // IPv4 with IHL < 5, or a version that is not 4.
    let mut bad_ihl = tcp(OWNED, 80);
    bad_ihl[14] = 0x44;
    assert_eq!(verdict(&s, &bad_ihl), KERNEL);
    let mut bad_version = tcp(OWNED, 80);
    bad_version[14] = 0x65;
    assert_eq!(verdict(&s, &bad_version), KERNEL);
    // ARP for something other than IPv4 over Ethernet.
    let mut odd_arp = arp(OWNED);
    odd_arp[19] = 16;
    assert_eq!(verdict(&s, &odd_arp), KERNEL);
}

#[test]
fn intercept_prefixes_take_tcp_but_not_arp() {
    let cfg = SteeringConfig {
        owned: vec![OWNED],
        intercept: vec![Ipv4Cidr::new(Ipv4Addr::new(10, 99, 12, 0), 24)],
        tcp_ports: None,
    };
    let Some(s) = load(&cfg) else { return };
    assert_eq!(verdict(&s, &tcp(Ipv4Addr::new(10, 99, 12, 77), 443)), SLUICE);
    assert_eq!(verdict(&s, &tcp(Ipv4Addr::new(10, 99, 13, 77), 443)), KERNEL);
    assert_eq!(verdict(&s, &arp(Ipv4Addr::new(10, 99, 12, 77))), KERNEL);
    // Prefixes change at run time.
    s.add_intercept(Ipv4Cidr::new(Ipv4Addr::new(10, 99, 13, 64), 26)).unwrap();
    assert_eq!(verdict(&s, &tcp(Ipv4Addr::new(10, 99, 13, 77), 443)), SLUICE);
    assert_eq!(verdict(&s, &tcp(Ipv4Addr::new(10, 99, 13, 7), 443)), KERNEL);
    assert!(s.remove_intercept(Ipv4Cidr::new(Ipv4Addr::new(10, 99, 12, 0), 24)).unwrap());
    assert_eq!(verdict(&s, &tcp(Ipv4Addr::new(10, 99, 12, 77), 443)), KERNEL);
}

#[test]
fn port_filter_takes_listeners_and_the_ephemeral_range() {
    let cfg = SteeringConfig {
        owned: vec![OWNED],
        intercept: vec![],
        tcp_ports: Some(PortFilter { ports: vec![80, 8443], ephemeral: 40000..=40099 }),
    };
    let Some(s) = load(&cfg) else { return };
    assert_eq!(verdict(&s, &tcp(OWNED, 80)), SLUICE);
    assert_eq!(verdict(&s, &tcp(OWNED, 8443)), SLUICE);
    assert_eq!(verdict(&s, &tcp(OWNED, 22)), KERNEL, "ssh stays with the kernel");
    assert_eq!(verdict(&s, &tcp(OWNED, 40000)), SLUICE);
    assert_eq!(verdict(&s, &tcp(OWNED, 40099)), SLUICE);
    assert_eq!(verdict(&s, &tcp(OWNED, 39999)), KERNEL);
    assert_eq!(verdict(&s, &tcp(OWNED, 40100)), KERNEL);
    assert_eq!(verdict(&s, &tcp(OTHER, 80)), KERNEL, "address still decides first");
    assert_eq!(verdict(&s, &arp(OWNED)), SLUICE, "ARP has no ports");
    // IP options move the TCP header; the port is still found.
    assert_eq!(verdict(&s, &tcp_with(OWNED, 80, 2, 0)), SLUICE);
    assert_eq!(verdict(&s, &tcp_with(OWNED, 22, 10, 0)), KERNEL);
    // A TCP header cut short cannot be judged: kernel.
    let mut cut = tcp(OWNED, 80);
    cut.truncate(14 + 20 + 3);
    assert_eq!(verdict(&s, &cut), KERNEL);
    // A non-first fragment has no ports: the stack judges it.
    assert_eq!(verdict(&s, &tcp_with(OWNED, 22, 0, 0x0010)), SLUICE);
    // Ports change at run time.
    s.allow_port(22).unwrap();
    assert_eq!(verdict(&s, &tcp(OWNED, 22)), SLUICE);
    s.deny_port(80).unwrap();
    assert_eq!(verdict(&s, &tcp(OWNED, 80)), KERNEL);
}

#[test]
fn owned_addresses_change_at_run_time() {
    let Some(s) = load(&SteeringConfig::default()) else {
        return;
    };
    assert_eq!(verdict(&s, &tcp(OWNED, 80)), KERNEL);
    s.add_owned(OWNED).unwrap();
    assert_eq!(verdict(&s, &tcp(OWNED, 80)), SLUICE);
    assert_eq!(verdict(&s, &arp(OWNED)), SLUICE);
    assert!(s.remove_owned(OWNED).unwrap());
    assert!(!s.remove_owned(OWNED).unwrap());
    assert_eq!(verdict(&s, &arp(OWNED)), KERNEL);
    assert!(s.allow_port(80).is_err(), "no port filter configured");
}

#[test]
fn service_fallback_passes_when_no_socket_is_registered() {
    if !testnet::require_root("steering program test") {
        return;
    }
    let cfg = SteeringConfig { owned: vec![OWNED], ..Default::default() };
    let s = Steering::load(&cfg, 1, XdpAction::Pass).unwrap();
    assert_eq!(verdict(&s, &tcp(OWNED, 80)), XdpAction::Pass);
}
