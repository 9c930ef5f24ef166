//! Criterion benchmarks of the smol stack: two stacks on one in-memory network, driven
//! from one thread (so every figure is *one core doing both ends*: sender and receiver,
//! client and server), with the system clock and software checksums, as on AF_XDP.
//!
//! - `smol/bulk`: bulk transfer throughput (bytes/s; segments/s = bytes/s ÷ 1460).
//! - `smol/rr`: small request/response round trips (64-byte request and response).
//! - `smol/idle/{poll,rr}/N`: an empty poll of both stacks, and one request/response,
//!   with N = 1, 1 000 and 10 000 idle connections held by each stack.
//! - `smol/segment`: one full-sized segment through rx → TCP → tx: written by the
//!   client, sent, received and processed by the server, read.
//!
//! Before the criterion runs, the memory held per idle connection is measured (heap
//! bytes, from a counting allocator, and resident bytes, from `/proc/self/statm`) and
//! printed.

use std::hint::black_box;
use std::io;
use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_datapath::mem::counting::{live_bytes, CountingAlloc};
use sluice_datapath::mem::{Faults, MemConfig, MemNetwork, MemPort};
use sluice_stack::smol::{SmolConfig, SmolStack};
use sluice_stack::{Events, ListenOptions, SocketId, Stack};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

const SERVER: Ipv4Address = Ipv4Address::new(10, 99, 0, 1);
const CLIENT: Ipv4Address = Ipv4Address::new(10, 99, 0, 2);
const PORT: u16 = 8080;

type Smol = SmolStack<MemPort>;

/// Two stacks, one active connection, and `idle` more connections doing nothing.
struct Rig {
    server: Smol,
    client: Smol,
    c: SocketId,
    s: SocketId,
    idle: Vec<(SocketId, SocketId)>,
    events: Events,
    buf: Vec<u8>,
}

fn stack(port: MemPort, ip: Ipv4Address, any_ip: bool, buffers: usize) -> Smol {
    let mut cfg = SmolConfig::new(port.mac(), Ipv4Cidr::new(ip, 24));
    cfg.any_ip = any_ip;
    cfg.rx_buffer = buffers;
    cfg.tx_buffer = buffers;
    SmolStack::new(port, cfg).unwrap()
}

/// Poll both stacks once, without waiting.
fn pump(client: &mut Smol, server: &mut Smol, events: &mut Events) {
    client.poll(events, Some(StdDuration::ZERO)).unwrap();
    server.poll(events, Some(StdDuration::ZERO)).unwrap();
}

/// Connect, accept and finish the handshake: (client end, server end).
fn open(
    client: &mut Smol,
    server: &mut Smol,
    events: &mut Events,
    l: SocketId,
    addr: SocketAddr,
) -> (SocketId, SocketId) {
    let c = client.connect(addr).unwrap();
    loop {
        pump(client, server, events);
        if let Ok(a) = server.accept(l) {
            while client.connect_result(c).is_err() {
                pump(client, server, events);
            }
            return (c, a.socket);
        }
    }
}

impl Rig {
    fn new(idle: usize, buffers: usize) -> Rig {
        let (sp, cp) = MemNetwork::pair(MemConfig::default(), Faults::NONE, Faults::NONE).unwrap();
        let mut server = stack(sp, SERVER, true, buffers);
        let mut client = stack(cp, CLIENT, false, buffers);
        let mut events = Events::with_capacity(1024);
        let addr = SocketAddr::from((SERVER, PORT));
        let opts = ListenOptions { backlog: 65_535, ..ListenOptions::default() };
        let l = server.listen(addr, &opts).unwrap();
        let (c, s) = open(&mut client, &mut server, &mut events, l, addr);
        let mut rig = Rig { server, client, c, s, idle: Vec::with_capacity(idle), events, buf: vec![0u8; 256 * 1024] };
        // Idle connections are opened in batches of SYNs.
        while rig.idle.len() < idle {
            let batch: Vec<_> =
                (0..(idle - rig.idle.len()).min(512)).map(|_| rig.client.connect(addr).unwrap()).collect();
            let mut accepted = Vec::new();
            while accepted.len() < batch.len() {
                rig.pump();
                while let Ok(a) = rig.server.accept(l) {
                    accepted.push(a.socket);
                }
            }
            rig.idle.extend(batch.into_iter().zip(accepted));
        }
        rig.quiesce();
        rig
    }

    fn pump(&mut self) {
        pump(&mut self.client, &mut self.server, &mut self.events);
    }

    /// Let delayed ACKs and other timers run out, so idle connections are really idle.
    fn quiesce(&mut self) {
        let end = std::time::Instant::now() + StdDuration::from_millis(60);
        while std::time::Instant::now() < end {
            self.pump();
            std::thread::sleep(StdDuration::from_millis(2));
        }
    }

