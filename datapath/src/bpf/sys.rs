//! The `bpf(2)` system call: command numbers and the members of `union bpf_attr` that
//! sluice uses (linux/bpf.h), each as its own `#[repr(C)]` struct. The kernel accepts an
//! attribute shorter than its own union and treats the missing tail as zero, so each
//! struct ends at the last member we set.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

pub(crate) const BPF_MAP_CREATE: libc::c_int = 0;
pub(crate) const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
pub(crate) const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
pub(crate) const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
pub(crate) const BPF_PROG_LOAD: libc::c_int = 5;
pub(crate) const BPF_PROG_TEST_RUN: libc::c_int = 10;
pub(crate) const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
pub(crate) const BPF_LINK_CREATE: libc::c_int = 28;

/// `BPF_OBJ_NAME_LEN`.
pub(crate) const OBJ_NAME_LEN: usize = 16;

/// `BPF_MAP_CREATE`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; OBJ_NAME_LEN],
}

/// `BPF_MAP_*_ELEM`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct MapElemAttr {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    pub value: u64,
    pub flags: u64,
}

/// `BPF_PROG_LOAD`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; OBJ_NAME_LEN],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
}

/// `BPF_PROG_TEST_RUN`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct TestRunAttr {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    /// Explicit tail padding: the kernel rejects non-zero bytes past `batch_size`.
    pub _pad: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct InfoAttr {
    pub bpf_fd: u32,
    pub info_len: u32,
    pub info: u64,
}

/// `BPF_LINK_CREATE` (the XDP form: target is an ifindex).
#[repr(C)]
#[derive(Default)]
pub(crate) struct LinkCreateAttr {
    pub prog_fd: u32,
    pub target_ifindex: u32,
    pub attach_type: u32,
    pub flags: u32,
}

/// Encode an object name: at most 15 bytes of `[A-Za-z0-9_.]`, NUL-padded.
pub(crate) fn obj_name(name: &str) -> [u8; OBJ_NAME_LEN] {
    let mut out = [0u8; OBJ_NAME_LEN];
    let valid = name.bytes().filter(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.');
    for (dst, src) in out.iter_mut().take(OBJ_NAME_LEN - 1).zip(valid) {
        *dst = src;
    }
    out
}

/// Issue `bpf(cmd, attr, sizeof attr)`. Attribute structs must have no implicit padding:
/// the kernel requires every byte past the members it knows to be zero.; returns the non-negative result.
///
/// # Safety
/// Every pointer stored in `attr` (as a `u64`) must be valid for the access the command
/// makes through it, for the duration of the call.
pub(crate) unsafe fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed `#[repr(C)]` attribute of the given
    // size; the caller vouches for the pointers inside it.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>() as libc::c_uint) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// Like [`bpf`], for commands whose result is a new file descriptor.
///
/// # Safety
/// As for [`bpf`].
pub(crate) unsafe fn bpf_fd<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: forwarded from the caller.
    let fd = unsafe { bpf(cmd, attr)? };
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::other("bpf returned a bad fd"))?;
    // SAFETY: the kernel returned a fresh descriptor (O_CLOEXEC) owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_layouts_match_linux_bpf_h() {
        assert_eq!(std::mem::size_of::<MapCreateAttr>(), 44);
        assert_eq!(std::mem::size_of::<MapElemAttr>(), 32);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::size_of::<TestRunAttr>(), 80);
        assert_eq!(std::mem::size_of::<LinkCreateAttr>(), 16);
    }

    #[test]
    fn names_are_truncated_and_sanitised() {
        assert_eq!(&obj_name("sluice-xdp")[..10], b"sluicexdp\0");
        let long = obj_name("abcdefghijklmnopqrstuvwxyz");
        assert_eq!(&long[..15], b"abcdefghijklmno");
        assert_eq!(long[15], 0);
    }
}
