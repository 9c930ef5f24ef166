//! Setup errors of the AF_XDP datapath, each phrased so that an operator can act on it:
//! what failed, on which interface or queue, why, and the command or flag that fixes it.
//!
//! These errors come from setup (opening queues, loading and attaching the XDP program),
//! never from the per-packet path, which counts problems instead of failing.

use std::fmt;
use std::io;

use crate::bpf::AttachMode;

/// Why setting up the AF_XDP datapath failed.
#[derive(Debug)]
pub enum XdpError {
    /// EPERM: AF_XDP sockets and BPF need privileges.
    NotPermitted { op: &'static str },
    /// The interface name does not exist in this network namespace.
    InterfaceMissing { interface: String },
    /// The queue index is not one of the interface's rx queues.
    QueueMissing { interface: String, queue: u32, queues: u32 },
    /// Another AF_XDP socket is already bound to the queue.
    QueueBusy { interface: String, queue: u32 },
    /// The kernel refused to attach the XDP program.
    AttachRefused { interface: String, mode: AttachMode, source: io::Error, hint: String },
    /// Zero-copy was requested but the driver cannot do it.
    ZeroCopyUnsupported { interface: String, driver: String, reason: &'static str },
    /// The interface MTU does not fit in one UMEM frame.
    MtuTooLarge { interface: String, mtu: u32, max: u32 },
    /// The verifier rejected the XDP program; `log` is its verdict.
    Verifier { source: io::Error, log: String },
    /// A configuration value is out of range (ring sizes, frame size, prefixes).
    InvalidConfig { what: String },
    /// Any other system call failure, with the operation that failed.
    Io { op: &'static str, source: io::Error },
}

impl XdpError {
    /// Wrap an `io::Error` from `op`, recognising EPERM as missing privileges.
    pub(crate) fn io(op: &'static str, source: io::Error) -> XdpError {
        match source.raw_os_error() {
            Some(libc::EPERM) => XdpError::NotPermitted { op },
            _ => XdpError::Io { op, source },
        }
    }
}

impl fmt::Display for XdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XdpError::NotPermitted { op } => write!(
                f,
                "{op}: operation not permitted: the xdp datapath needs root \
                 (CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF); run sluice as root or use \
                 --datapath kernel"
            ),
            XdpError::InterfaceMissing { interface } => write!(
                f,
                "interface {interface:?} does not exist in this network namespace \
                 (list interfaces with `ip link show`)"
            ),
            XdpError::QueueMissing { interface, queue, queues } => write!(
                f,
                "interface {interface} has no rx queue {queue}: it has {queues} \
                 (queues 0..{queues}); pick --queues within that range or raise the \
                 channel count with `ethtool -L {interface} combined N`"
            ),
            XdpError::QueueBusy { interface, queue } => write!(
                f,
                "queue {queue} of {interface} is already bound to another AF_XDP socket \
                 (is another sluice running on {interface}?)"
            ),
            XdpError::AttachRefused { interface, mode, source, hint } => {
                write!(f, "attaching the XDP program to {interface} in {mode} mode failed: {source}; {hint}")
            }
            XdpError::ZeroCopyUnsupported { interface, driver, reason } => write!(
                f,
                "zero-copy AF_XDP is not available on {interface} (driver {driver}): \
                 {reason}; drop --zero-copy to use copy mode"
            ),
            XdpError::MtuTooLarge { interface, mtu, max } => write!(
                f,
                "MTU {mtu} of {interface} does not fit in one AF_XDP frame (at most {max}); \
                 lower it with `ip link set dev {interface} mtu {max}`"
            ),
            XdpError::Verifier { source, log } => {
                write!(f, "the kernel verifier rejected the XDP program: {source}")?;
                if !log.is_empty() {
                    write!(f, "\nverifier log:\n{log}")?;
                }
                Ok(())
            }
            XdpError::InvalidConfig { what } => write!(f, "invalid AF_XDP configuration: {what}"),
            XdpError::Io { op, source } => write!(f, "{op}: {source}"),
        }
    }
}

impl std::error::Error for XdpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            XdpError::AttachRefused { source, .. }
            | XdpError::Verifier { source, .. }
            | XdpError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<XdpError> for io::Error {
    fn from(e: XdpError) -> io::Error {
        let kind = match &e {
            XdpError::NotPermitted { .. } => io::ErrorKind::PermissionDenied,
            XdpError::InterfaceMissing { .. } | XdpError::QueueMissing { .. } => io::ErrorKind::NotFound,
            XdpError::QueueBusy { .. } => io::ErrorKind::AddrInUse,
            XdpError::ZeroCopyUnsupported { .. } => io::ErrorKind::Unsupported,
            XdpError::InvalidConfig { .. } | XdpError::MtuTooLarge { .. } => io::ErrorKind::InvalidInput,
            XdpError::AttachRefused { source, .. }
            | XdpError::Verifier { source, .. }
            | XdpError::Io { source, .. } => source.kind(),
        };
        io::Error::new(kind, e)
    }
}