    /// Read exactly `n` bytes from `id` on `side`, pumping while it would block.
    fn read_n(&mut self, server_side: bool, n: usize) {
        let mut got = 0;
        while got < n {
            let (stack, id) = if server_side { (&mut self.server, self.s) } else { (&mut self.client, self.c) };
            match stack.read(id, &mut self.buf[..n - got]) {
                Ok(0) => panic!("unexpected end of stream"),
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.pump(),
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// One request/response of `size` bytes each way.
    fn round_trip(&mut self, size: usize) {
        let req = [b'q'; 1024];
        assert_eq!(self.client.write(self.c, &req[..size]).unwrap(), size);
        self.read_n(true, size);
        assert_eq!(self.server.write(self.s, &req[..size]).unwrap(), size);
        self.read_n(false, size);
    }

    /// Move `total` bytes client → server as fast as the stacks go.
    fn bulk(&mut self, total: usize, chunk: &[u8]) {
        let (mut sent, mut got) = (0, 0);
        while got < total {
            if sent < total {
                let end = chunk.len().min(total - sent);
                match self.client.write(self.c, &chunk[..end]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            self.pump();
            loop {
                match self.server.read(self.s, &mut self.buf) {
                    Ok(n) if n > 0 => got += n,
                    Ok(_) => panic!("unexpected end of stream"),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}

/// Resident set of this process, in bytes (`/proc/self/statm`).
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()).unwrap_or(0) * 4096
}

/// Print the heap held and the memory resident per idle connection end.
fn report_memory() {
    for (buffers, n) in [(128 * 1024, 2000), (16 * 1024, 2000)] {
        let (heap0, rss0) = (live_bytes(), resident());
        let rig = Rig::new(n, buffers);
        let (heap1, rss1) = (live_bytes(), resident());
        let ends = 2 * (n + 1);
        let heap = heap1.saturating_sub(heap0) / ends;
        // Buffers are lent only while data needs them: an idle end holds none.
        println!(
            "smol/memory: {n} idle connections, {k} KiB rx + {k} KiB tx buffers: {heap} heap bytes per connection end, \
             {} bytes resident",
            rss1.saturating_sub(rss0) / ends,
            k = buffers / 1024,
        );
        drop(rig);
    }
}

/// Nanoseconds this thread has spent on a CPU (`/proc/thread-self/schedstat`), so that
/// figures do not count time the thread was preempted on a loaded machine; wall-clock
/// time where that file is missing.
fn on_cpu_ns() -> u64 {
    let wall = || {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
    };
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or_else(wall)
}

/// Bulk throughput and segment rate over five 64 MiB runs, in CPU time.
fn report_bulk() {
    let mut rig = Rig::new(0, 128 * 1024);
    let chunk = vec![0x5au8; 64 * 1024];
    let total = 64 << 20;
    rig.bulk(total, &chunk);
    let frames0 = rig.client.device().stats().tx_frames;
    let t = on_cpu_ns();
    for _ in 0..5 {
        rig.bulk(total, &chunk);
    }
    let secs = (on_cpu_ns() - t) as f64 / 1e9 / 5.0;
    let segments = (rig.client.device().stats().tx_frames - frames0) / 5;
    println!(
        "smol/bulk: {:.2} Gbit/s, {:.0} data segments/s ({segments} segments per 64 MiB), both ends on one core (CPU time)",
        total as f64 * 8.0 / secs / 1e9,
        segments as f64 / secs,
    );
}

/// Poll and request/response cost with 1, 1 000 and 10 000 idle connections: CPU time
/// per operation, summed over interleaved rounds so that whatever other processes do to
/// caches hits every size alike (the scheduler's CPU accounting ticks every few ms, so
/// only long totals are exact).
fn report_idle_scaling() {
    let sizes = [1usize, 1_000, 10_000];
    let mut rigs: Vec<Rig> = sizes.iter().map(|n| Rig::new(*n, 16 * 1024)).collect();
    let (rounds, rr_batch, poll_batch) = (20, 20_000, 100_000);
    let visits = |rig: &Rig| rig.server.smol_stats().visits + rig.client.smol_stats().visits;
    let visits0: Vec<u64> = rigs.iter().map(visits).collect();
    let mut rr_ns = vec![0u64; sizes.len()];
    let mut poll_ns = vec![0u64; sizes.len()];
    for _ in 0..rounds {
        for (i, rig) in rigs.iter_mut().enumerate() {
            let t = on_cpu_ns();
            for _ in 0..rr_batch {
                rig.round_trip(64);
            }
            rr_ns[i] += on_cpu_ns() - t;
            let t = on_cpu_ns();
            for _ in 0..poll_batch {
                rig.pump();
            }
            poll_ns[i] += on_cpu_ns() - t;
        }
    }
    for (i, n) in sizes.iter().enumerate() {
        let rr = rr_ns[i] as f64 / (rounds * rr_batch) as f64;
        let poll = poll_ns[i] as f64 / (rounds * poll_batch) as f64;
        let per_rr = (visits(&rigs[i]) - visits0[i]) as f64 / (rounds * rr_batch) as f64;
        println!(
            "smol/idle/{n}: poll of both stacks {poll:.0} ns, poll + request/response {rr:.0} ns \
             (CPU time); {per_rr:.2} connection visits per round trip"
        );
    }
}

fn benches(c: &mut Criterion) {
    report_memory();
    report_bulk();
    report_idle_scaling();
    let mut g = c.benchmark_group("smol");
    g.sample_size(20).warm_up_time(StdDuration::from_secs(1)).measurement_time(StdDuration::from_secs(4));

    let mut rig = Rig::new(0, 128 * 1024);
    let chunk = vec![0x5au8; 64 * 1024];
    let total = 4 << 20;
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("bulk", |b| b.iter(|| rig.bulk(black_box(total), &chunk)));

    g.throughput(Throughput::Elements(1));
    g.bench_function("rr", |b| b.iter(|| rig.round_trip(black_box(64))));
    g.bench_function("segment", |b| {
        b.iter(|| {
            assert_eq!(rig.client.write(rig.c, &chunk[..1460]).unwrap(), 1460);
            rig.read_n(true, 1460);
        })
    });
    drop(rig);

    for idle in [1usize, 1_000, 10_000] {
        let mut rig = Rig::new(idle, 16 * 1024);
        g.bench_with_input(BenchmarkId::new("idle/poll", idle), &idle, |b, _| b.iter(|| rig.pump()));
        g.bench_with_input(BenchmarkId::new("idle/rr", idle), &idle, |b, _| b.iter(|| rig.round_trip(64)));
        drop(rig);
    }
    g.finish();
}

criterion_group!(smol, benches);
criterion_main!(smol);
