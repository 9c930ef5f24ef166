//! Shared pieces of the xdp datapath tests: a smoltcp echo server running over an
//! `XskDevice`, and a kernel TCP client for the peer namespace.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant as StdInstant};

use sluice_datapath::{Datapath, XskDevice};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

/// What the echo server did.
pub struct EchoReport {
    pub device: XskDevice,
    pub connections: usize,
    pub bytes: u64,
}

/// A smoltcp stack on its own thread, echoing TCP on one port.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<io::Result<EchoReport>>>,
}

impl EchoServer {
    /// Serve `connections` connections (then return), or stop at `deadline`.
    pub fn spawn(
        mut device: XskDevice,
        addr: Ipv4Addr,
        prefix: u8,
        port: u16,
        connections: usize,
        deadline: Duration,
    ) -> EchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = thread::spawn(move || -> io::Result<EchoReport> {
            let mac = EthernetAddress(device.mac());
            let mut config = Config::new(HardwareAddress::Ethernet(mac));
            config.random_seed = 0x5eed;
            let mut iface = Interface::new(config, &mut device, Instant::now());
            iface.update_ip_addrs(|ips| {
                ips.push(IpCidr::new(IpAddress::Ipv4(addr), prefix)).expect("room for one address");
            });
            let mut sockets = SocketSet::new(vec![]);
            let socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 256 * 1024]),
                tcp::SocketBuffer::new(vec![0; 256 * 1024]),
            );
            let handle = sockets.add(socket);
            let mut scratch = vec![0u8; 64 * 1024];
            let (mut served, mut bytes, mut active) = (0usize, 0u64, false);
            let started = StdInstant::now();
            while served < connections {
                if stop2.load(Ordering::Relaxed) || started.elapsed() > deadline {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "echo server deadline"));
                }
                let now = Instant::now();
                iface.poll(now, &mut device, &mut sockets);
                let s = sockets.get_mut::<tcp::Socket>(handle);
                if !s.is_open() {
                    if active {
                        served += 1;
                        active = false;
                        continue;
                    }
                    s.listen(port).map_err(|e| io::Error::other(format!("listen: {e}")))?;
                }
                if s.is_active() {
                    active = true;
                }
                // Echo what fits in the send buffer right now.
                while s.can_recv() && s.can_send() {
                    let room = (s.send_capacity() - s.send_queue()).min(scratch.len());
                    let n = s.recv_slice(&mut scratch[..room]).map_err(|e| io::Error::other(format!("{e}")))?;
                    if n == 0 {
                        break;
                    }
                    s.send_slice(&scratch[..n]).map_err(|e| io::Error::other(format!("{e}")))?;
                    bytes += n as u64;
                }
                // Peer finished sending and we echoed everything: close our side.
                if active && !s.may_recv() && s.send_queue() == 0 && s.state() == tcp::State::CloseWait {
                    s.close();
                }
                iface.poll(now, &mut device, &mut sockets);
                device.flush()?;
                let delay = iface
                    .poll_delay(Instant::now(), &sockets)
                    .map(|d| Duration::from_micros(d.total_micros()))
                    .unwrap_or(Duration::from_millis(20))
                    .min(Duration::from_millis(20));
                device.wait(Some(delay))?;
            }
            // Let the last ACKs/FINs go out.
            let end = StdInstant::now() + Duration::from_millis(200);
            while StdInstant::now() < end {
                iface.poll(Instant::now(), &mut device, &mut sockets);
                device.flush()?;
                device.wait(Some(Duration::from_millis(10)))?;
            }
            Ok(EchoReport { device, connections: served, bytes })
        });
        EchoServer { stop, handle: Some(handle) }
    }

    /// Wait for the server to finish.
    pub fn join(mut self) -> io::Result<EchoReport> {
        let handle = self.handle.take().expect("joined once");
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Connect to `addr`, send `data`, half-close, and read everything back until EOF.
pub fn echo_client(addr: SocketAddr, data: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut writer = stream.try_clone()?;
    thread::scope(|s| {
        let sender = s.spawn(move || -> io::Result<()> {
            writer.write_all(data)?;
            writer.shutdown(Shutdown::Write)
        });
        let mut back = Vec::with_capacity(data.len());
        let read = stream.read_to_end(&mut back);
        sender.join().expect("writer thread")?;
        read?;
        Ok(back)
    })
}

/// Deterministic test payload.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Poll `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = StdInstant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if StdInstant::now() > end {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
