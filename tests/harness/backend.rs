//! One test body, two datapaths: the network a backend-parametrized test runs in.
//!
//! A [`Net`] is created per test for a [`Backend`] and hands out everything the test
//! touches: the address to put in the proxy's listener, a running proxy
//! ([`Net::start_proxy`], an [`InProcessProxy`]), listeners for origins, client
//! connections ([`Conn`]), and addresses that refuse or swallow connects. The test never
//! names an address or a socket type itself, so the same code runs on
//!
//! - [`Backend::Kernel`]: workers over `KernelStack` on loopback (`127.0.0.1`, free
//!   ports), clients and origins on std sockets;
//! - [`Backend::Smol`]: one in-memory network ([`MemNetwork`]) per test. Worker `i` is a
//!   `SmolStack` over its own `MemPort` at `10.99.0.(1 + i)/24` (any_ip); proxy listeners
//!   bind `0.0.0.0`, and [`InProcessProxy::target`] spreads client connections over the
//!   workers. Clients and origins live on one peer host at `10.99.0.100`
//!   ([`PeerHost`], a `SmolStack` driven by its own thread) that knows the workers'
//!   MACs up front; the workers resolve it with ARP. Optional seeded loss,
//!   reordering, duplication and delay apply to what the proxy's and the peer's ports
//!   send ([`SmolOptions`]).
//!
//! Drop order is the test's: declare the `Net` first so that it goes last, after the
//! proxy and the origins that use it. Dropping it stops and joins the peer host.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use sluice_datapath::mem::{Faults, MemConfig, MemNetwork, PortStats};
use sluice_stack::kernel::KernelStack;
use sluice_stack::smol::{Ipv4Cidr, SmolConfig, SmolStack};

use crate::conn::{Conn, Listener};
use crate::inproc::InProcessProxy;
use crate::memnet::PeerHost;

/// Which datapath the proxy runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Kernel sockets and epoll, on loopback.
    Kernel,
    /// Per-worker smoltcp stacks on an in-memory network.
    Smol,
}

/// The in-memory network of a [`Backend::Smol`] test.
#[derive(Debug, Clone, Copy)]
pub struct SmolOptions {
    /// Seed of the network's fault generators and of the stacks' sequence numbers.
    pub seed: u64,
    /// Impairments of every frame the proxy's workers send.
    pub proxy_faults: Faults,
    /// Impairments of every frame the clients' and origins' host sends.
    pub peer_faults: Faults,
}

impl Default for SmolOptions {
    fn default() -> Self {
        SmolOptions { seed: 0x5eed, proxy_faults: Faults::NONE, peer_faults: Faults::NONE }
    }
}

/// How long a connect may take before it fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout of every connection [`Net::connect`] opens.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
/// An address of the in-memory subnet that no host answers (ARP goes unanswered).
const SILENT_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 250);

fn worker_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, 1 + i as u8)
}

struct SmolNet {
    network: MemNetwork,
    host: PeerHost,
    options: SmolOptions,
    /// Ports handed out in this network: proxy listeners, origin listeners, and ports
    /// that stay closed.
    next_port: AtomicU16,
}

/// The network of one test (see the module docs).
pub struct Net {
    backend: Backend,
    smol: Option<SmolNet>,
}

impl Net {
    pub fn new(backend: Backend) -> Net {
        match backend {
            Backend::Kernel => Net { backend, smol: None },
            Backend::Smol => Net::smol(SmolOptions::default()),
        }
    }

