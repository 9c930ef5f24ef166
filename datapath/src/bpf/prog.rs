//! Loading an eBPF program with `BPF_PROG_LOAD`, and running it on a test packet with
//! `BPF_PROG_TEST_RUN`.
//!
//! Loading first tries without a verifier log (fast path); when the kernel refuses the
//! program it loads again with a log buffer, so that the error carries the verifier's
//! explanation instead of a bare errno.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::insn::Insn;
use super::sys::{self, InfoAttr, ProgLoadAttr, TestRunAttr};
use crate::error::XdpError;

/// `BPF_PROG_TYPE_XDP`.
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `BPF_XDP` (`enum bpf_attach_type`).
pub(crate) const BPF_XDP: u32 = 37;
/// Size of the verifier log buffer used after a failed load.
const LOG_SIZE: usize = 1 << 20;

/// The verdict of an XDP program (`enum xdp_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpAction {
    Aborted = 0,
    Drop = 1,
    Pass = 2,
    Tx = 3,
    Redirect = 4,
}

impl XdpAction {
    /// The action for a raw return value, if it is one.
    pub fn from_u32(v: u32) -> Option<XdpAction> {
        Some(match v {
            0 => XdpAction::Aborted,
            1 => XdpAction::Drop,
            2 => XdpAction::Pass,
            3 => XdpAction::Tx,
            4 => XdpAction::Redirect,
            _ => return None,
        })
    }
}

/// A loaded XDP program.
#[derive(Debug)]
pub struct Program {
    fd: OwnedFd,
}

impl Program {
    /// Load `insns` as an XDP program under `license`.
    pub fn load_xdp(name: &str, insns: &[Insn], license: &str) -> Result<Program, XdpError> {
        let license = std::ffi::CString::new(license)
            .map_err(|_| XdpError::InvalidConfig { what: "license contains NUL".into() })?;
        let name = sys::obj_name(name);
        let attempt = |log: Option<&mut [u8]>| {
            let mut attr = ProgLoadAttr {
                prog_type: BPF_PROG_TYPE_XDP,
                insn_cnt: insns.len() as u32,
                insns: insns.as_ptr() as u64,
                license: license.as_ptr() as u64,
                prog_name: name,
                expected_attach_type: BPF_XDP,
                ..ProgLoadAttr::default()
            };
            if let Some(log) = log {
                attr.log_level = 1;
                attr.log_size = log.len() as u32;
                attr.log_buf = log.as_mut_ptr() as u64;
            }
            // SAFETY: `insns` (insn_cnt entries of the kernel's `struct bpf_insn` layout),
            // the NUL-terminated `license` and the optional writable `log` buffer all
            // outlive the call.
            unsafe { sys::bpf_fd(sys::BPF_PROG_LOAD, &mut attr) }
        };
        // EPERM means no privileges. Anything else (the verifier answers EACCES or
        // EINVAL) is retried with a log so that the error can say why.
        let source = match attempt(None) {
            Ok(fd) => return Ok(Program { fd }),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                return Err(XdpError::NotPermitted { op: "bpf(BPF_PROG_LOAD)" })
            }
            Err(_) => {
                let mut log = vec![0u8; LOG_SIZE];
                match attempt(Some(&mut log)) {
                    Ok(fd) => return Ok(Program { fd }),
                    Err(e) => {
                        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                        (e, String::from_utf8_lossy(&log[..end]).trim_end().to_string())
                    }
                }
            }
        };
        Err(XdpError::Verifier { source: source.0, log: source.1 })
    }

    /// The kernel's id for this program (as `ip link` and `bpftool` show it).
    pub fn id(&self) -> io::Result<u32> {
        // The first two members of `struct bpf_prog_info`: type and id.
        let mut info = [0u32; 2];
        let mut attr = InfoAttr {
            bpf_fd: self.fd.as_raw_fd() as u32,
            info_len: std::mem::size_of_val(&info) as u32,
            info: info.as_mut_ptr() as u64,
        };
        // SAFETY: `info` is writable for `info_len` bytes; the kernel writes at most that.
        unsafe { sys::bpf(sys::BPF_OBJ_GET_INFO_BY_FD, &mut attr)? };
        Ok(info[1])
    }

    /// Run the program once on `packet` (an Ethernet frame) and return its verdict.
    pub fn test_run(&self, packet: &[u8]) -> io::Result<u32> {
        let mut out = vec![0u8; packet.len() + 512];
        let mut attr = TestRunAttr {
            prog_fd: self.fd.as_raw_fd() as u32,
            data_size_in: packet.len() as u32,
            data_size_out: out.len() as u32,
            data_in: packet.as_ptr() as u64,
            data_out: out.as_mut_ptr() as u64,
            repeat: 1,
            ..TestRunAttr::default()
        };
        // SAFETY: `packet` is readable and `out` writable for the sizes given, and both
        // outlive the call.
        unsafe { sys::bpf(sys::BPF_PROG_TEST_RUN, &mut attr)? };
        Ok(attr.retval)
    }
}

impl AsFd for Program {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::{Asm, Reg};
    use crate::testnet;

    #[test]
    fn verifier_rejection_carries_the_log() {
        if !testnet::require_root("verifier log test") {
            return;
        }
        // Returns R0 without ever setting it: the verifier must refuse.
        let mut asm = Asm::new();
        asm.mov64_reg(Reg::R2, Reg::R1).exit();
        let insns = asm.finish().unwrap();
        let err = Program::load_xdp("sluice_bad", &insns, "MIT OR Apache-2.0").unwrap_err();
        let XdpError::Verifier { log, .. } = &err else { panic!("expected a verifier error: {err}") };
        assert!(log.contains("R0 !read_ok"), "verifier log: {log}");
        assert!(err.to_string().contains("verifier log:"), "{err}");
    }

    #[test]
    fn a_minimal_program_loads_and_runs() {
        if !testnet::require_root("program load test") {
            return;
        }
        let mut asm = Asm::new();
        asm.mov64_imm(Reg::R0, XdpAction::Drop as i32).exit();
        let prog = Program::load_xdp("sluice_drop", &asm.finish().unwrap(), "MIT").unwrap();
        assert!(prog.id().unwrap() > 0);
        assert_eq!(prog.test_run(&[0u8; 64]).unwrap(), XdpAction::Drop as u32);
    }
}
