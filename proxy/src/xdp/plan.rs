//! The plan of an xdp-mode run, worked out before anything is attached: the command
//! line's xdp flags parsed and checked, the queues to serve, each core's ephemeral port
//! range, and what the XDP program steers to sluice given the listeners of the config.
//!
//! Steering: ARP and TCP for `--address`, TCP for the `--intercept` prefixes. When no
//! listener needs every port, a port filter narrows TCP to the listeners' ports plus the
//! ephemeral range (where upstream replies arrive), so TCP to any other port of the
//! address — ssh on a shared host address, say — stays with the kernel. With
//! `--intercept` and a `use_original_dst` listener, intercepted connections may go to
//! any port (the listener plays iptables `REDIRECT`), so every port is taken.
//!
//! Nothing here touches the system; errors name the flag at fault.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sluice_datapath::xsk::BusyPoll;
use sluice_datapath::{AttachMode, BindMode, PortFilter, SteeringConfig};
use sluice_stack::smol::Ipv4Cidr;

use crate::cli::XdpOptions;
use crate::listener::manager::Snapshot;

/// Local ports of the upstream connections of all cores together (Linux's default
/// `ip_local_port_range`), split evenly between the cores.
pub(crate) const EPHEMERAL: (u16, u16) = (32768, 60999);

/// The checked xdp flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XdpPlan {
    pub interface: String,
    pub address: Ipv4Cidr,
    pub gateway: Option<Ipv4Addr>,
    /// `--queues`, when given.
    pub queues: Option<Vec<u32>>,
    /// `--xdp-mode`; `None`: native, falling back to generic when the driver refuses.
    pub attach: Option<AttachMode>,
    pub bind: BindMode,
    /// `--busy-poll`: the AF_XDP sockets' busy-poll settings.
    pub busy_poll: Option<BusyPoll>,
    pub intercept: Vec<Ipv4Cidr>,
}

/// What the XDP program steers, and which listener (by index) takes redirected
/// (intercepted, unmatched) connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SteeringPlan {
    pub config: SteeringConfig,
    pub redirect_listener: Option<usize>,
    /// The address of the redirect listener (its socket is what the stacks redirect to).
    pub redirect_address: Option<SocketAddr>,
    /// Listeners that no steered packet can reach (bound to an address that is neither
    /// `--address` nor inside an `--intercept` prefix), by name.
    pub unreachable: Vec<String>,
}

fn cidr(flag: &str, v: &str) -> Result<Ipv4Cidr, String> {
    let (ip, len) = v.split_once('/').ok_or_else(|| format!("{flag}: `{v}` is not a CIDR like 10.0.0.2/24"))?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| format!("{flag}: `{ip}` is not an IPv4 address"))?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32).ok_or_else(|| format!("{flag}: bad prefix length in `{v}`"))?;
    Ok(Ipv4Cidr::new(ip, len))
}

