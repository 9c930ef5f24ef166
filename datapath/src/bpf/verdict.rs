//! The smallest XDP programs: one fixed verdict for every packet. `XDP_DROP` and
//! `XDP_TX` attached in the driver are the in-kernel ceilings the packet-path benchmark
//! (bench/packet.sh) holds the AF_XDP loops against: nothing leaves the driver, so no
//! AF_XDP path can be cheaper.

use super::insn::{Asm, Reg};
use super::link::{AttachMode, XdpLink};
use super::prog::{Program, XdpAction};
use crate::error::XdpError;
use crate::iface::InterfaceInfo;

/// Load `return action;` and attach it to `interface` in `mode`. The program stays
/// attached as long as the returned link lives (or the process does).
pub fn attach_verdict(interface: &str, mode: AttachMode, action: XdpAction) -> Result<XdpLink, XdpError> {
    let info = InterfaceInfo::query(interface)?;
    let mut asm = Asm::new();
    asm.mov64_imm(Reg::R0, action as i32).exit();
    let insns = asm.finish().map_err(|e| XdpError::InvalidConfig { what: format!("XDP program: {e}") })?;
    let program = Program::load_xdp("sluice_verdict", &insns, "MIT OR Apache-2.0")?;
    XdpLink::attach(&program, info.index, mode).map_err(|e| XdpError::AttachRefused {
        interface: info.name.clone(),
        mode,
        source: e,
        hint: format!("is another XDP program attached? (`ip link set dev {} xdp off`)", info.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testnet;

    #[test]
    fn a_verdict_program_attaches_and_detaches_with_its_link() {
        if !testnet::require_root("verdict program test") {
            return;
        }
        let net = testnet::TwoHosts::new("sxvd", 1).unwrap();
        let name = net.veth.a().to_string();
        let attached = || net.left.link_details(&name).unwrap().contains("prog/xdp");
        let link = net.left.run(|| attach_verdict(&name, AttachMode::Drv, XdpAction::Drop)).unwrap().unwrap();
        assert!(attached(), "no XDP program shown on {name}");
        drop(link);
        // The kernel releases a closed link asynchronously.
        let gone = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            !attached()
        });
        assert!(gone, "XDP program still attached to {name} after its link was dropped");
    }
}
