//! `xskbench`: one packet-path measurement on one interface, for bench/packet.sh.
//!
//! ```text
//! xskbench MODE --iface IF [--size BYTES] [--warmup S] [--seconds S] [--owned IP]
//!          [--no-need-wakeup] [--busy-poll] [--skb] [--gen SHELL-COMMAND]
//! MODE: xdp-drop | xdp-tx | rxdrop | l2fwd | txonly
//! ```
//!
//! - `xdp-drop`, `xdp-tx`: the in-kernel ceilings, a one-instruction program returning
//!   `XDP_DROP` / `XDP_TX`, attached by sluice's own loader; packets counted from the
//!   veth's `ethtool -S` (`rx_queue_0_xdp_drops` / `_xdp_tx`).
//! - `rxdrop`, `l2fwd`, `txonly`: the three loops of the kernel's `xdpsock` sample on one
//!   copy-mode AF_XDP socket of queue 0, fed by sluice's steering program (TCP to
//!   `--owned`). l2fwd rewrites the Ethernet destination (to a MAC nobody has, so the
//!   peer's kernel drops the frame at once) and sends the frame back; txonly sends
//!   `--size`-byte frames to that MAC. An idle loop sleeps in `poll(2)`; with
//!   `--busy-poll` it spins in `recvfrom` instead (preferred busy polling).
//!
//! `--gen` is the traffic generator (e.g. `exec ip netns exec NS trafgen ...`), started
//! with `sh -c` once the program is attached (attaching XDP to a veth resets its peer,
//! which makes a running trafgen exit) and stopped, by its PID, at the end.
//!
//! After `--warmup` seconds it measures for `--seconds` and prints one line:
//! `RESULT packets=N seconds=S machine_busy_ns=.. machine_softirq_ns=.. tasks_ns=..
//! self_ns=.. ksoftirqd_ns=.. pids_ns=..`: the whole machine's non-idle time over all
//! cores (/proc/stat), and the CPU time of the tasks that do the packet work: this
//! process, the ksoftirqd threads and the generator, from /proc/PID/stat. With tick
//! accounting, softirq work (on veth the receive side's NAPI, XDP program and AF_XDP
//! copy run in the sender's softirq) is charged to the task it interrupted, so the task
//! sum holds it too, while work of unrelated processes on a shared machine stays out.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_datapath::bpf::{attach_verdict, XdpAction};
use sluice_datapath::xsk::{BusyPoll, XskSocket};
use sluice_datapath::{AttachMode, BindMode, SteeringConfig, XdpProgram, XskConfig, XskDevice};

const SINK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];

struct Args {
    mode: String,
    iface: String,
    size: usize,
    warmup: f64,
    seconds: f64,
    owned: Ipv4Addr,
    need_wakeup: bool,
    busy_poll: bool,
    attach: AttachMode,
    gen: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or("usage: xskbench MODE --iface IF ... (see the source)")?;
    let mut a = Args {
        mode,
        iface: String::new(),
        size: 64,
        warmup: 1.0,
        seconds: 5.0,
        owned: Ipv4Addr::new(10, 99, 50, 2),
        need_wakeup: true,
        busy_poll: false,
        attach: AttachMode::Drv,
        gen: None,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--iface" => a.iface = value()?,
            "--size" => a.size = value()?.parse().map_err(|_| "--size: a byte count")?,
            "--warmup" => a.warmup = value()?.parse().map_err(|_| "--warmup: seconds")?,
            "--seconds" => a.seconds = value()?.parse().map_err(|_| "--seconds: seconds")?,
            "--owned" => a.owned = value()?.parse().map_err(|_| "--owned: an IPv4 address")?,
            "--gen" => a.gen = Some(value()?).filter(|g| !g.is_empty()),
            "--no-need-wakeup" => a.need_wakeup = false,
            "--busy-poll" => a.busy_poll = true,
            "--skb" => a.attach = AttachMode::Skb,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.iface.is_empty() {
        return Err("--iface IF is required".into());
    }
    if !(60..=1514).contains(&a.size) {
        return Err("--size: 60..=1514 bytes (an Ethernet frame without FCS)".into());
    }
    Ok(a)
}

/// CPU ticks (utime + stime) of a task, from /proc/PID/stat.
fn task_ticks(path: &str) -> u64 {
    let Ok(s) = std::fs::read_to_string(path) else { return 0 };
    // The command name may hold spaces: fields count from after its closing parenthesis.
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else { return 0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// Threads whose name starts with `prefix` (kernel threads included), by PID.
fn threads_named(prefix: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(prefix)))
        .collect()
}

/// Non-idle and softirq ticks of all cores together, from /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().next() else { return (0, 0) };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal guest guest_nice
    let busy = v.iter().take(8).sum::<u64>() - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0);
    (busy, v.get(6).copied().unwrap_or(0))
}

