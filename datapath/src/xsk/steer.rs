//! The steering program: which packets the XDP program sends to sluice's AF_XDP sockets.
//!
//! - ARP (IPv4 over Ethernet) whose target address sluice owns.
//! - IPv4 TCP to an address sluice owns, or inside an intercept prefix (original
//!   destination interception: sluice accepts any destination there), and — when a port
//!   filter is configured — to a listening port or into the ephemeral range of
//!   sluice's own upstream connections.
//!
//! Those go to `bpf_redirect_map(xsks, rx_queue_index, XDP_PASS)`: an empty XSKMAP
//! slot falls back to the kernel. Everything else — ICMP, UDP, IPv6, other TCP, short or
//! malformed frames — returns `XDP_PASS`, so ssh and the host keep working.
//!
//! The addresses, prefixes and ports live in maps that can change at run time; the
//! ephemeral range is compiled into the program. Map keys: owned addresses and
//! intercept prefixes in network byte order (LPM key: host-order prefix length, then the
//! address), ports as host-order `u32` array indices.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use smoltcp::wire::Ipv4Cidr;

use crate::bpf::{Alu, Asm, AsmError, Cond, Helper, Insn, Map, MapType, Program, Reg, Size, XdpAction};
use crate::error::XdpError;

/// Capacity of the owned-address set.
pub const MAX_OWNED: u32 = 256;
/// Capacity of the intercept-prefix trie.
pub const MAX_INTERCEPT: u32 = 4096;

const ETH_HLEN: i32 = 14;
const IPPROTO_TCP: i32 = 6;

/// A 16-bit network-order field as the program loads it (host-endian load).
fn wire16(v: u16) -> i32 {
    i32::from(u16::from_ne_bytes(v.to_be_bytes()))
}

/// Which traffic the XDP program hands to sluice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SteeringConfig {
    /// Addresses sluice owns (`--address`): their ARP and TCP go to sluice.
    pub owned: Vec<Ipv4Addr>,
    /// Extra prefixes whose TCP goes to sluice (original-destination interception).
    pub intercept: Vec<Ipv4Cidr>,
    /// When set, only TCP to these ports (plus the ephemeral range) goes to sluice.
    pub tcp_ports: Option<PortFilter>,
}

/// Destination ports sluice takes when port filtering is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFilter {
    /// Listening ports.
    pub ports: Vec<u16>,
    /// Source ports of sluice's upstream connections (their replies come back here).
    pub ephemeral: RangeInclusive<u16>,
}

/// File descriptors of the maps the program refers to.
struct MapFds {
    xsks: i32,
    owned: i32,
    intercept: i32,
    ports: Option<i32>,
}

