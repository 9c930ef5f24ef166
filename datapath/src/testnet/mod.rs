//! Test networks built from network namespaces and veth pairs, for tests and benchmarks
//! of the xdp datapath (and end-to-end tests of sluice across namespaces).
//!
//! Every resource is an RAII guard: [`Netns`], [`VethPair`], [`Address`] and
//! [`ChildGuard`] remove what they created when dropped — also when the test panics,
//! because unwinding runs `Drop`. A namespace left over by a killed run is removed
//! before one of the same name is created. The guards shell out to `ip` and `ethtool`
//! (installed with `apt-get` on first use when missing) and fail with the command's
//! stderr.
//!
//! Tests need root. [`require_root`] returns `false` with a printed reason when the
//! process is not root, so a test can return early; as root everything must work. A
//! test that returns early passes in cargo's summary, so each skip is also appended to
//! the file named by `$SLUICE_SKIP_LOG` when set: scripts/test.sh reports them as
//! skipped.
//!
//! ```no_run
//! use sluice_datapath::testnet::{self, TwoHosts};
//! if !testnet::require_root("my test") { return; }
//! let net = TwoHosts::new("sxdoc", 1).unwrap();
//! let _a = net.right.add_address(net.veth.b(), "10.99.10.1/24").unwrap();
//! net.right.disable_offloads(net.veth.b()).unwrap();
//! let out = net.right.exec("ip", &["addr", "show"]).unwrap();
//! let rtt = net.right.run(|| testnet::ping("10.99.10.2".parse().unwrap(),
//!     std::time::Duration::from_secs(1))).unwrap();
//! ```

mod child;
mod netns;
mod ping;
mod veth;

use std::io;
use std::process::Command;
use std::sync::Mutex;

pub use child::ChildGuard;
pub use netns::{Address, Netns};
pub use ping::ping;
pub use veth::{TwoHosts, VethPair};

/// Whether the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `true` when root; otherwise print why `what` is skipped (and record it in
/// `$SLUICE_SKIP_LOG`) and return `false`.
pub fn require_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    let reason = "needs root (network namespaces, veth, AF_XDP and BPF); CI runs these as root";
    eprintln!("skipping {what}: {reason}");
    if let Some(path) = std::env::var_os("SLUICE_SKIP_LOG") {
        use std::io::Write;
        let line = format!("SKIPPED: {what}: {reason}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot record the skip in {}: {e}", path.to_string_lossy());
        }
    }
    false
}

/// Run `program args...`; its stdout on success, an error with its stderr otherwise.
pub fn run(program: &str, args: &[&str]) -> io::Result<String> {
    ensure_tools()?;
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {program}: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn have(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success())
}

/// Make sure `ip` and `ethtool` exist, installing iproute2/ethtool with apt-get if not.
pub fn ensure_tools() -> io::Result<()> {
    static CHECKED: Mutex<bool> = Mutex::new(false);
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if *checked {
        return Ok(());
    }
    let missing: Vec<&str> = [("ip", "-V", "iproute2"), ("ethtool", "--version", "ethtool")]
        .into_iter()
        .filter(|(p, a, _)| !have(p, a))
        .map(|(_, _, pkg)| pkg)
        .collect();
    if !missing.is_empty() {
        eprintln!("testnet: installing {} with apt-get", missing.join(" "));
        let install = |pkgs: &[&str]| {
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(pkgs)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !install(&missing) {
            let _ = Command::new("apt-get").args(["update", "-q"]).output();
            if !install(&missing) {
                return Err(io::Error::other(format!(
                    "{} missing and `apt-get install` failed; install them by hand",
                    missing.join(" and ")
                )));
            }
        }
    }
    *checked = true;
    Ok(())
}
