//! eBPF instructions and a small typed assembler with labels.
//!
//! [`Asm`] appends instructions; jumps name a [`Label`] that is bound anywhere later or
//! earlier, and [`Asm::finish`] resolves every jump to its PC-relative offset. Mistakes
//! that the verifier would only report as "invalid jump" (a label never bound, bound
//! twice, or too far away) are reported by `finish` with the label's number. The encoding
//! follows the kernel's `struct bpf_insn` (linux/bpf.h, Documentation/bpf/standardization).

use std::fmt;

// Instruction classes.
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_ST: u8 = 0x02;
const BPF_STX: u8 = 0x03;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_ALU64: u8 = 0x07;
// Modes and sources.
const BPF_IMM: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
// Special ALU and JMP operations.
const BPF_END: u8 = 0xd0;
const BPF_TO_BE: u8 = 0x08;
const BPF_JA: u8 = 0x00;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;
/// `src_reg` of a 64-bit immediate load that names a map by file descriptor.
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// One 8-byte eBPF instruction, laid out as `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// `dst_reg:4, src_reg:4` as the C bitfield lays them out on this host.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn { code, regs: pack_regs(dst as u8, src as u8), off, imm }
    }

    /// The instruction as the kernel reads it.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

#[cfg(target_endian = "little")]
fn pack_regs(dst: u8, src: u8) -> u8 {
    (dst & 0x0f) | (src << 4)
}

#[cfg(target_endian = "big")]
fn pack_regs(dst: u8, src: u8) -> u8 {
    (dst << 4) | (src & 0x0f)
}

impl fmt::Debug for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x} {:02x} {:+} {:#x}", self.code, self.regs, self.off, self.imm)
    }
}

/// eBPF registers. `R0` holds results, `R1`-`R5` arguments (clobbered by calls),
/// `R6`-`R9` survive calls, `R10` is the read-only frame pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
}

/// Memory access width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    fn code(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }
}

/// 64-bit ALU operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alu {
    Add = 0x00,
    Sub = 0x10,
    Mul = 0x20,
    Div = 0x30,
    Or = 0x40,
    And = 0x50,
    Lsh = 0x60,
    Rsh = 0x70,
    Mod = 0x90,
    Xor = 0xa0,
    Mov = 0xb0,
    Arsh = 0xc0,
}

/// Jump conditions (unsigned unless named `S*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Eq = 0x10,
    Gt = 0x20,
    Ge = 0x30,
    Set = 0x40,
    Ne = 0x50,
    Sgt = 0x60,
    Sge = 0x70,
    Lt = 0xa0,
    Le = 0xb0,
    Slt = 0xc0,
    Sle = 0xd0,
}

/// Kernel helper functions (`enum bpf_func_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Helper {
    MapLookupElem = 1,
    RedirectMap = 51,
}

/// A jump target, created by [`Asm::label`] and placed by [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// Why a program could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsmError {
    UnboundLabel(usize),
    LabelBoundTwice(usize),
    JumpTooFar(usize),
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AsmError::UnboundLabel(l) => write!(f, "label {l} is jumped to but never bound"),
            AsmError::LabelBoundTwice(l) => write!(f, "label {l} is bound twice"),
            AsmError::JumpTooFar(l) => write!(f, "jump to label {l} does not fit in 16 bits"),
        }
    }
}

impl std::error::Error for AsmError {}

/// An eBPF assembler: append instructions, jump to labels, then [`finish`](Asm::finish).
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    /// Instruction index each label is bound to.
    labels: Vec<Option<usize>>,
    /// (instruction index, label) of every jump awaiting its offset.
    fixups: Vec<(usize, Label)>,
    error: Option<AsmError>,
}

impl Asm {
    pub fn new() -> Asm {
        Asm::default()
    }

    /// A new, unbound label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Place `label` at the next instruction.
    pub fn bind(&mut self, label: Label) {
        let slot = &mut self.labels[label.0];
        if slot.is_some() {
            self.error.get_or_insert(AsmError::LabelBoundTwice(label.0));
        }
        *slot = Some(self.insns.len());
    }

