//! A Python grpcio test service (ext_authz, rate limit, an xDS control plane): the
//! `grpcio`/`protobuf` check (installed with pip when missing), the protoc descriptor
//! set of trimmed Envoy protos, the process, and the port it prints first.
//!
//! Contract with the script: its first stdout line is the port it listens on; every
//! later line is handed to the test through [`GrpcService::lines`]; it may read its
//! stdin ([`GrpcService::send_line`]). The process is killed by PID and reaped on drop.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// Which Python program to run.
pub enum Script<'a> {
    /// Inline source (`python3 -c`).
    Inline(&'a str),
    /// A file.
    File(&'a Path),
}

/// A running grpcio service.
pub struct GrpcService {
    child: Child,
    stdin: ChildStdin,
    /// The port the service printed.
    pub port: u16,
    /// Its stdout lines after the port.
    pub lines: Receiver<String>,
}

/// Make sure python3 can import `grpc` and `google.protobuf` (pip-installing them once).
pub fn ensure_grpcio() {
    let works =
        || Command::new("python3").args(["-c", "import grpc, google.protobuf"]).status().is_ok_and(|s| s.success());
    if !works() {
        let _ = Command::new("pip3").args(["install", "-q", "--break-system-packages", "grpcio", "protobuf"]).status();
        assert!(works(), "python3 `grpc`/`protobuf` missing and `pip3 install grpcio protobuf` failed");
    }
}

/// The descriptor set (with imports) of `proto` under `tests/<protos>`, written to `out`.
pub fn descriptor_set(protos: &str, proto: &str, out: &Path) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(protos);
    let res = Command::new("protoc")
        .current_dir(&dir)
        .args(["--include_imports", &format!("--descriptor_set_out={}", out.display())])
        .arg(proto)
        .output()
        .expect("run protoc (apt: protobuf-compiler libprotobuf-dev)");
    assert!(res.status.success(), "protoc: {}", String::from_utf8_lossy(&res.stderr));
    out.to_path_buf()
}

impl GrpcService {
    /// Run `script` with `args` (grpcio checked first) and wait for its port.
    pub fn start(script: Script, args: &[&str]) -> GrpcService {
        ensure_grpcio();
        let mut cmd = Command::new("python3");
        match script {
            Script::Inline(src) => cmd.args(["-c", src]),
            Script::File(path) => cmd.arg(path),
        };
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the grpcio service");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut s = GrpcService { child, stdin, port: 0, lines };
        let p = s.lines.recv_timeout(Duration::from_secs(30)).expect("the grpcio service's port");
        s.port = p.trim().parse().expect("a port");
        assert_ne!(s.port, 0, "the grpcio service could not bind");
        s
    }

    /// Write one line to the service's stdin.
    pub fn send_line(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to the grpcio service");
        self.stdin.flush().expect("flush the grpcio service's stdin");
    }
}

impl Drop for GrpcService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
