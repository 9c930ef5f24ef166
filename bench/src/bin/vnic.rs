//! `vnic`: the virtual-NIC benchmark (see `sluice_bench::vnic`), for bench/vnic.sh.
//!
//! ```text
//! vnic [--connections N] [--warmup S] [--seconds S] [--no-checksums] [--busy-poll] [--cpus P,L]
//! ```
//!
//! Prints one line: `RESULT requests=N errors=N resets=N seconds=S proxy_cpu_ns=N
//! proxy_spin_ns=N proxy_delay_ns=N load_cpu_ns=N rps=R per_cpu_s=R per_busy_cpu_s=R`.
//! Exits non-zero when a response was an error or the proxy served nothing.

use std::process::ExitCode;
use std::time::Duration;

use sluice_bench::vnic::{run, Options};

fn parse(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        connections: 64,
        warmup: Duration::from_secs(2),
        duration: Duration::from_secs(10),
        checksums: true,
        cpus: None,
        busy_poll: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<f64, String> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            v.parse::<f64>().ok().filter(|x| x.is_finite() && *x > 0.0).ok_or(format!("{name}: bad value '{v}'"))
        };
        match a.as_str() {
            "--connections" => opts.connections = value(a)? as usize,
            "--warmup" => opts.warmup = Duration::from_secs_f64(value(a)?),
            "--seconds" => opts.duration = Duration::from_secs_f64(value(a)?),
            "--no-checksums" => opts.checksums = false,
            "--busy-poll" => opts.busy_poll = true,
            "--cpus" => {
                let v = it.next().ok_or("--cpus needs P,L")?;
                let pair = v.split_once(',').and_then(|(p, l)| Some((p.parse().ok()?, l.parse().ok()?)));
                opts.cpus = Some(pair.ok_or(format!("--cpus: bad value '{v}' (want P,L)"))?);
            }
            _ => return Err(format!("unknown argument '{a}'")),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "vnic: {e}\nusage: vnic [--connections N] [--warmup S] [--seconds S] [--no-checksums] [--busy-poll] [--cpus P,L]"
            );
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(r) => {
            println!(
                "RESULT requests={} errors={} resets={} seconds={:.3} proxy_cpu_ns={} proxy_spin_ns={} proxy_delay_ns={} \
                 load_cpu_ns={} rps={:.0} per_cpu_s={:.0} per_busy_cpu_s={:.0}",
                r.requests,
                r.errors,
                r.resets,
                r.seconds,
                r.proxy_cpu_ns,
                r.proxy_spin_ns,
                r.proxy_delay_ns,
                r.load_cpu_ns,
                r.requests_per_s(),
                r.per_cpu_s(),
                r.per_busy_cpu_s()
            );
            if r.errors > 0 {
                eprintln!("vnic: {} error responses", r.errors);
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vnic: {e}");
            ExitCode::FAILURE
        }
    }
}
