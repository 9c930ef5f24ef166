//! `XdpProgram`: the steering program attached to one interface, shared by every queue's
//! [`XskDevice`](super::XskDevice) on it.
//!
//! Attaching uses a BPF link, so the program is detached when the last holder of this
//! value (the devices hold an `Arc`) drops it, or when the process dies however it dies.
//! A refused attach is explained: why the kernel said no, and the flag or command that
//! fixes it.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use smoltcp::wire::Ipv4Cidr;

use super::steer::{Steering, SteeringConfig};
use crate::bpf::{AttachMode, XdpAction, XdpLink};
use crate::error::XdpError;
use crate::iface::InterfaceInfo;

/// The steering program, attached to an interface.
#[derive(Debug)]
pub struct XdpProgram {
    // Field order is drop order: detach before the maps and program go.
    link: XdpLink,
    steering: Steering,
    interface: InterfaceInfo,
    mode: AttachMode,
}

impl XdpProgram {
    /// Load the steering program for `cfg` and attach it to `interface` in `mode`.
    pub fn attach(interface: &str, mode: AttachMode, cfg: &SteeringConfig) -> Result<Arc<XdpProgram>, XdpError> {
        let info = InterfaceInfo::query(interface)?;
        let queues = info.rx_queues.max(info.tx_queues);
        let steering = Steering::load(cfg, queues, XdpAction::Pass)?;
        let link = attach_with_retry(&steering, info.index, mode).map_err(|e| attach_error(&info, mode, e))?;
        Ok(Arc::new(XdpProgram { link, steering, interface: info, mode }))
    }

    pub fn interface(&self) -> &InterfaceInfo {
        &self.interface
    }

    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The kernel's id of the attached program (`ip link` shows `prog/xdp id N`).
    pub fn id(&self) -> io::Result<u32> {
        self.steering.program().id()
    }

    /// Point queue `queue` at an AF_XDP socket (done by [`XskDevice::open`]).
    ///
    /// [`XskDevice::open`]: super::XskDevice::open
    pub fn register(&self, queue: u32, xsk: BorrowedFd<'_>) -> Result<(), XdpError> {
        self.steering.register(queue, xsk)
    }

    /// Steer ARP and TCP for `addr` to sluice (e.g. on config reload).
    pub fn add_owned(&self, addr: Ipv4Addr) -> Result<(), XdpError> {
        self.steering.add_owned(addr)
    }

    pub fn remove_owned(&self, addr: Ipv4Addr) -> Result<bool, XdpError> {
        self.steering.remove_owned(addr)
    }

    /// Steer TCP to any address in `prefix` to sluice.
    pub fn add_intercept(&self, prefix: Ipv4Cidr) -> Result<(), XdpError> {
        self.steering.add_intercept(prefix)
    }

    pub fn remove_intercept(&self, prefix: Ipv4Cidr) -> Result<bool, XdpError> {
        self.steering.remove_intercept(prefix)
    }

    /// With a port filter: accept TCP to `port` too.
    pub fn allow_port(&self, port: u16) -> Result<(), XdpError> {
        self.steering.allow_port(port)
    }

    pub fn deny_port(&self, port: u16) -> Result<(), XdpError> {
        self.steering.deny_port(port)
    }

    /// The underlying link (its interface and mode).
    pub fn link(&self) -> &XdpLink {
        &self.link
    }
}

/// Explain a refused `BPF_LINK_CREATE`.
/// Attach, retrying `EEXIST`/`EBUSY` for a short while: the kernel releases a closed
/// XDP link asynchronously, so a sluice restarted at once (or a program re-attached
/// right after its predecessor was dropped) can briefly see the old one.
fn attach_with_retry(steering: &Steering, ifindex: u32, mode: AttachMode) -> io::Result<XdpLink> {
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);
    let start = std::time::Instant::now();
    loop {
        match XdpLink::attach(steering.program(), ifindex, mode) {
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::EBUSY)) && start.elapsed() < PATIENCE =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn attach_error(info: &InterfaceInfo, mode: AttachMode, e: io::Error) -> XdpError {
    let name = &info.name;
    let hint = match (e.raw_os_error(), mode) {
        (Some(libc::EPERM), _) => return XdpError::NotPermitted { op: "bpf(BPF_LINK_CREATE)" },
        (Some(libc::ENODEV), _) => return XdpError::InterfaceMissing { interface: name.clone() },
        (Some(libc::EBUSY) | Some(libc::EEXIST), _) => format!(
            "another XDP program is already attached to {name} (see `ip -d link show dev {name}`); \
             stop the other sluice or remove it with `ip link set dev {name} xdp off`"
        ),
        (Some(libc::EOPNOTSUPP), AttachMode::Drv) => {
            format!("driver {} lacks native XDP: use --xdp-mode skb", info.driver)
        }
        (Some(libc::EOPNOTSUPP), AttachMode::Skb) => {
            "this kernel lacks generic XDP (CONFIG_XDP_SOCKETS / CONFIG_BPF_SYSCALL)".to_string()
        }
        (Some(libc::ERANGE), _) | (Some(libc::EINVAL), AttachMode::Drv) => format!(
            "driver {} refused native XDP in its current configuration (MTU {} may be too \
             large for single-buffer XDP, or LRO is on: `ethtool -K {name} lro off`); lower \
             the MTU, fix that, or use --xdp-mode skb",
            info.driver, info.mtu
        ),
        (Some(libc::EINVAL), AttachMode::Skb) => {
            "the kernel rejected the link (Linux 5.9 or newer is needed for XDP links)".to_string()
        }
        _ => "see `dmesg` for the driver's reason, or try --xdp-mode skb".to_string(),
    };
    XdpError::AttachRefused { interface: name.clone(), mode, source: e, hint }
}
