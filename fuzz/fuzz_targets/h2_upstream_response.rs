//! Fuzz the upstream HTTP/2 client with any origin bytes, in fuzzer-chosen splits,
//! while it carries one to four streams of HTTP/1.1 clients through a whole worker on
//! in-memory pipes. No panic; every stream ends with a response (the origin's or a
//! local reply) or a reset; the worker still serves a new client. Input format and
//! properties: `sluice::fuzzing::h2_upstream`. The deterministic counterpart in CI:
//! `h2_upstream_mutations_hold_the_properties` in proxy/src/fuzzing/tests.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice::fuzzing::h2_upstream::run(data);
});
