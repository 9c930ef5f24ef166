//! UMEM: the packet buffer area shared between userspace and the kernel, cut into
//! equal, power-of-two frames (aligned chunk mode) and registered on an AF_XDP socket
//! with `XDP_UMEM_REG`.
//!
//! `Umem` only maps, registers and addresses memory. Who may touch which frame is the
//! business of the frame accounting (free lists, rings, tokens): the frame accessors are
//! `unsafe` and their contract is "you own this frame right now".

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::mmap::Mmap;

/// Headroom the kernel leaves in front of received data in copy mode
/// (`XDP_PACKET_HEADROOM`); received descriptors point past it.
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// The UMEM area of one socket.
#[derive(Debug)]
pub struct Umem {
    area: Mmap,
    frame_size: u32,
    frame_count: u32,
}

impl Umem {
    /// Map `frame_count` frames of `frame_size` bytes (a power of two, 2048..=page size).
    pub fn new(frame_size: u32, frame_count: u32) -> io::Result<Umem> {
        if !frame_size.is_power_of_two() || !(2048..=65536).contains(&frame_size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("UMEM frame size {frame_size} is not a power of two in 2048..=65536"),
            ));
        }
        if frame_count == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "UMEM needs frames"));
        }
        let len = frame_size as usize * frame_count as usize;
        let area = Mmap::anonymous(len, true)?;
        Ok(Umem { area, frame_size, frame_count })
    }

    /// Register the area on an AF_XDP socket (`XDP_UMEM_REG`).
    pub fn register(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let reg = libc::xdp_umem_reg {
            addr: self.area.as_ptr() as u64,
            len: self.area.len() as u64,
            chunk_size: self.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        // SAFETY: `reg` is a valid `struct xdp_umem_reg` for the duration of the call; the
        // area it describes stays mapped for as long as the socket may use it (the socket
        // owner keeps the `Umem` alive until after the socket is closed).
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_UMEM_REG,
                (&reg as *const libc::xdp_umem_reg).cast(),
                std::mem::size_of_val(&reg) as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    pub fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// The frame an address (possibly with an offset inside the frame) belongs to.
    #[inline]
    pub fn frame_index(&self, addr: u64) -> Option<u32> {
        let index = addr / u64::from(self.frame_size);
        (index < u64::from(self.frame_count)).then_some(index as u32)
    }

    /// The start address of the frame containing `addr`.
    #[inline]
    pub fn frame_base(&self, addr: u64) -> u64 {
        addr & !(u64::from(self.frame_size) - 1)
    }

    /// Whether `len` bytes at `addr` lie inside one frame of this UMEM.
    #[inline]
    pub fn contains(&self, addr: u64, len: u32) -> bool {
        self.frame_index(addr).is_some() && addr + u64::from(len) <= self.frame_base(addr) + u64::from(self.frame_size)
    }

    /// The `len` bytes at `addr`.
    ///
    /// # Safety
    /// The caller owns the frame (the kernel is not writing it) for the lifetime of the
    /// slice, and `contains(addr, len)` holds.
    #[inline]
    pub unsafe fn frame(&self, addr: u64, len: u32) -> &[u8] {
        debug_assert!(self.contains(addr, len));
        // SAFETY: in bounds (caller contract) and not written concurrently (caller owns it).
        unsafe { std::slice::from_raw_parts(self.area.as_ptr().add(addr as usize), len as usize) }
    }

    /// The `len` bytes at `addr`, writable.
    ///
    /// # Safety
    /// As for [`Umem::frame`], and no other reference to this frame exists.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn frame_mut(&self, addr: u64, len: u32) -> &mut [u8] {
        debug_assert!(self.contains(addr, len));
        // SAFETY: in bounds and exclusively owned by the caller (caller contract); frames
        // never overlap, so distinct frames yield disjoint slices.
        unsafe { std::slice::from_raw_parts_mut(self.area.as_ptr().add(addr as usize), len as usize) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addressing() {
        let umem = Umem::new(2048, 4).unwrap();
        assert_eq!(umem.frame_index(0), Some(0));
        assert_eq!(umem.frame_index(2048 + 256), Some(1));
        assert_eq!(umem.frame_index(4 * 2048), None);
        assert_eq!(umem.frame_base(2048 + 256), 2048);
        assert!(umem.contains(2048 + 256, 2048 - 256));
        assert!(!umem.contains(2048 + 256, 2048 - 255));
        assert!(!umem.contains(8192, 1));
    }

    #[test]
    fn rejects_bad_geometry() {
        assert!(Umem::new(3000, 4).is_err());
        assert!(Umem::new(1024, 4).is_err());
        assert!(Umem::new(4096, 0).is_err());
    }
}
