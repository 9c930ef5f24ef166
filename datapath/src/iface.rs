//! What the datapath needs to know about a network interface: its index, MAC address,
//! MTU, driver and number of rx/tx queues, read from the calling thread's network
//! namespace (ioctls on a datagram socket) and from sysfs (queue counts).
//!
//! sysfs shows the namespace it was mounted in. A process started with `ip netns exec`
//! (or a thread entered with [`crate::testnet::Netns::run`]) has it remounted; a
//! mismatch between sysfs and the socket view is reported as an error rather than
//! silently counting another namespace's queues.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::XdpError;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;

/// An interface as seen from the calling thread's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub name: String,
    /// `ifindex`.
    pub index: u32,
    /// Ethernet address, the source MAC of everything the userspace stack sends.
    pub mac: [u8; 6],
    /// IP MTU (without the Ethernet header).
    pub mtu: u32,
    /// Number of rx queues (`/sys/class/net/IF/queues/rx-*`).
    pub rx_queues: u32,
    /// Number of tx queues (`/sys/class/net/IF/queues/tx-*`).
    pub tx_queues: u32,
    /// Driver name from `ETHTOOL_GDRVINFO` (`veth`, `ice`, `mlx5_core`, ...), or
    /// `"unknown"` when the driver does not answer.
    pub driver: String,
}

/// `struct ifreq` with the members we use.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    ifru: IfrIfru,
}

#[repr(C)]
union IfrIfru {
    hwaddr: libc::sockaddr,
    mtu: libc::c_int,
    data: *mut libc::c_void,
    _pad: [u8; 24],
}

/// `struct ethtool_drvinfo` (linux/ethtool.h).
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

impl InterfaceInfo {
    /// Look `name` up in the calling thread's network namespace.
    pub fn query(name: &str) -> Result<InterfaceInfo, XdpError> {
        let missing = || XdpError::InterfaceMissing { interface: name.to_string() };
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', '\0']) {
            return Err(missing());
        }
        let cname = CString::new(name).map_err(|_| missing())?;
        // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if index == 0 {
            return Err(missing());
        }
        let sock = datagram_socket().map_err(|e| XdpError::io("socket(AF_INET)", e))?;

        let mut req = ifreq(name);
        ioctl(&sock, libc::SIOCGIFHWADDR, &mut req).map_err(|e| match e.raw_os_error() {
            Some(libc::ENODEV) => missing(),
            _ => XdpError::io("ioctl(SIOCGIFHWADDR)", e),
        })?;
        // SAFETY: SIOCGIFHWADDR succeeded, so the kernel filled the `hwaddr` member.
        let hw = unsafe { req.ifru.hwaddr };
        if hw.sa_family != libc::ARPHRD_ETHER {
            return Err(XdpError::InvalidConfig {
                what: format!("{name} is not an Ethernet interface (hardware type {})", hw.sa_family),
            });
        }
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(hw.sa_data.iter()) {
            *m = *b as u8;
        }

        let mut req = ifreq(name);
        ioctl(&sock, libc::SIOCGIFMTU, &mut req).map_err(|e| XdpError::io("ioctl(SIOCGIFMTU)", e))?;
        // SAFETY: SIOCGIFMTU succeeded, so the kernel filled the `mtu` member.
        let mtu = u32::try_from(unsafe { req.ifru.mtu }).unwrap_or(0);

        let driver = driver_name(&sock, name).unwrap_or_else(|| "unknown".to_string());
        let (rx_queues, tx_queues) = queue_counts(name, index)?;
        Ok(InterfaceInfo { name: name.to_string(), index, mac, mtu, rx_queues, tx_queues, driver })
    }
}

fn datagram_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before being owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &str) -> IfReq {
    let mut req = IfReq { name: [0; libc::IFNAMSIZ], ifru: IfrIfru { _pad: [0; 24] } };
    for (dst, src) in req.name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req
}

fn ioctl(sock: &OwnedFd, request: libc::c_ulong, req: &mut IfReq) -> io::Result<()> {
    // SAFETY: `req` is a properly sized, initialised `struct ifreq` that outlives the
    // call; the kernel reads the name and writes only within the union.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request as _, req as *mut IfReq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn driver_name(sock: &OwnedFd, name: &str) -> Option<String> {
    // SAFETY: `EthtoolDrvinfo` is plain old data; all-zero is a valid value.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut req = ifreq(name);
    req.ifru.data = (&mut info as *mut EthtoolDrvinfo).cast();
    ioctl(sock, SIOCETHTOOL, &mut req).ok()?;
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(info.driver.len());
    let driver = String::from_utf8_lossy(&info.driver[..end]).into_owned();
    (!driver.is_empty()).then_some(driver)
}

/// Count `rx-*` and `tx-*` entries under `/sys/class/net/NAME/queues`, after checking
/// that this sysfs belongs to our network namespace (same ifindex).
fn queue_counts(name: &str, index: u32) -> Result<(u32, u32), XdpError> {
    let base = format!("/sys/class/net/{name}");
    let sysfs_index = fs::read_to_string(format!("{base}/ifindex")).ok().and_then(|s| s.trim().parse::<u32>().ok());
    if sysfs_index != Some(index) {
        return Err(XdpError::InvalidConfig {
            what: format!(
                "{base} does not describe interface {name} (ifindex {index}) of this network \
                 namespace; run inside the namespace with `ip netns exec`, which remounts /sys"
            ),
        });
    }
    let entries = fs::read_dir(format!("{base}/queues")).map_err(|e| XdpError::io("reading sysfs queues", e))?;
    let (mut rx, mut tx) = (0u32, 0u32);
    for entry in entries {
        let entry = entry.map_err(|e| XdpError::io("reading sysfs queues", e))?;
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if file.starts_with("rx-") {
            rx += 1;
        } else if file.starts_with("tx-") {
            tx += 1;
        }
    }
    Ok((rx, tx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_named() {
        let err = InterfaceInfo::query("sx-no-such-if").unwrap_err();
        assert!(matches!(err, XdpError::InterfaceMissing { .. }), "{err}");
        assert!(err.to_string().contains("sx-no-such-if"));
        let err = InterfaceInfo::query("a/b").unwrap_err();
        assert!(matches!(err, XdpError::InterfaceMissing { .. }));
    }

    #[test]
    fn loopback_is_not_ethernet() {
        let err = InterfaceInfo::query("lo").unwrap_err();
        assert!(err.to_string().contains("not an Ethernet interface"), "{err}");
    }
}
