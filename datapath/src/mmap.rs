//! An owned memory mapping: anonymous memory for UMEM frames, or a shared mapping of a
//! kernel object (the AF_XDP rings). The mapping lives exactly as long as the value and
//! is unmapped on drop; nothing borrowed from it may outlive it, which the owners
//! (`Umem`, the rings) guarantee by keeping the `Mmap` beside the raw pointers they use.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

/// A region of `len` bytes mapped with `mmap(2)`.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving the owner to another
// thread moves the only handle to it. Concurrent access is governed by the owners (rings
// use atomics for the shared indices; frames are owned by exactly one party at a time).
unsafe impl Send for Mmap {}

impl Mmap {
    /// Private anonymous memory, zeroed and (with `populate`) faulted in up front so the
    /// datapath never takes a page fault on a fresh frame.
    pub(crate) fn anonymous(len: usize, populate: bool) -> io::Result<Mmap> {
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        if populate {
            flags |= libc::MAP_POPULATE;
        }
        // SAFETY: an anonymous mapping at an address of the kernel's choosing touches no
        // existing memory; the result is checked before use.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        Mmap::from_result(ptr, len)
    }

    /// A shared, populated mapping of `len` bytes of `fd` at page offset `offset` (how the
    /// AF_XDP rings are exposed).
    pub(crate) fn shared(fd: BorrowedFd<'_>, len: usize, offset: u64) -> io::Result<Mmap> {
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mmap offset out of range"))?;
        // SAFETY: a new shared mapping of a live descriptor at an address of the kernel's
        // choosing; it aliases no Rust object and the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset,
            )
        };
        Mmap::from_result(ptr, len)
    }

    fn from_result(ptr: *mut libc::c_void, len: usize) -> io::Result<Mmap> {
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Mmap { ptr, len })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping created by `mmap` and owned by this value;
        // every pointer into it is held by the owner of this `Mmap`, which drops them with it.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
