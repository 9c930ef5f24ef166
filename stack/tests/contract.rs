//! The readiness contract, run against both backends: `KernelStack` on loopback and
//! `SmolStack` on the in-memory datapath. Each case is written once, generic over
//! [`Pair`]; the `kernel` and `smol` modules at the bottom instantiate it.

mod util;

use std::io::{self, IoSlice};
use std::sync::Arc;

use sluice_stack::{Interest, ListenOptions, Stack, Token};
use util::{
    count_events, establish, pattern, read_exact, read_to_end, until, wait_for, KernelPair, Pair, Side, SmolPair,
};

const L: Token = Token(1);
const C: Token = Token(2);
const S: Token = Token(3);

fn connect_accept_echo_half_close<P: Pair>(p: &mut P) {
    let listen_at = p.listen_addr();
    let l = p.stack(Side::Server).listen(listen_at, &ListenOptions::default()).unwrap();
    let addr = p.stack(Side::Server).local_addr(l).unwrap();
    p.stack(Side::Server).register(l, L, Interest::READABLE).unwrap();
    let c = p.stack(Side::Client).connect(addr).unwrap();
    p.stack(Side::Client).register(c, C, Interest::BOTH).unwrap();

    assert!(wait_for(p, Side::Server, L).is_readable());
    let acc = p.stack(Side::Server).accept(l).unwrap();
    assert_eq!(acc.local, addr);
    assert_eq!(acc.peer, p.stack(Side::Client).local_addr(c).unwrap());
    assert_eq!(p.stack(Side::Client).peer_addr(c).unwrap(), addr);
    assert_eq!(p.stack(Side::Server).accept(l).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    p.stack(Side::Server).register(acc.socket, S, Interest::READABLE).unwrap();

    assert!(wait_for(p, Side::Client, C).is_writable());
    p.stack(Side::Client).connect_result(c).unwrap();
    assert_eq!(p.stack(Side::Client).write(c, b"hello").unwrap(), 5);
    p.stack(Side::Client).shutdown_write(c).unwrap();

    let ev = wait_for(p, Side::Server, S);
    assert!(ev.is_readable());
    assert_eq!(read_to_end(p, Side::Server, acc.socket), b"hello");
    // The peer's FIN is reported as read-closed (maybe on a later event).
    let mut closed = ev.is_read_closed();
    while !closed {
        closed = wait_for(p, Side::Server, S).is_read_closed();
    }

    // Half-closed: the accepted side can still answer, and the client still reads.
    assert_eq!(p.stack(Side::Server).write(acc.socket, b"bye").unwrap(), 3);
    assert_eq!(read_exact(p, Side::Client, c, 3), b"bye");
    let w = p.stack(Side::Client).write(c, b"more").unwrap_err();
    assert_eq!(w.kind(), io::ErrorKind::BrokenPipe, "writing after shutdown_write");

    p.stack(Side::Server).close(acc.socket);
    assert_eq!(read_to_end(p, Side::Client, c), b"");
    let mut buf = [0u8; 8];
    assert_eq!(p.stack(Side::Server).read(acc.socket, &mut buf).unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(p.stack(Side::Client).original_dst(c).unwrap(), None);
    p.stack(Side::Client).close(c);
}

fn ready_socket_reports_one_event_when_registered<P: Pair>(p: &mut P) {
    let e = establish(p);
    p.stack(Side::Client).write(e.client, b"x").unwrap();
    let mut one = [0u8; 1];
    until(p, |p| p.stack(Side::Server).peek(e.server, &mut one).ok().filter(|n| *n == 1));
    p.stack(Side::Server).register(e.server, S, Interest::READABLE).unwrap();
    assert!(wait_for(p, Side::Server, S).is_readable());
    assert_eq!(count_events(p, Side::Server, S, 20), 0, "edge-triggered: not repeated while unread");

    // Drain, then new data is a new edge.
    assert_eq!(p.stack(Side::Server).read(e.server, &mut one).unwrap(), 1);
    assert_eq!(p.stack(Side::Server).read(e.server, &mut one).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    p.stack(Side::Client).write(e.client, b"y").unwrap();
    assert!(wait_for(p, Side::Server, S).is_readable());
    assert_eq!(read_exact(p, Side::Server, e.server, 1), b"y");

    // Reregistering a ready socket reports it once more.
    p.stack(Side::Client).write(e.client, b"z").unwrap();
    assert!(wait_for(p, Side::Server, S).is_readable());
    p.stack(Side::Server).reregister(e.server, Token(9), Interest::READABLE).unwrap();
    assert!(wait_for(p, Side::Server, Token(9)).is_readable());
}

fn full_send_buffer_gets_a_writable_event<P: Pair>(p: &mut P) {
    let e = establish(p);
    p.stack(Side::Client).register(e.client, C, Interest::WRITABLE).unwrap();
    assert!(wait_for(p, Side::Client, C).is_writable(), "a fresh connection is writable");
    let chunk = pattern(64 * 1024, 1);
    let mut sent = 0usize;
    loop {
        match p.stack(Side::Client).write(e.client, &chunk) {
            Ok(n) => sent += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) => panic!("write: {err}"),
        }
        assert!(sent < 256 << 20, "the send buffer never filled");
        p.turn();
    }
    p.pending(Side::Client).clear();
    // The receiver drains; room comes back with a writable event.
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    let ev = until(p, |p| {
        while let Ok(n) = p.stack(Side::Server).read(e.server, &mut buf) {
            got += n;
        }
        let i = p.pending(Side::Client).iter().position(|ev| ev.token() == C)?;
        Some(p.pending(Side::Client).remove(i))
    });
    assert!(ev.is_writable());
    assert!(got > 0);
    assert!(p.stack(Side::Client).write(e.client, &chunk).unwrap() > 0);
}

fn peer_reset_is_an_error<P: Pair>(p: &mut P) {
    let e = establish(p);
    p.stack(Side::Server).register(e.server, S, Interest::READABLE).unwrap();
    p.stack(Side::Client).abort(e.client);
    let ev = until(p, |p| {
        let i = p.pending(Side::Server).iter().position(|ev| ev.token() == S && ev.is_error())?;
        Some(p.pending(Side::Server).remove(i))
    });
    assert!(ev.is_read_closed() && ev.is_write_closed());
    let mut buf = [0u8; 16];
    let err = p.stack(Side::Server).read(e.server, &mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    let err = p.stack(Side::Server).write(e.server, b"late").unwrap_err();
    assert!(matches!(err.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe), "{err}");
    assert!(p.stack(Side::Client).read(e.client, &mut buf).is_err(), "aborted id is stale");
}

/// Bytes that arrived before a reset are read first; the error comes after them.
fn bytes_before_a_reset_are_read_first<P: Pair>(p: &mut P) {
    let e = establish(p);
    p.stack(Side::Server).register(e.server, S, Interest::READABLE).unwrap();
    assert_eq!(p.stack(Side::Client).write(e.client, b"last words").unwrap(), 10);
    until(p, |p| p.pending(Side::Server).iter().any(|ev| ev.token() == S && ev.is_readable()).then_some(()));
    p.stack(Side::Client).abort(e.client);
    until(p, |p| p.pending(Side::Server).iter().any(|ev| ev.token() == S && ev.is_error()).then_some(()));
    let mut buf = [0u8; 64];
    assert_eq!(p.stack(Side::Server).read(e.server, &mut buf).unwrap(), 10);
    assert_eq!(&buf[..10], b"last words");
    let err = p.stack(Side::Server).read(e.server, &mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

fn refused_connect_reports_error<P: Pair>(p: &mut P) {
    let closed = p.closed_addr();
    let c = p.stack(Side::Client).connect(closed).unwrap();
    p.stack(Side::Client).register(c, C, Interest::BOTH).unwrap();
    let ev = wait_for(p, Side::Client, C);
    assert!(ev.is_writable() || ev.is_error());
    let err = p.stack(Side::Client).connect_result(c).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

fn connect_in_progress_would_block<P: Pair>(p: &mut P) {
    let listen_at = p.listen_addr();
    let l = p.stack(Side::Server).listen(listen_at, &ListenOptions::default()).unwrap();
    let addr = p.stack(Side::Server).local_addr(l).unwrap();
    let c = p.stack(Side::Client).connect(addr).unwrap();
    // Before any poll, the handshake cannot have completed on the smol stack; the
    // kernel may already be done on loopback, so only check it never errors.
    match p.stack(Side::Client).connect_result(c) {
        Ok(()) => {}
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
    }
    until(p, |p| p.stack(Side::Client).connect_result(c).ok());
}

fn ids_are_checked<P: Pair>(p: &mut P) {
    let listen_at = p.listen_addr();
    let l = p.stack(Side::Server).listen(listen_at, &ListenOptions::default()).unwrap();
    let addr = p.stack(Side::Server).local_addr(l).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(p.stack(Side::Server).read(l, &mut buf).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    assert_eq!(p.stack(Side::Server).accept(l).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    let c = p.stack(Side::Client).connect(addr).unwrap();
    p.stack(Side::Client).close(c);
    assert_eq!(p.stack(Side::Client).read(c, &mut buf).unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(p.stack(Side::Client).write(c, b"x").unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(p.stack(Side::Client).register(c, C, Interest::READABLE).unwrap_err().kind(), io::ErrorKind::NotFound);
    assert!(p.stack(Side::Client).local_addr(c).is_err());
    p.stack(Side::Client).close(c); // closing twice is harmless
}

fn registration_rules<P: Pair>(p: &mut P) {
    let listen_at = p.listen_addr();
    let l = p.stack(Side::Server).listen(listen_at, &ListenOptions::default()).unwrap();
    let addr = p.stack(Side::Server).local_addr(l).unwrap();
    let srv = p.stack(Side::Server);
    srv.register(l, L, Interest::READABLE).unwrap();
    assert_eq!(srv.register(l, L, Interest::READABLE).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
    srv.reregister(l, Token(7), Interest::READABLE).unwrap();
    srv.deregister(l).unwrap();
    assert_eq!(srv.deregister(l).unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(srv.reregister(l, L, Interest::READABLE).unwrap_err().kind(), io::ErrorKind::NotFound);
    // Deregistered: a connection arrives without an event.
    let c = p.stack(Side::Client).connect(addr).unwrap();
    until(p, |p| p.stack(Side::Client).connect_result(c).ok());
    assert_eq!(count_events(p, Side::Server, Token(7), 10), 0);
    assert_eq!(count_events(p, Side::Server, L, 0), 0);
    // Registering again reports the pending connection.
    p.stack(Side::Server).register(l, L, Interest::READABLE).unwrap();
    assert!(wait_for(p, Side::Server, L).is_readable());
    p.stack(Side::Server).accept(l).unwrap();
}

fn listen_on_a_used_address_fails<P: Pair>(p: &mut P) {
    let opts = ListenOptions { reuse_port: false, ..ListenOptions::default() };
    let listen_at = p.listen_addr();
    let l = p.stack(Side::Server).listen(listen_at, &opts).unwrap();
    let addr = p.stack(Side::Server).local_addr(l).unwrap();
    let err = p.stack(Side::Server).listen(addr, &opts).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    p.stack(Side::Server).close(l);
    p.stack(Side::Server).listen(addr, &opts).unwrap();
}

fn peek_leaves_bytes_and_vectored_write_gathers<P: Pair>(p: &mut P) {
    let e = establish(p);
    let parts = [IoSlice::new(b"GET / "), IoSlice::new(b""), IoSlice::new(b"HTTP/1.1\r\n")];
    assert_eq!(p.stack(Side::Client).write_vectored(e.client, &parts).unwrap(), 16);
    let mut buf = [0u8; 64];
    let n = until(p, |p| p.stack(Side::Server).peek(e.server, &mut buf).ok().filter(|n| *n == 16));
    assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n");
    assert_eq!(read_exact(p, Side::Server, e.server, 16), b"GET / HTTP/1.1\r\n");
    assert_eq!(p.stack(Side::Server).peek(e.server, &mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
}

fn close_delivers_queued_data_then_fin<P: Pair>(p: &mut P) {
    let e = establish(p);
    let data = pattern(300_000, 7);
    let mut off = 0;
    while off < data.len() {
        match p.stack(Side::Client).write(e.client, &data[off..]) {
            Ok(n) => off += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                // Drain a bit on the other side so the sender can go on.
                let mut buf = [0u8; 0];
                let _ = p.stack(Side::Server).peek(e.server, &mut buf);
                p.turn();
                break;
            }
            Err(err) => panic!("{err}"),
        }
    }
    // Queue what fits, close, and let the receiver read everything.
    let queued = off;
    p.stack(Side::Client).close(e.client);
    let got = read_to_end(p, Side::Server, e.server);
    assert_eq!(got.len(), queued);
    assert_eq!(got, data[..queued]);
}

fn peer_fin_is_a_read_closed_event<P: Pair>(p: &mut P) {
    let e = establish(p);
    p.stack(Side::Server).register(e.server, S, Interest::READABLE).unwrap();
    p.stack(Side::Client).shutdown_write(e.client).unwrap();
    let ev = wait_for(p, Side::Server, S);
    assert!(ev.is_readable() && ev.is_read_closed());
    let mut buf = [0u8; 4];
    assert_eq!(p.stack(Side::Server).read(e.server, &mut buf).unwrap(), 0);
    assert_eq!(p.stack(Side::Server).read(e.server, &mut buf).unwrap(), 0, "EOF stays EOF");
}

fn waker_wakes_poll<P: Pair>(p: &mut P) {
    let w = p.stack(Side::Server).waker(Token(99)).unwrap();
    let remote = Arc::clone(&w);
    std::thread::spawn(move || remote.wake().unwrap()).join().unwrap();
    assert!(wait_for(p, Side::Server, Token(99)).is_readable());
}

fn stats_count_accepts_and_connects<P: Pair>(p: &mut P) {
    establish(p);
    assert_eq!(p.stack(Side::Server).stats().accepts, 1);
    assert_eq!(p.stack(Side::Client).stats().connects, 1);
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod kernel {
            use super::*;
            $( #[test] fn $case() { super::$case(&mut KernelPair::new()) } )*
        }
        mod smol {
            use super::*;
            $( #[test] fn $case() { super::$case(&mut SmolPair::new()) } )*
        }
    };
}

contract!(
    connect_accept_echo_half_close,
    ready_socket_reports_one_event_when_registered,
    full_send_buffer_gets_a_writable_event,
    peer_reset_is_an_error,
    bytes_before_a_reset_are_read_first,
    refused_connect_reports_error,
    connect_in_progress_would_block,
    ids_are_checked,
    registration_rules,
    listen_on_a_used_address_fails,
    peek_leaves_bytes_and_vectored_write_gathers,
    close_delivers_queued_data_then_fin,
    peer_fin_is_a_read_closed_event,
    waker_wakes_poll,
    stats_count_accepts_and_connects,
);