    fn push(&mut self, insn: Insn) -> &mut Asm {
        self.insns.push(insn);
        self
    }

    /// `dst = imm` (sign-extended to 64 bits).
    pub fn mov64_imm(&mut self, dst: Reg, imm: i32) -> &mut Asm {
        self.alu64_imm(Alu::Mov, dst, imm)
    }

    /// `dst = src`.
    pub fn mov64_reg(&mut self, dst: Reg, src: Reg) -> &mut Asm {
        self.alu64_reg(Alu::Mov, dst, src)
    }

    /// `dst op= imm`.
    pub fn alu64_imm(&mut self, op: Alu, dst: Reg, imm: i32) -> &mut Asm {
        self.push(Insn::new(BPF_ALU64 | BPF_K | op as u8, dst, Reg::R0, 0, imm))
    }

    /// `dst op= src`.
    pub fn alu64_reg(&mut self, op: Alu, dst: Reg, src: Reg) -> &mut Asm {
        self.push(Insn::new(BPF_ALU64 | BPF_X | op as u8, dst, src, 0, 0))
    }

    /// Convert the low `bits` (16, 32 or 64) of `reg` between host and network order.
    pub fn be(&mut self, reg: Reg, bits: i32) -> &mut Asm {
        self.push(Insn::new(BPF_ALU | BPF_END | BPF_TO_BE, reg, Reg::R0, 0, bits))
    }

    /// `dst = *(size *)(src + off)`.
    pub fn ldx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Asm {
        self.push(Insn::new(BPF_LDX | BPF_MEM | size.code(), dst, src, off, 0))
    }

    /// `*(size *)(dst + off) = src`.
    pub fn stx(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Asm {
        self.push(Insn::new(BPF_STX | BPF_MEM | size.code(), dst, src, off, 0))
    }

    /// `*(size *)(dst + off) = imm`.
    pub fn st_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) -> &mut Asm {
        self.push(Insn::new(BPF_ST | BPF_MEM | size.code(), dst, Reg::R0, off, imm))
    }

    /// `dst = map` for the map behind file descriptor `fd` (a two-slot instruction).
    pub fn ld_map_fd(&mut self, dst: Reg, fd: i32) -> &mut Asm {
        let mut first = Insn::new(BPF_LD | BPF_IMM | Size::DW.code(), dst, Reg::R0, 0, fd);
        first.regs = pack_regs(dst as u8, BPF_PSEUDO_MAP_FD);
        self.push(first);
        self.push(Insn { code: 0, regs: 0, off: 0, imm: 0 })
    }

    /// `if reg cond imm goto target`.
    pub fn jmp_imm(&mut self, cond: Cond, reg: Reg, imm: i32, target: Label) -> &mut Asm {
        self.fixups.push((self.insns.len(), target));
        self.push(Insn::new(BPF_JMP | BPF_K | cond as u8, reg, Reg::R0, 0, imm))
    }

    /// `if a cond b goto target`.
    pub fn jmp_reg(&mut self, cond: Cond, a: Reg, b: Reg, target: Label) -> &mut Asm {
        self.fixups.push((self.insns.len(), target));
        self.push(Insn::new(BPF_JMP | BPF_X | cond as u8, a, b, 0, 0))
    }

    /// `goto target`.
    pub fn ja(&mut self, target: Label) -> &mut Asm {
        self.fixups.push((self.insns.len(), target));
        self.push(Insn::new(BPF_JMP | BPF_JA, Reg::R0, Reg::R0, 0, 0))
    }

    /// Call a kernel helper; the result lands in `R0`, `R1`-`R5` are clobbered.
    pub fn call(&mut self, helper: Helper) -> &mut Asm {
        self.push(Insn::new(BPF_JMP | BPF_CALL, Reg::R0, Reg::R0, 0, helper as i32))
    }

