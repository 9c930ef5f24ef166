//! Raw AF_XDP datapath throughput on a veth pair: a bare ring-to-ring reflect loop
//! (`XskSocket::reflect`) against the same traffic through `XskDevice`'s smoltcp
//! tokens (receive → copy into a tx token → flush).
//!
//! Topology (root only; skipped with a message otherwise): namespaces `sxb-l` and
//! `sxb-r` joined by veth `sxb0`/`sxb1`, 10.99.15.0/24. The steering program is attached
//! to `sxb0` in native (DRV) mode with one copy-mode AF_XDP socket. A generator thread
//! in `sxb-r` blasts 60-byte TCP frames to 10.99.15.2 through its own AF_XDP socket on
//! `sxb1`; the loop under test rewrites the destination MAC to one nobody has and sends
//! the frame back, so the peer kernel drops it at the Ethernet layer.
//!
//! Besides criterion's packets/s (wall clock), the bench prints CPU nanoseconds per
//! packet of the loop thread (from /proc/thread-self/schedstat), which is less
//! sensitive to the generator's pace on a small machine.
//!
//! `SLUICE_XSK_BENCH_NET=PREFIX:N` puts the bed in namespaces `PREFIX-l`/`PREFIX-r`
//! on 10.99.N.0/24 instead (e.g. `sxm49:49`, as `bench/xdp.sh` runs it).

use std::cell::Cell;
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use sluice_datapath::testnet::{self, TwoHosts};
use sluice_datapath::xsk::XskSocket;
use sluice_datapath::{
    AttachMode, BindMode, Datapath, InterfaceInfo, SteeringConfig, XdpProgram, XskConfig, XskDevice,
};
use smoltcp::phy::{Device, RxToken, TxToken};

/// The bed's name prefix and third address octet (see the module text).
fn bed_net() -> (String, u8) {
    std::env::var("SLUICE_XSK_BENCH_NET")
        .ok()
        .and_then(|v| v.split_once(':').and_then(|(p, n)| Some((p.to_string(), n.parse().ok()?))))
        .unwrap_or_else(|| ("sxb".to_string(), 15))
}
const SINK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
const FRAME_LEN: usize = 60;

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A TCP SYN from the peer (10.99.N.1) to ours (10.99.N.2):7000, as the generator
/// sends it.
fn frame(dst_mac: [u8; 6], src_mac: [u8; 6], n: u8) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..34].copy_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 99, n, 1, 10, 99, n, 2]);
    f[34..38].copy_from_slice(&[0x9c, 0x40, 0x1b, 0x58]); // 40000 -> 7000
    f[46] = 0x50;
    f[47] = 0x02; // SYN
    f[48..50].copy_from_slice(&[0xff, 0xff]);
    f
}

struct Generator {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<u64>>,
}

impl Generator {
    fn start(mut dev: XskDevice, frame: [u8; FRAME_LEN]) -> Generator {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut sent = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let now = smoltcp::time::Instant::now();
                for _ in 0..64 {
                    let Some(tx) = dev.transmit(now) else { break };
                    tx.consume(FRAME_LEN, |b| b.copy_from_slice(&frame));
                    sent += 1;
                }
                let _ = dev.flush();
            }
            sent
        });
        Generator { stop, handle: Some(handle) }
    }

    fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().map_or(0, |h| h.join().unwrap_or(0))
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One pass of the bare loop: frames reflected.
fn bare_step(dev: &mut XskDevice) -> u64 {
    let socket: &mut XskSocket = dev.socket_mut();
    let n = socket.reflect(|f| f[..6].copy_from_slice(&SINK_MAC));
    if n == 0 {
        let _ = socket.wait_readable(Duration::from_millis(1));
    }
    u64::from(n)
}

/// One pass of the token loop: frames reflected through smoltcp tokens.
fn token_step(dev: &mut XskDevice) -> u64 {
    let now = smoltcp::time::Instant::now();
    let mut n = 0;
    while n < 64 {
        let Some((rx, tx)) = dev.receive(now) else {
            break;
        };
        rx.consume(|buf| {
            tx.consume(buf.len(), |out| {
                out.copy_from_slice(buf);
                out[..6].copy_from_slice(&SINK_MAC);
            })
        });
        n += 1;
    }
    let _ = dev.flush();
    if n == 0 {
        let _ = dev.wait(Some(Duration::from_millis(1)));
    }
    n
}

struct Totals {
    packets: Cell<u64>,
    cpu_ns: Cell<u64>,
    wall: Cell<Duration>,
}

