//! The outlier detector's runtime keys (`outlier_detection.*`), end to end on both
//! datapaths: an admin-layer value set with `/runtime_modify` overrides the cluster's
//! configured value without a reload — `enforcing_consecutive_5xx: 0` stops the
//! ejection of a host answering 503 (it is still detected), removing the value restores
//! the configured 100 %, and `outlier_detection.consecutive_5xx` moves the threshold.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{forward_all, http, http_at, Cluster, ClusterAt};
use sluice_e2e::free_port;
use sluice_e2e::http_client::{get, Client};
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::inproc::InProcessProxy;
use sluice_e2e::on_both_backends;
use sluice_e2e::proxy::Proxy;

const RUNTIME: &str = "layered_runtime:\n  layers:\n  - name: admin\n    admin_layer: {}\n";

/// Fields drop in order: the proxy (and its pooled connections) before the origins.
struct Setup {
    proxy: InProcessProxy,
    origins: Vec<HttpOrigin>,
    net: Net,
    listen: SocketAddr,
}

impl Setup {
    /// Two origins (o0 answers 503 to everything), round robin, consecutive_5xx 3.
    fn new(backend: Backend) -> Setup {
        let net = Net::new(backend);
        let origins: Vec<HttpOrigin> = (0..2).map(|i| HttpOrigin::serve(net.listen(), &format!("o{i}"))).collect();
        origins[0].force_status(Some(503));
        let hosts: Vec<SocketAddr> = origins.iter().map(|o| o.addr).collect();
        let extra = "    outlier_detection: { consecutive_5xx: 3, max_ejection_percent: 50, interval: 0.1s, base_ejection_time: 30s }\n";
        let clusters = [ClusterAt { name: "web", endpoints: &hosts, extra }];
        let listen = net.proxy_listen_addr();
        let yaml = format!("{RUNTIME}{}", http_at(listen, &forward_all("web"), &clusters, "", ""));
        let proxy = net.start_proxy(&yaml, 1);
        Setup { proxy, origins, net, listen }
    }

    /// `n` GETs on one connection; how many were answered 503.
    fn send(&self, n: usize) -> usize {
        let mut c = Client::over(self.net.connect(self.proxy.target(self.listen)).expect("connect"));
        (0..n).filter(|_| c.get("/").status == 503).count()
    }

    fn ejected(&self) -> bool {
        let prefix = format!("web::{}::health_flags::", self.origins[0].addr);
        let text = self.proxy.clusters();
        text.lines().find_map(|l| l.strip_prefix(&prefix)).is_some_and(|f| f == "/failed_outlier_check")
    }

    fn counter(&self, name: &str) -> i64 {
        self.proxy.stats().get(name).unwrap_or_else(|| panic!("no stat named {name}"))
    }
}

/// Wait (at most 5 s) until the failing host is ejected.
fn wait_ejected(s: &Setup) {
    let start = Instant::now();
    while !s.ejected() {
        assert!(start.elapsed() < Duration::from_secs(5), "never ejected:\n{}", s.proxy.clusters());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn enforcing_consecutive_5xx_from_runtime_stops_and_restores_ejection(backend: Backend) {
    let s = Setup::new(backend);
    s.proxy.runtime_modify(&[("outlier_detection.enforcing_consecutive_5xx", "0")]).unwrap();
    // Round robin: o0 gets every other request and fails each one.
    assert_eq!(s.send(20), 10);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!s.ejected(), "not enforced, so not ejected:\n{}", s.proxy.clusters());
    assert!(s.counter("cluster.web.outlier_detection.ejections_detected_consecutive_5xx") >= 1);
    assert_eq!(s.counter("cluster.web.outlier_detection.ejections_enforced_consecutive_5xx"), 0);
    // The value removed: the configured 100 % applies again, no reload.
    s.proxy.runtime_modify(&[("outlier_detection.enforcing_consecutive_5xx", "")]).unwrap();
    let failed = s.send(10);
    assert!((1..=4).contains(&failed), "{failed}");
    wait_ejected(&s);
    assert_eq!(s.counter("cluster.web.outlier_detection.ejections_enforced_consecutive_5xx"), 1);
    assert_eq!(s.send(10), 0, "the ejected host gets no traffic");
}

fn consecutive_5xx_from_runtime_moves_the_threshold(backend: Backend) {
    let s = Setup::new(backend);
    s.proxy.runtime_modify(&[("outlier_detection.consecutive_5xx", "1000")]).unwrap();
    assert_eq!(s.send(40), 20);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!s.ejected());
    assert_eq!(s.counter("cluster.web.outlier_detection.ejections_detected_consecutive_5xx"), 0);
    s.proxy.runtime_modify(&[("outlier_detection.consecutive_5xx", "2")]).unwrap();
    // As in Envoy the count must reach the threshold exactly: a success restarts it.
    s.origins[0].force_status(None);
    assert_eq!(s.send(2), 0);
    s.origins[0].force_status(Some(503));
    assert_eq!(s.send(4), 2);
    wait_ejected(&s);
    assert_eq!(s.counter("cluster.web.outlier_detection.ejections_enforced_consecutive_5xx"), 1);
}

on_both_backends!(
    enforcing_consecutive_5xx_from_runtime_stops_and_restores_ejection,
    consecutive_5xx_from_runtime_moves_the_threshold,
);

// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1).
sluice_e2e::over_http2!(
    enforcing_consecutive_5xx_from_runtime_stops_and_restores_ejection,
    consecutive_5xx_from_runtime_moves_the_threshold,
);

/// The binary, its admin server's `POST /runtime_modify` and `/clusters`.
#[test]
fn binary_runtime_modify_flips_enforcing_consecutive_5xx() {
    let (o0, o1) = (HttpOrigin::start("o0"), HttpOrigin::start("o1"));
    o0.force_status(Some(503));
    let (port, admin) = (free_port(), free_port());
    let extra = "    outlier_detection: { consecutive_5xx: 3, max_ejection_percent: 50, interval: 0.1s, base_ejection_time: 30s }\n";
    let yaml = format!(
        "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}\n{RUNTIME}{}",
        http(port, &forward_all("web"), &[Cluster { name: "web", ports: &[o0.port(), o1.port()], extra }], "", "")
    );
    let mut proxy = Proxy::start(&yaml, &[]);
    proxy.wait_for_log("sluice started", Duration::from_secs(10));
    let post = |target: &str| Client::connect(admin).request("POST", target, &[], b"").status;
    let ejected = || {
        let prefix = format!("web::{}::health_flags::", o0.addr);
        get(admin, "/clusters").text().lines().any(|l| l.strip_prefix(&prefix) == Some("/failed_outlier_check"))
    };
    let send = |n: usize| {
        let mut c = Client::connect(port);
        (0..n).filter(|_| c.get("/").status == 503).count()
    };
    assert_eq!(post("/runtime_modify?outlier_detection.enforcing_consecutive_5xx=0"), 200);
    assert_eq!(send(20), 10);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!ejected(), "{}", get(admin, "/clusters").text());
    assert_eq!(post("/runtime_modify?outlier_detection.enforcing_consecutive_5xx=100"), 200);
    send(10);
    let start = Instant::now();
    while !ejected() {
        assert!(start.elapsed() < Duration::from_secs(5), "never ejected:\n{}", get(admin, "/clusters").text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = get(admin, "/stats?filter=ejections_enforced_consecutive_5xx").text();
    assert!(stats.contains("cluster.web.outlier_detection.ejections_enforced_consecutive_5xx: 1"), "{stats}");
}
