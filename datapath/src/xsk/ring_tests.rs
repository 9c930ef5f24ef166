use super::peer;
use super::*;

#[test]
fn inserting_more_than_reserved_loses_nothing() {
    let mut fill = ProdRing::<u64>::anonymous(8, 0);
    let mut frames = FrameStack::range(0, 20, 4096);
    let all: Vec<u64> = (0..20).map(|i| i * 4096).collect();

    // Only 8 slots: 8 frames move, 12 stay.
    assert_eq!(fill.produce_from(&mut frames, u32::MAX), 8);
    assert_eq!(frames.len(), 12);
    // The ring is full: nothing moves, nothing is lost.
    assert_eq!(fill.produce_from(&mut frames, u32::MAX), 0);
    assert_eq!(frames.len(), 12);

    // The kernel takes 3; exactly 3 more fit.
    let mut in_kernel = peer::consume(&fill, 3);
    assert_eq!(fill.produce_from(&mut frames, u32::MAX), 3);
    assert_eq!(frames.len(), 9);
    in_kernel.extend(peer::consume(&fill, u32::MAX));
    assert_eq!(in_kernel.len(), 11);

    // Every frame is in exactly one place.
    let mut seen = in_kernel.clone();
    while let Some(f) = frames.pop() {
        seen.push(f);
    }
    seen.sort_unstable();
    assert_eq!(seen, all);
}

#[test]
fn produce_respects_max() {
    let mut fill = ProdRing::<u64>::anonymous(16, 0);
    let mut frames = FrameStack::range(0, 10, 2048);
    assert_eq!(fill.produce_from(&mut frames, 4), 4);
    assert_eq!(frames.len(), 6);
    assert_eq!(peer::consume(&fill, 100).len(), 4);
}

#[test]
fn push_hands_back_the_item_when_full() {
    let mut tx = ProdRing::<libc::xdp_desc>::anonymous(2, 0);
    let d = |addr| libc::xdp_desc { addr, len: 60, options: 0 };
    assert!(tx.push(d(0)).is_ok());
    assert!(tx.push(d(4096)).is_ok());
    let back = tx.push(d(8192)).unwrap_err();
    assert_eq!(back.addr, 8192);
    // Not visible before submit.
    assert_eq!(tx.unpublished(), 2);
    assert!(peer::consume(&tx, 10).is_empty());
    tx.submit();
    assert_eq!(tx.outstanding(), 2);
    let got = peer::consume(&tx, 10);
    assert_eq!(got.iter().map(|d| d.addr).collect::<Vec<_>>(), vec![0, 4096]);
    assert_eq!(tx.outstanding(), 0);
    assert!(tx.push(d(8192)).is_ok());
}

#[test]
fn consume_reads_in_order_and_releases() {
    let mut rx = ConsRing::<libc::xdp_desc>::anonymous(4, 0);
    let descs: Vec<_> =
        (0..6).map(|i| libc::xdp_desc { addr: i * 4096 + 256, len: 100 + i as u32, options: 0 }).collect();
    assert_eq!(peer::produce(&rx, &descs), 4, "only 4 slots");
    assert!(rx.has_entries());
    assert_eq!(rx.available(2), 2);
    assert_eq!(rx.get(0).addr, 256);
    assert_eq!(rx.get(1).len, 101);
    rx.release(2);
    // Two slots free again for the kernel.
    assert_eq!(peer::produce(&rx, &descs[4..]), 2);
    let mut lens = Vec::new();
    assert_eq!(rx.drain(64, |d| lens.push(d.len)), 4);
    assert_eq!(lens, vec![102, 103, 104, 105]);
    assert!(!rx.has_entries());
    assert_eq!(rx.available(64), 0);
}

#[test]
fn indices_wrap_around_u32() {
    let start = u32::MAX - 5;
    let mut fill = ProdRing::<u64>::anonymous(4, start);
    let mut comp = ConsRing::<u64>::anonymous(4, start);
    let mut frames = FrameStack::range(0, 4, 4096);
    for _round in 0..10 {
        assert_eq!(fill.produce_from(&mut frames, u32::MAX), 4);
        let taken = peer::consume(&fill, u32::MAX);
        assert_eq!(taken.len(), 4);
        assert_eq!(peer::produce(&comp, &taken), 4);
        assert_eq!(comp.drain(u32::MAX, |a| frames.push(a).unwrap()), 4);
        assert_eq!(frames.len(), 4);
    }
}

#[test]
fn need_wakeup_follows_the_flag() {
    let tx = ProdRing::<libc::xdp_desc>::anonymous(4, 0);
    assert!(!tx.needs_wakeup());
    peer::set_need_wakeup(&tx, true);
    assert!(tx.needs_wakeup());
    peer::set_need_wakeup(&tx, false);
    assert!(!tx.needs_wakeup());
}