/// Assemble the steering program.
fn assemble(
    maps: &MapFds,
    ephemeral: Option<&RangeInclusive<u16>>,
    fallback: XdpAction,
) -> Result<Vec<Insn>, AsmError> {
    use Reg::*;
    let mut a = Asm::new();
    let pass = a.label();
    let arp = a.label();
    let tcp_ours = a.label();
    let redirect = a.label();

    // r6 = ctx, r7 = data, r8 = data_end (callee-saved: they survive helper calls).
    a.mov64_reg(R6, R1);
    a.ldx(Size::W, R7, R6, 0);
    a.ldx(Size::W, R8, R6, 4);
    a.mov64_reg(R1, R7).alu64_imm(Alu::Add, R1, ETH_HLEN);
    a.jmp_reg(Cond::Gt, R1, R8, pass);
    a.ldx(Size::H, R1, R7, 12); // ethertype
    a.jmp_imm(Cond::Eq, R1, wire16(0x0806), arp);
    a.jmp_imm(Cond::Ne, R1, wire16(0x0800), pass);

    // IPv4: version 4, IHL >= 5, protocol TCP.
    a.mov64_reg(R1, R7).alu64_imm(Alu::Add, R1, ETH_HLEN + 20);
    a.jmp_reg(Cond::Gt, R1, R8, pass);
    a.ldx(Size::B, R1, R7, 14);
    a.mov64_reg(R2, R1).alu64_imm(Alu::Rsh, R2, 4);
    a.jmp_imm(Cond::Ne, R2, 4, pass);
    a.alu64_imm(Alu::And, R1, 0x0f);
    a.jmp_imm(Cond::Lt, R1, 5, pass);
    a.alu64_imm(Alu::Lsh, R1, 2);
    a.mov64_reg(R9, R1); // r9 = IP header length, 20..=60
    a.ldx(Size::B, R1, R7, 23);
    a.jmp_imm(Cond::Ne, R1, IPPROTO_TCP, pass);
    // Destination address to the stack at fp-4 (the owned-set key) and fp-12 (the LPM
    // key's data; fp-16 holds its prefix length).
    a.ldx(Size::W, R1, R7, 30);
    a.stx(Size::W, R10, -4, R1);
    a.stx(Size::W, R10, -12, R1);
    a.st_imm(Size::W, R10, -16, 32);
    a.ld_map_fd(R1, maps.owned);
    a.mov64_reg(R2, R10).alu64_imm(Alu::Add, R2, -4);
    a.call(Helper::MapLookupElem);
    a.jmp_imm(Cond::Ne, R0, 0, tcp_ours);
    a.ld_map_fd(R1, maps.intercept);
    a.mov64_reg(R2, R10).alu64_imm(Alu::Add, R2, -16);
    a.call(Helper::MapLookupElem);
    a.jmp_imm(Cond::Eq, R0, 0, pass);

    a.bind(tcp_ours);
    if let Some(ports_fd) = maps.ports {
        let port_lookup = a.label();
        // A non-first fragment carries no ports: let the stack judge it.
        a.ldx(Size::H, R1, R7, ETH_HLEN as i16 + 6);
        a.be(R1, 16);
        a.alu64_imm(Alu::And, R1, 0x1fff);
        a.jmp_imm(Cond::Ne, R1, 0, redirect);
        // r1 = data + IHL; need the first 4 bytes of the TCP header.
        a.mov64_reg(R1, R7).alu64_reg(Alu::Add, R1, R9);
        a.mov64_reg(R2, R1).alu64_imm(Alu::Add, R2, ETH_HLEN + 4);
        a.jmp_reg(Cond::Gt, R2, R8, pass);
        a.ldx(Size::H, R2, R1, ETH_HLEN as i16 + 2); // destination port
        a.be(R2, 16);
        if let Some(range) = ephemeral {
            a.jmp_imm(Cond::Lt, R2, i32::from(*range.start()), port_lookup);
            a.jmp_imm(Cond::Le, R2, i32::from(*range.end()), redirect);
        }
        a.bind(port_lookup);
        a.stx(Size::W, R10, -8, R2);
        a.ld_map_fd(R1, ports_fd);
        a.mov64_reg(R2, R10).alu64_imm(Alu::Add, R2, -8);
        a.call(Helper::MapLookupElem);
        a.jmp_imm(Cond::Eq, R0, 0, pass);
        a.ldx(Size::B, R1, R0, 0);
        a.jmp_imm(Cond::Eq, R1, 0, pass);
    }

    a.bind(redirect);
    a.ld_map_fd(R1, maps.xsks);
    a.ldx(Size::W, R2, R6, 16); // rx_queue_index
    a.mov64_imm(R3, fallback as i32);
    a.call(Helper::RedirectMap);
    a.exit();

    // ARP for IPv4 over Ethernet whose target protocol address we own.
    a.bind(arp);
    a.mov64_reg(R1, R7).alu64_imm(Alu::Add, R1, ETH_HLEN + 28);
    a.jmp_reg(Cond::Gt, R1, R8, pass);
    a.ldx(Size::H, R1, R7, 14); // hardware type
    a.jmp_imm(Cond::Ne, R1, wire16(1), pass);
    a.ldx(Size::H, R1, R7, 16); // protocol type
    a.jmp_imm(Cond::Ne, R1, wire16(0x0800), pass);
    a.ldx(Size::H, R1, R7, 18); // hardware and protocol address lengths
    a.jmp_imm(Cond::Ne, R1, wire16(0x0604), pass);
    a.ldx(Size::W, R1, R7, ETH_HLEN as i16 + 24); // target protocol address
    a.stx(Size::W, R10, -4, R1);
    a.ld_map_fd(R1, maps.owned);
    a.mov64_reg(R2, R10).alu64_imm(Alu::Add, R2, -4);
    a.call(Helper::MapLookupElem);
    a.jmp_imm(Cond::Ne, R0, 0, redirect);

    a.bind(pass);
    a.mov64_imm(R0, XdpAction::Pass as i32);
    a.exit();
    a.finish()
}

/// The steering program's maps and the loaded (not yet attached) program.
#[derive(Debug)]
pub struct Steering {
    xsks: Map,
    owned: Map,
    intercept: Map,
    ports: Option<Map>,
    program: Program,
}

fn create(t: MapType, name: &str, key: u32, value: u32, n: u32) -> Result<Map, XdpError> {
    Map::create(t, name, key, value, n).map_err(|e| XdpError::io("bpf(BPF_MAP_CREATE)", e))
}

fn fd(map: &Map) -> i32 {
    map.as_fd().as_raw_fd()
}

