//! Shared fixtures for sluice's criterion benchmarks (see `benches/`) and the load
//! scripts beside them.

pub mod cpu_time;
pub mod vnic;
