//! The command line, in Envoy's style where Envoy has a flag.
//!
//! `sluice -c FILE [--concurrency N] [--mode serve|validate] [--log-level L]
//! [--drain-time-s S] [--drain-strategy gradual|immediate] [--datapath kernel|xdp --interface IF --address CIDR ...]`,
//! and the `route-check` subcommand.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::worker::drain::DrainStrategy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Validate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatapathKind {
    Kernel,
    Xdp,
}

/// Options of xdp mode (CLI flags, so that Envoy configs stay Envoy configs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XdpOptions {
    pub interface: Option<String>,
    /// Our address and prefix, e.g. `10.99.1.2/24`.
    pub address: Option<String>,
    pub gateway: Option<String>,
    pub queues: Option<Vec<u32>>,
    /// `skb` or `drv`.
    pub xdp_mode: Option<String>,
    pub zero_copy: bool,
    /// `--busy-poll`: preferred busy polling of the AF_XDP sockets; each worker spins on
    /// its queue instead of sleeping (for cores dedicated to sluice).
    pub busy_poll: bool,
    /// Prefixes routed to sluice that are not its own address (`--intercept`), e.g.
    /// `10.0.9.0/24`: their TCP is steered to sluice and served by the listener of the
    /// original destination (or the `use_original_dst` listener).
    pub intercept: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config_path: PathBuf,
    pub concurrency: usize,
    pub mode: Mode,
    pub datapath: DatapathKind,
    pub log_level: String,
    pub drain_time: Duration,
    pub drain_strategy: DrainStrategy,
    pub xdp: XdpOptions,
    /// `--reject-unknown-dynamic-fields`: refuse a dynamic resource (xDS file or ADS
    /// response) with a field that is not part of its message, instead of warning and
    /// counting it in `server.dynamic_unknown_fields` (Envoy's flag and default).
    pub reject_unknown_dynamic_fields: bool,
}

pub const USAGE: &str = "\
Usage: sluice -c FILE [OPTIONS]
       sluice route-check -c ROUTES -t TESTS [--details] [--only-show-failures] [-o RESULT.json]

An Envoy-compatible L4/L7 proxy. FILE is an Envoy v3 bootstrap (YAML or JSON).

Options:
  -c, --config-path FILE     Envoy v3 bootstrap config (required)
      --concurrency N        worker threads (default: number of cores)
      --mode serve|validate  validate: parse and check the config, print OK or the
                             errors, bind nothing (default: serve)
  -l, --log-level LEVEL      trace|debug|info|warning|error|critical|off (default: info)
      --drain-time-s S       on SIGTERM/SIGINT, how long open connections may take to
                             finish before they are closed (default: 600)
      --reject-unknown-dynamic-fields
                             refuse xDS resources (files, ADS) with unknown fields
                             (default: warn, count server.dynamic_unknown_fields)
      --drain-strategy gradual|immediate
                             gradual: connections are asked to close (connection:
                             close on their next response) spread over the drain
                             time; immediate: all at once (default: gradual)
      --datapath kernel|xdp  kernel sockets (default) or AF_XDP with a userspace stack
      --interface IF         xdp: the network interface to attach to
      --address CIDR         xdp: sluice's own address and prefix, e.g. 10.0.0.2/24
      --gateway IP           xdp: default gateway
      --queues LIST          xdp: NIC queues to serve, e.g. 0,1 (default: 0..concurrency)
      --xdp-mode skb|drv     xdp: attach mode (default: drv, falling back to skb)
      --zero-copy            xdp: bind AF_XDP sockets in zero-copy mode
      --busy-poll            xdp: preferred busy polling (SO_PREFER_BUSY_POLL,
                             SO_BUSY_POLL 20 us, SO_BUSY_POLL_BUDGET 64); each worker
                             spins on its queue instead of sleeping: for dedicated
                             cores (see the README for napi_defer_hard_irqs and
                             gro_flush_timeout)
      --intercept CIDR[,CIDR]
                             xdp: also take TCP to these prefixes (routed to sluice,
                             not its own address); connections keep their original
                             destination, for use_original_dst listeners
  -h, --help                 this text
      --version              print the version, git commit and build profile
";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Box<Options>),
    RouteCheck(Vec<String>),
    Help,
    Version,
}

