//! The virtual-NIC benchmark: sluice's real worker (listener, HTTP connection manager,
//! router, upstream pool) on the smol stack, over a virtual zero-copy NIC
//! ([`sluice_datapath::ring`]), with keep-alive clients and the origin on a second smol
//! stack on another thread ([`load`]). The packet path costs the proxy no copy, lock or
//! syscall, so what the proxy thread spends per request is sluice's own cost: TCP/IP in
//! smoltcp, HTTP/1.1 codec, routing, pooling.
//!
//! Figures, over the measured window only:
//! - requests per second (wall clock), the proxy thread's share of a core;
//! - the proxy thread's CPU time per request (`/proc/self/task/TID/schedstat`: time on a
//!   CPU, so a preempted thread is not charged for the wait), and that time less what its
//!   `wait` spent spinning on an empty ring ("busy"): a proxy on a dedicated core spins
//!   when it has nothing to do, which is idle capacity, not cost;
//! - requests per CPU-second and per busy CPU-second: what one core saturated would do;
//! - the load thread's CPU and the proxy thread's run-queue delay (time it was ready but
//!   another task held the core), to judge a shared machine's interference.

pub mod load;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use sluice::listener::manager::Snapshot;
use sluice::stats::Store;
use sluice::worker::{Control, Worker, WorkerSetup};
use sluice_datapath::ring::{ring_pair, RingConfig, RingStats};
use sluice_stack::smol::{Ipv4Address, Ipv4Cidr, SmolConfig, SmolStack};

use self::load::{Load, LoadCounters};

const PROXY_IP: Ipv4Address = Ipv4Address::new(10, 99, 0, 1);
const PEER_IP: Ipv4Address = Ipv4Address::new(10, 99, 0, 2);
const PROXY_PORT: u16 = 8080;
const ORIGIN_PORT: u16 = 8081;

/// The proxy's config: bench/load/sluice.yaml's (HCM + router, one static cluster,
/// Envoy's defaults otherwise), on the virtual NIC's addresses.
const CONFIG: &str = r#"
static_resources:
  listeners:
  - name: http_in
    address: { socket_address: { address: 0.0.0.0, port_value: 8080 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: web }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: web
    connect_timeout: 1s
    load_assignment:
      cluster_name: web
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 10.99.0.2, port_value: 8081 } } } }] }]
"#;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Software checksums (AF_XDP) or none (a NIC's offload).
    pub checksums: bool,
    /// Cores to pin the proxy thread and the load thread to.
    pub cpus: Option<(usize, usize)>,
    /// Both threads spin on their rings and never park (dedicated cores, as
    /// `--busy-poll`): no futex wake-ups between them, each core always busy.
    pub busy_poll: bool,
}

/// The measured window.
#[derive(Debug, Clone)]
pub struct Report {
    pub requests: u64,
    pub errors: u64,
    /// Connections reset while the load ran (warm-up included).
    pub resets: u64,
    pub seconds: f64,
    /// Proxy thread: on-CPU, spinning idle, waiting for its core (ns).
    pub proxy_cpu_ns: u64,
    pub proxy_spin_ns: u64,
    pub proxy_delay_ns: u64,
    pub load_cpu_ns: u64,
}

impl Report {
    pub fn requests_per_s(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    pub fn per_cpu_s(&self) -> f64 {
        self.requests as f64 / (self.proxy_cpu_ns as f64 / 1e9)
    }
    pub fn busy_ns(&self) -> u64 {
        self.proxy_cpu_ns.saturating_sub(self.proxy_spin_ns)
    }
    pub fn per_busy_cpu_s(&self) -> f64 {
        self.requests as f64 / (self.busy_ns() as f64 / 1e9)
    }
}

/// `/proc/self/task/TID/schedstat`: (ns on a CPU, ns waiting for one).
fn schedstat(tid: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).unwrap_or_default();
    let mut f = text.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
    (f.next().unwrap_or(0), f.next().unwrap_or(0))
}

