//! The AF_XDP datapath: one [`XskDevice`] per NIC queue, fed by the [`XdpProgram`]
//! attached to the interface.
//!
//! Setup, per interface and then per queue:
//!
//! ```no_run
//! use std::net::Ipv4Addr;
//! use sluice_datapath::xsk::{SteeringConfig, XdpProgram, XskConfig, XskDevice};
//! use sluice_datapath::AttachMode;
//!
//! let steering = SteeringConfig { owned: vec![Ipv4Addr::new(10, 0, 0, 2)], ..Default::default() };
//! let program = XdpProgram::attach("eth0", AttachMode::Drv, &steering)?;
//! let devices: Vec<XskDevice> = (0..program.interface().rx_queues)
//!     .map(|q| XskDevice::open(&program, q, &XskConfig::default()))
//!     .collect::<Result<_, _>>()?;
//! # Ok::<(), sluice_datapath::XdpError>(())
//! ```
//!
//! Each device then moves to its worker thread (it is `Send`); the program stays
//! attached until the last device and the caller's `Arc` are gone.

mod bench_loops;
mod busy_poll;
mod config;
mod device;
mod frames;
mod program;
mod reflect;
mod ring;
mod rx;
mod socket;
mod stats;
mod steer;
mod tx;
mod umem;
mod waker;

pub use busy_poll::BusyPoll;
pub use config::{BindMode, XskConfig, ETHERNET_HEADER, RX_BATCH, TX_BATCH};
pub use device::{XskDevice, XskRxToken, XskTxToken};
pub use frames::FrameStack;
pub use program::XdpProgram;
pub use ring::{ConsRing, ProdRing};
pub use socket::{FrameAccounting, XskSocket};
pub use stats::XskStats;
pub use steer::{PortFilter, Steering, SteeringConfig, MAX_INTERCEPT, MAX_OWNED};
pub use umem::{Umem, XDP_PACKET_HEADROOM};
pub use waker::EventFd;
