//! xdp mode: sluice serves straight from NIC queues through AF_XDP, with a userspace
//! TCP/IP stack per queue and no kernel socket in the data path.
//!
//! `sluice -c FILE --datapath xdp --interface IF --address CIDR [--gateway IP]
//! [--queues LIST] [--xdp-mode skb|drv] [--zero-copy] [--busy-poll] [--intercept CIDR,...]`
//!
//! Setup, on the main thread, failing fast with the datapath's own explanation (not
//! root, no such interface or queue, attach refused and how to fix it):
//!
//! 1. plan: check the flags, pick the queues (`--queues`, else the first
//!    `--concurrency` of the interface's), split the ephemeral ports between them, and
//!    work out what the XDP program steers (see [`plan`]);
//! 2. attach the steering program (native, falling back to generic unless
//!    `--xdp-mode` says which) and open one AF_XDP socket per queue;
//! 3. per queue: a smol stack with the interface's MAC and MTU and sluice's address
//!    (`any_ip` on, so an accepted connection's local address is its original
//!    destination), the core's ephemeral range, flow steering between the cores (frames
//!    of another core's flow are handed to it), the gateway's MAC when the kernel
//!    already knows it, every listener of the config opened on it, and the
//!    `use_original_dst` listener as the target of intercepted connections without a
//!    listener of their own;
//! 4. one worker per queue, pinned, exactly as in kernel mode; upstream connections
//!    leave through the same per-core stack.
//!
//! The admin server and the signals stay on the main thread with kernel sockets. SIGHUP
//! reloads as in kernel mode (each worker opens the new listeners on its own stack) and
//! adds the new listening ports to the XDP program's port filter; a config that would
//! need another program or redirect target is refused with the reason (see
//! [`plan::SteeringPlan::reload_to`]). On
//! SIGTERM the workers drain as in kernel mode; when the last one is gone the sockets
//! close and the XDP program is detached (the kernel detaches it too if the process
//! dies however it dies: it is attached through a BPF link).

mod kernel_arp;
mod plan;
mod queue_stack;

use std::io::Read;
use std::sync::Arc;

use sluice_datapath::{AttachMode, Datapath, InterfaceInfo, XdpError, XdpProgram, XskConfig, XskDevice};
use sluice_stack::smol::{EthernetAddress, FlowSteering, Handoff, HandoffConfig, SmolConfig, SmolStack};

use crate::cli::Options;
use crate::listener::manager::Snapshot;
use crate::reload::DatapathReload;
use crate::server::{open_listeners, prepare, run_serving};
use crate::worker::{Worker, WorkerSetup};
use plan::{ephemeral_ranges, SteeringPlan, XdpPlan, EPHEMERAL};
use queue_stack::QueueStack;

/// Frames each core's hand-off inbox holds.
const HANDOFF_INBOX: usize = 1024;

/// Serve in xdp mode; returns the exit code.
pub(crate) fn serve(
    opts: &Options,
    loaded: &sluice_config::Loaded,
    snapshot: Arc<Snapshot>,
    xds: Option<crate::xds::FileXds>,
) -> i32 {
    match start(opts, loaded, snapshot, xds) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice: {e}");
            1
        }
    }
}

