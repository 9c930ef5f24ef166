//! Shared fixtures for sluice's criterion benchmarks (see `benches/`) and the load
//! scripts beside them.
