//! ICMP echo over a raw socket, to check that the kernel still answers pings while an
//! XDP program is attached. Runs in the calling thread's network namespace (use it from
//! [`super::Netns::run`]).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Send one echo request to `dst`; the round-trip time of the matching reply, or
/// `TimedOut`.
pub fn ping(dst: Ipv4Addr, timeout: Duration) -> io::Result<Duration> {
    // SAFETY: plain socket(2) call; the result is checked before being owned.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_ICMP) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let ident = (std::process::id() as u16) ^ 0x5158;
    let mut req = [0u8; 16];
    req[0] = 8; // echo request
    req[4..6].copy_from_slice(&ident.to_be_bytes());
    req[6..8].copy_from_slice(&1u16.to_be_bytes());
    req[8..].copy_from_slice(b"sluice!!");
    let sum = checksum(&req);
    req[2..4].copy_from_slice(&sum.to_be_bytes());

    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(dst.octets()) },
        sin_zero: [0; 8],
    };
    let start = Instant::now();
    // SAFETY: `req` and `addr` are live and of the stated sizes.
    let rc = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 1500];
    loop {
        let left = timeout.checked_sub(start.elapsed()).unwrap_or_default();
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, format!("no echo reply from {dst}")));
        }
        let mut pfd = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        // SAFETY: one live pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            continue;
        }
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 20 {
            continue;
        }
        let pkt = &buf[..n as usize];
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        let Some(icmp) = pkt.get(ihl..) else { continue };
        let from = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
        if icmp.len() >= 8 && icmp[0] == 0 && icmp[4..6] == ident.to_be_bytes() && from == dst {
            return Ok(start.elapsed());
        }
    }
}