fn start(
    opts: &Options,
    loaded: &sluice_config::Loaded,
    snapshot: Arc<Snapshot>,
    xds: Option<crate::xds::FileXds>,
) -> Result<i32, String> {
    let plan = XdpPlan::from_options(&opts.xdp)?;
    let xdp_err = |e: XdpError| format!("xdp mode on {}: {e}", plan.interface);
    let info = InterfaceInfo::query(&plan.interface).map_err(xdp_err)?;
    let queues = plan.queues(opts.concurrency, info.rx_queues);
    if let Some(q) = queues.iter().find(|q| **q >= info.rx_queues) {
        return Err(xdp_err(XdpError::QueueMissing {
            interface: info.name.clone(),
            queue: *q,
            queues: info.rx_queues,
        }));
    }
    if (queues.len() as u32) < info.rx_queues {
        tracing::warn!(
            interface = %info.name,
            "{} has {} rx queues but sluice serves {:?}: what the NIC hashes to the others reaches \
             the kernel, not sluice; serve them all (--queues) or lower the count (`ethtool -L {} combined {}`)",
            info.name,
            info.rx_queues,
            queues,
            info.name,
            queues.len()
        );
    }
    let ranges = ephemeral_ranges(EPHEMERAL, queues.len())?;
    let all_ports = (ranges[0].0, ranges[ranges.len() - 1].1);
    let steering = plan.steering(&snapshot, all_ports);
    log_steering(&plan, &steering);

    let program = attach(&plan, &steering)?;
    let cfg = XskConfig { bind: plan.bind, busy_poll: plan.busy_poll, ..XskConfig::default() };
    let devices =
        queues.iter().map(|&q| XskDevice::open(&program, q, &cfg)).collect::<Result<Vec<_>, _>>().map_err(xdp_err)?;
    let wakers = devices.iter().map(|d| d.waker()).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    let frame_size = devices[0].ip_mtu() + sluice_datapath::xsk::ETHERNET_HEADER as usize;
    let mut handoffs: Vec<Option<Handoff>> = if devices.len() > 1 {
        Handoff::fabric(wakers, &HandoffConfig { inbox: HANDOFF_INBOX, frame_size }).into_iter().map(Some).collect()
    } else {
        vec![None]
    };
    let gateway_mac = plan.gateway.and_then(|gw| kernel_arp::lookup(gw, &info.name).map(|mac| (gw, mac)));
    let seed = random_seed();

    let mut serving = prepare(opts, loaded, &snapshot, devices.len(), xds)?;
    serving.main.datapath_reload =
        Some(steering_reload(Arc::clone(&program), plan.clone(), steering.clone(), all_ports));
    let mut workers = Vec::with_capacity(devices.len());
    for (i, device) in devices.into_iter().enumerate() {
        let queue = device.queue();
        tracing::info!(
            queue,
            zero_copy = device.zero_copy(),
            mtu = device.ip_mtu(),
            ephemeral = ?ranges[i],
            "AF_XDP queue open"
        );
        if plan.busy_poll.is_some() {
            // What the kernel holds, not what we asked for.
            let bp = device.busy_poll().map_err(|e| format!("queue {queue}: getsockopt(SO_BUSY_POLL): {e}"))?;
            tracing::info!(
                queue,
                "AF_XDP busy polling: SO_PREFER_BUSY_POLL={} SO_BUSY_POLL={} SO_BUSY_POLL_BUDGET={}; the worker spins",
                u8::from(bp.prefer),
                bp.usecs,
                bp.budget
            );
        }
        let mut cfg = SmolConfig::new(EthernetAddress(device.mac()), plan.address);
        cfg.gateway = plan.gateway;
        cfg.ephemeral_ports = ranges[i];
        cfg.random_seed = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut stack = SmolStack::new(device, cfg).map_err(|e| format!("queue {queue}: {e}"))?;
        if let Some(handoff) = handoffs[i].take() {
            let steer = FlowSteering::new(handoff, &ranges).map_err(|e| e.to_string())?;
            stack.set_steering(steer).map_err(|e| e.to_string())?;
        }
        if let Some((gw, mac)) = gateway_mac {
            stack.add_neighbor(gw, EthernetAddress(mac)).map_err(|e| format!("gateway {gw}: {e}"))?;
        }
        let listen_sockets = open_listeners(&mut stack, &snapshot)?;
        if let Some(l) = steering.redirect_listener {
            if let Some(socket) = listen_sockets[l] {
                stack.redirect(plan.intercept.clone(), socket).map_err(|e| e.to_string())?;
            }
        }
        let stats = Arc::clone(&serving.stats.xdp.scope(&format!("queue_{queue}"))[0]);
        let setup = WorkerSetup {
            id: i,
            stack: QueueStack::new(stack, stats),
            snapshot: Arc::clone(&snapshot),
            listen_sockets,
            stats: Arc::clone(&serving.stats),
            control: Arc::clone(&serving.control),
            drain_time: opts.drain_time,
        };
        workers.push(Worker::new(setup).map_err(|e| format!("cannot start worker {i}: {e}"))?);
    }
    if let Some((gw, _)) = gateway_mac {
        tracing::debug!(%gw, "gateway MAC taken from the kernel's ARP cache");
    }
    tracing::info!(
        interface = %info.name,
        driver = %info.driver,
        mode = %program.mode(),
        address = %plan.address,
        queues = ?queues,
        "xdp datapath attached"
    );
    let code = run_serving(workers, serving, &snapshot, opts);
    drop(program);
    Ok(code)
}

