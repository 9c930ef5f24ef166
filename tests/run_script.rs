//! scripts/run.sh as a new user meets it: which config it runs, the example origins it
//! starts, and that signals reach sluice (the script execs it) and stop the origins too.
//!
//! The example configs use fixed ports (10000-10002, admin 9901): the cases take a lock
//! and check that the ports are free first.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_e2e::sluice_bin;

static PORTS: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

fn assert_free(ports: &[u16]) {
    for p in ports {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok(),
            "port {p} is busy: the example configs need it free"
        );
    }
}

/// Wait until nothing listens on `port` any more.
fn wait_closed(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "something still listens on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `scripts/run.sh ARGS` from `cwd`, with the test's sluice binary; its output collected.
fn spawn(cwd: &std::path::Path, args: &[&str]) -> (Child, Arc<Mutex<String>>) {
    let mut child = Command::new("bash")
        .arg(root().join("scripts/run.sh"))
        .args(args)
        .current_dir(cwd)
        .env("SLUICE_BIN", sluice_bin())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start scripts/run.sh");
    let out = Arc::new(Mutex::new(String::new()));
    for s in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
    ] {
        let out = Arc::clone(&out);
        std::thread::spawn(move || {
            for line in BufReader::new(s).lines().map_while(Result::ok) {
                let mut o = out.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
    }
    (child, out)
}

fn wait_exit(child: &mut Child, within: Duration, out: &Mutex<String>) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("scripts/run.sh did not exit:\n{}", out.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_to_the_script_drains_sluice_and_stops_the_echo_origin() {
    let _lock = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    assert_free(&[10000, 10001]);
    // The TCP example spelled as no `case` string would match: the file decides.
    let (mut child, out) = spawn(&root(), &["./examples/../examples/tcp_proxy.yaml", "--", "--concurrency", "1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let echoed = loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", 10000)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s.write_all(b"hello\n").unwrap();
            let mut b = [0u8; 6];
            if s.read_exact(&mut b).is_ok() {
                break b;
            }
        }
        assert!(Instant::now() < deadline, "no echo through 127.0.0.1:10000:\n{}", out.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(&echoed, b"hello\n", "the echo origin answers through sluice");
    // The script exec'd sluice: its PID is sluice's.
    let exe = std::fs::read_link(format!("/proc/{}/exe", child.id())).unwrap();
    assert_eq!(exe.file_name(), sluice_bin().file_name(), "scripts/run.sh must exec sluice");
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let status = wait_exit(&mut child, Duration::from_secs(10), &out);
    assert!(status.success(), "sluice drains and exits 0 on SIGTERM ({status}):\n{}", out.lock().unwrap());
    wait_closed(10000, Duration::from_secs(2));
    wait_closed(10001, Duration::from_secs(5));
}

#[test]
fn dash_dash_without_a_config_runs_the_default_example() {
    let _lock = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    assert_free(&[10000, 10001, 10002, 9901]);
    // From another directory: the default config is the repository's.
    let elsewhere = tempfile::tempdir().unwrap();
    let (mut child, out) = spawn(elsewhere.path(), &["--", "--mode", "validate"]);
    let status = wait_exit(&mut child, Duration::from_secs(20), &out);
    let text = out.lock().unwrap().clone();
    assert!(status.success(), "{status}:\n{text}");
    assert!(text.contains("examples/front_proxy.yaml' OK"), "{text}");
    assert!(!text.contains("cannot read"), "{text}");
    // The two example origins were started for it, and stopped when sluice exited.
    assert!(text.contains("HTTP origins on 127.0.0.1:10001"), "{text}");
    wait_closed(10001, Duration::from_secs(5));
    wait_closed(10002, Duration::from_secs(5));
}
