//! `sluice route-check`: Envoy's router_check_tool, built in.
//!
//! `sluice route-check -c ROUTES -t TESTS [--details] [--only-show-failures]
//! [-o RESULT.json] [-f PERCENT]`
//!
//! ROUTES is a bare `envoy.config.route.v3.RouteConfiguration` (what sits under an
//! HCM's `route_config:`), or a full bootstrap, whose first HTTP connection manager's
//! route configuration is checked. TESTS follows Envoy's
//! `test/tools/router_check/validation.proto`. Both are YAML or JSON; a test file whose
//! name ends in `.pb_text` is protobuf text format ([`text_format`]). Every test runs
//! through the very route table the proxy runs ([`crate::router`]), including the
//! weighted-cluster pick fed by `random_value`, `runtime_fraction` under the tool's
//! runtime mock ([`runtime`]) and `dynamic_metadata` matchers fed by the test's
//! `dynamic_metadata` input.
//!
//! Exit status 0 only when every test passed (and coverage met `--fail-under`); 1 on a
//! failed test, a bad file, or bad arguments.

pub mod check;
pub mod output;
pub mod runtime;
pub mod schema;
pub mod text_format;

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use sluice_config::decode::{Decode, Decoder};
use sluice_config::listener::NetworkFilterKind;
use sluice_config::node::{self, Value};
use sluice_config::route::RouteConfiguration;

use crate::router::RouteTable;

use self::check::TestResult;
use self::output::Report;
use self::runtime::{tool_route_config, RuntimeMock};
use self::schema::Validation;

const USAGE: &str =
    "usage: sluice route-check -c ROUTES -t TESTS [--details] [--only-show-failures] [-o RESULT.json] [-f PERCENT]
  -c, --config-path PATH    route configuration (RouteConfiguration or bootstrap; YAML or JSON)
  -t, --test-path PATH      tests (Envoy router_check_tool validation format; YAML, JSON, or .pb_text)
  -d, --details             also list passing tests
      --only-show-failures  list failing tests only
  -o, --output-path PATH    write the ValidationResult as JSON
  -f, --fail-under PERCENT  fail when route coverage is below PERCENT
      --disable-deprecation-check  accepted for compatibility (no effect)";

/// Parsed command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    pub config_path: String,
    pub test_path: String,
    pub details: bool,
    pub only_show_failures: bool,
    pub output_path: Option<String>,
    pub fail_under: f64,
}

