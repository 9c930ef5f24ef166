//! The `sluice` binary: see `sluice --help`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(sluice::server::main_with_args(&args));
}
