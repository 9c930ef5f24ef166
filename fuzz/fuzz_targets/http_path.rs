//! Fuzz the connection manager's path and host normalisation (Envoy's PathUtil and
//! `maybeNormalizePath` / `maybeNormalizeHost`).
//!
//! Input: one control byte choosing the options (normalize_path, merge_slashes, the
//! escaped-slashes action, trailing-dot and port stripping), then the bytes of a path
//! (also used as the host). Every path function and the whole step must hold their
//! contracts on any input: no panic; a canonical path starts with `/`, has no dot
//! segment and no raw control byte, and keeps the query; no `//` after merge_slashes;
//! no `%2F`/`%5C` left after unescaping; a redirect's location is the new path; a
//! stripped host is a prefix of the original. Any panic is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::http::conn_manager::normalize::{
    normalize_host, normalize_path, EscapedSlashes, PathAction, PathNormalization,
};
use sluice::http::path;
use sluice::http::RequestHead;
use sluice_config::hcm::StripPortMode;

fn split_query(p: &str) -> (&str, &str) {
    p.split_at(p.find('?').unwrap_or(p.len()))
}

fuzz_target!(|data: &[u8]| {
    let [ctl, bytes @ ..] = data else { return };
    let Ok(input) = std::str::from_utf8(bytes) else {
        return;
    };

    if let Some(out) = path::canonical_path(input) {
        let (p, q) = split_query(&out);
        assert!(p.starts_with('/'));
        assert!(p.bytes().all(|b| (b'!'..=b'~').contains(&b)));
        assert!(!p.split('/').any(|s| s == "." || s == ".."));
        assert_eq!(q, split_query(input).1);
    }
    if let Some(out) = path::merge_slashes(input) {
        let p = split_query(&out).0;
        assert!(!p.contains("//") || p == "//");
    }
    if let Some(out) = path::unescape_slashes(input) {
        let p = split_query(&out).0.to_ascii_lowercase();
        assert!(!p.contains("%2f") && !p.contains("%5c"));
    }
    if let Some(host) = path::strip_port_from_host(input, Some(8080)) {
        assert!(input.starts_with(host) && host.len() < input.len());
    }
    if let Some(host) = path::strip_trailing_host_dot(input) {
        assert_eq!(host.len() + 1, input.len());
    }

    let cfg = PathNormalization {
        normalize_path: ctl & 1 != 0,
        merge_slashes: ctl & 2 != 0,
        escaped_slashes: match (ctl >> 2) & 3 {
            0 => EscapedSlashes::KeepUnchanged,
            1 => EscapedSlashes::RejectRequest,
            2 => EscapedSlashes::UnescapeAndRedirect,
            _ => EscapedSlashes::UnescapeAndForward,
        },
        strip_trailing_host_dot: ctl & 16 != 0,
        strip_port: match (ctl >> 5) & 3 {
            0 => StripPortMode::None,
            1 => StripPortMode::Matching,
            _ => StripPortMode::Any,
        },
    };
    let mut head = RequestHead {
        path: input.to_string(),
        authority: input.to_string(),
        ..RequestHead::default()
    };
    let action = normalize_path(&cfg, &mut head);
    if action != PathAction::Reject && input.starts_with('/') {
        assert!(head.path.starts_with('/'));
        if cfg.normalize_path {
            assert!(!split_query(&head.path)
                .0
                .split('/')
                .any(|s| s == "." || s == ".."));
        }
    }
    if action == PathAction::Redirect {
        assert_eq!(cfg.escaped_slashes, EscapedSlashes::UnescapeAndRedirect);
    }
    normalize_host(&cfg, &mut head, 8080);
    assert!(head.authority.len() <= input.len());
});
