//! The smol stack across threads with the system clock: a server thread blocks in
//! `poll(None)` (the in-memory datapath's `wait`) and is woken by frames and by its
//! waker, as a proxy worker will be.

mod util;

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice_datapath::mem::{Faults, MemConfig, MemNetwork};
use sluice_stack::smol::SmolStack;
use sluice_stack::{Events, Interest, ListenOptions, Stack, Token};
use util::{config, pattern, CLIENT_IP, SERVER_IP};

const LISTENER: Token = Token(0);
const STOP: Token = Token(usize::MAX);

#[test]
fn echo_server_thread_blocks_in_poll_and_wakes() {
    let (sp, cp) = MemNetwork::pair(MemConfig::default(), Faults::NONE, Faults::NONE).unwrap();
    let (tx, rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        let cfg = config(&sp, SERVER_IP, true);
        let mut stack = SmolStack::new(sp, cfg).unwrap();
        let l = stack.listen(SocketAddr::from((SERVER_IP, 7)), &ListenOptions::default()).unwrap();
        stack.register(l, LISTENER, Interest::READABLE).unwrap();
        tx.send(stack.waker(STOP).unwrap()).unwrap();
        let mut events = Events::with_capacity(64);
        let mut conns = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut polls = 0u64;
        loop {
            stack.poll(&mut events, None).unwrap();
            polls += 1;
            for ev in events.iter() {
                match ev.token() {
                    STOP => return (stack.smol_stats().accepts, polls),
                    LISTENER => {
                        while let Ok(a) = stack.accept(l) {
                            stack.register(a.socket, Token(conns.len() + 1), Interest::READABLE).unwrap();
                            conns.push(a.socket);
                        }
                    }
                    Token(i) => {
                        let id = conns[i - 1];
                        loop {
                            match stack.read(id, &mut buf) {
                                Ok(0) => {
                                    stack.close(id);
                                    break;
                                }
                                Ok(n) => {
                                    assert_eq!(stack.write(id, &buf[..n]).unwrap(), n, "echo fits")
                                }
                                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                                Err(e) => panic!("server: {e}"),
                            }
                        }
                    }
                }
            }
        }
    });
    let stop = rx.recv().unwrap();

    let cfg = config(&cp, CLIENT_IP, false);
    let mut client = SmolStack::new(cp, cfg).unwrap();
    let c = client.connect(SocketAddr::from((SERVER_IP, 7))).unwrap();
    client.register(c, Token(1), Interest::BOTH).unwrap();
    let mut events = Events::with_capacity(16);
    let deadline = Instant::now() + Duration::from_secs(10);
    let request = pattern(10_000, 5);
    let (mut sent, mut got) = (false, Vec::new());
    let mut buf = vec![0u8; 16 * 1024];
    while got.len() < request.len() {
        assert!(Instant::now() < deadline, "echo did not come back");
        client.poll(&mut events, Some(Duration::from_millis(200))).unwrap();
        if !sent && client.connect_result(c).is_ok() {
            assert_eq!(client.write(c, &request).unwrap(), request.len());
            client.shutdown_write(c).unwrap();
            sent = true;
        }
        loop {
            match client.read(c, &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("client: {e}"),
            }
        }
    }
    assert_eq!(got, request);
    stop.wake().unwrap();
    let (accepts, polls) = server.join().unwrap();
    assert_eq!(accepts, 1);
    assert!(polls < 1000, "the server slept in poll instead of spinning: {polls} polls");
}

#[test]
fn a_stack_on_an_in_memory_port_can_move_to_a_worker_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<SmolStack<sluice_datapath::mem::MemPort>>();
    assert_send::<SmolStack<sluice_datapath::mem::MemPort, sluice_stack::smol::ManualClock>>();
}
