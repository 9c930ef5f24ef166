//! Envoy's own cases (test/common/http/path_utility_test.cc and header_utility_test.cc),
//! then a few of ours.

use super::*;

fn canon(p: &str) -> Option<String> {
    canonical_path(p)
}

#[test]
fn already_normal_paths() {
    for p in ["/xyz", "/x/y/z"] {
        assert_eq!(canon(p).as_deref(), Some(p));
    }
}

#[test]
fn invalid_paths() {
    for p in ["/xyz/.%00../abc", "/xyz/%00.%00./abc", "/xyz/AAAAA%%0000/abc"] {
        assert_eq!(canon(p), None, "{p}");
    }
}

#[test]
fn normalize_valid_paths() {
    let pairs = [
        ("/a/b/../c", "/a/c"),
        ("/a/b/./c", "/a/b/c"),
        ("a/b/../c", "/a/c"),
        ("/a/b/../../../../c", "/c"),
        ("/a/..\\c", "/c"),
        ("/%c0%af", "/%c0%af"),
        ("/%5c%25", "/%5c%25"),
        ("/a/b/%2E%2E/c", "/a/c"),
        ("/xyz/..;foo=bar/abc", "/abc"),
        ("/..;foo=bar/abc", "/abc"),
        ("/xyz/..;foo=bar", "/"),
        ("/xyz/.;foo=bar/abc", "/xyz/abc"),
        ("/.;foo=bar/abc", "/abc"),
        ("/xyz/.;foo=bar", "/xyz/"),
        ("/xyz/..;foo=bar/.;v1=2,v2=3/abc", "/abc"),
        ("/..;foo=bar/abc/.;mmm", "/abc/"),
        ("/.;aaa/..;foo=bar/abc/.;mmm", "/abc/"),
        ("/xyz/..;foo=bar/.;fff=zzz", "/"),
        ("/xyz/..;foo=bar/.;fff=zzz?blah=woops", "/?blah=woops"),
        ("/xyz/..;foo=bar/.;fff=zzz/remain;blah-bluh?query", "/remain;blah-bluh?query"),
    ];
    for (p, want) in pairs {
        assert_eq!(canon(p).as_deref(), Some(want), "{p}");
    }
}

#[test]
fn normalize_case_path() {
    let pairs =
        [("/A/B/C", "/A/B/C"), ("/a/b/%2E%2E/c", "/a/c"), ("/a/b/%2e%2e/c", "/a/c"), ("/a/%2F%2f/c", "/a/%2F%2f/c")];
    for (p, want) in pairs {
        assert_eq!(canon(p).as_deref(), Some(want), "{p}");
    }
}

#[test]
fn normalize_decodes_unreserved_and_escapes_the_rest() {
    assert_eq!(canon("/%41%7e%2d%5F%30").as_deref(), Some("/A~-_0"), "unreserved characters are decoded");
    assert_eq!(canon("/%3A%40%21").as_deref(), Some("/%3A%40%21"), "reserved characters stay encoded, case kept");
    assert_eq!(canon("/a\"b<c>d^e`f{g|h}").as_deref(), Some("/a%22b%3Cc%3Ed%5Ee%60f%7Bg%7Ch%7D"));
    assert_eq!(canon("/a\x0cb").as_deref(), Some("/a%0Cb"));
    assert_eq!(canon("/a%zz/%4").as_deref(), Some("/a%zz/%4"), "a broken escape stays");
    assert_eq!(canon("/a/b/..").as_deref(), Some("/a/"));
    assert_eq!(canon("/a/b/.").as_deref(), Some("/a/b/"));
    assert_eq!(canon("/..").as_deref(), Some("/"));
    assert_eq!(canon("/a/...").as_deref(), Some("/a/..."));
    assert_eq!(canon("/a/.b/..c").as_deref(), Some("/a/.b/..c"));
    assert_eq!(canon("/a/./c/../b").as_deref(), Some("/a/b"));
    assert_eq!(canon("/a/b?x=/../..").as_deref(), Some("/a/b?x=/../.."), "the query is untouched");
    assert_eq!(canon("").as_deref(), Some("/"));
    assert_eq!(canon("/a%00?q").as_deref(), None);
}