/// Parse arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Command, String> {
    if args.first().map(String::as_str) == Some("route-check") {
        return Ok(Command::RouteCheck(args[1..].to_vec()));
    }
    let mut config_path = None;
    let mut concurrency = None;
    let mut mode = Mode::Serve;
    let mut datapath = DatapathKind::Kernel;
    let mut log_level = "info".to_string();
    let mut drain_time = Duration::from_secs(600);
    let mut drain_strategy = DrainStrategy::default();
    let mut xdp = XdpOptions::default();
    let mut reject_unknown_dynamic_fields = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().cloned().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--version" => return Ok(Command::Version),
            "-c" | "--config-path" => config_path = Some(PathBuf::from(value(flag)?)),
            "--concurrency" => {
                let v = value(flag)?;
                let n: usize = v.parse().map_err(|_| format!("--concurrency: `{v}` is not a number"))?;
                if n == 0 {
                    return Err("--concurrency must be at least 1".into());
                }
                concurrency = Some(n);
            }
            "--mode" => {
                mode = match value(flag)?.as_str() {
                    "serve" => Mode::Serve,
                    "validate" => Mode::Validate,
                    other => return Err(format!("--mode: `{other}` is not serve or validate")),
                }
            }
            "-l" | "--log-level" => {
                let v = value(flag)?;
                if !matches!(v.as_str(), "trace" | "debug" | "info" | "warning" | "warn" | "error" | "critical" | "off")
                {
                    return Err(format!("--log-level: unknown level `{v}`"));
                }
                log_level = v;
            }
            "--drain-time-s" => {
                let v = value(flag)?;
                let s: u64 = v.parse().map_err(|_| format!("--drain-time-s: `{v}` is not a number of seconds"))?;
                drain_time = Duration::from_secs(s);
            }
            "--drain-strategy" => {
                let v = value(flag)?;
                drain_strategy = DrainStrategy::parse(&v)
                    .ok_or_else(|| format!("--drain-strategy: `{v}` is not gradual or immediate"))?;
            }
            "--datapath" => {
                datapath = match value(flag)?.as_str() {
                    "kernel" => DatapathKind::Kernel,
                    "xdp" => DatapathKind::Xdp,
                    other => return Err(format!("--datapath: `{other}` is not kernel or xdp")),
                }
            }
            "--interface" => xdp.interface = Some(value(flag)?),
            "--address" => xdp.address = Some(value(flag)?),
            "--gateway" => xdp.gateway = Some(value(flag)?),
            "--queues" => {
                let v = value(flag)?;
                let qs: Result<Vec<u32>, _> = v.split(',').map(|q| q.trim().parse::<u32>()).collect();
                xdp.queues = Some(qs.map_err(|_| format!("--queues: `{v}` is not a list like 0,1"))?);
            }
            "--xdp-mode" => {
                let v = value(flag)?;
                if v != "skb" && v != "drv" {
                    return Err(format!("--xdp-mode: `{v}` is not skb or drv"));
                }
                xdp.xdp_mode = Some(v);
            }
            "--zero-copy" => xdp.zero_copy = true,
            "--reject-unknown-dynamic-fields" => reject_unknown_dynamic_fields = true,
            "--busy-poll" => xdp.busy_poll = true,
            "--intercept" => {
                let v = value(flag)?;
                xdp.intercept.extend(v.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()));
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let config_path = config_path.ok_or("a config file is required: -c FILE")?;
    if datapath == DatapathKind::Kernel
        && (xdp.interface.is_some() || xdp.address.is_some() || !xdp.intercept.is_empty() || xdp.busy_poll)
    {
        return Err("--interface/--address/--intercept/--busy-poll apply to --datapath xdp only".into());
    }
    let concurrency = concurrency.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    Ok(Command::Run(Box::new(Options {
        config_path,
        concurrency,
        mode,
        datapath,
        log_level,
        drain_time,
        drain_strategy,
        xdp,
        reject_unknown_dynamic_fields,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn envoy_style_flags() {
        let Command::Run(o) = parse(&args("-c x.yaml --concurrency 3 --mode validate -l debug")).unwrap() else {
            panic!()
        };
        assert_eq!(o.config_path, PathBuf::from("x.yaml"));
        assert_eq!(o.concurrency, 3);
        assert_eq!(o.mode, Mode::Validate);
        assert_eq!(o.log_level, "debug");
        assert_eq!(o.datapath, DatapathKind::Kernel);
        let Command::Run(o) = parse(&args("--config-path=y.json --drain-time-s 5")).unwrap() else { panic!() };
        assert_eq!(o.drain_time, Duration::from_secs(5));
        assert_eq!(o.drain_strategy, DrainStrategy::Gradual, "Envoy's default");
        assert_eq!(o.mode, Mode::Serve);
        let Command::Run(o) = parse(&args("-c x --drain-strategy immediate")).unwrap() else { panic!() };
        assert_eq!(o.drain_strategy, DrainStrategy::Immediate);
    }

    #[test]
    fn xdp_flags() {
        let a = args(
            "-c x --datapath xdp --interface eth1 --address 10.0.0.2/24 --gateway 10.0.0.1 \
             --queues 0,1 --xdp-mode drv --zero-copy --busy-poll --intercept 10.0.9.0/24,10.0.10.0/24 \
             --intercept=10.1.0.0/16",
        );
        let Command::Run(o) = parse(&a).unwrap() else { panic!() };
        assert_eq!(o.datapath, DatapathKind::Xdp);
        assert_eq!(o.xdp.interface.as_deref(), Some("eth1"));
        assert_eq!(o.xdp.queues, Some(vec![0, 1]));
        assert!(o.xdp.zero_copy);
        assert!(o.xdp.busy_poll);
        assert_eq!(o.xdp.intercept, ["10.0.9.0/24", "10.0.10.0/24", "10.1.0.0/16"]);
    }

    #[test]
    fn errors_are_clear() {
        assert!(parse(&args("--concurrency 2")).unwrap_err().contains("-c FILE"));
        assert!(parse(&args("-c x --mode run")).unwrap_err().contains("serve or validate"));
        assert!(parse(&args("-c x --bogus")).unwrap_err().contains("--bogus"));
        assert!(parse(&args("-c x --drain-strategy fast")).unwrap_err().contains("gradual or immediate"));
        assert!(parse(&args("-c x --concurrency 0")).is_err());
        assert_eq!(parse(&args("--help")).unwrap(), Command::Help);
        assert!(parse(&args("-c x --intercept 10.0.9.0/24")).unwrap_err().contains("xdp only"));
        assert!(parse(&args("-c x --busy-poll")).unwrap_err().contains("xdp only"));
        assert!(
            matches!(parse(&args("route-check -c r.yaml -t t.yaml")).unwrap(), Command::RouteCheck(a) if a.len() == 4)
        );
    }
}
