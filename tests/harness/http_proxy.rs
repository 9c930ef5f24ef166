//! An HTTP proxy on a test's network, for HTTP cases that run on both backends.
//!
//! [`HttpProxy::start`] builds the bootstrap of one HTTP listener (see
//! [`crate::config::http_at`]) at an address of the [`Net`], runs it in-process with the
//! given number of workers, and hands out client connections to it
//! ([`HttpProxy::client`]) and its stats ([`HttpProxy::counter`]). The proxy borrows the
//! `Net`, so it cannot outlive the network its workers run on.

use std::net::SocketAddr;

use crate::backend::Net;
use crate::config::{forward_all, http_at, ClusterAt};
use crate::http_client::Client;
use crate::http_origin::HttpOrigin;
use crate::inproc::InProcessProxy;

/// A running in-process HTTP proxy (see the module docs).
pub struct HttpProxy<'n> {
    net: &'n Net,
    proxy: InProcessProxy,
    listen: SocketAddr,
}

impl<'n> HttpProxy<'n> {
    /// One HTTP listener routing by `virtual_hosts` to `clusters`, with `hcm_extra`
    /// HttpConnectionManager fields and `filters` before the router (as [`http_at`]).
    pub fn start(
        net: &'n Net,
        virtual_hosts: &str,
        clusters: &[ClusterAt<'_>],
        hcm_extra: &str,
        filters: &str,
        workers: usize,
    ) -> HttpProxy<'n> {
        let listen = net.proxy_listen_addr();
        let proxy = net.start_proxy(&http_at(listen, virtual_hosts, clusters, hcm_extra, filters), workers);
        HttpProxy { net, proxy, listen }
    }

    /// A proxy forwarding every request to `origin` (cluster `web`).
    pub fn to(net: &'n Net, origin: &HttpOrigin, hcm_extra: &str, workers: usize) -> HttpProxy<'n> {
        let endpoints = [origin.addr];
        let clusters = [ClusterAt { name: "web", endpoints: &endpoints, extra: "" }];
        HttpProxy::start(net, &forward_all("web"), &clusters, hcm_extra, "", workers)
    }

    /// A new client connection to the listener (spread over the workers on smol).
    pub fn client(&self) -> Client {
        Client::over(self.net.connect(self.proxy.target(self.listen)).expect("connect to the proxy"))
    }

    /// The value of stat `name` summed over the workers; panics if there is none.
    pub fn counter(&self, name: &str) -> i64 {
        self.proxy.stats().get(name).unwrap_or_else(|| panic!("no stat named {name}"))
    }

    pub fn proxy(&self) -> &InProcessProxy {
        &self.proxy
    }

    /// The listener's address as configured (connect to `proxy().target(..)` of it).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }
}
