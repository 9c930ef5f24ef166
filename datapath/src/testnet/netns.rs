//! Named network namespaces (`ip netns`), commands and threads inside them, and
//! interface addresses.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::thread;

use super::child::ChildGuard;
use super::{ensure_tools, run};

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create namespace `name` (removing a stale one left by a killed run) with `lo` up.
    pub fn new(name: &str) -> io::Result<Netns> {
        ensure_tools()?;
        if std::path::Path::new(&format!("/var/run/netns/{name}")).exists() {
            let _ = run("ip", &["netns", "del", name]);
        }
        run("ip", &["netns", "add", name])?;
        let ns = Netns { name: name.to_string() };
        ns.link_up("lo")?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `program args...` inside the namespace (`ip netns exec`); its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<String> {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Start `program args...` inside the namespace, stdout piped; killed on drop.
    pub fn spawn(&self, program: &str, args: &[&str]) -> io::Result<ChildGuard> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        Ok(ChildGuard::new(child))
    }

    /// Run `f` on a thread inside the namespace, as `ip netns exec` would run a process:
    /// the thread joins the network namespace and gets its own mount namespace with
    /// this namespace's sysfs. Kernel sockets `f` opens belong to the namespace.
    /// A panic in `f` is propagated.
    pub fn run<F, R>(&self, f: F) -> io::Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        thread::scope(|s| {
            let handle = s.spawn(|| -> io::Result<R> {
                self.enter_current_thread()?;
                Ok(f())
            });
            match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Start a long-lived thread inside the namespace (see [`Netns::run`]).
    pub fn spawn_thread<F, R>(&self, f: F) -> thread::JoinHandle<io::Result<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let name = self.name.clone();
        thread::spawn(move || {
            enter(&name)?;
            Ok(f())
        })
    }

    /// Move the calling thread into the namespace for good (with its own mount
    /// namespace and sysfs, as [`Netns::run`] does).
    pub fn enter_current_thread(&self) -> io::Result<()> {
        enter(&self.name)
    }

    /// `ip link set dev up`.
    pub fn link_up(&self, dev: &str) -> io::Result<()> {
        run("ip", &["-n", &self.name, "link", "set", "dev", dev, "up"]).map(drop)
    }

    /// Add `cidr` (e.g. `10.99.10.1/24`) to `dev`; removed when the guard drops.
    pub fn add_address(&self, dev: &str, cidr: &str) -> io::Result<Address> {
        run("ip", &["-n", &self.name, "addr", "add", cidr, "dev", dev])?;
        Ok(Address { ns: self.name.clone(), dev: dev.to_string(), cidr: cidr.to_string() })
    }

    /// `ethtool -K dev tx off tso off gso off`: make the kernel send complete checksums
    /// and MTU-sized segments, which a userspace stack on the other end needs.
    pub fn disable_offloads(&self, dev: &str) -> io::Result<()> {
        self.exec("ethtool", &["-K", dev, "tx", "off", "tso", "off", "gso", "off"]).map(drop)
    }

    /// `ip -d link show dev`: the interface's details (XDP programs included).
    pub fn link_details(&self, dev: &str) -> io::Result<String> {
        run("ip", &["-n", &self.name, "-d", "link", "show", "dev", dev])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            eprintln!("testnet: removing namespace {}: {e}", self.name);
        }
    }
}

/// An address on an interface, removed on drop (unless its interface went first).
#[derive(Debug)]
pub struct Address {
    ns: String,
    dev: String,
    cidr: String,
}

impl Address {
    pub fn cidr(&self) -> &str {
        &self.cidr
    }
}

impl Drop for Address {
    fn drop(&mut self) {
        let _ = run("ip", &["-n", &self.ns, "addr", "del", &self.cidr, "dev", &self.dev]);
    }
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// Join namespace `name` on the calling thread, with a private mount namespace whose
/// /sys shows that namespace's interfaces (what `ip netns exec` does for a process).
fn enter(name: &str) -> io::Result<()> {
    let ns = File::open(format!("/var/run/netns/{name}"))?;
    // SAFETY: setns on a live namespace fd; affects only the calling thread.
    check(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }, "setns")?;
    // SAFETY: unshare only detaches the calling thread's mount namespace (and fs info).
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) }, "unshare(CLONE_NEWNS)")?;
    let root = CString::new("/").expect("no NUL");
    let none = CString::new("none").expect("no NUL");
    let sys = CString::new("/sys").expect("no NUL");
    let sysfs = CString::new("sysfs").expect("no NUL");
    let source = CString::new(name).map_err(|_| io::Error::other("namespace name with NUL"))?;
    // SAFETY: all strings are NUL-terminated and live; these calls change only the
    // thread's private mount namespace created above.
    unsafe {
        check(
            libc::mount(
                none.as_ptr(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_SLAVE | libc::MS_REC,
                std::ptr::null(),
            ),
            "making mounts private",
        )?;
        // /sys may not be mounted at all; that is fine.
        libc::umount2(sys.as_ptr(), libc::MNT_DETACH);
        check(libc::mount(source.as_ptr(), sys.as_ptr(), sysfs.as_ptr(), 0, std::ptr::null()), "mounting sysfs")?;
    }
    Ok(())
}