impl XdpPlan {
    /// Check the xdp flags.
    pub fn from_options(o: &XdpOptions) -> Result<XdpPlan, String> {
        let interface =
            o.interface.clone().ok_or("--datapath xdp needs --interface IF (the NIC or veth to attach to)")?;
        let address = cidr(
            "--address",
            o.address
                .as_deref()
                .ok_or("--datapath xdp needs --address CIDR (sluice's own address, e.g. 10.0.0.2/24)")?,
        )?;
        let ip = address.address();
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
            return Err(format!("--address: {ip} is not a unicast address"));
        }
        let gateway = match &o.gateway {
            None => None,
            Some(g) => {
                let gw: Ipv4Addr = g.parse().map_err(|_| format!("--gateway: `{g}` is not an IPv4 address"))?;
                if !address.contains_addr(&gw) || gw == ip {
                    return Err(format!("--gateway: {gw} is not another address inside {address}"));
                }
                Some(gw)
            }
        };
        if let Some(qs) = &o.queues {
            if qs.is_empty() {
                return Err("--queues: name at least one queue".into());
            }
            let mut sorted = qs.clone();
            sorted.sort_unstable();
            if sorted.windows(2).any(|w| w[0] == w[1]) {
                return Err(format!("--queues: {qs:?} names a queue twice"));
            }
        }
        let attach = match o.xdp_mode.as_deref() {
            None => None,
            Some("skb") => Some(AttachMode::Skb),
            Some("drv") => Some(AttachMode::Drv),
            Some(other) => return Err(format!("--xdp-mode: `{other}` is not skb or drv")),
        };
        if o.zero_copy && attach == Some(AttachMode::Skb) {
            return Err("--zero-copy needs native XDP: use --xdp-mode drv (or leave it out)".into());
        }
        let bind = if o.zero_copy { BindMode::ZeroCopy } else { BindMode::Auto };
        let intercept = o.intercept.iter().map(|p| cidr("--intercept", p)).collect::<Result<Vec<_>, _>>()?;
        let busy_poll = o.busy_poll.then(BusyPoll::default);
        Ok(XdpPlan { interface, address, gateway, queues: o.queues.clone(), attach, bind, busy_poll, intercept })
    }

    /// The queues to serve on an interface with `rx_queues` queues: `--queues`, or the
    /// first `concurrency` (at most all of them).
    pub fn queues(&self, concurrency: usize, rx_queues: u32) -> Vec<u32> {
        match &self.queues {
            Some(qs) => qs.clone(),
            None => (0..rx_queues.max(1).min(u32::try_from(concurrency).unwrap_or(u32::MAX).max(1))).collect(),
        }
    }

    /// What to steer for `snapshot`'s listeners, with `ephemeral` the union of the cores'
    /// ephemeral ranges.
    pub fn steering(&self, snapshot: &Snapshot, ephemeral: (u16, u16)) -> SteeringPlan {
        let ours = self.address.address();
        let mut ports = Vec::new();
        let mut unreachable = Vec::new();
        let mut redirect_listener = None;
        let mut redirect_address = None;
        for (i, l) in snapshot.listeners.iter().enumerate() {
            if !l.bind_to_port {
                continue;
            }
            let reachable = match l.address.ip() {
                IpAddr::V4(ip) => {
                    ip.is_unspecified() || ip == ours || self.intercept.iter().any(|p| p.contains_addr(&ip))
                }
                IpAddr::V6(ip) => ip.is_unspecified() && l.ipv4_compat,
            };
            if !reachable {
                unreachable.push(l.name.clone());
                continue;
            }
            ports.push(l.address.port());
            if l.use_original_dst && redirect_listener.is_none() && !self.intercept.is_empty() {
                redirect_listener = Some(i);
                redirect_address = Some(l.address);
            }
        }
        ports.sort_unstable();
        ports.dedup();
        // A redirect listener takes intercepted connections to any port.
        let tcp_ports =
            redirect_listener.is_none().then_some(PortFilter { ports, ephemeral: ephemeral.0..=ephemeral.1 });
        let config = SteeringConfig { owned: vec![ours], intercept: self.intercept.clone(), tcp_ports };
        SteeringPlan { config, redirect_listener, redirect_address, unreachable }
    }
}

impl SteeringPlan {
    /// What reloading from this steering to `next` (the new config's) takes: the
    /// listening ports to add to the port filter. The XDP program and the stacks' redirect
    /// target stay, so a config that moves, adds or removes the `use_original_dst`
    /// listener that takes intercepted connections (which also decides whether the
    /// program filters ports) needs a restart.
    /// Ports the new config no longer listens on stay steered (connections of the old
    /// config may still use them); sluice refuses new connections to them.
    pub fn reload_to(&self, next: &SteeringPlan) -> Result<Vec<u16>, String> {
        if self.redirect_address != next.redirect_address {
            let at = |a: Option<SocketAddr>| a.map_or_else(|| "none".to_string(), |a| a.to_string());
            return Err(format!(
                "the use_original_dst listener that takes intercepted connections changes ({} -> {}) and xdp mode cannot move it",
                at(self.redirect_address),
                at(next.redirect_address)
            ));
        }
        // The same redirect listener (or none): both steer every port, or both filter.
        Ok(match (&self.config.tcp_ports, &next.config.tcp_ports) {
            (Some(now), Some(then)) => then.ports.iter().copied().filter(|p| !now.ports.contains(p)).collect(),
            _ => Vec::new(),
        })
    }
}

