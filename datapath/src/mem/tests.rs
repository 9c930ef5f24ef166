use super::*;
use crate::Datapath;
use smoltcp::phy::{Device, RxToken, TxToken};
use smoltcp::time::Duration;
use std::time::Duration as StdDuration;

fn frame_to(dst: EthernetAddress, tag: u8) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].copy_from_slice(dst.as_bytes());
    f[14] = tag;
    f
}

fn send(port: &mut MemPort, at: Instant, bytes: &[u8]) {
    let tx = port.transmit(at).expect("mem ports always transmit");
    tx.consume(bytes.len(), |buf| buf.copy_from_slice(bytes));
}

fn recv(port: &mut MemPort, at: Instant) -> Option<Vec<u8>> {
    let (rx, _tx) = port.receive(at)?;
    Some(rx.consume(|f| f.to_vec()))
}

#[test]
fn unicast_goes_to_the_named_port_broadcast_to_all() {
    let net = MemNetwork::new(MemConfig::default());
    let mut a = net.attach(Faults::NONE).unwrap();
    let mut b = net.attach(Faults::NONE).unwrap();
    let mut c = net.attach(Faults::NONE).unwrap();
    assert_ne!(a.mac(), b.mac());
    send(&mut a, Instant::ZERO, &frame_to(c.mac(), 1));
    assert_eq!(recv(&mut b, Instant::ZERO), None);
    assert_eq!(recv(&mut c, Instant::ZERO).unwrap()[14], 1);
    send(&mut a, Instant::ZERO, &frame_to(EthernetAddress::BROADCAST, 2));
    assert_eq!(recv(&mut b, Instant::ZERO).unwrap()[14], 2);
    assert_eq!(recv(&mut c, Instant::ZERO).unwrap()[14], 2);
    assert_eq!(recv(&mut a, Instant::ZERO), None, "never delivered back to the sender");
    assert_eq!(a.stats().tx_frames, 2);
    assert_eq!(c.stats().rx_frames, 2);
}

#[test]
fn delay_holds_frames_until_due() {
    let net = MemNetwork::new(MemConfig::default());
    let delay = Faults { delay: Duration::from_millis(5), ..Faults::NONE };
    let mut a = net.attach(delay).unwrap();
    let mut b = net.attach(Faults::NONE).unwrap();
    send(&mut a, Instant::from_millis(10), &frame_to(b.mac(), 9));
    assert_eq!(net.next_delivery(), Some(Instant::from_millis(15)));
    assert_eq!(recv(&mut b, Instant::from_millis(14)), None);
    assert_eq!(recv(&mut b, Instant::from_millis(15)).unwrap()[14], 9);
    assert_eq!(net.in_flight(), 0);
}

/// The sequence of tags `b` receives when `a` sends 0..n under `faults`.
fn run(faults: Faults, seed: u64, n: u8) -> (Vec<u8>, PortStats) {
    let config = MemConfig { seed, ..MemConfig::default() };
    let (mut a, mut b) = MemNetwork::pair(config, faults, Faults::NONE).unwrap();
    let mut got = Vec::new();
    for i in 0..n {
        let t = Instant::from_millis(i as i64);
        send(&mut a, t, &frame_to(b.mac(), i));
        while let Some(f) = recv(&mut b, t) {
            got.push(f[14]);
        }
    }
    while let Some(f) = recv(&mut b, Instant::from_secs(10)) {
        got.push(f[14]);
    }
    (got, a.stats())
}

#[test]
fn faults_are_seeded_and_deterministic() {
    let faults = Faults {
        loss: 0.1,
        duplicate: 0.1,
        reorder: 0.1,
        reorder_delay: Duration::from_millis(3),
        delay: Duration::ZERO,
    };
    let (first, stats) = run(faults, 42, 200);
    let (again, _) = run(faults, 42, 200);
    let (other, _) = run(faults, 43, 200);
    assert_eq!(first, again, "same seed, same wire");
    assert_ne!(first, other, "another seed, another wire");
    assert!(stats.lost > 0 && stats.duplicated > 0 && stats.reordered > 0, "{stats:?}");
    assert_eq!(first.len() as u64, 200 - stats.lost + stats.duplicated);
    assert!(first.windows(2).any(|w| w[0] > w[1]), "some frames overtaken");
}

