//! Attaching an XDP program to an interface with `BPF_LINK_CREATE`.
//!
//! A link is owned by its file descriptor, not by the interface: when the last fd closes
//! (the [`XdpLink`] drops, or the process exits for any reason, SIGKILL included) the
//! kernel detaches the program. No bpffs pin is made, so nothing outlives sluice. While a
//! link holds the interface, other attach attempts fail with `EBUSY`.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::prog::{Program, BPF_XDP};
use super::sys::{self, LinkCreateAttr};

/// `XDP_FLAGS_SKB_MODE` / `XDP_FLAGS_DRV_MODE` (linux/if_link.h).
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// The attach mode of the XDP program (the `--xdp-mode` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// Generic XDP (`XDP_FLAGS_SKB_MODE`): works on every interface, after the kernel
    /// has built an skb. Copy mode only.
    Skb,
    /// Native XDP in the driver (`XDP_FLAGS_DRV_MODE`): faster, needs driver support;
    /// required for zero-copy.
    Drv,
}

impl AttachMode {
    /// The flag value as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Skb => "skb",
            AttachMode::Drv => "drv",
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An XDP program attached to an interface for as long as this value lives.
#[derive(Debug)]
pub struct XdpLink {
    fd: OwnedFd,
    ifindex: u32,
    mode: AttachMode,
}

impl XdpLink {
    /// Attach `prog` to interface `ifindex` in `mode`.
    pub fn attach(prog: &Program, ifindex: u32, mode: AttachMode) -> io::Result<XdpLink> {
        let mut attr = LinkCreateAttr {
            prog_fd: prog.as_fd().as_raw_fd() as u32,
            target_ifindex: ifindex,
            attach_type: BPF_XDP,
            flags: match mode {
                AttachMode::Skb => XDP_FLAGS_SKB_MODE,
                AttachMode::Drv => XDP_FLAGS_DRV_MODE,
            },
        };
        // SAFETY: LINK_CREATE for XDP reads only the attribute; it holds no pointers.
        let fd = unsafe { sys::bpf_fd(sys::BPF_LINK_CREATE, &mut attr)? };
        Ok(XdpLink { fd, ifindex, mode })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn mode(&self) -> AttachMode {
        self.mode
    }
}

impl AsFd for XdpLink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