    /// A [`Backend::Smol`] network with `options`.
    pub fn smol(options: SmolOptions) -> Net {
        let network = MemNetwork::new(MemConfig { seed: options.seed, ..MemConfig::default() });
        let port = network.attach(options.peer_faults).expect("attach the peer host");
        let mut config = SmolConfig::new(port.mac(), Ipv4Cidr::new(PEER_IP, 24));
        config.any_ip = false;
        config.random_seed = options.seed ^ u64::from(u32::from(PEER_IP));
        let host = PeerHost::start(port, config).expect("start the peer host");
        let smol = SmolNet { network, host, options, next_port: AtomicU16::new(10_000) };
        Net { backend: Backend::Smol, smol: Some(smol) }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// An address for a proxy listener (put it in the bootstrap; connect to
    /// [`InProcessProxy::target`] of it).
    pub fn proxy_listen_addr(&self) -> SocketAddr {
        match &self.smol {
            None => crate::localhost(crate::free_port()),
            Some(s) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, s.next_port.fetch_add(1, Ordering::Relaxed))),
        }
    }

    /// Run the bootstrap `yaml` in-process with `workers` workers; panics on a config or
    /// bind error (see [`Net::try_start_proxy`]).
    pub fn start_proxy(&self, yaml: &str, workers: usize) -> InProcessProxy {
        self.try_start_proxy(yaml, workers).unwrap_or_else(|e| panic!("proxy did not start: {e}\n{yaml}"))
    }

    pub fn try_start_proxy(&self, yaml: &str, workers: usize) -> Result<InProcessProxy, String> {
        match &self.smol {
            None => {
                let stacks = (0..workers).map(|_| KernelStack::new()).collect::<io::Result<Vec<_>>>();
                InProcessProxy::start(yaml, stacks.map_err(|e| format!("no epoll: {e}"))?, Vec::new())
            }
            Some(s) => {
                let mut stacks = Vec::with_capacity(workers);
                let mut ips = Vec::with_capacity(workers);
                for i in 0..workers {
                    let port = s.network.attach(s.options.proxy_faults).map_err(|e| e.to_string())?;
                    let ip = worker_ip(i);
                    let mut config = SmolConfig::new(port.mac(), Ipv4Cidr::new(ip, 24));
                    config.random_seed = s.options.seed ^ u64::from(u32::from(ip));
                    s.host.add_neighbor(ip, port.mac()).map_err(|e| e.to_string())?;
                    stacks.push(SmolStack::new(port, config).map_err(|e| format!("worker {i} stack: {e}"))?);
                    ips.push(IpAddr::V4(ip));
                }
                InProcessProxy::start(yaml, stacks, ips)
            }
        }
    }

    /// A listener for an origin, on a free port of the origins' host.
    pub fn listen(&self) -> Listener {
        match &self.smol {
            None => Listener::bind("127.0.0.1:0").expect("bind a loopback listener"),
            Some(s) => {
                let port = s.next_port.fetch_add(1, Ordering::Relaxed);
                Listener::Smol(s.host.listen(port).expect("listen on the peer host"))
            }
        }
    }

    /// A listener for an origin at `addr` again, e.g. one that was refused
    /// ([`Net::refused_addr`]) or died and comes back on its port.
    pub fn relisten(&self, addr: SocketAddr) -> Listener {
        match &self.smol {
            None => Listener::bind(&addr.to_string()).expect("bind the origin's loopback port"),
            Some(s) => Listener::Smol(s.host.listen(addr.port()).expect("listen on the peer host")),
        }
    }

    /// Connect from the clients' host; the connection reads with [`READ_TIMEOUT`].
    pub fn connect(&self, addr: SocketAddr) -> io::Result<Conn> {
        let conn = match &self.smol {
            None => Conn::Kernel(TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?),
            Some(s) => Conn::Smol(s.host.connect(addr, CONNECT_TIMEOUT)?),
        };
        conn.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(conn)
    }

    /// An address where nothing listens: a connect is refused (RST) at once.
    pub fn refused_addr(&self) -> SocketAddr {
        match &self.smol {
            None => crate::localhost(crate::free_port()),
            // A port of the counter that no listener will take.
            Some(s) => SocketAddr::from((PEER_IP, s.next_port.fetch_add(1, Ordering::Relaxed))),
        }
    }

    /// An address whose connects are never answered, held as long as the guard lives.
    pub fn blackhole(&self) -> Blackhole {
        match &self.smol {
            None => Blackhole::kernel(),
            Some(_) => Blackhole { addr: SocketAddr::from((SILENT_IP, 80)), _held: None },
        }
    }

    /// The address the proxy sees clients (and origins) connect from.
    pub fn client_ip(&self) -> IpAddr {
        match &self.smol {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(_) => IpAddr::V4(PEER_IP),
        }
    }

    /// Counters of the peer host's port (smol only): what the wire did to its frames.
    pub fn peer_port_stats(&self) -> Option<PortStats> {
        self.smol.as_ref().and_then(|s| s.network.stats(0))
    }
}

/// An address that swallows connects (see [`Net::blackhole`]).
pub struct Blackhole {
    pub addr: SocketAddr,
    /// Kernel: a listener with a full accept queue and the connections that fill it.
    _held: Option<(socket2::Socket, Vec<TcpStream>)>,
}

impl Blackhole {
    /// A loopback listener with backlog 0 whose queue is filled by our own connects:
    /// the kernel drops further SYNs, so connects hang.
    fn kernel() -> Blackhole {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        s.bind(&crate::localhost(0).into()).expect("bind");
        s.listen(0).expect("listen");
        let addr = s.local_addr().ok().and_then(|a| a.as_socket()).expect("a bound address");
        let mut fillers = Vec::new();
        while fillers.len() < 300 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                Ok(c) => fillers.push(c),
                Err(_) => break,
            }
        }
        Blackhole { addr, _held: Some((s, fillers)) }
    }
}