#[test]
fn merge_slashes_cases() {
    let m = |p: &str| merge_slashes(p).unwrap_or_else(|| p.to_string());
    assert_eq!(m(""), "");
    assert_eq!(m("a//b/c"), "a/b/c");
    assert_eq!(m("/a//b/c/"), "/a/b/c/");
    assert_eq!(m("a//b/c/"), "a/b/c/");
    assert_eq!(m("/a"), "/a");
    assert_eq!(m("//a/b/c"), "/a/b/c");
    assert_eq!(m("/a//b/c"), "/a/b/c");
    assert_eq!(m("/a/b/c//"), "/a/b/c/");
    assert_eq!(m("/a///b/c"), "/a/b/c");
    assert_eq!(m("/a////b/c"), "/a/b/c");
    assert_eq!(m("/a//b?a=///c"), "/a/b?a=///c");
    assert_eq!(m("/a//b?"), "/a/b?");
    assert_eq!(m("//a/?b"), "/a/?b");
    assert_eq!(merge_slashes("/a/b?x=//"), None, "nothing to merge in the path");
    assert_eq!(m("///"), "//", "only slashes: Envoy's prefix and suffix");
}

#[test]
fn strip_dot_segment_with_parameters() {
    let s = |p: &str| strip_parameters_from_dot_segments(p).unwrap_or_else(|| p.to_string());
    let pairs = [
        ("", ""),
        ("/xyz", "/xyz"),
        ("/xyz/..;foo=bar/abc", "/xyz/../abc"),
        ("/..;foo=bar/abc", "/../abc"),
        ("/xyz/..;foo=bar", "/xyz/.."),
        ("/xyz/..;", "/xyz/.."),
        ("/a/..;foo/b/..;bar/c", "/a/../b/../c"),
        ("/a/..;param1;param2/b", "/a/../b"),
        ("/xyz/..foo", "/xyz/..foo"),
        ("/xyz/...;foo", "/xyz/...;foo"),
        ("/xyz/remove/..;foo?param=/.;foo", "/xyz/remove/..?param=/.;foo"),
        ("/xyz/remove/..;foo#frag=/.;foo", "/xyz/remove/..#frag=/.;foo"),
        ("/xyz?param=/..;foo", "/xyz?param=/..;foo"),
        ("/xyz#frag=/..;foo", "/xyz#frag=/..;foo"),
        ("/xyz/.;foo=bar/abc", "/xyz/./abc"),
        ("/.;foo=bar/abc", "/./abc"),
        ("/xyz/.;foo=bar", "/xyz/."),
        ("/xyz/.;", "/xyz/."),
        ("/a/.;foo/b/.;bar/c", "/a/./b/./c"),
        ("/a/.;param1;param2/b", "/a/./b"),
        ("/xyz/.foo", "/xyz/.foo"),
        ("/xyz?param=/.;foo", "/xyz?param=/.;foo"),
        ("/xyz#frag=/.;foo", "/xyz#frag=/.;foo"),
    ];
    for (p, want) in pairs {
        assert_eq!(s(p), want, "{p}");
    }
}

#[test]
fn unescape_slashes_cases() {
    let u = |p: &str| match unescape_slashes(p) {
        Some(new) => (new, true),
        None => (p.to_string(), false),
    };
    let cases: [(&str, &str, bool); 20] = [
        ("", "", false),
        ("%2f%2F", "//", true),
        ("/a%2Fb%2fc/", "/a/b/c/", true),
        ("%2b", "%2b", false),
        ("/a/b/c", "/a/b/c", false),
        ("%2", "%2", false),
        ("%", "%", false),
        ("/abc%2", "/abc%2", false),
        ("foo%", "foo%", false),
        ("/a%2F", "/a/", true),
        ("%2fa/", "/a/", true),
        ("%%2fa/", "%/a/", true),
        ("%2%2fa/", "%2/a/", true),
        ("%5c%5C", "\\\\", true),
        ("/a%5Cb%5cc/", "/a\\b\\c/", true),
        ("/a%5C", "/a\\", true),
        ("%5ca/", "\\a/", true),
        ("/x/%2E%2e/z%2f%2Fabc%5C../def", "/x/%2E%2e/z//abc\\../def", true),
        ("%2fa%5Cb%2fc%5c", "/a\\b/c\\", true),
        ("%2fa%5Cb%2fc%5c?%2fabcd%5C%%2f%", "/a\\b/c\\?%2fabcd%5C%%2f%", true),
    ];
    for (p, want, found) in cases {
        assert_eq!(u(p), (want.to_string(), found), "{p}");
    }
}

