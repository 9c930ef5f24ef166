//! The deterministic counterparts of the HTTP/2 fuzz targets: their seeds, then a few
//! thousand pseudo-random mutations of them with a fixed seed, through the same
//! `run` functions the targets call (`fuzz/fuzz_targets/h2_*.rs`).

use super::mutate::{mutant, Rng};
use super::{h2_downstream, h2_upstream};

fn seeds(named: Vec<(&'static str, Vec<u8>)>) -> Vec<Vec<u8>> {
    named.into_iter().map(|(_, v)| v).collect()
}

#[test]
fn h2_downstream_seeds_hold_the_properties() {
    for (name, input) in h2_downstream::seeds() {
        eprintln!("seed {name}");
        h2_downstream::run(&input);
    }
}

#[test]
fn h2_downstream_mutations_hold_the_properties() {
    let seeds = seeds(h2_downstream::seeds());
    let mut rng = Rng::new(0x0005_eed5);
    for i in 0..3000 {
        let input = mutant(&mut rng, &seeds);
        let outcome = std::panic::catch_unwind(|| h2_downstream::run(&input));
        assert!(outcome.is_ok(), "mutation {i} failed: input {input:?}");
    }
}

#[test]
fn h2_upstream_seeds_hold_the_properties() {
    for (name, input) in h2_upstream::seeds() {
        eprintln!("seed {name}");
        h2_upstream::run(&input);
    }
}

#[test]
fn h2_upstream_mutations_hold_the_properties() {
    let seeds = seeds(h2_upstream::seeds());
    let mut rng = Rng::new(0x0005_eed6);
    for i in 0..3000 {
        let input = mutant(&mut rng, &seeds);
        let outcome = std::panic::catch_unwind(|| h2_upstream::run(&input));
        assert!(outcome.is_ok(), "mutation {i} failed: input {input:?}");
    }
}

/// Write the seeds into `fuzz/corpus-seeds/<target>/` (run by hand after a change:
/// `cargo test -p sluice --lib fuzzing::tests::write_seed_corpus -- --ignored`).
#[test]
#[ignore]
fn write_seed_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus-seeds");
    for (target, named) in [("h2_downstream", h2_downstream::seeds()), ("h2_upstream_response", h2_upstream::seeds())] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in named {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

/// Found by `h2_downstream` (a client that sends no FIN and never answers a PING):
/// after the idle timeout's first GOAWAY the connection waited for the PING's ACK for
/// ever. As Envoy's drain timer does, the final GOAWAY goes out `drain_timeout` (5 s
/// by default) later and the connection closes.
#[test]
fn an_unacknowledged_goaway_ping_ends_after_the_drain_timeout() {
    use std::time::Duration;

    use super::wire::{self, Block, PREFACE};
    use super::{listener, Harness};

    let mut h = Harness::new(&h2_downstream::compiled_for_tests());
    let c = h.net.connect(listener(80)).unwrap();
    let mut input = PREFACE.to_vec();
    input.extend(wire::settings(&[]));
    input.extend(wire::headers(1, &Block::request(false, b"/direct"), true));
    h.net.write(c, &input);
    let mut got = Vec::new();
    let run = |h: &mut Harness, got: &mut Vec<u8>| {
        h.run(&mut |_| {});
        h.net.read(c, got, usize::MAX);
    };
    run(&mut h, &mut got);
    let goaways = |got: &[u8]| frames(got).filter(|&(kind, _)| kind == wire::GOAWAY).count();
    assert_eq!(goaways(&got), 0);
    // idle_timeout (10 s): the first GOAWAY and its PING.
    h.advance(Duration::from_secs(10));
    run(&mut h, &mut got);
    assert_eq!(goaways(&got), 1, "the idle timeout starts the GOAWAY sequence");
    assert!(frames(&got).any(|(kind, flags)| kind == wire::PING && flags & wire::ACK == 0));
    h.advance(Duration::from_secs(4));
    run(&mut h, &mut got);
    assert!(!h.net.worker_done(c), "the client has drain_timeout to finish");
    h.advance(Duration::from_millis(1500));
    run(&mut h, &mut got);
    run(&mut h, &mut got);
    assert_eq!(goaways(&got), 2, "the final GOAWAY without the PING's ACK");
    assert!(h.net.worker_done(c), "then the connection closes");
    assert_eq!(h.connections().0, 0);
}

/// The (type, flags) of each frame the server sent, after its preface-less start.
fn frames(mut bytes: &[u8]) -> impl Iterator<Item = (u8, u8)> + '_ {
    std::iter::from_fn(move || {
        if bytes.len() < 9 {
            return None;
        }
        let len = (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2]);
        let f = (bytes[3], bytes[4]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
        Some(f)
    })
}
