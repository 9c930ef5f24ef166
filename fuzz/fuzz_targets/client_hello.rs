//! Fuzz the tls_inspector: any bytes, fed whole or as a growing prefix split at
//! fuzzer-chosen points, must never panic, and both ways must reach the same verdict.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::listener::filters::tls_inspector::{ClientHello, Inspect, TlsInspector, TlsInspectorConfig};

fuzz_target!(|input: &[u8]| {
    // The first byte picks a cap and a segment size; the rest is the connection's bytes.
    let Some((&knobs, data)) = input.split_first() else { return };
    let max = if knobs & 0x80 != 0 { 64 * 1024 } else { 64 + u32::from(knobs) * 97 };
    let config = TlsInspectorConfig::new(Some(max), Some(32), knobs & 0x40 != 0).expect("cap within bounds");

    let mut whole = TlsInspector::new(config);
    let once = whole.inspect(data);

    let mut pieces = TlsInspector::new(config);
    let step = usize::from(knobs & 0x3f) + 1;
    let mut end = 0;
    let mut verdict = Inspect::NeedMore;
    while end < data.len() {
        end = (end + step).min(data.len());
        verdict = pieces.inspect(&data[..end]);
        if verdict != Inspect::NeedMore {
            break;
        }
    }
    assert_eq!(once, verdict, "one-shot and incremental verdicts differ");

    if let Inspect::Tls(hello) = once {
        if let Some(alpn) = hello.alpn {
            assert!(alpn.iter().all(|p| !p.is_empty()));
        }
        if let Some(name) = hello.server_name {
            assert!(!name.is_empty() && name.len() <= 255);
        }
    }

    // The raw view on arbitrary bytes: checked, then every accessor.
    if let Ok(view) = ClientHello::new_checked(data) {
        let _ = view.legacy_version();
        let _ = view.session_id().len() + view.compression_methods().len();
        let _ = view.cipher_suites().count();
        for (ty, body) in view.extensions() {
            let _ = (ty, body.len());
        }
    }
});
