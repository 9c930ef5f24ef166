//! Shared helpers for sluice's end-to-end tests: the binary, a running proxy, origins.
//!
//! Every helper cleans up after itself on drop (processes are killed by PID, files
//! removed, threads joined), also when a test panics. Tests that run on both datapaths
//! use [`backend::Net`] and [`on_both_backends!`]; the HTTP ones that mean the same over
//! HTTP/2 also run there through [`over_http2!`].

pub mod backend;
pub mod config;
pub mod conn;
pub mod grpc_service;
pub mod h2_client;
pub mod h2_origin;
pub mod http_client;
pub mod http_origin;
pub mod http_proxy;
pub mod inproc;
pub mod memnet;
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
        // `cargo test` describes the test's package in CARGO_* variables. A nested build
        // that inherits them looks different to build scripts that track them (ring's),
        // so it and `cargo test`'s own build of the sluice library would keep rebuilding
        // ring, rustls and sluice for each other: drop them (user settings stay).
        let mut cargo = Command::new(env!("CARGO"));
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let set_by_cargo_test =
                ["CARGO_PKG_", "CARGO_BIN_EXE_", "CARGO_MANIFEST_"].iter().any(|p| key.starts_with(p))
                    || ["CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "CARGO_RUSTC_CURRENT_DIR"]
                        .contains(&key.as_ref());
            if set_by_cargo_test {
                cargo.env_remove(key.as_ref());
            }
        }
        let status = cargo
            .args(["build", "-q", "-p", "sluice", "--bin", "sluice"])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
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

/// Run each named case, a `fn(Backend)` in scope, as two tests: `kernel::CASE` and
/// `smol::CASE`.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod kernel {
            $(
                #[test]
                fn $case() {
                    super::$case($crate::backend::Backend::Kernel)
                }
            )*
        }
        mod smol {
            $(
                #[test]
                fn $case() {
                    super::$case($crate::backend::Backend::Smol)
                }
            )*
        }
    };
}

/// Run each named case, a `fn(Backend)` in scope, again over HTTP/2 (prior knowledge)
/// on both backends: `kernel_h2::CASE` and `smol_h2::CASE`. Every
/// [`http_client::Client`] the case opens speaks HTTP/2 (see
/// [`http_client::Protocol`]); origins and assertions are the case's own.
#[macro_export]
macro_rules! over_http2 {
    ($($case:ident),* $(,)?) => {
        mod kernel_h2 {
            $(
                #[test]
                fn $case() {
                    $crate::http_client::Protocol::Http2.use_on_this_thread();
                    super::$case($crate::backend::Backend::Kernel)
                }
            )*
        }
        mod smol_h2 {
            $(
                #[test]
                fn $case() {
                    $crate::http_client::Protocol::Http2.use_on_this_thread();
                    super::$case($crate::backend::Backend::Smol)
                }
            )*
        }
    };
}