/// Split `range` into `cores` contiguous, equal, non-overlapping ranges.
pub(crate) fn ephemeral_ranges(range: (u16, u16), cores: usize) -> Result<Vec<(u16, u16)>, String> {
    let span = usize::from(range.1 - range.0) + 1;
    let each = span / cores.max(1);
    if each < 64 {
        return Err(format!("{cores} cores leave fewer than 64 ephemeral ports each"));
    }
    Ok((0..cores)
        .map(|i| {
            let first = usize::from(range.0) + i * each;
            (first as u16, (first + each - 1) as u16)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(extra: impl FnOnce(&mut XdpOptions)) -> XdpOptions {
        let mut o = XdpOptions {
            interface: Some("sxm0".into()),
            address: Some("10.99.40.2/24".into()),
            ..XdpOptions::default()
        };
        extra(&mut o);
        o
    }

    #[test]
    fn flags_are_checked_with_their_name() {
        let p = XdpPlan::from_options(&opts(|o| o.gateway = Some("10.99.40.1".into()))).unwrap();
        assert_eq!(p.address, Ipv4Cidr::new(Ipv4Addr::new(10, 99, 40, 2), 24));
        assert_eq!(p.gateway, Some(Ipv4Addr::new(10, 99, 40, 1)));
        assert_eq!((p.attach, p.bind), (None, BindMode::Auto));
        let err = |f: fn(&mut XdpOptions)| XdpPlan::from_options(&opts(f)).unwrap_err();
        assert!(err(|o| o.interface = None).contains("--interface"));
        assert!(err(|o| o.address = None).contains("--address"));
        assert!(err(|o| o.address = Some("10.99.40.2".into())).contains("CIDR"));
        assert!(err(|o| o.address = Some("10.99.40.2/33".into())).contains("prefix length"));
        assert!(err(|o| o.address = Some("0.0.0.0/0".into())).contains("unicast"));
        assert!(err(|o| o.gateway = Some("10.99.41.1".into())).contains("--gateway"));
        assert!(err(|o| o.queues = Some(vec![0, 0])).contains("twice"));
        assert!(err(|o| o.intercept = vec!["10.99.41.0".into()]).contains("--intercept"));
        assert!(err(|o| {
            o.zero_copy = true;
            o.xdp_mode = Some("skb".into());
        })
        .contains("drv"));
        let zc = XdpPlan::from_options(&opts(|o| o.zero_copy = true)).unwrap();
        assert_eq!(zc.bind, BindMode::ZeroCopy);
    }

    #[test]
    fn default_queues_follow_concurrency_within_the_interface() {
        let p = XdpPlan::from_options(&opts(|_| {})).unwrap();
        assert_eq!(p.queues(2, 4), vec![0, 1]);
        assert_eq!(p.queues(8, 2), vec![0, 1]);
        let p = XdpPlan::from_options(&opts(|o| o.queues = Some(vec![3, 1]))).unwrap();
        assert_eq!(p.queues(1, 2), vec![3, 1], "explicit queues are checked when opened");
    }

    #[test]
    fn ranges_split_evenly() {
        let r = ephemeral_ranges(EPHEMERAL, 2).unwrap();
        assert_eq!(r, vec![(32768, 46883), (46884, 60999)]);
        let r = ephemeral_ranges(EPHEMERAL, 3).unwrap();
        assert!(r.windows(2).all(|w| w[0].1 + 1 == w[1].0));
        assert!(ephemeral_ranges((1000, 1100), 4).is_err());
    }

    fn snapshot(yaml: &str) -> Snapshot {
        let loaded = sluice_config::load_str(yaml).unwrap();
        Snapshot::build(&loaded.bootstrap).unwrap()
    }

    const LISTENERS: &str = r#"
static_resources:
  listeners:
  - name: outbound
    address: { socket_address: { address: 0.0.0.0, port_value: 15001 } }
    use_original_dst: true
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: out
          cluster: c
  - name: virtual
    address: { socket_address: { address: 0.0.0.0, port_value: 8080 } }
    bind_to_port: false
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: v
          cluster: c
  - name: loopback
    address: { socket_address: { address: 127.0.0.1, port_value: 9000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: l
          cluster: c
  clusters:
  - name: c
    connect_timeout: 1s
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 10.99.40.1, port_value: 80 } } }
"#;

    #[test]
    fn port_filter_unless_a_redirect_listener_needs_every_port() {
        let snap = snapshot(LISTENERS);
        let plain = XdpPlan::from_options(&opts(|_| {})).unwrap();
        let s = plain.steering(&snap, (32768, 60999));
        assert_eq!(s.config.owned, vec![Ipv4Addr::new(10, 99, 40, 2)]);
        assert_eq!(s.redirect_listener, None, "no --intercept: nothing to redirect");
        let filter = s.config.tcp_ports.expect("port filter");
        assert_eq!(filter.ports, vec![15001], "bind_to_port: false binds nothing");
        assert_eq!(filter.ephemeral, 32768..=60999);
        assert_eq!(s.unreachable, vec!["loopback".to_string()]);

        let icpt = XdpPlan::from_options(&opts(|o| o.intercept = vec!["10.99.49.0/24".into()])).unwrap();
        let s = icpt.steering(&snap, (32768, 60999));
        assert_eq!(s.redirect_listener, Some(0));
        assert_eq!(s.config.tcp_ports, None, "redirected connections may use any port");
        assert_eq!(s.config.intercept, vec![Ipv4Cidr::new(Ipv4Addr::new(10, 99, 49, 0), 24)]);
    }

    #[test]
    fn a_reload_adds_ports_but_keeps_the_program_and_the_redirect_listener() {
        let plain = XdpPlan::from_options(&opts(|_| {})).unwrap();
        let now = plain.steering(&snapshot(LISTENERS), (32768, 60999));
        let more = LISTENERS.replace("port_value: 8080 } }\n    bind_to_port: false", "port_value: 8080 } }");
        let next = plain.steering(&snapshot(&more), (32768, 60999));
        assert_eq!(now.reload_to(&next), Ok(vec![8080]), "the new listener's port joins the filter");
        assert_eq!(next.reload_to(&now), Ok(vec![]), "a port no longer listened on is not dropped");
        assert_eq!(now.reload_to(&now), Ok(vec![]));

        let icpt = XdpPlan::from_options(&opts(|o| o.intercept = vec!["10.99.49.0/24".into()])).unwrap();
        let redirect = icpt.steering(&snapshot(LISTENERS), (32768, 60999));
        assert_eq!(redirect.reload_to(&icpt.steering(&snapshot(&more), (32768, 60999))), Ok(vec![]));
        let err = now.reload_to(&redirect).unwrap_err();
        assert!(err.contains("(none -> 0.0.0.0:15001)"), "{err}");
        let moved = icpt.steering(&snapshot(&LISTENERS.replace("15001", "15006")), (32768, 60999));
        let err = redirect.reload_to(&moved).unwrap_err();
        assert!(err.contains("0.0.0.0:15001 -> 0.0.0.0:15006"), "{err}");
        let gone = icpt.steering(&snapshot(&LISTENERS.replace("    use_original_dst: true\n", "")), (32768, 60999));
        assert!(redirect.reload_to(&gone).unwrap_err().contains("-> none"));
    }
}