/// The xdp part of a SIGHUP reload: steer the new config's listening ports to sluice
/// (the workers open the listeners on their stacks when they adopt the config), or
/// refuse a config that needs another XDP program or redirect target (see
/// [`SteeringPlan::reload_to`]).
fn steering_reload(
    program: Arc<XdpProgram>,
    plan: XdpPlan,
    mut current: SteeringPlan,
    ephemeral: (u16, u16),
) -> DatapathReload {
    Box::new(move |snapshot| {
        let next = plan.steering(snapshot, ephemeral);
        let added = current
            .reload_to(&next)
            .map_err(|e| format!("xdp mode: {e}; restart sluice to serve this configuration"))?;
        for port in &added {
            program.allow_port(*port).map_err(|e| format!("xdp mode: cannot steer port {port} to sluice: {e}"))?;
        }
        log_steering(&plan, &next);
        current = next;
        Ok(())
    })
}

/// Attach the steering program: `--xdp-mode` as given, or native with a fallback to
/// generic when the driver has no native XDP.
fn attach(plan: &XdpPlan, steering: &SteeringPlan) -> Result<Arc<XdpProgram>, String> {
    let err = |e: XdpError| format!("xdp mode on {}: {e}", plan.interface);
    match plan.attach {
        Some(mode) => XdpProgram::attach(&plan.interface, mode, &steering.config).map_err(err),
        None => match XdpProgram::attach(&plan.interface, AttachMode::Drv, &steering.config) {
            Err(XdpError::AttachRefused { source, .. }) if plan.bind != sluice_datapath::BindMode::ZeroCopy => {
                tracing::info!("native XDP refused on {} ({source}); using generic (skb) mode", plan.interface);
                XdpProgram::attach(&plan.interface, AttachMode::Skb, &steering.config).map_err(err)
            }
            other => other.map_err(err),
        },
    }
}

fn log_steering(plan: &XdpPlan, steering: &SteeringPlan) {
    for name in &steering.unreachable {
        tracing::warn!(
            listener = %name,
            "listener address is neither --address {} nor inside an --intercept prefix: no traffic reaches it in xdp mode",
            plan.address.address()
        );
    }
    match &steering.config.tcp_ports {
        Some(f) => tracing::info!(
            ports = ?f.ports,
            ephemeral = ?f.ephemeral,
            "XDP steering: ARP and TCP to these ports of {} (and intercepted prefixes {:?}) go to sluice; everything else to the kernel",
            plan.address.address(),
            plan.intercept
        ),
        None => tracing::info!(
            "XDP steering: ARP and all TCP to {} and to {:?} go to sluice (a use_original_dst listener takes \
             intercepted connections to any port); everything else to the kernel",
            plan.address.address(),
            plan.intercept
        ),
    }
}

/// A seed for the stacks' initial sequence numbers: unpredictable, from the kernel.
fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => u64::from_ne_bytes(b),
        Err(_) => crate::rng::Rng::from_entropy(u64::from(std::process::id())).next_u64(),
    }
}