impl Steering {
    /// Create the maps, fill them from `cfg` and load the program. `queues` sizes the
    /// XSKMAP. `fallback` is the verdict when a queue has no socket: `Pass` in service;
    /// tests pick another action to observe the redirect decision in a test run.
    pub fn load(cfg: &SteeringConfig, queues: u32, fallback: XdpAction) -> Result<Steering, XdpError> {
        if cfg.owned.len() > MAX_OWNED as usize || cfg.intercept.len() > MAX_INTERCEPT as usize {
            return Err(XdpError::InvalidConfig {
                what: format!("at most {MAX_OWNED} addresses and {MAX_INTERCEPT} intercept prefixes"),
            });
        }
        if let Some(f) = &cfg.tcp_ports {
            if f.ephemeral.is_empty() {
                return Err(XdpError::InvalidConfig { what: format!("empty ephemeral port range {:?}", f.ephemeral) });
            }
        }
        let xsks = create(MapType::XskMap, "sluice_xsks", 4, 4, queues.max(1))?;
        let owned = create(MapType::Hash, "sluice_owned", 4, 1, MAX_OWNED)?;
        let intercept = create(MapType::LpmTrie, "sluice_icpt", 8, 1, MAX_INTERCEPT)?;
        let ports = match cfg.tcp_ports {
            Some(_) => Some(create(MapType::Array, "sluice_ports", 4, 1, 65536)?),
            None => None,
        };
        let fds =
            MapFds { xsks: fd(&xsks), owned: fd(&owned), intercept: fd(&intercept), ports: ports.as_ref().map(fd) };
        let ephemeral = cfg.tcp_ports.as_ref().map(|f| &f.ephemeral);
        let insns = assemble(&fds, ephemeral, fallback)
            .map_err(|e| XdpError::InvalidConfig { what: format!("XDP program: {e}") })?;
        let program = Program::load_xdp("sluice_xdp", &insns, "MIT OR Apache-2.0")?;
        let steering = Steering { xsks, owned, intercept, ports, program };
        for addr in &cfg.owned {
            steering.add_owned(*addr)?;
        }
        for prefix in &cfg.intercept {
            steering.add_intercept(*prefix)?;
        }
        if let Some(f) = &cfg.tcp_ports {
            for port in &f.ports {
                steering.allow_port(*port)?;
            }
        }
        Ok(steering)
    }

    /// Steer ARP and TCP for `addr` to sluice.
    pub fn add_owned(&self, addr: Ipv4Addr) -> Result<(), XdpError> {
        self.owned.update(&addr.octets(), &[1]).map_err(|e| XdpError::io("adding an owned address", e))
    }

    /// Stop steering `addr`; `Ok(false)` if it was not owned.
    pub fn remove_owned(&self, addr: Ipv4Addr) -> Result<bool, XdpError> {
        self.owned.delete(&addr.octets()).map_err(|e| XdpError::io("removing an owned address", e))
    }

    fn lpm_key(prefix: Ipv4Cidr) -> [u8; 8] {
        let mut key = [0u8; 8];
        key[..4].copy_from_slice(&u32::from(prefix.prefix_len()).to_ne_bytes());
        key[4..].copy_from_slice(&prefix.network().address().octets());
        key
    }

    /// Steer TCP to any address inside `prefix` to sluice.
    pub fn add_intercept(&self, prefix: Ipv4Cidr) -> Result<(), XdpError> {
        self.intercept.update(&Self::lpm_key(prefix), &[1]).map_err(|e| XdpError::io("adding an intercept prefix", e))
    }

    /// Stop intercepting `prefix`; `Ok(false)` if it was not there.
    pub fn remove_intercept(&self, prefix: Ipv4Cidr) -> Result<bool, XdpError> {
        self.intercept.delete(&Self::lpm_key(prefix)).map_err(|e| XdpError::io("removing an intercept prefix", e))
    }

    /// Accept TCP to `port` (only meaningful with a port filter).
    pub fn allow_port(&self, port: u16) -> Result<(), XdpError> {
        self.set_port(port, 1)
    }

    /// Stop accepting TCP to `port` (outside the ephemeral range).
    pub fn deny_port(&self, port: u16) -> Result<(), XdpError> {
        self.set_port(port, 0)
    }

    fn set_port(&self, port: u16, on: u8) -> Result<(), XdpError> {
        let Some(ports) = &self.ports else {
            return Err(XdpError::InvalidConfig { what: "no TCP port filter configured".into() });
        };
        ports.update(&u32::from(port).to_ne_bytes(), &[on]).map_err(|e| XdpError::io("updating the port filter", e))
    }

    /// Point queue `queue`'s XSKMAP slot at an AF_XDP socket.
    pub fn register(&self, queue: u32, xsk: BorrowedFd<'_>) -> Result<(), XdpError> {
        if queue >= self.xsks.max_entries() {
            return Err(XdpError::InvalidConfig {
                what: format!("queue {queue} beyond the XSKMAP ({} slots)", self.xsks.max_entries()),
            });
        }
        let fd = xsk.as_raw_fd() as u32;
        self.xsks
            .update(&queue.to_ne_bytes(), &fd.to_ne_bytes())
            .map_err(|e| XdpError::io("registering the AF_XDP socket in the XSKMAP", e))
    }

    pub fn program(&self) -> &Program {
        &self.program
    }
}

#[cfg(test)]
#[path = "steer_tests.rs"]
mod tests;
