//! Configuration reload on SIGHUP: switching a route's cluster under load loses no
//! request; a bad config is refused while the old one keeps serving; an unchanged
//! listener keeps its socket and its open connections; an unchanged cluster keeps its
//! pooled upstream connections.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_e2e::config::{forward_all, http, Cluster};
use sluice_e2e::free_port;
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::proxy::Proxy;

fn config(port: u16, cluster: &str, a: u16, b: u16) -> String {
    let clusters = [Cluster { name: "a", ports: &[a], extra: "" }, Cluster { name: "b", ports: &[b], extra: "" }];
    http(port, &forward_all(cluster), &clusters, "", "")
}

#[test]
fn switching_a_routes_cluster_under_load_loses_no_request() {
    let a = HttpOrigin::start("a");
    let b = HttpOrigin::start("b");
    let port = free_port();
    let mut p = Proxy::start(&config(port, "a", a.port(), b.port()), &["--concurrency", "2"]);
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    // A bounded load loop: 8 keep-alive clients, at most 20 000 requests each, at most 10 s.
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (stop, errors, served) = (Arc::clone(&stop), Arc::clone(&errors), Arc::clone(&served));
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut c = Client::connect(port);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && n < 20_000 && Instant::now() < deadline {
                    n += 1;
                    let closed = match c.stream.set_read_timeout(Some(Duration::from_secs(5))).ok().and_then(|_| {
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.get(&format!("/c{i}/{n}")))).ok()
                    }) {
                        Some(r) if r.status == 200 => {
                            served.fetch_add(1, Ordering::Relaxed);
                            r.header("connection") == Some("close")
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            true
                        }
                    };
                    if closed {
                        c = Client::connect(port);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(a.requests() > 0);
    std::fs::write(&p.config_path, config(port, "b", a.port(), b.port())).unwrap();
    p.signal("HUP");
    p.wait_for_log("configuration reloaded", Duration::from_secs(10));
    // Let the load run on the new config for a while.
    let before = b.requests();
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.requests() < before + 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(errors.load(Ordering::Relaxed), 0, "requests failed across the reload");
    assert!(b.requests() >= 200, "the new route's cluster got {} requests", b.requests());
    // After the reload every new request goes to b.
    let a_now = a.requests();
    for _ in 0..20 {
        assert_eq!(Client::connect(port).get("/after").header("x-origin"), Some("b"));
    }
    assert_eq!(a.requests(), a_now);
    assert!(served.load(Ordering::Relaxed) > 200);
}

#[test]
fn a_bad_config_is_refused_and_the_old_one_keeps_serving() {
    let a = HttpOrigin::start("a");
    let b = HttpOrigin::start("b");
    let port = free_port();
    let mut p = Proxy::start(&config(port, "a", a.port(), b.port()), &["--concurrency", "1"]);
    let mut c = Client::connect(port);
    assert_eq!(c.get("/x").header("x-origin"), Some("a"));
    let bad = config(port, "b", a.port(), b.port()).replace("connect_timeout", "conect_timeout");
    std::fs::write(&p.config_path, bad).unwrap();
    p.signal("HUP");
    p.wait_for_log("configuration reload rejected", Duration::from_secs(10));
    p.wait_for_log("conect_timeout", Duration::from_secs(2));
    assert_eq!(c.get("/y").header("x-origin"), Some("a"), "the open connection still works");
    assert_eq!(Client::connect(port).get("/z").header("x-origin"), Some("a"), "new connections: old config");
}

#[test]
fn an_unchanged_listener_keeps_its_socket_and_connections() {
    let a = HttpOrigin::start("a");
    let b = HttpOrigin::start("b");
    let (port, port2) = (free_port(), free_port());
    let mut p = Proxy::start(&config(port, "a", a.port(), b.port()), &["--concurrency", "1"]);
    let mut c = Client::connect(port);
    assert_eq!(c.get("/1").status, 200);
    // Add a second listener; the first one and the clusters are unchanged.
    let second = format!(
        "  - name: second\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port2} }} }}\n    filter_chains:\n    - filters:\n      - name: tcp\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n          stat_prefix: second\n          cluster: b\n  clusters:\n"
    );
    let with_second = config(port, "a", a.port(), b.port()).replacen("  clusters:\n", &second, 1);
    std::fs::write(&p.config_path, with_second).unwrap();
    p.signal("HUP");
    p.wait_for_log("configuration reloaded", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(200));
    let r = c.get("/2");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), None, "an unchanged listener's connection is not drained");
    assert_eq!(c.get("/3").status, 200);
    let seen = a.seen();
    assert_eq!(seen[0].connection, seen[seen.len() - 1].connection, "the same upstream connection kept serving");
    // The new listener serves too (tcp_proxy to b).
    let r = Client::connect(port2).get("/via-second");
    assert_eq!(r.header("x-origin"), Some("b"));
}

/// One request on a fresh client connection, closed afterwards (and given time to go,
/// so that the worker's old config generation has no connection left).
fn one_request(port: u16, path: &str) -> Option<String> {
    let r = Client::connect(port).get(path);
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_millis(200));
    r.header("x-origin").map(str::to_string)
}

#[test]
fn an_unchanged_cluster_keeps_its_pooled_upstream_connections() {
    let a = HttpOrigin::start("a");
    let b = HttpOrigin::start("b");
    let port = free_port();
    let mut p = Proxy::start(&config(port, "a", a.port(), b.port()), &["--concurrency", "1"]);
    assert_eq!(one_request(port, "/before").as_deref(), Some("a"));
    // SIGHUP with the file unchanged.
    p.signal("HUP");
    p.wait_for_log("configuration reloaded", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(one_request(port, "/after-same-file").as_deref(), Some("a"));
    // A change to cluster b only: a's pooled connection stays.
    let changed = config(port, "a", a.port(), b.port()).replacen(
        "  - name: b\n",
        "  - name: b\n    per_connection_buffer_limit_bytes: 65536\n",
        1,
    );
    assert_ne!(changed, config(port, "a", a.port(), b.port()));
    std::fs::write(&p.config_path, changed).unwrap();
    p.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.log().matches("configuration reloaded").count() < 2 {
        assert!(Instant::now() < deadline, "no second reload in the log:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(one_request(port, "/after-b-changed").as_deref(), Some("a"));
    let seen = a.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.connection == 0), "{seen:?}");
    assert_eq!(a.connections(), 1, "the origin saw one upstream connection across both reloads");
}
