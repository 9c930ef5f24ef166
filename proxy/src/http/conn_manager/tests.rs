//! Reading the downstream connection under the readiness contract.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sluice_stack::kernel::KernelStack;
use sluice_stack::{Events, Interest, ListenOptions, Stack, Token};

use super::Downstream;
use crate::transport::TransportSocket;

/// A request and the client's RST behind it arrive before the poll, so one event
/// reports both: the short read of the request must not end reading, or the reset is
/// never seen (no later event comes for it) and the connection lingers until a timeout.
#[test]
fn a_reset_reported_with_the_last_bytes_is_read() {
    let mut stack = KernelStack::new().unwrap();
    let opts = ListenOptions { reuse_port: false, ..ListenOptions::default() };
    let listener = stack.listen("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
    let local = stack.local_addr(listener).unwrap();
    let mut client = TcpStream::connect(local).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let accepted = loop {
        match stack.accept(listener) {
            Ok(a) => break a,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stack.register(accepted.socket, Token(1), Interest::READABLE).unwrap();
    client.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
    socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO)).unwrap();
    drop(client);

    let mut events = Events::with_capacity(8);
    let mut peer_closed = false;
    while !peer_closed && Instant::now() < deadline {
        stack.poll(&mut events, Some(Duration::from_millis(100))).unwrap();
        peer_closed = events.iter().any(|e| e.is_read_closed() || e.is_error());
    }
    assert!(peer_closed, "the stack reports the reset");

    let mut down = Downstream {
        socket: accepted.socket,
        peer: accepted.peer,
        local: accepted.local,
        tls: false,
        input: Vec::new(),
        input_pos: 0,
        out: Vec::new(),
        out_pos: 0,
        readable: true,
        peer_closed,
        read_eof: false,
        dead: false,
        released: false,
        transport: TransportSocket::Raw,
    };
    let mut scratch = vec![0; 64 * 1024];
    let mut reads = 0;
    while down.read(&mut stack, 1 << 20, &mut scratch) && reads < 4 {
        reads += 1;
    }
    assert_eq!(reads, 1, "the request, then the reset");
    assert!(down.dead, "the reset is seen");
    assert!(down.pending_input().starts_with(b"GET / HTTP/1.1"));
    stack.abort(accepted.socket);
    stack.close(listener);
}
