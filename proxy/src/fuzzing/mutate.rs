//! Pseudo-random variations of seed inputs with a fixed seed: the deterministic
//! stand-in for the fuzzer that CI runs. A libFuzzer-like mix: flip and set bytes,
//! insert and erase runs, copy a run elsewhere, splice two seeds.

/// A small deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// One to four mutations of a randomly chosen seed.
pub fn mutant(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                // Interesting values: frame types, flags, lengths' edges.
                const SPECIAL: [u8; 8] = [0, 1, 4, 9, 0x7f, 0x80, 0xfe, 0xff];
                v[i] = if rng.below(2) == 0 { SPECIAL[rng.below(8)] } else { rng.next_u64() as u8 };
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                v.splice(at..at, bytes);
            }
            3 if len > 2 => {
                let at = 2 + rng.below(len - 2);
                let n = 1 + rng.below((len - at).min(32));
                v.drain(at..at + n);
            }
            4 if len > 2 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(64));
                let run = v[from..from + n].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, run);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(v.len() + 1);
                let from = 2.min(other.len()) + rng.below(other.len().saturating_sub(2) + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[from.min(other.len())..]);
            }
            _ if len > 1 => {
                // The control bytes.
                let i = rng.below(2);
                v[i] = rng.next_u64() as u8;
            }
            _ => {}
        }
    }
    v
}
