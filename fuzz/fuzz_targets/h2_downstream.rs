//! Fuzz the downstream HTTP/2 connection as a whole: any client bytes, in
//! fuzzer-chosen splits, into a connection of a whole worker on in-memory pipes (with
//! the preface sent by the harness or not, on an AUTO or an HTTP2 listener), routed to
//! a direct response or an in-memory origin. No panic; the connection's buffers stay
//! under a bound derived from its limits; the proxy answers or closes (it has closed
//! the connection within its timeouts); the worker still serves a new client.
//! Input format and properties: `sluice::fuzzing::h2_downstream`. The deterministic
//! counterpart in CI: `h2_downstream_mutations_hold_the_properties` in
//! proxy/src/fuzzing/tests.rs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice::fuzzing::h2_downstream::run(data);
});
