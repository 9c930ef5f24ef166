//! `retry_policy.retry_host_predicate` (`envoy.retry_host_predicates.previous_hosts`)
//! and `host_selection_retry_max_attempts`, end to end on both datapaths: with two
//! hosts and a RANDOM balancer, a retry goes to the host the first try did not use;
//! without the predicate a retry may land on the same host (Envoy's default).

use std::net::SocketAddr;

use sluice_e2e::backend::{Backend, Net};
use sluice_e2e::config::{http_at, ClusterAt};
use sluice_e2e::http_client::Client;
use sluice_e2e::http_origin::HttpOrigin;
use sluice_e2e::on_both_backends;

const PREVIOUS_HOSTS: &str = "retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate } }], host_selection_retry_max_attempts: 40";

/// `rounds` requests answered 503 with one retry each; how many had both tries on
/// the same host.
fn same_host_retries(net: &Net, retry_extra: &str, rounds: usize) -> usize {
    let a = HttpOrigin::serve(net.listen(), "a");
    let b = HttpOrigin::serve(net.listen(), "b");
    let hosts: [SocketAddr; 2] = [a.addr, b.addr];
    let vhosts = format!(
        "- name: all\n  domains: [\"*\"]\n  routes:\n  - match: {{ prefix: \"/\" }}\n    route: {{ cluster: web, retry_policy: {{ retry_on: 5xx, num_retries: 1{retry_extra} }} }}\n"
    );
    let clusters = [ClusterAt { name: "web", endpoints: &hosts, extra: "    lb_policy: RANDOM\n" }];
    let listen = net.proxy_listen_addr();
    let proxy = net.start_proxy(&http_at(listen, &vhosts, &clusters, "", ""), 1);
    let mut same = 0;
    for _ in 0..rounds {
        let (ra, rb) = (a.requests(), b.requests());
        let conn = net.connect(proxy.target(listen)).expect("connect to the proxy");
        let r = Client::over(conn).request("GET", "/status/503", &[], b"");
        assert_eq!(r.status, 503);
        let (da, db) = (a.requests() - ra, b.requests() - rb);
        assert_eq!(da + db, 2, "one try and one retry");
        if da == 2 || db == 2 {
            same += 1;
        }
    }
    assert_eq!(proxy.stats().get("cluster.web.upstream_rq_retry"), Some(rounds as i64));
    same
}

fn previous_hosts_sends_the_retry_to_the_other_host(backend: Backend) {
    let net = Net::new(backend);
    assert_eq!(same_host_retries(&net, &format!(", {PREVIOUS_HOSTS}"), 30), 0);
    // Without the predicate, RANDOM picks the same host for about half the retries
    // (none in 30 has odds of 1 in 2^30).
    assert!(same_host_retries(&net, "", 30) > 0);
}

on_both_backends!(previous_hosts_sends_the_retry_to_the_other_host);
// Over HTTP/2 as well (prior knowledge; the origins stay HTTP/1.1).
sluice_e2e::over_http2!(previous_hosts_sends_the_retry_to_the_other_host);
