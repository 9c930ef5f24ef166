//! The XDP program lives exactly as long as its owner: gone after the owner drops it,
//! and gone after the process that attached it is killed with SIGKILL (a BPF link, no
//! bpffs pin).

mod common;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use common::eventually;
use sluice_datapath::testnet::{self, Netns, TwoHosts};
use sluice_datapath::{AttachMode, BindMode, SteeringConfig, XdpProgram, XskConfig, XskDevice};

const IFACE_ENV: &str = "SLUICE_TEST_XDP_IFACE";

fn attached(ns: &Netns, dev: &str) -> bool {
    ns.link_details(dev).unwrap().contains("prog/xdp")
}

#[test]
fn program_detaches_when_dropped() {
    if !testnet::require_root("program_detaches_when_dropped") {
        return;
    }
    let net = TwoHosts::new("sxd", 1).expect("test network");
    let _addr = net.right.add_address(net.veth.b(), "10.99.12.1/24").unwrap();
    assert!(!attached(&net.left, net.veth.a()));
    let (program, device) = net
        .left
        .run(|| {
            let steering = SteeringConfig { owned: vec!["10.99.12.2".parse().unwrap()], ..Default::default() };
            let program = XdpProgram::attach(net.veth.a(), AttachMode::Skb, &steering)?;
            let cfg = XskConfig { bind: BindMode::Copy, ..XskConfig::default() };
            let device = XskDevice::open(&program, 0, &cfg)?;
            Ok::<_, sluice_datapath::XdpError>((program, device))
        })
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let id = program.id().unwrap();
    let details = net.left.link_details(net.veth.a()).unwrap();
    assert!(details.contains(&format!("prog/xdp id {id}")), "{details}");

    // The device holds the program too: dropping our handle alone keeps it attached.
    drop(program);
    assert!(attached(&net.left, net.veth.a()), "still held by the device");
    drop(device);
    assert!(
        eventually(Duration::from_secs(5), || !attached(&net.left, net.veth.a())),
        "program gone after the last owner dropped it"
    );
}

#[test]
fn program_detaches_when_its_process_is_killed() {
    if !testnet::require_root("program_detaches_when_its_process_is_killed") {
        return;
    }
    let net = TwoHosts::new("sxs", 1).expect("test network");
    let _addr = net.right.add_address(net.veth.b(), "10.99.12.65/26").unwrap();
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap();
    let mut child = net
        .left
        .spawn(
            "env",
            &[
                &format!("{IFACE_ENV}={}", net.veth.a()),
                exe,
                "--exact",
                "child_holds_program",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ],
        )
        .unwrap();
    let stdout = child.child_mut().stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let id = loop {
        let line = lines.next().expect("child exited before attaching").expect("reading the child's stdout");
        // libtest prints "test NAME ... " on the same line first.
        if let Some(at) = line.find("ATTACHED ") {
            break line[at + "ATTACHED ".len()..].trim().to_string();
        }
    };
    let details = net.left.link_details(net.veth.a()).unwrap();
    assert!(details.contains(&format!("prog/xdp id {id}")), "{details}");

    let status = child.kill().unwrap();
    assert!(!status.success(), "killed, not exited: {status}");
    assert!(
        eventually(Duration::from_secs(5), || !attached(&net.left, net.veth.a())),
        "program gone after SIGKILL of its process"
    );
}

/// Run by `program_detaches_when_its_process_is_killed` in a child process: attach,
/// open a queue, report, and wait to be killed (at most 60 s).
#[test]
#[ignore = "child process of program_detaches_when_its_process_is_killed"]
fn child_holds_program() {
    let iface = std::env::var(IFACE_ENV).expect("run by the parent test");
    let steering = SteeringConfig { owned: vec!["10.99.12.66".parse().unwrap()], ..Default::default() };
    let program = XdpProgram::attach(&iface, AttachMode::Skb, &steering).unwrap();
    let cfg = XskConfig { bind: BindMode::Copy, ..XskConfig::default() };
    let _device = XskDevice::open(&program, 0, &cfg).unwrap();
    println!("ATTACHED {}", program.id().unwrap());
    std::thread::sleep(Duration::from_secs(60));
}