    /// Return `R0`.
    pub fn exit(&mut self) -> &mut Asm {
        self.push(Insn::new(BPF_JMP | BPF_EXIT, Reg::R0, Reg::R0, 0, 0))
    }

    /// Resolve every jump and return the program.
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        for &(at, label) in &self.fixups {
            let target = self.labels[label.0].ok_or(AsmError::UnboundLabel(label.0))?;
            let delta = target as i64 - (at as i64 + 1);
            self.insns[at].off = i16::try_from(delta).map_err(|_| AsmError::JumpTooFar(label.0))?;
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(insns: &[Insn]) -> Vec<[u8; 8]> {
        insns.iter().map(|i| i.to_bytes()).collect()
    }

    #[test]
    fn encodes_like_the_kernel() {
        let mut asm = Asm::new();
        asm.mov64_imm(Reg::R0, 2).exit();
        asm.ldx(Size::W, Reg::R2, Reg::R1, 4);
        asm.stx(Size::H, Reg::R10, -8, Reg::R3);
        asm.alu64_reg(Alu::Add, Reg::R4, Reg::R9);
        asm.call(Helper::RedirectMap);
        asm.be(Reg::R1, 16);
        let insns = asm.finish().unwrap();
        // Expected bytes as clang/llvm-objdump print them (x86-64, little-endian).
        #[cfg(target_endian = "little")]
        assert_eq!(
            bytes(&insns),
            vec![
                [0xb7, 0x00, 0, 0, 2, 0, 0, 0],       // r0 = 2
                [0x95, 0x00, 0, 0, 0, 0, 0, 0],       // exit
                [0x61, 0x12, 4, 0, 0, 0, 0, 0],       // r2 = *(u32 *)(r1 + 4)
                [0x6b, 0x3a, 0xf8, 0xff, 0, 0, 0, 0], // *(u16 *)(r10 - 8) = r3
                [0x0f, 0x94, 0, 0, 0, 0, 0, 0],       // r4 += r9
                [0x85, 0x00, 0, 0, 51, 0, 0, 0],      // call 51
                [0xdc, 0x01, 0, 0, 16, 0, 0, 0],      // r1 = be16 r1
            ]
        );
    }

    #[test]
    fn map_fd_load_takes_two_slots() {
        let mut asm = Asm::new();
        asm.ld_map_fd(Reg::R1, 7);
        let insns = asm.finish().unwrap();
        assert_eq!(insns.len(), 2);
        #[cfg(target_endian = "little")]
        assert_eq!(insns[0].to_bytes(), [0x18, 0x11, 0, 0, 7, 0, 0, 0]);
        assert_eq!(insns[1].to_bytes(), [0; 8]);
    }

    #[test]
    fn labels_resolve_forwards_and_backwards() {
        let mut asm = Asm::new();
        let top = asm.label();
        let end = asm.label();
        asm.bind(top);
        asm.jmp_imm(Cond::Eq, Reg::R1, 0, end); // 0 -> 3: off 2
        asm.mov64_imm(Reg::R0, 1); // 1
        asm.ja(top); // 2 -> 0: off -3
        asm.bind(end);
        asm.exit(); // 3
        let insns = asm.finish().unwrap();
        assert_eq!(insns[0].off, 2);
        assert_eq!(insns[2].off, -3);
    }

    #[test]
    fn label_mistakes_are_errors() {
        let mut asm = Asm::new();
        let l = asm.label();
        asm.ja(l);
        assert_eq!(asm.finish(), Err(AsmError::UnboundLabel(0)));

        let mut asm = Asm::new();
        let l = asm.label();
        asm.bind(l);
        asm.bind(l);
        assert_eq!(asm.finish(), Err(AsmError::LabelBoundTwice(0)));

        let mut asm = Asm::new();
        let l = asm.label();
        asm.ja(l);
        for _ in 0..40_000 {
            asm.mov64_imm(Reg::R0, 0);
        }
        asm.bind(l);
        assert_eq!(asm.finish(), Err(AsmError::JumpTooFar(0)));
    }
}