/// The calling thread's id, as /proc names it.
fn tid() -> String {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// Pin the calling thread to `cpu`, if given.
fn pin(cpu: Option<usize>) -> io::Result<()> {
    cpu.map_or(Ok(()), sluice_datapath::ring::pin_thread)
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

struct Snap {
    at: Instant,
    responses: u64,
    errors: u64,
    proxy: (u64, u64),
    spin: u64,
    load: u64,
}

/// Run the benchmark once.
pub fn run(opts: &Options) -> io::Result<Report> {
    let mut ring = RingConfig { checksums: opts.checksums, ..RingConfig::default() };
    if opts.busy_poll {
        ring.spin = Duration::MAX;
    }
    let (proxy_port, peer_port) = ring_pair(&ring)?;
    let proxy_stats: Arc<RingStats> = proxy_port.stats();
    let loaded = sluice_config::load_str(CONFIG).map_err(other)?;
    let snapshot = Arc::new(Snapshot::build(&loaded.bootstrap).map_err(|e| other(e.join("; ")))?);
    let control = Arc::new(Control::default());

    let (tx, rx) = mpsc::channel();
    let proxy_control = Arc::clone(&control);
    let (proxy_cpu, load_cpu) = (opts.cpus.map(|c| c.0), opts.cpus.map(|c| c.1));
    let proxy = thread::Builder::new().name("vnic-proxy".into()).spawn(move || -> io::Result<()> {
        pin(proxy_cpu)?;
        let mut cfg = SmolConfig::new(proxy_port.mac(), Ipv4Cidr::new(PROXY_IP, 24));
        cfg.ephemeral_ports = (40_000, 44_095);
        let mut stack = SmolStack::new(proxy_port, cfg)?;
        let listen_sockets = sluice::server::open_listeners(&mut stack, &snapshot).map_err(other)?;
        let stats = Arc::new(Store::new(1));
        stats.filters.replace(snapshot.filter_counters());
        let setup = WorkerSetup {
            id: 0,
            stack,
            snapshot,
            listen_sockets,
            stats,
            control: proxy_control,
            drain_time: Duration::from_secs(1),
        };
        let mut worker = Worker::new(setup)?;
        let _ = tx.send((tid(), worker.waker()?));
        worker.run()
    })?;
    let (proxy_tid, waker) = rx.recv().map_err(|_| other("the proxy thread failed to start"))?;

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(LoadCounters::default());
    let (ltx, lrx) = mpsc::channel();
    let (load_stop, load_counters, connections) = (Arc::clone(&stop), Arc::clone(&counters), opts.connections);
    let load = thread::Builder::new().name("vnic-load".into()).spawn(move || -> io::Result<()> {
        pin(load_cpu)?;
        let mut cfg = SmolConfig::new(peer_port.mac(), Ipv4Cidr::new(PEER_IP, 24));
        cfg.any_ip = false;
        let stack = SmolStack::new(peer_port, cfg)?;
        let proxy = SocketAddr::from((PROXY_IP, PROXY_PORT));
        let origin = SocketAddr::from((PEER_IP, ORIGIN_PORT));
        let load = Load::new(stack, proxy, origin, connections)?;
        let _ = ltx.send(tid());
        load.run(&load_stop, &load_counters)
    })?;
    let load_tid = lrx.recv().map_err(|_| other("the load thread failed to start"))?;

    let snap = || Snap {
        at: Instant::now(),
        responses: counters.responses.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        proxy: schedstat(&proxy_tid),
        spin: proxy_stats.idle_spin_ns.load(Ordering::Relaxed),
        load: schedstat(&load_tid).0,
    };
    thread::sleep(opts.warmup);
    let a = snap();
    thread::sleep(opts.duration);
    let b = snap();

    // The load stops first: the proxy's stop resets every connection it holds.
    stop.store(true, Ordering::Relaxed);
    let load_result = load.join().map_err(|_| other("the load thread panicked"));
    control.stop.store(true, Ordering::Relaxed);
    let _ = waker.wake();
    let load_result = load_result?;
    let proxy_result = proxy.join().map_err(|_| other("the proxy thread panicked"))?;
    load_result?;
    proxy_result?;
    if a.responses == 0 {
        return Err(other("no response during the warm-up: the proxy did not serve"));
    }
    Ok(Report {
        requests: b.responses - a.responses,
        errors: b.errors,
        resets: counters.resets.load(Ordering::Relaxed),
        seconds: (b.at - a.at).as_secs_f64(),
        proxy_cpu_ns: b.proxy.0 - a.proxy.0,
        proxy_spin_ns: b.spin - a.spin,
        proxy_delay_ns: b.proxy.1 - a.proxy.1,
        load_cpu_ns: b.load - a.load,
    })
}

#[cfg(test)]
mod tests {
    use super::{run, Options};
    use std::time::Duration;

    /// The whole rig serves: every client gets 200 responses through the real worker,
    /// the origin answers each proxied request, and the proxy's CPU time is measured.
    #[test]
    fn keep_alive_requests_cross_the_virtual_nic_through_the_worker() {
        let opts = Options {
            connections: 4,
            warmup: Duration::from_millis(300),
            duration: Duration::from_millis(500),
            checksums: true,
            cpus: None,
            busy_poll: false,
        };
        let r = run(&opts).expect("the benchmark runs");
        assert!(r.requests > 0, "no request was proxied: {r:?}");
        assert_eq!(r.errors, 0, "{r:?}");
        assert!(r.proxy_cpu_ns > 0, "the proxy thread's CPU time was not read: {r:?}");
    }
}
