//! A sluice process under test.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sluice_bin;

/// A running sluice; killed (SIGKILL, by PID) on drop if still running.
pub struct Proxy {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

/// Write `yaml` to a temp file and run `sluice -c FILE ARGS...`.
pub fn spawn(yaml: &str, args: &[&str]) -> Proxy {
    spawn_wrapped(&[], yaml, args)
}

/// Like [`spawn`], through a wrapper command that execs its arguments (e.g.
/// `ip netns exec NS`), so that the PID is still sluice's.
pub fn spawn_wrapped(wrapper: &[&str], yaml: &str, args: &[&str]) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("sluice.yaml");
    std::fs::write(&config_path, yaml).unwrap();
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(sluice_bin());
            c
        }
        None => Command::new(sluice_bin()),
    };
    let mut child = cmd
        .arg("-c")
        .arg(&config_path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sluice");
    let log = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        });
    }
    Proxy { child, log, _dir: dir, config_path }
}

impl Proxy {
    /// Start and wait until it serves (its "sluice started" log line).
    pub fn start(yaml: &str, args: &[&str]) -> Proxy {
        Proxy::start_wrapped(&[], yaml, args)
    }

    /// [`Proxy::start`] through a wrapper command (see [`spawn_wrapped`]).
    pub fn start_wrapped(wrapper: &[&str], yaml: &str, args: &[&str]) -> Proxy {
        let mut p = spawn_wrapped(wrapper, yaml, args);
        p.wait_for_log("sluice started", Duration::from_secs(20));
        p
    }

    /// Start inside network namespace `netns` and wait until it serves.
    pub fn start_in_netns(netns: &str, yaml: &str, args: &[&str]) -> Proxy {
        Proxy::start_wrapped(&["ip", "netns", "exec", netns], yaml, args)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log so far (stderr and stdout lines).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Wait until a log line contains `needle`; panics with the log on timeout or exit.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                panic!("sluice exited ({status}) before `{needle}`:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "no `{needle}` in the sluice log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send a signal by name (`TERM`, `INT`, `HUP`, `KILL`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{sig} failed");
    }

    /// Wait for exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the log readers catch up.
                std::thread::sleep(Duration::from_millis(50));
                return s;
            }
            assert!(Instant::now() < deadline, "sluice did not exit in {timeout:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let _ = writeln!(std::io::stderr(), "---- sluice log ----\n{}\n--------------------", self.log());
        }
    }
}

/// Run `sluice ARGS` to completion: (exit code, stdout + stderr).
pub fn run(args: &[&str], cwd: Option<&Path>) -> (i32, String) {
    let mut cmd = Command::new(sluice_bin());
    cmd.args(args);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let out = cmd.output().expect("run sluice");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}