/// Parse arguments (a leading `route-check` is skipped).
pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut config = None;
    let mut tests = None;
    let mut it = args.iter().skip(usize::from(args.first().map(String::as_str) == Some("route-check")));
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| match inline.clone().or_else(|| it.next().cloned()) {
            Some(v) => Ok(v),
            None => Err(format!("{name} needs a value")),
        };
        match flag {
            "-c" | "--config-path" => config = Some(value(flag)?),
            "-t" | "--test-path" => tests = Some(value(flag)?),
            "-o" | "--output-path" => o.output_path = Some(value(flag)?),
            "-f" | "--fail-under" => {
                let v = value(flag)?;
                o.fail_under = v.parse().map_err(|_| format!("{flag}: `{v}` is not a number"))?;
            }
            "-d" | "--details" => o.details = true,
            "--only-show-failures" => o.only_show_failures = true,
            "--disable-deprecation-check" => {}
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    match (config, tests) {
        (Some(c), Some(t)) => {
            o.config_path = c;
            o.test_path = t;
            Ok(o)
        }
        _ => Err("Both --config-path/c and --test-path/t are mandatory".into()),
    }
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// Load the route configuration: a bare `RouteConfiguration`, or a bootstrap's first
/// HTTP connection manager's `route_config`. Returns the table and the warnings.
pub fn load_routes(path: &str) -> Result<(RouteTable, Vec<String>), String> {
    if text_format::is_text_format(path) {
        return Err(format!(
            "{path}: route configurations in protobuf text format are not supported (use YAML or JSON; test files may be .pb_text)"
        ));
    }
    let text = read(path)?;
    let root = node::parse(&text).map_err(|e| format!("{path}: {e}"))?;
    let is_bootstrap = matches!(&root.value, Value::Map(m) if m.iter().any(|(k, _)| k.name == "static_resources" || k.name == "staticResources"));
    if is_bootstrap {
        let loaded = sluice_config::load_str(&text).map_err(|e| format!("{path}:\n{e}"))?;
        let warnings = loaded.warnings.iter().map(ToString::to_string).collect();
        let hcm = loaded
            .bootstrap
            .listeners
            .iter()
            .flat_map(|l| l.filter_chains.iter().chain(l.default_filter_chain.iter()))
            .flat_map(|c| c.filters.iter())
            .find_map(|f| match &f.kind {
                NetworkFilterKind::HttpConnectionManager(h) => Some(h),
                _ => None,
            })
            .ok_or_else(|| format!("{path}: the bootstrap has no HTTP connection manager"))?;
        return Ok((RouteTable::new(&tool_route_config(hcm.route_config.clone())), warnings));
    }
    let mut d = Decoder::new();
    let rc = RouteConfiguration::decode(&mut d, &root, "");
    if !d.errors.is_empty() {
        return Err(format!("{path}:\n{}", sluice_config::ConfigErrors(d.errors)));
    }
    let rc = rc.ok_or_else(|| format!("{path}: not a route configuration"))?;
    Ok((RouteTable::new(&tool_route_config(rc)), d.warnings.iter().map(ToString::to_string).collect()))
}

/// Load the test file.
pub fn load_tests(path: &str) -> Result<(Validation, Vec<String>), String> {
    let mut text = read(path)?;
    if text_format::is_text_format(path) {
        text = text_format::to_json(&text).map_err(|e| format!("{path}: {e}"))?;
    }
    let root = node::parse(&text).map_err(|e| format!("{path}: {e}"))?;
    let mut d = Decoder::new();
    let v = Validation::decode(&mut d, &root, "");
    if !d.errors.is_empty() {
        return Err(format!("{path}:\n{}", sluice_config::ConfigErrors(d.errors)));
    }
    let v = v.ok_or_else(|| format!("{path}: not a validation file"))?;
    Ok((v, d.warnings.iter().map(ToString::to_string).collect()))
}

/// Route coverage in percent: routes on which at least one field was checked
/// successfully, over all routes (Envoy's default coverage).
pub fn coverage(table: &RouteTable, results: &[TestResult]) -> f64 {
    let total: usize = table.config().virtual_hosts.iter().map(|vh| vh.routes.len()).sum();
    if total == 0 {
        return 100.0;
    }
    let mut covered: Vec<(usize, usize)> = results.iter().filter_map(|r| r.covered).collect();
    covered.sort_unstable();
    covered.dedup();
    covered.len() as f64 * 100.0 / total as f64
}

/// Run with explicit output streams; returns the exit status.
pub fn run(args: &[String], now: SystemTime, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match run_inner(args, now, out, err) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            1
        }
    }
}

fn run_inner(args: &[String], now: SystemTime, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        let _ = writeln!(out, "{USAGE}");
        return Ok(0);
    }
    let opts = parse_args(args).map_err(|e| format!("{e}\n{USAGE}"))?;
    let (table, route_warnings) = load_routes(&opts.config_path)?;
    let (validation, test_warnings) = load_tests(&opts.test_path)?;
    for w in route_warnings.iter().chain(&test_warnings) {
        let _ = writeln!(err, "warning: {w}");
    }
    let mock = RuntimeMock::new(table.config());
    let results: Vec<TestResult> = validation.tests.iter().map(|t| check::run(&table, &mock, t, now)).collect();
    let report = Report { details: opts.details, only_show_failures: opts.only_show_failures };
    output::print_tests(&results, report, out, err).map_err(|e| e.to_string())?;
    if let Some(path) = &opts.output_path {
        let json = output::validation_result_json(&results, opts.only_show_failures);
        std::fs::write(Path::new(path), json).map_err(|e| format!("Failed to write output to file {path}: {e}"))?;
    }
    let _ = writeln!(out, "{}", output::summary(&results));
    if results.iter().any(|r| !r.passed) {
        return Ok(1);
    }
    let cov = coverage(&table, &results);
    let _ = writeln!(out, "Current route coverage: {}%", output::percent(cov));
    if opts.fail_under != 0.0 && cov < opts.fail_under {
        let _ = writeln!(err, "Failed to meet coverage requirement: {}%", output::percent(opts.fail_under));
        return Ok(1);
    }
    Ok(0)
}

/// The `sluice route-check` entry point: arguments after the program name (a leading
/// `route-check` is skipped); prints to stdout/stderr; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = run(args, SystemTime::now(), &mut stdout.lock(), &mut stderr.lock());
    let _ = std::io::stdout().flush();
    code
}