fn run(dev: &mut XskDevice, iters: u64, step: fn(&mut XskDevice) -> u64, t: &Totals) -> Duration {
    let (cpu0, start) = (thread_cpu_ns(), Instant::now());
    let mut done = 0;
    let mut last_progress = Instant::now();
    while done < iters {
        let n = step(dev);
        if n > 0 {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(5) {
            panic!("no packets for 5 s: is the generator running?");
        }
        done += n;
    }
    let wall = start.elapsed();
    t.packets.set(t.packets.get() + done);
    t.cpu_ns.set(t.cpu_ns.get() + thread_cpu_ns() - cpu0);
    t.wall.set(t.wall.get() + wall);
    wall
}

struct Bed {
    // Field order is drop order: program, then the address, then the network.
    program: Arc<XdpProgram>,
    _peer: testnet::Address,
    net: TwoHosts,
}

fn setup() -> io::Result<(Bed, XskDevice, XskDevice)> {
    let (prefix, n) = bed_net();
    let net = TwoHosts::new(&prefix, 1)?;
    let peer = net.right.add_address(net.veth.b(), &format!("10.99.{n}.1/24"))?;
    let cfg = XskConfig { bind: BindMode::Copy, ..XskConfig::default() };
    let (program, dev) = net.left.run(|| {
        let steering = SteeringConfig { owned: vec![Ipv4Addr::new(10, 99, n, 2)], ..Default::default() };
        let program = XdpProgram::attach(net.veth.a(), AttachMode::Drv, &steering)?;
        let dev = XskDevice::open(&program, 0, &cfg)?;
        Ok::<_, sluice_datapath::XdpError>((program, dev))
    })??;
    let gen = net.right.run(|| {
        let info = InterfaceInfo::query(net.veth.b())?;
        let socket = XskSocket::open(&info, 0, &cfg)?;
        XskDevice::from_socket(socket, &info)
    })??;
    Ok((Bed { program, _peer: peer, net }, dev, gen))
}

fn main() {
    if !testnet::require_root("the xsk benchmark") {
        return;
    }
    let (bed, mut dev, gen_dev) = match setup() {
        Ok(bed) => bed,
        Err(e) => {
            eprintln!("xsk benchmark: cannot set up the veth test bed: {e}");
            std::process::exit(1);
        }
    };
    let mut gen = Generator::start(gen_dev, frame(dev.mac(), [0x02, 0, 0, 0, 0, 0x01], bed_net().1));

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let bare = Totals { packets: Cell::new(0), cpu_ns: Cell::new(0), wall: Cell::new(Duration::ZERO) };
    let tokens = Totals { packets: Cell::new(0), cpu_ns: Cell::new(0), wall: Cell::new(Duration::ZERO) };
    {
        let mut g = c.benchmark_group("xsk_reflect_60B_veth_drv_copy");
        g.throughput(Throughput::Elements(1));
        g.bench_function("bare_rings", |b| b.iter_custom(|n| run(&mut dev, n, bare_step, &bare)));
        g.bench_function("xsk_device_tokens", |b| b.iter_custom(|n| run(&mut dev, n, token_step, &tokens)));
        g.finish();
    }
    let sent = gen.stop();
    // Let in-flight frames land, then settle the books.
    let end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < end {
        token_step(&mut dev);
    }
    for (name, t) in [("bare_rings", &bare), ("xsk_device_tokens", &tokens)] {
        let p = t.packets.get().max(1);
        println!(
            "{name}: {} packets, {:.3} Mpps wall, {:.0} ns CPU/packet in the loop thread",
            t.packets.get(),
            p as f64 / t.wall.get().as_secs_f64() / 1e6,
            t.cpu_ns.get() as f64 / p as f64
        );
    }
    match dev.stats() {
        Ok(s) => println!(
            "generator sent {sent}; queue 0: rx {} tx {}; drops: fill ring empty {}, rx ring full {}, \
             other {}, tx ring full {}, invalid {}; tx kicks {}",
            s.rx_packets,
            s.tx_packets,
            s.rx_fill_ring_empty,
            s.rx_ring_full,
            s.rx_dropped,
            s.tx_ring_full,
            s.rx_invalid + s.tx_invalid,
            s.tx_kicks
        ),
        Err(e) => println!("stats: {e}"),
    }
    println!("frames: {:?}", dev.frame_accounting());
    drop(dev);
    println!("program {} on {} detached on exit", bed.program.id().unwrap_or(0), bed.net.veth.a());
    drop(bed);
    c.final_summary();
}