#[test]
fn full_queue_drops_and_counts() {
    let config = MemConfig { queue_limit: 4, ..MemConfig::default() };
    let (mut a, mut b) = MemNetwork::pair(config, Faults::NONE, Faults::NONE).unwrap();
    for i in 0..6 {
        send(&mut a, Instant::ZERO, &frame_to(b.mac(), i));
    }
    let mut n = 0;
    while recv(&mut b, Instant::ZERO).is_some() {
        n += 1;
    }
    assert_eq!(n, 4);
    assert_eq!(b.stats().overflowed, 2);
}

#[test]
fn wait_returns_on_frame_wake_or_timeout() {
    let (mut a, mut b) = MemNetwork::pair(MemConfig::default(), Faults::NONE, Faults::NONE).unwrap();
    let b_mac = b.mac();

    // Timeout.
    let t0 = std::time::Instant::now();
    b.wait(Some(StdDuration::from_millis(30))).unwrap();
    assert!(t0.elapsed() >= StdDuration::from_millis(25));

    // A frame from another thread.
    let sender = std::thread::spawn(move || {
        std::thread::sleep(StdDuration::from_millis(20));
        send(&mut a, Instant::ZERO, &frame_to(b_mac, 7));
        a
    });
    let t0 = std::time::Instant::now();
    b.wait(None).unwrap();
    assert!(t0.elapsed() < StdDuration::from_secs(5));
    let _a = sender.join().unwrap();
    assert_eq!(recv(&mut b, Instant::ZERO).unwrap()[14], 7);

    // A waker, before and during the wait: neither is lost.
    let waker = b.waker().unwrap();
    waker.wake().unwrap();
    b.wait(None).unwrap();
    let remote = Arc::clone(&waker);
    let t = std::thread::spawn(move || {
        std::thread::sleep(StdDuration::from_millis(20));
        remote.wake().unwrap();
    });
    b.wait(None).unwrap();
    t.join().unwrap();
}

#[test]
fn bad_faults_are_refused() {
    let net = MemNetwork::new(MemConfig::default());
    let err = net.attach(Faults { loss: 2.0, ..Faults::NONE }).err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(net.set_faults(5, Faults::NONE).is_err());
}

#[test]
fn many_ports_get_distinct_macs() {
    let net = MemNetwork::new(MemConfig { frames: 0, ..MemConfig::default() });
    let macs: std::collections::HashSet<_> = (0..300).map(|_| net.attach(Faults::NONE).unwrap().mac()).collect();
    assert_eq!(macs.len(), 300);
    assert!(macs.iter().all(|m| m.is_unicast()));
}

#[test]
fn wait_counts_the_time_since_a_delayed_frame_was_seen() {
    // `receive` reads the real clock only when it holds a delayed frame back; `wait`
    // then sleeps for what is left of the delay, not for the whole delay again.
    let delay = Faults { delay: Duration::from_millis(400), ..Faults::NONE };
    let (mut a, mut b) = MemNetwork::pair(MemConfig::default(), delay, Faults::NONE).unwrap();
    let b_mac = b.mac();
    let t = Instant::from_secs(1);
    send(&mut a, t, &frame_to(b_mac, 3));
    assert_eq!(recv(&mut b, t), None, "held back for 400 ms");
    std::thread::sleep(StdDuration::from_millis(250));
    let t0 = std::time::Instant::now();
    b.wait(None).unwrap();
    let slept = t0.elapsed();
    assert!(slept >= StdDuration::from_millis(100), "woke after {slept:?}, before the frame was due");
    assert!(slept < StdDuration::from_millis(350), "slept {slept:?}: the 250 ms already waited were not counted");
    assert_eq!(recv(&mut b, t + Duration::from_millis(400)).unwrap()[14], 3);
}