/// `ethtool -S IF` counter `name` (0 when absent).
fn ethtool_counter(iface: &str, name: &str) -> u64 {
    let out = Command::new("ethtool").args(["-S", iface]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
        .unwrap_or(0)
}

struct Sample {
    packets: u64,
    at: Instant,
    machine: (u64, u64),
    self_t: u64,
    ksoftirqd: u64,
    pids: u64,
}

struct Probe {
    ksoftirqd: Vec<u32>,
    pids: Vec<u32>,
}

impl Probe {
    fn sample(&self, packets: u64) -> Sample {
        let sum = |v: &[u32]| v.iter().map(|p| task_ticks(&format!("/proc/{p}/stat"))).sum();
        Sample {
            packets,
            at: Instant::now(),
            machine: machine_ticks(),
            self_t: task_ticks("/proc/self/stat"),
            ksoftirqd: sum(&self.ksoftirqd),
            pids: sum(&self.pids),
        }
    }
}

/// The generator process (and its forks), stopped by PID when dropped.
struct Generator {
    child: std::process::Child,
    /// Its forks, found at start: each is stopped by PID too.
    forks: Vec<u32>,
}

impl Generator {
    fn start(cmd: &str) -> Result<Generator, String> {
        let child = Command::new("sh")
            .args(["-c", cmd])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the generator: {e}"))?;
        std::thread::sleep(Duration::from_millis(500));
        let mut g = Generator { child, forks: Vec::new() };
        if g.child.try_wait().ok().flatten().is_some() {
            return Err(format!("the generator exited at once: {cmd}"));
        }
        g.forks = g.pids().into_iter().skip(1).collect();
        Ok(g)
    }

    /// The generator and its children (trafgen forks one sender per core).
    fn pids(&self) -> Vec<u32> {
        let me = self.child.id();
        let mut pids = vec![me];
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid = stat.rfind(')').and_then(|i| stat[i + 2..].split_whitespace().nth(1)?.parse::<u32>().ok());
                if ppid == Some(me) {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        let fork_alive = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.rfind(')').is_some_and(|i| !s[i + 2..].starts_with('Z')))
        };
        let signal = |sig: &str, pid: u32| {
            let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
        };
        // SIGINT: trafgen's way to stop; its forks get it too, by PID.
        signal("-INT", self.child.id());
        for &pid in &self.forks {
            signal("-INT", pid);
        }
        for _ in 0..50 {
            if !self.alive() && !self.forks.iter().any(|&p| fork_alive(p)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for &pid in &self.forks {
            if fork_alive(pid) {
                signal("-KILL", pid);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One round of a loop: packets handled.
type Step<'a> = Box<dyn FnMut() -> u64 + 'a>;

fn measure(a: &Args, probe: &Probe, step: &mut Step<'_>, counter: &dyn Fn(u64) -> u64) {
    let mut total = 0u64;
    let warm_end = Instant::now() + Duration::from_secs_f64(a.warmup);
    while Instant::now() < warm_end {
        total += step();
    }
    let s0 = probe.sample(counter(total));
    let end = s0.at + Duration::from_secs_f64(a.seconds);
    while Instant::now() < end {
        total += step();
    }
    let s1 = probe.sample(counter(total));
    let tick_ns = 1e9 / 100.0; // USER_HZ
    let ns = |a: u64, b: u64| ((b - a) as f64 * tick_ns) as u64;
    let (self_ns, ksoft_ns, pids_ns) = (ns(s0.self_t, s1.self_t), ns(s0.ksoftirqd, s1.ksoftirqd), ns(s0.pids, s1.pids));
    println!(
        "RESULT packets={} seconds={:.3} machine_busy_ns={} machine_softirq_ns={} tasks_ns={} self_ns={} \
         ksoftirqd_ns={} pids_ns={}",
        s1.packets - s0.packets,
        (s1.at - s0.at).as_secs_f64(),
        ns(s0.machine.0, s1.machine.0),
        ns(s0.machine.1, s1.machine.1),
        self_ns + ksoft_ns + pids_ns,
        self_ns,
        ksoft_ns,
        pids_ns
    );
}

fn run(a: &Args) -> Result<(), String> {
    let e = |e: sluice_datapath::XdpError| e.to_string();
    let ksoftirqd = threads_named("ksoftirqd/");
    let mut probe = Probe { ksoftirqd, pids: Vec::new() };
    let mut generator = None;
    // Once the program is attached: start the generator.
    let mut ready = |probe: &mut Probe| -> Result<(), String> {
        if let Some(cmd) = &a.gen {
            let g = Generator::start(cmd)?;
            probe.pids = g.pids();
            generator = Some(g);
        }
        Ok(())
    };
    let iface = a.iface.clone();
    match a.mode.as_str() {
        "xdp-drop" | "xdp-tx" => {
            let (action, counter) = if a.mode == "xdp-drop" {
                (XdpAction::Drop, "rx_queue_0_xdp_drops")
            } else {
                (XdpAction::Tx, "rx_queue_0_xdp_tx")
            };
            let _link = attach_verdict(&a.iface, a.attach, action).map_err(e)?;
            ready(&mut probe)?;
            let mut step: Step<'_> = Box::new(|| {
                std::thread::sleep(Duration::from_millis(50));
                0
            });
            measure(a, &probe, &mut step, &|_| ethtool_counter(&iface, counter));
        }
        "rxdrop" | "l2fwd" | "txonly" => {
            let steering = SteeringConfig { owned: vec![a.owned], ..Default::default() };
            let program = XdpProgram::attach(&a.iface, a.attach, &steering).map_err(e)?;
            let cfg = XskConfig {
                bind: BindMode::Copy,
                need_wakeup: a.need_wakeup,
                busy_poll: a.busy_poll.then(BusyPoll::default),
                ..XskConfig::default()
            };
            let mut dev = XskDevice::open(&program, 0, &cfg).map_err(e)?;
            ready(&mut probe)?;
            let busy = a.busy_poll;
            let socket: &mut XskSocket = dev.socket_mut();
            if a.mode == "txonly" {
                let mut frame = vec![0u8; a.size];
                frame[..6].copy_from_slice(&SINK_MAC);
                frame[12..14].copy_from_slice(&[0x08, 0x00]);
                if socket.tx_prepare(&frame) == 0 {
                    return Err("txonly: no tx frame to prepare".into());
                }
            }
            let size = a.size as u32;
            let mode = a.mode.clone();
            let mut step: Step<'_> = Box::new(move || {
                let n = match mode.as_str() {
                    "rxdrop" => socket.rx_drop(),
                    "l2fwd" => socket.reflect(|f| f[..6].copy_from_slice(&SINK_MAC)),
                    _ => socket.tx_burst(size, 64),
                };
                if n == 0 && !busy && mode != "txonly" {
                    let _ = socket.wait_readable(Duration::from_millis(10));
                }
                u64::from(n)
            });
            measure(a, &probe, &mut step, &|n| n);
            drop(step);
            if let Ok(s) = dev.stats() {
                println!(
                    "STATS rx={} tx={} rx_ring_full={} fill_empty={} rx_dropped={} tx_kicks={} rx_wakeups={}",
                    s.rx_packets,
                    s.tx_packets,
                    s.rx_ring_full,
                    s.rx_fill_ring_empty,
                    s.rx_dropped,
                    s.tx_kicks,
                    s.rx_wakeups
                );
            }
        }
        other => return Err(format!("unknown mode {other}: xdp-drop, xdp-tx, rxdrop, l2fwd or txonly")),
    }
    if let Some(mut g) = generator {
        if !g.alive() {
            return Err("the generator exited during the run".into());
        }
    }
    Ok(())
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xskbench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("xskbench {}: {e}", args.mode);
        std::process::exit(1);
    }
}