#[test]
fn strip_port_from_host_cases() {
    // header_utility_test.cc: StripPortFromHost / StripPortFromHostAny.
    assert_eq!(strip_port_from_host("envoy:80", Some(80)), Some("envoy"));
    assert_eq!(strip_port_from_host("envoy:8080", Some(80)), None, "a different port stays");
    assert_eq!(strip_port_from_host("envoy", Some(80)), None);
    assert_eq!(strip_port_from_host("192.168.1.1:80", Some(80)), Some("192.168.1.1"));
    assert_eq!(strip_port_from_host("192.168.1.1:8080", Some(80)), None);
    assert_eq!(strip_port_from_host("[fc00::1]:80", Some(80)), Some("[fc00::1]"));
    assert_eq!(strip_port_from_host("[fc00::1]:8080", Some(80)), None);
    assert_eq!(strip_port_from_host("[fc00::1]", Some(80)), None, "colons inside the brackets are no port");
    assert_eq!(strip_port_from_host("envoy:", Some(80)), None);
    assert_eq!(strip_port_from_host("envoy:abc", None), None);
    assert_eq!(strip_port_from_host("envoy:8080", None), Some("envoy"));
    assert_eq!(strip_port_from_host("192.168.1.1:443", None), Some("192.168.1.1"));
    assert_eq!(strip_port_from_host("[fc00::1]:443", None), Some("[fc00::1]"));
    assert_eq!(strip_port_from_host("fc00::1", None), Some("fc00:"), "an unbracketed IPv6 host is cut as Envoy does");
}

#[test]
fn strip_trailing_host_dot_cases() {
    // header_utility_test.cc: RemoveTrailingDot.
    assert_eq!(strip_trailing_host_dot("host.com.").as_deref(), Some("host.com"));
    assert_eq!(strip_trailing_host_dot("host.com.:443").as_deref(), Some("host.com:443"));
    assert_eq!(strip_trailing_host_dot("host.com"), None);
    assert_eq!(strip_trailing_host_dot("host.com:443"), None);
    assert_eq!(strip_trailing_host_dot("host"), None);
    assert_eq!(strip_trailing_host_dot("[fc00::1]:443"), None);
    assert_eq!(strip_trailing_host_dot("1.2.3.4:80"), None);
}

/// Seeded random paths over an alphabet rich in what these functions look at: none of
/// them may panic, and each output keeps its contract.
#[test]
fn random_paths_keep_the_contracts() {
    const ALPHABET: &[&str] = &[
        "/", "/", ".", ".", "..", "%", "%2e", "%2E", "%2f", "%5C", "%00", "%4", "%41", "\\", ";", "?", "#", "a", "Z",
        "~", "\u{c}", "é", ":", "]", "[",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = next() % 12;
        let input: String = (0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]).collect();
        let (_, query) = split_query(&input);
        if let Some(out) = canonical_path(&input) {
            let (p, q) = split_query(&out);
            assert!(p.starts_with('/'), "{input:?} -> {out:?}");
            assert!(p.bytes().all(|b| (b'!'..=b'~').contains(&b)), "{input:?} -> {out:?}");
            assert!(!p.split('/').any(|s| s == "." || s == ".."), "{input:?} -> {out:?}");
            assert!(!p.contains("%2e") && !p.contains("%2E"), "{input:?} -> {out:?}");
            assert_eq!(q, query, "{input:?}: the query is kept");
        }
        if let Some(out) = merge_slashes(&input) {
            let p = split_query(&out).0;
            assert!(!p.contains("//") || p == "//", "{input:?} -> {out:?}");
        }
        if let Some(out) = unescape_slashes(&input) {
            let p = split_query(&out).0.to_ascii_lowercase();
            assert!(!p.contains("%2f") && !p.contains("%5c"), "{input:?} -> {out:?}");
        }
        if let Some(out) = strip_parameters_from_dot_segments(&input) {
            assert!(out.len() < input.len(), "{input:?} -> {out:?}");
        }
        if let Some(host) = strip_port_from_host(&input, None) {
            assert!(input.starts_with(host) && host.len() < input.len());
        }
        if let Some(host) = strip_trailing_host_dot(&input) {
            assert_eq!(host.len() + 1, input.len());
        }
    }
}
