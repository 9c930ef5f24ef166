//! Just enough of `bpf(2)` to run sluice's XDP program, in pure Rust: an instruction
//! assembler ([`insn`]), maps ([`map`]), program loading and test runs ([`prog`]) and
//! XDP links ([`link`]). No libbpf, no ELF objects, no bpffs.

pub mod insn;
pub mod link;
pub mod map;
pub mod prog;
pub(crate) mod sys;
pub mod verdict;

pub use insn::{Alu, Asm, AsmError, Cond, Helper, Insn, Label, Reg, Size};
pub use link::{AttachMode, XdpLink};
pub use map::{Map, MapType};
pub use prog::{Program, XdpAction};
pub use verdict::attach_verdict;
