use std::sync::atomic::Ordering;
use std::time::{Duration, Instant as StdInstant};

use smoltcp::phy::{Device, RxToken, TxToken};
use smoltcp::time::Instant;

use super::{ring_pair, RingConfig};
use crate::Datapath;

fn send(port: &mut super::RingPort, bytes: &[u8]) -> bool {
    match port.transmit(Instant::ZERO) {
        Some(tx) => {
            tx.consume(bytes.len(), |buf| buf.copy_from_slice(bytes));
            true
        }
        None => false,
    }
}

fn recv(port: &mut super::RingPort) -> Option<Vec<u8>> {
    let (rx, _tx) = port.receive(Instant::ZERO)?;
    Some(rx.consume(|f| f.to_vec()))
}

#[test]
fn frames_cross_in_order_and_buffers_come_back() {
    let cfg = RingConfig { frames: 4, ..RingConfig::default() };
    let (mut a, mut b) = ring_pair(&cfg).unwrap();
    // Many more frames than buffers: each is recycled after the receiver is done with it.
    for round in 0..10u8 {
        for i in 0..4u8 {
            assert!(send(&mut a, &[round, i, 0xee]));
        }
        for i in 0..4u8 {
            assert_eq!(recv(&mut b).as_deref(), Some(&[round, i, 0xee][..]));
        }
        assert_eq!(recv(&mut b), None);
    }
    assert_eq!(a.stats().tx_frames.load(Ordering::Relaxed), 40);
    assert_eq!(b.stats().rx_frames.load(Ordering::Relaxed), 40);
    assert_eq!(recv(&mut a), None, "nothing came the other way");
}

#[test]
fn a_full_ring_refuses_the_transmit_token() {
    let cfg = RingConfig { frames: 2, ..RingConfig::default() };
    let (mut a, mut b) = ring_pair(&cfg).unwrap();
    assert!(send(&mut a, b"one"));
    assert!(send(&mut a, b"two"));
    assert!(!send(&mut a, b"three"));
    assert_eq!(a.stats().tx_full.load(Ordering::Relaxed), 1);
    assert_eq!(recv(&mut b).as_deref(), Some(&b"one"[..]));
    assert!(send(&mut a, b"three"));
}

#[test]
fn a_parked_receiver_wakes_for_a_frame_and_for_its_waker() {
    let cfg = RingConfig { spin: Duration::from_micros(1), ..RingConfig::default() };
    let (mut a, mut b) = ring_pair(&cfg).unwrap();
    let waker = b.waker().unwrap();
    let receiver = std::thread::spawn(move || {
        let start = StdInstant::now();
        while recv(&mut b).is_none() {
            b.wait(Some(Duration::from_secs(10))).unwrap();
        }
        // Woken by the waker, with no frame.
        b.wait(Some(Duration::from_secs(10))).unwrap();
        (start.elapsed(), b.stats().parks.load(Ordering::Relaxed))
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(send(&mut a, b"hello"));
    a.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    waker.wake().unwrap();
    let (took, parks) = receiver.join().unwrap();
    assert!(took < Duration::from_secs(5), "woken late: {took:?}");
    assert!(parks >= 1, "the receiver never parked");
}

#[test]
fn a_bad_config_is_refused() {
    assert!(ring_pair(&RingConfig { mtu: 100, ..RingConfig::default() }).is_err());
    assert!(ring_pair(&RingConfig { frames: 0, ..RingConfig::default() }).is_err());
}
