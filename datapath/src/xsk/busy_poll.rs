//! Preferred busy polling of an AF_XDP socket (`--busy-poll`): the socket options that
//! let the application, not the softirq, run the driver's NAPI poll for its queue.
//!
//! - `SO_PREFER_BUSY_POLL` (Linux 5.11+): while the application busy-polls, the kernel
//!   defers the queue's NAPI to it instead of running it from interrupts;
//! - `SO_BUSY_POLL` (µs): how long one `poll`/`recvfrom`/`sendto` on the socket may spin
//!   in the driver's NAPI poll waiting for packets;
//! - `SO_BUSY_POLL_BUDGET` (packets): the NAPI budget of one busy-poll round (values
//!   above the default 8 need `CAP_NET_ADMIN`).
//!
//! With busy polling the receive loop must enter the kernel (`recvfrom`) whenever its rx
//! ring is empty, whatever the fill ring's need-wakeup flag says: the syscall *is* the
//! NAPI poll. For the driver to leave the queue to the application between rounds, set
//! per interface (`/sys/class/net/IF/`): `napi_defer_hard_irqs` (e.g. 2: interrupts stay
//! masked for that many empty NAPI rounds) and `gro_flush_timeout` (ns, e.g. 200000:
//! the watchdog that re-arms the interrupt if the application stops polling). This is
//! for a core dedicated to the queue: it spins.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `SO_PREFER_BUSY_POLL` and `SO_BUSY_POLL_BUDGET` (asm-generic/socket.h).
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// Busy-poll settings of one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL`: microseconds one syscall may spin in the NAPI poll.
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`: packets per busy-poll round.
    pub budget: u32,
    /// `SO_PREFER_BUSY_POLL`.
    pub prefer: bool,
}

impl Default for BusyPoll {
    /// The values of the kernel's AF_XDP sample (`xdpsock -B`): 20 µs, budget 64.
    fn default() -> BusyPoll {
        BusyPoll { usecs: 20, budget: 64, prefer: true }
    }
}

fn set(fd: BorrowedFd<'_>, opt: libc::c_int, value: u32) -> io::Result<()> {
    let v = value as libc::c_int;
    // SAFETY: passes a live c_int of the stated size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn get(fd: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<u32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` is writable for `len` bytes; the kernel writes at most that.
    let rc = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, opt, (&mut v as *mut libc::c_int).cast(), &mut len)
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v as u32)
}

impl BusyPoll {
    /// Set the three options on `fd`, naming the one the kernel refused.
    pub(crate) fn apply(&self, fd: BorrowedFd<'_>) -> Result<(), (&'static str, io::Error)> {
        set(fd, SO_PREFER_BUSY_POLL, u32::from(self.prefer)).map_err(|e| ("setsockopt(SO_PREFER_BUSY_POLL)", e))?;
        set(fd, libc::SO_BUSY_POLL, self.usecs).map_err(|e| ("setsockopt(SO_BUSY_POLL)", e))?;
        set(fd, SO_BUSY_POLL_BUDGET, self.budget).map_err(|e| ("setsockopt(SO_BUSY_POLL_BUDGET)", e))?;
        Ok(())
    }

    /// The settings as the kernel reports them for `fd` (`getsockopt`). The kernel has no
    /// `getsockopt` for `SO_BUSY_POLL_BUDGET` (ENOPROTOOPT), so `budget` is the value
    /// whose `setsockopt` succeeded.
    pub(crate) fn read(fd: BorrowedFd<'_>, budget: u32) -> io::Result<BusyPoll> {
        Ok(BusyPoll { usecs: get(fd, libc::SO_BUSY_POLL)?, budget, prefer: get(fd, SO_PREFER_BUSY_POLL)? != 0 })
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    use super::*;
    use crate::testnet;

    #[test]
    fn the_kernel_holds_what_apply_set() {
        if !testnet::require_root("busy-poll options test") {
            return;
        }
        // SAFETY: plain socket(2) call; the result is checked before being owned.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(raw >= 0, "socket(AF_XDP): {}", io::Error::last_os_error());
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        assert_eq!(BusyPoll::read(fd.as_fd(), 0).unwrap(), BusyPoll { usecs: 0, budget: 0, prefer: false });
        let bp = BusyPoll { usecs: 50, budget: 32, prefer: true };
        bp.apply(fd.as_fd()).unwrap();
        assert_eq!(BusyPoll::read(fd.as_fd(), 32).unwrap(), bp);
    }
}
