//! Setup failures say what went wrong and how to fix it: a missing interface or queue,
//! a busy queue, a second program, a driver without native XDP, zero-copy where it
//! cannot work, an MTU too large for a frame, and missing privileges.

use std::io::Read;

use sluice_datapath::testnet::{self, TwoHosts};
use sluice_datapath::xsk::XskSocket;
use sluice_datapath::{
    AttachMode, BindMode, InterfaceInfo, SteeringConfig, XdpError, XdpProgram, XskConfig, XskDevice,
};

const IFACE_ENV: &str = "SLUICE_TEST_XDP_IFACE";

fn steering() -> SteeringConfig {
    SteeringConfig { owned: vec!["10.99.14.2".parse().unwrap()], ..Default::default() }
}

fn copy() -> XskConfig {
    XskConfig { bind: BindMode::Copy, ..XskConfig::default() }
}

#[test]
fn setup_errors_are_actionable() {
    if !testnet::require_root("setup_errors_are_actionable") {
        return;
    }
    let net = TwoHosts::new("sxr", 1).expect("test network");
    let _peer = net.right.add_address(net.veth.b(), "10.99.14.1/24").unwrap();
    net.left.exec("ip", &["link", "add", "sxr9", "type", "bridge"]).unwrap();
    let a = net.veth.a();

    net.left
        .run(|| {
            let err = XdpProgram::attach("sxr-nope", AttachMode::Skb, &steering()).unwrap_err();
            assert!(matches!(err, XdpError::InterfaceMissing { .. }), "{err}");
            assert!(err.to_string().contains("\"sxr-nope\" does not exist"), "{err}");

            let err = XdpProgram::attach("sxr9", AttachMode::Drv, &steering()).unwrap_err();
            assert!(matches!(err, XdpError::AttachRefused { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains("driver bridge lacks native XDP: use --xdp-mode skb"), "{text}");

            let program = XdpProgram::attach(a, AttachMode::Skb, &steering()).unwrap();
            let err = XdpProgram::attach(a, AttachMode::Skb, &steering()).unwrap_err();
            assert!(err.to_string().contains("already attached"), "{err}");

            let err = XskDevice::open(&program, 3, &copy()).unwrap_err();
            assert!(matches!(err, XdpError::QueueMissing { queue: 3, queues: 1, .. }), "{err}");
            assert!(err.to_string().contains("has no rx queue 3"), "{err}");

            let first = XskDevice::open(&program, 0, &copy()).unwrap();
            let err = XskDevice::open(&program, 0, &copy()).unwrap_err();
            assert!(matches!(err, XdpError::QueueBusy { queue: 0, .. }), "{err}");
            drop(first);

            let zc = XskConfig { bind: BindMode::ZeroCopy, ..XskConfig::default() };
            let err = XskDevice::open(&program, 0, &zc).unwrap_err();
            assert!(err.to_string().contains("--xdp-mode drv"), "{err}");
            drop(program);

            // Native mode on veth works, but veth has no zero-copy AF_XDP.
            let program = XdpProgram::attach(a, AttachMode::Drv, &steering()).unwrap();
            let err = XskDevice::open(&program, 0, &zc).unwrap_err();
            assert!(matches!(err, XdpError::ZeroCopyUnsupported { .. }), "{err}");
            assert!(err.to_string().contains("drop --zero-copy"), "{err}");
            // Auto falls back to copy mode.
            let auto = XskConfig { bind: BindMode::Auto, ..XskConfig::default() };
            let dev = XskDevice::open(&program, 0, &auto).unwrap();
            assert!(!dev.zero_copy());
            drop(dev);
            drop(program);
        })
        .unwrap();

    net.left.exec("ip", &["link", "set", "dev", a, "mtu", "9000"]).unwrap();
    net.left
        .run(|| {
            let info = InterfaceInfo::query(a).unwrap();
            assert_eq!(info.mtu, 9000);
            assert_eq!(info.driver, "veth");
            let err = XskSocket::open(&info, 0, &copy()).unwrap_err();
            assert!(matches!(err, XdpError::MtuTooLarge { mtu: 9000, max: 3826, .. }), "{err}");
            assert!(err.to_string().contains("mtu 3826"), "{err}");
        })
        .unwrap();
}

#[test]
fn missing_privileges_say_so() {
    if !testnet::require_root("missing_privileges_say_so") {
        return;
    }
    let net = TwoHosts::new("sxp", 1).expect("test network");
    let exe = std::env::current_exe().unwrap();
    // Root without capabilities, inside the namespace.
    let mut child = net
        .left
        .spawn(
            "setpriv",
            &[
                "--bounding-set=-all",
                "--inh-caps=-all",
                "env",
                &format!("{IFACE_ENV}={}", net.veth.a()),
                exe.to_str().unwrap(),
                "--exact",
                "child_without_privileges",
                "--ignored",
                "--test-threads=1",
            ],
        )
        .unwrap();
    let mut out = String::new();
    child.child_mut().stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "child_without_privileges failed ({status}):\n{out}");
    assert!(out.contains("test child_without_privileges ... ok"), "{out}");
}

/// Run by `missing_privileges_say_so` without capabilities.
#[test]
#[ignore = "child process of missing_privileges_say_so"]
fn child_without_privileges() {
    let iface = std::env::var(IFACE_ENV).expect("run by the parent test");
    let err = XdpProgram::attach(&iface, AttachMode::Skb, &steering()).unwrap_err();
    assert!(matches!(err, XdpError::NotPermitted { .. }), "{err}");
    assert!(err.to_string().contains("needs root"), "{err}");
    let info = InterfaceInfo::query(&iface).unwrap();
    let err = XskSocket::open(&info, 0, &copy()).unwrap_err();
    assert!(matches!(err, XdpError::NotPermitted { op: "socket(AF_XDP)" }), "{err}");
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
}
