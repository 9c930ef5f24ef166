//! Packet devices for the per-core userspace TCP/IP stack.
//!
//! A [`Datapath`] is a smoltcp `phy::Device` that a worker can also *wait* on. Two
//! implementations live here: the AF_XDP queue (kernel bypass, `xsk`) and the in-memory
//! datapath (stacks joined by frame queues, with seeded faults, for tests and
//! benchmarks). All `unsafe` code of sluice lives in this crate, each block with a
//! `// SAFETY:` note.

use std::io;
use std::sync::Arc;
use std::time::Duration;

pub mod bpf;
pub mod error;
pub mod iface;
pub mod mem;
mod mmap;
pub mod ring;
pub mod testnet;
pub mod xsk;

pub use bpf::AttachMode;
pub use error::XdpError;
pub use iface::InterfaceInfo;
pub use xsk::{BindMode, PortFilter, SteeringConfig, XdpProgram, XskConfig, XskDevice, XskStats};

/// Wakes a [`Datapath::wait`] from another thread.
pub trait DatapathWaker: Send + Sync {
    fn wake(&self) -> io::Result<()>;
}

/// A smoltcp device a per-core stack runs on, plus the means to sleep on it.
pub trait Datapath: smoltcp::phy::Device {
    /// Block until a frame may be ready to receive, `timeout` passes (`None` = no
    /// limit), or a waker fires. Spurious returns are allowed.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// A handle that interrupts [`Datapath::wait`] from any thread.
    fn waker(&self) -> io::Result<Arc<dyn DatapathWaker>>;

    /// Hand batched transmissions to the medium (e.g. kick the AF_XDP TX ring). Called
    /// once per stack poll round, after all egress of the round.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
