//! Bulk transfer through the smol stack over an impaired in-memory wire: byte-exact
//! delivery under seeded loss, reordering, duplication and delay, and bit-for-bit
//! reproducibility for a seed.

mod util;

use std::io;
use std::net::SocketAddr;

use sluice_datapath::mem::{Faults, PortStats};
use sluice_stack::{ListenOptions, Stack};
use smoltcp::time::{Duration, Instant};
use util::{pattern, Sim, SERVER_IP};

/// What a run looked like from outside: when it finished and what each wire carried.
#[derive(Debug, PartialEq)]
struct Trace {
    finished_at: Instant,
    server_port: PortStats,
    client_port: PortStats,
}

/// Send `len` bytes client → server over `faults` (both directions); return the trace
/// after checking the bytes.
fn transfer(seed: u64, faults: Faults, len: usize) -> Trace {
    let mut sim = Sim::new(seed, faults, faults);
    let listener = sim.server.listen(SocketAddr::from((SERVER_IP, 5001)), &ListenOptions::default()).unwrap();
    let c = sim.client.connect(SocketAddr::from((SERVER_IP, 5001))).unwrap();
    let data = pattern(len, seed as u8);
    let mut sent = 0;
    let mut server = None;
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0u8; 64 * 1024];
    let mut eof = false;
    let done = sim.run_until(Duration::from_secs(600), |s| {
        if sent < len {
            match s.client.write(c, &data[sent..]) {
                Ok(n) => {
                    sent += n;
                    if sent == len {
                        s.client.close(c);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client write: {e}"),
            }
        }
        if server.is_none() {
            server = s.server.accept(listener).ok().map(|a| a.socket);
        }
        if let Some(id) = server {
            loop {
                match s.server.read(id, &mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("server read: {e}"),
                }
            }
        }
        eof
    });
    assert!(done, "transfer stalled at {} of {len} bytes", got.len());
    assert_eq!(got.len(), len);
    assert!(got == data, "bytes differ");
    Trace { finished_at: sim.now(), server_port: sim.net.stats(0).unwrap(), client_port: sim.net.stats(1).unwrap() }
}

#[test]
fn eight_mib_byte_exact_under_one_percent_loss_and_reordering() {
    let faults = Faults {
        loss: 0.01,
        reorder: 0.01,
        reorder_delay: Duration::from_millis(1),
        delay: Duration::from_micros(50),
        duplicate: 0.0,
    };
    let trace = transfer(42, faults, 8 << 20);
    let data_frames = trace.client_port;
    assert!(data_frames.lost > 10, "the wire really lost frames: {data_frames:?}");
    assert!(data_frames.reordered > 10, "and reordered some: {data_frames:?}");
    assert!(trace.server_port.lost > 0, "ACKs were lost too: {:?}", trace.server_port);
    // Same seed, same run, frame for frame.
    assert_eq!(transfer(42, faults, 8 << 20), trace);
}

#[test]
fn duplication_and_delay_are_harmless() {
    let faults = Faults {
        loss: 0.005,
        duplicate: 0.02,
        reorder: 0.02,
        reorder_delay: Duration::from_micros(300),
        delay: Duration::from_millis(2),
    };
    let trace = transfer(7, faults, 1 << 20);
    assert!(trace.client_port.duplicated > 0);
    assert_ne!(transfer(8, faults, 1 << 20), trace, "another seed, another run");
}
