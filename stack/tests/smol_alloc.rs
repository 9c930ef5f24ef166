//! The steady path does not allocate: once buffers, queues and tables have reached
//! their working size, moving data and answering requests through two smol stacks and
//! the in-memory datapath performs no heap allocation at all, per packet or otherwise.

mod util;

use std::io;
use std::net::SocketAddr;

use sluice_datapath::mem::counting::{thread_allocations, CountingAlloc};
use sluice_datapath::mem::Faults;
use sluice_stack::{ListenOptions, SocketId, Stack};
use smoltcp::time::Duration;
use util::{Sim, SERVER_IP};

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

fn byte_at(i: usize) -> u8 {
    (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0]
}

/// Move `len` bytes client → server starting at stream offset `base`, checking them on
/// the fly, with fixed buffers only.
fn move_bytes(sim: &mut Sim, c: SocketId, s: SocketId, base: usize, len: usize) {
    let mut chunk = [0u8; 8192];
    let mut buf = [0u8; 8192];
    let (mut sent, mut got) = (0, 0);
    assert!(sim.run_until(Duration::from_secs(60), |sm| {
        while sent < len {
            let n = chunk.len().min(len - sent);
            for (i, b) in chunk[..n].iter_mut().enumerate() {
                *b = byte_at(base + sent + i);
            }
            match sm.client.write(c, &chunk[..n]) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        loop {
            match sm.server.read(s, &mut buf) {
                Ok(n) if n > 0 => {
                    for (i, b) in buf[..n].iter().enumerate() {
                        assert_eq!(*b, byte_at(base + got + i));
                    }
                    got += n;
                }
                Ok(_) => panic!("early end of stream"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        got == len
    }));
}

#[test]
fn bulk_transfer_and_round_trips_do_not_allocate_once_warm() {
    let mut sim = Sim::new(3, Faults::NONE, Faults::NONE);
    let addr = SocketAddr::from((SERVER_IP, 80));
    let l = sim.server.listen(addr, &ListenOptions::default()).unwrap();
    let c = sim.client.connect(addr).unwrap();
    let mut s = None;
    assert!(sim.run_until(Duration::from_secs(5), |sm| {
        s = s.or_else(|| sm.server.accept(l).ok().map(|a| a.socket));
        s.is_some() && sm.client.connect_result(c).is_ok()
    }));
    let s = s.unwrap();

    // Warm up: tables, heaps and caches grow to their working size.
    move_bytes(&mut sim, c, s, 0, 4 << 20);
    let base = 4 << 20;
    let frames_before = sim.net.stats(1).unwrap().tx_frames + sim.net.stats(0).unwrap().tx_frames;
    let before = thread_allocations();
    move_bytes(&mut sim, c, s, base, 4 << 20);
    let bulk_allocs = thread_allocations() - before;
    let frames = sim.net.stats(1).unwrap().tx_frames + sim.net.stats(0).unwrap().tx_frames - frames_before;
    assert!(frames > 2800, "{frames} frames moved");
    assert_eq!(bulk_allocs, 0, "{bulk_allocs} allocations for {frames} frames");

    // Small request/response round trips: the first takes the server's send and the
    // client's receive storage from the allocator (the bulk transfer only needed the
    // other two); from then on drained storage is reused.
    let mut buf = [0u8; 64];
    let mut round_trips = |sim: &mut Sim, n: usize| {
        for _ in 0..n {
            sim.client.write(c, b"request").unwrap();
            assert!(sim.run_until(Duration::from_secs(1), |sm| sm.server.read(s, &mut buf).is_ok()));
            sim.server.write(s, b"response").unwrap();
            assert!(sim.run_until(Duration::from_secs(1), |sm| sm.client.read(c, &mut buf).is_ok()));
        }
    };
    round_trips(&mut sim, 1);
    let before = thread_allocations();
    round_trips(&mut sim, 200);
    assert_eq!(thread_allocations() - before, 0, "round trips allocated");
}
