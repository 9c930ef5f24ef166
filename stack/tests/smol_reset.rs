//! Resets that arrive after data, on the smol stack (deterministic: manual clock, seeded
//! network): bytes the stack received before the reset stay readable, as on Linux, and
//! a reset that reaches a connection in TIME-WAIT (both FINs exchanged) ends it without
//! an error.
//!
//! The second case is how a proxy lost the tail of a relayed stream: its downstream had
//! half-closed first, the client's last bytes and FIN sat unread in its receive buffer,
//! and the client, CLOSED once its FIN was acknowledged, answered a late duplicate with
//! RST; the stack then reported `ConnectionReset` instead of the queued bytes.

mod util;

use std::io;
use std::net::SocketAddr;

use sluice_datapath::mem::Faults;
use sluice_stack::{Interest, ListenOptions, SocketId, Stack, Token};
use smoltcp::time::Duration;
use util::{pattern, Sim, SERVER_IP};

/// The server's port on the simulated network (attached first).
const SERVER_PORT_INDEX: usize = 0;

fn addr() -> SocketAddr {
    SocketAddr::from((SERVER_IP, 80))
}

/// A fresh simulation with one established connection: (sim, client id, server id).
fn established() -> (Sim, SocketId, SocketId) {
    let mut sim = Sim::new(23, Faults::NONE, Faults::NONE);
    let l = sim.server.listen(addr(), &ListenOptions::default()).unwrap();
    let c = sim.client.connect(addr()).unwrap();
    let mut accepted = None;
    assert!(sim.run_until(Duration::from_secs(10), |s| {
        accepted = accepted.take().or_else(|| s.server.accept(l).ok());
        accepted.is_some() && s.client.connect_result(c).is_ok()
    }));
    let s = accepted.unwrap().socket;
    (sim, c, s)
}

#[test]
fn bytes_received_before_a_reset_are_read_before_the_error() {
    let (mut sim, c, s) = established();
    sim.client.register(c, Token(1), Interest::READABLE).unwrap();
    let body = pattern(40_000, 4);
    assert_eq!(sim.server.write(s, &body).unwrap(), body.len());
    // Delivered and acknowledged, not read.
    sim.settle(Duration::from_secs(1));
    sim.server.abort(s);
    assert!(sim.run_until(Duration::from_secs(5), |sm| sm.client_events.iter().any(|e| e.is_error())));

    let mut head = [0u8; 100];
    assert_eq!(sim.client.peek(c, &mut head).unwrap(), head.len(), "peek sees the queued bytes");
    assert_eq!(head[..], body[..100]);
    let mut got = Vec::new();
    let err = util::read_available(&mut sim.client, c, &mut got).unwrap_err();
    assert_eq!(got, body, "every received byte, then the error");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(sim.client.read(c, &mut head).unwrap_err().kind(), io::ErrorKind::ConnectionReset, "sticky");
    assert_eq!(sim.client.write(c, b"x").unwrap_err().kind(), io::ErrorKind::ConnectionReset);
}

#[test]
fn a_reset_in_time_wait_leaves_the_unread_stream_and_its_end() {
    let (mut sim, c, s) = established();
    // The server (a proxy's downstream side) half-closes first.
    sim.server.shutdown_write(s).unwrap();
    let mut eof = Vec::new();
    assert!(sim.run_until(Duration::from_secs(5), |sm| util::read_available(&mut sm.client, c, &mut eof).unwrap()));
    assert!(eof.is_empty());

    // The client's last bytes arrive while the server's application is not reading.
    let body = pattern(40_000, 5);
    assert_eq!(sim.client.write(c, &body).unwrap(), body.len());
    sim.settle(Duration::from_secs(1));
    // Then its FIN, whose acknowledgement the wire delivers twice: the client goes
    // CLOSED on the first copy and answers the second with RST, which reaches the
    // server in TIME-WAIT with the bytes still unread.
    let twice = Faults { duplicate: 1.0, ..Faults::NONE };
    sim.net.set_faults(SERVER_PORT_INDEX, twice).unwrap();
    sim.client.shutdown_write(c).unwrap();
    sim.settle(Duration::from_secs(2));

    let mut got = Vec::new();
    assert!(util::read_available(&mut sim.server, s, &mut got).unwrap(), "the stream ends cleanly after its bytes");
    assert_eq!(got, body, "the unread bytes survive the reset");
    assert_eq!(sim.server.write(s, b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    sim.server.close(s);
    sim.client.close(c);
    sim.settle(Duration::from_secs(1));
    // Proof that the reset arrived: a connection still in TIME-WAIT would have left a
    // TIME-WAIT record when released.
    assert_eq!(sim.server.smol_stats().time_wait, 0, "the reset ended the server's TIME-WAIT");
    assert_eq!(sim.server.smol_stats().connections, 0);
}
