//! Shared helpers for sluice's end-to-end tests: the binary, a running proxy, origins.
//!
//! Every helper cleans up after itself on drop (processes are killed by PID, files
//! removed), also when a test panics.

pub mod config;
pub mod http_client;
pub mod http_origin;
pub mod origin;
pub mod proxy;
pub mod tagged;
pub mod tls;
pub mod upstream;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The sluice binary, built once per test process (debug profile), or `$SLUICE_BIN`.
pub fn sluice_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("SLUICE_BIN") {
            return PathBuf::from(p);
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-q", "-p", "sluice", "--bin", "sluice"]).current_dir(&root);
        // Cargo sets these for the test process; a build script that watches one (ring
        // watches CARGO_MANIFEST_DIR) would see it change between this build and the
        // outer `cargo test`, and each would rebuild ring, rustls and sluice again.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_MANIFEST_")
                || ["CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR"].contains(&name.as_ref())
            {
                build.env_remove(name.as_ref());
            }
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building sluice failed");
        let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
        target.join("debug").join("sluice")
    })
    .clone()
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Deterministic test payload of `len` bytes.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[i % 4] ^ seed).collect()
}
